"""The wheelhouse builder's pure parts: the lock, platform tags, wheel choice, source digests."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


LOCK = """\
# comment
certifi==2026.10.18 \\
    --hash=sha256:{a} \\
    --hash=sha256:{b}
    # via requests
lgpio==0.2.2.0 ; platform_machine == 'aarch64' or platform_machine == 'armv7l' \\
    --hash=sha256:{c}
    # via voice-client (voice_client/pyproject.toml)
PyAudio==0.2.14 \\
    --hash=sha256:{d}
""".format(a="a" * 64, b="b" * 64, c="c" * 64, d="d" * 64)


def test_parse_lock_reads_pins_hashes_and_markers(wh):
    reqs = wh.parse_lock(LOCK)
    assert [r.pin for r in reqs] == ["certifi==2026.10.18", "lgpio==0.2.2.0", "pyaudio==0.2.14"]
    assert reqs[0].hashes == {"a" * 64, "b" * 64}
    assert reqs[1].marker is not None
    assert reqs[2].name == "pyaudio"  # canonical name, as wheel file names carry it


@pytest.mark.parametrize(("arch", "included"), [("x86_64", False), ("aarch64", True), ("armv7l", True)])
def test_markers_are_judged_for_the_device_not_the_controller(wh, arch, included):
    lgpio = wh.parse_lock(LOCK)[1]
    target = wh.Target(arch, "3.11", "2.36")
    assert lgpio.applies(target.marker_environment()) is included


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("numpy>=1.26 --hash=sha256:" + "e" * 64, "is not pinned with =="),
        ("numpy==2.4.6", "has no --hash"),
        ("-e ./local --hash=sha256:" + "e" * 64, "options are not supported"),
    ],
)
def test_parse_lock_rejects_what_cannot_be_installed_safely(wh, text, message):
    with pytest.raises(wh.WheelhouseError, match=message):
        wh.parse_lock(text)


def test_tags_prefer_the_newest_manylinux_the_device_runs(wh):
    tags = [str(t) for t in wh.Target("aarch64", "3.11", "2.36").tags()]
    assert tags[0] == "cp311-cp311-manylinux_2_36_aarch64"
    assert "cp311-cp311-manylinux2014_aarch64" in tags
    assert "cp311-abi3-manylinux_2_17_aarch64" in tags
    assert "py3-none-any" in tags
    assert not any("x86_64" in t or "manylinux_2_37" in t for t in tags)


def test_a_wheel_for_a_newer_glibc_is_not_chosen(wh):
    preferred = {t: i for i, t in enumerate(wh.Target("aarch64", "3.11", "2.36").tags())}
    assert wh.wheel_rank("lgpio-0.2.2.0-cp311-cp311-manylinux_2_34_aarch64.whl", preferred) is not None
    assert wh.wheel_rank("numpy-2.4.6-cp311-cp311-manylinux_2_39_aarch64.whl", preferred) is None
    assert wh.wheel_rank("numpy-2.4.6-cp311-cp311-manylinux_2_17_x86_64.whl", preferred) is None
    assert wh.wheel_rank("numpy-2.4.6-cp312-cp312-manylinux_2_17_aarch64.whl", preferred) is None
    specific = wh.wheel_rank("x-1-cp311-cp311-manylinux_2_17_aarch64.whl", preferred)
    generic = wh.wheel_rank("x-1-py3-none-any.whl", preferred)
    assert specific < generic


def test_armv7l_accepts_plain_linux_wheels_from_pypi(wh):
    preferred = {t: i for i, t in enumerate(wh.Target("armv7l", "3.11", "2.36").tags())}
    assert wh.wheel_rank("lgpio-0.2.2.0-cp311-cp311-linux_armv7l.whl", preferred) is not None


def test_pure_wheels_serve_every_platform(wh):
    assert wh.is_pure("opuslib-3.0.1-py3-none-any.whl")
    assert not wh.is_pure("pyaudio-0.2.14-cp311-cp311-linux_x86_64.whl")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"arch": "riscv64", "python": "3.11", "glibc": "2.36"}, "riscv64"),
        ({"arch": "aarch64", "python": "311", "glibc": "2.36"}, "'311'"),
        ({"arch": "aarch64", "python": "3.11", "glibc": ""}, "glibc ''"),
        ("aarch64", "must be a mapping"),
    ],
)
def test_bad_platforms_are_named(wh, value, message):
    with pytest.raises(wh.WheelhouseError, match=message):
        wh.Target.from_arg(value)


def test_source_digest_ignores_build_debris_but_not_code(wh, tmp_path):
    src = tmp_path / "client"
    (src / "src" / "pkg").mkdir(parents=True)
    (src / "pyproject.toml").write_text('version = "1"\n')
    (src / "src" / "pkg" / "__init__.py").write_text("x = 1\n")
    first = wh.source_digest(src)
    (src / "build" / "lib").mkdir(parents=True)
    (src / "build" / "lib" / "junk.py").write_text("junk")
    (src / "src" / "pkg.egg-info").mkdir()
    (src / "src" / "pkg.egg-info" / "PKG-INFO").write_text("x")
    (src / "src" / "pkg" / "__pycache__").mkdir()
    assert wh.source_digest(src) == first
    (src / "src" / "pkg" / "__init__.py").write_text("x = 2\n")
    assert wh.source_digest(src) != first


def _client(tmp_path: Path, version: str, body: str) -> Path:
    src = tmp_path / f"client-{len(list(tmp_path.iterdir()))}"
    (src / "src" / "voice_client").mkdir(parents=True)
    (src / "pyproject.toml").write_text(f'[project]\nname = "voice-client"\nversion = "{version}"\n')
    (src / "src" / "voice_client" / "__init__.py").write_text(body)
    (src / "requirements.lock").write_text(LOCK)
    return src


def test_a_release_is_its_content_not_its_version_string(wh, tmp_path):
    target = [wh.Target.from_arg({"arch": "x86_64", "python": "3.11", "glibc": "2.36"})]
    one = _client(tmp_path, "1.1.0", "VALUE = 1\n")
    same = _client(tmp_path, "1.1.0", "VALUE = 1\n")
    changed = _client(tmp_path, "1.1.0", "VALUE = 2\n")
    ids = [
        wh.plan_releases(c / "requirements.lock", c, target)["cp311-x86_64"]["release_id"]
        for c in (one, same, changed)
    ]
    assert ids[0] == ids[1], "the same content is the same release"
    assert ids[2] != ids[0], "a changed client under the same version is a new release"
    assert all(i.startswith("1.1.0-") for i in ids)
    # Build debris never changes the release.
    (one / "build").mkdir()
    (one / "build" / "junk.py").write_text("x")
    assert wh.plan_releases(one / "requirements.lock", one, target)["cp311-x86_64"]["release_id"] == ids[0]


def test_the_release_id_covers_lock_and_platform(wh):
    base = wh.release_id_of("1.1.0", "s" * 64, "l" * 64, "cp311-x86_64")
    assert wh.release_id_of("1.1.0", "s" * 64, "m" * 64, "cp311-x86_64") != base
    assert wh.release_id_of("1.1.0", "s" * 64, "l" * 64, "cp311-aarch64") != base

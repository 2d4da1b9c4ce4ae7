"""The wheelhouse's installer tools (uv for voice_release_installer: uv): lock, wheel choice, cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV_LOCK = ROOT / "roles" / "voice_release" / "files" / "uv-requirements.txt"

# File names PyPI has for one uv release (uv 0.13.9), the ones that matter here.
UV_FILES = [
    "uv-0.13.9-py3-none-linux_armv6l.whl",
    "uv-0.13.9-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl",
    "uv-0.13.9-py3-none-manylinux_2_17_armv7l.manylinux2014_armv7l.musllinux_1_1_armv7l.whl",
    "uv-0.13.9-py3-none-manylinux_2_17_armv7l.manylinux2014_armv7l.whl",
    "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "uv-0.13.9-py3-none-manylinux_2_28_aarch64.whl",
    "uv-0.13.9-py3-none-musllinux_1_1_x86_64.whl",
    "uv-0.13.9-py3-none-macosx_11_0_arm64.whl",
]


def test_the_shipped_uv_lock_pins_one_uv_with_hashes(wh):
    (req,) = wh.parse_lock(UV_LOCK.read_text(), str(UV_LOCK))
    assert req.name == "uv"
    assert req.marker is None
    # One hash per file PyPI has for that version: every platform's wheel and the sdist.
    assert len(req.hashes) >= 10


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("x86_64", {"uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"}),
        ("aarch64", {"uv-0.13.9-py3-none-manylinux_2_28_aarch64.whl"}),
        # Two files carry the same glibc tag (one is also tagged musllinux): either serves.
        (
            "armv7l",
            {
                "uv-0.13.9-py3-none-manylinux_2_17_armv7l.manylinux2014_armv7l.whl",
                "uv-0.13.9-py3-none-manylinux_2_17_armv7l.manylinux2014_armv7l.musllinux_1_1_armv7l.whl",
            },
        ),
    ],
)
def test_each_device_platform_gets_a_glibc_uv_wheel_of_its_own_architecture(wh, arch, expected):
    preferred = {t: i for i, t in enumerate(wh.Target(arch, "3.11", "2.36").tags())}
    ranks = {name: rank for name in UV_FILES if (rank := wh.wheel_rank(name, preferred)) is not None}
    best = min(ranks.values())
    assert {name for name, rank in ranks.items() if rank == best} == expected
    assert all(arch in name for name in ranks)
    assert not any("armv6l" in name or "macosx" in name for name in ranks)


def test_a_cached_tool_is_reused_without_asking_the_index(wh, tmp_path):
    """A second run reads its manifest; the index (a closed loopback port here) is never asked."""
    wheel_bytes = b"not really a wheel, but content with a hash"
    sha = hashlib.sha256(wheel_bytes).hexdigest()
    filename = "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    lock = tmp_path / "uv-requirements.txt"
    lock.write_text(f"uv==0.13.9 \\\n    --hash=sha256:{sha}\n")
    cache = tmp_path / "cache"
    (cache / "downloads" / sha).mkdir(parents=True)
    (cache / "downloads" / sha / filename).write_bytes(wheel_bytes)
    target = wh.Target("x86_64", "3.11", "2.36")
    base = cache / "tools" / target.key / wh.sha256_file(lock)[:16]
    base.mkdir(parents=True)
    (base / "files.json").write_text(json.dumps({"uv": [filename, sha]}))
    (base / "requirements.txt").write_text(f"uv==0.13.9 --hash=sha256:{sha}\n")

    house = wh.Wheelhouse(cache, wh.Index("http://127.0.0.1:9/simple"))
    tools = house.tools(lock, target)

    assert tools["complete"] is True
    assert tools["id"] == f"uv-0.13.9-{sha[:12]}"
    assert tools["files"] == {filename: {"path": str(cache / "downloads" / sha / filename), "sha256": sha}}
    assert Path(tools["requirements"]).read_text() == f"uv==0.13.9 --hash=sha256:{sha}\n"
    assert house.changed is False


def test_a_missing_cached_file_sends_the_tool_back_to_the_index(wh, tmp_path):
    """The manifest alone is not trusted: without its file the index is asked (and here it is down)."""
    sha = "a" * 64
    lock = tmp_path / "uv-requirements.txt"
    lock.write_text(f"uv==0.13.9 \\\n    --hash=sha256:{sha}\n")
    target = wh.Target("x86_64", "3.11", "2.36")
    base = tmp_path / "cache" / "tools" / target.key / wh.sha256_file(lock)[:16]
    base.mkdir(parents=True)
    (base / "files.json").write_text(json.dumps({"uv": ["uv-0.13.9-py3-none-any.whl", sha]}))

    house = wh.Wheelhouse(tmp_path / "cache", wh.Index("http://127.0.0.1:9/simple"))
    with pytest.raises(
        wh.WheelhouseError, match=r"cannot list uv on the package index http://127\.0\.0\.1:9"
    ):
        house.tools(lock, target)

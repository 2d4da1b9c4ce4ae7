"""The client's wheel is built by the controller venv's own setuptools, not in pip's isolation.

pip's isolated build installs setuptools afresh from the index for every new
client source, a few seconds of controller CPU per rollout of a new source
(issue 12). `voice_wheelhouse.build_client` runs the backend of the venv
directly where the source's build-system is satisfied by it, and leaves any
other source to pip.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def source_with(tmp_path: Path, build_system: str) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    (source / "pyproject.toml").write_text(
        f'[build-system]\n{build_system}\n\n[project]\nname = "probe"\nversion = "1.0"\n'
    )
    return source


def test_the_client_source_is_built_by_the_venv_backend(wh):
    assert wh.venv_backend(ROOT / "voice_client") == "setuptools.build_meta"


@pytest.mark.parametrize(
    "build_system",
    [
        'requires = ["setuptools>=9999"]\nbuild-backend = "setuptools.build_meta"',
        'requires = ["setuptools", "cython"]\nbuild-backend = "setuptools.build_meta"',
        'requires = ["hatchling"]\nbuild-backend = "hatchling.build"',
        'requires = []\nbuild-backend = "setuptools.build_meta"\nbackend-path = ["."]',
        'requires = ["not a requirement ("]\nbuild-backend = "setuptools.build_meta"',
        "",
    ],
    ids=["newer-setuptools", "more-requires", "other-backend", "in-tree-backend", "bad-requires", "none"],
)
def test_a_source_the_venv_cannot_build_goes_to_pip(wh, tmp_path, build_system):
    assert wh.venv_backend(source_with(tmp_path, build_system)) is None


def test_the_venv_backend_builds_the_same_wheel_twice(wh, tmp_path):
    builds = []
    for n in (1, 2):
        copy = tmp_path / f"copy{n}"
        shutil.copytree(ROOT / "voice_client", copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
        builds.append(wh.build_client(copy, tmp_path / f"out{n}", "the voice client"))
    first, second = builds
    assert first.name == second.name
    assert first.name.startswith("voice_client-") and first.name.endswith("-py3-none-any.whl")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as whl:
        names = whl.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "voice-client = voice_client.cli:main" in whl.read(entry_points).decode()
    assert "voice_client/cli.py" in names


def test_a_failing_build_names_the_backend_and_what_it_said(wh, tmp_path):
    source = source_with(tmp_path, 'requires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"')
    (source / "setup.py").write_text("raise SystemExit('setup.py refuses: probe-7f3a')\n")
    with pytest.raises(wh.WheelhouseError, match=r"setuptools\.build_meta\) failed:\n(.|\n)*probe-7f3a"):
        wh.build_client(source, tmp_path / "out", "the probe")
    assert not (tmp_path / "out").exists()

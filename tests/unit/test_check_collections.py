"""tools/check_collections.py: requirements.yml against what is installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "check_collections.py"


def fake_collection(root: Path, fqcn: str, version: str) -> None:
    namespace, name = fqcn.split(".")
    coll = root / "ansible_collections" / namespace / name
    coll.mkdir(parents=True)
    manifest = {"collection_info": {"namespace": namespace, "name": name, "version": version}}
    (coll / "MANIFEST.json").write_text(json.dumps(manifest))


def run_check(requirements: Path, search_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(requirements), "--search-path", str(search_path), *extra],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.yml"
    path.write_text(
        "collections:\n"
        "  - name: community.general\n"
        "    version: '>=11.0.0,<12.0.0'\n"
        "  - name: ansible.posix\n"
        "    version: '>=2.0.0'\n"
    )
    return path


def test_passes_when_every_collection_is_present(tmp_path, requirements):
    fake_collection(tmp_path / "colls", "community.general", "11.4.2")
    fake_collection(tmp_path / "colls", "ansible.posix", "2.1.0")
    proc = run_check(requirements, tmp_path / "colls")
    assert proc.returncode == 0, proc.stderr
    assert "community.general 11.4.2" in proc.stdout


def test_fails_naming_a_missing_collection(tmp_path, requirements):
    fake_collection(tmp_path / "colls", "community.general", "11.4.2")
    proc = run_check(requirements, tmp_path / "colls")
    assert proc.returncode == 1
    assert "ansible.posix (>=2.0.0) is not installed" in proc.stderr
    assert "ansible-galaxy collection install" in proc.stderr


def test_fails_naming_a_version_outside_the_range(tmp_path, requirements):
    fake_collection(tmp_path / "colls", "community.general", "12.0.0")
    fake_collection(tmp_path / "colls", "ansible.posix", "2.1.0")
    proc = run_check(requirements, tmp_path / "colls")
    assert proc.returncode == 1
    assert "community.general 12.0.0" in proc.stderr
    assert ">=11.0.0,<12.0.0" in proc.stderr


def test_first_search_path_wins_like_ansible(tmp_path, requirements):
    fake_collection(tmp_path / "first", "community.general", "10.0.0")
    fake_collection(tmp_path / "second", "community.general", "11.4.2")
    fake_collection(tmp_path / "second", "ansible.posix", "2.1.0")
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            str(requirements),
            "--search-path",
            str(tmp_path / "first"),
            "--search-path",
            str(tmp_path / "second"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "community.general 10.0.0" in proc.stderr


def test_the_projects_requirements_are_installed():
    """The real check, against where Ansible looks (what `make setup` runs)."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(ROOT / "requirements.yml")],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr


def test_print_paths_gives_where_each_collection_was_found(tmp_path, requirements):
    """`make setup` compiles exactly these directories to bytecode."""
    fake_collection(tmp_path / "colls", "community.general", "11.4.2")
    fake_collection(tmp_path / "colls", "ansible.posix", "2.1.0")
    proc = run_check(requirements, tmp_path / "colls", "--print-paths")
    assert proc.returncode == 0, proc.stderr
    base = tmp_path / "colls" / "ansible_collections"
    assert proc.stdout.splitlines() == [str(base / "community" / "general"), str(base / "ansible" / "posix")]
    assert "collections ok" in proc.stderr

"""The pull agent's settings: a bad value stops the agent (exit 2) and names the key and the value.

The agent runs as deployed: its file with push's module files copied beside it (the role's
_voice_agent_shared_files), with the system Python of the device and no Ansible.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "voice_agent"


def shared_files() -> list[Path]:
    """The files the role copies beside the agent (_voice_agent_shared_files), as paths here."""
    listed = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["_voice_agent_shared_files"]
    return [Path(entry.replace("{{ role_path }}", str(ROLE))).resolve() for entry in listed]


@pytest.fixture
def agent(tmp_path: Path) -> Path:
    directory = tmp_path / "agent"
    directory.mkdir()
    for path in [ROLE / "files" / "voice_agent.py", *shared_files()]:
        shutil.copy(path, directory / path.name)
    return directory / "voice_agent.py"


def run_agent(agent: Path, config: str) -> subprocess.CompletedProcess:
    path = agent.parent / "agent.env"
    path.write_text("VOICE_AGENT_REGISTRY_URL=http://127.0.0.1:9/\nVOICE_AGENT_TOKEN=t\n" + config)
    return subprocess.run(
        [sys.executable, str(agent), "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("value", ["1", "0", "-3", "three", "2.5", ""])
def test_keeping_fewer_than_two_releases_is_refused_by_name(agent, value):
    proc = run_agent(agent, f"VOICE_AGENT_KEEP_RELEASES={value}\n")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"VOICE_AGENT_KEEP_RELEASES={value!r} is not a whole number >= 2" in proc.stdout


def test_a_number_setting_that_is_not_a_number_is_refused_by_name(agent):
    proc = run_agent(agent, "VOICE_AGENT_HEALTH_SECONDS=ten\n")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "VOICE_AGENT_HEALTH_SECONDS='ten' is not a number" in proc.stdout

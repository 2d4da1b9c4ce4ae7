"""The release role's controller-side input check names what is missing (voice_release inputs.yml).

Runs the role's tasks through Ansible on localhost: a missing client source or lock fails the play
with its path, `~` in a path is the controller user's home, and present inputs pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from local_play import run_local_play


def _play(source: str, lock: str) -> list[dict]:
    return [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "ansible.builtin.include_role": {"name": "voice_release", "tasks_from": "inputs"},
                    "vars": {"voice_release_source": source, "voice_release_lock": lock},
                }
            ],
        }
    ]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    source = tmp_path / "home" / "client"
    source.mkdir(parents=True)
    (source / "pyproject.toml").write_text("[project]\nname = 'voice-client'\n")
    (source / "requirements.lock").write_text("")
    return tmp_path / "home"


def test_inputs_in_the_home_directory_pass(home, tmp_path):
    proc, _ = run_local_play(
        _play("~/client", "~/client/requirements.lock"), tmp_path / "play.yml", {"HOME": str(home)}
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


@pytest.mark.parametrize(
    ("source", "lock", "missing"),
    [
        ("~/nowhere", "~/client/requirements.lock", "/nowhere/pyproject.toml"),
        ("~/client", "~/client/no.lock", "/client/no.lock"),
    ],
)
def test_a_missing_input_fails_the_play_naming_its_path(home, tmp_path, source, lock, missing):
    proc, output = run_local_play(_play(source, lock), tmp_path / "play.yml", {"HOME": str(home)})
    assert proc.returncode != 0
    message = output["plays"][0]["tasks"][-1]["hosts"]["localhost"]["msg"]
    assert message.startswith("missing on the controller:")
    assert str(home) + missing in message

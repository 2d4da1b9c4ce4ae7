"""Every role rejects a bad variable before it changes anything (meta/argument_specs.yml)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

# (role, entry point, a bad value for one of its variables, what the message must name)
CASES = [
    ("voice_packages", "main", {"voice_packages_retries": "many"}, "voice_packages_retries"),
    ("voice_hardware", "main", {"voice_hardware_allow_reboot": "perhaps"}, "voice_hardware_allow_reboot"),
    ("voice_service", "main", {"voice_service_log_level": "LOUD"}, "voice_service_log_level"),
    ("voice_service", "main", {"voice_service_button_pin": "seventeen"}, "voice_service_button_pin"),
    ("voice_release", "main", {"voice_release_keep": "all"}, "voice_release_keep"),
    ("voice_registry", "main", {"voice_registry_status": "asleep"}, "voice_registry_status"),
    ("voice_registry", "progress", {"voice_registry_update_status": "done"}, "voice_registry_update_status"),
    ("voice_legacy", "main", {"voice_legacy_remove_after_gate": "later"}, "voice_legacy_remove_after_gate"),
]


@pytest.mark.parametrize(
    ("role", "entry", "bad", "named"), CASES, ids=[f"{c[0]}:{c[1]}:{c[3]}" for c in CASES]
)
def test_a_bad_variable_stops_the_role_before_any_change(tmp_path, role, entry, bad, named):
    marker = tmp_path / "touched"
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Apply the role with a bad variable",
                    "ansible.builtin.include_role": {"name": role, "tasks_from": entry},
                    "vars": bad,
                },
                {"name": "Must never run", "ansible.builtin.file": {"path": str(marker), "state": "touch"}},
            ],
        }
    ]
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play))
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            str(playbook),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_PYTHON_INTERPRETER": sys.executable},
    )
    assert proc.returncode != 0
    assert not marker.exists()
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    failed = [t for t in tasks if t["hosts"]["localhost"].get("failed")]
    assert failed, proc.stdout[-2000:]
    first = failed[0]
    assert "Validating arguments against arg spec" in first["task"]["name"], first["task"]["name"]
    assert named in json.dumps(first["hosts"]["localhost"]), first["hosts"]["localhost"]
    # Nothing of the role ran before the validation failed.
    ran = [t["task"]["name"] for t in tasks[: tasks.index(first)]]
    assert ran == ["Apply the role with a bad variable"], ran  # the include itself, then the validation

"""The controller_gc callback on a real ansible-playbook run: the workers inherit a frozen heap."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "controller_gc"


def frozen_in_worker(tmp_path: Path, callback_plugins: Path) -> int:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_CALLBACK_PLUGINS": str(callback_plugins),
        "ANSIBLE_FILTER_PLUGINS": str(FIXTURES / "filter_plugins"),
        "ANSIBLE_NOCOLOR": "1",
    }
    run = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", str(FIXTURES / "play.yml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return int(re.findall(r"frozen objects: (\d+)", run.stdout)[-1])


def test_a_worker_inherits_the_controllers_heap_frozen(tmp_path: Path) -> None:
    # Tens of thousands of objects: the loaded Ansible, the play, the inventory.
    assert frozen_in_worker(tmp_path, ROOT / "callback_plugins") > 10_000


def test_without_the_plugin_nothing_is_frozen(tmp_path: Path) -> None:
    # The same run with the plugin out of the path: the check above depends on it.
    empty = tmp_path / "no-callbacks"
    empty.mkdir()
    assert frozen_in_worker(tmp_path, empty) == 0

"""Run a device-side module of the collection as Ansible runs it, for the unit tests.

A subprocess of the device's interpreter (/usr/bin/python3) with an
``{"ANSIBLE_MODULE_ARGS": ...}`` file; its shared helpers (plugins/module_utils)
on the path, as the pull agent keeps them beside it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HELPERS = ROOT / "plugins" / "module_utils"
SITE = ROOT / ".venv" / "lib" / "python3.11" / "site-packages"
DEVICE_PYTHON = "/usr/bin/python3"


def run_device_module(module: Path, args: dict, tmp: Path) -> tuple[int, dict]:
    """(exit code, result) of one run; the test fails when the module prints no JSON."""
    args_file = tmp / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = os.pathsep.join((str(SITE), str(HELPERS)))
    proc = subprocess.run(
        [DEVICE_PYTHON, str(module), str(args_file)], capture_output=True, text=True, env=env, check=False
    )
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"{module.name} printed no JSON (rc {proc.returncode}): {proc.stdout}\n{proc.stderr}")
    return proc.returncode, result

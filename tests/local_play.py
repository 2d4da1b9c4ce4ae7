"""Run a play on localhost from the repository root and read its JSON result (json callback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def run_local_play(
    play: list[dict[str, Any]], path: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Write `play` to `path`, run it with the repository's ansible.cfg; (process, parsed output)."""
    path.write_text(yaml.safe_dump(play))
    proc = subprocess.run(
        [PLAYBOOK, "-i", "localhost,", "-c", "local", str(path), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={
            **os.environ,
            **(env or {}),
            "ANSIBLE_STDOUT_CALLBACK": "json",
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "false",
        },
    )
    try:
        output = json.loads(proc.stdout)
    except ValueError:
        output = {}
    return proc, output

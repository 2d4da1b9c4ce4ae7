"""The maintenance-window filters in a real play: ansible-playbook picks exactly the open devices.

tests/fixtures/maintenance_window/select.yml does what the hourly scheduled play does: one split of
the fleet at a fixed `now`, a group of the open devices, a second play that acts only on them.
Each selected device writes its own window (computed in the play with `maintenance_window`).
No registry is needed: the inventory is a static YAML file with the inventory plugin's host vars.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "maintenance_window"
INVALID = {"pi-mars", "pi-flagged", "pi-typo", "pi-no-zone", "pi-template"}

# now -> {selected host: its window's UTC start}, derived by hand:
RUNS = {
    # 02:00 EST is skipped on 8 March 2026: New York and Toronto open at the jump, 07:00Z (03:00 EDT);
    # Bogota (-05, no DST) opens at 02:00 -05 = 07:00Z too. Berlin 08:30 CET, London 07:30 GMT,
    # Kolkata 13:00 IST, Chatham 21:15 +13:45: closed.
    "2026-03-08T07:30:00Z": {
        "pi-nyc": "2026-03-08T07:00:00+00:00",
        "pi-toronto": "2026-03-08T07:00:00+00:00",
        "pi-bogota": "2026-03-08T07:00:00+00:00",
    },
    # 25 Oct 2026, 00:30Z = 02:30 CEST, the first 02:30 in Berlin: its window (00:00-01:00Z) is open.
    # London 01:30 BST (its 02:00 comes once, in GMT, at 02:00Z), New York 20:30 EDT: closed.
    "2026-10-25T00:30:00Z": {"pi-berlin": "2026-10-25T00:00:00+00:00"},
    # An hour later Berlin's clocks show 02:30 again (CET): the repeated wall time is no window.
    "2026-10-25T01:30:00Z": {},
}


def run_play(repo_root: Path, now: str, output_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(repo_root / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            str(FIXTURES / "inventory.yml"),
            str(FIXTURES / "select.yml"),
            "-e",
            json.dumps({"maintenance_now": now, "output_dir": str(output_dir)}),
        ],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.parametrize(("now", "expected"), RUNS.items(), ids=RUNS.keys())
def test_play_selects_exactly_the_open_devices(
    repo_root: Path, tmp_path: Path, now: str, expected: dict[str, str]
) -> None:
    proc = run_play(repo_root, now, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    split = json.loads((tmp_path / "split.json").read_text())
    assert split["now"] == now.replace("Z", "+00:00")
    assert sorted(split["in_window"]) == sorted(expected)
    assert {entry["host"] for entry in split["invalid"]} == INVALID
    all_hosts = set(split["in_window"]) | {e["host"] for e in split["outside"]} | INVALID
    assert len(all_hosts) == len(split["in_window"]) + len(split["outside"]) + len(INVALID) == 12

    # Only the open devices ran the second play, each with its own window open.
    selected = {path.stem: json.loads(path.read_text()) for path in (tmp_path / "selected").glob("*.json")}
    assert {host: window["start"] for host, window in selected.items()} == expected
    assert all(window["in_window"] for window in selected.values())

    # An unsafe registry string is reported as it is, never templated (nothing ran `id`).
    template = next(entry for entry in split["invalid"] if entry["host"] == "pi-template")
    assert template["timezone"] == "{{ lookup('ansible.builtin.pipe', 'id') }}"
    assert "uid=" not in proc.stdout

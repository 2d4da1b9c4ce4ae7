"""Helpers of the end-to-end tests of the playbooks: runs through ansible-runner, registry reads.

Plays are driven the way AWX drives them (ansible_runner.run with the repository
as the project directory); assertions read runner events and the registry rows,
not stdout text.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ansible_runner
import psycopg
from stack import stack_dir  # tests/conftest.py puts tools/ on sys.path

if TYPE_CHECKING:
    from conftest import FleetHandle

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ROOT / ".cache" / "e2e-variants"


def variant(kind: str, version: str) -> Path:
    """A release of the real client (tools/client_variant.py), made once per version."""
    dest = VARIANTS / version
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "client_variant.py"),
            *("--kind", kind, "--version", version, "--dest", str(dest)),
        ],
        check=True,
        capture_output=True,
    )
    return dest


def run_playbook(
    fleet: FleetHandle,
    playbook: str,
    tmp_path: Path,
    *,
    extravars: dict[str, Any] | None = None,
    limit: str | None = None,
) -> ansible_runner.Runner:
    """Run playbooks/<playbook> on the fleet with ansible-runner; the repository is the project."""
    private = tmp_path / f"runner-{Path(playbook).stem}-{len(list(tmp_path.glob('runner-*')))}"
    private.mkdir(parents=True)
    env = fleet.env()
    envvars = {k: env[k] for k in ("SUPABASE_URL", "SUPABASE_SERVICE_KEY", "PATH")}
    envvars["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    envvars["ANSIBLE_HOST_KEY_CHECKING"] = "True"  # as production: runner would turn it off
    return ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(ROOT),
        playbook=f"playbooks/{playbook}",
        inventory=str(fleet.inventory),
        extravars=extravars or {},
        limit=limit or fleet.group,
        envvars=envvars,
        quiet=True,
        rotate_artifacts=1,
    )


def inventory_order(fleet: FleetHandle) -> list[str]:
    """The fleet's devices in the order the inventory (and so `serial`) takes them."""
    listing = fleet.inventory_list()
    return [name for name in listing[fleet.group]["hosts"] if name in fleet.names]


def stats(runner: ansible_runner.Runner) -> dict[str, dict[str, int]]:
    """playbook_on_stats as {kind: {host: count}} (ok, changed, failures, dark, rescued, skipped)."""
    for event in reversed(list(runner.events)):
        if event.get("event") == "playbook_on_stats":
            data = event["event_data"]
            return {k: data.get(k) or {} for k in ("ok", "changed", "failures", "dark", "rescued", "skipped")}
    raise AssertionError("no playbook_on_stats event")


def task_hosts(runner: ansible_runner.Runner, task: str, event: str = "runner_on_ok") -> set[str]:
    """Hosts that reached `event` for the task named `task`."""
    return {
        e["event_data"]["host"]
        for e in runner.events
        if e.get("event") == event and e["event_data"].get("task") == task
    }


def failure_summary(runner: ansible_runner.Runner) -> str:
    lines = []
    for e in runner.events:
        if e.get("event") in ("runner_on_failed", "runner_on_unreachable") and not e["event_data"].get(
            "ignore_errors"
        ):
            data = e["event_data"]
            msg = (data.get("res") or {}).get("msg", "")
            lines.append(f"{data.get('host')}: {data.get('task')}: {str(msg)[:300]}")
    return "\n".join(lines[-20:]) or runner.stdout.read()[-3000:]


def devices(fleet: FleetHandle) -> dict[str, dict[str, Any]]:
    """The fleet's device rows by device_name."""
    with psycopg.connect(fleet.stack_env["DATABASE_URL"], autocommit=True) as conn:
        cur = conn.execute(
            "SELECT device_name, device_uuid, current_version, status, timezone, metadata FROM devices"
            " WHERE device_uuid = ANY(%s)",
            ([h.device_uuid for h in fleet.hosts],),
        )
        names = ("device_name", "device_uuid", "current_version", "status", "timezone", "metadata")
        return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def progress(fleet: FleetHandle, version: str) -> dict[str, dict[str, Any]]:
    """device_updates of one version for the fleet's devices, by device_name."""
    with psycopg.connect(fleet.stack_env["DATABASE_URL"], autocommit=True) as conn:
        cur = conn.execute(
            "SELECT d.device_name, du.status, du.error_message, du.started_at, du.completed_at,"
            " du.scheduled_for FROM device_updates du JOIN devices d ON d.id = du.device_id"
            " JOIN updates u ON u.id = du.update_id WHERE u.version = %s AND d.device_uuid = ANY(%s)",
            (version, [h.device_uuid for h in fleet.hosts]),
        )
        names = ("status", "error_message", "started_at", "completed_at", "scheduled_for")
        return {row[0]: dict(zip(names, row[1:], strict=True)) for row in cur.fetchall()}


def device_state(fleet: FleetHandle, name: str) -> dict[str, Any]:
    """What the device itself says: current/previous links, its marker, identity, unit state."""
    script = (
        "import json, os, subprocess\n"
        "def link(p):\n"
        "    return os.readlink(p) if os.path.islink(p) else None\n"
        "cur = link('/opt/voice-client/current')\n"
        "marker = None\n"
        "if cur and os.path.exists('/opt/voice-client/current/.build-complete'):\n"
        "    marker = json.load(open('/opt/voice-client/current/.build-complete'))\n"
        "unit = subprocess.run(['systemctl', 'is-active', 'voice-client.service'],"
        " capture_output=True, text=True).stdout.strip()\n"
        "releases = sorted(os.listdir('/opt/voice-client/releases'))"
        " if os.path.isdir('/opt/voice-client/releases') else []\n"
        "complete = [r for r in releases"
        " if os.path.exists(f'/opt/voice-client/releases/{r}/.build-complete')]\n"
        "ident = open('/var/lib/voice-client/device_uuid').read().strip()"
        " if os.path.exists('/var/lib/voice-client/device_uuid') else None\n"
        "print(json.dumps({'current': cur, 'previous': link('/opt/voice-client/previous'), 'marker': marker,"
        " 'unit': unit, 'releases': releases, 'complete': complete, 'identity': ident}))\n"
    )
    proc = fleet.exec(name, "python3", "-c", script)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def set_activity(fleet: FleetHandle, name: str, *, busy: bool, minutes_ago: float | None) -> None:
    """Write the client's activity.json as the running client would (its pid, this boot)."""
    script = (
        "import json, datetime, subprocess, os\n"
        "pid = int(subprocess.run(['systemctl', 'show', '-p', 'MainPID', '--value', 'voice-client.service'],"
        " capture_output=True, text=True).stdout.strip() or 0)\n"
        "boot = open('/proc/sys/kernel/random/boot_id').read().strip()\n"
        f"ago = {minutes_ago!r}\n"
        "now = datetime.datetime.now(datetime.UTC)\n"
        "last = None if ago is None else now - datetime.timedelta(minutes=ago)\n"
        "last = last and last.isoformat(timespec='seconds')\n"
        f"doc = {{'busy': {busy!r}, 'state': 'recording' if {busy!r} else 'idle', 'pid': pid,"
        " 'boot_id': boot, 'last_activity': last, 'updated': now.isoformat(timespec='seconds')}\n"
        "path = '/var/lib/voice-client/activity.json'\n"
        "open(path + '.tmp', 'w').write(json.dumps(doc))\n"
        "owner = os.stat('/var/lib/voice-client')\n"
        "os.chown(path + '.tmp', owner.st_uid, owner.st_gid)\n"
        "os.replace(path + '.tmp', path)\n"
    )
    proc = fleet.exec(name, "python3", "-c", script)
    assert proc.returncode == 0, proc.stderr


class GatewayLog:
    """The registry gateway's access log from now on: the requests a play sent to the registry."""

    WRITES = ("POST", "PATCH", "PUT", "DELETE")

    def __init__(self, fleet: FleetHandle) -> None:
        self.path = stack_dir() / "log" / "nginx-access.log"
        self.start = self.path.stat().st_size if self.path.exists() else 0

    def requests(self) -> list[str]:
        """'METHOD /path' of every request logged since this object was made."""
        with self.path.open("rb") as handle:
            handle.seek(self.start)
            lines = handle.read().decode(errors="replace").splitlines()
        return [line.split('"')[1].rsplit(" ", 1)[0] for line in lines if line.count('"') >= 2]

    def writes(self) -> list[str]:
        return [r for r in self.requests() if r.split(" ", 1)[0] in self.WRITES]


def wait_until(what: str, check: Callable[[], bool], timeout: float = 300, every: float = 0.2) -> None:
    """Poll `check` until it holds; an AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")

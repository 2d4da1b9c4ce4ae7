"""Faults injected mid-rollout on the simulated fleet: nothing is lost, every host ends whole.

Each test breaks something real while a rollout runs (a device killed, its
network cut, the controller killed, its disk full, bad registry rows) and then
checks the registry rows and the devices: no partial release is ever active, a
re-run completes the job, and identities and configuration survive. The
failed-canary case lives in test_playbooks.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from playbook_support import (
    ROOT,
    device_state,
    devices,
    failure_summary,
    inventory_order,
    progress,
    run_playbook,
    variant,
    wait_until,
)
from stack import stack_dir  # tests/conftest.py puts tools/ on sys.path

if TYPE_CHECKING:
    from conftest import FleetHandle

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.stack, pytest.mark.slow]


def controller(fleet: FleetHandle, *argv: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """A controller command run from the repository with the fleet's environment, its output kept."""
    return subprocess.run(
        argv, cwd=ROOT, env=fleet.env(), capture_output=True, text=True, check=False, timeout=timeout
    )


def start_rollout(fleet: FleetHandle, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """ansible-playbook rollout.yml in its own process group (so the test can kill the controller)."""
    log = (tmp_path / "rollout.log").open("w")
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            *("-i", str(fleet.inventory), "playbooks/rollout.yml", "--limit", fleet.group),
            *args,
        ],
        cwd=ROOT,
        env=fleet.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def building(fleet: FleetHandle, name: str, version: str) -> bool:
    """True once the device is creating the venv of the new release (and has not finished)."""
    probe = fleet.exec(name, "sh", "-c", f"ls -d /opt/voice-client/releases/{version}-*/venv/bin 2>/dev/null")
    return probe.returncode == 0 and bool(probe.stdout.strip())


@pytest.fixture
def whole_fleet(provisioned: FleetHandle) -> Iterator[FleetHandle]:
    """The provisioned fleet; afterwards every device is up again and still itself."""
    yield provisioned
    provisioned.up()
    for host in provisioned.hosts:
        state = device_state(provisioned, host.name)
        assert state["identity"] == host.device_uuid, f"{host.name} lost its identity"
        assert state["marker"] is not None, f"{host.name}: 'current' is not a complete release"
        assert state["current"] == f"releases/{state['marker']['release']}"
        assert state["current"].removeprefix("releases/") in state["complete"]
        env = provisioned.exec(host.name, "stat", "-c", "%a %U:%G", "/etc/voice-client/voice-client.env")
        assert env.stdout.strip() == "640 root:voice-client", f"{host.name}: {env.stdout}{env.stderr}"
        settings = provisioned.exec(host.name, "cat", "/etc/voice-client/voice-client.env").stdout
        assert "SERVER_URL=http://vf-voice-server:8080" in settings.splitlines()


def test_a_device_killed_while_building_serves_its_old_release_then_completes(
    whole_fleet: FleetHandle, tmp_path: Path
) -> None:
    fleet = whole_fleet
    victim = fleet.names[-1]
    before = device_state(fleet, victim)
    source = variant("plain", "2.0.0")
    proc = start_rollout(
        fleet,
        tmp_path,
        "-e",
        f"rollout_source={source}",
        "-e",
        '{"rollout_batches": ["100%"]}',
        "-e",
        "rollout_max_fail_percentage=50",
    )
    try:
        wait_until(f"{victim} to build the venv of 2.0.0", lambda: building(fleet, victim, "2.0.0"))
        subprocess.run(["docker", "kill", victim], check=True, capture_output=True)
    finally:
        proc.wait(timeout=900)
    rows = progress(fleet, "2.0.0")
    assert rows[victim]["status"] == "failed"
    assert "unreachable" in rows[victim]["error_message"]
    assert {rows[n]["status"] for n in fleet.names if n != victim} == {"completed"}

    subprocess.run(["docker", "start", victim], check=True, capture_output=True)
    fleet.up()
    wait_until(
        f"{victim}'s client to run again", lambda: device_state(fleet, victim)["unit"] == "active", 120
    )
    meanwhile = device_state(fleet, victim)
    assert meanwhile["current"] == before["current"], "the half-built release was never activated"
    assert devices(fleet)[victim]["current_version"] == before["marker"]["version"]

    # One batch: the hosts done before end at their plan, the victim completes.
    extravars = {"rollout_source": str(source), "rollout_batches": ["100%"]}
    runner = run_playbook(fleet, "rollout.yml", tmp_path, extravars=extravars)
    assert runner.rc == 0, failure_summary(runner)
    assert progress(fleet, "2.0.0")[victim]["status"] == "completed"
    assert device_state(fleet, victim)["marker"]["version"] == "2.0.0"


def rollout_cutting_off(
    fleet: FleetHandle, tmp_path: Path, victim: str, *, version: str, batches: str, max_fail: int
) -> None:
    """Roll `version` out and cut `victim` off the network once it builds the venv; reconnect after."""
    source = variant("plain", version)
    proc = start_rollout(
        fleet,
        tmp_path,
        *("-e", f"rollout_source={source}", "-e", f'{{"rollout_batches": {batches}}}'),
        *("-e", f"rollout_max_fail_percentage={max_fail}"),
    )
    network = ["docker", "network"]
    try:
        wait_until(f"{victim} to start installing {version}", lambda: building(fleet, victim, version))
        subprocess.run([*network, "disconnect", fleet.prefix, victim], check=True, capture_output=True)
        assert proc.wait(timeout=900) != 0, "a host failed: the run must say so"
    finally:
        subprocess.run([*network, "connect", fleet.prefix, victim], check=False, capture_output=True)


def test_a_device_cut_off_mid_rollout_is_reported_and_the_others_finish(
    whole_fleet: FleetHandle, tmp_path: Path
) -> None:
    fleet = whole_fleet
    victim = fleet.names[0]
    before = device_state(fleet, victim)
    rollout_cutting_off(fleet, tmp_path, victim, version="2.1.0", batches='["100%"]', max_fail=50)
    rows = progress(fleet, "2.1.0")
    assert rows[victim]["status"] == "failed"
    assert "unreachable" in rows[victim]["error_message"]
    assert {rows[n]["status"] for n in fleet.names if n != victim} == {"completed"}
    after = device_state(fleet, victim)
    assert after["current"] == before["current"], "no partial release became active"
    assert after["unit"] == "active"


def test_a_rollout_stops_when_a_batch_fails_more_than_allowed(
    whole_fleet: FleetHandle, tmp_path: Path
) -> None:
    fleet = whole_fleet
    first, second, *rest = inventory_order(fleet)
    rollout_cutting_off(fleet, tmp_path, first, version="2.2.0", batches='[2, "100%"]', max_fail=20)
    rows = progress(fleet, "2.2.0")
    assert rows[first]["status"] == "failed"
    assert rows[second]["status"] == "completed"
    for name in rest:
        assert rows[name]["status"] == "pending", "a batch over max_fail_percentage stops the rollout"
        assert device_state(fleet, name)["marker"]["version"] != "2.2.0"


def test_a_killed_controller_is_resumed_and_no_host_is_updated_twice(
    whole_fleet: FleetHandle, tmp_path: Path
) -> None:
    fleet = whole_fleet
    source = variant("plain", "2.3.0")
    proc = start_rollout(
        fleet, tmp_path, "-e", f"rollout_source={source}", "-e", '{"rollout_batches": [1, 1, "100%"]}'
    )
    try:
        wait_until(
            "the canary to complete",
            lambda: any(r["status"] == "completed" for r in progress(fleet, "2.3.0").values()),
            timeout=600,
            every=1,
        )
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    first = progress(fleet, "2.3.0")
    done = {name: row for name, row in first.items() if row["status"] == "completed"}
    markers = {name: device_state(fleet, name)["marker"] for name in done}

    runner = run_playbook(
        fleet,
        "rollout.yml",
        tmp_path,
        extravars={"rollout_source": str(source), "rollout_batches": [1, 1, "100%"]},
    )
    assert runner.rc == 0, failure_summary(runner)
    final = progress(fleet, "2.3.0")
    assert {row["status"] for row in final.values()} == {"completed"}
    for name, row in done.items():
        assert final[name]["started_at"] == row["started_at"], f"{name} was installed again"
        assert device_state(fleet, name)["marker"] == markers[name], f"{name}'s release was rebuilt"
    assert {row["current_version"] for row in devices(fleet).values()} == {"2.3.0"}


def test_a_full_disk_while_the_wheels_arrive_fails_clearly_and_keeps_the_old_release(
    whole_fleet: FleetHandle, tmp_path: Path
) -> None:
    fleet = whole_fleet
    victim = fleet.names[1]
    before = device_state(fleet, victim)
    wheels = "/opt/voice-client/wheels/cp311-x86_64"
    # A 256 KiB filesystem over the device's wheel cache: the copy of the first wheel fills it.
    mounted = fleet.exec(victim, "mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", wheels)
    assert mounted.returncode == 0, mounted.stderr
    try:
        runner = run_playbook(
            fleet,
            "rollout.yml",
            tmp_path,
            extravars={"rollout_source": str(variant("plain", "2.4.0"))},
            limit=victim,
        )
        assert runner.rc != 0
    finally:
        fleet.exec(victim, "umount", wheels)
    row = progress(fleet, "2.4.0")[victim]
    assert row["status"] == "failed"
    # The wheels travel in one file and are unpacked, each hash-checked, into the full cache.
    assert 'step "receive wheels" failed' in row["error_message"], row["error_message"]
    assert "No space left on device" in row["error_message"]
    after = device_state(fleet, victim)
    assert after["current"] == before["current"]
    assert after["unit"] == "active"
    assert not [r for r in after["releases"] if r.startswith("2.4.0-")], "the failed build was removed"


@pytest.fixture
def bad_rows(whole_fleet: FleetHandle) -> Iterator[dict[str, str]]:
    """Registry rows an operator's fleet really has: a bad zone, no address, a duplicate name."""
    fleet = whole_fleet
    berlin = next(h for h in fleet.hosts if h.timezone == "Europe/Berlin")
    other = next(h for h in fleet.hosts if h.timezone != "Europe/Berlin")
    rows = {
        "bad_zone": str(uuid.uuid4()),
        "no_address": str(uuid.uuid4()),
        "duplicate": str(uuid.uuid4()),
    }
    meta = {"fleet": fleet.prefix, "simulated": True}
    with psycopg.connect(fleet.stack_env["DATABASE_URL"], autocommit=True) as conn:
        insert = (
            "INSERT INTO devices (device_uuid, device_name, timezone, status, ansible_host, metadata)"
            " VALUES (%s, %s, %s, 'online', %s, %s)"
        )
        conn.execute(
            insert,
            (
                rows["bad_zone"],
                "mars-rover",
                "Mars/Olympus_Mons",
                "127.0.0.1",
                json.dumps({**meta, "ansible_port": other.port}),
            ),
        )
        conn.execute(insert, (rows["no_address"], "lost-in-the-attic", "UTC", None, json.dumps(meta)))
        conn.execute(
            insert,
            (
                rows["duplicate"],
                berlin.name,
                "Asia/Tokyo",
                "127.0.0.1",
                json.dumps({**meta, "ansible_port": 9}),
            ),
        )
    yield rows
    with psycopg.connect(fleet.stack_env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("DELETE FROM devices WHERE device_uuid = ANY(%s)", (list(rows.values()),))


def test_bad_registry_rows_are_reported_and_the_good_hosts_proceed(
    whole_fleet: FleetHandle, bad_rows: dict[str, str], tmp_path: Path
) -> None:
    fleet = whole_fleet
    runner = run_playbook(
        fleet,
        "scheduled.yml",
        tmp_path,
        extravars={"rollout_source": str(variant("plain", "2.5.0")), "scheduled_now": "2026-11-23T01:30:00Z"},
    )
    assert runner.rc == 0, failure_summary(runner)
    output = runner.stdout.read()
    assert bad_rows["no_address"] in output, "the row without an address is named in a warning"
    assert "mars-rover: skipped" in output, "the invalid timezone is reported"
    berlin = {h.name for h in fleet.hosts if h.timezone == "Europe/Berlin"}
    rows = progress(fleet, "2.5.0")
    assert {n for n, r in rows.items() if r["status"] == "completed"} == berlin
    with psycopg.connect(fleet.stack_env["DATABASE_URL"], autocommit=True) as conn:
        bad = dict(
            conn.execute(
                "SELECT d.device_uuid, du.status FROM devices d"
                " LEFT JOIN device_updates du ON du.device_id = d.id"
                " AND du.update_id = (SELECT id FROM updates WHERE version = '2.5.0')"
                " WHERE d.device_uuid = ANY(%s)",
                (list(bad_rows.values()),),
            ).fetchall()
        )
    assert bad[bad_rows["bad_zone"]] is None, "never scheduled at a guessed time"
    assert bad[bad_rows["no_address"]] is None
    assert bad[bad_rows["duplicate"]] == "pending", (
        "the duplicate is a host of its own, waiting for its window"
    )


def test_a_registry_that_stays_down_fails_no_device_and_the_next_run_corrects_the_rows(
    whole_fleet: FleetHandle, tmp_path: Path
) -> None:
    fleet = whole_fleet
    name = fleet.names[0]
    before = device_state(fleet, name)
    # The inventory read once into a cache, so that the play starts while the registry is down.
    inventory = tmp_path / "inventory"
    shutil.copytree(fleet.inventory, inventory)
    config = next(inventory.glob("*supabase.yml"))
    config.write_text(
        config.read_text()
        + f"cache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: {tmp_path / 'cache'}\n"
        + "cache_timeout: 3600\n"
    )
    listed = controller(
        fleet, str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inventory), "--list"
    )
    assert listed.returncode == 0 and name in listed.stdout, listed.stderr[-2000:]
    nginx = int((stack_dir() / "run" / "nginx.pid").read_text())
    os.kill(nginx, signal.SIGTERM)  # the gateway: PostgREST and PostgreSQL stay up behind it
    try:
        wait_until("the gateway to stop", lambda: not Path(f"/proc/{nginx}").exists(), timeout=30)
        source = variant("plain", "2.6.0")
        down = controller(
            fleet,
            str(Path(sys.executable).parent / "ansible-playbook"),
            *("-i", str(inventory), "playbooks/rollout.yml", "--limit", name),
            *("-e", f"rollout_source={source}"),
        )
    finally:
        up = controller(fleet, sys.executable, str(ROOT / "tools" / "stack.py"), "up")
        assert up.returncode == 0, up.stderr
    assert down.returncode == 0, f"a registry outage failed the device:\n{down.stdout[-4000:]}"
    assert "WARNING: the registry was not updated" in down.stdout
    installed = device_state(fleet, name)["marker"]
    assert installed["version"] == "2.6.0", "the device runs the new release"
    rows = progress(fleet, "2.6.0")
    assert name not in rows or rows[name]["status"] != "failed", "never recorded failed: it runs 2.6.0"
    assert devices(fleet)[name]["current_version"] == before["marker"]["version"], "nothing was written"

    runner = run_playbook(
        fleet, "rollout.yml", tmp_path, extravars={"rollout_source": str(source)}, limit=name
    )
    assert runner.rc == 0, failure_summary(runner)
    assert progress(fleet, "2.6.0")[name]["status"] == "completed", "the next run corrects the row"
    assert devices(fleet)[name]["current_version"] == "2.6.0"
    assert device_state(fleet, name)["marker"] == installed, "only the rows were written: no rebuild"

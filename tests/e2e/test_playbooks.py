"""The operators' plays on the simulated fleet, driven by ansible-runner as AWX drives them.

Real systemd containers over real SSH, the real registry stack; assertions read
the runner's events, the registry rows and the devices themselves. In file order
the tests are an operator's week (provision, roll out, re-run, a failed canary,
the scheduled play, an urgent update, a rollback); each one also passes alone:
it first brings the fleet to the release it starts from (`ensure_release`), which
costs one read per device when the earlier tests already did.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from playbook_support import (
    ROOT,
    GatewayLog,
    device_state,
    devices,
    failure_summary,
    inventory_order,
    progress,
    run_playbook,
    set_activity,
    stats,
    task_hosts,
    variant,
)

if TYPE_CHECKING:
    from conftest import FleetHandle

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.stack, pytest.mark.slow]

# The fleet's zones by index (tools/fleet.py): 01 Europe/Berlin, 02 America/New_York,
# 03 Asia/Kolkata, 04 Australia/Sydney. At 01:30 UTC on 23 Nov 2026 it is 02:30 in
# Berlin (its window is open) and 20:30, 07:00 and 12:30 in the others.
WINDOW_NOW = "2026-11-23T01:30:00Z"
CHECKOUT_VERSION = "1.0.0"


def ensure_release(fleet: FleetHandle, tmp_path, version: str, names: list[str] | None = None) -> None:
    """Every device of `names` (all by default) runs `version`, this checkout's or a plain variant's.

    What the test before it in the file leaves; run alone, the test makes it itself.
    """
    stale = [n for n in names or fleet.names if device_state(fleet, n)["marker"]["version"] != version]
    if not stale:
        return
    playbook, extravars = "site.yml", {"rollout_allow_downgrade": True}
    if version != CHECKOUT_VERSION:
        playbook = "rollout.yml"
        extravars |= {"rollout_source": str(variant("plain", version))}
    runner = run_playbook(
        fleet, playbook, tmp_path / f"ensure-{version}", extravars=extravars, limit=",".join(stale)
    )
    assert runner.rc == 0, f"bringing {stale} to {version}: {failure_summary(runner)}"


def test_site_provisions_and_registers_every_device(provisioned: FleetHandle, tmp_path) -> None:
    # Also after the fault tests have moved the fleet on: a deliberate downgrade
    # brings back this checkout (without it, site.yml keeps newer releases).
    runner = run_playbook(provisioned, "site.yml", tmp_path, extravars={"rollout_allow_downgrade": True})
    assert runner.rc == 0, failure_summary(runner)
    rows = devices(provisioned)
    assert sorted(rows) == provisioned.names
    for host in provisioned.hosts:
        state = device_state(provisioned, host.name)
        assert state["identity"] == host.device_uuid, "the flashed identity was kept"
        assert state["marker"]["version"] == "1.0.0"
        assert state["current"] == f"releases/{state['marker']['release']}"
        assert state["unit"] == "active"
        assert rows[host.name]["current_version"] == "1.0.0"
        assert rows[host.name]["status"] == "online"
        # What the registration took from the plan's device read and the release, not read again.
        assert rows[host.name]["metadata"]["release"] == state["marker"]["release"]
        assert rows[host.name]["metadata"]["hardware_model"] == "unknown", "no device tree in a container"


def test_rollout_in_batches_records_every_step(provisioned: FleetHandle, tmp_path) -> None:
    ensure_release(provisioned, tmp_path, CHECKOUT_VERSION)
    source = variant("plain", "1.1.0")
    runner = run_playbook(
        provisioned,
        "rollout.yml",
        tmp_path,
        extravars={"rollout_source": str(source), "rollout_batches": [1, 2, "100%"]},
    )
    assert runner.rc == 0, failure_summary(runner)
    # One registry request when the run starts (pending), then two per batch (installing, outcomes).
    writes = task_hosts(runner, "Write the batch's records (no_log, the task holds the service key)")
    assert len(writes) >= 1
    recorded = [
        e
        for e in runner.events
        if e.get("event") == "runner_on_ok"
        and e["event_data"].get("task")
        == "Write the batch's records (no_log, the task holds the service key)"
    ]
    assert len(recorded) == 1 + 2 * 3, f"{len(recorded)} registry writes for 3 batches"
    rows = progress(provisioned, "1.1.0")
    assert {name: row["status"] for name, row in rows.items()} == dict.fromkeys(
        provisioned.names, "completed"
    )
    assert all(row["started_at"] and row["completed_at"] >= row["started_at"] for row in rows.values())
    assert {row["current_version"] for row in devices(provisioned).values()} == {"1.1.0"}
    report = json.loads((ROOT / "reports" / "latest.json").read_text())
    assert [b["size"] for b in report["batches"] if b["ran"]] == [1, 2, len(provisioned.names) - 3]
    assert report["totals"]["completed"] == len(provisioned.names)


def test_rerunning_the_rollout_changes_nothing(provisioned: FleetHandle, tmp_path) -> None:
    ensure_release(provisioned, tmp_path, "1.1.0")
    before = progress(provisioned, "1.1.0")
    log = GatewayLog(provisioned)
    runner = run_playbook(
        provisioned,
        "rollout.yml",
        tmp_path,
        extravars={"rollout_source": str(variant("plain", "1.1.0")), "rollout_batches": [1, 2, "100%"]},
    )
    assert runner.rc == 0, failure_summary(runner)
    changed = {host: n for host, n in stats(runner)["changed"].items() if n}
    assert changed == {}, f"a re-run changed something: {changed}"
    assert progress(provisioned, "1.1.0") == before, "the registry rows were rewritten"
    assert log.writes() == [], "a clean re-run wrote to the registry"
    # Every device ended at its plan: one read of the device, no provisioning, no release
    # (meta: end_host reports no per-host result, so the reads and the absent steps tell).
    read = "Read the device once (identity, releases, stamp, managed files, unit, platform)"
    assert task_hosts(runner, read) == set(provisioned.names)
    for task in (
        "Provision the device (packages, audio, service, legacy adoption)",
        "Build and activate the release",
    ):
        assert not task_hosts(runner, task, "playbook_on_task_start") and not task_hosts(runner, task)


def test_a_failed_canary_stops_the_rollout_and_touches_no_other_host(
    provisioned: FleetHandle, tmp_path
) -> None:
    ensure_release(provisioned, tmp_path, "1.1.0")
    before = {name: device_state(provisioned, name) for name in provisioned.names}
    runner = run_playbook(
        provisioned,
        "rollout.yml",
        tmp_path,
        extravars={"rollout_source": str(variant("crash", "1.2.0+crash")), "rollout_batches": [1, "100%"]},
    )
    assert runner.rc != 0
    rows = progress(provisioned, "1.2.0+crash")
    canary = inventory_order(provisioned)[0]
    assert [name for name, row in rows.items() if row["status"] != "pending"] == [canary], rows
    assert rows[canary]["status"] == "rolled_back"
    assert "health gate" in rows[canary]["error_message"]
    assert "did not stay up" in rows[canary]["error_message"]
    after = device_state(provisioned, canary)
    assert after["current"] == before[canary]["current"], "the canary runs its previous release again"
    assert after["unit"] == "active"
    for name in set(provisioned.names) - {canary}:
        assert rows[name]["status"] == "pending" and rows[name]["started_at"] is None
        assert device_state(provisioned, name) == before[name], f"{name} was touched"
    assert devices(provisioned)[canary]["current_version"] == "1.1.0"


def test_scheduled_play_updates_exactly_the_hosts_in_their_window(provisioned: FleetHandle, tmp_path) -> None:
    ensure_release(provisioned, tmp_path, "1.1.0")
    runner = run_playbook(
        provisioned,
        "scheduled.yml",
        tmp_path,
        extravars={"rollout_source": str(variant("plain", "1.3.0")), "scheduled_now": WINDOW_NOW},
    )
    assert runner.rc == 0, failure_summary(runner)
    in_window = {h.name for h in provisioned.hosts if h.timezone == "Europe/Berlin"}
    assert in_window, "the fleet has no Berlin device"
    rows = progress(provisioned, "1.3.0")
    assert {n for n, r in rows.items() if r["status"] == "completed"} == in_window
    outside = set(provisioned.names) - in_window
    for name in outside:
        assert rows[name]["status"] == "pending"
        assert rows[name]["scheduled_for"] is not None, "the row says when its window opens"
        assert device_state(provisioned, name)["marker"]["version"] == "1.1.0"
    versions = {name: row["current_version"] for name, row in devices(provisioned).items()}
    assert {versions[n] for n in in_window} == {"1.3.0"}
    assert {versions[n] for n in outside} == {"1.1.0"}


def test_an_urgent_update_waits_for_idle_devices(provisioned: FleetHandle, tmp_path) -> None:
    busy, recent, *idle = provisioned.names
    if any(device_state(provisioned, n)["marker"]["version"] == "1.4.0" for n in provisioned.names):
        ensure_release(provisioned, tmp_path, "1.1.0")  # a run before this one installed 1.4.0
    set_activity(provisioned, busy, busy=True, minutes_ago=0)
    set_activity(provisioned, recent, busy=False, minutes_ago=10)
    for name in idle:
        set_activity(provisioned, name, busy=False, minutes_ago=120)
    pids = {
        name: provisioned.exec(
            name, "systemctl", "show", "-p", "MainPID", "--value", "voice-client"
        ).stdout.strip()
        for name in (busy, recent)
    }
    try:
        runner = run_playbook(
            provisioned,
            "scheduled.yml",
            tmp_path,
            extravars={"rollout_source": str(variant("plain", "1.4.0")), "rollout_update_type": "urgent"},
        )
        assert runner.rc == 0, failure_summary(runner)
        rows = progress(provisioned, "1.4.0")
        assert {n for n, r in rows.items() if r["status"] == "completed"} == set(idle)
        for name in (busy, recent):
            assert name not in rows or rows[name]["status"] == "pending"
            state = device_state(provisioned, name)
            assert state["marker"]["version"] != "1.4.0"
            pid = provisioned.exec(name, "systemctl", "show", "-p", "MainPID", "--value", "voice-client")
            assert pid.stdout.strip() == pids[name], f"{name} was restarted while in use"
    finally:
        for name in provisioned.names:
            set_activity(provisioned, name, busy=False, minutes_ago=None)


def test_rollback_restores_the_previous_release_and_its_venv(provisioned: FleetHandle, tmp_path) -> None:
    on_urgent = [n for n in provisioned.names if device_state(provisioned, n)["marker"]["version"] == "1.4.0"]
    if not on_urgent:  # the urgent update's test did not run before this one
        ensure_release(provisioned, tmp_path, "1.1.0", provisioned.names[-1:])
        ensure_release(provisioned, tmp_path, "1.4.0", provisioned.names[-1:])
        on_urgent = provisioned.names[-1:]
    name = on_urgent[0]
    before = device_state(provisioned, name)
    assert before["previous"], "the host has a previous release"
    runner = run_playbook(provisioned, "rollback.yml", tmp_path, limit=name)
    assert runner.rc == 0, failure_summary(runner)
    after = device_state(provisioned, name)
    assert after["current"] == before["previous"]
    assert after["previous"] == before["current"]
    assert after["identity"] == before["identity"]
    version = after["marker"]["version"]
    probe = provisioned.exec(
        name,
        "/opt/voice-client/current/venv/bin/python",
        "-c",
        "import numpy, opuslib, pyaudio, voice_client; print(voice_client.version())",
    )
    assert probe.stdout.strip() == version, probe.stderr
    assert devices(provisioned)[name]["current_version"] == version
    assert progress(provisioned, "1.4.0")[name]["status"] == "rolled_back"

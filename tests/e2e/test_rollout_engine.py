"""The rollout engine on the simulated fleet: plan once, act only where the device differs.

What voice_update adds to the safety the other e2e tests prove: a hand-edited
managed file is found by the plan and repaired by the next rollout; a changed
client under an unchanged version is a new release (its unchanged packages
reused from the previous one); an older version is refused by rollouts and kept
off by site.yml unless asked for; an `updates` row no controller can install is
reported and skipped by the hourly play; two controllers never update one device
at once (the second waits for the device's lock, then fails naming the holder).
Versions 3.x are newer than anything
the other e2e files roll out; the module's fixture puts the fleet back on this
checkout afterwards, so the files pass alone and in any order.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from playbook_support import (
    ROOT,
    VARIANTS,
    GatewayLog,
    device_state,
    failure_summary,
    progress,
    run_playbook,
    task_hosts,
    variant,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conftest import FleetHandle

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.stack, pytest.mark.slow]

UNIT = "/etc/systemd/system/voice-client.service"
ENV = "/etc/voice-client/voice-client.env"
BIN = Path(sys.executable).parent
BUILD_TASK = "Build the release, verify it and activate it behind the health gate (one task)"
STAMP_AND_LOCK_TASK = "Record the provisioning stamp and give the update lock back (one module run)"
WHY_TASK = "Say why the device is provisioned"


@pytest.fixture(scope="module")
def engine_fleet(provisioned: FleetHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetHandle]:
    yield provisioned
    # Back on this checkout's release (deliberately older than 3.x) for whatever runs next.
    runner = run_playbook(
        provisioned, "site.yml", tmp_path_factory.mktemp("reset"), extravars={"rollout_allow_downgrade": True}
    )
    assert runner.rc == 0, failure_summary(runner)


def sha256(fleet: FleetHandle, name: str, path: str) -> str:
    proc = fleet.exec(name, "sha256sum", path)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()[0]


def ok_results(runner, task: str) -> dict[str, dict]:
    return {
        e["event_data"]["host"]: e["event_data"].get("res") or {}
        for e in runner.events
        if e.get("event") == "runner_on_ok" and e["event_data"].get("task") == task
    }


def invocation(fleet: FleetHandle, name: str) -> str:
    """The client's current run (systemd's InvocationID changes at every start)."""
    return fleet.exec(
        name, "systemctl", "show", "-p", "InvocationID", "--value", "voice-client.service"
    ).stdout.strip()


def test_a_hand_edited_unit_and_settings_file_are_repaired(engine_fleet: FleetHandle, tmp_path: Path) -> None:
    fleet = engine_fleet
    edited, other, *_ = fleet.names
    # Bring every device onto one release first (this checkout), so only the edit differs; one
    # batch throughout (the batches are not what this test is about).
    one_batch = {"rollout_batches": ["100%"]}
    first = run_playbook(
        fleet, "rollout.yml", tmp_path, extravars={"rollout_allow_downgrade": True, **one_batch}
    )
    assert first.rc == 0, failure_summary(first)
    good_unit = sha256(fleet, other, UNIT)
    assert (
        fleet.exec(edited, "sh", "-c", f"echo '# tuned by hand' >> {UNIT} && chmod 0644 {ENV}").returncode
        == 0
    )
    assert sha256(fleet, edited, UNIT) != good_unit
    started = {name: invocation(fleet, name) for name in (edited, other)}

    log = GatewayLog(fleet)
    runner = run_playbook(fleet, "rollout.yml", tmp_path, extravars=one_batch)
    assert runner.rc == 0, failure_summary(runner)
    # The repaired unit runs at once: that client (its release is active) is restarted, no other.
    assert invocation(fleet, edited) != started[edited], "the repaired device's client was not restarted"
    assert invocation(fleet, other) == started[other], "a device with nothing repaired was restarted"
    why = ok_results(runner, WHY_TASK)
    assert set(why) == {edited}, f"only the edited device is provisioned, not {sorted(why)}"
    assert UNIT in why[edited]["msg"] and ENV in why[edited]["msg"], why[edited]["msg"]
    assert sha256(fleet, edited, UNIT) == good_unit, "the unit is back as the role renders it"
    mode = fleet.exec(edited, "stat", "-c", "%a %U:%G", ENV).stdout.strip()
    assert mode == "640 root:voice-client"
    assert not task_hosts(runner, BUILD_TASK), "no release was built: only the files differed"
    assert log.writes() == [], "the registry already agreed with every device"

    again = run_playbook(fleet, "rollout.yml", tmp_path, extravars=one_batch)
    assert again.rc == 0, failure_summary(again)
    assert not ok_results(again, WHY_TASK), (
        "the repair is recorded in the stamp: the next run ends at the plan"
    )


LEGACY_READ_TASK = "Read the legacy client's unit"
LEGACY_CODE = "/home/pi/javia_client"


def test_only_a_device_with_a_trace_of_the_legacy_client_is_searched_for_it(
    engine_fleet: FleetHandle, tmp_path: Path
) -> None:
    # The plan's device read looks for what voice_legacy would: a device without any of it
    # skips that role's reads; one with the legacy client's code is adopted as before.
    fleet = engine_fleet
    traced, plain, *_ = fleet.names
    made = fleet.exec(
        traced, "sh", "-c", f"mkdir -p {LEGACY_CODE} && echo 'print(1)' > {LEGACY_CODE}/client.py"
    )
    assert made.returncode == 0, made.stderr
    try:
        runner = run_playbook(
            fleet,
            "rollout.yml",
            tmp_path,
            extravars={"voice_update_force_provision": True, "rollout_batches": ["100%"]},
            limit=f"{traced},{plain}",
        )
        assert runner.rc == 0, failure_summary(runner)
        assert set(ok_results(runner, WHY_TASK)) == {traced, plain}, "both devices were provisioned"
        assert task_hosts(runner, LEGACY_READ_TASK) == {traced}
        report = ok_results(runner, "Report the legacy client")
        assert set(report) == {traced} and "legacy Javia client found for pi" in report[traced]["msg"], report
    finally:
        fleet.exec(traced, "rm", "-rf", LEGACY_CODE)


def test_a_changed_client_under_the_same_version_is_a_new_release(
    engine_fleet: FleetHandle, tmp_path: Path
) -> None:
    fleet = engine_fleet
    name = fleet.names[0]
    first = variant("plain", "3.0.0")
    runner = run_playbook(
        fleet, "rollout.yml", tmp_path, extravars={"rollout_source": str(first)}, limit=name
    )
    assert runner.rc == 0, failure_summary(runner)
    before = device_state(fleet, name)
    assert before["marker"]["version"] == "3.0.0"

    changed = VARIANTS / "3.0.0-changed"
    shutil.rmtree(changed, ignore_errors=True)
    shutil.copytree(first, changed)
    init = changed / "src" / "voice_client" / "__init__.py"
    init.write_text(init.read_text() + "\n# a fix shipped without a version bump\n")
    runner = run_playbook(
        fleet, "rollout.yml", tmp_path, extravars={"rollout_source": str(changed)}, limit=name
    )
    assert runner.rc == 0, failure_summary(runner)
    after = device_state(fleet, name)
    assert after["marker"]["version"] == "3.0.0"
    assert after["marker"]["release"] != before["marker"]["release"], (
        "reported unchanged: the change was lost"
    )
    assert after["marker"]["client_source_sha256"] != before["marker"]["client_source_sha256"]
    assert after["previous"] == before["current"]
    assert progress(fleet, "3.0.0")[name]["status"] == "completed"
    verdict = ok_results(runner, BUILD_TASK)[name]
    # Nothing after the release touched the device: its activation gave the update lock back,
    # and the run's last module run (stamp and lock) did not happen.
    assert verdict["activation"]["lock_released"] is True, verdict["activation"]
    assert name not in ok_results(runner, STAMP_AND_LOCK_TASK), "a module run only to give the lock back"
    assert fleet.exec(name, "test", "-e", "/run/voice-client-update.lock").returncode != 0
    built = verdict["build"]
    assert built["installed"] == ["voice-client"], "only the changed wheel is installed"
    assert "numpy" in built["reused"], "the unchanged packages come from the previous release"
    numpy_init = "venv/lib/python3.11/site-packages/numpy/__init__.py"
    same_inode = fleet.exec(
        name,
        "stat",
        "-c",
        "%i",
        f"/opt/voice-client/releases/{before['marker']['release']}/{numpy_init}",
        f"/opt/voice-client/releases/{after['marker']['release']}/{numpy_init}",
    )
    inodes = same_inode.stdout.split()
    assert len(inodes) == 2 and inodes[0] == inodes[1], same_inode.stdout + same_inode.stderr


def test_an_older_version_is_refused_and_site_keeps_the_newer_release(
    engine_fleet: FleetHandle, tmp_path: Path
) -> None:
    fleet = engine_fleet
    name = fleet.names[0]
    newer = variant("plain", "3.1.0")
    runner = run_playbook(
        fleet, "rollout.yml", tmp_path, extravars={"rollout_source": str(newer)}, limit=name
    )
    assert runner.rc == 0, failure_summary(runner)
    before = device_state(fleet, name)

    older = variant("plain", "2.9.0")
    refused = run_playbook(
        fleet, "rollout.yml", tmp_path, extravars={"rollout_source": str(older)}, limit=name
    )
    assert refused.rc != 0, "a downgrade must not pass silently"
    assert "2.9.0 is older than 3.1.0" in failure_summary(refused)
    assert device_state(fleet, name) == before
    with psycopg.connect(fleet.stack_env["DATABASE_URL"], autocommit=True) as conn:
        rows = conn.execute("SELECT count(*) FROM updates WHERE version = '2.9.0'").fetchone()[0]
    assert rows == 0, "a refused downgrade must not become the newest update"

    site = run_playbook(fleet, "site.yml", tmp_path, limit=name)
    assert site.rc == 0, failure_summary(site)
    assert device_state(fleet, name)["marker"]["version"] == "3.1.0", "site.yml never takes a device back"

    deliberate = run_playbook(
        fleet,
        "rollout.yml",
        tmp_path,
        extravars={"rollout_source": str(older), "rollout_allow_downgrade": True},
        limit=name,
    )
    assert deliberate.rc == 0, failure_summary(deliberate)
    assert device_state(fleet, name)["marker"]["version"] == "2.9.0"


def test_the_hourly_play_skips_an_update_no_controller_can_install(
    engine_fleet: FleetHandle, tmp_path: Path
) -> None:
    fleet = engine_fleet
    # A path no controller has, and a published manifest that is not in the store (any
    # fetch or verification failure of a published row is skipped the same way).
    missing = f"{fleet.stack_env['SUPABASE_URL']}/store/{{platform}}/9.9.8/manifest.json?sequence=1"
    with psycopg.connect(fleet.stack_env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO updates (version, update_type, description, package_url, created_at) VALUES"
            " ('9.9.9', 'scheduled', 'e2e: unresolvable', '/nowhere/voice_client', now() + interval '1 day'),"
            " ('9.9.8', 'scheduled', 'e2e: unverifiable', %s, now() + interval '1 day')",
            (missing,),
        )
    try:
        runner = run_playbook(
            fleet, "scheduled.yml", tmp_path, extravars={"scheduled_now": "2026-11-23T01:30:00Z"}
        )
        assert runner.rc == 0, failure_summary(runner)
        skipped = ok_results(
            runner, "Report the newer updates no controller can install from their row (skipped)"
        )
        said = " ".join(str(res) for res in skipped.values())
        assert "update 9.9.9 is skipped" in said, said
        assert "update 9.9.8 is skipped" in said and "HTTP 404" in said, "the reason is said: " + said
        for version in ("9.9.9", "9.9.8"):
            assert progress(fleet, version) == {}, f"nothing was scheduled from {version}"
    finally:
        with psycopg.connect(fleet.stack_env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("DELETE FROM updates WHERE version IN ('9.9.9', '9.9.8')")


def publish(fleet: FleetHandle, tmp_path: Path, version: str) -> tuple[dict, Path]:
    """A plain variant of `version` published (tools/publish.py) to the stack's store, which the
    controller reaches through the gateway at <SUPABASE_URL>/store; (its output, the public key)."""
    key = tmp_path / "publisher.key"
    tool = [sys.executable, str(ROOT / "tools" / "publish.py")]
    made = subprocess.run([*tool, "keygen", "--out", str(key)], capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    published = subprocess.run(
        [
            *tool,
            *("release", "--key", str(key), "--store", fleet.stack_env["VF_STORE_DIR"]),
            *("--base-url", f"{fleet.stack_env['SUPABASE_URL']}/store", "--platform", "cp311-x86_64"),
            *("--source", str(variant("plain", version)), "--json"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=fleet.env(),
        timeout=900,
    )
    assert published.returncode == 0, published.stderr
    return json.loads(published.stdout), Path(f"{key}.pub")


def test_push_installs_a_published_release_as_the_pull_devices_get_it(
    engine_fleet: FleetHandle, tmp_path: Path
) -> None:
    fleet = engine_fleet
    name = fleet.names[0]  # after the version tests: back on 2.9.0, upgraded here
    out, public = publish(fleet, tmp_path, "3.5.0")
    package_url = out["update"]["package_url"]
    assert package_url.startswith("http://127.0.0.1:") and "{platform}" in package_url
    try:
        runner = run_playbook(
            fleet,
            "rollout.yml",
            tmp_path,
            extravars={"rollout_source": package_url, "rollout_publisher_public_key_file": str(public)},
            limit=name,
        )
        assert runner.rc == 0, failure_summary(runner)
        marker = device_state(fleet, name)["marker"]
        assert marker["version"] == "3.5.0"
        assert marker["release"] == out["manifests"][0]["release_id"], (
            "push built the release pull devices get"
        )
        assert progress(fleet, "3.5.0")[name]["status"] == "completed"
        with psycopg.connect(fleet.stack_env["DATABASE_URL"], autocommit=True) as conn:
            row = conn.execute("SELECT package_url FROM updates WHERE version = '3.5.0'").fetchone()
        assert row == (package_url,), "the row still names the published manifest any controller can fetch"
    finally:
        with psycopg.connect(fleet.stack_env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("DELETE FROM updates WHERE version = '3.5.0'")


def test_two_controllers_never_update_one_device_at_once(engine_fleet: FleetHandle, tmp_path: Path) -> None:
    fleet = engine_fleet
    name = fleet.names[-1]
    lock = "/run/voice-client-update.lock"
    assert fleet.exec(name, "test", "-e", lock).returncode != 0, "no run holds the device yet"
    source = variant("plain", "3.2.0")
    args = ["-e", f"rollout_source={source}", "-e", "voice_update_lock_wait=5", "--limit", name]
    command = [str(BIN / "ansible-playbook"), "-i", str(fleet.inventory), "playbooks/rollout.yml", *args]
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    # The first run holds the device through a bake long enough for the second to reach the lock
    # whatever the machine's load (started together, the second could find the update done).
    first = subprocess.Popen(
        [*command, "-e", "voice_update_bake_seconds=60"],
        cwd=ROOT,
        env=fleet.env(),
        stdout=logs[0].open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            f"the first run to lock {name}", lambda: fleet.exec(name, "test", "-e", lock).returncode == 0
        )
        second = subprocess.run(
            command,
            check=False,
            cwd=ROOT,
            env=fleet.env(),
            stdout=logs[1].open("w"),
            stderr=subprocess.STDOUT,
            timeout=900,
        )
    finally:
        first_code = first.wait(timeout=900)
    outputs = "\n".join(log.read_text() for log in logs)
    assert (first_code, second.returncode != 0) == (0, True), (
        f"the first run updates, the second stands down: {first_code}, {second.returncode}\n{outputs[-3000:]}"
    )
    assert "another run is updating this device" in logs[1].read_text() and lock in logs[1].read_text()
    assert device_state(fleet, name)["marker"]["version"] == "3.2.0"
    assert progress(fleet, "3.2.0")[name]["status"] == "completed", "the run that stood down wrote nothing"
    assert fleet.exec(name, "test", "-e", lock).returncode != 0, "the lock is given back when the run ends"


def test_a_device_that_lost_power_mid_switch_repairs_itself_at_start(
    engine_fleet: FleetHandle, tmp_path: Path
) -> None:
    fleet = engine_fleet
    name = fleet.names[1]
    runner = run_playbook(
        fleet,
        "rollout.yml",
        tmp_path,
        extravars={"rollout_source": str(variant("plain", "3.3.0"))},
        limit=name,
    )
    assert runner.rc == 0, failure_summary(runner)
    before = device_state(fleet, name)
    assert before["previous"] in [f"releases/{r}" for r in before["complete"]], before
    # A release directory whose marker never reached the disk, and then a link to nothing.
    for broken in ("releases/3.4.0-poweroff", "releases/gone-missing"):
        if broken.endswith("poweroff"):
            assert fleet.exec(name, "mkdir", "-p", f"/opt/voice-client/{broken}/venv").returncode == 0
        link = fleet.exec(name, "ln", "-sfn", broken, "/opt/voice-client/current")
        assert link.returncode == 0, link.stderr
        restart = fleet.exec(name, "systemctl", "restart", "voice-client.service")
        assert restart.returncode == 0, restart.stderr
        after = device_state(fleet, name)
        assert after["current"] == before["previous"], f"{broken}: {after}"
        assert after["unit"] == "active"
        journal = fleet.exec(
            name, "journalctl", "-u", "voice-client.service", "-n", "50", "--no-pager"
        ).stdout
        assert "voice-client-repair" in journal and broken.split("/")[1] in journal
    fleet.exec(name, "rm", "-rf", "/opt/voice-client/releases/3.4.0-poweroff")
    # Its restarts count against the unit's start limit: leave the device as it found it.
    fleet.exec(name, "systemctl", "reset-failed", "voice-client.service")


def test_a_release_that_hangs_after_the_gate_is_caught_by_the_bake_and_rolled_back(
    engine_fleet: FleetHandle, tmp_path: Path
) -> None:
    fleet = engine_fleet
    name = fleet.names[2]  # a device no other test of this file restarts
    before = device_state(fleet, name)
    runner = run_playbook(
        fleet,
        "rollout.yml",
        tmp_path,
        extravars={"rollout_source": str(variant("hang", "3.6.0+hang")), "rollout_bake_seconds": 60},
        limit=name,
    )
    assert runner.rc != 0, "a release the watchdog kills must not stay"
    row = progress(fleet, "3.6.0+hang")[name]
    assert row["status"] == "rolled_back", row
    assert 'step "bake" failed' in row["error_message"] and "restarts" in row["error_message"], row
    after = device_state(fleet, name)
    assert after["current"] == before["current"], "back on the release that ran before"
    assert after["unit"] == "active"
    journal = fleet.exec(name, "journalctl", "-u", "voice-client.service", "--no-pager", "-n", "200").stdout
    assert "Watchdog timeout" in journal or "watchdog" in journal.lower(), "systemd's watchdog killed it"

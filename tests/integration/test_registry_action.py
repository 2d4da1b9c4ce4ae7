"""The voice_registry action plugin against the real local stack (PostgREST + PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from local_play import run_local_play

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]


def run_task(
    tmp_path: Path, env: dict[str, str], task: dict, *, check: bool = False, diff: bool = False
) -> dict:
    """Run one voice_registry task on localhost; return its result (json callback)."""
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [{"name": "t", "javia.voice_fleet.voice_registry": task}],
        }
    ]
    args = (("--check",) if check else ()) + (("--diff",) if diff else ())
    proc, output = run_local_play(play, tmp_path / f"play-{uuid.uuid4().hex}.yml", env, args)
    result = output["plays"][0]["tasks"][0]["hosts"]["localhost"]
    result["_stdout"] = proc.stdout + proc.stderr
    return result


@pytest.fixture
def env(stack_env):
    return {k: stack_env[k] for k in ("SUPABASE_URL", "SUPABASE_SERVICE_KEY")}


@pytest.fixture
def device_uuid(registry_db):
    value = str(uuid.uuid4())
    yield value
    registry_db.execute("DELETE FROM devices WHERE device_uuid = %s", (value,))


def test_register_device_inserts_then_changes_nothing(tmp_path, env, device_uuid, registry_db):
    task = {
        "operation": "register_device",
        "device": {
            "device_uuid": device_uuid,
            "device_name": "kitchen",
            "timezone": "Europe/Berlin",
            "status": "online",
            "current_version": "1.0.0",
            "metadata": {"hostname": "kitchen-pi"},
        },
    }
    first = run_task(tmp_path, env, task)
    assert first["changed"] is True, first
    second = run_task(tmp_path, env, task)
    assert second["changed"] is False, second
    row = registry_db.execute(
        "SELECT device_name, timezone, current_version, metadata FROM devices WHERE device_uuid = %s",
        (device_uuid,),
    ).fetchone()
    assert row == ("kitchen", "Europe/Berlin", "1.0.0", {"hostname": "kitchen-pi"})


def test_register_device_merges_metadata_and_keeps_heartbeat_keys(tmp_path, env, device_uuid, registry_db):
    registry_db.execute(
        "INSERT INTO devices (device_uuid, metadata) VALUES (%s, %s)",
        (device_uuid, json.dumps({"ansible_port": 2201, "hostname": "old"})),
    )
    run_task(
        tmp_path,
        env,
        {
            "operation": "register_device",
            "device": {"device_uuid": device_uuid, "metadata": {"hostname": "new"}},
        },
    )
    (metadata,) = registry_db.execute(
        "SELECT metadata FROM devices WHERE device_uuid = %s", (device_uuid,)
    ).fetchone()
    assert metadata == {"ansible_port": 2201, "hostname": "new"}


def test_check_mode_reports_the_change_and_writes_nothing(tmp_path, env, device_uuid, registry_db):
    result = run_task(
        tmp_path,
        env,
        {"operation": "register_device", "device": {"device_uuid": device_uuid, "device_name": "hall"}},
        check=True,
        diff=True,
    )
    assert result["changed"] is True
    assert result["diff"]["after"]["device_name"] == "hall"
    count = registry_db.execute(
        "SELECT count(*) FROM devices WHERE device_uuid = %s", (device_uuid,)
    ).fetchone()
    assert count == (0,)


def test_device_update_moves_through_its_statuses(tmp_path, env, device_uuid, registry_db):
    version = f"9.9.9+{device_uuid[:8]}"
    run_task(tmp_path, env, {"operation": "register_device", "device": {"device_uuid": device_uuid}})
    created = run_task(
        tmp_path,
        env,
        {
            "operation": "ensure_update",
            "update": {"version": version, "update_type": "urgent", "system_packages": ["jq"]},
        },
    )
    assert created["changed"] is True
    assert created["update"]["system_packages"] == ["jq"]
    assert created["update"]["requires_system_packages"] is True
    again = run_task(tmp_path, env, {"operation": "ensure_update", "update": {"version": version}})
    assert again["changed"] is False
    try:
        for status in ("pending", "installing"):
            run_task(
                tmp_path,
                env,
                {
                    "operation": "set_device_update",
                    "device_uuid": device_uuid,
                    "version": version,
                    "status": status,
                },
            )
        failed = run_task(
            tmp_path,
            env,
            {
                "operation": "set_device_update",
                "device_uuid": device_uuid,
                "version": version,
                "status": "rolled_back",
                "error_message": 'step "health gate" failed',
            },
        )
        assert failed["changed"] is True
        repeat = run_task(
            tmp_path,
            env,
            {
                "operation": "set_device_update",
                "device_uuid": device_uuid,
                "version": version,
                "status": "rolled_back",
                "error_message": 'step "health gate" failed',
            },
        )
        assert repeat["changed"] is False
        row = registry_db.execute(
            "SELECT du.status, du.error_message, du.started_at IS NOT NULL, du.completed_at IS NOT NULL "
            "FROM device_updates du JOIN devices d ON d.id = du.device_id "
            "JOIN updates u ON u.id = du.update_id "
            "WHERE d.device_uuid = %s AND u.version = %s",
            (device_uuid, version),
        ).fetchone()
        assert row == ("rolled_back", 'step "health gate" failed', True, True)
    finally:
        registry_db.execute("DELETE FROM updates WHERE version = %s", (version,))


def test_an_update_that_is_not_registered_is_an_error_unless_optional(tmp_path, env, device_uuid):
    run_task(tmp_path, env, {"operation": "register_device", "device": {"device_uuid": device_uuid}})
    task = {
        "operation": "set_device_update",
        "device_uuid": device_uuid,
        "version": "0.0.0-never",
        "status": "completed",
    }
    failed = run_task(tmp_path, env, task)
    assert failed.get("failed") is True
    assert "update 0.0.0-never is not in the registry" in failed["msg"]
    skipped = run_task(tmp_path, env, {**task, "if_update_exists": True})
    assert not skipped.get("failed") and skipped["changed"] is False


def test_a_refused_key_is_reported_without_the_key(tmp_path, stack_env, device_uuid):
    anon = stack_env["SUPABASE_ANON_KEY"]
    result = run_task(
        tmp_path,
        {"SUPABASE_URL": stack_env["SUPABASE_URL"], "SUPABASE_SERVICE_KEY": anon},
        {"operation": "register_device", "device": {"device_uuid": device_uuid}},
    )
    assert result.get("failed") is True
    assert "refused the key" in result["msg"]
    assert anon not in result["_stdout"]


def test_an_unreachable_registry_is_named(tmp_path, env, device_uuid):
    result = run_task(
        tmp_path,
        {**env, "SUPABASE_URL": "http://127.0.0.1:9"},
        {"operation": "register_device", "device": {"device_uuid": device_uuid}},
    )
    assert result.get("failed") is True
    assert "http://127.0.0.1:9" in result["msg"]
    assert env["SUPABASE_SERVICE_KEY"] not in result["_stdout"]


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"operation": "explode"}, "operation 'explode' is not one of"),
        ({"operation": "register_device", "device": {"device_uuid": "x", "status": "asleep"}}, "'asleep'"),
        ({"operation": "ensure_update", "update": {"version": "1", "update_type": "soon"}}, "'soon'"),
    ],
)
def test_bad_arguments_are_named(tmp_path, env, task, message):
    result = run_task(tmp_path, env, task)
    assert result.get("failed") is True
    assert message in result["msg"]

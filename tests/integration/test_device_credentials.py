"""Per-device credentials (issue 14): what a device token may do, through the real PostgREST.

Tokens are issued and revoked with tools/device_credential.py, as an operator
does; every request goes through the stack's /rest/v1/ gateway.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest
from stack import STACK, make_jwt  # tests/conftest.py puts tools/ on sys.path

pytestmark = pytest.mark.stack

TOOL = "tools/device_credential.py"


def call(env, token, method, path, body=None):
    """(status, parsed body) of one request to /rest/v1/ with a bearer token."""
    url = f"{env['SUPABASE_URL']}/rest/v1/{path}"
    assert url.startswith("http://127.0.0.1:")
    data = json.dumps(body).encode() if body is not None else None
    headers = {"apikey": token, "Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    headers["Prefer"] = "return=representation"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            text = resp.read().decode()
            return resp.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        text = exc.read().decode()
        return exc.code, json.loads(text) if text else None


def run_tool(repo_root, stack_env, *args, cwd=None, **overrides):
    env = {**os.environ, **stack_env, **overrides}
    env.pop("SUPABASE_JWT_SECRET", None)
    return subprocess.run(
        [sys.executable, str(repo_root / TOOL), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd or repo_root,
        env=env,
    )


@pytest.fixture
def registry(empty_registry):
    """Two devices (A in pull mode, B), one update, B's progress on it."""
    db = empty_registry
    ids = {}
    for name in ("dev-a", "dev-b"):
        uid = str(uuid.uuid4())
        row = db.execute(
            "INSERT INTO public.devices (device_uuid, device_name, metadata) "
            "VALUES (%s, %s, %s) RETURNING id",
            (uid, name, json.dumps({"hostname": name})),
        ).fetchone()
        ids[name] = {"uuid": uid, "id": str(row[0])}
    upd = db.execute("INSERT INTO public.updates (version) VALUES ('9.9.9') RETURNING id").fetchone()[0]
    ids["update"] = str(upd)
    db.execute(
        "INSERT INTO public.device_updates (device_id, update_id, status) VALUES (%s, %s, 'pending')",
        (ids["dev-b"]["id"], upd),
    )
    yield ids
    db.execute("TRUNCATE public.device_credentials")


@pytest.fixture
def token_a(repo_root, stack_env, registry, tmp_path):
    out = tmp_path / "a.token"
    proc = run_tool(
        repo_root,
        stack_env,
        "issue",
        "--device-uuid",
        registry["dev-a"]["uuid"],
        "--out",
        str(out),
        "--management",
        "pull",
    )
    assert proc.returncode == 0, proc.stderr
    token = out.read_text().strip()
    assert token not in proc.stdout and token not in proc.stderr, "the token must never be printed"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    return token


def test_issue_records_the_credential_and_pull_mode(token_a, registry, registry_db):
    rows = registry_db.execute(
        "SELECT c.jti, c.revoked_at, d.management FROM public.device_credentials c "
        "JOIN public.devices d USING (device_uuid) WHERE device_uuid = %s",
        (registry["dev-a"]["uuid"],),
    ).fetchall()
    assert len(rows) == 1 and rows[0][1] is None and rows[0][2] == "pull"


def test_issue_refuses_an_unknown_device(repo_root, stack_env, registry, tmp_path):
    out = tmp_path / "x.token"
    proc = run_tool(repo_root, stack_env, "issue", "--device-uuid", "nope", "--out", str(out))
    assert proc.returncode == 1 and "no device with device_uuid 'nope'" in proc.stderr
    assert not out.exists()


def test_device_reads_updates_and_only_its_own_row(stack_env, token_a, registry):
    status, rows = call(stack_env, token_a, "GET", "updates?select=version")
    assert status == 200 and rows == [{"version": "9.9.9"}]
    status, rows = call(stack_env, token_a, "GET", "devices?select=device_uuid,management")
    assert status == 200 and rows == [{"device_uuid": registry["dev-a"]["uuid"], "management": "pull"}]
    status, rows = call(stack_env, token_a, "GET", f"devices?device_uuid=eq.{registry['dev-b']['uuid']}")
    assert status == 200 and rows == []
    status, rows = call(stack_env, token_a, "GET", "device_updates?select=id")
    assert status == 200 and rows == [], "another device's progress must stay invisible"
    status, _ = call(stack_env, token_a, "GET", "device_credentials?select=jti")
    assert status in (401, 403)


def test_device_cannot_write_updates_or_call_controller_functions(stack_env, token_a, registry, registry_db):
    status, _ = call(stack_env, token_a, "POST", "updates", {"version": "6.6.6"})
    assert status in (401, 403)
    status, _ = call(stack_env, token_a, "PATCH", "updates?version=eq.9.9.9", {"description": "evil"})
    assert status in (401, 403)
    status, _ = call(stack_env, token_a, "DELETE", "updates?version=eq.9.9.9")
    assert status in (401, 403)
    status, _ = call(
        stack_env,
        token_a,
        "POST",
        "rpc/fleet_record_progress",
        {"p_update": {"version": "6.6.6"}, "p_records": []},
    )
    assert status in (401, 403, 404)
    assert registry_db.execute("SELECT count(*) FROM public.updates").fetchone()[0] == 1


def test_device_cannot_write_another_devices_rows(stack_env, token_a, registry, registry_db):
    b = registry["dev-b"]
    status, rows = call(
        stack_env, token_a, "PATCH", f"devices?device_uuid=eq.{b['uuid']}", {"current_version": "6.6.6"}
    )
    assert status == 200 and rows == []
    status, _ = call(
        stack_env,
        token_a,
        "POST",
        "device_updates",
        {"device_id": b["id"], "update_id": registry["update"], "status": "failed"},
    )
    assert status in (401, 403)
    status, rows = call(
        stack_env, token_a, "PATCH", f"device_updates?device_id=eq.{b['id']}", {"status": "failed"}
    )
    assert status == 200 and rows == []
    assert registry_db.execute(
        "SELECT d.current_version, u.status FROM public.devices d "
        "JOIN public.device_updates u ON u.device_id = d.id WHERE d.device_uuid = %s",
        (b["uuid"],),
    ).fetchone() == (None, "pending")


def test_device_cannot_change_more_than_its_heartbeat(stack_env, token_a, registry):
    a = registry["dev-a"]
    for body in (
        {"device_name": "renamed"},
        {"management": "push"},
        {"device_uuid": "other"},
        {"status": "retired"},
    ):
        status, _ = call(stack_env, token_a, "PATCH", f"devices?device_uuid=eq.{a['uuid']}", body)
        assert status in (401, 403), body


def test_device_writes_its_heartbeat_and_its_own_progress(stack_env, token_a, registry, registry_db):
    a = registry["dev-a"]
    beat = {
        "last_seen": "2026-12-01T02:10:00+00:00",
        "status": "online",
        "current_version": "9.9.9",
        "metadata": {"hostname": "dev-a", "agent": "1"},
    }
    status, rows = call(stack_env, token_a, "PATCH", f"devices?device_uuid=eq.{a['uuid']}", beat)
    assert status == 200 and len(rows) == 1 and rows[0]["current_version"] == "9.9.9"
    status, rows = call(
        stack_env,
        token_a,
        "POST",
        "device_updates",
        {"device_id": a["id"], "update_id": registry["update"], "status": "downloading"},
    )
    assert status == 201, rows
    status, rows = call(
        stack_env,
        token_a,
        "PATCH",
        f"device_updates?device_id=eq.{a['id']}&update_id=eq.{registry['update']}",
        {"status": "completed", "completed_at": "2026-12-01T02:20:00+00:00"},
    )
    assert status == 200 and [r["status"] for r in rows] == ["completed"]
    assert registry_db.execute(
        "SELECT status FROM public.device_updates WHERE device_id = %s", (a["id"],)
    ).fetchone() == ("completed",)


def test_revoked_credential_is_refused(repo_root, stack_env, token_a, registry):
    proc = run_tool(repo_root, stack_env, "revoke", "--device-uuid", registry["dev-a"]["uuid"])
    assert proc.returncode == 0 and "revoked 1 credential" in proc.stdout, proc.stderr
    status, body = call(stack_env, token_a, "GET", "updates?select=version")
    assert status in (401, 403) and "revoked" in body["message"], body
    status, body = call(stack_env, token_a, "GET", "devices?select=device_uuid")
    assert status in (401, 403)
    status, _ = call(
        stack_env,
        token_a,
        "PATCH",
        f"devices?device_uuid=eq.{registry['dev-a']['uuid']}",
        {"current_version": "1"},
    )
    assert status in (401, 403)


def test_token_of_another_device_claim_is_refused(stack_env, token_a, registry):
    """A token whose device_uuid claim does not match its credential row is refused (forged claims)."""
    secret = json.loads((STACK / "secrets.json").read_text())["jwt_secret"]
    jti = json.loads(base64.urlsafe_b64decode(token_a.split(".")[1] + "=="))["jti"]
    claims = {"device_uuid": registry["dev-b"]["uuid"], "jti": jti}
    forged = make_jwt(secret, "device", int(time.time()), claims, lifetime=3600)
    status, _ = call(stack_env, forged, "GET", "updates?select=version")
    assert status in (401, 403)


def test_check_in_is_one_request_with_heartbeat_and_newest_pullable_update(
    stack_env, token_a, registry, registry_db
):
    registry_db.execute(
        "INSERT INTO public.updates (version, package_url, created_at) "
        "VALUES ('9.9.10', 'http://relay/store/{platform}/9.9.10/manifest.json', now() + interval '1 minute')"
    )
    # A newer push-only row (a git ref the controller builds) is not a release a device can pull.
    registry_db.execute(
        "INSERT INTO public.updates (version, package_url, created_at) "
        "VALUES ('9.9.11', 'git:0123abcd', now() + interval '2 minutes')"
    )
    status, body = call(
        stack_env,
        token_a,
        "POST",
        "rpc/device_check_in",
        {"p_heartbeat": {"current_version": "9.9.9", "metadata": {"agent": "test"}}},
    )
    assert status == 200, body
    assert body["device"]["device_uuid"] == registry["dev-a"]["uuid"]
    assert body["update"]["version"] == "9.9.10"
    version, metadata = registry_db.execute(
        "SELECT current_version, metadata FROM public.devices WHERE device_uuid = %s",
        (registry["dev-a"]["uuid"],),
    ).fetchone()
    assert version == "9.9.9" and metadata == {"hostname": "dev-a", "agent": "test"}


def test_check_in_refuses_other_keys(stack_env, registry):
    status, _ = call(stack_env, stack_env["SUPABASE_ANON_KEY"], "POST", "rpc/device_check_in", {})
    assert status in (401, 403, 404)
    status, _ = call(stack_env, stack_env["SUPABASE_SERVICE_KEY"], "POST", "rpc/device_check_in", {})
    assert status in (401, 403, 404)


def test_a_relative_stack_dir_is_the_checkout_s_wherever_the_tool_runs(
    repo_root, stack_env, registry, tmp_path
):
    # Ansible runs the tool from a directory of its own: a VF_STACK_DIR relative to the checkout
    # (as `make test` once passed it) must still find the local stack's secret.
    relative = os.path.relpath(STACK, repo_root)  # right from the checkout, wrong from tmp_path
    out = tmp_path / "b.token"
    uid = registry["dev-b"]["uuid"]
    args = ("issue", "--device-uuid", uid, "--out", str(out))
    proc = run_tool(repo_root, stack_env, *args, cwd=tmp_path, VF_STACK_DIR=relative)
    assert proc.returncode == 0, proc.stderr
    status, rows = call(stack_env, out.read_text().strip(), "GET", "devices?select=device_uuid")
    assert status == 200 and [r["device_uuid"] for r in rows] == [uid], rows


def test_the_local_secret_is_never_used_for_another_registry(repo_root, stack_env, registry, tmp_path):
    other = "http://127.0.0.1:9"  # not the local stack: its secret would sign a token nobody accepts
    proc = run_tool(
        repo_root,
        stack_env,
        *("issue", "--device-uuid", registry["dev-a"]["uuid"], "--out", str(tmp_path / "x.token")),
        SUPABASE_URL=other,
    )
    assert proc.returncode != 0 and not (tmp_path / "x.token").exists()
    assert "SUPABASE_JWT_SECRET not set" in proc.stderr and other in proc.stderr, proc.stderr

"""The local registry stack: real PostgreSQL + PostgREST + the /rest/v1/ gateway.

These tests talk to it the way the plays and the inventory plugin do: through
supabase-py with the stack's keys.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import psycopg
import pytest
from postgrest.exceptions import APIError
from stack import make_jwt, stack_dir  # the stack's own; tests/conftest.py puts tools/ on sys.path
from supabase import create_client

pytestmark = pytest.mark.stack

TABLES = ("devices", "updates", "device_updates")


@pytest.fixture
def service(stack_env):
    return create_client(stack_env["SUPABASE_URL"], stack_env["SUPABASE_SERVICE_KEY"])


@pytest.fixture
def anon(stack_env):
    return create_client(stack_env["SUPABASE_URL"], stack_env["SUPABASE_ANON_KEY"])


@pytest.fixture
def device_uuid(service):
    """A fresh device_uuid; its rows are removed after the test."""
    value = f"test-{uuid.uuid4()}"
    yield value
    service.table("devices").delete().eq("device_uuid", value).execute()


def test_env_file_has_the_documented_settings(stack_env, repo_root):
    directory = stack_dir()
    for key in ("SUPABASE_URL", "SUPABASE_SERVICE_KEY", "SUPABASE_ANON_KEY", "DATABASE_URL"):
        assert stack_env.get(key), f"{key} missing from .stack/env"
    assert stack_env["SUPABASE_URL"].startswith("http://127.0.0.1:")
    mode = (directory / "env").stat().st_mode & 0o777
    assert mode == 0o600, f".stack/env holds keys; mode is {oct(mode)}"


def test_service_key_reads_and_writes_devices(service, device_uuid):
    inserted = (
        service.table("devices")
        .insert({"device_uuid": device_uuid, "device_name": "kitchen", "timezone": "Europe/Berlin"})
        .execute()
    )
    assert inserted.data[0]["device_uuid"] == device_uuid
    assert inserted.data[0]["status"] == "online"

    service.table("devices").update({"current_version": "1.2.3"}).eq("device_uuid", device_uuid).execute()
    rows = (
        service.table("devices")
        .select("device_name,current_version")
        .eq("device_uuid", device_uuid)
        .execute()
    )
    assert rows.data == [{"device_name": "kitchen", "current_version": "1.2.3"}]


def test_service_key_writes_updates_and_device_updates(service, device_uuid):
    device = service.table("devices").insert({"device_uuid": device_uuid}).execute().data[0]
    version = f"0.0.0-{device_uuid}"
    update = service.table("updates").insert({"version": version, "update_type": "urgent"}).execute().data[0]
    try:
        row = (
            service.table("device_updates")
            .insert({"device_id": device["id"], "update_id": update["id"], "status": "rolled_back"})
            .execute()
            .data[0]
        )
        assert row["status"] == "rolled_back"
    finally:
        service.table("updates").delete().eq("id", update["id"]).execute()


def test_schema_rejects_unknown_statuses(service, device_uuid):
    with pytest.raises(APIError) as err:
        service.table("devices").insert({"device_uuid": device_uuid, "status": "exploded"}).execute()
    assert err.value.code == "23514"  # check_violation


@pytest.mark.parametrize("table", TABLES)
def test_anon_key_cannot_select(anon, table):
    with pytest.raises(APIError) as err:
        anon.table(table).select("*").execute()
    assert err.value.code == "42501"


def test_anon_key_cannot_insert(anon):
    with pytest.raises(APIError) as err:
        anon.table("devices").insert({"device_uuid": f"anon-{uuid.uuid4()}"}).execute()
    assert err.value.code == "42501"


def test_anon_key_cannot_update(anon, service, device_uuid):
    service.table("devices").insert({"device_uuid": device_uuid, "device_name": "before"}).execute()
    with pytest.raises(APIError) as err:
        anon.table("devices").update({"device_name": "after"}).eq("device_uuid", device_uuid).execute()
    assert err.value.code == "42501"
    rows = service.table("devices").select("device_name").eq("device_uuid", device_uuid).execute()
    assert rows.data == [{"device_name": "before"}]


def test_row_level_security_is_on_for_every_table(stack_env):
    with psycopg.connect(stack_env["DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT relname, relrowsecurity FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace AND relname = ANY(%s)",
            (list(TABLES),),
        ).fetchall()
    assert dict(rows) == dict.fromkeys(TABLES, True)


def schema_fingerprint(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2"
        ).fetchall()
        constraints = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
        ).fetchall()
        grants = conn.execute(
            "SELECT table_name, grantee, privilege_type FROM information_schema.role_table_grants "
            "WHERE table_schema = 'public' ORDER BY 1, 2, 3"
        ).fetchall()
    return columns + constraints + grants


def test_second_stack_up_applies_nothing(stack_env, repo_root):
    before = schema_fingerprint(stack_env["DATABASE_URL"])
    proc = subprocess.run(
        [sys.executable, str(repo_root / "tools" / "stack.py"), "up"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Applying migration" not in proc.stderr
    assert "Starting" not in proc.stderr, f"a running part was restarted:\n{proc.stderr}"
    assert schema_fingerprint(stack_env["DATABASE_URL"]) == before


def test_every_migration_is_recorded_once(stack_env, repo_root):
    files = sorted(p.stem.partition("_")[0] for p in (repo_root / "supabase" / "migrations").glob("*.sql"))
    with psycopg.connect(stack_env["DATABASE_URL"]) as conn:
        recorded = [
            r[0]
            for r in conn.execute(
                "SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1"
            ).fetchall()
        ]
    assert recorded == files


def test_migrations_reapplied_to_an_existing_schema_change_nothing(stack_env, repo_root):
    """Operators point at a project that already has the tables: the SQL must be re-runnable."""
    before = schema_fingerprint(stack_env["DATABASE_URL"])
    with psycopg.connect(stack_env["DATABASE_URL"]) as conn, conn.transaction():
        for path in sorted((repo_root / "supabase" / "migrations").glob("*.sql")):
            conn.execute(path.read_text())
    assert schema_fingerprint(stack_env["DATABASE_URL"]) == before


# --- later objects, DELETE, and a signed-in user's token ----------------------------------------


@pytest.fixture
def authenticated(stack_env):
    """A client holding a signed-in user's token: role authenticated, signed by this stack."""
    secrets = json.loads((stack_dir() / "secrets.json").read_text())
    token = make_jwt(secrets["jwt_secret"], "authenticated", int(time.time()))
    client = create_client(stack_env["SUPABASE_URL"], stack_env["SUPABASE_ANON_KEY"])
    client.postgrest.auth(token)
    return client


def count(service, table: str) -> int:
    return service.table(table).select("id", count="exact").limit(1).execute().count


def refused(call) -> None:
    """`call` is refused for lack of privilege (42501), not for a bad token (PGRST30x)."""
    with pytest.raises(APIError) as err:
        call()
    assert err.value.code == "42501", err.value


LATER = "vf_test_later_table"
DROP_LATER = (
    "DROP TABLE IF EXISTS public.vf_test_later_table;DROP FUNCTION IF EXISTS public.vf_test_later_table_fn();"
)
CREATE_LATER = """
CREATE TABLE public.vf_test_later_table (id bigserial PRIMARY KEY, note text);
INSERT INTO public.vf_test_later_table (note) VALUES ('secret');
CREATE FUNCTION public.vf_test_later_table_fn() RETURNS bigint LANGUAGE sql
    AS 'SELECT count(*) FROM public.vf_test_later_table';
NOTIFY pgrst, 'reload schema';
"""


@pytest.fixture
def later_objects(registry_db, service):
    """A table (with its sequence) and a function created after the migrations, as the role
    the migrations run as (DATABASE_URL's), the way the next migration would add them."""
    db = registry_db
    db.execute(DROP_LATER + CREATE_LATER)
    deadline = time.monotonic() + 15
    while True:  # PostgREST reloads its schema cache asynchronously: wait for both objects
        try:
            service.table(LATER).select("note").execute()
            service.rpc(f"{LATER}_fn").execute()
            break
        except APIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    yield db
    db.execute(DROP_LATER + "NOTIFY pgrst, 'reload schema';")


def test_objects_created_after_the_migrations_are_closed_to_anon_and_authenticated(
    later_objects, service, anon, authenticated
):
    db = later_objects
    creator = db.execute("SELECT current_user").fetchone()[0]
    for role in ("anon", "authenticated"):
        privileges = db.execute(
            "SELECT has_table_privilege(%(r)s, %(t)s,"
            "   'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER'),"
            " has_sequence_privilege(%(r)s, %(s)s, 'USAGE,SELECT,UPDATE'),"
            " has_function_privilege(%(r)s, %(f)s, 'EXECUTE')",
            {"r": role, "t": f"public.{LATER}", "s": f"public.{LATER}_id_seq", "f": f"public.{LATER}_fn()"},
        ).fetchone()
        assert privileges == (False, False, False), (role, creator, privileges)
    # The service key still reaches them.
    assert service.table(LATER).select("note").execute().data == [{"note": "secret"}]
    assert service.rpc(f"{LATER}_fn").execute().data == 1
    for client in (anon, authenticated):
        refused(lambda c=client: c.table(LATER).select("note").execute())
        refused(lambda c=client: c.table(LATER).insert({"note": "x"}).execute())
        refused(lambda c=client: c.rpc(f"{LATER}_fn").execute())
    assert db.execute(f"SELECT count(*) FROM public.{LATER}").fetchone()[0] == 1  # noqa: S608


def test_no_function_in_public_is_executable_by_anon_or_authenticated(registry_db):
    rows = registry_db.execute(
        "SELECT p.oid::regprocedure::text, r.rolname FROM pg_proc p"
        " CROSS JOIN (VALUES ('anon'), ('authenticated')) AS r(rolname)"
        " WHERE p.pronamespace = 'public'::regnamespace"
        "   AND has_function_privilege(r.rolname, p.oid, 'EXECUTE')"
    ).fetchall()
    assert rows == []


def test_anon_delete_on_devices_is_refused_and_deletes_nothing(anon, service, device_uuid):
    service.table("devices").insert({"device_uuid": device_uuid, "device_name": "keep-me"}).execute()
    before = count(service, "devices")
    refused(lambda: anon.table("devices").delete().eq("device_uuid", device_uuid).execute())
    refused(lambda: anon.table("devices").delete().neq("device_uuid", "").execute())
    assert count(service, "devices") == before
    rows = service.table("devices").select("device_name").eq("device_uuid", device_uuid).execute()
    assert rows.data == [{"device_name": "keep-me"}]


def test_a_signed_in_users_token_reads_and_writes_nothing(authenticated, service, device_uuid):
    device = service.table("devices").insert({"device_uuid": device_uuid, "device_name": "before"}).execute()
    device_id = device.data[0]["id"]
    version = f"0.0.0-{device_uuid}"
    update = service.table("updates").insert({"version": version}).execute().data[0]
    try:
        service.table("device_updates").insert({"device_id": device_id, "update_id": update["id"]}).execute()
        before = {t: count(service, t) for t in TABLES}
        new_rows = {
            "devices": {"device_uuid": f"user-{uuid.uuid4()}"},
            "updates": {"version": f"user-{uuid.uuid4()}"},
            "device_updates": {"device_id": device_id, "update_id": update["id"]},
        }
        changes = {"devices": {"device_name": "after"}, "updates": {"description": "x"}}
        changes["device_updates"] = {"status": "failed"}
        for table in TABLES:
            query = authenticated.table(table)
            refused(lambda q=query: q.select("*").execute())
            refused(lambda q=query, t=table: q.insert(new_rows[t]).execute())
            refused(lambda q=query, t=table: q.update(changes[t]).neq("id", str(uuid.uuid4())).execute())
            refused(lambda q=query: q.delete().neq("id", str(uuid.uuid4())).execute())
        assert {t: count(service, t) for t in TABLES} == before
        names = service.table("devices").select("device_name").eq("device_uuid", device_uuid).execute()
        assert names.data == [{"device_name": "before"}]
        progress = service.table("device_updates").select("status").eq("device_id", device_id).execute()
        assert progress.data == [{"status": "pending"}]
    finally:
        service.table("updates").delete().eq("id", update["id"]).execute()

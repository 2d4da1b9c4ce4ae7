"""The fleet's rows in the registry: seeded by `up`, removed by `down`, read by `status`.

Through the collection's one registry client (plugins/module_utils/voice_registry_client.py),
on the local stack's REST API, never SQL.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from ansible_collections.javia.voice_fleet.plugins.module_utils.voice_registry_client import (
    RegistryClient,
    session,
)
from stack import STACK, read_env_file, run

from simfleet.model import ROOT, Fleet, FleetError, Ready

STACK_TOOL = ROOT / "tools" / "stack.py"
FLEET_COLUMNS = "device_uuid,device_name,timezone,status,ansible_host,metadata"


def registry_env(*, required: bool) -> dict[str, str] | None:
    path = STACK / "env"
    if not path.exists():
        if required:
            raise FleetError(f"{path} is missing: the registry stack is not up (make stack-up)")
        return None
    env = read_env_file(path)
    missing = [k for k in ("SUPABASE_URL", "SUPABASE_SERVICE_KEY") if not env.get(k)]
    if missing:
        raise FleetError(f"{path} lacks {', '.join(missing)}: run `make stack-up` to rewrite it")
    return env


def ensure_stack() -> dict[str, str]:
    proc = run([sys.executable, str(STACK_TOOL), "up"], what="the registry stack", check=False, timeout=300)
    if proc.returncode != 0:
        raise FleetError(f"the registry stack is not up: {proc.stderr.strip()[-800:]}")
    env = registry_env(required=True)
    if env is None:  # registry_env raises first; this keeps the type checker honest
        raise FleetError("the registry stack wrote no settings")
    return env


def registry_session(env: dict[str, str]) -> contextlib.AbstractContextManager[RegistryClient]:
    """The controller's one registry client, on the stack's REST API (never SQL); its errors as ours."""
    return session(env, "tools/fleet.py", lambda exc: FleetError(f"{exc} (make stack-up)"))


def seed_registry(fleet: Fleet, env: dict[str, str], ready: list[Ready], gone: list[str]) -> list[str]:
    """Upsert the devices whose rows differ (one request); delete removed and stale rows."""
    messages = []
    with registry_session(env) as client:
        uuids = [item.uuid for item in ready]
        before = {}
        if uuids:
            query = client.table("devices").select(FLEET_COLUMNS).in_("device_uuid", uuids)
            before = {row["device_uuid"]: row for row in client.rows("reading the fleet's rows", query)}
        upserts = []
        for item in ready:
            dev = item.device
            metadata = {
                "ansible_port": dev.port,
                "hostname": dev.name,
                "architecture": item.machine,
                **fleet.marker,
            }
            old = before.get(item.uuid)
            old_meta = old["metadata"] if old and isinstance(old.get("metadata"), dict) else {}
            wanted = {"device_name": dev.name, "timezone": dev.timezone, "ansible_host": "127.0.0.1"}
            if (
                old
                and all(old.get(k) == v for k, v in wanted.items())
                and metadata.items() <= old_meta.items()
            ):
                continue
            # Every row names the same columns (PostgREST's bulk upsert); a known row keeps its status.
            status = old.get("status") if old else "online"
            upserts.append(
                {"device_uuid": item.uuid, **wanted, "status": status, "metadata": {**old_meta, **metadata}}
            )
            messages.append(f"registry: {'updated' if old else 'added'} {dev.name} ({item.uuid})")
        if upserts:
            query = client.table("devices").upsert(upserts, on_conflict="device_uuid")
            client.execute(f"registering {len(upserts)} device(s)", query)
        stale = delete_rows(client, fleet, keep=uuids, drop=gone)
        messages += [f"registry: removed {name} ({uuid}): that device is gone" for uuid, name in stale]
    return messages


def delete_rows(
    client: RegistryClient, fleet: Fleet, *, keep: list[str], drop: list[str]
) -> list[tuple[str, str]]:
    """Delete this fleet's rows not in `keep`, and the rows of `drop`; return (uuid, name) of each."""
    queries = []
    stale = client.table("devices").delete().contains("metadata", fleet.marker)
    queries.append(stale.not_.in_("device_uuid", keep) if keep else stale)
    if drop:
        queries.append(client.table("devices").delete().in_("device_uuid", drop))
    gone: dict[str, str] = {}
    for query in queries:
        rows = client.rows("removing the rows of devices that are gone", query)
        gone.update((row["device_uuid"], row.get("device_name") or "") for row in rows)
    return sorted(gone.items())


def remove_rows(env: dict[str, str], fleet: Fleet, uuids: list[str]) -> list[tuple[str, str]]:
    """Every row of this fleet and of `uuids`, gone (for `down`); (uuid, name) of each."""
    with registry_session(env) as client:
        return delete_rows(client, fleet, keep=[], drop=uuids)


def registry_rows(env: dict[str, str], uuids: list[str]) -> dict[str, dict[str, Any]]:
    with registry_session(env) as client:
        query = client.table("devices").select("device_uuid,timezone,status").in_("device_uuid", uuids)
        rows = client.rows("reading the fleet's rows", query)
    return {row["device_uuid"]: {"timezone": row["timezone"], "status": row["status"]} for row in rows}

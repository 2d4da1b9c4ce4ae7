"""Read and write the Supabase device registry from the controller.

An action plugin: it runs in the controller's process with supabase-py and the
service key, never on the devices. Every write compares first, so a re-run
reports ``ok`` and check mode reports what would change (with ``--diff``, how).

Operations (argument ``operation``):

``register_device``
    ``device``: {device_uuid, device_name, timezone, current_version, status,
    ansible_host, metadata}. Insert or update the row of that device_uuid.
    ``metadata`` is merged into what the row has (heartbeats add keys too).
    Returns ``device`` (the row).
``ensure_update``
    ``update``: {version, update_type, description, system_packages}. The
    ``updates`` row of that version, created when missing. Returns ``update``.
``latest_update``
    The newest ``updates`` row (by created_at), or null. Returns ``update``,
    and ``updates``: the newest ``limit`` rows (default 1), newest first.
``set_device_update``
    ``device_uuid``, ``version``, ``status`` and optionally ``error_message``,
    ``scheduled_for``: the ``device_updates`` row of that device and version
    moves to ``status`` (started_at/completed_at set when it starts/ends).
    With ``if_update_exists: true`` a version without an ``updates`` row is
    left alone instead of being an error.
    Returns ``device_update``.
``set_device``
    ``device_uuid`` and any of ``status``, ``current_version``: update the
    device row (``last_seen`` too). Returns ``device``.
``record_progress``
    ``update`` ({version, update_type, description, system_packages,
    package_url}) and ``records`` (a list of {device_uuid, status,
    error_message, scheduled_for, device_status, current_version}): a whole
    batch in ONE request (the ``fleet_record_progress`` function of the
    migrations): the update row created when missing, each device's
    ``device_updates`` row and its status/version, rows that already agree left
    alone. Returns ``update``, ``progress_written``, ``devices_written`` and
    ``missing`` (device_uuids not in the registry).

Connection errors and 5xx answers are retried with backoff (``retries``,
default 3) before they fail the task.

Connection: ``url`` and ``key`` (default: env SUPABASE_URL, SUPABASE_SERVICE_KEY).
The key is never returned or printed; give the task ``no_log: true`` anyway.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

try:
    from postgrest.exceptions import APIError
    from supabase import Client, create_client

    HAS_SUPABASE = True
except ImportError:  # pragma: no cover - reported at run time
    HAS_SUPABASE = False

DEVICE_COLUMNS = "id,device_uuid,device_name,timezone,status,current_version,ansible_host,metadata"
DEVICE_FIELDS = ("device_name", "timezone", "status", "current_version", "ansible_host")
DEVICE_STATUSES = ("online", "offline", "updating", "retired")
UPDATE_TYPES = ("scheduled", "urgent")
DEVICE_UPDATE_STATUSES = ("pending", "downloading", "installing", "completed", "failed", "rolled_back")
FINAL_STATUSES = ("completed", "failed", "rolled_back")


RECORD_FIELDS = (
    "device_uuid",
    "status",
    "error_message",
    "scheduled_for",
    "device_status",
    "current_version",
)
# PostgREST's own codes for "the database cannot be reached right now".
TRANSIENT_CODES = ("PGRST000", "PGRST001", "PGRST002", "PGRST003")


class RegistryError(Exception):
    """A failure the operator can act on; never carries the key."""


def transient(exc: Exception) -> bool:
    """A connection error or a 5xx-like answer: worth trying again."""
    if HAS_SUPABASE and isinstance(exc, APIError):
        code = str(exc.code or "")
        return code in TRANSIENT_CODES or code.startswith("5") or not code
    return True


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def explain(exc: Exception, what: str, url: str) -> RegistryError:
    if isinstance(exc, APIError):
        code = exc.code or ""
        if code in ("PGRST301", "PGRST302", "42501") or "JWT" in str(exc.message):
            return RegistryError(f"{what}: the registry at {url} refused the key ({code}: {exc.message})")
        return RegistryError(f"{what}: the registry at {url} answered {code}: {exc.message}")
    return RegistryError(f"{what}: cannot reach the registry at {url}: {type(exc).__name__}: {exc}")


def progress_fields(status: str, args: dict[str, Any]) -> dict[str, Any]:
    """The device_updates fields a status change writes (timestamps aside)."""
    fields: dict[str, Any] = {"status": status}
    if "error_message" in args:
        fields["error_message"] = args["error_message"]
    elif status not in ("failed", "rolled_back"):
        fields["error_message"] = None
    if args.get("scheduled_for"):
        fields["scheduled_for"] = args["scheduled_for"]
    return fields


def progress_stamps(status: str, before: dict[str, Any] | None) -> dict[str, Any]:
    """started_at when work starts (again), completed_at when it ends."""
    stamp = now()
    if status in ("downloading", "installing") and (before is None or before.get("status") != status):
        return {"started_at": stamp, "completed_at": None}
    if status in FINAL_STATUSES:
        return {"completed_at": stamp}
    return {}


class Registry:
    def __init__(self, url: str, key: str, check_mode: bool, retries: int = 3) -> None:
        if not HAS_SUPABASE:
            raise RegistryError("the supabase Python package is missing on the controller (make setup)")
        if not url.startswith(("http://", "https://")):
            raise RegistryError(f"registry url must start with http:// or https://, got {url!r}")
        if not key:
            raise RegistryError("no registry key: set SUPABASE_SERVICE_KEY or pass key")
        self.url = url
        self.check_mode = check_mode
        self.retries = max(0, retries)
        try:
            self.client: Client = create_client(url, key)
        except Exception as exc:
            raise RegistryError(f"cannot set up a client for {url}: {exc}") from None

    def _run(self, what: str, query) -> list[dict[str, Any]]:
        data = self._execute(what, query)
        return data or []

    def _execute(self, what: str, query) -> Any:
        """Run one request, retrying connection errors and 5xx with backoff (0.5 s, 1 s, 2 s, ...)."""
        for attempt in range(self.retries + 1):
            try:
                return query.execute().data
            except Exception as exc:
                if attempt >= self.retries or not transient(exc):
                    raise explain(exc, what, self.url) from None
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- a batch in one request

    def record_progress(self, update: dict[str, Any], records: list[Any]) -> tuple[bool, dict, None]:
        version = str(update.get("version") or "")
        if not version:
            raise RegistryError("record_progress needs update.version")
        update_type = update.get("update_type", "scheduled")
        if update_type not in UPDATE_TYPES:
            raise RegistryError(f"update_type {update_type!r} is not one of {', '.join(UPDATE_TYPES)}")
        clean = []
        for record in records:
            if not isinstance(record, dict) or not record.get("device_uuid"):
                raise RegistryError(f"every record needs a device_uuid, got {record!r}")
            unknown = set(record) - set(RECORD_FIELDS)
            if unknown:
                raise RegistryError(f"record of {record['device_uuid']} has unknown fields {sorted(unknown)}")
            status = record.get("status")
            if status is not None and status not in DEVICE_UPDATE_STATUSES:
                raise RegistryError(f"status {status!r} is not one of {', '.join(DEVICE_UPDATE_STATUSES)}")
            device_status = record.get("device_status")
            if device_status is not None and device_status not in DEVICE_STATUSES:
                raise RegistryError(
                    f"device_status {device_status!r} is not one of {', '.join(DEVICE_STATUSES)}"
                )
            clean.append({k: v for k, v in record.items() if v not in (None, "")})
        if self.check_mode:
            return bool(clean), {"update": {"version": version}, "records": clean}, None
        payload = {
            "p_update": {
                "version": version,
                "update_type": update_type,
                "description": update.get("description") or "",
                "system_packages": list(update.get("system_packages") or []),
                "package_url": update.get("package_url") or "",
            },
            "p_records": clean,
        }
        answer = self._execute(
            f"recording {len(clean)} device(s) on update {version}",
            self.client.rpc("fleet_record_progress", payload),
        )
        answer = answer if isinstance(answer, dict) else {}
        changed = bool(answer.get("progress_written") or answer.get("devices_written"))
        return changed, answer, None

    # -- devices

    def device(self, device_uuid: str) -> dict[str, Any] | None:
        rows = self._run(
            f"reading device {device_uuid}",
            self.client.table("devices").select(DEVICE_COLUMNS).eq("device_uuid", device_uuid).limit(1),
        )
        return rows[0] if rows else None

    def register_device(self, device: dict[str, Any]) -> tuple[bool, dict, dict | None]:
        device_uuid = str(device.get("device_uuid") or "")
        if not device_uuid:
            raise RegistryError("register_device needs device.device_uuid")
        status = device.get("status")
        if status is not None and status not in DEVICE_STATUSES:
            raise RegistryError(f"device status {status!r} is not one of {', '.join(DEVICE_STATUSES)}")
        metadata = device.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise RegistryError(f"device.metadata must be a mapping, got {type(metadata).__name__}")
        before = self.device(device_uuid)
        wanted = {k: device[k] for k in DEVICE_FIELDS if k in device and device[k] is not None}
        old_meta = before.get("metadata") if before and isinstance(before.get("metadata"), dict) else {}
        wanted["metadata"] = {**old_meta, **metadata}
        if before is not None and all(before.get(k) == v for k, v in wanted.items()):
            return False, before, before
        after = {**(before or {}), "device_uuid": device_uuid, **wanted}
        if self.check_mode:
            return True, after, before
        payload = {"device_uuid": device_uuid, "last_seen": now(), **wanted}
        rows = self._run(
            f"registering device {device_uuid}",
            self.client.table("devices").upsert(payload, on_conflict="device_uuid"),
        )
        return True, rows[0] if rows else after, before

    def set_device(self, device_uuid: str, fields: dict[str, Any]) -> tuple[bool, dict, dict | None]:
        before = self.device(device_uuid)
        if before is None:
            raise RegistryError(f"device {device_uuid} is not in the registry (register it first: site.yml)")
        if "status" in fields and fields["status"] not in DEVICE_STATUSES:
            raise RegistryError(
                f"device status {fields['status']!r} is not one of {', '.join(DEVICE_STATUSES)}"
            )
        if all(before.get(k) == v for k, v in fields.items()):
            return False, before, before
        after = {**before, **fields}
        if self.check_mode:
            return True, after, before
        rows = self._run(
            f"updating device {device_uuid}",
            self.client.table("devices")
            .update({**fields, "last_seen": now()})
            .eq("device_uuid", device_uuid),
        )
        return True, rows[0] if rows else after, before

    # -- updates

    def update_by_version(self, version: str) -> dict[str, Any] | None:
        rows = self._run(
            f"reading update {version}",
            self.client.table("updates").select("*").eq("version", version).limit(1),
        )
        return rows[0] if rows else None

    def ensure_update(self, update: dict[str, Any]) -> tuple[bool, dict, dict | None]:
        version = str(update.get("version") or "")
        if not version:
            raise RegistryError("ensure_update needs update.version")
        update_type = update.get("update_type", "scheduled")
        if update_type not in UPDATE_TYPES:
            raise RegistryError(f"update_type {update_type!r} is not one of {', '.join(UPDATE_TYPES)}")
        before = self.update_by_version(version)
        if before is not None:
            return False, before, before
        packages = update.get("system_packages") or []
        if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
            raise RegistryError(f"update.system_packages must be a list of package names, got {packages!r}")
        row = {
            "version": version,
            "update_type": update_type,
            "description": update.get("description") or "",
            "system_packages": packages,
            "requires_system_packages": bool(packages),
        }
        if self.check_mode:
            return True, row, None
        rows = self._run(f"creating update {version}", self.client.table("updates").insert(row))
        return True, rows[0], None

    def latest_update(self) -> dict[str, Any] | None:
        rows = self.latest_updates(1)
        return rows[0] if rows else None

    def latest_updates(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` updates rows, newest first (one request)."""
        return self._run(
            "reading the latest updates",
            self.client.table("updates").select("*").order("created_at", desc=True).order("id").limit(limit),
        )

    def set_device_update(self, args: dict[str, Any]) -> tuple[bool, dict, dict | None]:
        device_uuid, version, status = (str(args.get(k) or "") for k in ("device_uuid", "version", "status"))
        if not (device_uuid and version and status):
            raise RegistryError("set_device_update needs device_uuid, version and status")
        if status not in DEVICE_UPDATE_STATUSES:
            raise RegistryError(f"status {status!r} is not one of {', '.join(DEVICE_UPDATE_STATUSES)}")
        device = self.device(device_uuid)
        if device is None:
            raise RegistryError(f"device {device_uuid} is not in the registry (register it first: site.yml)")
        update = self.update_by_version(version)
        if update is None:
            if args.get("if_update_exists"):
                return False, {}, None
            if self.check_mode:
                return True, {"status": status, "version": version}, None
            raise RegistryError(f"update {version} is not in the registry (ensure_update first)")
        rows = self._run(
            f"reading the progress of {device_uuid} on {version}",
            self.client.table("device_updates")
            .select("*")
            .eq("device_id", device["id"])
            .eq("update_id", update["id"])
            .limit(1),
        )
        before = rows[0] if rows else None
        fields = progress_fields(status, args)
        if before is not None and all(before.get(k) == v for k, v in fields.items()):
            return False, before, before
        fields.update(progress_stamps(status, before))
        after = {**(before or {}), **fields}
        if self.check_mode:
            return True, after, before
        payload = {"device_id": device["id"], "update_id": update["id"], **fields}
        rows = self._run(
            f"recording {status} for {device_uuid} on {version}",
            self.client.table("device_updates").upsert(payload, on_conflict="device_id,update_id"),
        )
        return True, rows[0] if rows else after, before


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(
        (
            "url",
            "key",
            "operation",
            "device",
            "update",
            "device_uuid",
            "version",
            "status",
            "error_message",
            "scheduled_for",
            "current_version",
            "if_update_exists",
            "records",
            "retries",
            "limit",
        )
    )

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        operation = args.get("operation")
        url = str(args.get("url") or os.environ.get("SUPABASE_URL") or "")
        key = str(args.get("key") or os.environ.get("SUPABASE_SERVICE_KEY") or "")
        try:
            if not url:
                raise RegistryError("no registry url: set SUPABASE_URL or pass url")
            # The key goes only to the registry the inventory is read from: a launch-time
            # extra variable (AWX) must not steer it to another host.
            source = os.environ.get("SUPABASE_URL", "").strip().rstrip("/")
            if source and url.strip().rstrip("/") != source:
                raise RegistryError(
                    f"url {url!r} is not the registry the inventory is read from (SUPABASE_URL {source!r}): "
                    "the service key is sent only to SUPABASE_URL"
                )
            registry = Registry(url, key, bool(self._task.check_mode), int(args.get("retries", 3)))
            if operation == "register_device":
                changed, row, before = registry.register_device(dict(args.get("device") or {}))
                result["device"] = row
            elif operation == "ensure_update":
                changed, row, before = registry.ensure_update(dict(args.get("update") or {}))
                result["update"] = row
            elif operation == "latest_update":
                changed, before = False, None
                rows = registry.latest_updates(max(1, int(args.get("limit") or 1)))
                row = rows[0] if rows else None
                result["update"] = row
                result["updates"] = rows
            elif operation == "set_device_update":
                changed, row, before = registry.set_device_update(args)
                result["device_update"] = row
            elif operation == "set_device":
                fields = {k: args[k] for k in ("status", "current_version") if args.get(k) is not None}
                changed, row, before = registry.set_device(str(args.get("device_uuid") or ""), fields)
                result["device"] = row
            elif operation == "record_progress":
                changed, row, before = registry.record_progress(
                    dict(args.get("update") or {}), list(args.get("records") or [])
                )
                result.update(row)
            else:
                raise RegistryError(
                    f"operation {operation!r} is not one of register_device, ensure_update, latest_update, "
                    "set_device_update, set_device, record_progress"
                )
        except RegistryError as exc:
            raise AnsibleActionFail(f"registry: {exc}") from None
        result["changed"] = changed
        if changed and self._task.diff:
            result["diff"] = {"before": before or {}, "after": row}
        return result

# Copyright: voice-fleet developers
# MIT License (see galaxy.yml)
"""The one client of the device registry (Supabase: PostgREST under ``/rest/v1/``).

Everything on the controller that reads or writes the registry goes through `RegistryClient`:
the inventory plugin (``supabase_devices``), the registry action (``voice_registry``) and the
tools (``tools/fleet.py``, ``tools/registry.py``, ``tools/publish.py``,
``tools/device_credential.py``). It gives them one set of rules:

- one HTTP connection per client (httpx, with a timeout and certificate checks), counted;
- connection errors, 5xx answers and PostgREST's "database unreachable" codes retried with
  backoff (0.5 s, 1 s, 2 s, ...); a refused key or a missing table is never retried;
- one wording for every failure (`RegistryError`), naming what was being done and the registry,
  never the key or a password in the URL.

The registry's enums (device, update and progress statuses) live here once as well.
Imported by its full name, ``ansible_collections.javia.voice_fleet.plugins.module_utils.
voice_registry_client``, from the collection or from a checkout (``collections/``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DEVICE_STATUSES = ("online", "offline", "updating", "retired")
UPDATE_TYPES = ("scheduled", "urgent")
DEVICE_UPDATE_STATUSES = ("pending", "downloading", "installing", "completed", "failed", "rolled_back")
FINAL_STATUSES = ("completed", "failed", "rolled_back")
MANAGEMENT_MODES = ("push", "pull")

# PostgREST's codes: the database cannot be reached right now (worth another try); the JWT is
# missing, invalid or expired, or has no privilege; relation unknown (old and new PostgREST);
# column unknown.
TRANSIENT_CODES = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST003"})
KEY_REFUSED_CODES = frozenset({"PGRST300", "PGRST301", "PGRST302", "42501"})
MISSING_TABLE_CODES = frozenset({"42P01", "PGRST205"})
MISSING_COLUMN_CODES = frozenset({"42703", "PGRST204"})
_MISSING_COLUMN = re.compile(r'column (?:"?[\w$]+"?\.)?"?([\w$]+)"? does not exist')

DEFAULT_USER_AGENT = "voice-fleet (registry client)"


class RegistryError(Exception):
    """A failure the operator can act on, in words; never carries the key.

    ``code`` is PostgREST's error code (or ""), ``status`` the HTTP status (or None when no answer
    came), ``column`` the unknown column a query named (or "").
    """

    def __init__(self, message: str, code: str = "", status: int | None = None, column: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.column = column


def display_url(url: str) -> str:
    """The URL with any password in it replaced, fit for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class Redactor:
    """Removes the key (and a password in the URL) from any text shown to people."""

    def __init__(self, *secrets: str | None) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text


def missing_column(message: str) -> str:
    """The column an "unknown column" answer names, or ""."""
    match = _MISSING_COLUMN.search(message or "")
    return match.group(1) if match else ""


class RegistryClient:
    """A supabase-py client on one counted httpx connection, with retries and clear errors.

    ``execute(what, query)`` runs a query built from ``table()`` or ``rpc()`` and returns its
    response (``.data``, ``.count``). ``what`` says what the request is for ("reading device X"):
    every error message starts with it.
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        retries: int = 3,
        timeout: float = 30.0,
        validate_certs: bool = True,
        user_agent: str = DEFAULT_USER_AGENT,
        backoff: float = 0.5,
    ) -> None:
        url = (url or "").strip()
        if not url:
            raise RegistryError("no registry URL: set SUPABASE_URL")
        if not url.startswith(("http://", "https://")):
            raise RegistryError(f"registry url must start with http:// or https://, got {display_url(url)!r}")
        if not key:
            raise RegistryError("no registry key: set SUPABASE_SERVICE_KEY")
        self.url = url
        self.shown_url = display_url(url)
        self.redact = Redactor(key, urlsplit(url).password)
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.requests = 0
        self.last_status: int | None = None
        try:
            # Imported here: a caller that never reaches the registry (an inventory cache hit)
            # never pays for supabase-py's import (0.7 s).
            import httpx  # noqa: PLC0415
            from supabase import create_client  # noqa: PLC0415
            from supabase.lib.client_options import SyncClientOptions  # noqa: PLC0415
        except ImportError as exc:
            raise RegistryError(
                f"the supabase Python package is missing on the controller ({exc.name}): "
                "install requirements.txt (make setup)"
            ) from None
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            verify=validate_certs,
            follow_redirects=True,
            headers={"User-Agent": user_agent},
            event_hooks={"response": [self._on_response]},
        )
        try:
            self.client = create_client(url, key, options=SyncClientOptions(httpx_client=self._http))
        except Exception as exc:
            self._http.close()
            raise RegistryError(
                f"cannot set up a client for {self.shown_url}: {self.redact(str(exc))}"
            ) from None

    def _on_response(self, response: Any) -> None:
        self.last_status = response.status_code
        self.requests += 1

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests

    def table(self, name: str) -> Any:
        return self.client.table(name)

    def rpc(self, name: str, params: dict[str, Any]) -> Any:
        return self.client.rpc(name, params)

    def execute(self, what: str, query: Any, *, table: str = "", repeatable: bool | None = None) -> Any:
        """Run one request, retrying what may pass (no connection, 5xx); raise RegistryError.

        ``repeatable``: the request may be sent twice (a function that sets states); by default
        only reads, updates, deletes and upserts are.
        """
        request = getattr(query, "request", None)
        if request is not None:
            # This client owns the retries: postgrest-py's own (GET only, 1 s, 2 s, 4 s) would
            # multiply them and hide the attempts from the count.
            request.retry_enabled = False
        for attempt in range(self.retries + 1):
            self.last_status = None
            try:
                return query.execute()
            except Exception as exc:  # supabase-py raises APIError, httpx errors, ValueError
                if attempt >= self.retries or not self.transient(exc, request, repeatable):
                    raise self.explain(exc, what, table) from None
                time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def rows(self, what: str, query: Any, *, table: str = "") -> list[dict[str, Any]]:
        """The rows a request returns ([] for none)."""
        data = self.execute(what, query, table=table).data
        return data if isinstance(data, list) else ([data] if isinstance(data, dict) else [])

    def transient(self, exc: Exception, request: Any = None, repeatable: bool | None = None) -> bool:
        """Worth another try: nothing was done (no connection, "database unreachable", 502/503),
        or it may have been done but doing it again changes nothing (a read, an update, a delete,
        an upsert). An insert or a function call whose answer was lost is not sent twice."""
        import httpx  # noqa: PLC0415
        from postgrest.exceptions import APIError  # noqa: PLC0415

        again = self._repeatable(request) if repeatable is None else repeatable
        if isinstance(exc, APIError):
            code = str(exc.code or "")
            if code in TRANSIENT_CODES or self.last_status in (502, 503):
                return True
            return again and ((self.last_status or 0) >= 500 or code.startswith("5"))
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
            return True
        if isinstance(exc, httpx.TransportError):
            return again
        # An answer that is not JSON (ValueError), or anything else: asking again changes nothing.
        return False

    @staticmethod
    def _repeatable(request: Any) -> bool:
        """A request that may be sent twice: nothing but POST inserts and calls are unsafe."""
        method = str(getattr(request, "http_method", "") or "").upper()
        if method != "POST":
            return bool(method)
        prefer = str(getattr(request, "headers", {}).get("Prefer", "") or "")
        return "resolution=merge-duplicates" in prefer

    # -- errors in the operator's words

    def explain(self, exc: BaseException, what: str, table: str = "") -> RegistryError:
        from postgrest.exceptions import APIError  # noqa: PLC0415

        if isinstance(exc, RegistryError):
            return exc
        if isinstance(exc, APIError):
            return self._explain_api_error(exc, what, table)
        status = self.last_status
        if isinstance(exc, ValueError):
            return RegistryError(
                f"{what}: {self.shown_url} did not answer like PostgREST (HTTP {status}): "
                "is this the URL of a Supabase project?",
                status=status,
            )
        reason = self.redact(str(exc)) or type(exc).__name__
        if status is None:
            return RegistryError(f"{what}: cannot reach the registry at {self.shown_url}: {reason}")
        return RegistryError(
            f"{what} at {self.shown_url} failed: {type(exc).__name__}: {reason}", status=status
        )

    def _explain_api_error(self, exc: Any, what: str, table: str) -> RegistryError:
        status = self.last_status
        code = str(exc.code or "")
        detail = self.redact(str(exc.message or exc.details or "no detail"))[:300]
        named = f"table {table!r}" if table else "the table"
        column = missing_column(str(exc.message or "")) if code in MISSING_COLUMN_CODES else ""
        if status in (401, 403) or code in KEY_REFUSED_CODES or "JWT" in str(exc.message or ""):
            message = (
                f"{what}: the registry at {self.shown_url} refused the key (HTTP {status}, "
                f"{code or 'no code'}: {detail}). Use the project's service role key (SUPABASE_SERVICE_KEY)."
            )
        elif code in MISSING_TABLE_CODES:
            message = (
                f"{what}: the registry at {self.shown_url} has no {named} ({code}: {detail}). "
                "Apply supabase/migrations/ to the project, or name the table it has."
            )
        elif column:
            message = (
                f"{what}: {named} at {self.shown_url} has no column {column!r} ({code}: {detail}). "
                "Apply supabase/migrations/ to the project."
            )
        elif not code or code == str(status):
            # Not PostgREST's JSON: a proxy, a load balancer, or not Supabase at all.
            answer = f"HTTP {status} {exc.message or ''}".rstrip()
            message = (
                f"{what}: the registry at {self.shown_url} answered {answer}, which is not an answer "
                "from PostgREST: is this the URL of a Supabase project, and is it up?"
            )
        else:
            message = f"{what}: the registry at {self.shown_url} answered HTTP {status}, {code}: {detail}"
        return RegistryError(message, code=code, status=status, column=column)


@contextlib.contextmanager
def session(
    env: Mapping[str, str], who: str, wrap: Callable[[RegistryError], Exception] | None = None
) -> Iterator[RegistryClient]:
    """A client on SUPABASE_URL / SUPABASE_SERVICE_KEY of `env`, closed after; for the tools.

    ``who`` names the caller in the User-Agent; ``wrap`` turns a RegistryError into the caller's
    own error type (its message kept).
    """
    try:
        with RegistryClient(
            env.get("SUPABASE_URL", ""),
            env.get("SUPABASE_SERVICE_KEY", ""),
            user_agent=f"voice-fleet ({who})",
        ) as client:
            yield client
    except RegistryError as exc:
        if wrap is None:
            raise
        raise wrap(exc) from None


def update_identity(update: Mapping[str, Any], operation: str) -> tuple[str, str]:
    """(version, update_type) of an `updates` row to write; a clear error for a bad one."""
    version = str(update.get("version") or "")
    if not version:
        raise RegistryError(f"{operation} needs update.version")
    update_type = update.get("update_type", "scheduled")
    if update_type not in UPDATE_TYPES:
        raise RegistryError(f"update_type {update_type!r} is not one of {', '.join(UPDATE_TYPES)}")
    return version, update_type


# --- the registry's state machine: the one place that writes it ---------------------

DEVICE_COLUMNS = "id,device_uuid,device_name,timezone,status,current_version,ansible_host,metadata"
DEVICE_FIELDS = ("device_name", "timezone", "status", "current_version", "ansible_host")
RECORD_FIELDS = (
    "device_uuid",
    "status",
    "error_message",
    "scheduled_for",
    "device_status",
    "current_version",
)


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


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
    """The registry's state machine (devices, updates, device_updates) on the one client."""

    def __init__(self, url: str, key: str, check_mode: bool, retries: int = 3) -> None:
        self.registry = RegistryClient(url, key, retries=retries, user_agent="voice-fleet (voice_registry)")
        self.client = self.registry.client
        self.url = url
        self.check_mode = check_mode

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.registry.close()

    def _run(self, what: str, query) -> list[dict[str, Any]]:
        return self.registry.rows(what, query)

    def _execute(self, what: str, query, repeatable: bool | None = None) -> Any:
        return self.registry.execute(what, query, repeatable=repeatable).data

    # -- a batch in one request

    def record_progress(self, update: dict[str, Any], records: list[Any]) -> tuple[bool, dict, None]:
        version, update_type = update_identity(update, "record_progress")
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
            # It sets states: sent twice, it writes what it wrote once.
            repeatable=True,
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
        version, update_type = update_identity(update, "ensure_update")
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

    def latest_progress(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` device_updates rows with their device's name and version (one request)."""
        return self._run(
            "reading the latest progress",
            self.client.table("device_updates")
            .select("status,error_message,started_at,completed_at,devices(device_name),updates(version)")
            .order("started_at", desc=True, nullsfirst=False)
            .order("id")
            .limit(limit),
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

    # -- the action's operations

    def operate(self, operation: Any, args: dict[str, Any]) -> tuple[bool, Any, Any, dict[str, Any]]:
        """(changed, row, row before, what the task returns) of one operation."""
        if operation == "register_device":
            changed, row, before = self.register_device(dict(args.get("device") or {}))
            return changed, row, before, {"device": row}
        if operation == "ensure_update":
            changed, row, before = self.ensure_update(dict(args.get("update") or {}))
            return changed, row, before, {"update": row}
        if operation == "latest_update":
            rows = self.latest_updates(max(1, int(args.get("limit") or 1)))
            row = rows[0] if rows else None
            return False, row, None, {"update": row, "updates": rows}
        if operation == "set_device_update":
            changed, row, before = self.set_device_update(args)
            return changed, row, before, {"device_update": row}
        if operation == "set_device":
            fields = {k: args[k] for k in ("status", "current_version") if args.get(k) is not None}
            changed, row, before = self.set_device(str(args.get("device_uuid") or ""), fields)
            return changed, row, before, {"device": row}
        if operation == "record_progress":
            changed, row, before = self.record_progress(
                dict(args.get("update") or {}), list(args.get("records") or [])
            )
            return changed, row, before, dict(row)
        raise RegistryError(
            f"operation {operation!r} is not one of register_device, ensure_update, latest_update, "
            "set_device_update, set_device, record_progress"
        )

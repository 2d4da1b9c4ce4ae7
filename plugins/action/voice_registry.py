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

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.javia.voice_fleet.plugins.module_utils.voice_registry_client import (
    Registry,
    RegistryError,
)


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
            with Registry(url, key, bool(self._task.check_mode), int(args.get("retries", 3))) as registry:
                changed, row, before, answer = registry.operate(operation, args)
            result.update(answer)
        except RegistryError as exc:
            raise AnsibleActionFail(f"registry: {exc}") from None
        result["changed"] = changed
        if changed and self._task.diff:
            result["diff"] = {"before": before or {}, "after": row}
        return result

"""``voice-client status``: what the scheduler needs, read from the state files only.

Never touches audio or GPIO, so it runs beside the service (as root or as the
service user). ``busy`` is only believed while the process that wrote it is
alive: a crash mid-interaction must not block urgent updates forever.
"""

from __future__ import annotations

import os
from typing import Any

from voice_client import version
from voice_client.config import Config
from voice_client.identity import read_identity
from voice_client.state import StateStore, boot_id, iso, utc_now


def _alive(pid: int | None, written_in_boot: str | None) -> bool:
    if pid is None or pid <= 0:
        return False
    if written_in_boot is not None and written_in_boot != boot_id():
        return False  # written before a reboot: that pid is someone else now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def collect_status(config: Config) -> dict[str, Any]:
    """The status document (raises IdentityError for an unusable identity file)."""
    store = StateStore(config.state_dir)
    activity = store.load_activity()
    running = _alive(activity.pid, activity.boot_id)
    busy = activity.busy and running
    idle_seconds: int | None
    if busy:
        idle_seconds = 0
    elif activity.last_activity is None:
        idle_seconds = None
    else:
        idle_seconds = max(0, int((utc_now() - activity.last_activity).total_seconds()))
    return {
        "device_uuid": read_identity(config.identity_file),
        "version": version(),
        "busy": busy,
        "state": activity.state if running else "stopped",
        "last_activity": iso(activity.last_activity),
        "idle_seconds": idle_seconds,
        "volume": store.load_volume(config.initial_volume),
        "service_pid": activity.pid if running else None,
    }

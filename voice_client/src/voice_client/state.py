"""Files in the state directory: written atomically, kept forever.

``device_uuid`` (the identity, see :mod:`voice_client.identity`), ``volume``,
``activity.json`` and ``session_id``. Every write goes to a temporary file in
the same directory, is fsynced, renamed over the target and the directory is
fsynced, so a power cut leaves either the old or the new content, never a torn
file.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

VOLUME_FILE = "volume"
ACTIVITY_FILE = "activity.json"
SESSION_FILE = "session_id"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(path: Path, data: bytes, mode: int) -> Path:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not widen or narrow it
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically (temporary file, fsync, rename, fsync dir)."""
    payload = data.encode() if isinstance(data, str) else data
    tmp = _write_temp(path, payload, mode)
    try:
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_create(path: Path, data: bytes | str, mode: int = 0o600) -> bool:
    """Create ``path`` atomically with ``data`` unless it exists; True if this call created it.

    A hard link from the fsynced temporary file makes the new name appear with
    its full content at once and fails if the name is taken, so two racing
    writers never replace each other's file.
    """
    payload = data.encode() if isinstance(data, str) else data
    tmp = _write_temp(path, payload, mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def boot_id() -> str | None:
    """This boot's id: a pid in activity.json only means something within the boot that wrote it."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``-free ``+00:00`` offset, seconds precision."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Activity:
    """What ``activity.json`` holds: when the device was last used, and whether it is now."""

    last_activity: datetime | None
    busy: bool
    state: str = "idle"
    pid: int | None = None
    boot_id: str | None = None  # of the boot that wrote it (stamped on save)

    def to_json(self) -> dict[str, Any]:
        return {
            "last_activity": iso(self.last_activity),
            "busy": self.busy,
            "state": self.state,
            "pid": self.pid,
            "boot_id": boot_id(),
            "updated": iso(utc_now()),
        }


class StateStore:
    """Reads and writes the state directory's files (not the identity)."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir

    # -- volume -----------------------------------------------------------
    def load_volume(self, default: int) -> int:
        path = self.dir / VOLUME_FILE
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return default
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read %s (%s); using volume %d", path, exc, default)
            return default
        try:
            value = int(text)
        except ValueError:
            value = -1
        if not 0 <= value <= 100:
            log.warning("%s holds %r, not a volume in 0..100; using %d", path, text[:20], default)
            return default
        return value

    def save_volume(self, volume: int) -> None:
        atomic_write(self.dir / VOLUME_FILE, f"{volume}\n", 0o644)

    # -- session id -------------------------------------------------------
    def load_session_id(self) -> str | None:
        try:
            value = (self.dir / SESSION_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read the session id (%s); starting a new session", exc)
            return None
        return value or None

    def save_session_id(self, session_id: str) -> None:
        atomic_write(self.dir / SESSION_FILE, session_id.strip() + "\n", 0o600)

    # -- activity ---------------------------------------------------------
    def load_activity(self) -> Activity:
        """The recorded activity; a missing or unreadable file means 'never used, not busy'."""
        path = self.dir / ACTIVITY_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Activity(last_activity=None, busy=False, state="unknown")
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s (%s); treating the device as idle", path, exc)
            return Activity(last_activity=None, busy=False, state="unknown")
        last = data.get("last_activity") if isinstance(data, dict) else None
        try:
            moment = datetime.fromisoformat(last) if isinstance(last, str) else None
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        pid = data.get("pid") if isinstance(data, dict) else None
        boot = data.get("boot_id") if isinstance(data, dict) else None
        return Activity(
            last_activity=moment,
            busy=bool(data.get("busy")) if isinstance(data, dict) else False,
            state=str(data.get("state", "unknown")) if isinstance(data, dict) else "unknown",
            pid=pid if isinstance(pid, int) else None,
            boot_id=boot if isinstance(boot, str) else None,
        )

    def save_activity(self, activity: Activity) -> None:
        text = json.dumps(activity.to_json(), sort_keys=True) + "\n"
        atomic_write(self.dir / ACTIVITY_FILE, text, 0o644)

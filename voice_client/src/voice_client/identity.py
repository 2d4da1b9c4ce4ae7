"""The device's identity: a UUID7 in ``STATE_DIR/device_uuid``, created once.

The registry knows a device by this value, so it must never change behind an
operator's back: an unreadable or corrupt file is a fatal error (the file is
left as it is for a person to look at), never a reason to make a new one.
A legacy Javia ``~/.javia_device_uuid`` is adopted instead of generating.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from uuid6 import uuid7

from voice_client.state import atomic_create

log = logging.getLogger(__name__)

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")


class IdentityError(RuntimeError):
    """The identity file exists but cannot be used."""


def _read_uuid(path: Path, what: str) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise IdentityError(
            f"cannot read the {what} {path}: {exc.strerror or exc}. It was left untouched; "
            "fix its permissions (the service user must read it) rather than deleting it: "
            "the registry knows this device by that value"
        ) from exc
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        text = None
    if text is None or not _UUID.match(text):
        shown = repr(raw[:60]) + ("..." if len(raw) > 60 else "")
        raise IdentityError(
            f"the {what} {path} is corrupt: expected one UUID, found {shown}. It was left untouched; "
            "restore the device's UUID from the registry (devices.device_uuid) into that file"
        )
    return text


def read_identity(path: Path) -> str | None:
    """The UUID in ``path``; None if the file does not exist; IdentityError if unusable."""
    if not path.exists() and not path.is_symlink():
        return None
    return _read_uuid(path, "identity file")


def ensure_identity(path: Path, legacy_file: Path | None = None) -> tuple[str, str]:
    """Return ``(uuid, how)``: the existing identity, else the adopted legacy one, else a new UUID7.

    ``how`` is ``existing``, ``adopted`` or ``created``. Creation is atomic and
    never replaces a file that appeared meanwhile (the winner's value is returned).
    """
    current = read_identity(path)
    if current is not None:
        return current, "existing"
    how = "created"
    if legacy_file is not None and (legacy_file.exists() or legacy_file.is_symlink()):
        value = _read_uuid(legacy_file, "legacy identity file (LEGACY_UUID_FILE)")
        how = "adopted"
    else:
        value = str(uuid7())
    path.parent.mkdir(parents=True, exist_ok=True)
    if not atomic_create(path, value + "\n", 0o600):
        existing = read_identity(path)
        if existing is None:  # pragma: no cover - removed between link and read
            raise IdentityError(f"the identity file {path} vanished while it was being created")
        return existing, "existing"
    log.info("device identity %s: %s", how, value)
    return value, how

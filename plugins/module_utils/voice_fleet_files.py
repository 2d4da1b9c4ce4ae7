"""Durable file writes and reads on the devices, shared by the device-side modules.

voice_release_build, voice_release_activate and voice_device_state import it as
``ansible.module_utils.voice_fleet_files`` (Ansible ships it with each module);
the pull agent, which runs them without Ansible, keeps it beside them and
imports it by its own name. Standard library only (but `verify_signature`, which
imports `cryptography` when called: python3-cryptography on a device, the
controller's venv for push): it runs on the device's python3.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import tempfile


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SignatureError(Exception):
    """A manifest whose signature cannot be checked, or does not hold; the message says which."""


def verify_signature(public_key_pem: bytes, data: bytes, signature: bytes, key_name: str = "key") -> None:
    """Raise SignatureError unless `signature` (base64 text) is the ed25519 signature of `data`.

    The one check of a published manifest: the pull agent on the device and a push controller
    resolving an `updates` row that names one (cryptography's ed25519, never hand-written).
    """
    try:
        from cryptography.exceptions import InvalidSignature  # noqa: PLC0415 (only when verifying)
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: PLC0415
        from cryptography.hazmat.primitives.serialization import load_pem_public_key  # noqa: PLC0415
    except ImportError:
        raise SignatureError("the cryptography package is not installed: cannot verify") from None
    try:
        key = load_pem_public_key(public_key_pem)
    except ValueError as exc:
        raise SignatureError(f"publisher {key_name}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"publisher {key_name} is not an ed25519 public key")
    try:
        key.verify(base64.b64decode(signature.strip(), validate=True), data)
    except (InvalidSignature, ValueError):
        raise SignatureError("bad signature: the manifest was not signed by the publisher's key") from None


def fsync_dir(path: str) -> None:
    """Make a rename or a new link in `path` survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes | str, mode: int = 0o644, uid: int = -1, gid: int = -1) -> None:
    """Write via a temporary file in the same directory, fsync, rename, fsync the directory.

    Readers see the old file or the new one, never a part; after a power cut the
    file is either there whole or not changed. uid and gid (-1: the writer's) are
    set before the rename, so the file never shows with another owner.
    """
    directory = os.path.dirname(path) or "."
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if uid != -1 or gid != -1:
            os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def read_json(path: str) -> dict:
    """A JSON object from a file; {} when it is missing, unreadable or not an object."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def release_lock(path: str, owner: str) -> bool:
    """Give the device's update lock back when `owner` holds it; whether it was given back.

    voice_device_state takes the lock; it and voice_release_activate give it back.
    """
    if not owner or read_json(path).get("owner") != owner:
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True

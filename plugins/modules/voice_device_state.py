#!/usr/bin/python
"""Read everything a rollout needs to know about a device, in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: voice_device_state
short_description: Read a voice-client device's state in one run (identity, releases, stamp, unit, platform)
description:
  - Reads, without changing anything, what the controller needs to plan an update of one device -
    its identity, the active and previous releases and the active release's completion marker,
    the complete releases present, the provisioning stamp and a fingerprint of the files the
    provisioning manages, the unit's state, the Python platform, free disk space and the wheels
    already in the device's wheel cache.
  - With O(write_stamp), records the provisioning stamp (the controller's inputs hash and the
    fingerprint of the managed files as they are now) and returns the state.
  - Compares the stamp with O(expected_inputs) and the fingerprint on the device and says
    whether the provisioning must run, and why.
options:
  base:
    description: The client's base directory.
    type: path
    default: /opt/voice-client
  identity_file:
    description: The device's identity (one line, the UUID7).
    type: path
    default: /var/lib/voice-client/device_uuid
  stamp_file:
    description: Where the provisioning stamp lives (root only, 0600).
    type: path
    default: /opt/voice-client/provisioned.json
  service:
    description: The client's systemd unit.
    type: str
    default: voice-client.service
  managed_files:
    description: Paths whose owner, group, mode and content the provisioning manages.
    type: list
    elements: path
    default: []
  expected_inputs:
    description: The controller's hash of the provisioning inputs; empty skips the comparison.
    type: str
    default: ""
  write_stamp:
    description: Record O(expected_inputs) and the current fingerprint as the stamp.
    type: bool
    default: false
  lock:
    description:
      - C(acquire) takes the device's update lock for O(lock_owner) (waiting up to O(lock_wait) seconds
        for another holder), C(release) gives it back (only when O(lock_owner) holds it), C(none) leaves it.
      - Two controllers (cron and an operator, two AWX nodes) never update one device at once; a lock
        older than O(lock_stale) seconds (its holder died) is taken over.
    type: str
    choices: [none, acquire, release, break]
    default: none
  lock_owner:
    description: Who takes the lock (controller host, process, run); named in the message of a refused wait.
    type: str
    default: ""
  lock_controller:
    description:
      - The controller host and its ansible-playbook process id (C(host:pid)), recorded in the lock
        so that the same controller can tell a holder that died (C(lock=break) removes a lock only
        when O(lock_owner) is its owner).
    type: str
    default: ""
  lock_wait:
    description: Seconds to wait for another holder before failing.
    type: int
    default: 300
  lock_stale:
    description: Seconds after which a lock is considered left behind by a holder that died.
    type: int
    default: 3600
  lock_file:
    description: The lock (on tmpfs, so a reboot releases it).
    type: path
    default: /run/voice-client-update.lock
  probe:
    description:
      - Paths to look for (C(~user/...) is that user's home); RV(probed) says which exist.
      - What spares the provisioning a role whose work has no trace on the device (a legacy
        Javia client).
    type: list
    elements: path
    default: []
  model_files:
    description: Where the board model is read from, the first that exists (RV(board_model)).
    type: list
    elements: path
    default: [/sys/firmware/devicetree/base/model, /proc/device-tree/model]
author:
  - voice-fleet developers (@javia)
"""

EXAMPLES = r"""
- name: Read the device
  voice_device_state:
    managed_files: [/etc/systemd/system/voice-client.service, /etc/voice-client/voice-client.env]
    expected_inputs: "{{ inputs_hash }}"
  register: state
"""

RETURN = r"""
device_uuid:
  description: The identity, empty when missing.
  type: str
  returned: always
active:
  description: Release id that current points at, empty when none.
  type: str
  returned: always
previous:
  description: Release id that previous points at, empty when none.
  type: str
  returned: always
marker:
  description:
    - The active release's completion marker (JSON) without its C(installed) distributions (the
      build reads those on the device), empty when none.
  type: dict
  returned: always
releases:
  description: Complete releases present, sorted.
  type: list
  returned: always
stamp:
  description: The provisioning stamp (format and inputs), empty when none.
  type: dict
  returned: always
fingerprint:
  description: Path to owner:group:mode:sha256 (or "absent") of each managed file.
  type: dict
  returned: always
provision_needed:
  description: Whether the provisioning must run.
  type: bool
  returned: always
provision_reasons:
  description: Why it must run.
  type: list
  returned: always
unit:
  description: The unit's ActiveState, SubState, MainPID, NRestarts, UnitFileState and Result.
  type: dict
  returned: always
platform:
  description: arch, python and glibc of the device's python3.
  type: dict
  returned: always
disk_free_bytes:
  description: Free bytes where releases are built.
  type: int
  returned: always
wheels:
  description: Platform key to the wheel file names in the device's wheel cache.
  type: dict
  returned: always
lock:
  description: The lock after this run (owner, since, host pid), empty when nobody holds it.
  type: dict
  returned: always
probed:
  description: Each path of O(probe) (C(~user) expanded) to whether it exists.
  type: dict
  returned: always
board_model:
  description: >-
    The board model from the device tree (for example C(Raspberry Pi 4 Model B Rev 1.5)), empty
    without one.
  type: str
  returned: always
"""

import contextlib  # noqa: E402
import grp  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import pwd  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

try:  # Ansible ships it with the module (the collection's module_utils).
    from ansible_collections.javia.voice_fleet.plugins.module_utils.voice_fleet_files import (
        read_json,
        release_lock,
        write_atomic,
    )
except ImportError:  # pragma: no cover - the pull agent keeps it beside the module, on the device
    from voice_fleet_files import read_json, release_lock, write_atomic  # type: ignore[no-redef]

STAMP_FORMAT = 1
MARKER = ".build-complete"
UNIT_PROPERTIES = ("ActiveState", "SubState", "MainPID", "NRestarts", "UnitFileState", "Result")


def link_target(path: str) -> str:
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return ""


def read_identity(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readline().strip()
    except OSError:
        return ""


def board_model(paths: list[str]) -> str:
    """The first model file's text; the device tree ends its strings with NUL."""
    for path in paths:
        try:
            with open(path, "rb") as handle:
                return handle.read(4096).replace(b"\0", b"").decode("utf-8", "replace").strip()
        except OSError:
            continue
    return ""


def probe(paths: list[str]) -> dict[str, bool]:
    """Each path to whether it exists (a dangling link counts)."""
    return {path: os.path.lexists(path) for path in paths}


def fingerprint(path: str) -> str:
    """owner:group:mode:sha256 of a file, 'dir' for directories, 'absent' when missing."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "absent"
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    head = f"{owner}:{group}:{stat.S_IMODE(info.st_mode):04o}"
    if stat.S_ISLNK(info.st_mode):
        return f"{head}:link:{os.readlink(path)}"
    if not stat.S_ISREG(info.st_mode):
        return f"{head}:{'dir' if stat.S_ISDIR(info.st_mode) else 'other'}"
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return f"{head}:{digest.hexdigest()}"


def unit_state(service: str) -> dict:
    try:
        out = subprocess.run(
            ["systemctl", "show", service, "--property=" + ",".join(UNIT_PROPERTIES)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def complete_releases(base: str) -> list[str]:
    releases = os.path.join(base, "releases")
    try:
        names = os.listdir(releases)
    except OSError:
        return []
    return sorted(n for n in names if os.path.isfile(os.path.join(releases, n, MARKER)))


def cached_wheels(base: str) -> dict:
    wheels_dir = os.path.join(base, "wheels")
    result = {}
    try:
        platforms = os.listdir(wheels_dir)
    except OSError:
        return result
    for key in sorted(platforms):
        try:
            result[key] = sorted(n for n in os.listdir(os.path.join(wheels_dir, key)) if n.endswith(".whl"))
        except OSError:
            continue
    return result


def python_platform() -> dict:
    return {
        "arch": platform.machine(),
        "python": "{}.{}".format(*sys.version_info[:2]),
        "glibc": platform.libc_ver()[1],
    }


def provision_verdict(stamp: dict, expected: str, prints: dict) -> list[str]:
    """Why the provisioning must run (empty: it need not)."""
    if not stamp:
        return ["the device was never provisioned by this collection (no stamp)"]
    reasons = []
    if stamp.get("format") != STAMP_FORMAT:
        reasons.append(f"stamp format {stamp.get('format')!r} is not {STAMP_FORMAT}")
    if expected and stamp.get("inputs") != expected:
        reasons.append("the provisioning inputs changed (roles, variables or packages)")
    recorded = stamp.get("files") or {}
    for path, now in sorted(prints.items()):
        if recorded.get(path) != now:
            how = "missing" if now == "absent" else "edited"
            reasons.append(f"{path} differs from what the provisioning left ({how})")
    return reasons


class LockBusyError(Exception):
    """Another controller holds the device's update lock."""


def read_lock(path: str) -> dict:
    data = read_json(path)
    if data:
        try:
            data["age"] = max(0, int(time.time() - os.stat(path).st_mtime))
        except OSError:
            return {}
    return data


def acquire_lock(path: str, owner: str, wait: int, stale: int, controller: str = "") -> dict:
    """Take the lock for owner (re-entrant), waiting up to `wait` seconds; take over a stale one."""
    deadline = time.monotonic() + max(0, wait)
    while True:
        holder = read_lock(path)
        if holder.get("owner") == owner:
            os.utime(path)
            return read_lock(path)
        if holder and holder.get("age", 0) >= stale:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # its holder died: never blocks updates forever
            holder = {}
        if not holder:
            mine = {
                "owner": owner,
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "controller": controller,
            }
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue  # someone else was faster: look again
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(mine, handle)
                handle.flush()
                os.fsync(handle.fileno())
            return read_lock(path)
        if time.monotonic() >= deadline:
            who, since, age = holder.get("owner", "unknown"), holder.get("since", "?"), holder.get("age", "?")
            raise LockBusyError(
                f"another run is updating this device: {who} holds {path} since {since} ({age} s); "
                f"waited {wait} s. It is released when that run ends (or taken over after {stale} s "
                "if its controller died)"
            )
        time.sleep(1)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "base": {"type": "path", "default": "/opt/voice-client"},
            "identity_file": {"type": "path", "default": "/var/lib/voice-client/device_uuid"},
            "stamp_file": {"type": "path", "default": "/opt/voice-client/provisioned.json"},
            "service": {"type": "str", "default": "voice-client.service"},
            "managed_files": {"type": "list", "elements": "path", "default": []},
            "expected_inputs": {"type": "str", "default": "", "no_log": False},
            "write_stamp": {"type": "bool", "default": False},
            "lock": {"type": "str", "choices": ["none", "acquire", "release", "break"], "default": "none"},
            "lock_owner": {"type": "str", "default": ""},
            "lock_controller": {"type": "str", "default": ""},
            "lock_wait": {"type": "int", "default": 300},
            "lock_stale": {"type": "int", "default": 3600},
            "lock_file": {"type": "path", "default": "/run/voice-client-update.lock"},
            "probe": {"type": "list", "elements": "path", "default": []},
            "model_files": {
                "type": "list",
                "elements": "path",
                "default": ["/sys/firmware/devicetree/base/model", "/proc/device-tree/model"],
            },
        },
        supports_check_mode=True,
    )
    params = module.params
    base = params["base"]
    changed = False
    if params["lock"] != "none" and not params["lock_owner"]:
        module.fail_json(msg="lock_owner is required to take or give back the update lock")
    if params["lock"] == "acquire" and not module.check_mode:
        try:
            acquire_lock(
                params["lock_file"],
                params["lock_owner"],
                params["lock_wait"],
                params["lock_stale"],
                params["lock_controller"],
            )
        except LockBusyError as exc:
            module.fail_json(msg=str(exc), lock=read_lock(params["lock_file"]))
        changed = True
    elif params["lock"] in ("release", "break") and not module.check_mode:
        # break: the controller found the holder's run dead; lock_owner names that holder.
        changed = release_lock(params["lock_file"], params["lock_owner"])
    prints = {path: fingerprint(path) for path in params["managed_files"]}
    stamp = read_json(params["stamp_file"])
    if params["write_stamp"]:
        new = {"format": STAMP_FORMAT, "inputs": params["expected_inputs"], "files": prints}
        if new != stamp:
            changed = True
            if not module.check_mode:
                try:
                    os.makedirs(os.path.dirname(params["stamp_file"]), mode=0o755, exist_ok=True)
                    text = json.dumps(new, indent=2, sort_keys=True) + "\n"
                    write_atomic(params["stamp_file"], text, mode=0o600)
                except OSError as exc:
                    module.fail_json(msg=f"cannot write the provisioning stamp {params['stamp_file']}: {exc}")
            stamp = new
    reasons = provision_verdict(stamp, params["expected_inputs"], prints)
    active = link_target(os.path.join(base, "current"))
    marker = read_json(os.path.join(base, "current", MARKER)) if active else {}
    # The installed distributions are the build's to read, on the device: without them the
    # result is a tenth of the size, and the controller copies it in every task of the host.
    marker.pop("installed", None)
    try:
        vfs = os.statvfs(base if os.path.isdir(base) else "/")
        free = vfs.f_bavail * vfs.f_frsize
    except OSError:
        free = 0
    module.exit_json(
        changed=changed,
        device_uuid=read_identity(params["identity_file"]),
        active=active,
        previous=link_target(os.path.join(base, "previous")),
        marker=marker,
        releases=complete_releases(base),
        stamp={k: v for k, v in stamp.items() if k != "files"},
        fingerprint=prints,
        provision_needed=bool(reasons),
        provision_reasons=reasons,
        unit=unit_state(params["service"]),
        platform=python_platform(),
        disk_free_bytes=free,
        wheels=cached_wheels(base),
        lock=read_lock(params["lock_file"]),
        probed=probe(params["probe"]),
        board_model=board_model(params["model_files"]),
    )


if __name__ == "__main__":
    main()

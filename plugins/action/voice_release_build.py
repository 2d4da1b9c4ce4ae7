"""Build a release on the device, sending the wheels it lacks with the same task.

An action plugin in front of the ``voice_release_build`` module. Besides the
module's options it takes:

``send``
    wheel file name -> path on the controller, for the wheels the device lacks.
    They are packed into one tar on the controller (under ``pack_dir``, named by
    the wheels' sha256, so the batch's devices share one file), put into the
    task's temporary directory on the device in one transfer, and handed to the
    module as ``incoming`` (which checks every hash and deletes the file).
``pack_dir``
    where the controller keeps the packed tars.

Without ``send`` it runs the module as it is. In check mode nothing is sent.
One task, one module run: the tar is made in this process, not by a command
module on localhost, and no separate task creates a directory or copies a file.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tarfile
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

BUILD = "javia.voice_fleet.voice_release_build"


def packed_name(send: dict[str, str], wheels: dict[str, str]) -> str:
    """The tar's file name: the sha256 over the sent wheels' names and hashes."""
    digest = hashlib.sha256()
    for name in sorted(send):
        digest.update(f"{name}\0{wheels[name]}\n".encode())
    return digest.hexdigest() + ".tar"


def pack(send: dict[str, str], wheels: dict[str, str], pack_dir: str) -> str:
    """The tar of the wheels in `send` (bare member names), made once and reused."""
    for name, path in sorted(send.items()):
        if name not in wheels:
            raise AnsibleActionFail(
                f"voice_release_build: send names {name!r}, which is not a wheel of the release"
            )
        if os.path.basename(path) != name or not os.path.isfile(path):
            raise AnsibleActionFail(
                f"voice_release_build: send: {name!r} -> {path!r} is not that wheel's file"
            )
    os.makedirs(pack_dir, mode=0o755, exist_ok=True)
    target = os.path.join(pack_dir, packed_name(send, wheels))
    if os.path.isfile(target):
        return target
    # The batch's workers start at once: one packs, the others wait for its file.
    with open(os.path.join(pack_dir, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isfile(target):
            return target
        fd, part = tempfile.mkstemp(dir=pack_dir, prefix=".packing-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
                for name in sorted(send):
                    tar.add(send[name], arcname=name, recursive=False)
            os.chmod(part, 0o644)
            os.replace(part, target)
        except BaseException:
            if os.path.exists(part):
                os.unlink(part)
            raise
    return target


class ActionModule(ActionBase):
    TRANSFERS_FILES = False  # a temporary directory only when there is something to send

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        send = args.pop("send", None) or {}
        pack_dir = args.pop("pack_dir", None)
        if not isinstance(send, dict):
            raise AnsibleActionFail(
                f"voice_release_build: send must be a dict of wheel name -> path, got {send!r}"
            )
        if send and args.get("incoming"):
            raise AnsibleActionFail("voice_release_build: give send or incoming, not both")
        if send and not pack_dir:
            raise AnsibleActionFail(
                "voice_release_build: send needs pack_dir (where the controller packs the wheels)"
            )
        try:
            if send and not self._task.check_mode:
                local = pack(
                    {str(k): str(v) for k, v in send.items()}, dict(args.get("wheels") or {}), str(pack_dir)
                )
                tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
                remote = self._connection._shell.join_path(tmpdir, "incoming.tar")
                self._transfer_file(local, remote)
                self._fixup_perms2((tmpdir, remote))
                args["incoming"] = remote
                result["sent"] = sorted(send)
            result.update(
                self._execute_module(module_name=BUILD, module_args=args, task_vars=task_vars or {})
            )
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

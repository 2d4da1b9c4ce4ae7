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

``activate``
    the options of ``voice_release_activate``: once the build succeeded, the
    same task activates the release behind the health gate. The result is then
    the release's verdict (``release``, ``active``, ``previous``, ``outcome``,
    ``step``, ``error``, ``restored_ok``; the module results under ``build``
    and ``activation``), failed with a message naming the host and the step
    when the build or the gate failed. Every task of a rollout costs the
    controller CPU per device: building and activating in one task spares
    the tasks that carried one result to the other.
``build``
    false when the release is complete on the device already: only activate
    (``switch.yml``: the uv installer and rollback). The build module's own
    options are then not needed.
``current``
    ``active`` and ``previous`` as the caller read them, reported as they
    are when the build fails (the links were not touched).
``release``
    the release and the device, from which the action derives the build's
    options in Python (a per-host task's Jinja costs the controller more):
    ``house`` (the wheelhouse's platform: release id, files, requirements,
    client wheel), ``base`` (the device's layout root), ``device``
    (``active``, ``previous``, the complete ``releases`` and the ``wheels``
    the device has for the platform) and ``expected`` (the release the caller
    planned, or empty). It gives ``release_dir``, ``wheel_dir``, ``tools_dir``,
    ``requirements``, ``wheels``, ``marker``, ``previous_release_dir``,
    ``build``, ``current``, ``send`` and the activation's ``release``; a
    wheelhouse that is incomplete, or that gives another release than the one
    planned, fails the task before the device is touched.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tarfile
import tempfile
from dataclasses import dataclass
from typing import Any

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.javia.voice_fleet.plugins.filter.voice_release import (
    voice_release_wheelhouse_problem,
)
from ansible_collections.javia.voice_fleet.plugins.modules.voice_release_build import release_params

BUILD = "javia.voice_fleet.voice_release_build"
ACTIVATE = "javia.voice_fleet.voice_release_activate"
# The activation's outcomes that leave the release active (or would, in check mode).
ACTIVE_OUTCOMES = ("activated", "unchanged", "would_activate", "would_start")


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


def failure_text(result: dict) -> str:
    """What a failed module run said: its error, else the last line of its stderr, else its msg."""
    lines = [
        line.strip()
        for line in str(result.get("stderr") or result.get("module_stderr") or "").splitlines()
        if line.strip()
    ]
    return str(result.get("error") or (lines[-1] if lines else "") or result.get("msg") or "unknown error")


def without_invocation(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "invocation"}


def release_verdict(host: str, release: str, current: dict, built: dict, activation: dict | None) -> dict:
    """The release's outcome from the build's and the activation's results, as the role reports it."""
    active, previous = str(current.get("active") or ""), str(current.get("previous") or "")
    # Never `unreachable`: the rollout play ignores unreachable hosts so that it can
    # record them, and a lost connection must fail the host with the step it was in.
    # The module results go in without their invocation (the build's holds the whole
    # requirements file): a failed host's result is printed, and Ansible strips only the
    # top-level invocation.
    built = without_invocation(built)
    activation = None if activation is None else without_invocation(activation)
    verdict: dict = {"release": release, "build": built, "restored_ok": True}
    if activation is None:  # the build failed: nothing was switched
        step = str(built.get("step") or "build")
        error = failure_text(built)
        still = f"the active release is still {active}" if active else "no release is active"
        return {
            **verdict,
            "failed": True,
            "changed": bool(built.get("changed")),
            "active": active,
            "previous": previous,
            "outcome": "failed",
            "step": step,
            "error": error,
            "msg": f'release {release} was not activated on {host}: step "{step}" failed: {error}; {still}',
        }
    outcome = str(activation.get("outcome") or "failed")
    verdict.update(
        activation=activation,
        changed=bool(built.get("changed") or activation.get("changed")),
        active=str(activation.get("active", active) or ""),
        previous=str(activation.get("previous", previous) or ""),
        outcome=outcome,
        step=str(activation.get("step", "activation")),
        error=str(activation.get("error", activation.get("msg", "")) or ""),
        restored_ok=bool(activation.get("restored_ok", True)),
        msg=str(activation.get("msg") or ""),
    )
    if outcome not in ACTIVE_OUTCOMES:
        verdict["failed"] = True
        verdict["msg"] = (
            verdict["msg"] or f"release {release} was not activated on {host}: {verdict['error']}"
        )
    return verdict


def derive(args: dict, release: Any, host: str, check_mode: bool) -> dict | None:
    """Fill `args` from `release` (see the module's docstring).

    Returns the task's result when the device must not build (a failed verdict naming
    the wheelhouse), or, in check mode, cannot be planned yet; else None.
    """
    if not isinstance(release, dict) or not release.get("base"):
        raise AnsibleActionFail(
            f"voice_release_build: release must give house, base, device and expected, got {release!r}"
        )
    house, device = release.get("house") or {}, release.get("device") or {}
    active, previous = str(device.get("active") or ""), str(device.get("previous") or "")
    current = {"active": active, "previous": previous}
    problem = voice_release_wheelhouse_problem(house, str(release.get("expected") or ""), check_mode)
    release_id = str(house["release_id"])  # the check above names a house without one
    if problem:
        built = {"failed": True, "step": "wheelhouse", "error": problem}
        return release_verdict(host, release_id, current, built, None)
    if not house.get("complete"):  # check mode: the controller has not downloaded the wheels yet
        return {"changed": True, "msg": "would build the release once the wheelhouse is downloaded"}
    try:
        with open(str(house["requirements"]), encoding="utf-8") as fh:
            requirements = fh.read()
    except OSError as exc:
        raise AnsibleActionFail(f"voice_release_build: the release's lock: {exc}") from None
    args.update(release_params(house, requirements, str(release["base"]), active))
    files = house.get("files") or {}
    present = {str(name) for name in device.get("wheels") or []}
    send = (set(files) - present) | {str(house["client_wheel"])}
    args["send"] = {name: str(files[name]["path"]) for name in sorted(send)}
    args["build"] = release_id not in [str(r) for r in device.get("releases") or []]
    args["current"] = current
    if isinstance(args.get("activate"), dict):
        args["activate"] = {**args["activate"], "release": release_id}
    return None


@dataclass(frozen=True)
class Options:
    """The action's own options (the build module never sees them)."""

    send: dict
    pack_dir: str | None
    activate: dict | None
    build: bool
    current: dict


def options(args: dict) -> Options:
    """The action's own options, taken out of `args` (what stays is the build module's): checked."""
    send = args.pop("send", None) or {}
    pack_dir = args.pop("pack_dir", None)
    activate = args.pop("activate", None)
    build = boolean(args.pop("build", True), strict=False)
    current = args.pop("current", None) or {}
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
    if activate is not None and not isinstance(activate, dict):
        raise AnsibleActionFail(
            f"voice_release_build: activate must be voice_release_activate's options, got {activate!r}"
        )
    if not build and activate is None:
        raise AnsibleActionFail("voice_release_build: build: false only makes sense with activate")
    return Options(send, pack_dir, activate, build, current)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False  # a temporary directory only when there is something to send

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        args = dict(self._task.args)
        if "release" in args:
            host = str(task_vars.get("inventory_hostname") or "the device")
            early = derive(args, args.pop("release"), host, bool(self._task.check_mode))
            if early is not None:
                return {**result, **early}
        opts = options(args)
        try:
            if opts.activate is None:
                result.update(self._build(args, opts, task_vars))
                return result
            result.update(self._release(args, opts, task_vars))
            return result
        finally:
            try:
                self._remove_tmp_path(self._connection._shell.tmpdir)
            except AnsibleConnectionFailure:
                # The verdict already says the connection was lost (and at which step); a
                # cleanup error here would turn it into an unreachable host, which the
                # rollout play ignores. The device keeps an empty temporary directory, and
                # Ansible's own cleanup after the task must not try again.
                if opts.activate is None:
                    raise
                self._connection._shell.tmpdir = None

    def _release(self, args: dict, opts: Options, task_vars: dict) -> dict:
        """Build (unless built), then activate: the release's verdict."""
        activate, current = opts.activate or {}, opts.current
        host = str(task_vars.get("inventory_hostname") or "the device")
        release = str(activate.get("release") or os.path.basename(str(args.get("release_dir") or "")))
        try:
            built = self._build(args, opts, task_vars) if opts.build else {}
        except AnsibleConnectionFailure as exc:
            built = {"failed": True, "unreachable": True, "step": "build", "msg": f"connection lost: {exc}"}
        if built.get("failed") or built.get("unreachable"):
            return release_verdict(host, release, current, built, None)
        if self._task.check_mode and built.get("changed"):
            # Not built yet: the activation's own check would find no complete release.
            activation = {
                "changed": True,
                "outcome": "would_activate",
                "msg": f"would build {release}, then activate it behind the health gate",
            }
        else:
            activation = self._activate(activate, task_vars)
        return release_verdict(host, release, current, built, activation)

    def _activate(self, activate: dict, task_vars: dict) -> dict:
        """One activation; a lost connection is a failed activation (the gate is the device's)."""
        try:
            return self._execute_module(module_name=ACTIVATE, module_args=activate, task_vars=task_vars)
        except AnsibleConnectionFailure as exc:
            return {
                "failed": True,
                "unreachable": True,
                "outcome": "failed",
                "step": "activation",
                "error": f"connection lost: {exc}",
            }

    def _build(self, args: dict, opts: Options, task_vars: dict) -> dict:
        """One build module run, with the wheels in `send` packed and put on the device first."""
        sent, send = {}, opts.send
        if send and not self._task.check_mode:
            local = pack(
                {str(k): str(v) for k, v in send.items()}, dict(args.get("wheels") or {}), str(opts.pack_dir)
            )
            tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
            remote = self._connection._shell.join_path(tmpdir, "incoming.tar")
            self._transfer_file(local, remote)
            self._fixup_perms2((tmpdir, remote))
            args["incoming"] = remote
            sent["sent"] = sorted(send)
        return {**sent, **self._execute_module(module_name=BUILD, module_args=args, task_vars=task_vars)}

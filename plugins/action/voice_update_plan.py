"""Plan one device's update: one read of the device, the decision on the controller.

An action plugin. On the controller it hashes the provisioning's inputs (the
provisioning roles' files, every variable of theirs that this host sets, and
the extra inputs given, such as the release's Debian packages), then runs
``voice_device_state`` on the device once with that hash. The variables
are the roles' public interface (the options of their
``meta/argument_specs.yml``) as this host sets them, never the facts the roles
set while they run. The module compares it with the stamp the last
provisioning left and fingerprints the managed files, so one module run says
what the device runs, whether it must be provisioned and why (a hand-edited
unit or settings file shows up here).

Arguments: ``roles`` (role directories whose files and options are provisioning
inputs), ``var_names`` (more variable names that are inputs, e.g. timezone),
``extra`` (more inputs, any JSON), ``managed_files``, ``write_stamp`` (record
the stamp instead of only comparing), ``force`` (say the provisioning must run),
``lock``/``lock_owner``/``lock_wait`` (the device's update lock, passed on to
the module).
Returns the module's result plus ``inputs`` (the hash), ``started_at`` (UTC, when
the read began), ``controller`` (this controller's host name) and ``release_state``
(what voice_release reads of the device: platform, active, previous, releases,
wheels; a small part of the result, which each task that reads it templates anew).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

# libyaml's safe loader where PyYAML has it, as ansible-core itself prefers: the pure-Python
# one takes about 30 ms for the provisioning roles' specs, on every host's read.
try:
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader

_ROLE_HASHES: dict[tuple, str] = {}
# The module that reads a device (plugins/modules/voice_device_state.py), by its full name.
DEVICE_STATE = "javia.voice_fleet.voice_device_state"
# What voice_release needs of the read (its voice_release_device).
RELEASE_STATE = ("platform", "active", "previous", "releases", "wheels")
# Parts of a role that change what the provisioning does (molecule scenarios do not).
ROLE_PARTS = ("defaults", "files", "handlers", "meta", "tasks", "templates", "vars")


def role_files_digest(roles: list[str]) -> str:
    """sha256 over the names and contents of the roles' files, cached per process by mtimes."""
    files: list[tuple[str, Path]] = []
    for role in roles:
        root = Path(role)
        if not root.is_dir():
            raise AnsibleActionFail(f"voice_update_plan: role directory {role} does not exist")
        for part in ROLE_PARTS:
            files.extend(
                (f"{root.name}/{p.relative_to(root)}", p)
                for p in (root / part).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts
            )
    files.sort()
    key = tuple((name, p.stat().st_mtime_ns, p.stat().st_size) for name, p in files)
    if key not in _ROLE_HASHES:
        digest = hashlib.sha256()
        for name, path in files:
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
        _ROLE_HASHES[key] = digest.hexdigest()
    return _ROLE_HASHES[key]


def role_options(roles: list[str]) -> list[str]:
    """Every option that the roles' argument_specs declare, over all entry points."""
    names: set[str] = set()
    for role in roles:
        spec_file = Path(role) / "meta" / "argument_specs.yml"
        try:
            specs = yaml.load(spec_file.read_text(), Loader=SafeLoader) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise AnsibleActionFail(f"voice_update_plan: cannot read {spec_file}: {exc}") from None
        for entry in (specs.get("argument_specs") or {}).values():
            names.update((entry or {}).get("options") or {})
    return sorted(names)


def inputs_digest(roles_digest: str, variables: dict[str, Any], extra: Any) -> str:
    payload = json.dumps(
        {"roles": roles_digest, "vars": variables, "extra": extra}, sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def controller_id() -> str:
    """host:pid of this run's ansible-playbook (its workers are forked from it)."""
    return f"{socket.gethostname()}:{os.getppid()}"


def holder_is_dead(holder: dict[str, Any]) -> bool:
    """Whether the lock's holder is a run of this controller that no longer exists."""
    host, _sep, pid = str(holder.get("controller") or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(
        (
            "roles",
            "var_names",
            "extra",
            "managed_files",
            "probe",
            "model_files",
            "write_stamp",
            "force",
            "lock",
            "lock_owner",
            "lock_wait",
        )
    )

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        args = self._task.args
        if args.get("lock") == "acquire":
            return {**result, **self._acquire(task_vars)}
        started_at = datetime.now(UTC).replace(tzinfo=None).isoformat() + "Z"
        roles = [os.path.expanduser(str(r)) for r in args.get("roles") or []]
        wanted = set(role_options(roles)) | {str(n) for n in args.get("var_names") or []}
        names = sorted(n for n in wanted if n in task_vars)
        variables = {n: self._templar.template(task_vars[n]) for n in names}
        inputs = inputs_digest(role_files_digest(roles), variables, args.get("extra"))
        state = self._execute_module(
            module_name=DEVICE_STATE,
            module_args={
                "managed_files": list(args.get("managed_files") or []),
                "probe": [str(path) for path in args.get("probe") or []],
                **({"model_files": [str(p) for p in args["model_files"]]} if args.get("model_files") else {}),
                "expected_inputs": inputs,
                "write_stamp": bool(args.get("write_stamp")),
                **{k: args[k] for k in ("lock", "lock_owner", "lock_wait") if args.get(k) is not None},
            },
            task_vars=task_vars,
        )
        result.update(state)
        # For the report and the lock's owner: when this host's update began, and where.
        result.update(inputs=inputs, started_at=started_at, controller=socket.gethostname())
        if not state.get("failed") and not state.get("unreachable"):
            result["release_state"] = {key: state.get(key) for key in RELEASE_STATE}
        if args.get("force") and not args.get("write_stamp"):
            result["provision_needed"] = True
            reasons = list(state.get("provision_reasons") or [])
            result["provision_reasons"] = ["forced (voice_update_force_provision)", *reasons]
        return result

    def _acquire(self, task_vars: dict[str, Any]) -> dict[str, Any]:
        """Take the device's update lock, waiting up to lock_wait seconds for another run.

        A lock held by a run of this very controller that has died (a killed
        ansible-playbook, or a device that was unreachable when its run gave the
        lock back) is broken at once; another controller's lock is waited for.
        """
        args = self._task.args
        owner, wait = str(args.get("lock_owner") or ""), int(args.get("lock_wait") or 0)
        deadline = time.monotonic() + max(0, wait)
        acquire = {"lock": "acquire", "lock_owner": owner, "lock_wait": 0, "lock_controller": controller_id()}
        while True:
            res = self._execute_module(module_name=DEVICE_STATE, module_args=acquire, task_vars=task_vars)
            holder = res.get("lock") or {}
            if not res.get("failed") or res.get("unreachable") or not holder:
                return res
            if holder_is_dead(holder):
                breaking = {"lock": "break", "lock_owner": holder.get("owner", "")}
                self._execute_module(module_name=DEVICE_STATE, module_args=breaking, task_vars=task_vars)
                continue
            if time.monotonic() >= deadline:
                res["msg"] = str(res.get("msg", "")).replace("waited 0 s", f"waited {wait} s")
                return res
            time.sleep(2)

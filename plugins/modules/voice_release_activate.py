#!/usr/bin/python
"""Activate a built release behind the health gate, in one module run (see DOCUMENTATION)."""

DOCUMENTATION = r"""
---
module: voice_release_activate
short_description: Switch the voice client to a built release, hold the health gate, revert on failure
description:
  - Points C(current) at I(release) and C(previous) at the release that ran before, restarts the
    unit, holds the health gate (the unit stays active, same main PID, no restarts, for
    I(health_seconds)), runs the self-check and checks the version that C(current) holds.
    On any failure it puts C(current) and C(previous) back as they were and restarts the old
    release (or stops the unit when there was none) and fails the task.
  - The switch, gate and revert run on the device in a detached transient systemd unit
    (C(systemd-run --collect)), driven by a job file under C(/run/voice-client-activate/), so
    they complete even when the connection to the controller drops during the gate. The module
    waits for the gate's result file and returns it.
  - When a gate for any release is still running (an earlier run lost its connection), the module
    first waits for it to finish, then reads the links again.
  - Check mode reports what would happen and changes nothing.
author:
  - voice-fleet developers (@javia)
options:
  release:
    description: Release id, the name of a directory under I(base)/releases (C(<version>-<digest>)).
    type: str
    required: true
  base:
    description: Root of the device layout.
    type: path
    default: /opt/voice-client
  service:
    description: The client's systemd unit (Type=notify).
    type: str
    default: voice-client.service
  health_seconds:
    description: How long the unit must stay up, unchanged, after the restart.
    type: int
    default: 10
  selfcheck_user:
    description: User that runs the self-check.
    type: str
    default: voice-client
  env_file:
    description: Environment file passed to the self-check.
    type: path
    default: /etc/voice-client/voice-client.env
  poll_interval:
    description: Seconds between two looks at the unit during the gate.
    type: float
    default: 0.5
  result_timeout:
    description: Seconds the module waits for the gate's result. Default I(health_seconds) + 120.
    type: float
  keep:
    description:
      - After the release is active (activated, or active already), keep the newest I(keep) complete
        releases under I(base)/releases (newest by their completion marker) and remove the older
        ones and every incomplete directory (the leftovers of failed builds). The active and the
        previous release are never removed. C(0) removes nothing.
      - A directory that cannot be removed is named in RV(prune_errors); it never fails the task.
    type: int
    default: 0
  lock_owner:
    description:
      - When set, the device's update lock (I(lock_file)) is given back at the end of the run, whatever
        its outcome, if this owner holds it (RV(lock_released)), so the caller needs no module run of
        its own for that. Empty leaves the lock alone. Nothing is given back in check mode.
    type: str
    default: ""
  lock_file:
    description: The device's update lock (see M(javia.voice_fleet.voice_device_state)).
    type: path
    default: /run/voice-client-update.lock
requirements: [systemd, python3 on the device, root]
notes:
  - C(changed) is true whenever the links moved (also when the release was then rolled back), or
    when an already active release's unit had to be started.
"""

EXAMPLES = r"""
- name: Activate the release behind the health gate
  voice_release_activate:
    release: "{{ _voice_release_id }}"
    health_seconds: "{{ voice_release_health_seconds }}"
    selfcheck_user: "{{ voice_release_service_user }}"
    env_file: "{{ voice_release_env_file }}"
  register: voice_release_activation
"""

RETURN = r"""
lock_released:
  description: Whether the run gave the update lock back to RV(lock_owner).
  type: bool
  returned: when lock_owner is set, outside check mode
lock_owner:
  description: The lock owner the run was given (I(lock_owner)).
  type: str
  returned: when lock_owner is set, outside check mode
outcome:
  description: >-
    activated, unchanged, rolled_back (gate failed, the old release runs again), failed (gate
    failed and there was no release to go back to: the unit is stopped), pending (no result within
    result_timeout: the gate still runs on the device), would_activate / would_start / unchanged
    in check mode.
  type: str
  returned: always
release: {description: The release asked for., type: str, returned: always}
active: {description: Release C(current) points at afterwards ('' for none)., type: str, returned: always}
previous: {description: Release C(previous) points at afterwards ('' for none)., type: str, returned: always}
step:
  description: >-
    Where the gate failed (unit start, health gate, self-check, version check, switch, gate);
    '' on success.
  type: str
  returned: always
error: {description: What was seen when the gate failed; '' on success., type: str, returned: always}
elapsed:
  description: Seconds the gate took on the device (0 when no gate ran).
  type: float
  returned: always
restored_ok:
  description: After a rollback, whether the old release (or the stop) came back cleanly.
  type: bool
  returned: when outcome is rolled_back or failed
unit: {description: Name of the transient unit that ran the gate., type: str, returned: when a gate ran}
job:
  description: Path of the gate's job file (its result is beside it, .result.json).
  type: str
  returned: when a gate ran
last_gate:
  description: The newest earlier gate result found for this release on the device.
  type: dict
  returned: when one exists
finished_at: {description: When the gate wrote its result (UTC)., type: str, returned: when a gate ran}
waited_for:
  description: Gates of earlier runs (connection lost) that this run waited for before it began.
  type: list
  returned: when there were any
pruned:
  description: Release directories removed after the activation (O(keep)).
  type: list
  returned: when the release is active and O(keep) is set
prune_errors:
  description: Release directories that could not be removed, with the reason.
  type: list
  returned: when there were any
"""

import glob  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

try:  # Ansible ships it with the module (the collection's module_utils).
    from ansible_collections.javia.voice_fleet.plugins.module_utils.voice_fleet_files import (
        read_json,
        release_lock,
        write_atomic,
    )
except ImportError:  # pragma: no cover - the pull agent keeps it beside the module, on the device
    from voice_fleet_files import read_json, release_lock, write_atomic  # type: ignore[no-redef]

JOB_DIR = "/run/voice-client-activate"
GATE_PATH = JOB_DIR + "/gate.py"
MARKER = ".build-complete"

# The gate runs as root in its own transient unit: switch, gate, revert, result.
# It must only need the python3 standard library (no Ansible on the device).
GATE_SCRIPT = r'''#!/usr/bin/python3
"""voice-client activation gate (written by the voice_release_activate Ansible module)."""
import fcntl
import json
import os
import signal
import subprocess
import sys
import time

SHOW = "ActiveState,SubState,MainPID,NRestarts,Result"


class GateFailed(Exception):
    def __init__(self, step, error):
        super().__init__(error)
        self.step = step
        self.error = error


class Aborted(BaseException):
    pass


def on_term(signum, frame):
    raise Aborted("the gate was stopped (signal %d)" % signum)


def run(argv, timeout=300):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, "", str(exc)
    return proc.returncode, proc.stdout, proc.stderr


def link_name(path):
    return os.path.basename(os.readlink(path)) if os.path.islink(path) else ""


def raw_link(path):
    return os.readlink(path) if os.path.islink(path) else None


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def set_link(path, target):
    """Point the link at target: a new symlink renamed over the old one (never missing)."""
    tmp = os.path.join(os.path.dirname(path), ".%s.tmp-%d" % (os.path.basename(path), os.getpid()))
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


def drop_link(path):
    if os.path.lexists(path):
        os.unlink(path)
        fsync_dir(os.path.dirname(path))


def show(service):
    rc, out, err = run(["systemctl", "show", service, "--property=" + SHOW])
    state = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    for key in ("MainPID", "NRestarts"):
        try:
            state[key] = int(state.get(key) or 0)
        except ValueError:
            state[key] = 0
    return state


def write_result(path, result):
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w") as fh:
        json.dump(result, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


def gate(job, current, service):
    """Restart on the new release and hold the gate; raise GateFailed naming what was seen."""
    journal = "see journalctl -u %s" % service
    _rc, out, _err = run(["systemctl", "show", service, "--property=NeedDaemonReload", "--value"])
    if out.strip() == "yes":
        run(["systemctl", "daemon-reload"])
    # The unit's start limit counts the starts of the releases before this one (each rollout
    # restarts it): a deliberate switch begins a fresh count, or it is refused as "too often".
    run(["systemctl", "reset-failed", service])
    rc, _out, err = run(["systemctl", "restart", service])
    first = show(service)
    if rc != 0 or first.get("ActiveState") != "active" or first["MainPID"] <= 0:
        raise GateFailed(
            "unit start",
            "the unit did not come up: %s/%s (result %s, main PID %d%s); %s"
            % (first.get("ActiveState"), first.get("SubState"), first.get("Result"), first["MainPID"],
               ", systemctl restart: " + err.strip().splitlines()[0] if rc != 0 and err.strip() else "",
               journal),
        )
    health = float(job["health_seconds"])
    interval = max(float(job["poll_interval"]), 0.05)
    gate_start = time.monotonic()
    deadline = gate_start + health
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        time.sleep(min(interval, deadline - now))
        state = show(service)
        if (state.get("ActiveState") != "active" or state["MainPID"] != first["MainPID"]
                or state["NRestarts"] > first["NRestarts"]):
            raise GateFailed(
                "health gate",
                "the client did not stay up for %ss (it changed after %.1fs): now %s/%s, main PID %d -> %d, "
                "restarts %d -> %d (result %s; %s)"
                % (job["health_seconds"], time.monotonic() - gate_start, state.get("ActiveState"),
                   state.get("SubState"), first["MainPID"], state["MainPID"], first["NRestarts"],
                   state["NRestarts"], state.get("Result"), journal),
            )
    client = os.path.join(current, "venv", "bin", "voice-client")
    rc, out, err = run(["runuser", "-u", job["selfcheck_user"], "--", client, "self-check",
                        "--env-file", job["env_file"]], timeout=120)
    if rc != 0:
        fails = [line.strip() for line in out.splitlines() if line.startswith("FAIL")]
        detail = "; ".join(fails) or (err.strip().splitlines() or ["no FAIL lines"])[-1]
        raise GateFailed("self-check", "self-check failed (rc %d): %s" % (rc, detail))
    rc, out, err = run([client, "--version"], timeout=60)
    version = job["release"].split("-", 1)[0]
    text = (out.strip() or err.strip())
    if rc != 0 or version not in out:
        raise GateFailed(
            "version check",
            "current holds %s, expected release %s (version %s)"
            % (text or "nothing (rc %d)" % rc, job["release"], version),
        )


def main():
    job_path = sys.argv[1]
    with open(job_path) as fh:
        job = json.load(fh)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    lock = open(os.path.join(os.path.dirname(job_path), "lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    t0 = time.monotonic()
    base, service, release = job["base"], job["service"], job["release"]
    current = os.path.join(base, "current")
    previous = os.path.join(base, "previous")
    active = link_name(current)
    old_previous = link_name(previous)
    old_previous_raw = raw_link(previous)
    result = {"release": release, "active": active, "previous": old_previous, "step": "", "error": "",
              "unit": job["unit"], "job": job_path}
    moved = False
    try:
        if active == release:
            # Another run switched to it while this one waited for the lock.
            state = show(service)
            if state.get("ActiveState") != "active":
                run(["systemctl", "reset-failed", service])
                run(["systemctl", "start", service])
            result["outcome"] = "unchanged"
        else:
            try:
                if active:
                    set_link(previous, "releases/" + active)
                moved = True
                set_link(current, "releases/" + release)
            except OSError as exc:
                raise GateFailed("switch", "could not switch the links: %s" % exc)
            gate(job, current, service)
            result.update(outcome="activated", active=release, previous=active or old_previous)
    except (GateFailed, Exception, Aborted) as exc:
        if isinstance(exc, GateFailed):
            step, error = exc.step, exc.error
        else:
            step, error = "gate", "%s: %s" % (type(exc).__name__, exc)
        restored_ok = True
        notes = []
        if moved:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            try:
                if active:
                    set_link(current, "releases/" + active)
                else:
                    drop_link(current)
                if old_previous_raw is not None:
                    set_link(previous, old_previous_raw)
                else:
                    drop_link(previous)
            except OSError as link_exc:
                restored_ok = False
                notes.append("restoring the links failed: %s" % link_exc)
            if active:
                run(["systemctl", "reset-failed", service])
                rc, _out, err = run(["systemctl", "restart", service])
                state = show(service)
                if rc != 0 or state.get("ActiveState") != "active":
                    restored_ok = False
                    notes.append("restarting %s failed: %s/%s" % (active, state.get("ActiveState"),
                                                                  state.get("SubState")))
            else:
                rc, _out, err = run(["systemctl", "stop", service])
                if rc != 0:
                    restored_ok = False
                    notes.append("stopping %s failed: %s" % (service, err.strip()))
        result.update(
            outcome="rolled_back" if active else "failed",
            active=link_name(current),
            previous=link_name(previous),
            step=step,
            error=error + ("; " + "; ".join(notes) if notes else ""),
            restored_ok=restored_ok,
        )
    result["elapsed"] = round(time.monotonic() - t0, 2)
    result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_result(job["result_file"], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
'''


RUNNING = ("active", "activating", "deactivating", "reloading")


def _run(module, argv, check=False):
    rc, out, err = module.run_command(argv)
    if check and rc != 0:
        module.fail_json(msg=f"{' '.join(argv)} failed (rc {rc}): {(err or out).strip()}")
    return rc, out, err


def _link_name(path):
    return os.path.basename(os.readlink(path)) if os.path.islink(path) else ""


def _unit_state(module, unit):
    _rc, out, _err = _run(module, ["systemctl", "show", unit, "--property=ActiveState,LoadState"])
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _release_dirs(releases):
    """Release directories (no hidden names, no links) -> their completion marker's mtime, or None."""
    try:
        names = sorted(n for n in os.listdir(releases) if not n.startswith("."))
    except OSError:
        return {}
    found = {}
    for name in names:
        path = os.path.join(releases, name)
        if os.path.isdir(path) and not os.path.islink(path):
            try:
                found[name] = os.path.getmtime(os.path.join(path, MARKER))
            except OSError:  # no marker (or it went between the listing and this read)
                found[name] = None
    return found


def _complete_releases(releases):
    return [name for name, marked in _release_dirs(releases).items() if marked is not None]


def prune_releases(releases, keep, protect):
    """Remove the incomplete release directories and the complete ones past the newest `keep`.

    Newest by the completion marker's mtime; `protect` (active, previous, this release) stays.
    Returns (removed, errors); an error never stops the rest.
    """
    dirs = _release_dirs(releases)
    markers = {name: marked for name, marked in dirs.items() if marked is not None}
    complete = sorted(markers, key=lambda n: (markers[n], n), reverse=True)
    doomed = sorted({n for n in dirs if n not in markers} | set(complete[keep:]))
    removed, errors = [], []
    for name in doomed:
        if name in protect:
            continue
        try:
            shutil.rmtree(os.path.join(releases, name))
            removed.append(name)
        except OSError as exc:
            errors.append(f"{name}: {exc.strerror or exc}")
    return removed, errors


def _result_path(job_path):
    return job_path[: -len(".json")] + ".result.json"


def _last_gate(release):
    found = []
    for path in glob.glob(os.path.join(JOB_DIR, "*.result.json")):
        result = read_json(path)
        if isinstance(result, dict) and result.get("release") == release:
            found.append((os.path.getmtime(path), result))
    return max(found, key=lambda item: item[0])[1] if found else None


class Activation:
    """One run of the module: the device's state, and the gate it starts or waits for."""

    def __init__(self, module):
        self.module = module
        p = module.params
        self.release, self.service = p["release"], p["service"]
        self.base = p["base"]
        self.current = os.path.join(self.base, "current")
        self.previous = os.path.join(self.base, "previous")
        self.host = os.uname().nodename
        self.timeout = p["result_timeout"] if p["result_timeout"] is not None else p["health_seconds"] + 120
        self.deadline = time.monotonic() + self.timeout
        if p.get("lock_owner") and not module.check_mode:
            self._give_back_lock_at_exit()

    def _give_back_lock_at_exit(self):
        """Every way out of the run (its result, or any failure) first gives the update lock back."""
        exit_json, fail_json = self.module.exit_json, self.module.fail_json
        lock_file, owner = self.module.params["lock_file"], self.module.params["lock_owner"]

        def exit_with_lock(**result):
            exit_json(**result, lock_owner=owner, lock_released=release_lock(lock_file, owner))

        def fail_with_lock(msg, **result):
            fail_json(msg=msg, **result, lock_owner=owner, lock_released=release_lock(lock_file, owner))

        self.module.exit_json, self.module.fail_json = exit_with_lock, fail_with_lock

    def links(self):
        return {"active": _link_name(self.current), "previous": _link_name(self.previous)}

    def fail(self, msg, **result):
        out = {"release": self.release, "step": "", "error": "", "elapsed": 0.0, **self.links()}
        out.update(result)
        self.module.fail_json(msg=msg, **out)

    def check_release(self):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", self.release):
            self.module.fail_json(msg=f"release {self.release!r} is not a release id (<version>-<digest>)")
        p = self.module.params
        if p["health_seconds"] < 0 or p["poll_interval"] <= 0:
            self.module.fail_json(msg="health_seconds must be >= 0 and poll_interval > 0")
        releases = os.path.join(self.base, "releases")
        release_dir = os.path.join(releases, self.release)
        if not os.path.isfile(os.path.join(release_dir, MARKER)):
            self.fail(
                f"release {self.release} is not a complete release on {self.host} "
                f"(no {MARKER} in {release_dir}); present: {_complete_releases(releases)}",
                outcome="failed",
                step="preflight",
            )

    def wait_for_result(self, job_path, unit):
        """Poll the job's result file; None when the deadline passes. Fails when the gate vanished."""
        result_path = _result_path(job_path)
        interval = min(max(self.module.params["poll_interval"], 0.1), 1.0)
        next_unit_check = time.monotonic() + 5
        while True:
            result = read_json(result_path)
            if result:
                return result
            now = time.monotonic()
            if now >= self.deadline:
                return None
            if now >= next_unit_check:
                next_unit_check = now + 5
                if _unit_state(self.module, unit).get("ActiveState") not in RUNNING:
                    result = read_json(result_path)
                    if result:
                        return result
                    self.fail(
                        f"the activation gate {unit} ended without writing its result {result_path}; "
                        f"see journalctl -u {unit}",
                        outcome="failed",
                        step="gate",
                        unit=unit,
                        job=job_path,
                    )
            time.sleep(min(interval, max(self.deadline - now, 0.01)))

    def pending_jobs(self):
        """Gates of earlier runs that still run. Jobs whose unit vanished without a result are set aside."""
        pending = []
        jobs = glob.glob(os.path.join(JOB_DIR, "*.json"))
        for job_path in sorted(j for j in jobs if not j.endswith(".result.json")):
            if os.path.exists(_result_path(job_path)):
                continue
            unit = (read_json(job_path) or {}).get("unit", "")
            if unit and _unit_state(self.module, unit).get("ActiveState") in RUNNING:
                pending.append((job_path, unit))
            elif self.stale(job_path):
                os.replace(job_path, job_path + ".stale")
        return pending

    def stale(self, job_path):
        """A job without result whose gate is gone (a minute gives a concurrent run time to start it)."""
        if self.module.check_mode or os.path.exists(_result_path(job_path)):
            return False
        try:
            return time.time() - os.path.getmtime(job_path) > 60
        except OSError:
            return False

    def wait_for_earlier_gates(self):
        waited = []
        if not os.path.isdir(JOB_DIR):
            return waited
        for job_path, unit in self.pending_jobs():
            if self.module.check_mode:
                waited.append(unit)
                continue
            # In the device's journal: a run that seems stuck says what it waits for.
            self.module.log(
                f"waiting for the activation gate of an earlier run, {unit}; "
                f"its result goes to {_result_path(job_path)}"
            )
            if self.wait_for_result(job_path, unit) is None:
                self.fail(
                    f"an earlier activation gate ({unit}) still runs on {self.host} after {self.timeout}s; "
                    f"its result will be in {_result_path(job_path)}",
                    outcome="pending",
                    step="gate",
                    unit=unit,
                    job=job_path,
                )
            waited.append(unit)
        return waited

    def prune(self, links):
        """Old releases removed once this one is active (keep); the result's fields."""
        keep = self.module.params["keep"]
        if not keep or self.module.check_mode:
            return {}
        # What the caller saw and what the links say now: neither is ever removed.
        protect = {self.release, links.get("active", ""), links.get("previous", ""), *self.links().values()}
        removed, errors = prune_releases(os.path.join(self.base, "releases"), keep, protect)
        return {"pruned": removed, **({"prune_errors": errors} if errors else {})}

    def keep_running(self, links, extra):
        """The release is active already: start the unit only if it is not active."""
        _rc, out, _err = _run(self.module, ["systemctl", "is-active", self.service])
        start = out.strip() != "active"
        if start and not self.module.check_mode:
            # A unit stopped by its start limit stays refused until the failure is reset.
            _run(self.module, ["systemctl", "reset-failed", self.service])
            _run(self.module, ["systemctl", "start", self.service], check=True)
        extra = {**extra, **self.prune(links)}
        self.module.exit_json(
            changed=start or bool(extra.get("pruned")),
            outcome="would_start" if start and self.module.check_mode else "unchanged",
            msg=f"release {self.release} is already active" + (f"; started {self.service}" if start else ""),
            release=self.release,
            step="",
            error="",
            elapsed=0.0,
            **links,
            **extra,
        )

    def start_gate(self):
        """Write the gate script and the job, start the gate as a detached transient unit."""
        p = self.module.params
        os.makedirs(JOB_DIR, mode=0o700, exist_ok=True)
        os.chmod(JOB_DIR, 0o700)
        try:
            with open(GATE_PATH) as fh:
                same = fh.read() == GATE_SCRIPT
        except OSError:
            same = False
        if not same:
            write_atomic(GATE_PATH, GATE_SCRIPT, 0o700)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() // 1_000_000 % 1000:03d}"
        unit = f"voice-client-activate-{self.release.replace('+', '_')}-{stamp}"
        job_path = os.path.join(JOB_DIR, unit + ".json")
        job = {
            "release": self.release,
            "base": self.base,
            "service": self.service,
            "health_seconds": p["health_seconds"],
            "poll_interval": p["poll_interval"],
            "selfcheck_user": p["selfcheck_user"],
            "env_file": p["env_file"],
            "unit": unit,
            "result_file": _result_path(job_path),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_atomic(job_path, json.dumps(job, indent=2, sort_keys=True) + "\n", 0o600)
        python = "/usr/bin/python3"
        if not os.path.exists(python):
            python = self.module.get_bin_path("python3", required=True)
        argv = ["systemd-run", "--unit", unit, "--collect", "--quiet"]
        argv += ["--description", f"voice-client activation gate for {self.release}"]
        argv += ["--property=KillMode=process", "--", python, GATE_PATH, job_path]
        rc, out, err = _run(self.module, argv)
        if rc != 0:
            self.fail(
                f"could not start the activation gate {unit}: {(err or out).strip()}",
                outcome="failed",
                step="gate",
                unit=unit,
                job=job_path,
            )
        return job_path, unit

    def finish(self, result, extra):
        result.update(extra)
        outcome = result.get("outcome")
        if outcome in ("rolled_back", "failed"):
            active = result.get("active") or ""
            back = (
                f"rolled back to {active}" if active else "no release to roll back to: the client is stopped"
            )
            warn = "" if result.get("restored_ok", True) else " (WARNING: restarting it failed too)"
            self.module.fail_json(
                msg=f"release {self.release} failed its health gate on {self.host} "
                f"({result.get('step')}: {result.get('error')}); {back}{warn}",
                changed=True,
                **result,
            )
        result.update(self.prune(result))
        if outcome == "activated":
            msg = (
                f"release {self.release} is active (previous: {result.get('previous') or 'none'}); "
                f"its gate took {result.get('elapsed')}s"
            )
        else:
            msg = f"release {self.release} is already active"
        if result.get("prune_errors"):
            msg += f"; could not remove old releases: {'; '.join(result['prune_errors'])}"
        self.module.exit_json(changed=outcome == "activated" or bool(result.get("pruned")), msg=msg, **result)

    def run(self):
        self.check_release()
        waited = self.wait_for_earlier_gates()
        links = self.links()
        last = _last_gate(self.release) if os.path.isdir(JOB_DIR) else None
        extra = {"last_gate": last} if last else {}
        if waited:
            extra["waited_for"] = waited
        if links["active"] == self.release:
            self.keep_running(links, extra)
        if self.module.check_mode:
            active = links["active"]
            self.module.exit_json(
                changed=True,
                outcome="would_activate",
                msg=f"would point current at {self.release} (now {active or 'nothing'})"
                + (f" and previous at {active}" if active else "")
                + f", restart {self.service} and hold the gate for {self.module.params['health_seconds']}s"
                + (f"; an earlier gate still runs: {', '.join(waited)}" if waited else ""),
                release=self.release,
                step="",
                error="",
                elapsed=0.0,
                **links,
                **extra,
            )
        job_path, unit = self.start_gate()
        result = self.wait_for_result(job_path, unit)
        if result is None:
            self.fail(
                f"no result from the activation gate {unit} on {self.host} after {self.timeout}s; "
                f"it keeps running there and its result will be in {_result_path(job_path)}",
                changed=True,
                outcome="pending",
                step="gate",
                unit=unit,
                job=job_path,
            )
        self.finish(result, extra)


ARGUMENT_SPEC = {
    "release": {"type": "str", "required": True},
    "base": {"type": "path", "default": "/opt/voice-client"},
    "service": {"type": "str", "default": "voice-client.service"},
    "health_seconds": {"type": "int", "default": 10},
    "selfcheck_user": {"type": "str", "default": "voice-client"},
    "env_file": {"type": "path", "default": "/etc/voice-client/voice-client.env"},
    "poll_interval": {"type": "float", "default": 0.5},
    "result_timeout": {"type": "float"},
    "keep": {"type": "int", "default": 0},
    "lock_owner": {"type": "str", "default": ""},
    "lock_file": {"type": "path", "default": "/run/voice-client-update.lock"},
}


class _Done(BaseException):
    """The end of a run without Ansible: the result exit_json or fail_json was given."""

    def __init__(self, result):
        super().__init__(result.get("msg", ""))
        self.result = result


class _PlainModule:
    """What Activation needs of AnsibleModule, for a caller without Ansible (the pull agent)."""

    def __init__(self, params, check_mode):
        unknown = sorted(set(params) - set(ARGUMENT_SPEC))
        if unknown:
            raise TypeError(f"voice_release_activate: unknown parameters {unknown}")
        self.params = {name: spec.get("default") for name, spec in ARGUMENT_SPEC.items()}
        self.params.update(params)
        if not self.params["release"]:
            raise TypeError("voice_release_activate: release is required")
        self.check_mode = check_mode

    def run_command(self, argv):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    def get_bin_path(self, name, required=False):
        path = shutil.which(name)
        if path is None and required:
            self.fail_json(msg=f"{name} not found on PATH")
        return path

    def log(self, msg):
        """AnsibleModule.log's journal line: the agent's own output, which its unit sends there."""
        sys.stderr.write(f"voice_release_activate: {msg}\n")
        sys.stderr.flush()

    def exit_json(self, **result):
        raise _Done(result)

    def fail_json(self, msg, **result):
        raise _Done({**result, "failed": True, "msg": msg})


def activate(params, check_mode=False):
    """One activation without Ansible: the module's parameters in, its result out (`failed` on failure)."""
    try:
        Activation(_PlainModule(params, check_mode)).run()
    except _Done as done:
        return done.result
    raise AssertionError("the activation ended without a result")


def main():
    # Imported here: the pull agent imports this file on a device without Ansible.
    from ansible.module_utils.basic import AnsibleModule  # noqa: PLC0415

    Activation(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)).run()


if __name__ == "__main__":
    main()

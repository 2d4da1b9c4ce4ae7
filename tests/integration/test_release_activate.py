"""voice_release_activate on real systemd: switch, health gate, revert, and a connection cut mid-gate.

One container of the systemd base image (the molecule platform's options) holds fake releases:
each release's venv/bin/voice-client is a small python3 script (no real venv is built) that answers
--version and self-check and, for `run`, tells systemd READY=1 and sleeps; the bad variants exit.
The module runs through `ansible` with the docker connection; assertions read the real links and
`systemctl show` in the container.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from simfleet.containers import systemd_run_options  # tests/conftest.py puts tools/ on sys.path

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = str(Path(sys.executable).parent / "ansible")
CONTAINER = "vf-activate-test"
BASE = "/opt/voice-client"
SERVICE = "voice-client.service"

GOOD1 = "1.0.0-aaaa1111"
GOOD2 = "1.1.0-bbbb2222"
BAD = "2.0.0-cccc3333"  # exits 2 s after READY
LATE = "2.1.0-dddd4444"  # exits 8 s after READY (the gate is still running when the connection is cut)
WRONG = "2.2.0-eeee5555"  # runs fine but reports another version
INCOMPLETE = "2.3.0-ffff6666"  # no .build-complete
DEAD = "2.4.0-abab7777"  # exits before READY
SICK = "2.5.0-cdcd8888"  # runs, but its self-check fails

FAKE_CLIENT = r"""#!/usr/bin/python3
import os, socket, sys, time

VERSION = "@VERSION@"
DIE_AFTER = @DIE_AFTER@
SELF_CHECK_OK = @SELF_CHECK_OK@


def notify(message):
    address = os.environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        address = "\0" + address[1:]
    if address:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.send(message.encode())


command = sys.argv[1] if len(sys.argv) > 1 else ""
if command == "--version":
    print("voice-client " + VERSION)
elif command == "self-check":
    print("OK env file " + sys.argv[-1])
    if not SELF_CHECK_OK:
        print("FAIL registry: unreachable")
        print("FAIL audio: no capture device")
        sys.exit(1)
elif command == "run":
    # The main process's command line names the release it runs (same PID after exec).
    real = os.path.realpath(__file__)
    if sys.argv[0] != real:
        os.execv(sys.executable, [sys.executable, real, "run"])
    if DIE_AFTER is not None and DIE_AFTER < 0:
        sys.exit("fake client: dying before READY")
    notify("READY=1")
    started = time.monotonic()
    while True:
        time.sleep(0.2)
        if DIE_AFTER is not None and time.monotonic() - started > DIE_AFTER:
            print("fake client: dying on purpose", file=sys.stderr)
            sys.exit(1)
else:
    sys.exit(2)
"""

UNIT = f"""[Unit]
Description=fake voice client
StartLimitIntervalSec=0

[Service]
Type=notify
NotifyAccess=all
User=voice-client
ExecStart={BASE}/current/venv/bin/voice-client run
Restart=on-failure
RestartSec=1
TimeoutStartSec=30
"""

WATCHER = r"""
import json, os, sys, time
path, out, stop = sys.argv[1:4]
count = missing = 0
seen = set()
end = time.monotonic() + 180
while time.monotonic() < end:
    for _ in range(500):
        try:
            seen.add(os.readlink(path))
        except OSError:
            missing += 1
        count += 1
    if os.path.exists(stop):
        break
with open(out + ".tmp", "w") as fh:
    json.dump({"count": count, "missing": missing, "seen": sorted(seen)}, fh)
os.replace(out + ".tmp", out)
"""


def sh(script: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["docker", "exec", "-i", CONTAINER, "bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check:
        assert proc.returncode == 0, f"{script}\n-> rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def put(path: str, text: str, mode: str = "0644") -> None:
    subprocess.run(
        ["docker", "exec", "-i", CONTAINER, "sh", "-c", f"cat > '{path}' && chmod {mode} '{path}'"],
        input=text,
        text=True,
        check=True,
        timeout=60,
    )


def link(name: str) -> str:
    return sh(f"readlink {BASE}/{name} || true").stdout.strip()


def unit_state() -> dict[str, str]:
    out = sh(f"systemctl show {SERVICE} --property=ActiveState,SubState,MainPID,NRestarts").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def running_release() -> str:
    """The release the unit's main process runs (its command line names <release>/venv/bin)."""
    state = unit_state()
    assert state["ActiveState"] == "active" and int(state["MainPID"]) > 0, state
    cmdline = sh(f"tr '\\0' ' ' < /proc/{state['MainPID']}/cmdline").stdout
    return cmdline.split("/releases/", 1)[1].split("/", 1)[0]


def ansible_argv(check: bool = False, **params: object) -> list[str]:
    args = " ".join(f"{key}={value}" for key, value in params.items())
    argv = [ANSIBLE, "all", "-i", f"{CONTAINER},", "-c", "community.docker.docker"]
    argv += ["-m", "javia.voice_fleet.voice_release_activate", "-a", args]
    argv += ["-e", "ansible_python_interpreter=/usr/bin/python3"]
    return argv + (["--check"] if check else [])


def ansible_env() -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_NOCOLOR": "1",
    }


def start_activate(check: bool = False, **params: object) -> subprocess.Popen:
    return subprocess.Popen(
        ansible_argv(check, **params),
        cwd=ROOT,
        env=ansible_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_activate(proc: subprocess.Popen) -> dict:
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the activation did not end within 300s")
    try:
        data = json.loads(stdout)
        result = data["plays"][0]["tasks"][0]["hosts"][CONTAINER]
    except (ValueError, KeyError, IndexError):
        pytest.fail(f"ansible gave no result (rc {proc.returncode}):\n{stdout}\n{stderr}")
    result["_rc"] = proc.returncode
    return result


def activate(check: bool = False, **params: object) -> dict:
    return finish_activate(start_activate(check, **params))


def wait_until(what: str, predicate, timeout: float, interval: float = 0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def gate_units() -> list[str]:
    out = sh("systemctl list-units --all --plain --no-legend 'voice-client-activate-*' || true").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def module_pids(newest: bool = False) -> list[str]:
    """The activation modules running on the device (the bracket keeps pgrep off its own shell)."""
    flag = "-n " if newest else ""
    return sh(f"pgrep {flag}-f '[A]nsiballZ_voice_release_activate' || true").stdout.split()


def signal_gates(signal_name: str) -> None:
    for unit in gate_units():
        sh(f"systemctl kill --signal={signal_name} {unit}")


def kill_module_in_container() -> None:
    """What an SSH cut does to the module: its process on the device dies (the gate must not)."""
    pids = module_pids()
    if pids:
        sh(f"kill -9 {' '.join(pids)} || true")


def make_release(
    release: str,
    die_after: float | None = None,
    reports: str = "",
    marker: bool = True,
    self_check: bool = True,
) -> None:
    version = reports or release.split("-", 1)[0]
    directory = f"{BASE}/releases/{release}"
    sh(f"mkdir -p {directory}/venv/bin")
    client = FAKE_CLIENT.replace("@VERSION@", version).replace("@DIE_AFTER@", repr(die_after))
    client = client.replace("@SELF_CHECK_OK@", repr(self_check))
    put(f"{directory}/venv/bin/voice-client", client, "0755")
    if marker:
        put(f"{directory}/.build-complete", json.dumps({"release": release, "version": version}) + "\n")


@pytest.fixture(scope="module")
def device(bed_image: str):
    """A systemd container with the fake releases and the unit; removed at the end."""
    subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True, check=False)
    # systemd as PID 1 the way molecule and the simulated fleet run it (the molecule base config's options).
    run = ["docker", "run", "-d", "--name", CONTAINER, "--hostname", CONTAINER, *systemd_run_options()]
    run += [bed_image, "/lib/systemd/systemd"]
    proc = subprocess.run(run, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    try:
        wait_until(
            "systemd in the container",
            lambda: (
                sh("systemctl is-system-running || true", check=False).stdout.strip()
                in ("running", "degraded")
            ),
            90,
        )
        sh("id voice-client >/dev/null 2>&1 || useradd --system --no-create-home voice-client")
        sh(f"mkdir -p {BASE}/releases /etc/voice-client")
        put("/etc/voice-client/voice-client.env", "VOICE_CLIENT_FAKE=1\n", "0640")
        sh("chgrp voice-client /etc/voice-client/voice-client.env")
        make_release(GOOD1)
        make_release(GOOD2)
        make_release(BAD, die_after=2)
        make_release(LATE, die_after=8)
        make_release(WRONG, reports="9.9.9")
        make_release(INCOMPLETE, marker=False)
        make_release(DEAD, die_after=-1)
        make_release(SICK, self_check=False)
        put(f"/etc/systemd/system/{SERVICE}", UNIT)
        sh("systemctl daemon-reload")
        yield CONTAINER
    finally:
        subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True, check=False)


def test_refuses_an_incomplete_release(device):
    result = activate(release=INCOMPLETE)
    assert result["_rc"] != 0 and result.get("failed")
    assert INCOMPLETE in result["msg"] and ".build-complete" in result["msg"]
    for complete in (GOOD1, GOOD2, BAD):
        assert complete in result["msg"]
    assert link("current") == ""


def test_first_release_failing_leaves_nothing_running(device):
    result = activate(release=BAD, health_seconds=20)
    assert result.get("failed"), result
    assert result["outcome"] == "failed" and result["step"] == "health gate", result
    assert result["changed"] is True
    assert "no release to roll back to" in result["msg"]
    assert link("current") == "" and link("previous") == ""
    assert unit_state()["ActiveState"] in ("inactive", "failed")


def test_check_mode_changes_nothing(device):
    result = activate(check=True, release=GOOD1)
    assert not result.get("failed"), result
    assert result["outcome"] == "would_activate" and result["changed"] is True
    assert link("current") == ""
    assert unit_state()["ActiveState"] in ("inactive", "failed")


def test_good_release_activates(device):
    result = activate(release=GOOD1, health_seconds=2)
    assert not result.get("failed"), result
    assert result["outcome"] == "activated" and result["changed"] is True
    assert result["active"] == GOOD1 and result["previous"] == ""
    assert link("current") == f"releases/{GOOD1}"
    assert running_release() == GOOD1


def test_second_release_keeps_the_first_as_previous(device):
    result = activate(release=GOOD2, health_seconds=2)
    assert not result.get("failed"), result
    assert result["outcome"] == "activated" and result["previous"] == GOOD1
    assert result["elapsed"] >= 2
    assert link("current") == f"releases/{GOOD2}" and link("previous") == f"releases/{GOOD1}"
    assert running_release() == GOOD2


def test_second_run_is_unchanged(device):
    pid = unit_state()["MainPID"]
    result = activate(release=GOOD2, health_seconds=2)
    assert not result.get("failed"), result
    assert result["outcome"] == "unchanged" and result["changed"] is False
    assert unit_state()["MainPID"] == pid
    check = activate(check=True, release=GOOD2)
    assert check["outcome"] == "unchanged" and check["changed"] is False


def test_unchanged_run_starts_a_stopped_unit(device):
    sh(f"systemctl stop {SERVICE}")
    result = activate(release=GOOD2)
    assert result["outcome"] == "unchanged" and result["changed"] is True, result
    assert running_release() == GOOD2


def test_bad_release_is_rolled_back_early(device):
    health = 20
    result = activate(release=BAD, health_seconds=health)
    assert result.get("failed") and result["_rc"] != 0, result
    assert result["outcome"] == "rolled_back" and result["step"] == "health gate", result
    # The release dies 2 s after READY: the gate fails on the change it saw while watching
    # (its "changed after" path, which ends the gate there), not on a check at its end.
    assert "did not stay up" in result["error"] and "it changed after" in result["error"], result
    assert "journalctl -u voice-client.service" in result["error"]
    assert "restarts" in result["error"] and "main PID" in result["error"]
    assert f"rolled back to {GOOD2}" in result["msg"]
    assert result["active"] == GOOD2 and result["previous"] == GOOD1 and result["restored_ok"] is True
    assert link("current") == f"releases/{GOOD2}" and link("previous") == f"releases/{GOOD1}"
    assert running_release() == GOOD2


@pytest.mark.parametrize(
    ("release", "step", "seen"),
    [
        (WRONG, "version check", ["9.9.9", WRONG]),
        (SICK, "self-check", ["FAIL registry: unreachable; FAIL audio: no capture device"]),
        (DEAD, "unit start", ["did not come up", "journalctl -u voice-client.service"]),
    ],
)
def test_failed_check_is_rolled_back(device, release, step, seen):
    result = activate(release=release, health_seconds=1)
    assert result.get("failed"), result
    assert result["outcome"] == "rolled_back" and result["step"] == step, result
    for text in seen:
        assert text in result["error"], result
    assert link("current") == f"releases/{GOOD2}" and link("previous") == f"releases/{GOOD1}"
    assert running_release() == GOOD2


def start_and_cut(release: str, health: int, freeze: bool = False) -> None:
    """Start the module, then cut it (controller and device side) once the gate has switched.

    freeze: stop the gate (SIGSTOP) the moment the switch is seen, before the cut; the caller
    thaws it (signal_gates("SIGCONT")). However slow the machine, the gate is then still running.
    """
    proc = subprocess.Popen(
        ansible_argv(release=release, health_seconds=health),
        cwd=ROOT,
        env=ansible_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(f"current -> {release}", lambda: link("current") == f"releases/{release}", 60)
        if freeze:
            signal_gates("SIGSTOP")
        assert gate_units(), "no gate unit runs"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    kill_module_in_container()
    assert gate_units(), "the gate died with the module"


def test_connection_cut_during_the_gate_reverts_on_the_device(device):
    start_and_cut(LATE, health=30)
    assert link("current") == f"releases/{LATE}"
    wait_until("the device to roll back by itself", lambda: link("current") == f"releases/{GOOD2}", 90)
    wait_until("the gate unit to finish", lambda: not gate_units(), 60)
    assert link("previous") == f"releases/{GOOD1}"
    assert running_release() == GOOD2
    results = sh(
        "python3 -c 'import glob, json; print(json.dumps([json.load(open(p)) for p in "
        'sorted(glob.glob("/run/voice-client-activate/*.result.json"))]))\''
    ).stdout
    late = [r for r in json.loads(results) if r["release"] == LATE]
    assert late and late[-1]["outcome"] == "rolled_back" and late[-1]["step"] == "health gate", late
    # The next run for the same release sees that result: it was reverted, a fresh attempt runs.
    again = activate(release=LATE, health_seconds=30)
    assert again["outcome"] == "rolled_back" and again["step"] == "health gate", again
    assert again["last_gate"]["outcome"] == "rolled_back", again
    assert link("current") == f"releases/{GOOD2}"
    assert running_release() == GOOD2


def waits_logged(units: list[str]) -> bool:
    """Whether an activation module said in the device's journal that it waits for one of `units`."""
    lines = sh("journalctl -q -o cat --grep 'waiting for the activation gate' || true").stdout.splitlines()
    names = [u.removesuffix(".service") for u in units]  # the module names the unit without it
    return any(f"earlier run, {name};" in line for line in lines for name in names)


def test_next_run_waits_for_a_gate_left_running(device):
    # The gate left running is frozen until the next run says in the journal that it waits for
    # it: however slowly that run starts, it finds the gate running (no race with the gate).
    try:
        start_and_cut(GOOD1, health=6, freeze=True)
        units = gate_units()
        proc = start_activate(release=GOOD1, health_seconds=6)
        wait_until("the next run to wait for the gate", lambda: waits_logged(units), 120)
    finally:
        signal_gates("SIGCONT")
    result = finish_activate(proc)
    assert not result.get("failed"), result
    assert result["outcome"] == "unchanged", result
    assert result.get("waited_for"), result
    assert result["last_gate"]["outcome"] == "activated"
    assert link("current") == f"releases/{GOOD1}" and link("previous") == f"releases/{GOOD2}"
    assert running_release() == GOOD1


def test_current_is_never_missing_during_switches(device):
    put("/tmp/watch.py", WATCHER)
    sh("rm -f /tmp/watch.json /tmp/watch.stop")
    subprocess.run(
        [
            "docker",
            "exec",
            "-d",
            CONTAINER,
            "python3",
            "/tmp/watch.py",
            f"{BASE}/current",
            "/tmp/watch.json",
            "/tmp/watch.stop",
        ],
        check=True,
        timeout=30,
    )
    try:
        assert activate(release=GOOD2, health_seconds=1)["outcome"] == "activated"
        assert activate(release=BAD, health_seconds=4)["outcome"] == "rolled_back"
        assert activate(release=GOOD1, health_seconds=1)["outcome"] == "activated"
    finally:
        sh("touch /tmp/watch.stop")
    watch = json.loads(
        wait_until("the watcher's report", lambda: sh("cat /tmp/watch.json || true").stdout, 30)
    )
    assert watch["missing"] == 0, watch
    assert watch["count"] > 10_000, watch
    assert {f"releases/{GOOD1}", f"releases/{GOOD2}", f"releases/{BAD}"} <= set(watch["seen"]), watch


def hit_the_start_limit() -> None:
    """Restart the unit until systemd refuses to start it (a crash loop, or many rollouts)."""
    for _ in range(6):
        if sh(f"systemctl restart {SERVICE}", check=False).returncode != 0:
            break
    state = sh(f"systemctl show {SERVICE} --property=ActiveState,Result").stdout
    assert "Result=start-limit-hit" in state and "ActiveState=failed" in state, state


def test_a_unit_at_its_start_limit_still_takes_a_new_release_and_restarts(device):
    dropin = f"/etc/systemd/system/{SERVICE}.d"
    sh(f"mkdir -p {dropin}")
    put(f"{dropin}/limit.conf", "[Unit]\nStartLimitIntervalSec=600\nStartLimitBurst=3\n")
    sh("systemctl daemon-reload")
    try:
        target = GOOD1 if link("current") == f"releases/{GOOD2}" else GOOD2
        hit_the_start_limit()
        switched = activate(release=target, health_seconds=1)
        assert switched.get("outcome") == "activated" and not switched.get("failed"), switched.get("msg")
        assert running_release() == target
        hit_the_start_limit()
        kept = activate(release=target, health_seconds=1)
        assert kept.get("outcome") == "unchanged" and kept["changed"] is True, kept.get("msg")
        assert running_release() == target
    finally:
        sh(f"rm -rf {dropin} && systemctl daemon-reload && systemctl reset-failed {SERVICE}")


def test_keep_removes_old_and_incomplete_releases_never_the_active_or_previous(device):
    """keep=N after a switch: the N newest complete releases (by marker) stay, with current and previous."""
    olds = ["0.1.0-0101aaaa", "0.2.0-0202bbbb"]
    for release in olds:
        make_release(release)
    sh(f"mkdir -p {BASE}/releases/.staging")  # not a release: hidden names are never touched
    ages = {olds[0]: "2020-01-01", olds[1]: "2020-02-01", GOOD1: "2021-01-01", GOOD2: "2021-02-01"}
    ages |= {
        BAD: "2022-01-01",
        LATE: "2022-02-01",
        WRONG: "2022-03-01",
        DEAD: "2024-05-01",
        SICK: "2024-06-01",
    }
    for release, day in ages.items():
        sh(f"touch -d {day} {BASE}/releases/{release}/.build-complete")
    target, before = (GOOD1, GOOD2) if link("current") == f"releases/{GOOD2}" else (GOOD2, GOOD1)

    def present() -> set[str]:
        return set(sh(f"ls -A {BASE}/releases").stdout.split())

    everything = present()
    assert {*ages, INCOMPLETE, ".staging"} <= everything
    check = activate(check=True, release=target, keep=2)
    assert check["outcome"] == "would_activate" and "pruned" not in check, check
    assert present() == everything

    result = activate(release=target, health_seconds=1, keep=2)
    assert result.get("outcome") == "activated" and not result.get("failed"), result.get("msg")
    assert link("current") == f"releases/{target}" and link("previous") == f"releases/{before}"
    # The two newest markers (SICK, DEAD), and the active and previous releases, older as they are.
    assert present() == {SICK, DEAD, GOOD1, GOOD2, ".staging"}
    assert sorted(result["pruned"]) == sorted(everything - {SICK, DEAD, GOOD1, GOOD2, ".staging"})
    assert running_release() == target

    again = activate(release=target, health_seconds=1, keep=2)
    assert again["outcome"] == "unchanged" and again["changed"] is False and again["pruned"] == [], again


def test_the_lock_owner_gets_the_update_lock_back_whatever_the_outcome(device):
    """lock_owner: the update lock goes back at the end of the run, gate passed or failed, never another's."""
    lock, owner = "/run/voice-client-update.lock", "op@controller:rollout"

    def hold(who: str) -> None:
        put(lock, json.dumps({"owner": who, "since": "2026-12-03T09:00:00Z", "controller": "c:1"}), "0600")

    def holder() -> str:
        text = sh(f"cat {lock} 2>/dev/null || true").stdout.strip()
        return json.loads(text)["owner"] if text else ""

    target, other = (GOOD1, GOOD2) if link("current") == f"releases/{GOOD2}" else (GOOD2, GOOD1)
    hold(owner)
    check = activate(check=True, release=target, lock_owner=owner)
    assert check["outcome"] == "would_activate" and "lock_released" not in check, check
    assert holder() == owner, "check mode gives nothing back"

    passed = activate(release=target, health_seconds=1, lock_owner=owner)
    assert passed.get("outcome") == "activated" and passed["lock_released"] is True, passed.get("msg")
    assert passed["lock_owner"] == owner
    assert holder() == "", "the owner's lock is given back after a passed gate"

    hold(owner)
    failed = activate(release=SICK, health_seconds=1, lock_owner=owner)  # kept by the test before
    assert failed.get("failed") and failed["outcome"] == "rolled_back", failed
    assert failed["lock_released"] is True and holder() == "", "and after a failed one, once reverted"
    assert running_release() == target

    hold("someone else")
    kept = activate(release=other, health_seconds=1, lock_owner=owner)
    assert kept.get("outcome") == "activated" and kept["lock_released"] is False, kept.get("msg")
    assert holder() == "someone else", "another run's lock is never given back"
    sh(f"rm -f {lock}")

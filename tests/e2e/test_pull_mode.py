"""Pull mode end to end (issue 14): a device with SSH off updates itself from signed releases.

Real stack, real HTTP through the fleet's relay container, a systemd container
as the device. The fleet is this module's own (prefix vf-pull, one device: the
agent's test-only clock puts the same device inside and outside its window).
After provisioning (site.yml, then the agent's role with enrolment) the
device's sshd is stopped; every agent run is `systemctl start
voice-agent.service` through `docker exec`, as the timer would start it.

The tests run in order and build on each other (one device's history):
out of window -> in window installs 1.1.0 -> nothing to do -> 1.2.0 with a
flipped byte -> with a foreign signature -> store down, then caught up ->
replayed older manifest -> 1.3.0 failing its gate rolls back -> urgent 1.4.0
waits for an hour of idleness, outside the window -> identity kept.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from playbook_support import set_activity

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.docker, pytest.mark.stack, pytest.mark.own_fleet]

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "vf-pull"
PORT_BASE = 2451
STATE_DIR = ROOT / ".cache" / "fleet-pull"
PLATFORM = "cp311-x86_64"
AGENT_PLAY = ROOT / "tests" / "fixtures" / "pull" / "agent.yml"
VARIANTS = ROOT / ".cache" / "pull-variants"


def load_window_rule():
    spec = importlib.util.spec_from_file_location(
        "mw_rule", ROOT / "filter_plugins" / "maintenance_window.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Pull:
    """The module's device, its registry rows, the store and the publisher."""

    def __init__(self, fleet, stack_env: dict[str, str], keys: Path):
        self.fleet = fleet
        self.env = stack_env
        self.host = fleet.hosts[0]
        self.name = self.host.name
        self.keys = keys
        self.store = Path(stack_env["VF_STORE_DIR"])
        self.relay = f"{PREFIX}-relay"
        self.base_url = f"http://{self.relay}:8080/store"

    # -- the controller side

    def variant(self, kind: str, version: str) -> Path:
        dest = VARIANTS / f"{kind}-{version}"
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "tools" / "client_variant.py"),
                "--kind",
                kind,
                "--version",
                version,
                "--dest",
                str(dest),
            ],
            check=True,
            capture_output=True,
        )
        return dest

    def publish(self, source: Path, key: Path | None = None, update_type: str = "scheduled") -> dict:
        proc = subprocess.run(
            [
                sys.executable,
                str(ROOT / "tools" / "publish.py"),
                "release",
                "--key",
                str(key or self.keys / "pub.key"),
                "--store",
                str(self.store),
                "--base-url",
                self.base_url,
                "--platform",
                PLATFORM,
                "--source",
                str(source),
                "--update-type",
                update_type,
                "--json",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
            env={**os.environ, **self.env},
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def db(self):
        return psycopg.connect(self.env["DATABASE_URL"], autocommit=True)

    def progress(self, version: str) -> tuple[str, str | None] | None:
        with self.db() as conn:
            return conn.execute(
                "SELECT du.status, du.error_message FROM public.device_updates du "
                "JOIN public.devices d ON d.id = du.device_id JOIN public.updates u ON u.id = du.update_id "
                "WHERE d.device_uuid = %s AND u.version = %s",
                (self.host.device_uuid, version),
            ).fetchone()

    def device_row(self) -> dict:
        with self.db() as conn:
            row = conn.execute(
                "SELECT current_version, last_seen, management, metadata FROM public.devices "
                "WHERE device_uuid = %s",
                (self.host.device_uuid,),
            ).fetchone()
        return {"current_version": row[0], "last_seen": row[1], "management": row[2], "metadata": row[3]}

    # -- the device side (docker exec only: its sshd is off)

    def sh(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["docker", "exec", self.name, *cmd], capture_output=True, text=True, check=False, timeout=900
        )
        if check:
            assert proc.returncode == 0, f"{cmd}: {proc.stdout}\n{proc.stderr}"
        return proc

    def run_agent(self, now: float | None = None) -> tuple[int, str]:
        """One agent run, started by systemd as the timer does; (exit status, its journal)."""
        if now is None:
            self.sh("systemctl", "unset-environment", "VOICE_AGENT_NOW")
        else:
            stamp = datetime.fromtimestamp(now, UTC).isoformat()
            self.sh("systemctl", "set-environment", f"VOICE_AGENT_NOW={stamp}")
        shown = self.sh("journalctl", "-n", "0", "--show-cursor", "--no-pager").stdout
        cursor = shown.strip().rsplit("-- cursor: ", 1)[-1].strip()
        self.sh("systemctl", "start", "voice-agent.service", check=False)
        status = int(
            self.sh("systemctl", "show", "-P", "ExecMainStatus", "voice-agent.service").stdout.strip()
        )
        journal = self.sh(
            "journalctl", "-u", "voice-agent.service", f"--after-cursor={cursor}", "-o", "cat", "--no-pager"
        ).stdout
        return status, journal

    def active(self) -> str:
        return self.sh("readlink", "/opt/voice-client/current").stdout.strip().removeprefix("releases/")

    def releases(self) -> list[str]:
        return self.sh("ls", "/opt/voice-client/releases").stdout.split()

    def window_now(self, inside: bool) -> float:
        rule = load_window_rule()
        window = rule.maintenance_window(self.host.timezone, now=time.time())
        start = datetime.fromisoformat(window["start"]).timestamp()
        return start + 600 if inside else start - 3 * 3600


@pytest.fixture(scope="module")
def pull(fleet_factory, stack_env, tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys")
    # A fresh device and no pullable updates of an earlier run: the history below starts from scratch.
    fleet_args = [f"--prefix={PREFIX}", f"--port-base={PORT_BASE}", f"--state-dir={STATE_DIR}"]
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "fleet.py"), "down", *fleet_args],
        capture_output=True,
        check=False,
        timeout=600,
    )
    with psycopg.connect(stack_env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "DELETE FROM public.updates WHERE package_url LIKE %s", (f"http://{PREFIX}-relay:8080/%",)
        )
    fleet, _ = fleet_factory(prefix=PREFIX, count=1, port_base=PORT_BASE, state_dir=STATE_DIR)
    handle = Pull(fleet, stack_env, keys)
    for name in ("pub.key", "other.key"):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "publish.py"), "keygen", "--out", str(keys / name)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
    limit = f"fleet_{PREFIX.replace('-', '_')}"
    proc = fleet.playbook("playbooks/site.yml", "-l", limit)
    assert proc.returncode == 0, proc.stdout[-4000:]
    with handle.db() as conn:  # a fresh enrolment: no credential left from an earlier run
        conn.execute(
            "DELETE FROM public.device_credentials WHERE device_uuid = %s", (handle.host.device_uuid,)
        )
    handle.sh("rm", "-f", "/etc/voice-client/agent.env", "/var/lib/voice-client/agent-state.json")
    proc = fleet.playbook(
        str(AGENT_PLAY),
        "-l",
        limit,
        "-e",
        json.dumps(
            {
                "voice_agent_enrol": True,
                "voice_agent_public_key_file": str(keys / "pub.key.pub"),
                "voice_agent_retries": 3,
                "voice_agent_backoff_seconds": 0.5,
                "voice_agent_timer_enabled": False,
            }
        ),
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    handle.identity = handle.sh("cat", "/var/lib/voice-client/device_uuid").stdout.strip()
    handle.first = handle.active()
    handle.sh("systemctl", "stop", "ssh")
    yield handle
    handle.sh("systemctl", "unset-environment", "VOICE_AGENT_NOW", check=False)
    handle.sh("systemctl", "start", "ssh", check=False)
    subprocess.run(["docker", "start", handle.relay], capture_output=True, check=False)
    if os.environ.get("VF_KEEP_FLEET") != "1":
        fleet.down()


def test_provisioned_for_pull_with_its_own_credential_and_no_ssh(pull):
    assert pull.sh("systemctl", "is-active", "ssh", check=False).stdout.strip() != "active"
    mode = pull.sh("stat", "-c", "%a %U", "/etc/voice-client/agent.env").stdout.split()
    assert mode == ["640", "root"]
    config = pull.sh("cat", "/etc/voice-client/agent.env").stdout
    assert pull.env["SUPABASE_SERVICE_KEY"] not in config, "the service key must never reach a device"
    token = next(
        line.split("=", 1)[1] for line in config.splitlines() if line.startswith("VOICE_AGENT_TOKEN=")
    )
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["role"] == "device" and claims["device_uuid"] == pull.host.device_uuid
    assert pull.device_row()["management"] == "pull"
    files = pull.sh("ls", "/opt/voice-client/agent").stdout.split()
    assert {
        "voice_agent.py",
        "voice_release_build.py",
        "voice_release_activate.py",
        "maintenance_window.py",
    } <= set(files)
    for name, local in (
        ("voice_release_build.py", ROOT / "plugins/modules/voice_release_build.py"),
        ("maintenance_window.py", ROOT / "filter_plugins/maintenance_window.py"),
    ):
        assert pull.sh("cat", f"/opt/voice-client/agent/{name}").stdout == local.read_text(), name
    assert pull.sh("test", "!", "-e", "/opt/voice-client/agent/../keys", check=False).returncode == 0
    private = (pull.keys / "pub.key").read_text()
    assert private not in pull.sh("cat", "/etc/voice-client/publisher.pub").stdout


def test_out_of_window_device_does_not_install(pull):
    published = pull.publish(pull.variant("plain", "1.1.0"))
    pull.r110 = published["manifests"][0]["release_id"]
    status, journal = pull.run_agent(pull.window_now(inside=False))
    assert status == 0, journal
    assert "outside the maintenance window" in journal
    assert pull.active() == pull.first and pull.r110 not in pull.releases()
    assert pull.progress("1.1.0") is None


def test_in_window_device_installs_by_itself(pull):
    status, journal = pull.run_agent(pull.window_now(inside=True))
    assert status == 0, journal
    assert pull.active() == pull.r110, journal
    assert pull.progress("1.1.0") == ("completed", None)
    row = pull.device_row()
    assert row["current_version"] == "1.1.0" and row["metadata"]["release"] == pull.r110


def test_nothing_to_do_is_one_request(pull):
    status, journal = pull.run_agent(pull.window_now(inside=True))
    assert status == 0 and "up to date" in journal and "1 request" in journal, journal


def test_flipped_byte_in_the_store_is_refused(pull):
    published = pull.publish(pull.variant("plain", "1.2.0"))
    manifest = published["manifests"][0]
    pull.r120 = manifest["release_id"]
    client = next(n for n in manifest["files"] if n.startswith("voice_client-1.2.0"))
    path = pull.store / PLATFORM / pull.r120 / client
    pull.saved_wheel = path.read_bytes()
    data = bytearray(pull.saved_wheel)
    data[len(data) // 2] ^= 0x01
    path.unlink()  # the store's file is a hard link into the wheelhouse cache: replace it, never edit it
    path.write_bytes(bytes(data))
    path.chmod(0o644)
    status, journal = pull.run_agent(pull.window_now(inside=True))
    assert status != 0, journal
    assert pull.active() == pull.r110 and pull.r120 not in pull.releases()
    state, error = pull.progress("1.2.0")
    assert state == "failed" and "hash mismatch" in error and client in error, error
    path.unlink()
    path.write_bytes(pull.saved_wheel)
    path.chmod(0o644)


def test_manifest_signed_by_another_key_is_refused(pull):
    release_dir = pull.store / PLATFORM / pull.r120
    sig = release_dir / "manifest.json.sig"
    good = sig.read_bytes()
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    other = serialization.load_pem_private_key((pull.keys / "other.key").read_bytes(), password=None)
    sig.write_bytes(base64.b64encode(other.sign((release_dir / "manifest.json").read_bytes())) + b"\n")
    try:
        status, journal = pull.run_agent(pull.window_now(inside=True))
    finally:
        sig.write_bytes(good)
    assert status != 0, journal
    state, error = pull.progress("1.2.0")
    assert state == "failed" and "bad signature" in error, error
    assert pull.active() == pull.r110 and pull.r120 not in pull.releases()


def test_store_down_is_retried_then_caught_up(pull):
    subprocess.run(["docker", "stop", pull.relay], capture_output=True, check=True, timeout=60)
    try:
        status, journal = pull.run_agent(pull.window_now(inside=True))
    finally:
        subprocess.run(["docker", "start", pull.relay], capture_output=True, check=True, timeout=60)
    assert status != 0 and "retry 1/2" in journal, journal
    assert pull.active() == pull.r110
    time.sleep(1)
    status, journal = pull.run_agent(pull.window_now(inside=True))
    assert status == 0, journal
    assert pull.active() == pull.r120
    assert pull.progress("1.2.0") == ("completed", None)
    assert "fetched 1 of" in journal, "only the changed client wheel crosses the network"


def test_replayed_older_manifest_is_refused(pull):
    release_dir = pull.store / PLATFORM / pull.r120
    old = {n: (release_dir / n).read_bytes() for n in ("manifest.json", "manifest.json.sig")}
    newer = pull.publish(pull.variant("plain", "1.2.0"))
    assert newer["manifests"][0]["release_id"] == pull.r120
    status, journal = pull.run_agent(pull.window_now(inside=True))
    assert status == 0 and "already active" in journal, journal
    # The older signed manifest comes back, under a row that asks the device to look again.
    for name, data in old.items():
        (release_dir / name).write_bytes(data)
    with pull.db() as conn:
        conn.execute(
            "UPDATE public.updates SET package_url = package_url || '&replay=1' WHERE version = '1.2.0'"
        )
    status, journal = pull.run_agent(pull.window_now(inside=True))
    assert status != 0, journal
    state, error = pull.progress("1.2.0")
    assert state == "failed" and "replayed manifest" in error, error
    assert pull.active() == pull.r120


def test_release_failing_its_gate_rolls_back(pull):
    published = pull.publish(pull.variant("crash", "1.3.0"))
    r130 = published["manifests"][0]["release_id"]
    status, journal = pull.run_agent(pull.window_now(inside=True))
    assert status != 0, journal
    assert pull.active() == pull.r120, journal
    state, error = pull.progress("1.3.0")
    assert state == "rolled_back" and "step" in error, error
    assert pull.sh("systemctl", "is-active", "voice-client.service", check=False).stdout.strip() == "active"
    assert pull.device_row()["current_version"] == "1.2.0"
    # Not retried every hour: the same update is handled.
    status, journal = pull.run_agent(pull.window_now(inside=True))
    assert status == 0 and "up to date" in journal, journal
    assert pull.active() == pull.r120 and "(rolled_back)" in journal and r130 in pull.releases()


def test_an_urgent_release_waits_for_an_hour_of_idleness(pull):
    published = pull.publish(pull.variant("plain", "1.4.0"), update_type="urgent")
    r140 = published["manifests"][0]["release_id"]
    outside = pull.window_now(inside=False)  # urgent: the window does not matter, idleness does
    try:
        set_activity(pull.fleet, pull.name, busy=False, minutes_ago=10)
        status, journal = pull.run_agent(outside)
        assert status == 0 and "waiting for 3600s of idleness" in journal, journal
        assert pull.active() == pull.r120 and r140 not in pull.releases()
        set_activity(pull.fleet, pull.name, busy=False, minutes_ago=61)
        status, journal = pull.run_agent(outside)
        assert status == 0 and "urgent, device idle" in journal, journal
        assert pull.active() == r140
        assert pull.progress("1.4.0") == ("completed", None)
    finally:
        set_activity(pull.fleet, pull.name, busy=False, minutes_ago=None)


def test_identity_unchanged_throughout(pull):
    assert pull.sh("cat", "/var/lib/voice-client/device_uuid").stdout.strip() == pull.identity
    assert pull.identity == pull.host.device_uuid
    with pull.db() as conn:
        count = conn.execute(
            "SELECT count(*) FROM public.devices WHERE metadata->>'fleet' = %s", (PREFIX,)
        ).fetchone()[0]
    assert count == 1
    assert shutil.which("docker")

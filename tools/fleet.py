#!/usr/bin/env python3
"""The simulated fleet: systemd containers that stand in for Raspberry Pis.

    tools/fleet.py up [--count N] [--arm64]   make the fleet exist, exactly N devices
    tools/fleet.py down                       remove what `up` made (key and images stay)
    tools/fleet.py status [--json]            one line per device

Every device is a container of the test bed's base image (scripts/bed.sh image)
booted with systemd, its sshd published on 127.0.0.1:<port base + index - 1>,
a `pi` user with Raspberry Pi OS's passwordless sudo and the fleet's SSH key,
and an identity (a UUID7 in /var/lib/voice-client/device_uuid) written once.
Each device has a row in the local registry (tools/stack.py) that the
`supabase_devices` inventory plugin turns into a host; `up` writes an inventory
directory for it (<state dir>/inventory) and checks through Ansible that every
device answers as root. A container on the same Docker network runs the stand-in
Javia voice server (tools/fakes/voice_server.py), reachable from the devices as
http://vf-voice-server:8080. Another one, `<prefix>-relay`, forwards TCP port
8080 to the registry stack's gateway socket (tools/fleet/relay.py, the socket's
directory bind-mounted): pull-mode devices reach the registry and the release
store as http://<prefix>-relay:8080/rest/v1/ and /store/, never a host address.

`up` and `down` are idempotent: a re-run changes nothing and says so.
Several fleets may exist side by side with different --prefix, --port-base and
--state-dir (the end-to-end tests use their own).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import fcntl
import io
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

# tools/ is on sys.path (this is a script): the registry stack's own settings and file writer.
from stack import STACK as STACK_DIR  # noqa: E402
from stack import atomic_write, read_env_file  # noqa: E402

try:
    import uuid6
    import yaml
    from ansible_collections.javia.voice_fleet.plugins.module_utils.voice_registry_client import (
        RegistryClient,
        session,
    )
except ImportError:  # run with the system python: use the controller venv instead
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() and VENV_PYTHON.exists():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])  # noqa: S606
    sys.exit("fleet: uuid6, PyYAML or supabase is missing: run `make setup`, then use .venv/bin/python")

DATA = Path(__file__).resolve().parent / "fleet"
PROVISION_SCRIPT = DATA / "provision-device.sh"
VOICE_PROVISION_SCRIPT = DATA / "provision-voice-server.sh"
VOICE_UNIT = DATA / "vf-voice-server.service"
RELAY_SCRIPT = DATA / "relay.py"
RELAY_PORT = 8080
# Where the relay container sees the stack's gateway socket directory.
RELAY_GATEWAY_DIR = "/vf-gateway"
VOICE_SERVER_SCRIPT = ROOT / "tools" / "fakes" / "voice_server.py"
BED = ROOT / "scripts" / "bed.sh"
STACK_TOOL = ROOT / "tools" / "stack.py"

DEFAULT_PREFIX = "vf-fleet"
DEFAULT_PORT_BASE = 2201
DEFAULT_STATE_DIR = ROOT / ".cache" / "fleet"
MAX_DEVICES = 99
# What the devices call the voice server (a network alias on the fleet's network).
VOICE_ALIAS = "vf-voice-server"
VOICE_PORT = 8080
IDENTITY_FILE = "/var/lib/voice-client/device_uuid"
# A mix of offsets, half-hour and quarter-hour zones and both hemispheres, so a
# 2 AM maintenance window opens at different instants across the fleet.
TIMEZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/Los_Angeles",
    "Asia/Kathmandu",
    "UTC",
    "Asia/Tokyo",
    "America/Sao_Paulo",
    "Europe/London",
)
# systemd as PID 1 without --privileged (see /work/shared/ENVIRONMENT.md).
SYSTEMD_RUN_OPTIONS = (
    "--cap-add=SYS_ADMIN",
    "--security-opt=seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
    "--cgroupns=host",
    "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs=/run",
    "--tmpfs=/run/lock",
    "--tmpfs=/tmp",
    "--env=container=docker",
    # systemd halts cleanly on SIGRTMIN+3; SIGTERM would make it re-execute.
    "--stop-signal=SIGRTMIN+3",
)
LABEL = "org.voice-fleet"
KEY_COMMENT = "voice-fleet simulated fleet"
BOOT_TIMEOUT = {"amd64": 90.0, "arm64": 300.0}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")


class FleetError(Exception):
    """A failure a person can act on; printed without a traceback."""


_print_lock = threading.Lock()


def say(msg: str) -> None:
    with _print_lock:
        print(msg, flush=True)


# --- settings ----------------------------------------------------------------


@dataclass(frozen=True)
class Fleet:
    prefix: str
    port_base: int
    state_dir: Path

    @property
    def network(self) -> str:
        return self.prefix

    @property
    def voice_server(self) -> str:
        return f"{self.prefix}-voice-server"

    @property
    def relay(self) -> str:
        return f"{self.prefix}-relay"

    @property
    def relay_url(self) -> str:
        """The registry gateway as the devices reach it (append /rest/v1/ or /store/)."""
        return f"http://{self.relay}:{RELAY_PORT}"

    @property
    def key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.state_dir / "inventory"

    @property
    def marker(self) -> dict[str, Any]:
        """What every registry row of this fleet carries in its metadata."""
        return {"simulated": True, "fleet": self.prefix}

    def device(self, index: int, arch: str, image: str) -> Device:
        return Device(
            index=index,
            name=f"{self.prefix}-{index:02d}",
            port=self.port_base + index - 1,
            arch=arch,
            image=image,
            timezone=TIMEZONES[(index - 1) % len(TIMEZONES)],
        )


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    port: int
    arch: str  # Debian architecture of the image: amd64 | arm64
    image: str
    timezone: str


@dataclass
class Ready:
    """A device after `up`: what the registry, known_hosts and the report need."""

    device: Device
    uuid: str
    machine: str  # uname -m
    host_keys: list[str]
    changes: list[str] = field(default_factory=list)


def registry_env(*, required: bool) -> dict[str, str] | None:
    path = STACK_DIR / "env"
    if not path.exists():
        if required:
            raise FleetError(f"{path} is missing: the registry stack is not up (make stack-up)")
        return None
    env = read_env_file(path)
    missing = [k for k in ("SUPABASE_URL", "SUPABASE_SERVICE_KEY") if not env.get(k)]
    if missing:
        raise FleetError(f"{path} lacks {', '.join(missing)}: run `make stack-up` to rewrite it")
    return env


# --- processes and Docker ----------------------------------------------------


def run(
    cmd: list[str], *, what: str, check: bool = True, timeout: float = 120, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired:
        raise FleetError(f"{what}: no answer within {timeout:.0f}s ({shlex.join(cmd[:4])} ...)") from None
    except FileNotFoundError:
        raise FleetError(f"{what}: {cmd[0]} is not installed") from None
    if check and proc.returncode != 0:
        out = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise FleetError(f"{what} failed (exit {proc.returncode}): {out}")
    return proc


def docker(*args: str, what: str, check: bool = True, timeout: float = 120, **kwargs: Any) -> str:
    return run(["docker", *args], what=what, check=check, timeout=timeout, **kwargs).stdout


def docker_exec(
    name: str, script: str, *, what: str, timeout: float = 120, env: dict[str, str] | None = None
) -> str:
    """Run a bash script inside a container, as root, given on stdin."""
    env_args = [f"--env={k}={v}" for k, v in (env or {}).items()]
    return docker("exec", "-i", *env_args, name, "bash", "-s", what=what, timeout=timeout, input=script)


def ensure_docker() -> None:
    proc = run([str(BED), "docker"], what="starting Docker", check=False, timeout=180)
    if proc.returncode != 0:
        raise FleetError(f"the Docker engine does not answer: {proc.stderr.strip()[-500:]}")


def ensure_image(arch: str | None = None) -> str:
    if arch == "arm64":
        say("image: the arm64 image (a first build takes minutes under emulation)")
    proc = run(
        [str(BED), "image", *([arch] if arch else [])], what="the base image", check=False, timeout=1800
    )
    if proc.returncode != 0:
        raise FleetError(f"could not build the base image {arch or ''}: {proc.stderr.strip()[-800:]}")
    return proc.stdout.strip().splitlines()[-1]


def ensure_stack() -> dict[str, str]:
    proc = run([sys.executable, str(STACK_TOOL), "up"], what="the registry stack", check=False, timeout=300)
    if proc.returncode != 0:
        raise FleetError(f"the registry stack is not up: {proc.stderr.strip()[-800:]}")
    env = registry_env(required=True)
    if env is None:  # registry_env raises first; this keeps the type checker honest
        raise FleetError("the registry stack wrote no settings")
    return env


def fleet_containers(fleet: Fleet) -> dict[str, dict[str, Any]]:
    """Every container of this fleet (by label), by name, as `docker inspect` describes it."""
    ids = docker(
        "ps", "-aq", f"--filter=label={LABEL}.fleet={fleet.prefix}", what="listing containers"
    ).split()
    if not ids:
        return {}
    info = json.loads(docker("inspect", *ids, what="inspecting containers"))
    return {item["Name"].lstrip("/"): item for item in info}


def container_exists(name: str) -> bool:
    proc = run(["docker", "container", "inspect", name], what=f"inspecting {name}", check=False)
    return proc.returncode == 0


def labels(info: dict[str, Any]) -> dict[str, str]:
    return info["Config"].get("Labels") or {}


def published_port(info: dict[str, Any]) -> int | None:
    bindings = (info["HostConfig"].get("PortBindings") or {}).get("22/tcp") or []
    for binding in bindings:
        if binding.get("HostIp") == "127.0.0.1" and binding.get("HostPort"):
            return int(binding["HostPort"])
    return None


def port_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port or on every address."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_holder(port: int) -> str:
    names = docker("ps", f"--filter=publish={port}", "--format={{.Names}}", what="listing containers").split()
    if names:
        return f"container {', '.join(names)}"
    return f"another process (`ss -ltnp 'sport = :{port}'` names it)"


def read_container_file(name: str, path: str) -> str | None:
    """A file's text from a container, running or stopped; None when it does not exist."""
    proc = subprocess.run(
        ["docker", "cp", f"{name}:{path}", "-"], capture_output=True, check=False, timeout=60
    )
    if proc.returncode != 0:
        if b"Could not find the file" in proc.stderr or b"No such container:path" in proc.stderr:
            return None
        raise FleetError(f"reading {path} from {name} failed: {proc.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        member = tar.next()
        if member is None or not member.isfile():
            return None
        handle = tar.extractfile(member)
        return handle.read().decode() if handle else None


def wait_until(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise FleetError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_for_systemd(name: str, timeout: float) -> str:
    """Wait until systemd in the container has booted; return running or degraded."""
    state = ""

    def booted() -> bool:
        nonlocal state
        proc = run(
            ["docker", "exec", name, "timeout", "20", "systemctl", "is-system-running", "--wait"],
            what=f"boot state of {name}",
            check=False,
            timeout=40,
        )
        state = proc.stdout.strip()
        return state in ("running", "degraded")

    try:
        wait_until(f"systemd to boot in {name} (last state: {state or 'no answer'})", booted, timeout)
    except FleetError:
        raise FleetError(
            f"systemd in {name} did not finish booting within {timeout:.0f}s "
            f"(state: {state or 'no answer'}); see `docker exec {name} systemctl --failed`"
        ) from None
    return state


# --- files ---------------------------------------------------------------------


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    """Atomically write text to path unless it already holds exactly that; True when written."""
    if path.exists() and path.read_text() == text and (path.stat().st_mode & 0o777) == mode:
        return False
    atomic_write(path, text, mode)
    return True


@contextlib.contextmanager
def locked(fleet: Fleet) -> Iterator[None]:
    """One `up`/`down` at a time per fleet."""
    fleet.state_dir.mkdir(parents=True, exist_ok=True)
    with open(fleet.state_dir / f".{fleet.prefix}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another `fleet up/down` of {fleet.prefix} to finish")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def ensure_key(fleet: Fleet, report: Report) -> str:
    """The fleet's key pair (ed25519, no passphrase), made once; returns the public key line."""
    fleet.state_dir.mkdir(parents=True, exist_ok=True)
    fleet.state_dir.chmod(0o700)
    pub = fleet.key.with_name(fleet.key.name + ".pub")
    if not fleet.key.exists():
        keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", KEY_COMMENT, "-f", str(fleet.key)]
        run(keygen, what="generating the fleet's SSH key")
        report.change(f"key: generated {display_path(fleet.key)}")
    fleet.key.chmod(0o600)
    if not pub.exists():
        proc = run(["ssh-keygen", "-y", "-f", str(fleet.key)], what=f"reading {fleet.key}")
        write_if_changed(pub, f"{proc.stdout.strip()} {KEY_COMMENT}\n", 0o644)
    return pub.read_text().strip()


def known_host_port(line: str) -> int | None:
    match = re.match(r"^\[127\.0\.0\.1\]:(\d+) ", line)
    return int(match.group(1)) if match else None


def update_known_hosts(fleet: Fleet, drop_ports: set[int], add: list[str]) -> bool:
    """Replace the entries of drop_ports with add; other lines stay. True when the file changed."""
    path = fleet.known_hosts
    old = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in old if known_host_port(line) not in drop_ports]
    lines = kept + sorted(add)
    if not lines:
        if path.exists():
            path.unlink()
            return True
        return False
    return write_if_changed(path, "\n".join(lines) + "\n", 0o600)


# --- the registry ----------------------------------------------------------------

FLEET_COLUMNS = "device_uuid,device_name,timezone,status,ansible_host,metadata"


def registry_session(env: dict[str, str]) -> contextlib.AbstractContextManager[RegistryClient]:
    """The controller's one registry client, on the stack's REST API (never SQL); its errors as ours."""
    return session(env, "tools/fleet.py", lambda exc: FleetError(f"{exc} (make stack-up)"))


def seed_registry(fleet: Fleet, env: dict[str, str], ready: list[Ready], gone: list[str]) -> list[str]:
    """Upsert the devices whose rows differ (one request); delete removed and stale rows."""
    messages = []
    with registry_session(env) as client:
        uuids = [item.uuid for item in ready]
        before = {}
        if uuids:
            query = client.table("devices").select(FLEET_COLUMNS).in_("device_uuid", uuids)
            before = {row["device_uuid"]: row for row in client.rows("reading the fleet's rows", query)}
        upserts = []
        for item in ready:
            dev = item.device
            metadata = {
                "ansible_port": dev.port,
                "hostname": dev.name,
                "architecture": item.machine,
                **fleet.marker,
            }
            old = before.get(item.uuid)
            old_meta = old["metadata"] if old and isinstance(old.get("metadata"), dict) else {}
            wanted = {"device_name": dev.name, "timezone": dev.timezone, "ansible_host": "127.0.0.1"}
            if (
                old
                and all(old.get(k) == v for k, v in wanted.items())
                and metadata.items() <= old_meta.items()
            ):
                continue
            # Every row names the same columns (PostgREST's bulk upsert); a known row keeps its status.
            status = old.get("status") if old else "online"
            upserts.append(
                {"device_uuid": item.uuid, **wanted, "status": status, "metadata": {**old_meta, **metadata}}
            )
            messages.append(f"registry: {'updated' if old else 'added'} {dev.name} ({item.uuid})")
        if upserts:
            query = client.table("devices").upsert(upserts, on_conflict="device_uuid")
            client.execute(f"registering {len(upserts)} device(s)", query)
        stale = delete_rows(client, fleet, keep=uuids, drop=gone)
        messages += [f"registry: removed {name} ({uuid}): that device is gone" for uuid, name in stale]
    return messages


def delete_rows(
    client: RegistryClient, fleet: Fleet, *, keep: list[str], drop: list[str]
) -> list[tuple[str, str]]:
    """Delete this fleet's rows not in `keep`, and the rows of `drop`; return (uuid, name) of each."""
    queries = []
    stale = client.table("devices").delete().contains("metadata", fleet.marker)
    queries.append(stale.not_.in_("device_uuid", keep) if keep else stale)
    if drop:
        queries.append(client.table("devices").delete().in_("device_uuid", drop))
    gone: dict[str, str] = {}
    for query in queries:
        rows = client.rows("removing the rows of devices that are gone", query)
        gone.update((row["device_uuid"], row.get("device_name") or "") for row in rows)
    return sorted(gone.items())


def registry_rows(env: dict[str, str], uuids: list[str]) -> dict[str, dict[str, Any]]:
    with registry_session(env) as client:
        query = client.table("devices").select("device_uuid,timezone,status").in_("device_uuid", uuids)
        rows = client.rows("reading the fleet's rows", query)
    return {row["device_uuid"]: {"timezone": row["timezone"], "status": row["status"]} for row in rows}


# --- the voice server ------------------------------------------------------------


def run_container(name: str, image: str, fleet: Fleet, labels_: dict[str, str], extra: list[str]) -> None:
    label_args = [f"--label={LABEL}.{k}={v}" for k, v in labels_.items()]
    docker(
        "run",
        "--detach",
        f"--name={name}",
        f"--hostname={name}",
        f"--network={fleet.network}",
        *label_args,
        *SYSTEMD_RUN_OPTIONS,
        *extra,
        image,
        what=f"starting container {name}",
    )


def ensure_voice_server(fleet: Fleet, image: str, existing: dict[str, Any] | None) -> list[str]:
    name = fleet.voice_server
    changes = []
    if existing is not None and fleet.network not in existing["NetworkSettings"]["Networks"]:
        docker("rm", "-f", name, what=f"removing {name}")
        existing = None
    if existing is None:
        run_container(
            name,
            image,
            fleet,
            {"fleet": fleet.prefix, "role": "voice-server"},
            [f"--network-alias={VOICE_ALIAS}"],
        )
        changes.append("created")
    elif existing["State"]["Status"] != "running":
        docker("start", name, what=f"starting {name}")
        changes.append("started")
    wait_for_systemd(name, BOOT_TIMEOUT["amd64"])
    # To /var/tmp: `docker cp` writes to the container's own file system, below its tmpfs mounts.
    for local in (VOICE_SERVER_SCRIPT, VOICE_UNIT):
        docker("cp", str(local), f"{name}:/var/tmp/{local.name}", what=f"copying {local.name} into {name}")
    out = docker_exec(name, VOICE_PROVISION_SCRIPT.read_text(), what=f"installing the voice server in {name}")
    return changes + [
        line.removeprefix("changed ") for line in out.splitlines() if line.startswith("changed ")
    ]


# --- the relay to the registry gateway ----------------------------------------------


def ensure_relay(fleet: Fleet, image: str, existing: dict[str, Any] | None) -> list[str]:
    """The relay container: TCP :8080 on the fleet's network -> the stack's gateway socket."""
    name = fleet.relay
    gateway_dir = STACK_DIR / "gateway"
    gateway_dir.mkdir(parents=True, exist_ok=True)
    wanted_mount = str(gateway_dir)
    changes = []
    if existing is not None:
        mounts = {m.get("Source") for m in existing.get("Mounts") or []}
        if fleet.network not in existing["NetworkSettings"]["Networks"] or wanted_mount not in mounts:
            docker("rm", "-f", name, what=f"removing {name}")
            existing = None
    if existing is None:
        label_args = [f"--label={LABEL}.{k}={v}" for k, v in {"fleet": fleet.prefix, "role": "relay"}.items()]
        docker(
            "create",
            f"--name={name}",
            f"--hostname={name}",
            f"--network={fleet.network}",
            *label_args,
            f"--volume={wanted_mount}:{RELAY_GATEWAY_DIR}",
            "--restart=unless-stopped",
            image,
            "/usr/bin/python3",
            "-u",
            "/usr/local/bin/vf-relay.py",
            f"--port={RELAY_PORT}",
            f"--socket={RELAY_GATEWAY_DIR}/gateway.sock",
            what=f"creating {name}",
        )
        docker(
            "cp",
            str(RELAY_SCRIPT),
            f"{name}:/usr/local/bin/vf-relay.py",
            what=f"copying the relay into {name}",
        )
        docker("start", name, what=f"starting {name}")
        changes.append("created")
    elif existing["State"]["Status"] != "running":
        docker("start", name, what=f"starting {name}")
        changes.append("started")
    return changes


def check_relay_reachable(fleet: Fleet, dev: Device) -> None:
    """The device reaches the registry gateway through the relay (its front page answers 200)."""
    probe = (
        "import sys, urllib.request\n"
        "for attempt in range(20):\n"
        "    try:\n"
        f"        urllib.request.urlopen('{fleet.relay_url}/', timeout=3).read(); sys.exit(0)\n"
        "    except OSError as exc:\n"
        "        err = exc; __import__('time').sleep(0.5)\n"
        "sys.exit(str(err))\n"
    )
    proc = run(
        ["docker", "exec", dev.name, "python3", "-c", probe],
        what=f"{dev.name} -> relay",
        check=False,
        timeout=60,
    )
    if proc.returncode != 0:
        raise FleetError(
            f"{dev.name} cannot reach the registry gateway at {fleet.relay_url}/: "
            f"{proc.stderr.strip()[-300:]} (is the stack up? tools/stack.py up)"
        )


# --- devices -----------------------------------------------------------------------


def needs_recreate(info: dict[str, Any], dev: Device, fleet: Fleet) -> str | None:
    """Why an existing container cannot serve as dev, or None."""
    lab = labels(info)
    if lab.get(f"{LABEL}.role") != "device":
        return "it is not a device of this fleet"
    if published_port(info) != dev.port:
        return f"its port is {published_port(info)}, wanted {dev.port}"
    if lab.get(f"{LABEL}.arch") != dev.arch:
        return f"it is {lab.get(f'{LABEL}.arch')}, wanted {dev.arch}"
    if fleet.network not in info["NetworkSettings"]["Networks"]:
        return f"it is not on the network {fleet.network}"
    return None


def scan_host_keys(dev: Device, own_keys: set[tuple[str, str]], timeout: float) -> list[str]:
    """The host keys sshd on 127.0.0.1:port presents, each checked against the container's own files."""
    scanned: list[str] = []

    def answered() -> bool:
        nonlocal scanned
        proc = run(
            ["ssh-keyscan", "-T", "5", "-p", str(dev.port), "127.0.0.1"],
            what=f"scanning {dev.name}'s host keys",
            check=False,
            timeout=30,
        )
        scanned = sorted({line for line in proc.stdout.splitlines() if line and not line.startswith("#")})
        return bool(scanned)

    try:
        wait_until(f"sshd of {dev.name} to answer on 127.0.0.1:{dev.port}", answered, timeout)
    except FleetError:
        raise FleetError(
            f"sshd of {dev.name} does not answer on 127.0.0.1:{dev.port}; "
            f"see `docker exec {dev.name} journalctl -u ssh`"
        ) from None
    for line in scanned:
        kind, key = line.split()[1:3]
        if (kind, key) not in own_keys:
            raise FleetError(
                f"127.0.0.1:{dev.port} presents a {kind} host key that {dev.name} does not have: "
                "something else answers on that port"
            )
    return scanned


def ensure_device(fleet: Fleet, dev: Device, existing: dict[str, Any] | None, pubkey: str) -> Ready:
    changes: list[str] = []
    if existing is not None:
        why = needs_recreate(existing, dev, fleet)
        if why:
            say(f"{dev.name}: recreating ({why}); it gets a new identity")
            docker("rm", "-f", dev.name, what=f"removing {dev.name}")
            existing = None
    if existing is None:
        run_container(
            dev.name,
            dev.image,
            fleet,
            {
                "fleet": fleet.prefix,
                "role": "device",
                "index": str(dev.index),
                "port": str(dev.port),
                "arch": dev.arch,
            },
            [f"--publish=127.0.0.1:{dev.port}:22"],
        )
        changes.append("created")
    elif existing["State"]["Status"] == "paused":
        docker("unpause", dev.name, what=f"unpausing {dev.name}")
        changes.append("unpaused")
    elif existing["State"]["Status"] != "running":
        docker("start", dev.name, what=f"starting {dev.name}")
        changes.append("started")
    elif existing["Config"]["Image"] != dev.image:
        say(
            f"{dev.name}: runs an older base image ({existing['Config']['Image']}); "
            "`fleet down` then `up` renews it (a new device, a new identity)"
        )
    wait_for_systemd(dev.name, BOOT_TIMEOUT[dev.arch])
    # Written only when the device has no identity yet: an existing file is never replaced.
    candidate = str(uuid6.uuid7())
    out = docker_exec(
        dev.name,
        PROVISION_SCRIPT.read_text(),
        what=f"preparing {dev.name}",
        env={"FLEET_PUBKEY": pubkey, "FLEET_UUID": candidate},
        timeout=BOOT_TIMEOUT[dev.arch],
    )
    facts, own_keys = {}, set()
    for line in out.splitlines():
        word, _, rest = line.partition(" ")
        if word == "changed":
            changes.append(rest)
        elif word == "hostkey":
            kind, _, key = rest.partition(" ")
            own_keys.add((kind, key.strip()))
        elif word in ("device_uuid", "architecture", "sudo"):
            facts[word] = rest.strip()
    if facts.get("sudo") != "ok":
        why = facts.get("sudo", "no answer").removeprefix("broken ")
        raise FleetError(f"{dev.name}: pi cannot use sudo ({why}){binfmt_hint(dev)}")
    uuid = facts.get("device_uuid", "")
    if not UUID_RE.match(uuid):
        raise FleetError(
            f"{dev.name}: {IDENTITY_FILE} holds {uuid!r}, not a UUID7; it is never replaced: "
            f"fix it by hand or remove the device (`docker rm -f {dev.name}`) and run `fleet up` again"
        )
    keys = scan_host_keys(dev, own_keys, BOOT_TIMEOUT[dev.arch])
    return Ready(
        device=dev, uuid=uuid, machine=facts.get("architecture", "?"), host_keys=keys, changes=changes
    )


def binfmt_hint(dev: Device) -> str:
    """Why setuid programs fail in an emulated device, when that is the reason."""
    handler = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    if dev.arch != "arm64" or not handler.exists():
        return ""
    flags = next((ln.split()[1] for ln in handler.read_text().splitlines() if ln.startswith("flags:")), "")
    if "C" in flags:
        return ""
    return (
        f"; the qemu-aarch64 binfmt handler runs setuid programs such as sudo without their privileges "
        f"(flags: {flags or 'none'}; it needs C): scripts/bed.sh must register it with the C flag"
    )


def check_voice_reachable(dev: Device) -> None:
    probe = f"timeout 5 bash -c '</dev/tcp/{VOICE_ALIAS}/{VOICE_PORT}'"
    proc = run(
        ["docker", "exec", dev.name, "bash", "-c", probe], what=f"{dev.name} -> voice server", check=False
    )
    if proc.returncode != 0:
        raise FleetError(f"{dev.name} cannot reach http://{VOICE_ALIAS}:{VOICE_PORT}: {proc.stderr.strip()}")


# --- the inventory -----------------------------------------------------------------------


PRODUCTION_INVENTORY = ROOT / "inventory" / "supabase.yml"


def fleet_inventory_source() -> dict[str, Any]:
    """inventory/supabase.yml, the settings cron, AWX and operators use, plus what the simulation adds.

    Which rows become hosts (statuses, filters, the table) is production's own; the fleet adds only
    how to reach a device (its published sshd port) and groups naming the simulation, so a test on
    the fleet sees the devices production would.
    """
    source = yaml.safe_load(PRODUCTION_INVENTORY.read_text())
    extra_compose = {"ansible_port": "metadata.ansible_port | int"}
    extra_groups = {"simulated": "metadata.simulated | default(false)"}
    for key, extra in (("compose", extra_compose), ("groups", extra_groups)):
        clash = sorted(set(extra) & set(source.get(key) or {}))
        if clash:
            raise FleetError(f"{PRODUCTION_INVENTORY} sets {key} {clash}: the fleet would override it")
        source[key] = {**(source.get(key) or {}), **extra}
    fleet_group = {"key": "metadata.fleet", "prefix": "fleet"}
    source["keyed_groups"] = [*(source.get("keyed_groups") or []), fleet_group]
    return source


def inventory_files(fleet: Fleet) -> dict[Path, str]:
    header = (
        "---\n"
        f"# Written by tools/fleet.py for the simulated fleet {fleet.prefix!r}; rewritten by every `up`.\n"
    )
    source = fleet_inventory_source()
    ssh_args = f"-o UserKnownHostsFile={shlex.quote(str(fleet.known_hosts))} -o StrictHostKeyChecking=yes"
    group_vars = {
        "ansible_user": "pi",
        "ansible_become": True,
        "ansible_ssh_private_key_file": str(fleet.key),
        "ansible_ssh_common_args": ssh_args,
        "voice_service_server_url": f"http://{VOICE_ALIAS}:{VOICE_PORT}",
        "voice_service_gpio_pin_factory": "mock",
        "voice_service_simulated_audio": True,
        # Pull mode (roles/voice_agent): the registry and the store through the fleet's relay.
        "voice_agent_registry_url": fleet.relay_url,
        "voice_agent_store_url": f"{fleet.relay_url}/store",
    }
    return {
        fleet.inventory / "fleet.supabase.yml": header
        + "# Every online (or updating) device of the registry at SUPABASE_URL, read with\n"
        "# SUPABASE_SERVICE_KEY (from the environment, never from this file); the\n"
        "# simulated devices publish their sshd on 127.0.0.1:<metadata.ansible_port>.\n"
        "# A row without a port keeps the default (22), so a bad row fails alone.\n"
        + yaml.safe_dump(source, sort_keys=False),
        fleet.inventory / "group_vars" / "all.yml": header
        + "# How Ansible reaches the simulated devices, and what they are (no sound card,\n"
        "# no GPIO chip, the stand-in voice server on the fleet's network).\n"
        + yaml.safe_dump(group_vars, sort_keys=False, width=1000),
    }


def ansible_env(env: dict[str, str]) -> dict[str, str]:
    venv_bin = str(ROOT / ".venv" / "bin")
    return {
        **os.environ,
        "SUPABASE_URL": env["SUPABASE_URL"],
        "SUPABASE_SERVICE_KEY": env["SUPABASE_SERVICE_KEY"],
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
    }


def verify_with_ansible(fleet: Fleet, env: dict[str, str], names: list[str]) -> None:
    """Every device, through the Supabase inventory: SSH as pi with the fleet's key, become root."""
    cmd = [str(ROOT / ".venv" / "bin" / "ansible"), ",".join(names), "-i", str(fleet.inventory)]
    cmd += ["-m", "ansible.builtin.command", "-a", "id", "--become"]
    json_env = {"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    proc = run(cmd, what="ansible", check=False, timeout=600, cwd=ROOT, env=ansible_env(env) | json_env)
    try:
        plays = json.loads(proc.stdout).get("plays") or []
        hosts = plays[0]["tasks"][0]["hosts"] if plays and plays[0]["tasks"] else {}
    except (ValueError, KeyError, IndexError):
        hosts = {}
    problems = []
    for name in names:
        result = hosts.get(name)
        if result is None:
            problems.append(f"{name}: not in the inventory (is its registry row there?)")
        elif "uid=0(root)" not in result.get("stdout", ""):
            problems.append(f"{name}: {result.get('msg') or result.get('stderr') or result.get('stdout')}")
    if problems or proc.returncode != 0:
        detail = "\n  ".join(problems) or proc.stderr.strip()[-2000:]
        raise FleetError(
            f"Ansible could not run `id` as root through {display_path(fleet.inventory)}:\n  {detail}"
        )


# --- commands -----------------------------------------------------------------------


def plan(fleet: Fleet, count: int, arm64: bool) -> tuple[list[Device], str]:
    """The devices wanted, and the image of the voice server."""
    images = {"amd64": ensure_image()}
    if arm64:
        images["arm64"] = ensure_image("arm64")
    devices = []
    for index in range(1, count + 1):
        arch = "arm64" if arm64 and index == count else "amd64"
        devices.append(fleet.device(index, arch, images[arch]))
    return devices, images["amd64"]


def check_ports(fleet: Fleet, devices: list[Device], containers: dict[str, dict[str, Any]]) -> None:
    for dev in devices:
        info = containers.get(dev.name)
        if info is not None and needs_recreate(info, dev, fleet) is None:
            continue  # its own container holds the port (or will, once started)
        if not port_free(dev.port):
            owner = port_holder(dev.port)
            ours = info is not None and published_port(info) == dev.port
            if not ours:
                raise FleetError(
                    f"port 127.0.0.1:{dev.port} (for {dev.name}) is taken by {owner}; "
                    "free it or choose other ports with --port-base"
                )
    for dev in devices:
        if dev.name not in containers and container_exists(dev.name):
            raise FleetError(
                f"a container named {dev.name} exists that this fleet did not make; "
                "remove it or choose another --prefix"
            )
    for other in (fleet.voice_server, fleet.relay):
        if other not in containers and container_exists(other):
            raise FleetError(f"a container named {other} exists that this fleet did not make")


def ensure_network(fleet: Fleet) -> bool:
    proc = run(["docker", "network", "inspect", fleet.network], what="network", check=False)
    if proc.returncode == 0:
        net = json.loads(proc.stdout)[0]
        if (net.get("Labels") or {}).get(f"{LABEL}.fleet") != fleet.prefix:
            raise FleetError(
                f"a Docker network named {fleet.network} exists that this fleet did not make; "
                "remove it or choose another --prefix"
            )
        return False
    docker(
        "network",
        "create",
        "--driver=bridge",
        f"--label={LABEL}.fleet={fleet.prefix}",
        fleet.network,
        what=f"creating the network {fleet.network}",
    )
    return True


def parallel(jobs: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run jobs in threads; the first failure is raised once all have ended."""
    results: dict[str, Any] = {}
    errors: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, max(1, len(jobs)))) as pool:
        futures = {pool.submit(job): key for key, job in jobs.items()}
        for future in concurrent.futures.as_completed(futures):
            try:
                results[futures[future]] = future.result()
            except FleetError as exc:
                errors.append(str(exc))
    if errors:
        raise FleetError("\n".join(sorted(errors)))
    return results


class Report:
    """Prints what changed; remembers whether anything did."""

    def __init__(self) -> None:
        self.changed = False

    def change(self, msg: str) -> None:
        self.changed = True
        say(msg)


def remove_extra(
    fleet: Fleet, devices: list[Device], containers: dict[str, dict[str, Any]], report: Report
) -> tuple[list[str], set[int]]:
    """Remove the devices beyond --count; return their identities and ports."""
    wanted = {dev.name for dev in devices} | {fleet.voice_server, fleet.relay}
    uuids, ports = [], set()
    for name in sorted(set(containers) - wanted):
        text = read_container_file(name, IDENTITY_FILE)
        if text and text.strip():
            uuids.append(text.strip())
        ports.add(int(labels(containers[name]).get(f"{LABEL}.port", 0)))
        docker("rm", "-f", name, what=f"removing {name}")
        report.change(f"{name}: removed (the fleet has {len(devices)} devices now)")
    return uuids, ports


def describe_changes(item: Ready) -> str:
    """A short line for what happened to one device."""
    container = [c for c in item.changes if c in ("created", "started", "unpaused")]
    prepared = [c for c in item.changes if c not in container and c != "identity"]
    words = container[:]
    if "created" in container:
        dev = item.device
        words[0] = f"created ({dev.arch}, 127.0.0.1:{dev.port}, {dev.timezone})"
    if "user pi" in prepared:
        words.append("prepared as a fresh Pi (user pi, passwordless sudo, the fleet's key, keys-only sshd)")
    elif prepared:
        words.append("fixed: " + ", ".join(prepared))
    if "identity" in item.changes:
        words.append(f"identity {item.uuid}")
    return f"{item.device.name}: {'; '.join(words)}"


def start_all(
    fleet: Fleet,
    *,
    devices: list[Device],
    containers: dict[str, dict[str, Any]],
    pubkey: str,
    server_image: str,
    report: Report,
) -> list[Ready]:
    """Every container created or started, booted and prepared, in parallel."""
    jobs: dict[str, Callable[[], Any]] = {
        fleet.voice_server: lambda: ensure_voice_server(
            fleet, server_image, containers.get(fleet.voice_server)
        )
    }
    jobs[fleet.relay] = lambda: ensure_relay(fleet, server_image, containers.get(fleet.relay))
    for dev in devices:
        jobs[dev.name] = lambda dev=dev: ensure_device(fleet, dev, containers.get(dev.name), pubkey)
    results = parallel(jobs)
    for other in (fleet.voice_server, fleet.relay):
        other_changes = results.pop(other)
        if other_changes:
            report.change(f"{other}: {', '.join(other_changes)}")
    ready: list[Ready] = [results[dev.name] for dev in devices]
    for item in ready:
        if item.changes:
            report.change(describe_changes(item))
    parallel({dev.name: lambda dev=dev: check_voice_reachable(dev) for dev in devices})
    parallel({dev.name: lambda dev=dev: check_relay_reachable(fleet, dev) for dev in devices})
    return ready


def record(
    fleet: Fleet,
    env: dict[str, str],
    ready: list[Ready],
    gone: tuple[list[str], set[int]],
    report: Report,
) -> None:
    """known_hosts, the registry rows and the inventory, as the running devices are."""
    gone_uuids, gone_ports = gone
    ports = {item.device.port for item in ready}
    keys = [line for item in ready for line in item.host_keys]
    if update_known_hosts(fleet, ports | gone_ports, keys):
        report.change(f"known_hosts: {display_path(fleet.known_hosts)} updated")
    for message in seed_registry(fleet, env, ready, gone_uuids):
        report.change(message)
    for path, text in inventory_files(fleet).items():
        if write_if_changed(path, text):
            report.change(f"inventory: wrote {display_path(path)}")


def up(fleet: Fleet, count: int, arm64: bool, verify: bool) -> None:
    started = time.monotonic()
    ensure_docker()
    env = ensure_stack()
    devices, server_image = plan(fleet, count, arm64)
    report = Report()
    with locked(fleet):
        pubkey = ensure_key(fleet, report)
        containers = fleet_containers(fleet)
        check_ports(fleet, devices, containers)
        if ensure_network(fleet):
            report.change(f"network: created {fleet.network}")
        gone = remove_extra(fleet, devices, containers, report)
        ready = start_all(
            fleet,
            devices=devices,
            containers=containers,
            pubkey=pubkey,
            server_image=server_image,
            report=report,
        )
        record(fleet, env, ready, gone, report)
        if verify:
            verify_with_ansible(fleet, env, [dev.name for dev in devices])
    arches = ", ".join(
        f"{sum(d.arch == arch for d in devices)} {arch}" for arch in sorted({d.arch for d in devices})
    )
    checked = "; SSH as pi and sudo checked through the Supabase inventory" if verify else ""
    say(
        f"fleet {fleet.prefix}: {count} devices up ({arches}), "
        f"{'changed' if report.changed else 'no changes'}, {time.monotonic() - started:.1f}s{checked}"
    )
    say(f"  . {display_path(STACK_DIR / 'env')} && ansible all -i {display_path(fleet.inventory)} -m ping")


def display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def network_ours(fleet: Fleet) -> bool:
    proc = run(["docker", "network", "inspect", fleet.network], what="network", check=False)
    if proc.returncode != 0:
        return False
    return (json.loads(proc.stdout)[0].get("Labels") or {}).get(f"{LABEL}.fleet") == fleet.prefix


def forget(fleet: Fleet, ports: set[int], report: Report) -> None:
    """The fleet's known_hosts entries and inventory, gone."""
    if update_known_hosts(fleet, ports, []):
        report.change(f"known_hosts: removed the entries of {fleet.prefix}")
    files = list(inventory_files(fleet))
    if any(path.exists() for path in files):
        for path in files:
            path.unlink(missing_ok=True)
        report.change(f"inventory: removed {display_path(fleet.inventory)}")
    for folder in (fleet.inventory / "group_vars", fleet.inventory):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def down(fleet: Fleet) -> None:
    ensure_docker()
    report = Report()
    with locked(fleet):
        containers = fleet_containers(fleet)
        devices = {n: info for n, info in containers.items() if labels(info).get(f"{LABEL}.role") == "device"}
        uuids = [
            text.strip() for name in sorted(devices) if (text := read_container_file(name, IDENTITY_FILE))
        ]
        for name in sorted(containers):
            docker("rm", "-f", name, what=f"removing {name}")
            report.change(f"{name}: removed")
        if network_ours(fleet):
            docker("network", "rm", fleet.network, what=f"removing the network {fleet.network}")
            report.change(f"network: removed {fleet.network}")
        forget(fleet, {int(labels(info).get(f"{LABEL}.port", 0)) for info in devices.values()}, report)
        env = registry_env(required=False)
        if env is not None:
            try:
                with registry_session(env) as client:
                    gone = delete_rows(client, fleet, keep=[], drop=uuids)
            except FleetError as exc:
                raise FleetError(
                    f"the containers are gone but the registry rows stay: {exc}; then run `down` again"
                ) from None
            for uuid, name in gone:
                report.change(f"registry: removed {name} ({uuid})")
    what = "down" if report.changed else "down already, nothing to remove"
    kept = f"the SSH key {display_path(fleet.key)} and the images" if fleet.key.exists() else "the images"
    say(f"fleet {fleet.prefix}: {what} (kept: {kept})")


def describe(fleet: Fleet) -> list[dict[str, Any]]:
    containers = fleet_containers(fleet)

    def one(name: str, info: dict[str, Any]) -> dict[str, Any]:
        lab = labels(info)
        running = info["State"]["Status"] == "running"
        systemd = "-"
        if running and lab.get(f"{LABEL}.role") != "relay":  # the relay runs no systemd
            proc = run(["docker", "exec", name, "systemctl", "is-system-running"], what="state", check=False)
            systemd = proc.stdout.strip() or "?"
        uuid = None
        if lab.get(f"{LABEL}.role") == "device":
            text = read_container_file(name, IDENTITY_FILE)
            uuid = text.strip() if text else None
        return {
            "name": name,
            "role": lab.get(f"{LABEL}.role", "?"),
            "arch": lab.get(f"{LABEL}.arch", "amd64"),
            "port": published_port(info),
            "state": info["State"]["Status"],
            "systemd": systemd,
            "device_uuid": uuid,
        }

    rows = list(
        parallel({name: lambda n=name, i=info: one(n, i) for name, info in containers.items()}).values()
    )
    rows.sort(key=lambda r: (r["role"] != "device", r["name"]))
    env = registry_env(required=False)
    uuids = [r["device_uuid"] for r in rows if r["device_uuid"]]
    found: dict[str, dict[str, Any]] = {}
    if env is not None and uuids:
        try:
            found = registry_rows(env, uuids)
        except FleetError as exc:
            say(f"registry: {exc}")
    for row in rows:
        reg = found.get(row["device_uuid"] or "")
        row["timezone"] = reg["timezone"] if reg else None
        row["registry_status"] = reg["status"] if reg else None
    return rows


def status(fleet: Fleet, as_json: bool) -> int:
    ensure_docker()
    rows = describe(fleet)
    if as_json:
        print(
            json.dumps({"prefix": fleet.prefix, "inventory": str(fleet.inventory), "hosts": rows}, indent=2)
        )
        return 0
    if not rows:
        say(f"fleet {fleet.prefix}: no containers")
        return 0
    fmt = "{:<22} {:<6} {:<5} {:<8} {:<9} {:<20} {:<8} {}"
    say(fmt.format("NAME", "ARCH", "PORT", "STATE", "SYSTEMD", "TIMEZONE", "REGISTRY", "DEVICE_UUID"))
    for r in rows:
        if r["role"] == "voice-server":
            tz, reg, uuid = "-", "-", f"http://{VOICE_ALIAS}:{VOICE_PORT}"
        elif r["role"] == "relay":
            tz, reg, uuid = "-", "-", f"{fleet.relay_url} -> {STACK_DIR / 'gateway' / 'gateway.sock'}"
        else:
            tz, reg, uuid = r["timezone"] or "-", r["registry_status"] or "no row", r["device_uuid"] or "-"
        say(fmt.format(r["name"], r["arch"], r["port"] or "-", r["state"], r["systemd"], tz, reg, uuid))
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--count", "-n", type=int, default=5, help="devices (up; default 5)")
    parser.add_argument("--arm64", action="store_true", help="make the last device an aarch64 container (up)")
    parser.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help=f"container and network names (default {DEFAULT_PREFIX})"
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=DEFAULT_PORT_BASE,
        help=f"sshd of device 01 (default {DEFAULT_PORT_BASE})",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("VF_FLEET_DIR", DEFAULT_STATE_DIR)),
        help="key, known_hosts and inventory (default .cache/fleet, or VF_FLEET_DIR)",
    )
    parser.add_argument(
        "--no-verify", dest="verify", action="store_false", help="skip the Ansible check (up)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable status")
    return parser.parse_args(argv)


def validate(args: argparse.Namespace) -> Fleet:
    if not PREFIX_RE.match(args.prefix):
        raise FleetError(
            "--prefix must be 2-32 lowercase letters, digits and dashes, starting with a letter, "
            f"got {args.prefix!r}"
        )
    if not 1 <= args.count <= MAX_DEVICES:
        raise FleetError(f"--count must be 1..{MAX_DEVICES}, got {args.count}")
    if not 1024 <= args.port_base <= 65535 - MAX_DEVICES:
        raise FleetError(f"--port-base must be 1024..{65535 - MAX_DEVICES}, got {args.port_base}")
    return Fleet(args.prefix, args.port_base, args.state_dir.resolve())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if os.geteuid() != 0:
            raise FleetError("the fleet needs Docker and the registry stack: run it as root")
        fleet = validate(args)
        if args.command == "up":
            up(fleet, args.count, args.arm64, args.verify)
        elif args.command == "down":
            down(fleet)
        else:
            return status(fleet, args.json)
    except FleetError as exc:
        print(f"fleet {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fleet {args.command}: interrupted; run it again to finish", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Docker for the fleet: the engine and the base image, systemd as PID 1, containers, the network, ports."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from stack import StackError, run, wait_until

from simfleet.model import LABEL, ROOT, Fleet, FleetError, say

BED = ROOT / "scripts" / "bed.sh"
# The shared molecule base config: its platform is how every scenario boots the test bed's image.
MOLECULE_BASE = ROOT / ".config" / "molecule" / "config.yml"
# Platform keys of molecule's docker driver and the `docker run` option each one is.
MOLECULE_RUN_OPTIONS = {
    "capabilities": "--cap-add",
    "security_opts": "--security-opt",
    "cgroupns_mode": "--cgroupns",
    "volumes": "--volume",
    "tmpfs": "--tmpfs",
}
# Platform keys that say which container, not how it runs; `command` is the image's own CMD
# (/lib/systemd/systemd, set by scripts/bed.sh).
MOLECULE_NOT_RUN_OPTIONS = {"name", "image", "pre_build_image", "pull", "command", "groups"}
# systemd halts cleanly on SIGRTMIN+3; SIGTERM would make it re-execute. (Molecule only ever
# removes its containers by force, so its config does not say this.)
STOP_SIGNAL = "--stop-signal=SIGRTMIN+3"


def systemd_run_options(config: Path = MOLECULE_BASE) -> list[str]:
    """The `docker run` options that boot systemd as PID 1 without --privileged, as molecule does.

    Molecule's YAML cannot include another file, so its base config is the one place these are
    written: this reads its platform and spells each key as a docker option. A key it does not
    know is an error, never skipped, so a scenario's container and a device never differ.
    """
    try:
        platforms = (yaml.safe_load(config.read_text()) or {}).get("platforms") or []
    except (OSError, yaml.YAMLError) as exc:
        raise FleetError(f"cannot read the systemd container options from {config}: {exc}") from None
    if len(platforms) != 1:
        raise FleetError(f"{config} has {len(platforms)} platforms; the fleet reads the options of one")
    options = []
    for key, value in platforms[0].items():
        if key in MOLECULE_NOT_RUN_OPTIONS:
            continue
        if key == "env":
            options += [f"--env={name}={text}" for name, text in value.items()]
        elif key in MOLECULE_RUN_OPTIONS:
            values = value if isinstance(value, list) else [value]
            options += [f"{MOLECULE_RUN_OPTIONS[key]}={item}" for item in values]
        else:
            raise FleetError(
                f"{config} sets the platform option {key!r}, which tools/simfleet/containers.py does "
                "not turn into a docker run option: add it to MOLECULE_RUN_OPTIONS (or, when it does "
                "not change how the container runs, to MOLECULE_NOT_RUN_OPTIONS)"
            )
    return [*options, STOP_SIGNAL]


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


def poll(
    cmd: list[str],
    *,
    what: str,
    done: Callable[[str], bool],
    timeout: float,
    attempt_timeout: float,
    failure: Callable[[str], str],
) -> str:
    """Run cmd every half second until done(its output); return that output.

    After `timeout` seconds a FleetError with failure(the last output) as its message.
    """
    last = ""

    def answered() -> bool:
        nonlocal last
        last = run(cmd, what=what, check=False, timeout=attempt_timeout).stdout
        return done(last)

    try:
        wait_until(what, answered, timeout, interval=0.5)
    except StackError:
        raise FleetError(failure(last)) from None
    return last


def wait_for_systemd(name: str, timeout: float) -> str:
    """Wait until systemd in the container has booted; return running or degraded."""
    out = poll(
        ["docker", "exec", name, "timeout", "20", "systemctl", "is-system-running", "--wait"],
        what=f"boot state of {name}",
        done=lambda out: out.strip() in ("running", "degraded"),
        timeout=timeout,
        attempt_timeout=40,
        failure=lambda out: (
            f"systemd in {name} did not finish booting within {timeout:.0f}s "
            f"(state: {out.strip() or 'no answer'}); see `docker exec {name} systemctl --failed`"
        ),
    )
    return out.strip()


def run_container(name: str, image: str, fleet: Fleet, labels_: dict[str, str], extra: list[str]) -> None:
    """A systemd container of the fleet, on its network, with its labels."""
    label_args = [f"--label={LABEL}.{k}={v}" for k, v in labels_.items()]
    docker(
        "run",
        "--detach",
        f"--name={name}",
        f"--hostname={name}",
        f"--network={fleet.network}",
        *label_args,
        *systemd_run_options(),
        *extra,
        image,
        what=f"starting container {name}",
    )


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


def network_ours(fleet: Fleet) -> bool:
    proc = run(["docker", "network", "inspect", fleet.network], what="network", check=False)
    if proc.returncode != 0:
        return False
    return (json.loads(proc.stdout)[0].get("Labels") or {}).get(f"{LABEL}.fleet") == fleet.prefix

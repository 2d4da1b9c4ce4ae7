"""The stand-in Javia voice server: tools/fakes/voice_server.py as a systemd unit in a fleet container.

The devices reach it as http://vf-voice-server:8080, a network alias on the fleet's network.
"""

from __future__ import annotations

from typing import Any

from stack import run

from simfleet.containers import docker, docker_exec, run_container, wait_for_systemd
from simfleet.model import BOOT_TIMEOUT, FILES, ROOT, VOICE_ALIAS, VOICE_PORT, Device, Fleet, FleetError

VOICE_SERVER_SCRIPT = ROOT / "tools" / "fakes" / "voice_server.py"
VOICE_UNIT = FILES / "vf-voice-server.service"
VOICE_PROVISION_SCRIPT = FILES / "provision-voice-server.sh"


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


def check_voice_reachable(dev: Device) -> None:
    probe = f"timeout 5 bash -c '</dev/tcp/{VOICE_ALIAS}/{VOICE_PORT}'"
    proc = run(
        ["docker", "exec", dev.name, "bash", "-c", probe], what=f"{dev.name} -> voice server", check=False
    )
    if proc.returncode != 0:
        raise FleetError(f"{dev.name} cannot reach http://{VOICE_ALIAS}:{VOICE_PORT}: {proc.stderr.strip()}")

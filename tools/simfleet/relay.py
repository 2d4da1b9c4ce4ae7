"""The relay: TCP :8080 on the fleet's network -> the registry stack's gateway socket.

Pull-mode devices reach the registry and the release store as http://<prefix>-relay:8080/rest/v1/
and /store/, never a host address. The container runs files/vf-relay.py with the base image's
python3 (no systemd); the socket's directory is bind-mounted into it.
"""

from __future__ import annotations

from typing import Any

from stack import GATEWAY_SOCKET, run

from simfleet.containers import docker
from simfleet.model import FILES, LABEL, RELAY_PORT, Device, Fleet, FleetError

RELAY_SCRIPT = FILES / "vf-relay.py"
# Where the relay container sees the stack's gateway socket directory.
RELAY_GATEWAY_DIR = "/vf-gateway"


def ensure_relay(fleet: Fleet, image: str, existing: dict[str, Any] | None) -> list[str]:
    """The relay container: TCP :8080 on the fleet's network -> the stack's gateway socket."""
    name = fleet.relay
    gateway_dir = GATEWAY_SOCKET.parent
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
            f"--socket={RELAY_GATEWAY_DIR}/{GATEWAY_SOCKET.name}",
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

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
8080 to the registry stack's gateway socket (tools/simfleet/files/vf-relay.py, the socket's
directory bind-mounted): pull-mode devices reach the registry and the release
store as http://<prefix>-relay:8080/rest/v1/ and /store/, never a host address.

`up` and `down` are idempotent: a re-run changes nothing and says so.
Several fleets may exist side by side with different --prefix, --port-base and
--state-dir (the end-to-end tests use their own).

This file is the command line; the fleet itself is the package tools/simfleet/,
one module a concern (containers, SSH, devices, voice server, relay, registry
rows, inventory).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

try:  # what the fleet needs beyond the standard library: the controller venv has it
    import uuid6  # noqa: F401
    import yaml  # noqa: F401
    from ansible_collections.javia.voice_fleet.plugins.module_utils import voice_registry_client  # noqa: F401
except ImportError:  # run with the system python: use the controller venv instead
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() and VENV_PYTHON.exists():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])  # noqa: S606
    sys.exit("fleet: uuid6, PyYAML or supabase is missing: run `make setup`, then use .venv/bin/python")

# tools/ is on sys.path (this is a script): the fleet's package and the registry stack's helpers.
from simfleet.commands import down, status, up  # noqa: E402
from simfleet.model import (  # noqa: E402
    DEFAULT_PORT_BASE,
    DEFAULT_PREFIX,
    DEFAULT_STATE_DIR,
    MAX_DEVICES,
    PREFIX_RE,
    Fleet,
    FleetError,
)
from stack import StackError  # noqa: E402


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
    parser.add_argument(
        "--health-seconds",
        type=int,
        metavar="N",
        help="the devices' release health gate in seconds, written to the inventory (up; default the role's)",
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
    if args.health_seconds is not None and not 1 <= args.health_seconds <= 600:
        raise FleetError(f"--health-seconds must be 1..600, got {args.health_seconds}")
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
            up(fleet, args.count, args.arm64, args.verify, args.health_seconds)
        elif args.command == "down":
            down(fleet)
        else:
            return status(fleet, args.json)
    except StackError as exc:
        print(f"fleet {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fleet {args.command}: interrupted; run it again to finish", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

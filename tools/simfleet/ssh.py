"""SSH for the fleet: its key pair, the devices' host keys, known_hosts, and how Ansible connects."""

from __future__ import annotations

import re
import shlex
from typing import Any

from stack import run

from simfleet.containers import poll
from simfleet.model import Device, Fleet, FleetError, Report, display_path, write_if_changed

KEY_COMMENT = "voice-fleet simulated fleet"


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


def scan_host_keys(dev: Device, own_keys: set[tuple[str, str]], timeout: float) -> list[str]:
    """The host keys sshd on 127.0.0.1:port presents, each checked against the container's own files."""

    def lines(out: str) -> list[str]:
        return sorted({line for line in out.splitlines() if line and not line.startswith("#")})

    out = poll(
        ["ssh-keyscan", "-T", "5", "-p", str(dev.port), "127.0.0.1"],
        what=f"scanning {dev.name}'s host keys",
        done=lambda out: bool(lines(out)),
        timeout=timeout,
        attempt_timeout=30,
        failure=lambda _: (
            f"sshd of {dev.name} does not answer on 127.0.0.1:{dev.port}; "
            f"see `docker exec {dev.name} journalctl -u ssh`"
        ),
    )
    scanned = lines(out)
    for line in scanned:
        kind, key = line.split()[1:3]
        if (kind, key) not in own_keys:
            raise FleetError(
                f"127.0.0.1:{dev.port} presents a {kind} host key that {dev.name} does not have: "
                "something else answers on that port"
            )
    return scanned


def connection_vars(fleet: Fleet) -> dict[str, Any]:
    """How Ansible reaches a device: as pi, with the fleet's key, trusting only the scanned host keys."""
    ssh_args = f"-o UserKnownHostsFile={shlex.quote(str(fleet.known_hosts))} -o StrictHostKeyChecking=yes"
    return {
        "ansible_user": "pi",
        "ansible_become": True,
        "ansible_ssh_private_key_file": str(fleet.key),
        "ansible_ssh_common_args": ssh_args,
    }

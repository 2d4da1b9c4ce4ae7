"""The devices: a systemd container each, prepared as a fresh Pi (files/provision-device.sh)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import uuid6

from simfleet.containers import (
    container_exists,
    docker,
    docker_exec,
    labels,
    port_free,
    port_holder,
    published_port,
    read_container_file,
    run_container,
    wait_for_systemd,
)
from simfleet.model import (
    BOOT_TIMEOUT,
    FILES,
    IDENTITY_FILE,
    LABEL,
    UUID_RE,
    Device,
    Fleet,
    FleetError,
    Ready,
    Report,
    say,
)
from simfleet.ssh import scan_host_keys

PROVISION_SCRIPT = FILES / "provision-device.sh"


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

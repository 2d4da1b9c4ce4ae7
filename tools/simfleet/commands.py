"""`up`, `down` and `status`: the fleet's commands, put together from the other modules."""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from stack import GATEWAY_SOCKET, STACK, StackError, run

from simfleet.containers import (
    docker,
    ensure_docker,
    ensure_image,
    ensure_network,
    fleet_containers,
    labels,
    network_ours,
    published_port,
    read_container_file,
)
from simfleet.devices import check_ports, describe_changes, ensure_device, remove_extra
from simfleet.inventory import inventory_files, verify_with_ansible
from simfleet.model import (
    IDENTITY_FILE,
    LABEL,
    VOICE_ALIAS,
    VOICE_PORT,
    Device,
    Fleet,
    FleetError,
    Ready,
    Report,
    display_path,
    parallel,
    say,
    write_if_changed,
)
from simfleet.relay import check_relay_reachable, ensure_relay
from simfleet.seeding import ensure_stack, registry_env, registry_rows, remove_rows, seed_registry
from simfleet.ssh import ensure_key, update_known_hosts
from simfleet.voice_server import check_voice_reachable, ensure_voice_server


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
    *,
    health_seconds: int | None = None,
) -> None:
    """known_hosts, the registry rows and the inventory, as the running devices are."""
    gone_uuids, gone_ports = gone
    ports = {item.device.port for item in ready}
    keys = [line for item in ready for line in item.host_keys]
    if update_known_hosts(fleet, ports | gone_ports, keys):
        report.change(f"known_hosts: {display_path(fleet.known_hosts)} updated")
    for message in seed_registry(fleet, env, ready, gone_uuids):
        report.change(message)
    for path, text in inventory_files(fleet, health_seconds).items():
        if write_if_changed(path, text):
            report.change(f"inventory: wrote {display_path(path)}")


def up(fleet: Fleet, count: int, arm64: bool, verify: bool, health_seconds: int | None = None) -> None:
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
        record(fleet, env, ready, gone, report, health_seconds=health_seconds)
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
    say(f"  . {display_path(STACK / 'env')} && ansible all -i {display_path(fleet.inventory)} -m ping")


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
                gone = remove_rows(env, fleet, uuids)
            except StackError as exc:
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
        except StackError as exc:
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
            tz, reg, uuid = "-", "-", f"{fleet.relay_url} -> {GATEWAY_SOCKET}"
        else:
            tz, reg, uuid = r["timezone"] or "-", r["registry_status"] or "no row", r["device_uuid"] or "-"
        say(fmt.format(r["name"], r["arch"], r["port"] or "-", r["state"], r["systemd"], tz, reg, uuid))
    return 0

"""The simulated fleet itself (tools/fleet.py): a fleet of two, for real.

Docker containers booted with systemd, OpenSSH, the registry stack and Ansible
are all real; the fleet here has its own prefix, ports and state directory, so a
fleet run by hand (make fleet-up) is never touched.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg
import pytest

if TYPE_CHECKING:
    from conftest import FleetFactory, FleetHandle

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.stack, pytest.mark.own_fleet]

PREFIX = "vf-fleettest"
PORT_BASE = 2401
STATE_DIR = "/var/lib/voice-client"
SUDOERS = "/etc/sudoers.d/010_pi-nopasswd"  # Raspberry Pi OS's file, byte for byte


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


def containers(prefix: str) -> list[str]:
    proc = subprocess.run(
        ["docker", "ps", "-a", f"--filter=label=org.voice-fleet.fleet={prefix}", "--format={{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(proc.stdout.split())


def rows(stack_env: dict[str, str], uuids: list[str]) -> dict[str, tuple]:
    with psycopg.connect(stack_env["DATABASE_URL"], autocommit=True) as conn:
        cur = conn.execute(
            "SELECT device_uuid, device_name, timezone, status, ansible_host, metadata, last_seen"
            " FROM public.devices WHERE device_uuid = ANY(%s)",
            (uuids,),
        )
        return {row[0]: row[1:] for row in cur.fetchall()}


@pytest.fixture(scope="module")
def two(fleet_factory: FleetFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetHandle]:
    state_dir = tmp_path_factory.mktemp("fleet")
    handle, _ = fleet_factory(prefix=PREFIX, count=2, port_base=PORT_BASE, state_dir=state_dir)
    yield handle
    handle.down()


def test_up_again_changes_nothing(two: FleetHandle, stack_env: dict[str, str]) -> None:
    ids_before = {name: two.exec(name, "cat", "/etc/machine-id").stdout for name in two.names}
    known_hosts = two.known_hosts.read_bytes()
    before = rows(stack_env, [host.device_uuid for host in two.hosts])

    proc = two.up()

    assert "no changes" in proc.stdout, proc.stdout
    assert {name: two.exec(name, "cat", "/etc/machine-id").stdout for name in two.names} == ids_before
    assert two.known_hosts.read_bytes() == known_hosts
    assert rows(stack_env, [host.device_uuid for host in two.hosts]) == before


def test_devices_are_pis_reachable_as_pi_with_sudo(two: FleetHandle) -> None:
    for host in two.hosts:
        proc = two.ssh(host.name, f"id -un; sudo -n id -u; hostname; sudo stat -c '%a %U:%G' {SUDOERS}")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split("\n")[:4] == ["pi", "0", host.name, "440 root:root"]
        assert two.exec(host.name, "cat", SUDOERS).stdout == "pi ALL=(ALL) NOPASSWD: ALL\n"
        sshd = two.exec(host.name, "sshd", "-T").stdout
        assert "passwordauthentication no" in sshd
        # known_hosts holds the keys the container really has, under its own port.
        own = two.exec(host.name, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub").stdout.split("\n")
        own_keys = {tuple(line.split()[:2]) for line in own if line}
        entries = [line.split() for line in two.known_hosts.read_text().splitlines()]
        mine = {(e[1], e[2]) for e in entries if e[0] == f"[127.0.0.1]:{host.port}"}
        assert mine and mine <= own_keys


def test_identity_registry_rows_and_inventory(two: FleetHandle, stack_env: dict[str, str]) -> None:
    found = rows(stack_env, [host.device_uuid for host in two.hosts])
    expected_zones = {f"{PREFIX}-01": "Europe/Berlin", f"{PREFIX}-02": "America/New_York"}
    for host in two.hosts:
        flashed = two.exec(host.name, "stat", "-c", "%a %U:%G %n", STATE_DIR, f"{STATE_DIR}/device_uuid")
        assert flashed.stdout.split("\n")[:2] == [
            f"755 root:root {STATE_DIR}",
            f"644 root:root {STATE_DIR}/device_uuid",
        ]
        content = two.exec(host.name, "cat", f"{STATE_DIR}/device_uuid").stdout
        assert content == host.device_uuid + "\n"
        assert uuid.UUID(host.device_uuid).version == 7
        name, timezone, status, ansible_host, metadata, _ = found[host.device_uuid]
        assert (name, timezone, status) == (host.name, expected_zones[host.name], "online")
        assert ansible_host == "127.0.0.1"
        assert metadata["ansible_port"] == host.port
        assert metadata["simulated"] is True
        assert metadata["architecture"] == "x86_64"

    listing = two.inventory_list()
    hostvars = listing["_meta"]["hostvars"]
    assert sorted(listing[two.group]["hosts"]) == two.names
    for host in two.hosts:
        assert hostvars[host.name]["ansible_port"] == host.port
        assert hostvars[host.name]["ansible_user"] == "pi"
    become = two.ansible(two.group, "-m", "ansible.builtin.command", "-a", "id -un", "-b")
    assert become.returncode == 0, become.stdout + become.stderr
    assert become.stdout.count("| CHANGED | rc=0 >>\nroot") == 2, become.stdout


def test_voice_server_answers_the_devices(two: FleetHandle) -> None:
    host = two.hosts[0]
    post = (
        "import json, sys, urllib.request\n"
        f"url = 'http://vf-voice-server:8080/api/v1/devices/{host.device_uuid}/heartbeat'\n"
        "body = json.dumps({'current_version': '0.0.0', 'status': 'online', 'metadata': {}}).encode()\n"
        "req = urllib.request.Request(url, data=body, headers={'Content-Type': 'application/json'})\n"
        "print(urllib.request.urlopen(req, timeout=10).read().decode())\n"
    )
    proc = two.exec(host.name, "python3", "-c", post)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"device_uuid": host.device_uuid, "status": "online"}
    journal = two.exec(two.voice_server, "journalctl", "-u", "vf-voice-server", "--no-pager")
    assert f"POST /api/v1/devices/{host.device_uuid}/heartbeat" in journal.stdout


def test_down_removes_everything_and_is_idempotent(two: FleetHandle, stack_env: dict[str, str]) -> None:
    uuids = [host.device_uuid for host in two.hosts]

    first = two.down()
    second = two.down()

    assert "removed" in first.stdout
    assert "nothing to remove" in second.stdout, second.stdout
    assert containers(PREFIX) == []
    assert rows(stack_env, uuids) == {}
    assert not two.known_hosts.exists() or str(PORT_BASE) not in two.known_hosts.read_text()
    assert not two.inventory.exists()
    assert two.key.exists()  # the key outlives the fleet
    assert docker("network", "inspect", PREFIX).returncode != 0
    assert two.status() == []

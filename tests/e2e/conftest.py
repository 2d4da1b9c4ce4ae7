"""Fixtures of the end-to-end tests: a simulated fleet of their own (tools/fleet.py).

The `fleet` fixture brings up one fleet per session (prefix `vf-e2e`, sshd on
127.0.0.1:2301.., state in .cache/fleet-e2e) beside any fleet a developer runs by
hand (`make fleet-up`: vf-fleet, 2201..), and removes it at the end unless
VF_KEEP_FLEET=1. VF_E2E_FLEET_SIZE sets its size (default 4). `fleet_factory`
brings up any other fleet (for a test that must own its fleet, like test_fleet.py).
Test modules reach `FleetHandle` through these fixtures (import it for type hints
only, under TYPE_CHECKING: two conftest modules share the name `conftest`).

The registry is shared: other rows (integration tests, molecule) may be listed by
the fleet's inventory too, so plays aimed at the fleet limit themselves to
`FleetHandle.group` (or to `FleetHandle.names`).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest
from simfleet.model import Fleet  # tests/conftest.py puts tools/ on sys.path

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "tools" / "fleet.py"
BIN = Path(sys.executable).parent

# Another prefix, port base and state directory run a second e2e fleet beside this one.
E2E_PREFIX = os.environ.get("VF_E2E_PREFIX", "vf-e2e")
E2E_PORT_BASE = int(os.environ.get("VF_E2E_PORT_BASE", "2301"))
E2E_STATE_DIR = ROOT / ".cache" / f"fleet-{E2E_PREFIX.removeprefix('vf-')}"
# Every e2e fleet's release health gate, as molecule's simulated device has it
# (molecule/shared/vars/device.yml) instead of the role's 10 s: the crash
# variant (tools/client_variant.py) dies 3 s after READY, well inside it, and
# every activation of the e2e runs waits 5 s less.
E2E_UP_ARGS = ("--health-seconds=5",)


def fleet_cli(
    command: str, *args: str, prefix: str, port_base: int, state_dir: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run tools/fleet.py for one fleet; on failure (with check) the assertion shows its output."""
    cmd = [sys.executable, str(FLEET), command, f"--prefix={prefix}", f"--port-base={port_base}"]
    cmd += [f"--state-dir={state_dir}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT, timeout=1800)
    if check:
        assert proc.returncode == 0, f"fleet {command} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@dataclass(frozen=True)
class FleetHost:
    name: str
    port: int
    device_uuid: str
    timezone: str
    arch: str


@dataclass(frozen=True)
class FleetHandle(Fleet):
    """A running fleet: its hosts, and helpers that reach it the way operators do.

    Its names and files (group, voice_server, inventory, key, known_hosts) are the fleet tool's
    own (tools/simfleet/model.py), so the tests look where the tool writes.
    """

    hosts: tuple[FleetHost, ...]
    stack_env: dict[str, str] = field(repr=False)

    @property
    def names(self) -> list[str]:
        return [host.name for host in self.hosts]

    def host(self, name: str) -> FleetHost:
        return next(host for host in self.hosts if host.name == name)

    def env(self) -> dict[str, str]:
        """Environment for ansible/ansible-playbook: the venv, the repository's ansible.cfg, the registry."""
        return {
            **os.environ,
            **self.stack_env,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        }

    def ansible(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`ansible <args> -i <inventory>` from the repository root."""
        return self._run([str(BIN / "ansible"), *args, "-i", str(self.inventory)])

    def playbook(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`ansible-playbook -i <inventory> <args>` from the repository root."""
        return self._run([str(BIN / "ansible-playbook"), "-i", str(self.inventory), *args])

    def inventory_list(self) -> dict:
        proc = self._run([str(BIN / "ansible-inventory"), "-i", str(self.inventory), "--list"])
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def ssh(self, name: str, command: str) -> subprocess.CompletedProcess[str]:
        """Plain OpenSSH as pi, with the fleet's key and strict host key checking."""
        cmd = ["ssh", "-i", str(self.key), "-o", f"UserKnownHostsFile={self.known_hosts}"]
        cmd += ["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        cmd += ["-p", str(self.host(name).port), "pi@127.0.0.1", command]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)

    def exec(self, name: str, *command: str) -> subprocess.CompletedProcess[str]:
        """`docker exec` as root in a device (or in the voice server)."""
        return subprocess.run(
            ["docker", "exec", name, *command], capture_output=True, text=True, check=False, timeout=120
        )

    def up(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Re-run `fleet up` (idempotent): restarts stopped devices, re-seeds missing registry rows."""
        return fleet_cli(
            "up",
            f"--count={len(self.hosts)}",
            *E2E_UP_ARGS,
            *args,
            prefix=self.prefix,
            port_base=self.port_base,
            state_dir=self.state_dir,
        )

    def down(self) -> subprocess.CompletedProcess[str]:
        return fleet_cli("down", prefix=self.prefix, port_base=self.port_base, state_dir=self.state_dir)

    def status(self) -> list[dict]:
        """`fleet status --json`: one dict per container (devices and the voice server)."""
        proc = fleet_cli(
            "status", "--json", prefix=self.prefix, port_base=self.port_base, state_dir=self.state_dir
        )
        return json.loads(proc.stdout)["hosts"]

    def _run(self, cmd: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cmd, capture_output=True, text=True, check=False, cwd=ROOT, env=self.env(), timeout=1800
        )


def start_fleet(
    stack_env: dict[str, str],
    *,
    prefix: str,
    count: int,
    port_base: int,
    state_dir: Path,
    arm64: bool = False,
) -> tuple[FleetHandle, subprocess.CompletedProcess[str]]:
    """Bring a fleet up; return its handle and the output of `up`."""
    args = [f"--count={count}", *E2E_UP_ARGS, *(["--arm64"] if arm64 else [])]
    proc = fleet_cli("up", *args, prefix=prefix, port_base=port_base, state_dir=state_dir)
    status = fleet_cli("status", "--json", prefix=prefix, port_base=port_base, state_dir=state_dir)
    rows = json.loads(status.stdout)["hosts"]
    hosts = tuple(
        FleetHost(row["name"], row["port"], row["device_uuid"], row["timezone"], row["arch"])
        for row in rows
        if row["role"] == "device"
    )
    assert len(hosts) == count, f"fleet status lists {len(hosts)} devices, wanted {count}:\n{status.stdout}"
    handle = FleetHandle(prefix, port_base, state_dir, hosts, stack_env)
    return handle, proc


class FleetFactory(Protocol):
    def __call__(
        self, *, prefix: str, count: int, port_base: int, state_dir: Path, arm64: bool = False
    ) -> tuple[FleetHandle, subprocess.CompletedProcess[str]]: ...


@pytest.fixture(scope="session")
def fleet_factory(stack_env: dict[str, str], bed_image: str) -> FleetFactory:
    """start_fleet with the registry and the base image ready; the caller takes the fleet down."""
    return functools.partial(start_fleet, stack_env)


@pytest.fixture(scope="session")
def fleet(stack_env: dict[str, str], bed_image: str) -> Iterator[FleetHandle]:
    """The end-to-end tests' simulated fleet (VF_E2E_FLEET_SIZE devices, default 4)."""
    raw = os.environ.get("VF_E2E_FLEET_SIZE", "4")
    assert raw.isdigit() and 1 <= int(raw) <= 20, f"VF_E2E_FLEET_SIZE must be 1..20, got {raw!r}"
    handle, _ = start_fleet(
        stack_env, prefix=E2E_PREFIX, count=int(raw), port_base=E2E_PORT_BASE, state_dir=E2E_STATE_DIR
    )
    yield handle
    if os.environ.get("VF_KEEP_FLEET") != "1":
        handle.down()


@pytest.fixture(scope="session")
def provisioned(fleet: FleetHandle, tmp_path_factory: pytest.TempPathFactory) -> FleetHandle:
    """The fleet after playbooks/site.yml: every device runs this checkout's client and is registered."""
    from playbook_support import failure_summary, run_playbook  # noqa: PLC0415 (a sibling helper module)

    # Whatever an earlier test left: this checkout's release, deliberately, even if older.
    runner = run_playbook(
        fleet, "site.yml", tmp_path_factory.mktemp("site"), extravars={"rollout_allow_downgrade": True}
    )
    assert runner.rc == 0, failure_summary(runner)
    return fleet

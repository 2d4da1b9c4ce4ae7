"""Host keys are checked (issue 13, item 9): a device whose SSH host key changed is refused.

A fleet of its own (vf-hk, one device, sshd on 127.0.0.1:2651): the device's
host keys are regenerated in the container (as a re-imaged Pi, or a machine
that took over its address, would present), and Ansible must refuse to talk to
it, saying that the host key changed, both the way operators and cron run it
(ansible / ansible-playbook with the repository's ansible.cfg) and the way AWX
runs it (ansible-runner). Every run gets a fresh SSH control socket directory:
a master connection opened before the change would otherwise carry on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import ansible_runner
import pytest

if TYPE_CHECKING:
    from conftest import FleetFactory, FleetHandle

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.slow, pytest.mark.own_fleet]

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "vf-hk"
PORT_BASE = 2651
STATE_DIR = ROOT / ".cache" / "fleet-hk"
CHANGED = "REMOTE HOST IDENTIFICATION HAS CHANGED"
FAILED = "Host key verification failed"


@pytest.fixture(scope="module")
def hk_fleet(fleet_factory: FleetFactory) -> Iterator[FleetHandle]:
    handle, _ = fleet_factory(prefix=PREFIX, count=1, port_base=PORT_BASE, state_dir=STATE_DIR)
    yield handle
    if os.environ.get("VF_KEEP_FLEET") != "1":
        handle.down()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: SSH control socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="vfhk-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def ping(fleet: FleetHandle, control_dir: Path) -> subprocess.CompletedProcess[str]:
    """`ansible <device> -m ping` as an operator runs it, with its own SSH control sockets."""
    env = {**fleet.env(), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir)}
    cmd = [str(Path(fleet.env()["PATH"].split(os.pathsep)[0]) / "ansible"), fleet.names[0], "-m", "ping"]
    cmd += ["-i", str(fleet.inventory)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT, env=env, timeout=300)


def runner_ping(fleet: FleetHandle, private: Path, control_dir: Path, **extra_env: str) -> tuple[int, str]:
    """The same ping through ansible-runner (as AWX runs jobs); its rc and everything it printed."""
    private.mkdir(parents=True)
    env = fleet.env()
    envvars = {k: env[k] for k in ("SUPABASE_URL", "SUPABASE_SERVICE_KEY", "PATH")}
    envvars |= {
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
        **extra_env,
    }
    runner = ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(ROOT),
        host_pattern=fleet.names[0],
        module="ansible.builtin.ping",
        inventory=str(fleet.inventory),
        envvars=envvars,
        quiet=True,
        rotate_artifacts=1,
    )
    return runner.rc, runner.stdout.read()


@pytest.fixture
def changed_key(hk_fleet: FleetHandle, short_dir: Path) -> Iterator[FleetHandle]:
    """The device answers with new host keys (reachable with the recorded ones just before).

    Afterwards `fleet up` records the new keys (it checks what it scans against the
    container's own key files), so the next test starts from a trusted device again.
    """
    before = ping(hk_fleet, short_dir / "before")
    assert before.returncode == 0, before.stdout + before.stderr
    script = "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A && systemctl restart ssh"
    proc = hk_fleet.exec(hk_fleet.names[0], "sh", "-c", script)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield hk_fleet
    hk_fleet.up()


def test_a_device_whose_host_key_changed_is_refused(changed_key: FleetHandle, short_dir: Path) -> None:
    after = ping(changed_key, short_dir / "after")
    out = after.stdout + after.stderr
    assert after.returncode != 0, f"a device with a changed host key was reached:\n{out}"
    assert "UNREACHABLE" in out, out
    assert CHANGED in out and FAILED in out, out


def test_runner_with_host_key_checking_on_refuses_it(
    changed_key: FleetHandle, tmp_path: Path, short_dir: Path
) -> None:
    """What docs/OPERATIONS.md tells runner and AWX users to set."""
    rc, out = runner_ping(
        changed_key, tmp_path / "runner", short_dir / "runner", ANSIBLE_HOST_KEY_CHECKING="True"
    )
    assert rc != 0, f"ansible-runner reached a device whose host key changed:\n{out[-3000:]}"
    assert CHANGED in out and FAILED in out, out[-3000:]


def test_runner_with_its_defaults_refuses_it(
    changed_key: FleetHandle, tmp_path: Path, short_dir: Path
) -> None:
    """AWX's and the e2e tests' way: ansible-runner with nothing about host keys in the environment."""
    rc, out = runner_ping(changed_key, tmp_path / "runner", short_dir / "runner")
    assert rc != 0, f"ansible-runner reached a device whose host key changed:\n{out[-3000:]}"
    assert CHANGED in out and FAILED in out, out[-3000:]

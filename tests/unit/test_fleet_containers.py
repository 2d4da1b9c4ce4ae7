"""The fleet's devices boot systemd with the molecule base config's options, read, not restated.

Molecule's YAML cannot include another file, so .config/molecule/config.yml is where the systemd
container options are written; tools/simfleet/containers.py spells its platform as `docker run`
options (and tests/integration/test_release_activate.py runs its container with them too).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from simfleet.containers import MOLECULE_BASE, STOP_SIGNAL, systemd_run_options
from simfleet.model import FleetError


def test_the_devices_run_as_molecule_runs_the_test_bed():
    assert sorted(systemd_run_options()) == sorted(
        [
            "--cap-add=SYS_ADMIN",
            "--security-opt=seccomp=unconfined",
            "--security-opt=apparmor=unconfined",
            "--cgroupns=host",
            "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--tmpfs=/run",
            "--tmpfs=/run/lock",
            "--tmpfs=/tmp",
            "--env=container=docker",
            STOP_SIGNAL,
        ]
    )


def write_base(tmp_path: Path, **changes) -> Path:
    config = yaml.safe_load(MOLECULE_BASE.read_text())
    config["platforms"][0].update(changes)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_change_to_the_molecule_base_is_the_fleet_s(tmp_path):
    options = systemd_run_options(
        write_base(tmp_path, tmpfs=["/run"], capabilities=["SYS_ADMIN", "NET_ADMIN"])
    )
    assert "--tmpfs=/tmp" not in options
    assert "--cap-add=NET_ADMIN" in options


def test_an_option_the_fleet_cannot_spell_fails_rather_than_being_dropped(tmp_path):
    with pytest.raises(FleetError, match=r"sets the platform option 'devices'"):
        systemd_run_options(write_base(tmp_path, devices=["/dev/snd"]))

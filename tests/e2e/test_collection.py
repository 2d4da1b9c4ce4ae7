"""The collection as an operator installs it: built with `make collection`, installed with
ansible-galaxy into a clean directory, used by its full names against the local registry and a
simulated device (a fleet of its own: vf-coll, one device, sshd on 127.0.0.1:2801).

Nothing of the checkout is used by the runs: the clean project's ansible.cfg names only its own
collections directory (and the `ansible` package's collections), and sys.path scanning is off, so
the checkout's playbooks/collections link (on the venv's sys.path) is never seen.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

if TYPE_CHECKING:
    from conftest import FleetFactory, FleetHandle

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.stack, pytest.mark.own_fleet]

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
PREFIX = "vf-coll"
PORT_BASE = 2801
STATE_DIR = ROOT / ".cache" / "fleet-coll"
FQCN = "javia.voice_fleet"
PLUGINS = {
    "inventory": ["supabase_devices"],
    "filter": ["maintenance_window", "in_maintenance_window", "maintenance_window_split"],
    "module": ["voice_release_build", "voice_release_activate", "voice_device_state"],
    "callback": ["rollout_report"],
}


@pytest.fixture(scope="module")
def coll_fleet(fleet_factory: FleetFactory) -> Iterator[FleetHandle]:
    handle, _ = fleet_factory(prefix=PREFIX, count=1, port_base=PORT_BASE, state_dir=STATE_DIR)
    yield handle
    if os.environ.get("VF_KEEP_FLEET") != "1":
        handle.down()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, coll_fleet: FleetHandle) -> Path:
    """A clean Ansible project with the built collection installed, and the fleet's inventory
    rewritten to name the inventory plugin by its full name."""
    dist = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        ["make", "-s", "collection", f"DIST={dist}"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (tarball,) = dist.glob("javia-voice_fleet-*.tar.gz")
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    wanted = {
        "MANIFEST.json",
        "meta/runtime.yml",
        "playbooks/site.yml",
        "plugins/modules/voice_release_build.py",
        "plugins/module_utils/voice_registry_client.py",
        "plugins/module_utils/voice_report.py",
        "plugins/module_utils/voice_report.html.j2",
        "tools/report.py",
        "roles/voice_release/tasks/main.yml",
    }
    assert wanted <= names, sorted(wanted - names)
    leaked = sorted(
        n for n in names if n.startswith(("tests/e2e", ".venv", ".cache", "benchmarks", ".stack"))
    )
    assert not leaked, f"the tarball carries the repository's own files: {leaked[:5]}"

    clean = tmp_path_factory.mktemp("operator")
    installed = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "--force", "-p", "collections", str(tarball)],
        cwd=clean,
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    bundled = sysconfig.get_paths()["purelib"]  # the `ansible` package's collections (ansible.posix, ...)
    (clean / "ansible.cfg").write_text(
        "[defaults]\n"
        f"collections_path = {clean / 'collections'}:{bundled}\n"
        "collections_scan_sys_path = false\n"
        "[inventory]\n"
        f"enable_plugins = {FQCN}.supabase_devices, yaml\n"
        "unparsed_is_failed = true\n"
        "[ssh_connection]\n"
        "pipelining = true\n"
    )
    shutil.copytree(coll_fleet.inventory, clean / "inventory")
    source = clean / "inventory" / "fleet.supabase.yml"
    config = yaml.safe_load(source.read_text())
    assert config["plugin"] == "supabase_devices", config
    source.write_text(yaml.safe_dump({**config, "plugin": f"{FQCN}.supabase_devices"}, sort_keys=False))
    return clean


def operator(project: Path, fleet: FleetHandle, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(project / "ansible.cfg"),
        SUPABASE_URL=fleet.stack_env["SUPABASE_URL"],
        SUPABASE_SERVICE_KEY=fleet.stack_env["SUPABASE_SERVICE_KEY"],
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_every_plugin_is_addressed_by_its_full_name_from_the_installed_copy(project, coll_fleet):
    installed = project / "collections" / "ansible_collections" / "javia" / "voice_fleet"
    for kind, names in PLUGINS.items():
        for name in names:
            doc = operator(project, coll_fleet, "ansible-doc", "-t", kind, f"{FQCN}.{name}", "--json")
            assert doc.returncode == 0, f"{kind} {FQCN}.{name}: {doc.stderr}"
            filename = json.loads(doc.stdout)[f"{FQCN}.{name}"]["doc"]["filename"]
            assert Path(filename).is_relative_to(installed), f"{FQCN}.{name} came from {filename}"


def test_the_inventory_plugin_reads_the_device_by_its_full_name(project, coll_fleet):
    listed = operator(project, coll_fleet, "ansible-inventory", "-i", "inventory", "--list")
    assert listed.returncode == 0, listed.stderr
    hosts = json.loads(listed.stdout)["fleet_vf_coll"]["hosts"]
    assert hosts == [host.name for host in coll_fleet.hosts]
    assert coll_fleet.stack_env["SUPABASE_SERVICE_KEY"] not in listed.stdout + listed.stderr


def test_the_collection_s_status_play_runs_on_the_device(project, coll_fleet, tmp_path):
    reports = tmp_path / "reports"
    run = operator(
        project,
        coll_fleet,
        "ansible-playbook",
        "-i",
        "inventory",
        f"{FQCN}.status",
        "-e",
        json.dumps({"rollout_target": "fleet_vf_coll", "status_report_dir": str(reports)}),
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    (report,) = [p for p in reports.glob("status-*.json") if "latest" not in p.name]
    (row,) = json.loads(report.read_text())
    device = coll_fleet.hosts[0]
    # Read from the device over SSH, checked against the registry row the inventory plugin read.
    assert (row["host"], row["device_uuid"]) == (device.name, device.device_uuid), row
    assert row["reachable"] is True and row["identity_matches_registry"] is True, row
    # The collection's maintenance_window filter, for the device's own zone: its 2 AM.
    window = row["next_window"]
    assert window["timezone"] == device.timezone, window
    assert window["local_start"][10:19] == "T02:00:00", window

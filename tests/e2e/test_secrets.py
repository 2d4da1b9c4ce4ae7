"""Secrets never leak (issue 13, item 6): the registry's service key and the voice server key.

The operator's week (site.yml, a rollout, the hourly play with an urgent update,
a rollback, status) runs through ansible-runner at -vvv, the way AWX runs it,
on a fleet of its own (vf-sec, one device, sshd on 127.0.0.1:2601), with the
stack's SUPABASE_SERVICE_KEY and a random voice server key. Then everything
those runs left is searched for both keys, as they are and in base64:
runner's stdout, every job event and artifact (but `command`, which records the
run's environment on purpose, mode 0600), the reports written, every file
under /etc/voice-client, /opt/voice-client and /var/lib/voice-client on the
devices (but the env file that must hold the server key: that one is checked
for its owner and mode instead), and each device's journal.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ansible_runner
import psycopg
import pytest
from playbook_support import failure_summary, variant

if TYPE_CHECKING:
    from conftest import FleetFactory, FleetHandle

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.slow, pytest.mark.own_fleet]

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "vf-sec"
PORT_BASE = 2601
STATE_DIR = ROOT / ".cache" / "fleet-sec"
ENV_FILE = "/etc/voice-client/voice-client.env"
DEVICE_DIRS = ("/etc/voice-client", "/opt/voice-client", "/var/lib/voice-client")
VERSIONS = ("7.1.0", "7.2.0")


def secret_forms(secret: str) -> dict[str, str]:
    """A secret as it may show up: as is, and inside base64 text at each of the three byte alignments."""
    raw = secret.encode()
    forms = {"as is": secret}
    for start in range(3):
        chunk = raw[start:]
        chunk = chunk[: len(chunk) - len(chunk) % 3]
        forms[f"base64/{start}"] = base64.b64encode(chunk).decode()
    return forms


def find(text: str, keys: dict[str, str]) -> list[str]:
    """'name (form): ...context...' for each key found in text (the context hides the key itself)."""
    found = []
    for name, key in keys.items():
        for form, needle in secret_forms(key).items():
            at = text.find(needle)
            if at >= 0:
                context = (
                    text[max(0, at - 120) : at] + "<KEY>" + text[at + len(needle) : at + len(needle) + 60]
                )
                found.append(f"{name} ({form}): ...{context!r}...")
    return found


@pytest.fixture(scope="module")
def sec_fleet(fleet_factory: FleetFactory) -> Iterator[FleetHandle]:
    handle, _ = fleet_factory(prefix=PREFIX, count=1, port_base=PORT_BASE, state_dir=STATE_DIR)
    yield handle
    if os.environ.get("VF_KEEP_FLEET") != "1":
        handle.down()


def run(
    fleet: FleetHandle, playbook: str, private: Path, reports: Path, extravars: dict[str, Any]
) -> ansible_runner.Runner:
    """playbooks/<playbook> through ansible-runner at verbosity 3, reports written to `reports`."""
    private.mkdir(parents=True)
    env = fleet.env()
    envvars = {k: env[k] for k in ("SUPABASE_URL", "SUPABASE_SERVICE_KEY", "PATH")}
    envvars |= {"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ROLLOUT_REPORT_DIR": str(reports)}
    return ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(ROOT),
        playbook=f"playbooks/{playbook}",
        inventory=str(fleet.inventory),
        extravars={"status_report_dir": str(reports), **extravars},
        limit=fleet.group,
        envvars=envvars,
        verbosity=3,
        quiet=True,
        rotate_artifacts=1,
    )


def device_hits(fleet: FleetHandle, name: str, keys: dict[str, str]) -> list[str]:
    """Files under DEVICE_DIRS on the device that hold any form of a key: 'path: name (form)'."""
    hits = []
    for key_name, key in keys.items():
        for form, needle in secret_forms(key).items():
            proc = subprocess.run(
                ["docker", "exec", "-i", name, "grep", "-rlaF", "-f", "-", *DEVICE_DIRS],
                input=needle + "\n",
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
            assert proc.returncode in (0, 1), proc.stderr
            hits += [f"{name}:{path}: {key_name} ({form})" for path in proc.stdout.split()]
    return hits


def test_no_output_file_or_journal_holds_a_key(sec_fleet: FleetHandle, tmp_path: Path) -> None:
    service_key = sec_fleet.stack_env["SUPABASE_SERVICE_KEY"]
    server_key = "vsk-" + secrets.token_urlsafe(24)
    keys = {"SUPABASE_SERVICE_KEY": service_key, "voice server key": server_key}
    assert len(service_key) > 20
    reports = tmp_path / "reports"
    common = {"voice_service_server_api_key": server_key}
    first, second = (str(variant("plain", v)) for v in VERSIONS)
    runs = [
        ("site.yml", {"rollout_allow_downgrade": True}),
        ("rollout.yml", {"rollout_source": first, "rollout_allow_downgrade": True}),
        # The hourly play with an urgent update: every device idle long enough (none recorded yet).
        (
            "scheduled.yml",
            {"rollout_source": second, "rollout_update_type": "urgent", "urgent_idle_seconds": 0},
        ),
        ("rollback.yml", {}),
        ("status.yml", {}),
    ]
    leaks: list[str] = []
    try:
        for number, (playbook, extravars) in enumerate(runs):
            private = tmp_path / f"{number}-{Path(playbook).stem}"
            runner = run(sec_fleet, playbook, private, reports, {**common, **extravars})
            assert runner.rc == 0, f"{playbook}: {failure_summary(runner)}"
            leaks += [f"{playbook} stdout: {hit}" for hit in find(runner.stdout.read(), keys)]
            for path in sorted((private / "artifacts").rglob("*")):
                if path.is_file() and path.name != "command":
                    text = path.read_text(errors="replace")
                    leaks += [f"{playbook} {path.relative_to(private)}: {hit}" for hit in find(text, keys)]
        # The runs did what they say (so there was something to leak).
        assert sorted(p.name for p in reports.iterdir() if p.name.startswith("status-latest")) == [
            "status-latest.json",
            "status-latest.md",
        ]
        assert any(p.name.startswith("rollout-") for p in reports.iterdir()), sorted(reports.iterdir())
        for path in sorted(reports.rglob("*")):
            if path.is_file():
                leaks += [
                    f"report {path.name}: {hit}" for hit in find(path.read_text(errors="replace"), keys)
                ]

        for name in sec_fleet.names:
            stat = sec_fleet.exec(name, "stat", "-c", "%a %U %G", ENV_FILE)
            assert stat.stdout.split() == ["640", "root", "voice-client"], stat.stdout + stat.stderr
            env_text = sec_fleet.exec(name, "cat", ENV_FILE).stdout
            assert f"SERVER_API_KEY={server_key}" in env_text.replace('"', "").replace("'", ""), (
                "the env file holds the server key"
            )
            assert service_key not in env_text
            leaks += [
                hit for hit in device_hits(sec_fleet, name, keys) if not hit.startswith(f"{name}:{ENV_FILE}:")
            ]
            journal = sec_fleet.exec(name, "journalctl", "--no-pager")
            assert journal.returncode == 0, journal.stderr
            leaks += [f"{name} journal: {hit}" for hit in find(journal.stdout, keys)]
    finally:
        with psycopg.connect(sec_fleet.stack_env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("DELETE FROM updates WHERE version = ANY(%s)", (list(VERSIONS),))
    assert not leaks, "secrets leaked:\n" + "\n".join(leaks)

"""The repository as an ansible-runner project dir, as AWX and `ansible-runner run` use it.

ansible_runner.run(private_data_dir=<tmp>, project_dir=<repo>, playbook=...) runs
ansible-playbook in the repository, so the project's ansible.cfg applies: the
maintenance-window filters resolve through its filter_plugins path (a run without it fails),
and without an inventory of its own the run reads the registry through
inventory/supabase.yml, with the SUPABASE_* settings that env/envvars provides.
Assertions are on runner events and stats, never on stdout text.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PING = "tests/fixtures/runner/ping.yml"
HOSTS = ("pi-a", "pi-b")


@pytest.fixture
def private_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private_data_dir with a static two-host inventory; the caller's Ansible settings removed."""
    for name in ("ANSIBLE_CONFIG", "ANSIBLE_INVENTORY", "ANSIBLE_CALLBACK_PLUGINS", "ANSIBLE_FILTER_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    private = tmp_path / "private"
    (private / "inventory").mkdir(parents=True)
    (private / "env").mkdir()
    inventory = {
        "all": {
            "hosts": dict.fromkeys(HOSTS),
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            },
        }
    }
    (private / "inventory" / "hosts.yml").write_text(yaml.safe_dump(inventory))
    return private


def write_envvars(private: Path, values: dict[str, str]) -> None:
    path = private / "env" / "envvars"
    path.write_text(yaml.safe_dump(values))
    path.chmod(0o600)


def run(private: Path, playbook: str, **kwargs: Any) -> ansible_runner.Runner:
    return ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(ROOT),
        playbook=playbook,
        quiet=True,
        timeout=300,
        **kwargs,
    )


def ok_events(runner: ansible_runner.Runner, action: str) -> dict[str, dict[str, Any]]:
    """host -> result of every runner_on_ok event of tasks with this action."""
    return {
        e["event_data"]["host"]: e["event_data"]["res"]
        for e in runner.events
        if e["event"] == "runner_on_ok" and e["event_data"]["task_action"] == action
    }


def test_the_repository_runs_as_a_runner_project(private_dir: Path) -> None:
    write_envvars(private_dir, {"VF_RUNNER_PROBE": "from-envvars"})
    runner = run(private_dir, PING)

    assert (runner.rc, runner.status) == (0, "successful")
    events = Counter(e["event"] for e in runner.events)
    assert events["runner_on_ok"] == 2 * len(HOSTS)
    assert events["runner_on_failed"] == events["runner_on_unreachable"] == 0
    (stats,) = [e["event_data"] for e in runner.events if e["event"] == "playbook_on_stats"]
    assert stats["ok"] == dict.fromkeys(HOSTS, 2)
    assert stats["failures"] == stats["dark"] == {}
    assert set(ok_events(runner, "ansible.builtin.ping")) == set(HOSTS)

    facts = ok_events(runner, "ansible.builtin.set_fact")
    assert set(facts) == set(HOSTS)
    for result in facts.values():
        found = result["ansible_facts"]
        # The project's filters, found through its ansible.cfg.
        assert found["runner_in_window"] is True
        assert found["runner_after_window"] is False
        assert found["runner_next_window"]["start"] == "2026-01-02T02:00:00+00:00"
        assert found["runner_next_window"]["seconds_until_start"] == 22 * 3600 + 30 * 60
        # env/envvars reached the play.
        assert found["runner_probe"] == "from-envvars"
        # ansible-runner sets ANSIBLE_CALLBACK_PLUGINS to its own directory, which overrides
        # ansible.cfg's callback_plugins (docs/OPERATIONS.md: env/envvars puts it back).
        assert str(ROOT / "callback_plugins") not in found["runner_callback_path"]


def test_envvars_can_put_the_projects_callback_plugins_back(private_dir: Path) -> None:
    write_envvars(private_dir, {"ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "callback_plugins")})
    runner = run(private_dir, PING)

    assert runner.rc == 0
    for result in ok_events(runner, "ansible.builtin.set_fact").values():
        paths = result["ansible_facts"]["runner_callback_path"]
        assert paths[0] == str(ROOT / "callback_plugins")
        assert any("ansible_runner" in path for path in paths[1:])  # runner's own is appended


def test_without_the_projects_ansible_cfg_the_filters_are_missing(private_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.cfg"
    empty.write_text("[defaults]\n")
    write_envvars(private_dir, {"ANSIBLE_CONFIG": str(empty)})
    runner = run(private_dir, PING)

    assert runner.rc == 2
    failed = [e["event_data"] for e in runner.events if e["event"] == "runner_on_failed"]
    assert {f["host"] for f in failed} == set(HOSTS)
    assert all(f["task_action"] == "ansible.builtin.set_fact" for f in failed)
    assert all("in_maintenance_window" in f["res"]["msg"] for f in failed)


@pytest.mark.stack
def test_default_inventory_reads_the_registry_with_envvars_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack_env: dict[str, str], registry_db: Any
) -> None:
    for name in ("ANSIBLE_CONFIG", "ANSIBLE_INVENTORY", "SUPABASE_URL", "SUPABASE_SERVICE_KEY"):
        monkeypatch.delenv(name, raising=False)
    tag = uuid.uuid4().hex[:8]
    devices = {
        f"runner-{tag}-berlin": ("Europe/Berlin", f"runner-{tag}-0001"),
        f"runner-{tag}-kolkata": ("Asia/Kolkata", f"runner-{tag}-0002"),
    }
    private = tmp_path / "private"
    (private / "env").mkdir(parents=True)
    # No inventory/ here: ansible-playbook falls back to ansible.cfg's inventory/supabase.yml.
    write_envvars(
        private,
        {
            "SUPABASE_URL": stack_env["SUPABASE_URL"],
            "SUPABASE_SERVICE_KEY": stack_env["SUPABASE_SERVICE_KEY"],
        },
    )
    try:
        for name, (zone, device_uuid) in devices.items():
            registry_db.execute(
                "INSERT INTO public.devices (device_uuid, device_name, timezone, status, ansible_host)"
                " VALUES (%s, %s, %s, 'online', '127.0.0.1')",
                (device_uuid, name, zone),
            )
        runner = run(private, "tests/fixtures/runner/registry.yml", limit=",".join(devices))
    finally:
        registry_db.execute("DELETE FROM public.devices WHERE device_uuid LIKE %s", (f"runner-{tag}-%",))

    assert runner.rc == 0, runner.stdout.read()[-3000:]
    seen = {
        host: res["ansible_facts"]["runner_device"]
        for host, res in ok_events(runner, "ansible.builtin.set_fact").items()
    }
    assert set(seen) == set(devices)
    for host, (zone, device_uuid) in devices.items():
        assert seen[host]["device_uuid"] == device_uuid
        assert seen[host]["timezone"] == zone
        assert seen[host]["timezone_valid"] is True
        assert f"tz_{zone.lower().replace('/', '_')}" in seen[host]["groups"]
        assert "status_online" in seen[host]["groups"]

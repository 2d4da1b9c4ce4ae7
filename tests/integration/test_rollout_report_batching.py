"""The batch plan the rollout plays publish against ansible-core's own split, and the report builder.

The plays publish their plan with the filter `javia.voice_fleet.voice_serial_batches`
(playbooks/tasks/report_plan.yml), and the callback believes it: the filter must split hosts
exactly as `PlaybookExecutor._get_serialized_batches` does, checked here against that very method,
on a real inventory and a real, post-validated play.
The report builder and the page are checked on edge cases that a short play cannot produce cheaply:
zero hosts, a large fleet, an outcome the contract does not name, two reports in the same second.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from ansible.errors import AnsibleFilterError
from ansible.executor.playbook_executor import PlaybookExecutor
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play import Play
from ansible.template import Templar
from ansible.vars.manager import VariableManager
from ansible_collections.javia.voice_fleet.plugins.callback import rollout_report
from ansible_collections.javia.voice_fleet.plugins.filter.voice_rollout import voice_serial_batches
from ansible_collections.javia.voice_fleet.plugins.module_utils import voice_report


@pytest.fixture(scope="module")
def plugin() -> ModuleType:
    """The callback by its full name, as Ansible loads it from the collection."""
    return rollout_report


SERIALS = [
    None,
    [],
    1,
    "2",
    "30%",
    [1, "10%", "50%", "100%"],
    [1, 3, "50%"],
    ["33%", "33%"],
    ["1%"],
    [5, 2],
    [2, 0],
    [-1],
    ["0%", 4],
    ["100%"],
]
HOST_COUNTS = [0, 1, 2, 3, 7, 10, 25, 101]


def executor_batch_sizes(serial: object, count: int) -> list[int]:
    """Batch sizes from ansible-core's PlaybookExecutor, on a real inventory and play."""
    loader = DataLoader()
    # The controller itself is in every inventory but never in the play: zero devices still parse.
    source = ",".join(["controller", *(f"pi-{i:03d}" for i in range(count))]) + ","
    inventory = InventoryManager(loader=loader, sources=[source])
    variables = VariableManager(loader=loader, inventory=inventory)
    data: dict[str, object] = {"name": "batches", "hosts": "pi-*", "gather_facts": False, "tasks": []}
    if serial is not None:
        data["serial"] = serial
    play = Play.load(data, variable_manager=variables, loader=loader)
    play.post_validate(Templar(loader=loader, variables=variables.get_vars(play=play)))
    # The method only reads self._inventory: run it on a holder of the real inventory.
    batches = PlaybookExecutor._get_serialized_batches(SimpleNamespace(_inventory=inventory), play)
    return [len(batch) for batch in batches]


@pytest.mark.parametrize("serial", SERIALS, ids=[repr(s) for s in SERIALS])
def test_batch_sizes_match_the_playbook_executor(serial: object) -> None:
    for count in HOST_COUNTS:
        expected = executor_batch_sizes(serial, count)
        assert voice_serial_batches(serial, count) == expected, (serial, count)
        assert sum(expected) == count


def test_default_rollout_serial_on_a_fleet_of_20() -> None:
    # The rollout's default: a canary, then 10% (2), 50% (10), then 100% of what is left (7).
    assert voice_serial_batches([1, "10%", "50%", "100%"], 20) == [1, 2, 10, 7]


def test_a_bad_serial_value_is_named() -> None:
    with pytest.raises(AnsibleFilterError, match="'ten'"):
        voice_serial_batches(["ten"], 5)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "--"),
        (-1, "--"),
        (0, "0:00"),
        (59.4, "0:59"),
        (61, "1:01"),
        (3600, "1:00:00"),
        (3725, "1:02:05"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert voice_report.format_duration(seconds) == text


def run_state(plugin: ModuleType, hosts: list[str], serial: list[object], outcomes: dict[str, str]) -> object:
    """A finished run as the callback records it: every planned batch ran, each host published."""
    start = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    play = plugin.PlayTrack(
        name="Roll out",
        serial=serial,
        hosts=hosts,
        planned=voice_serial_batches(serial, len(hosts)),
        max_fail_percentage=None,
        any_errors_fatal=False,
        concurrency=20,
    )
    state = plugin.RunState(playbook="playbooks/rollout.yml", started_at=start, plays=[play])
    left, moment = list(hosts), start
    for index, size in enumerate(play.planned, start=1):
        group, left = left[:size], left[size:]
        batch = plugin.BatchTrack(
            play="Roll out", index=index, hosts=group, started_mono=0.0, started_at=moment
        )
        batch.finished_mono, batch.finished_at = 30.0, moment + timedelta(seconds=30)
        play.batches.append(batch)
        for name in group:
            state.hosts[name] = plugin.HostTrack(name=name, play="Roll out", batch=index)
            state.published[name] = {
                "outcome": outcomes.get(name, "completed"),
                "version": "1.4.0",
                "started_at": moment.isoformat(),
                "finished_at": (moment + timedelta(seconds=25)).isoformat(),
            }
        moment += timedelta(seconds=31)
    return state


def test_zero_hosts_make_a_report_and_a_page(plugin: ModuleType) -> None:
    state = run_state(plugin, [], [1, "50%"], {})
    report = plugin.build_report(state, datetime(2026, 11, 22, 2, 1, tzinfo=UTC), {})
    assert report["hosts"] == {}
    assert report["batches"] == []
    assert report["totals"]["hosts"] == 0
    assert report["stopped_early"] is False
    page = voice_report.render_html(report)
    assert "No hosts matched the play." in page
    assert "No batch ran" in page


def test_a_large_fleet_draws_one_timeline_row_per_batch(plugin: ModuleType) -> None:
    hosts = [f"pi-{i:04d}" for i in range(500)]
    state = run_state(
        plugin, hosts, [1, "10%", "50%", "100%"], {"pi-0007": "failed", "pi-0300": "rolled_back"}
    )
    report = plugin.build_report(state, datetime(2026, 11, 22, 3, 0, tzinfo=UTC), {})
    assert [b["size"] for b in report["batches"]] == [1, 50, 250, 199]
    assert report["totals"]["failed"] == 1
    assert report["totals"]["rolled_back"] == 1
    assert report["totals"]["completed"] == 498
    geometry = voice_report.timeline_geometry(report)
    host_rows = [row for row in geometry["rows"] if row["kind"] == "host"]
    assert len(host_rows) == 4  # one per batch, not 500
    # Batch 2 holds the failure: its row has a completed and a failed segment, sized by share.
    segments = {bar["fill"]: bar["w"] for bar in host_rows[1]["bars"]}
    assert set(segments) == {voice_report.colour("completed"), voice_report.colour("failed")}
    assert segments[voice_report.colour("completed")] == pytest.approx(
        49 * segments[voice_report.colour("failed")]
    )
    page = voice_report.render_html(report)
    assert page.count("<tr") == 1 + 500 + 1 + 4  # hosts table (head + rows), batches table (head + rows)


def test_an_outcome_outside_the_contract_is_shown_as_published(plugin: ModuleType) -> None:
    state = run_state(plugin, ["pi-1", "pi-2"], [2], {"pi-2": "postponed"})
    report = plugin.build_report(state, datetime(2026, 11, 22, 2, 1, tzinfo=UTC), {})
    assert report["hosts"]["pi-2"]["outcome"] == "postponed"
    assert report["totals"]["postponed"] == 1
    assert report["totals"]["hosts"] == 2
    page = voice_report.render_html(report)
    assert voice_report.OTHER_COLOUR in page
    assert ">postponed<" in page


def test_final_stats_complete_what_the_task_results_showed(plugin: ModuleType) -> None:
    """A set_stats task with no_log hides its data from callbacks; the final stats still carry it."""
    state = run_state(plugin, ["pi-1", "pi-2"], [2], {})
    del state.published["pi-2"]
    custom = {
        "_run": {
            "voice_rollout": {
                "pi-2": {"outcome": "rolled_back", "error": "health check failed", "step": "Check"}
            },
            "voice_rollout_run": {"version": "1.4.0", "update_type": "urgent"},
        }
    }
    report = plugin.build_report(state, datetime(2026, 11, 22, 2, 1, tzinfo=UTC), custom)
    assert report["hosts"]["pi-2"]["outcome"] == "rolled_back"
    assert report["hosts"]["pi-2"]["source"] == "play"
    assert report["run"] == {"version": "1.4.0", "update_type": "urgent"}


def test_reports_in_the_same_second_never_overwrite_each_other(plugin: ModuleType, tmp_path: Path) -> None:
    state = run_state(plugin, ["pi-1"], [1], {})
    moment = datetime(2026, 11, 22, 2, 1, tzinfo=UTC)
    first = plugin.write_report(plugin.build_report(state, moment, {}), tmp_path, "rollout", True)
    state.published["pi-1"]["outcome"] = "failed"
    second = plugin.write_report(plugin.build_report(state, moment, {}), tmp_path, "rollout", True)
    assert [p.name for p in first] == ["rollout-20261122T020100Z.json", "rollout-20261122T020100Z.html"]
    assert [p.name for p in second] == ["rollout-20261122T020100Z-2.json", "rollout-20261122T020100Z-2.html"]
    assert json.loads(first[0].read_text())["hosts"]["pi-1"]["outcome"] == "completed"
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert latest["hosts"]["pi-1"]["outcome"] == "failed"
    assert (tmp_path / "latest.html").read_text() == second[1].read_text()
    assert not (tmp_path / "latest.json").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_pull_devices_are_shown_from_their_registry_rows(plugin: ModuleType) -> None:
    """The push run leaves pull devices alone; the report lists them from what the play published
    (tasks/resolve_release.yml: the management_pull hosts' registry columns)."""
    state = run_state(plugin, ["pi-1"], [1], {})
    pull = {
        "pi-9": {"device_uuid": "u-9", "current_version": "1.3.0", "last_seen": "2026-12-01T02:10:00+00:00"},
        "pi-8": {"device_uuid": "u-8"},
    }
    custom = {"_run": {"voice_rollout_run": {"version": "1.4.0", "pull_devices": pull}}}
    report = plugin.build_report(state, datetime(2026, 11, 22, 2, 1, tzinfo=UTC), custom)
    assert report["run"]["pull_devices"] == pull, "the JSON report holds them"
    assert "pi-9" not in report["hosts"], "no host of the run"
    page = voice_report.render_html(report)
    section = page[page.index('id="pull"') :]
    assert "pi-9" in section and "1.3.0" in section and "2026-12-01 02:10:00 UTC" in section
    assert "pi-8" in section and "never" in section
    without = voice_report.render_html(
        plugin.build_report(state, datetime(2026, 11, 22, 2, 1, tzinfo=UTC), {})
    )
    assert 'id="pull"' not in without

"""The rollout_report callback on real ansible-playbook runs: progress lines, JSON report, HTML page.

tests/fixtures/rollout_report/rollout.yml emulates playbooks/rollout.yml on the controller itself:
serial batches [1, 3, "50%"] over 8 devices (sizes 1, 3, 4), outcomes published with set_stats,
one device failing its health check in batch 2, one unreachable over SSH (a closed loopback port),
one failing before it publishes anything (a no_log task holding a secret), and two hostile names.
The page is rendered in headless Chromium (Debian's package) and checked as a picture and a DOM.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rollout_report"
SCRIPT_NAME = "<script>alert(1)</script>"
TEMPLATE_NAME = "{{ lookup('ansible.builtin.pipe', 'id') }}"
SECRET = "SECRET-TOKEN-0451"
BATCHES = [["pi-01"], ["pi-02", "pi-03", "pi-down"], ["pi-04", SCRIPT_NAME, TEMPLATE_NAME, "pi-05"]]
OUTCOMES = {
    "pi-01": "completed",
    "pi-02": "completed",
    "pi-03": "failed",
    "pi-down": "unreachable",
    "pi-04": "failed",
    SCRIPT_NAME: "rolled_back",
    TEMPLATE_NAME: "unchanged",
    "pi-05": "skipped",
}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
START_LINE = re.compile(
    r"^\[rollout\] batch (\d+) of (\d+): (\d+) hosts? \((.*)\) \| done (\d+), failed (\d+)"
)
END_LINE = re.compile(
    r"^\[rollout\] batch (\d+) of (\d+) finished in \d+:\d\d: (.*) \| done (\d+), failed (\d+)"
)


@pytest.fixture(scope="module")
def closed_port() -> int:
    """A loopback port nobody listens on: SSH to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_rollout(
    repo_root: Path,
    report_dir: Path,
    closed_port: int,
    *extra: str,
    env: dict[str, str] | None = None,
    inventory: str = "inventory.yml",
    config: Path | None = None,
    callback: str = "rollout_report",
    playbook: Path = FIXTURES / "rollout.yml",
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "ANSIBLE_CONFIG": str(config or repo_root / "ansible.cfg"),
        "ANSIBLE_CALLBACKS_ENABLED": callback,
        "ANSIBLE_NOCOLOR": "1",
        "ROLLOUT_REPORT_DIR": str(report_dir),
        **(env or {}),
    }
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            str(FIXTURES / inventory),
            str(playbook),
            "-e",
            json.dumps({"closed_port": closed_port}),
            *extra,
        ],
        cwd=repo_root,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def rollout_lines(stdout: str) -> list[str]:
    return [ANSI.sub("", line) for line in stdout.splitlines() if "[rollout]" in line]


def only_report(report_dir: Path, prefix: str = "rollout") -> tuple[dict, Path]:
    reports = sorted(report_dir.glob(f"{prefix}-*.json"))
    assert len(reports) == 1, reports
    return json.loads(reports[0].read_text()), reports[0]


@pytest.fixture(scope="module")
def full_run(repo_root: Path, tmp_path_factory: pytest.TempPathFactory, closed_port: int) -> Iterator[dict]:
    """The whole emulated rollout, once for the tests that read its output."""
    report_dir = tmp_path_factory.mktemp("rollout-report")
    proc = run_rollout(repo_root, report_dir, closed_port)
    # Failed and unreachable devices: ansible-playbook exits 4 (unreachable wins over failed).
    assert proc.returncode == 4, proc.stdout[-3000:] + proc.stderr[-3000:]
    report, json_path = only_report(report_dir)
    yield {
        "proc": proc,
        "report": report,
        "json": json_path,
        "html": json_path.with_suffix(".html"),
        "dir": report_dir,
    }


def test_the_report_has_every_batch_and_host(full_run: dict) -> None:
    report = full_run["report"]
    assert report["schema"] == "voice-fleet/rollout-report/1"
    assert [b["hosts"] for b in report["batches"]] == BATCHES
    assert [b["index"] for b in report["batches"]] == [1, 2, 3]
    assert all(b["ran"] for b in report["batches"])
    assert [b["outcomes"] for b in report["batches"]] == [
        {"completed": 1},
        {"completed": 1, "failed": 1, "unreachable": 1},
        {"failed": 1, "rolled_back": 1, "unchanged": 1, "skipped": 1},
    ]
    assert {name: host["outcome"] for name, host in report["hosts"].items()} == OUTCOMES
    assert {name: host["batch"] for name, host in report["hosts"].items()} == {
        name: index for index, batch in enumerate(BATCHES, start=1) for name in batch
    }
    assert report["totals"] == {
        "hosts": 8,
        "completed": 2,
        "rolled_back": 1,
        "failed": 2,
        "unreachable": 1,
        "unchanged": 1,
        "skipped": 1,
        "unreported": 0,
        "not_run": 0,
    }
    assert report["stopped_early"] is False
    assert report["stop_reason"] is None
    assert report["batches_not_run"] == []
    (play,) = report["plays"]
    assert play["serial"] == [1, 3, "50%"]
    assert play["max_fail_percentage"] == 50
    assert (play["batches_planned"], play["batches_run"]) == (3, 3)
    assert report["run"]["version"] == "1.4.0"
    assert report["run"]["release_by_platform"] == {"aarch64": "1.4.0-3f9a1c2e", "armv7l": "1.4.0-8b0d44a1"}
    assert report["run"]["batches"] == [1, 3, "50%"]


def test_batches_follow_each_other_in_time(full_run: dict) -> None:
    batches = full_run["report"]["batches"]
    for batch in batches:
        assert batch["started_at"] <= batch["finished_at"]
        assert batch["duration_seconds"] >= 1  # every device runs `sleep 1`
    for earlier, later in itertools.pairwise(batches):
        assert earlier["finished_at"] <= later["started_at"]
    assert full_run["report"]["started_at"] <= batches[0]["started_at"]


def test_published_records_are_kept_and_silent_failures_are_named(full_run: dict, closed_port: int) -> None:
    hosts = full_run["report"]["hosts"]
    # Published by the play's rescue section.
    assert hosts["pi-03"]["source"] == "play"
    assert hosts["pi-03"]["step"] == "Check the health of the new release"
    assert hosts["pi-03"]["error"] == "health check failed: voice-client exited with status 3"
    assert hosts["pi-03"]["release"] == "1.4.0-8b0d44a1"
    assert hosts[SCRIPT_NAME]["error"] == "health check failed: voice-client exited with status 3"
    assert hosts["pi-05"]["error"] == "outside its maintenance window"
    # Never published: the callback's own record, from the task that failed.
    assert hosts["pi-down"]["source"] == "callback"
    assert hosts["pi-down"]["step"] == "Install the release"
    assert f"port {closed_port}: Connection refused" in hosts["pi-down"]["error"]
    assert hosts["pi-04"]["source"] == "callback"
    assert hosts["pi-04"]["step"] == "Authenticate to the registry with the device's token"
    assert hosts["pi-04"]["error"] == "output hidden (no_log)"


def test_no_secret_and_no_template_reaches_the_report(full_run: dict) -> None:
    texts = [
        full_run["json"].read_text(),
        full_run["html"].read_text(),
        "\n".join(rollout_lines(full_run["proc"].stdout)),
    ]
    for text in texts:
        assert SECRET not in text
        assert "uid=" not in text  # the hostile name was never templated
    assert "uid=" not in full_run["proc"].stdout


def test_latest_files_are_copies_of_the_newest_report(full_run: dict) -> None:
    latest_json, latest_html = full_run["dir"] / "latest.json", full_run["dir"] / "latest.html"
    assert not latest_json.is_symlink()
    assert not latest_html.is_symlink()
    assert latest_json.read_text() == full_run["json"].read_text()
    assert latest_html.read_text() == full_run["html"].read_text()
    assert re.fullmatch(r"rollout-\d{8}T\d{6}Z\.json", full_run["json"].name)


def test_progress_lines_count_batches_hosts_and_failures(full_run: dict) -> None:
    lines = rollout_lines(full_run["proc"].stdout)
    starts = [START_LINE.match(line) for line in lines if START_LINE.match(line)]
    ends = [END_LINE.match(line) for line in lines if END_LINE.match(line)]
    assert [(int(m[1]), int(m[2]), int(m[3])) for m in starts] == [(1, 3, 1), (2, 3, 3), (3, 3, 4)]
    assert [(int(m[5]), int(m[6])) for m in starts] == [(0, 0), (1, 0), (2, 2)]  # done, failed so far
    assert starts[1][4] == "pi-02, pi-03, pi-down"
    assert starts[2][4] == f"pi-04, {SCRIPT_NAME}, {TEMPLATE_NAME}, ... +1 more"
    assert [int(m[1]) for m in ends] == [1, 2, 3]
    assert ends[1][3] == "1 completed, 1 failed, 1 unreachable (pi-03, pi-down)"
    assert [(int(m[4]), int(m[5])) for m in ends] == [(1, 0), (2, 2), (4, 3)]
    # The first batch has nothing to estimate from; afterwards there is an estimate, 0:00 at the end.
    assert lines[0].endswith("est. left --")
    assert re.search(r"est\. left \d+:\d\d$", starts[1].string)
    assert ends[-1].string.endswith("est. left 0:00")
    assert any(line.startswith("[rollout] 8 hosts: 2 completed, 1 rolled back, 2 failed") for line in lines)
    assert lines[-2:] == [f"[rollout] report: {full_run['json']}", f"[rollout] report: {full_run['html']}"]


def test_the_default_rollout_serial_on_twelve_devices(
    repo_root: Path, tmp_path: Path, closed_port: int
) -> None:
    """[1, "10%", "50%", "100%"] of 12 devices: batches of 1, 1, 6 and the 4 left (pct_to_int rounds down)."""
    serial = json.dumps({"rollout_serial": [1, "10%", "50%", "100%"]})
    proc = run_rollout(repo_root, tmp_path, closed_port, "-e", serial, inventory="demo_inventory.yml")
    assert proc.returncode == 4, proc.stdout[-3000:]
    starts = [START_LINE.match(line) for line in rollout_lines(proc.stdout) if START_LINE.match(line)]
    assert [(int(m[1]), int(m[2]), int(m[3])) for m in starts] == [(1, 4, 1), (2, 4, 1), (3, 4, 6), (4, 4, 4)]
    report, _ = only_report(tmp_path)
    assert [b["size"] for b in report["batches"]] == [1, 1, 6, 4]
    assert report["plays"][0]["serial"] == [1, "10%", "50%", "100%"]
    totals = {outcome: n for outcome, n in report["totals"].items() if n}
    assert totals == {
        "hosts": 12,
        "completed": 7,
        "rolled_back": 1,
        "failed": 1,
        "unreachable": 1,
        "unchanged": 1,
        "skipped": 1,
    }


def test_a_failed_canary_stops_the_rollout(repo_root: Path, tmp_path: Path, closed_port: int) -> None:
    proc = run_rollout(repo_root, tmp_path, closed_port, "-e", "canary_fail=true")
    assert proc.returncode == 2, proc.stdout[-3000:]
    report, _ = only_report(tmp_path)
    assert report["stopped_early"] is True
    assert report["stop_reason"] == "canary failed: every host in batch 1 of 3 failed"
    assert report["batches_not_run"] == [2, 3]
    assert [(b["index"], b["ran"], b["hosts"]) for b in report["batches"]] == [
        (1, True, BATCHES[0]),
        (2, False, BATCHES[1]),
        (3, False, BATCHES[2]),
    ]
    assert report["hosts"]["pi-01"]["outcome"] == "failed"
    assert {name for name, host in report["hosts"].items() if host["outcome"] == "not_run"} == set(
        BATCHES[1] + BATCHES[2]
    )
    assert report["totals"]["not_run"] == 7
    lines = rollout_lines(proc.stdout)
    assert "[rollout] batch 1 of 3 finished in" in lines[1]
    assert not any(START_LINE.match(line) and " batch 2 " in line for line in lines)
    assert any(
        line.startswith("[rollout] STOPPED after batch 1 of 3: canary failed")
        and line.endswith("batches 2-3 never ran (7 hosts)")
        for line in lines
    )


def test_max_fail_percentage_stops_after_the_batch_that_exceeds_it(
    repo_root: Path, tmp_path: Path, closed_port: int
) -> None:
    proc = run_rollout(repo_root, tmp_path, closed_port, "-e", "rollout_max_fail=20")
    assert proc.returncode in (2, 4), proc.stdout[-3000:]
    report, _ = only_report(tmp_path)
    assert report["stopped_early"] is True
    assert report["stop_reason"] == "max_fail_percentage 20% exceeded in batch 2 of 3 (2 of 3 hosts failed)"
    assert report["batches_not_run"] == [3]
    assert [b["ran"] for b in report["batches"]] == [True, True, False]
    assert report["totals"]["not_run"] == 4
    assert report["hosts"]["pi-03"]["outcome"] == "failed"
    assert report["hosts"]["pi-down"]["outcome"] == "unreachable"
    assert any(
        line.startswith("[rollout] STOPPED after batch 2 of 3") and "batch 3 never ran (4 hosts)" in line
        for line in rollout_lines(proc.stdout)
    )


def test_a_play_that_publishes_no_plan_gets_no_batch_totals(
    repo_root: Path, tmp_path: Path, closed_port: int
) -> None:
    """The callback reads the plan from the play, never works it out: without one, "batch k of ?",
    and the hosts a stopped play never ran are one group."""
    proc = run_rollout(repo_root, tmp_path, closed_port, "-e", "canary_fail=true", "-e", "publish_plan=false")
    assert proc.returncode == 2, proc.stdout[-3000:]
    lines = rollout_lines(proc.stdout)
    assert lines[0].startswith("[rollout] batch 1 of ?: 1 host (pi-01) | done 0, failed 0")
    assert lines[1].startswith("[rollout] batch 1 of ? finished in")
    assert lines[2] == (
        "[rollout] STOPPED after batch 1 of ?: canary failed: every host in batch 1 failed; 7 hosts never ran"
    )
    report, _ = only_report(tmp_path)
    assert report["plays"][0]["batches_planned"] is None
    assert report["batches_not_run"] == [2]
    assert [(b["index"], b["ran"], b["hosts"]) for b in report["batches"]] == [
        (1, True, BATCHES[0]),
        (2, False, BATCHES[1] + BATCHES[2]),
    ]
    assert report["totals"]["not_run"] == 7


def test_a_plan_that_does_not_fit_the_play_is_named_and_not_used(
    repo_root: Path, tmp_path: Path, closed_port: int
) -> None:
    # The play's serial is [1, 3, "50%"]; the plan published for [5] does not match what runs.
    proc = run_rollout(repo_root, tmp_path, closed_port, "-e", json.dumps({"rollout_plan_serial": [5]}))
    assert proc.returncode == 4, proc.stdout[-3000:]
    output = " ".join((proc.stdout + proc.stderr).split())
    assert (
        "the published batch plan [5, 3] does not fit: it starts [5], the play ran batches of [1]" in output
    )
    unknown = re.compile(r"^\[rollout\] batch (\d) of \?: (\d) hosts? \(")
    starts = [unknown.match(line) for line in rollout_lines(proc.stdout) if unknown.match(line)]
    assert [(m[1], m[2]) for m in starts] == [("1", "1"), ("2", "3"), ("3", "4")]
    report, _ = only_report(tmp_path)
    assert report["plays"][0]["batches_planned"] is None
    assert report["stopped_early"] is False
    assert [b["hosts"] for b in report["batches"]] == BATCHES


FACTS_PLAY = """
- name: Gather facts, then publish the plan
  hosts: pi-01:pi-02:pi-03
  gather_facts: true
  gather_subset: ["!all"]
  serial: [1, 2]
  vars:
    rollout_report: true
  tasks:
    - name: Publish the batch plan
      ansible.builtin.import_tasks: {tasks}
      vars:
        rollout_plan_serial: [1, 2]
"""


def test_the_plan_after_fact_gathering_is_still_the_first_task(
    repo_root: Path, tmp_path: Path, closed_port: int
) -> None:
    playbook = tmp_path / "facts.yml"
    playbook.write_text(FACTS_PLAY.format(tasks=repo_root / "playbooks" / "tasks" / "report_plan.yml"))
    # Facts gathered every time (ansible.cfg's smart gathering would skip cached ones), cached nowhere.
    facts = {"ANSIBLE_GATHERING": "implicit", "ANSIBLE_CACHE_PLUGIN": "memory"}
    proc = run_rollout(repo_root, tmp_path / "reports", closed_port, playbook=playbook, env=facts)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert proc.stdout.count("TASK [Gathering Facts]") == 2, proc.stdout[-3000:]
    starts = [START_LINE.match(line) for line in rollout_lines(proc.stdout) if START_LINE.match(line)]
    assert [(int(m[1]), int(m[2]), int(m[3])) for m in starts] == [(1, 2, 1), (2, 2, 2)]


RESCUE_PLAY = """
- name: Update with a rescue and no published outcome
  hosts: pi-01:pi-02:pi-03
  gather_facts: false
  vars:
    rollout_report: true
  tasks:
    - name: Try the update
      block:
        - name: Fail on the first device
          ansible.builtin.fail:
            msg: a transient error
          when: inventory_hostname == 'pi-01'
      rescue:
        - name: Carry on after the transient error
          ansible.builtin.debug:
            msg: recovered
    - name: Fail for good on the second device
      ansible.builtin.fail:
        msg: broken for good
      when: inventory_hostname == 'pi-02'
"""


def test_a_failure_a_rescue_handled_is_no_failure_of_the_host(
    repo_root: Path, tmp_path: Path, closed_port: int
) -> None:
    playbook = tmp_path / "rescue.yml"
    playbook.write_text(RESCUE_PLAY)
    proc = run_rollout(repo_root, tmp_path / "reports", closed_port, playbook=playbook)
    assert proc.returncode == 2, proc.stdout[-3000:]
    # The last batch's line comes with the final stats: it knows the rescue already.
    assert any(
        line.startswith("[rollout] batch 1 of ? finished in") and ": 1 failed, 2 unreported (pi-02) |" in line
        for line in rollout_lines(proc.stdout)
    )
    report, _ = only_report(tmp_path / "reports")
    hosts = report["hosts"]
    assert {name: host["outcome"] for name, host in hosts.items()} == {
        "pi-01": "unreported",
        "pi-02": "failed",
        "pi-03": "unreported",
    }
    assert hosts["pi-01"]["error"] == "the play published no outcome for this host"
    assert (hosts["pi-02"]["step"], hosts["pi-02"]["error"]) == (
        "Fail for good on the second device",
        "broken for good",
    )


def test_zero_hosts_still_make_a_report_with_the_chosen_prefix(
    repo_root: Path, tmp_path: Path, closed_port: int
) -> None:
    proc = run_rollout(
        repo_root,
        tmp_path,
        closed_port,
        "-e",
        "target=empty",
        env={"ROLLOUT_REPORT_PREFIX": "nightly", "ROLLOUT_REPORT_HTML": "false"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    report, json_path = only_report(tmp_path, "nightly")
    assert report["hosts"] == {}
    assert report["batches"] == []
    assert report["totals"]["hosts"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json", json_path.name]  # html: false
    assert "[rollout] Roll out voice-client 1.4.0 in batches: no hosts matched, nothing to roll out" in (
        rollout_lines(proc.stdout)
    )


def test_plays_without_the_flag_stay_silent(repo_root: Path, tmp_path: Path, closed_port: int) -> None:
    # Extra vars take precedence over the play's `rollout_report: true`.
    proc = run_rollout(repo_root, tmp_path, closed_port, "-e", "rollout_report=false", "-e", "target=empty")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert rollout_lines(proc.stdout) == []
    assert list(tmp_path.iterdir()) == []


def test_a_report_that_cannot_be_written_never_fails_the_run(
    repo_root: Path, tmp_path: Path, closed_port: int
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    proc = run_rollout(repo_root, blocker, closed_port, "-e", "target=empty")
    assert proc.returncode == 0, proc.stdout[-3000:]
    output = " ".join((proc.stdout + proc.stderr).split())
    assert "rollout_report: the report was not written: FileExistsError" in output


def test_a_bad_prefix_is_named_and_replaced(repo_root: Path, tmp_path: Path, closed_port: int) -> None:
    proc = run_rollout(
        repo_root, tmp_path, closed_port, "-e", "target=empty", env={"ROLLOUT_REPORT_PREFIX": "../escape"}
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "report_prefix '../escape' is not a plain file name part" in " ".join(
        (proc.stdout + proc.stderr).split()
    )
    only_report(tmp_path, "rollout")
    assert not (tmp_path.parent / "escape").exists()


def test_ansible_runner_runs_it_beside_its_own_stdout_callback(
    repo_root: Path, tmp_path: Path, closed_port: int
) -> None:
    """ansible-runner sets ANSIBLE_CALLBACK_PLUGINS (over ansible.cfg): it must name the plugin directory."""
    import ansible_runner  # noqa: PLC0415 (only this test drives plays through ansible-runner)

    report_dir, private = tmp_path / "reports", tmp_path / "runner"
    private.mkdir()
    runner = ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(repo_root),
        playbook=str(FIXTURES / "rollout.yml"),
        inventory=str(FIXTURES / "inventory.yml"),
        extravars={"closed_port": closed_port, "canary_fail": True},
        envvars={
            "ANSIBLE_CONFIG": str(repo_root / "ansible.cfg"),
            "ANSIBLE_CALLBACK_PLUGINS": str(repo_root / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "rollout_report",
            "ROLLOUT_REPORT_DIR": str(report_dir),
        },
        quiet=True,
    )
    assert runner.rc == 2, runner.stdout.read()[-3000:]
    report, _ = only_report(report_dir)
    assert report["stopped_early"] is True
    assert report["batches_not_run"] == [2, 3]
    progress = [ANSI.sub("", e["stdout"]) for e in runner.events if "[rollout]" in e.get("stdout", "")]
    assert progress[0].startswith("[rollout] batch 1 of 3: 1 host (pi-01)")
    assert any("STOPPED after batch 1 of 3" in line for line in progress)
    assert any(e["event"] == "playbook_on_stats" for e in runner.events)


def test_the_installed_collection_renders_with_its_own_template(
    repo_root: Path, tmp_path: Path, closed_port: int
) -> None:
    """The built collection, installed: the callback by its full name and tools/report.py find the
    page's template in the installed plugins/module_utils (marked here), not in a checkout."""

    def galaxy(*args: str) -> None:
        proc = subprocess.run(
            ["ansible-galaxy", "collection", *args], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

    galaxy("build", "--output-path", str(tmp_path / "dist"), str(repo_root))
    (tarball,) = (tmp_path / "dist").glob("javia-voice_fleet-*.tar.gz")
    collections = tmp_path / "collections"
    galaxy("install", "--force", "-p", str(collections), str(tarball))
    copy = collections / "ansible_collections" / "javia" / "voice_fleet"
    template = copy / "plugins" / "module_utils" / "voice_report.html.j2"
    template.write_text(template.read_text() + "<!-- the installed copy -->\n")
    config = tmp_path / "ansible.cfg"
    config.write_text(f"[defaults]\ncollections_path = {collections}\ncollections_scan_sys_path = false\n")
    reports = tmp_path / "reports"
    proc = run_rollout(
        repo_root,
        reports,
        closed_port,
        "-e",
        "target=pi-01:pi-02",
        config=config,
        callback="javia.voice_fleet.rollout_report",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report, json_path = only_report(reports)
    assert sorted(report["hosts"]) == ["pi-01", "pi-02"]
    assert "<!-- the installed copy -->" in json_path.with_suffix(".html").read_text()
    page = tmp_path / "again.html"
    # -I: no PYTHONPATH; the venv's link to a checkout stays on sys.path, behind the installed copy.
    rendered = subprocess.run(
        [sys.executable, "-I", str(copy / "tools" / "report.py"), "render", str(json_path), "-o", str(page)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert rendered.returncode == 0, rendered.stderr
    assert page.read_text() == json_path.with_suffix(".html").read_text()


def test_ansible_doc_documents_the_options(repo_root: Path) -> None:
    proc = subprocess.run(
        ["ansible-doc", "-t", "callback", "--json", "rollout_report"],
        cwd=repo_root,
        env={**os.environ, "ANSIBLE_CONFIG": str(repo_root / "ansible.cfg")},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)["rollout_report"]["doc"]
    assert doc["type"] == "notification"
    assert set(doc["options"]) == {"report_dir", "report_prefix", "html"}
    assert doc["options"]["report_dir"]["env"] == [{"name": "ROLLOUT_REPORT_DIR"}]
    assert doc["options"]["report_prefix"]["default"] == "rollout"


# --- the page in a real browser ----------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium(repo_root: Path) -> str:
    """Debian's chromium, installed on first use."""
    proc = subprocess.run(
        [str(repo_root / "scripts" / "ensure-apt"), "chromium"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"installing chromium failed:\n{proc.stderr}"
    path = shutil.which("chromium")
    assert path, "chromium is not on PATH after installing it"
    return path


def chromium_run(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # runs as root
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


class DomCollector(HTMLParser):
    """Elements, attributes and the text of the hosts table's first column."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.host_cells: list[str] = []
        self._in_host_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "td" and attributes.get("class") == "host":
            self._in_host_cell = True
            self.host_cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_host_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_host_cell:
            self.host_cells[-1] += data


@pytest.mark.chromium
def test_the_page_renders_a_picture(full_run: dict, chromium: str, tmp_path: Path) -> None:
    import numpy as np  # noqa: PLC0415 (only the screenshot test reads images)
    from PIL import Image  # noqa: PLC0415

    shot = tmp_path / "report.png"
    proc = chromium_run(
        chromium,
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1280,1600",
        full_run["html"].as_uri(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 1600)
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200, "the screenshot is (nearly) blank"

    def near(hex_colour: str) -> int:
        target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
        return int(np.all(np.abs(pixels - target) <= 6, axis=-1).sum())

    # The timeline's and the outcome chart's bars are drawn in each outcome's colour.
    for colour, minimum in (("#2e7d32", 2000), ("#c62828", 2000), ("#7b1fa2", 500), ("#ef8f00", 500)):
        assert near(colour) >= minimum, colour


@pytest.mark.chromium
def test_the_page_dom_has_the_table_the_pictures_and_no_injection(
    full_run: dict, chromium: str, tmp_path: Path
) -> None:
    proc = chromium_run(chromium, tmp_path / "profile", "--dump-dom", full_run["html"].as_uri())
    assert proc.returncode == 0, proc.stderr[-3000:]
    dom = DomCollector()
    dom.feed(proc.stdout)
    tags = [tag for tag, _ in dom.tags]
    # Two pictures (timeline, outcomes) in inline SVG, bars in every outcome's colour.
    assert tags.count("svg") == 2
    fills = {attrs.get("fill") for tag, attrs in dom.tags if tag == "rect"}
    assert {"#2e7d32", "#c62828", "#7b1fa2", "#ef8f00", "#5c7c99", "#a7b4c0"} <= fills
    # The hosts table names every device, hostile names as plain text.
    assert sorted(dom.host_cells) == sorted(OUTCOMES)
    # Nothing executable, nothing fetched: no script, no handler attribute, no external reference.
    assert "script" not in tags
    assert not [name for _, attrs in dom.tags for name in attrs if name.startswith("on")]
    references = [
        value for _, attrs in dom.tags for name, value in attrs.items() if name in ("src", "href") and value
    ]
    assert all(value.startswith(("#", "data:")) for value in references), references
    assert "uid=" not in proc.stdout
    assert SECRET not in proc.stdout

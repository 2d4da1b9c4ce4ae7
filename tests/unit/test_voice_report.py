"""The rollout report's page without a play: plugins/module_utils/voice_report.py and tools/report.py.

tests/fixtures/rollout_report/report.json is a report the rollout_report callback wrote for
tests/fixtures/rollout_report/rollout.yml (8 devices in batches of 1, 3 and 4, every outcome, two
hostile names). The renderer turns that file into the page; the tool does it from the command line
and refuses, with the file's name, what is no report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from ansible_collections.javia.voice_fleet.plugins.module_utils import voice_report

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "tests" / "fixtures" / "rollout_report" / "report.json"
TOOL = ROOT / "tools" / "report.py"
SCRIPT_NAME = "<script>alert(1)</script>"
TEMPLATE_NAME = "{{ lookup('ansible.builtin.pipe', 'id') }}"
MARKUP_ERROR = 'health check failed: <img src=x onerror="alert(2)"> & exit 3'


class HostTable(HTMLParser):
    """Each row of the hosts table as the text of its cells, and every element seen."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.tags: list[str] = []
        self._in_hosts = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "section":
            self._in_hosts = dict(attrs).get("id") == "hosts"
        elif self._in_hosts and tag == "tr":
            self.rows.append([])
        elif self._in_hosts and tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "section":
            self._in_hosts = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def host_rows(page: str) -> dict[str, dict[str, str]]:
    """The hosts table: name -> its batch, outcome and error cells, as a browser would show them."""
    table = HostTable()
    table.feed(page)
    return {
        row[0]: {"batch": row[1], "outcome": row[2], "error": row[7]}
        for row in table.rows
        if row  # the head row has th cells only
    }


def run_tool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    )


@pytest.fixture
def report_file(tmp_path: Path) -> Path:
    """The callback's report, copied, with one error message full of markup."""
    report = json.loads(REPORT.read_text())
    report["hosts"]["pi-03"]["error"] = MARKUP_ERROR
    path = tmp_path / "rollout-20261201T234439Z.json"
    path.write_text(json.dumps(report))
    return path


def test_the_page_shows_every_host_with_its_outcome_as_text(report_file: Path) -> None:
    report = json.loads(report_file.read_text())
    page_path = voice_report.render_file(report_file)
    assert page_path == report_file.with_suffix(".html")
    page = page_path.read_text()
    rows = host_rows(page)
    assert (
        set(rows)
        == set(report["hosts"])
        == {"pi-01", "pi-02", "pi-03", "pi-down", "pi-04", "pi-05"}
        | {
            SCRIPT_NAME,
            TEMPLATE_NAME,
        }
    )
    for name, record in report["hosts"].items():
        assert rows[name]["outcome"] == record["outcome"].replace("_", " "), name
        assert rows[name]["batch"] == str(record["batch"]), name
    assert rows["pi-03"]["error"] == MARKUP_ERROR
    assert rows["pi-04"]["error"] == "output hidden (no_log)"
    # Escaped, never markup: no element came from the report's strings.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt; &amp; exit 3" in page
    assert SCRIPT_NAME not in page
    assert "<img" not in page
    table = HostTable()
    table.feed(page)
    assert "script" not in table.tags
    assert "img" not in table.tags


def test_the_page_summarises_the_run(report_file: Path) -> None:
    page = voice_report.render_html(voice_report.load_report(report_file))
    assert "<title>Rollout report: Roll out voice-client 1.4.0 in batches (" in page
    assert "completed with failures" in page
    assert page.count('<rect x="') > 8  # the timeline's bars and the outcomes chart are drawn
    assert ">1, 3, 50%<" in page  # the serial the run published


def test_the_tool_renders_the_page_the_callback_wrote(tmp_path: Path) -> None:
    """The same renderer as the callback: the tool's page is the callback's for the same report."""
    written = voice_report.render_html(json.loads(REPORT.read_text()))
    out = tmp_path / "again.html"
    proc = run_tool("render", REPORT, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert out.read_text() == written


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read the report: No such file or directory"),
        ('{"schema": "voice-fleet/rollout-report/1", "hosts": {', "not JSON: Expecting"),
        ("[1, 2]", "not a rollout report (voice-fleet/rollout-report/1): the document is a JSON list"),
        ('{"schema": "voice-fleet/status/1"}', "schema is 'voice-fleet/status/1'"),
    ],
    ids=["missing", "truncated", "a list", "another schema"],
)
def test_the_tool_names_the_file_it_cannot_render(tmp_path: Path, content: str | None, reason: str) -> None:
    path = tmp_path / "broken.json"
    if content is not None:
        path.write_text(content)
    proc = run_tool("render", path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"report.py: error: {path}: "), proc.stderr
    assert reason in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not path.with_suffix(".html").exists()


def test_a_report_missing_what_the_page_needs_is_named(tmp_path: Path) -> None:
    report = json.loads(REPORT.read_text())
    del report["totals"]
    report["batches"] = "none"
    report["hosts"]["pi-01"] = {"version": "1.4.0"}
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(report))
    with pytest.raises(voice_report.ReportError) as caught:
        voice_report.render_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not a rollout report")
    assert "totals is missing" in message
    assert "batches is not a list" in message
    assert "host 'pi-01' has no outcome" in message

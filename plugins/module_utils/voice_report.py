# Copyright: voice-fleet developers
# MIT License (see galaxy.yml)
"""A rollout report (JSON) made into its HTML page, with or without a play.

The ``rollout_report`` callback writes the JSON report at the end of a run and renders the page
beside it with `render_html`; ``tools/report.py render REPORT.json`` renders a report again later,
on any machine, with `render_file`. The report's vocabulary (schema, outcomes, their colours) and
the page's template, ``voice_report.html.j2`` beside this file, live here once: the template ships
in ``plugins/module_utils/`` of the collection, so the callback and the tool find it the same way
in a checkout and in an installed collection.

Imported by its full name, ``ansible_collections.javia.voice_fleet.plugins.module_utils.
voice_report``. Controller-side only: the standard library, and Jinja2 (ansible-core's own
dependency) when a page is rendered.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = "voice-fleet/rollout-report/1"
TEMPLATE = Path(__file__).with_name("voice_report.html.j2")

# Outcomes a play publishes, then the ones only the callback assigns.
PUBLISHED_OUTCOMES = ("completed", "rolled_back", "failed", "unchanged", "skipped")
OUTCOMES = (*PUBLISHED_OUTCOMES, "unreachable", "unreported", "not_run")
FAILED_OUTCOMES = frozenset({"failed", "unreachable"})
DONE_OUTCOMES = frozenset({"completed", "unchanged", "skipped"})
OUTCOME_COLOURS = {
    "completed": "#2e7d32",
    "rolled_back": "#ef8f00",
    "failed": "#c62828",
    "unreachable": "#7b1fa2",
    "unchanged": "#5c7c99",
    "skipped": "#a7b4c0",
    "unreported": "#d4a017",
    "not_run": "#dfe5ea",
}
OTHER_COLOUR = "#8d6e63"
LIGHT_OUTCOMES = frozenset({"skipped", "unreported", "not_run"})
# What the page reads at the top of a report: each key, the JSON types it may have, in words.
REPORT_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "schema": ((str,), "a string"),
    "generated_at": ((str,), "a string"),
    "started_at": ((str,), "a string"),
    "finished_at": ((str,), "a string"),
    "duration_seconds": ((int, float), "a number"),
    "playbook": ((str, type(None)), "a string or null"),
    "check_mode": ((bool,), "true or false"),
    "ansible_version": ((str,), "a string"),
    "run": ((dict,), "an object"),
    "plays": ((list,), "a list"),
    "batches": ((list,), "a list"),
    "hosts": ((dict,), "an object"),
    "totals": ((dict,), "an object"),
    "stopped_early": ((bool,), "true or false"),
    "stop_reason": ((str, type(None)), "a string or null"),
    "batches_not_run": ((list,), "a list"),
}


class ReportError(ValueError):
    """A report that cannot be read or rendered; the message names the file and what is wrong."""


# --- small pure helpers ----------------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    """`m:ss`, or `h:mm:ss` from an hour on; `--` when unknown."""
    if seconds is None or seconds < 0 or math.isnan(seconds):
        return "--"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def parse_iso(value: Any) -> datetime | None:
    """An aware datetime from an ISO 8601 string (naive means UTC), else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def one_line(text: Any, limit: int = 400) -> str:
    """The words of `text` on one line, cut at `limit` characters."""
    words = " ".join(str(text).split())
    return words if len(words) <= limit else words[: limit - 1] + "\u2026"


def colour(outcome: str) -> str:
    return OUTCOME_COLOURS.get(outcome, OTHER_COLOUR)


def ink(outcome: str) -> str:
    """Text colour on an outcome's colour."""
    return "#1f2a33" if outcome in LIGHT_OUTCOMES else "#ffffff"


def nice_step(span: float, target: int = 8) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400):
        if span / step <= target:
            return step
    return span / target


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# --- reading a report ------------------------------------------------------------------------


def is_json_type(value: Any, kinds: tuple[type, ...]) -> bool:
    """Whether `value` has one of the JSON types `kinds` (true and false are no numbers here)."""
    return isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))


def report_problems(report: Any) -> list[str]:
    """What keeps `report` from being a rollout report this page can show (empty when none)."""
    if not isinstance(report, dict):
        return [f"the document is a JSON {type(report).__name__}, not an object"]
    if report.get("schema") != SCHEMA:
        return [f"schema is {report.get('schema')!r}, not {SCHEMA!r}"]
    problems = [
        f"{key} is missing" if key not in report else f"{key} is not {words}"
        for key, (kinds, words) in REPORT_KEYS.items()
        if not is_json_type(report.get(key, ...), kinds)
    ]
    hosts = report["hosts"] if isinstance(report.get("hosts"), dict) else {}
    problems += [
        f"host {name!r} has no outcome"
        for name, record in hosts.items()
        if not isinstance(record, dict) or not isinstance(record.get("outcome"), str)
    ]
    return problems


def load_report(path: str | Path) -> dict[str, Any]:
    """The report in the JSON file `path`; ReportError naming the file if it is none."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ReportError(f"{path}: cannot read the report: {reason}") from exc
    try:
        report = json.loads(text)
    except ValueError as exc:
        raise ReportError(f"{path}: not JSON: {exc}") from exc
    problems = report_problems(report)
    if problems:
        raise ReportError(f"{path}: not a rollout report ({SCHEMA}): {'; '.join(problems)}")
    return report


# --- the page --------------------------------------------------------------------------------


@dataclass
class TimeScale:
    """Maps instants of the run to x positions of the timeline's plot area."""

    t0: datetime
    span: float
    left: float
    width: float

    def x(self, moment: datetime | None) -> float:
        offset = (moment - self.t0).total_seconds() / self.span if moment else 0.0
        return self.left + min(max(offset, 0.0), 1.0) * self.width

    def ticks(self) -> list[dict[str, Any]]:
        step, ticks, tick = nice_step(self.span), [], 0.0
        while tick <= self.span + 1e-6:
            ticks.append({"x": self.left + tick / self.span * self.width, "label": format_duration(tick)})
            tick += step
        return ticks


def host_bar_row(
    name: str, record: Mapping[str, Any], batch_start: datetime | None, scale: TimeScale
) -> dict:
    start = parse_iso(record["started_at"]) or batch_start
    end = parse_iso(record["finished_at"]) or start
    tip = f"{name}: {record['outcome'].replace('_', ' ')} in {format_duration(record['duration_seconds'])}"
    if record.get("error"):
        tip += f" \u2014 {one_line(record['error'], 160)}"
    segment = {
        "x": scale.x(start),
        "w": max(scale.x(end) - scale.x(start), 3.0),
        "fill": colour(record["outcome"]),
        "tip": tip,
    }
    return {"kind": "host", "label": shorten(name, 26), "full": name, "bars": [segment]}


def batch_bar_row(batch: Mapping[str, Any], records: list[Mapping[str, Any]], scale: TimeScale) -> dict:
    """One row for a whole batch: its time span split by the share of each outcome."""
    counts = Counter(record["outcome"] for record in records)
    x0, x1 = scale.x(parse_iso(batch["started_at"])), scale.x(parse_iso(batch["finished_at"]))
    total = max(sum(counts.values()), 1)
    segments, cursor = [], x0
    for outcome in [*OUTCOMES, *sorted(set(counts) - set(OUTCOMES))]:
        if counts.get(outcome):
            width = (x1 - x0) * counts[outcome] / total
            tip = f"Batch {batch['index']}: {counts[outcome]} {outcome.replace('_', ' ')}"
            segments.append({"x": cursor, "w": max(width, 2.0), "fill": colour(outcome), "tip": tip})
            cursor += width
    return {
        "kind": "host",
        "label": f"{batch['size']} hosts",
        "full": f"Batch {batch['index']}",
        "bars": segments,
    }


def timeline_geometry(report: Mapping[str, Any], per_host_limit: int = 60) -> dict[str, Any]:
    """Shapes of the Gantt picture: one row per host (per batch on large runs), bars by outcome."""
    width, label_w, right, row_h, head_h, axis_h = 1200, 210, 24, 20, 26, 30
    ran = [batch for batch in report["batches"] if batch["ran"]]
    stamps = [parse_iso(batch[key]) for batch in ran for key in ("started_at", "finished_at")]
    stamps += [parse_iso(r[key]) for r in report["hosts"].values() for key in ("started_at", "finished_at")]
    known = [stamp for stamp in stamps if stamp]
    if not report["batches"] or not known:
        return {"width": width, "height": 0, "rows": [], "bands": [], "ticks": [], "empty": True}
    span = max((max(known) - min(known)).total_seconds(), 1.0)
    scale = TimeScale(t0=min(known), span=span, left=label_w, width=width - label_w - right)
    per_host = sum(batch["size"] for batch in ran) <= per_host_limit
    rows: list[dict[str, Any]] = []
    bands: list[dict[str, Any]] = []
    y = axis_h
    for batch in report["batches"]:
        count = f"{batch['size']} host{'s' if batch['size'] != 1 else ''}"
        if not batch["ran"]:
            detail = f"{count} \u00b7 never ran"
            rows.append(
                {"kind": "not_run", "y": y, "h": head_h, "label": f"Batch {batch['index']}", "detail": detail}
            )
            y += head_h
            continue
        detail = f"{count} \u00b7 {format_duration(batch['duration_seconds'])}"
        rows.append(
            {"kind": "batch", "y": y, "h": head_h, "label": f"Batch {batch['index']}", "detail": detail}
        )
        top, y = y, y + head_h
        members = [(name, report["hosts"][name]) for name in batch["hosts"] if name in report["hosts"]]
        start = parse_iso(batch["started_at"])
        if per_host:
            bar_rows = [host_bar_row(name, record, start, scale) for name, record in members]
        else:
            bar_rows = [batch_bar_row(batch, [record for name, record in members], scale)]
        for row in bar_rows:
            rows.append({**row, "y": y, "h": row_h})
            y += row_h
        x0, x1 = scale.x(start), scale.x(parse_iso(batch["finished_at"]))
        bands.append({"x": x0, "w": max(x1 - x0, 2.0), "y": top, "h": y - top})
    return {
        "width": width,
        "height": y + 8,
        "label_w": label_w,
        "plot_right": width - right,
        "axis_h": axis_h,
        "rows": rows,
        "bands": bands,
        "ticks": scale.ticks(),
        "empty": False,
    }


def outcome_geometry(totals: Mapping[str, int]) -> dict[str, Any]:
    width, label_w, row_h = 560, 120, 30
    bar_max = width - label_w - 90
    present = [(o, n) for o, n in totals.items() if o != "hosts" and n]
    hosts = max(totals.get("hosts", 0), 1)
    top = max((n for o, n in present), default=1)
    rows = [
        {
            "y": 8 + i * row_h,
            "label": outcome.replace("_", " "),
            "w": max(bar_max * n / top, 3.0),
            "fill": colour(outcome),
            "count": n,
            "count_x": label_w + max(bar_max * n / top, 3.0) + 8,
            "pct_x": label_w + max(bar_max * n / top, 3.0) + 16 + 8 * len(str(n)),
            "pct": f"{100 * n / hosts:.0f}%",
        }
        for i, (outcome, n) in enumerate(present)
    ]
    return {"width": width, "height": 16 + len(rows) * row_h, "label_w": label_w, "rows": rows}


def run_status(report: Mapping[str, Any]) -> tuple[str, str]:
    """The page's verdict on the run, and its CSS class."""
    totals = report["totals"]
    if report["stopped_early"]:
        return "stopped early", "bad"
    if not totals.get("hosts"):
        return "no hosts", "neutral"
    if any(totals.get(o) for o in FAILED_OUTCOMES):
        return "completed with failures", "warn"
    if totals.get("rolled_back"):
        return "completed with rollbacks", "warn"
    if totals.get("unreported"):
        return "completed, outcomes missing", "warn"
    return "completed", "ok"


def render_html(report: Mapping[str, Any], template: Path = TEMPLATE) -> str:
    """The self-contained page; every string from the run is escaped by Jinja2's autoescape."""
    from jinja2 import Environment, StrictUndefined  # noqa: PLC0415 (only a rendering needs it)

    env = Environment(
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["duration"] = format_duration
    env.filters["when"] = lambda value: (
        parse_iso(value).strftime("%Y-%m-%d %H:%M:%S UTC") if parse_iso(value) else "\u2014"
    )
    env.filters["clock"] = lambda value: (
        parse_iso(value).strftime("%H:%M:%S") if parse_iso(value) else "\u2014"
    )
    env.filters["outcome_label"] = lambda value: str(value).replace("_", " ")
    totals = report["totals"]
    status, status_class = run_status(report)
    host_rows = sorted(
        report["hosts"].items(),
        key=lambda item: (item[1]["batch"] if isinstance(item[1]["batch"], int) else 10**9,),
    )
    serial = report["run"].get("batches", report["plays"][0]["serial"] if report["plays"] else [])
    serial_text = ", ".join(map(str, serial)) if isinstance(serial, list) else str(serial)
    cards = [("hosts", totals["hosts"], "#263238")] + [
        (o, totals.get(o, 0), colour(o)) for o in OUTCOMES if totals.get(o) or o in ("completed", "failed")
    ]
    return env.from_string(template.read_text(encoding="utf-8")).render(
        report=report,
        status=status,
        status_class=status_class,
        serial_text=serial_text or "all hosts at once",
        cards=cards,
        host_rows=host_rows,
        timeline=timeline_geometry(report),
        outcomes=outcome_geometry(totals),
        legend=[o for o in [*OUTCOMES, *sorted(set(totals) - {"hosts", *OUTCOMES})] if totals.get(o)],
        colour=colour,
        ink=ink,
        failed_outcomes=FAILED_OUTCOMES,
    )


def render_file(report_path: str | Path, page_path: str | Path | None = None) -> Path:
    """Render the JSON report at `report_path` into `page_path` (default: beside it, `.html`)."""
    report = load_report(report_path)
    try:
        page = render_html(report)
    except Exception as exc:  # a key or type the page needs, deeper than load_report checks
        raise ReportError(f"{report_path}: cannot render the page: {type(exc).__name__}: {exc}") from exc
    target = Path(page_path) if page_path else Path(report_path).with_suffix(".html")
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{target}: cannot write the page: {exc.strerror or exc}") from exc
    return target

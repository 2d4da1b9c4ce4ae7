"""Rollout progress by batch on the display, and a JSON + HTML report at the end of the run.

This plugin turns Ansible's events into the JSON report; the page is rendered from that JSON by
plugins/module_utils/voice_report.py (the one renderer, also behind tools/report.py).
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from time import monotonic
from typing import Any, TypeVar

from ansible import constants as C  # noqa: N812 (Ansible's own idiom)
from ansible import context
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ansible_version
from ansible.template import Templar
from ansible_collections.javia.voice_fleet.plugins.module_utils.voice_fleet_files import write_atomic
from ansible_collections.javia.voice_fleet.plugins.module_utils.voice_report import (
    DONE_OUTCOMES,
    FAILED_OUTCOMES,
    OUTCOMES,
    SCHEMA,
    format_duration,
    one_line,
    parse_iso,
    render_html,
)

DOCUMENTATION = """
name: rollout_report
type: notification
short_description: Show a rollout batch by batch and write a JSON and HTML report
description:
  - Acts only on plays that set the play variable C(rollout_report) to true; every other play leaves
    it silent, and a run without such a play writes nothing.
  - While the play runs, prints one line when a serial batch starts and one when it ends
    (C(batch k of n), hosts done and failed, elapsed time, an estimate of the time left). The batch
    plan (the sizes of the play's serial batches) comes from the play, published with
    C(ansible.builtin.set_stats) under the key C(voice_rollout_plan) (C(batches), a list of sizes, and
    C(hosts), their sum) by its first task (C(playbooks/tasks/report_plan.yml)); a play that
    publishes none is shown as C(batch k of ?), and the hosts a stopped play never ran as one group.
  - Each host's outcome comes from the play, published with C(ansible.builtin.set_stats) under the
    key C(voice_rollout) (a mapping of host to a record with C(outcome), C(version), C(release),
    C(error), C(step), C(batch), C(started_at), C(finished_at)). A host that failed or became
    unreachable before publishing anything is reported from the task results the callback saw
    (task name and message; results hidden with C(no_log) stay hidden); a failure that a C(rescue)
    section handled is no failure of the host (the final stats say which). Run-level data comes from
    the C(voice_rollout_run) key.
  - At the end of the playbook writes C(<prefix>-<UTC timestamp>.json) and C(.html) to the report
    directory and refreshes C(latest.json) and C(latest.html) there (copies, not links). The HTML
    page is self-contained (inline CSS and SVG, no scripts) and works offline; it is made from the
    JSON report alone (C(tools/report.py render REPORT.json) makes it again without a play).
  - A report error is shown as a warning; it never fails the run.
requirements:
  - Enable it with C(callbacks_enabled = rollout_report) in ansible.cfg.
options:
  report_dir:
    description:
      - Directory the reports are written to; created if missing.
      - When not set, C(reports) in the directory that holds the ansible.cfg in use, else in the
        current directory.
    type: path
    env:
      - name: ROLLOUT_REPORT_DIR
    ini:
      - section: callback_rollout_report
        key: report_dir
  report_prefix:
    description: First part of the report file names (letters, digits, C(.), C(_) and C(-)).
    type: str
    default: rollout
    env:
      - name: ROLLOUT_REPORT_PREFIX
    ini:
      - section: callback_rollout_report
        key: report_prefix
  html:
    description: Write the HTML page beside the JSON report.
    type: bool
    default: true
    env:
      - name: ROLLOUT_REPORT_HTML
    ini:
      - section: callback_rollout_report
        key: html
"""

STATS_KEY = "voice_rollout"
RUN_STATS_KEY = "voice_rollout_run"
PLAN_STATS_KEY = "voice_rollout_plan"
PLAY_FLAG = "rollout_report"
PREFIX_RE = re.compile(r"^[A-Za-z0-9._-]+$")

F = TypeVar("F", bound=Callable[..., Any])


# --- small pure helpers ----------------------------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def plain(value: Any) -> Any:
    """Plain JSON types from Ansible's tagged/lazy containers (str subclasses become str)."""
    if isinstance(value, Mapping):
        return {str.__str__(str(key)): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return value.isoformat() if isinstance(value, datetime) else str(value)


def printable(text: str) -> str:
    """Text safe for a terminal line: control characters become '?'."""
    return "".join("?" if unicodedata.category(ch)[0] == "C" else ch for ch in text)


def result_message(result: Mapping[str, Any]) -> str:
    """What a failed or unreachable result says, never more than a no_log result shows."""
    if "censored" in result:
        return "output hidden (no_log)"
    message = result.get("msg")
    if not message and isinstance(result.get("results"), list):
        for item in result["results"]:
            if isinstance(item, Mapping) and (item.get("failed") or item.get("unreachable")):
                message = result_message(item)
                break
    if not message:
        stderr = str(result.get("stderr") or "").strip().splitlines()
        message = stderr[-1] if stderr else ""
    if not message and result.get("rc") not in (None, 0):
        message = f"exit status {result['rc']}"
    return one_line(message or "failed without a message")


def name_list(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(printable(name) for name in names[:limit])
    return shown + (f", ... +{len(names) - limit} more" if len(names) > limit else "")


def outcome_phrase(counts: Mapping[str, int]) -> str:
    parts = [f"{counts[o]} {o.replace('_', ' ')}" for o in OUTCOMES if counts.get(o)]
    parts += [f"{n} {o}" for o, n in counts.items() if o not in OUTCOMES and n]
    return ", ".join(parts) or "no hosts"


def guarded(method: F) -> F:
    """Run a callback method; on any error show a warning once and carry on (never fail the run)."""

    @functools.wraps(method)
    def wrapper(self: CallbackModule, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # a report must never break a rollout
            self.warn_once(f"{method.__name__}: {type(exc).__name__}: {exc}")
            return None

    return wrapper  # type: ignore[return-value]


# --- what the callback tracks ----------------------------------------------------------------


@dataclass
class BatchTrack:
    play: str
    index: int
    hosts: list[str]
    started_mono: float
    started_at: datetime
    finished_mono: float | None = None
    finished_at: datetime | None = None
    announced: bool = False  # its start line was shown
    tasks: int = 0  # tasks started in it before that

    @property
    def duration(self) -> float | None:
        return None if self.finished_mono is None else self.finished_mono - self.started_mono


@dataclass
class PlayTrack:
    name: str
    serial: list[Any]
    hosts: list[str]  # every host of the play, in every batch (ansible_play_hosts_all)
    max_fail_percentage: float | None
    any_errors_fatal: bool
    concurrency: int
    planned: list[int] | None = None  # batch sizes, as the play published them
    batches: list[BatchTrack] = field(default_factory=list)

    @property
    def total(self) -> str:
        return str(len(self.planned)) if self.planned is not None else "?"

    @property
    def ran(self) -> set[str]:
        return {name for batch in self.batches for name in batch.hosts}

    @property
    def never_ran(self) -> list[str]:
        ran = self.ran
        return [name for name in self.hosts if name not in ran]

    @property
    def stopped_early(self) -> bool:
        """The executor runs every host of a play in some batch unless it stops the play."""
        return bool(self.batches) and bool(self.never_ran)

    def plan_problem(self, sizes: list[int]) -> str:
        """Why the published plan `sizes` cannot be this play's ('' when it can)."""
        if sum(sizes) != len(self.hosts):
            return f"it splits {sum(sizes)} hosts, the play has {len(self.hosts)}"
        ran = [len(batch.hosts) for batch in self.batches]
        if sizes[: len(ran)] != ran:
            return f"it starts {sizes[: len(ran)]}, the play ran batches of {ran}"
        return ""


@dataclass
class HostTrack:
    name: str
    play: str
    batch: int
    first_start: datetime | None = None
    last_event: datetime | None = None
    failure: tuple[str, str] | None = None
    unreachable: tuple[str, str] | None = None


@dataclass
class RunState:
    playbook: str | None = None
    check_mode: bool = False
    started_mono: float | None = None
    started_at: datetime | None = None
    plays: list[PlayTrack] = field(default_factory=list)
    hosts: dict[str, HostTrack] = field(default_factory=dict)
    published: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_data: dict[str, Any] = field(default_factory=dict)
    # Failures in plays without a report, for hosts that reach a report play already failed.
    earlier: dict[str, tuple[str, str, str]] = field(default_factory=dict)


def merge_published(into: dict[str, dict[str, Any]], data: Any) -> None:
    """Fold a `voice_rollout` mapping (host -> record) into what is known, later values winning."""
    if not isinstance(data, Mapping):
        return
    for host, record in data.items():
        if isinstance(record, Mapping):
            into.setdefault(str.__str__(str(host)), {}).update(plain(record))


def published_plan(data: Any) -> list[int]:
    """The batch sizes of a `voice_rollout_plan` mapping; ValueError saying what is wrong."""
    sizes = data.get("batches") if isinstance(data, Mapping) else None
    if not isinstance(sizes, list | tuple) or not all(
        isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in sizes
    ):
        raise ValueError(f"{PLAN_STATS_KEY} must hold batches, a list of sizes > 0: got {plain(data)!r}")
    return [int(size) for size in sizes]


def forget_rescued(state: RunState, stats: Any) -> None:
    """Drop the failures a rescue section handled: their host ended the run with no failure counted.

    While the play runs no public event says whether a failure goes to a rescue section (only the
    task's parent blocks, private attributes, would); the final stats do, per host. So the report
    and the last batch's line are exact; the line of an earlier batch counts a rescued failure as
    failed when the play published no outcome for that host (the rollout plays always publish one).
    """
    for name, track in state.hosts.items():
        if track.failure and not stats.summarize(name).get("failures"):
            track.failure = None
    for name, failure in list(state.earlier.items()):
        if failure[0] == "failed" and not stats.summarize(name).get("failures"):
            del state.earlier[name]


def host_outcome(state: RunState, name: str, *, final: bool = False) -> dict[str, Any]:
    """One host's record: what the play published, else what the callback saw."""
    track = state.hosts.get(name)
    published = state.published.get(name, {})
    record: dict[str, Any] = {
        "outcome": "unreported",
        "version": published.get("version"),
        "release": published.get("release"),
        "error": "",
        "step": "",
        "batch": track.batch if track else published.get("batch"),
        "play": track.play if track else None,
        "started_at": published.get("started_at") or iso(track.first_start if track else None),
        "finished_at": published.get("finished_at") or iso(track.last_event if track else None),
        "source": "play",
    }
    outcome = str(published.get("outcome") or "").strip()
    if outcome:
        record.update(outcome=outcome, error=published.get("error") or "", step=published.get("step") or "")
    elif track and track.unreachable:
        record.update(outcome="unreachable", step=track.unreachable[0], error=track.unreachable[1])
        record["source"] = "callback"
    elif track and track.failure:
        record.update(outcome="failed", step=track.failure[0], error=track.failure[1])
        record["source"] = "callback"
    elif track and track.first_start is None and name in state.earlier:
        kind, task, message = state.earlier[name]
        record.update(outcome=kind, step=task, error=f"in an earlier play: {message}")
        record["source"] = "callback"
    else:
        record["source"] = "callback"
        if final:
            record["error"] = "the play published no outcome for this host"
    start, end = parse_iso(record["started_at"]), parse_iso(record["finished_at"])
    record["duration_seconds"] = round((end - start).total_seconds(), 3) if start and end else None
    return plain(record)


def batch_outcomes(state: RunState, batch: BatchTrack) -> Counter[str]:
    return Counter(host_outcome(state, name)["outcome"] for name in batch.hosts)


def stop_reason(play: PlayTrack, last: BatchTrack, outcomes: Mapping[str, int]) -> str:
    """Why the executor ran no further batch after `last` (inferred from what happened in it)."""
    failed = sum(n for o, n in outcomes.items() if o in FAILED_OUTCOMES)
    size = len(last.hosts)
    where = f"batch {last.index}" + (f" of {play.total}" if play.planned is not None else "")
    if size and failed == size:
        reason = f"every host in {where} failed"
    elif play.max_fail_percentage is not None and size and failed * 100 / size > play.max_fail_percentage:
        reason = (
            f"max_fail_percentage {play.max_fail_percentage:g}% exceeded in {where} "
            f"({failed} of {size} hosts failed)"
        )
    elif failed and play.any_errors_fatal:
        reason = f"any_errors_fatal: {failed} of {size} hosts failed in {where}"
    elif failed:
        reason = f"a fatal failure in {where} ({failed} of {size} hosts failed)"
    else:
        reason = f"the play ended in {where} (end_play or an error)"
    if last.index == 1:  # the first of several batches: the rollout stopped after it
        reason = "canary failed: " + reason
    return reason


# --- the report ------------------------------------------------------------------------------


def published_view(
    state: RunState, custom: Mapping[str, Any]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Host records and run data: what the callback caught in task results, then the final stats."""
    published = {host: dict(record) for host, record in state.published.items()}
    run = dict(state.run_data)
    run_custom = custom.get("_run", {})
    if isinstance(run_custom, Mapping):
        merge_published(published, run_custom.get(STATS_KEY))
        if isinstance(run_custom.get(RUN_STATS_KEY), Mapping):
            run.update(plain(run_custom[RUN_STATS_KEY]))
    for host, values in custom.items():  # per_host: true is tolerated
        data = values.get(STATS_KEY) if host != "_run" and isinstance(values, Mapping) else None
        if isinstance(data, Mapping):
            merge_published(published, {host: data} if "outcome" in data else data)
    return published, run


def batch_entry(
    play: str, index: int, hosts: list[str], track: BatchTrack | None, outcomes: Counter[str]
) -> dict[str, Any]:
    duration = track.duration if track else None
    return {
        "play": play,
        "index": index,
        "ran": track is not None,
        "hosts": list(hosts),
        "size": len(hosts),
        "started_at": iso(track.started_at) if track else None,
        "finished_at": iso(track.finished_at) if track else None,
        "duration_seconds": round(duration, 3) if duration is not None else None,
        "outcomes": dict(outcomes),
    }


def not_run_record(play: str, index: int) -> dict[str, Any]:
    return {
        "outcome": "not_run",
        "version": None,
        "release": None,
        "error": "",
        "step": "",
        "batch": index,
        "play": play,
        "started_at": None,
        "finished_at": None,
        "source": "callback",
        "duration_seconds": None,
    }


def not_run_batches(play: PlayTrack) -> list[tuple[int, list[str]]]:
    """The batches a stopped play never ran: the hosts left, split by the published plan (in the
    order of ansible_play_hosts_all: the executor's split unless the play sets `order`); one group
    when the play published no plan."""
    left, first = play.never_ran, len(play.batches) + 1
    if play.planned is None:
        return [(first, left)] if left else []
    groups = []
    for index, size in enumerate(play.planned[len(play.batches) :], start=first):
        groups.append((index, left[:size]))
        left = left[size:]
    return groups


def play_report(
    state: RunState, play: PlayTrack, hosts: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], list]:
    """The play's summary and its batches (run, then planned but never run); fills `hosts`."""
    batches: list[dict[str, Any]] = []
    for batch in play.batches:
        records = {name: host_outcome(state, name, final=True) for name in batch.hosts}
        if play.stopped_early and batch is play.batches[-1]:
            for record in records.values():
                if record["outcome"] == "unreported":
                    record["error"] = "no outcome published: the play stopped in this batch"
        hosts.update(records)
        outcomes = Counter(record["outcome"] for record in records.values())
        batches.append(batch_entry(play.name, batch.index, batch.hosts, batch, outcomes))
    reason, not_run = None, []
    if play.stopped_early:
        last = play.batches[-1]
        reason = stop_reason(play, last, Counter(hosts[name]["outcome"] for name in last.hosts))
        for index, group in not_run_batches(play):
            not_run.append(index)
            hosts.update({name: not_run_record(play.name, index) for name in group})
            batches.append(batch_entry(play.name, index, group, None, Counter(not_run=len(group))))
    summary = {
        "name": play.name,
        "serial": play.serial,
        "max_fail_percentage": play.max_fail_percentage,
        "any_errors_fatal": play.any_errors_fatal,
        "hosts": len(play.hosts),
        "batches_planned": len(play.planned) if play.planned is not None else None,
        "batches_run": len(play.batches),
        "stopped_early": play.stopped_early,
        "stop_reason": reason,
        "batches_not_run": not_run,
    }
    return summary, batches


def build_report(state: RunState, finished_at: datetime, custom: Mapping[str, Any]) -> dict[str, Any]:
    """The machine-readable report (docs/REPORT.md describes it)."""
    published, run = published_view(state, custom if isinstance(custom, Mapping) else {})
    state = replace(state, published=published)
    hosts: dict[str, dict[str, Any]] = {}
    plays: list[dict[str, Any]] = []
    batches: list[dict[str, Any]] = []
    for play in state.plays:
        summary, play_batches = play_report(state, play, hosts)
        plays.append(summary)
        batches += play_batches
    # Hosts published about but never in a report batch (e.g. left out by a selection play).
    for name in published:
        if name not in hosts:
            hosts[name] = host_outcome(state, name, final=True)
    totals = {"hosts": len(hosts), **dict.fromkeys(OUTCOMES, 0)}
    for record in hosts.values():
        totals[record["outcome"]] = totals.get(record["outcome"], 0) + 1
    stopped = [play for play in plays if play["stopped_early"]]
    started_at = state.started_at or finished_at
    return plain(
        {
            "schema": SCHEMA,
            "generated_at": iso(finished_at),
            "ansible_version": ansible_version,
            "playbook": state.playbook,
            "check_mode": state.check_mode,
            "run": run,
            "started_at": iso(started_at),
            "finished_at": iso(finished_at),
            "duration_seconds": round((finished_at - started_at).total_seconds(), 3),
            "plays": plays,
            "batches": batches,
            "hosts": hosts,
            "totals": totals,
            "stopped_early": bool(stopped),
            "stop_reason": "; ".join(play["stop_reason"] for play in stopped) or None,
            "batches_not_run": [index for play in stopped for index in play["batches_not_run"]],
        }
    )


def write_report(report: Mapping[str, Any], directory: Path, prefix: str, html: bool) -> list[Path]:
    """`<prefix>-<UTC stamp>.json` (+ `.html`) never overwriting an earlier run's, then latest.*."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = (parse_iso(report["generated_at"]) or utc_now()).strftime("%Y%m%dT%H%M%SZ")
    document = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    for attempt in range(1, 1000):
        base = f"{prefix}-{stamp}" + (f"-{attempt}" if attempt > 1 else "")
        json_path = directory / f"{base}.json"
        try:
            with json_path.open("x", encoding="utf-8") as handle:
                handle.write(document)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - a thousand reports in one second
        raise FileExistsError(f"no free report name for {prefix}-{stamp} in {directory}")
    written = [json_path]
    write_atomic(str(directory / "latest.json"), document)
    if html:
        page = render_html(report)
        html_path = json_path.with_suffix(".html")
        html_path.write_text(page, encoding="utf-8")
        write_atomic(str(directory / "latest.html"), page)
        written.append(html_path)
    return written


# --- the callback ----------------------------------------------------------------------------


class CallbackModule(CallbackBase):
    """Progress lines per serial batch and a JSON/HTML report, for plays with `rollout_report: true`."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "rollout_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display: Any = None, options: Any = None) -> None:
        super().__init__(display=display, options=options)
        self._state = RunState()
        self._play: PlayTrack | None = None
        self._batch: BatchTrack | None = None
        self._members: frozenset[str] = frozenset()  # the open batch's hosts
        self._warned: set[str] = set()
        self._playbooks_started = 0

    # -- output

    def warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self._display.warning(f"rollout_report: {message}")

    def _say(self, message: str, colour_name: str | None = None) -> None:
        self._display.display(f"[rollout] {message}", color=colour_name or C.COLOR_VERBOSE)

    def _progress(self, play: PlayTrack, *, include_current: bool) -> str:
        finished = [b for b in play.batches if b.finished_mono is not None]
        counts: Counter[str] = Counter()
        for batch in finished:
            counts.update(batch_outcomes(self._state, batch))
        done = sum(n for o, n in counts.items() if o in DONE_OUTCOMES)
        failed = sum(n for o, n in counts.items() if o in FAILED_OUTCOMES)
        text = f"done {done}, failed {failed}"
        if counts.get("rolled_back"):
            text += f", rolled back {counts['rolled_back']}"
        elapsed = monotonic() - self._state.started_mono if self._state.started_mono is not None else 0.0
        left = self._estimate(play, finished, include_current)
        return f"{text} | elapsed {format_duration(elapsed)} | est. left {format_duration(left)}"

    @staticmethod
    def _estimate(play: PlayTrack, finished: list[BatchTrack], include_current: bool) -> float | None:
        """Mean time of a host in a batch so far, for the hosts left, `concurrency` at a time."""
        if play.planned is None:
            return None
        first_left = len(play.batches) - (1 if include_current else 0)
        left = play.planned[first_left:]
        if not left:
            return 0.0
        waves_done = sum(math.ceil(len(b.hosts) / play.concurrency) for b in finished if b.hosts)
        if not waves_done:
            return None
        per_wave = sum(b.duration or 0.0 for b in finished) / waves_done
        return per_wave * sum(math.ceil(size / play.concurrency) for size in left)

    # -- plays and batches

    def _wants_report(self, play: Any, variables: Mapping[str, Any]) -> bool:
        value = variables.get(PLAY_FLAG, False)
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            value = Templar(loader=play.get_loader(), variables=variables).template(value)
        try:
            return boolean(value, strict=True)
        except TypeError:
            self.warn_once(f"{PLAY_FLAG} must be a boolean, got {value!r}: no report for {play.get_name()!r}")
            return False

    def _announce(self) -> None:
        """The batch's start line, once: as soon as the play published its plan, or without it."""
        batch, play = self._batch, self._play
        if batch is None or play is None or batch.announced:
            return
        batch.announced = True
        count = len(batch.hosts)
        self._say(
            f"batch {batch.index} of {play.total}: {count} host{'s' if count != 1 else ''} "
            f"({name_list(batch.hosts)}) | " + self._progress(play, include_current=True)
        )

    def _adopt_plan(self, data: Any) -> None:
        """The batch sizes the play published (playbooks/tasks/report_plan.yml), if they fit it."""
        play = self._play
        if play is None or play.planned is not None:
            return
        try:
            sizes = published_plan(data)
        except ValueError as exc:
            self.warn_once(f"play {play.name!r}: {exc}; batch totals unknown")
            return
        problem = play.plan_problem(sizes)
        if problem:
            self.warn_once(f"play {play.name!r}: the published batch plan {sizes} does not fit: {problem}")
            return
        play.planned = sizes
        self._announce()

    def _close_batch(self) -> None:
        batch, play = self._batch, self._play
        if batch is None or play is None:
            return
        self._announce()
        self._batch, self._members = None, frozenset()
        batch.finished_mono, batch.finished_at = monotonic(), utc_now()
        counts = batch_outcomes(self._state, batch)
        failed = [h for h in batch.hosts if host_outcome(self._state, h)["outcome"] in FAILED_OUTCOMES]
        summary = outcome_phrase(counts) + (f" ({name_list(failed)})" if failed else "")
        self._say(
            f"batch {batch.index} of {play.total} finished in {format_duration(batch.duration)}: {summary} | "
            + self._progress(play, include_current=False),
            C.COLOR_ERROR if failed else C.COLOR_VERBOSE,
        )

    def _finish_play(self) -> None:
        self._close_batch()
        play, self._play = self._play, None
        if play is None or not play.stopped_early:
            return
        last = play.batches[-1]
        reason = stop_reason(play, last, batch_outcomes(self._state, last))
        count = len(play.never_ran)
        hosts = f"{count} host{'s' if count != 1 else ''}"
        if play.planned is None:
            never = f"{hosts} never ran"
        else:
            first, final = len(play.batches) + 1, len(play.planned)
            which = f"batch {first}" if first == final else f"batches {first}-{final}"
            never = f"{which} never ran ({hosts})"
        self._say(f"STOPPED after batch {last.index} of {play.total}: {reason}; {never}", C.COLOR_ERROR)

    def _open_play(self, play: Any, hosts: list[str]) -> PlayTrack:
        forks = int(context.CLIARGS.get("forks") or C.DEFAULT_FORKS)
        throttle = int(play.throttle or 0)
        track = PlayTrack(
            name=str(play.get_name()),
            serial=plain(play.serial or []),
            hosts=hosts,
            max_fail_percentage=play.max_fail_percentage,
            any_errors_fatal=bool(play.any_errors_fatal),
            concurrency=max(1, min(forks, throttle) if throttle > 0 else forks),
        )
        self._state.plays.append(track)
        return track

    def _open_batch(self, play: PlayTrack, hosts: list[str]) -> None:
        if self._state.started_mono is None:
            self._state.started_mono, self._state.started_at = monotonic(), utc_now()
        batch = BatchTrack(
            play=play.name,
            index=len(play.batches) + 1,
            hosts=hosts,
            started_mono=monotonic(),
            started_at=utc_now(),
        )
        play.batches.append(batch)
        self._batch, self._members = batch, frozenset(hosts)
        for name in hosts:
            self._state.hosts[name] = HostTrack(name=name, play=play.name, batch=batch.index)
        if play.planned is not None:
            problem = play.plan_problem(play.planned)
            if problem:
                self.warn_once(f"play {play.name!r}: the batch plan {play.planned} no longer fits: {problem}")
                play.planned = None
            self._announce()  # a later batch: the plan came with the first one

    def _continues(self, name: str, hosts: list[str], batch: list[str]) -> bool:
        """Is this play start the next serial batch of the play being tracked? Each batch starts a
        copy of the play: the same name and hosts, and a batch of hosts that have not run yet."""
        current = self._play
        return (
            current is not None
            and name == current.name
            and hosts == current.hosts
            and bool(batch)
            and not current.ran.intersection(batch)
        )

    @guarded
    def v2_playbook_on_start(self, playbook: Any) -> None:
        # The playbooks as given on the command line, in the order the executor starts them.
        given = list(context.CLIARGS.get("args") or ())
        index, self._playbooks_started = self._playbooks_started, self._playbooks_started + 1
        self._state = RunState(
            playbook=str(given[index]) if index < len(given) else None,
            check_mode=bool(context.CLIARGS.get("check")),
        )
        self._play, self._batch, self._members = None, None, frozenset()

    @guarded
    def v2_playbook_on_play_start(self, play: Any) -> None:
        # The play's hosts (--limit applied) and this batch's, as the play's tasks see them.
        variables = play.get_variable_manager().get_vars(play=play)
        hosts = [str.__str__(str(name)) for name in variables.get("ansible_play_hosts_all", ())]
        batch = [str.__str__(str(name)) for name in variables.get("ansible_play_batch", ())]
        name = str(play.get_name())
        if self._continues(name, hosts, batch):
            self._close_batch()
        else:
            self._finish_play()
            if not self._wants_report(play, variables):
                return
            self._play = self._open_play(play, hosts)
            if not hosts:
                self._say(f"{printable(name)}: no hosts matched, nothing to roll out")
                return
        if self._play is not None:
            self._open_batch(self._play, batch)

    @guarded
    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        batch = self._batch
        if batch is None or batch.announced or task.action == "gather_facts":  # facts come first
            return
        batch.tasks += 1
        if batch.tasks > 1:  # the plays publish their plan with their first task: none is coming
            self._announce()

    # -- task results

    def _track(self, host_name: str) -> HostTrack | None:
        """The host's record if it belongs to the batch that is running."""
        return self._state.hosts.get(host_name) if host_name in self._members else None

    def _touch(self, result: Any) -> HostTrack | None:
        track = self._track(result.host.get_name())
        if track is not None:
            track.last_event = utc_now()
        return track

    @guarded
    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        track = self._track(host.get_name())
        if track is not None and track.first_start is None:
            track.first_start = utc_now()

    @guarded
    def v2_runner_on_ok(self, result: Any) -> None:
        self._touch(result)
        stats = result.result.get("ansible_stats")
        if isinstance(stats, Mapping) and isinstance(stats.get("data"), Mapping):
            data = stats["data"]
            mine = data.get(STATS_KEY)
            if stats.get("per_host") and isinstance(mine, Mapping) and "outcome" in mine:
                mine = {result.host.get_name(): mine}
            merge_published(self._state.published, mine)
            if isinstance(data.get(RUN_STATS_KEY), Mapping):
                self._state.run_data.update(plain(data[RUN_STATS_KEY]))
            if PLAN_STATS_KEY in data:
                self._adopt_plan(data[PLAN_STATS_KEY])

    @guarded
    def v2_runner_on_skipped(self, result: Any) -> None:
        self._touch(result)

    def _record_failure(self, result: Any, kind: str) -> None:
        """Remember the task and message of a failure (`failed`) or a lost connection (`unreachable`)."""
        failure = (one_line(result.task.get_name(), 120), result_message(result.result))
        track = self._track(result.host.get_name())
        if track is None:
            self._state.earlier[result.host.get_name()] = (kind, *failure)
        elif kind == "unreachable":
            track.unreachable = failure
        else:
            track.failure = failure

    @guarded
    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._touch(result)
        # A failure a rescue section handles is recorded too (no event tells it apart while the
        # play runs): forget_rescued drops it at the end, from the final stats.
        if not ignore_errors:
            self._record_failure(result, "failed")

    @guarded
    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._touch(result)
        if not getattr(result.task, "ignore_unreachable", False):
            self._record_failure(result, "unreachable")

    # -- the end

    def _report_dir(self) -> Path:
        configured = self.get_option("report_dir")
        if configured:
            return Path(configured).expanduser()
        base = Path(C.CONFIG_FILE).resolve().parent if C.CONFIG_FILE else Path.cwd()
        return base / "reports"

    def _report_prefix(self) -> str:
        prefix = str(self.get_option("report_prefix") or "rollout")
        if not PREFIX_RE.match(prefix):
            self.warn_once(
                f"report_prefix {prefix!r} is not a plain file name part (A-Z a-z 0-9 . _ -); using 'rollout'"
            )
            return "rollout"
        return prefix

    @guarded
    def v2_playbook_on_stats(self, stats: Any) -> None:
        forget_rescued(self._state, stats)  # before the last batch's line, which comes now
        self._finish_play()
        state, self._state = self._state, RunState()
        if not state.plays:
            return
        try:
            report = build_report(state, utc_now(), getattr(stats, "custom", {}) or {})
            totals = report["totals"]
            self._say(
                f"{totals['hosts']} host{'s' if totals['hosts'] != 1 else ''}: "
                f"{outcome_phrase({o: n for o, n in totals.items() if o != 'hosts'})} "
                f"in {format_duration(report['duration_seconds'])}"
                + (" (STOPPED EARLY)" if report["stopped_early"] else ""),
                C.COLOR_ERROR if report["stopped_early"] else C.COLOR_OK,
            )
            html = bool(self.get_option("html"))
            for path in write_report(report, self._report_dir(), self._report_prefix(), html):
                self._say(f"report: {path}", C.COLOR_OK)
        except Exception as exc:  # a report must never break a rollout
            self._display.warning(f"rollout_report: the report was not written: {type(exc).__name__}: {exc}")

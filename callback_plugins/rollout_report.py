"""Rollout progress by batch on the display, and a JSON + HTML report at the end of the run.

This plugin turns Ansible's events into the JSON report; the page is rendered from that JSON by
plugins/module_utils/voice_report.py (the one renderer, also behind tools/report.py).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import re
import tempfile
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
from ansible.playbook.block import Block
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ansible_version
from ansible.template import Templar
from ansible.utils.helpers import pct_to_int
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
    (C(batch k of n), hosts done and failed, elapsed time, an estimate of the time left). The number
    of batches comes from the play's C(serial) and its host count, computed the way the playbook
    executor splits hosts into batches.
  - Each host's outcome comes from the play, published with C(ansible.builtin.set_stats) under the
    key C(voice_rollout) (a mapping of host to a record with C(outcome), C(version), C(release),
    C(error), C(step), C(batch), C(started_at), C(finished_at)). A host that failed or became
    unreachable before publishing anything is reported from the task results the callback saw
    (task name and message; results hidden with C(no_log) stay hidden). Run-level data comes from
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
PLAY_FLAG = "rollout_report"
PREFIX_RE = re.compile(r"^[A-Za-z0-9._-]+$")

F = TypeVar("F", bound=Callable[..., Any])


# --- small pure helpers ----------------------------------------------------------------------


def serial_batch_sizes(serial: Any, host_count: int) -> list[int]:
    """Sizes of the serial batches, as PlaybookExecutor._get_serialized_batches makes them.

    ansible-core 2.19: `serial` is a list (a scalar counts as a one-item list; empty means all hosts);
    each item is an int or a "N%" string of the play's host count (`pct_to_int`, at least 1); an item
    <= 0 takes every remaining host; after the last item, the last one repeats.
    """
    if serial is None:
        items: list[Any] = []
    elif isinstance(serial, list | tuple):
        items = list(serial)
    else:
        items = [serial]
    if not items:
        items = [-1]
    sizes: list[int] = []
    remaining = host_count
    current = 0
    while remaining > 0:
        try:
            size = pct_to_int(items[current], host_count)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"serial value {items[current]!r} is neither an integer nor 'N%'") from exc
        if size <= 0:
            sizes.append(remaining)
            break
        taken = min(size, remaining)
        sizes.append(taken)
        remaining -= taken
        current = min(current + 1, len(items) - 1)
    return sizes


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


def is_rescued(task: Any) -> bool:
    """Whether a failure of `task` goes to a rescue section (the strategy then does not fail the host)."""
    child = task
    parent = getattr(task, "_parent", None)
    for _ in range(100):  # nesting is shallow; never loop forever on a cycle
        if parent is None:
            return False
        if isinstance(parent, Block) and parent.rescue:
            uuid = getattr(child, "_uuid", None)
            if any(getattr(item, "_uuid", None) == uuid for item in parent.block or ()):
                return True
        child, parent = parent, getattr(parent, "_parent", None)
    return False


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

    @property
    def duration(self) -> float | None:
        return None if self.finished_mono is None else self.finished_mono - self.started_mono


@dataclass
class PlayTrack:
    uuid: str
    name: str
    serial: list[Any]
    hosts: list[str]
    planned: list[int] | None
    max_fail_percentage: float | None
    any_errors_fatal: bool
    concurrency: int
    batches: list[BatchTrack] = field(default_factory=list)

    @property
    def total(self) -> str:
        return str(len(self.planned)) if self.planned is not None else "?"

    @property
    def stopped_early(self) -> bool:
        return self.planned is not None and len(self.batches) < len(self.planned)


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
    where = f"batch {last.index} of {play.total}"
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
    if last.index == 1 and play.planned and len(play.planned) > 1:
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
    if play.stopped_early and play.planned is not None:
        last = play.batches[-1]
        reason = stop_reason(play, last, Counter(hosts[name]["outcome"] for name in last.hosts))
        # The hosts left, split the way the executor would have (the exact split unless `order: shuffle`).
        ran = {name for batch in play.batches for name in batch.hosts}
        left = [name for name in play.hosts if name not in ran]
        for index, size in enumerate(play.planned[len(play.batches) :], start=len(play.batches) + 1):
            group, left = left[:size], left[size:]
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


def write_atomically(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        handle.write(text)
        temporary = Path(handle.name)
    try:
        temporary.chmod(0o644)
        temporary.replace(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


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
    write_atomically(directory / "latest.json", document)
    if html:
        page = render_html(report)
        html_path = json_path.with_suffix(".html")
        html_path.write_text(page, encoding="utf-8")
        write_atomically(directory / "latest.html", page)
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

    def _wants_report(self, play: Any) -> bool:
        variable_manager = play.get_variable_manager()
        variables = variable_manager.get_vars(play=play) if variable_manager else dict(play.vars)
        value = variables.get(PLAY_FLAG, False)
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            value = Templar(loader=play.get_loader(), variables=variables).template(value)
        try:
            return boolean(value, strict=True)
        except TypeError:
            self.warn_once(f"{PLAY_FLAG} must be a boolean, got {value!r}: no report for {play.get_name()!r}")
            return False

    def _close_batch(self) -> None:
        batch, play = self._batch, self._play
        if batch is None or play is None:
            return
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
        if play is None or not play.stopped_early or play.planned is None:
            return
        last = play.batches[-1]
        reason = stop_reason(play, last, batch_outcomes(self._state, last))
        left = play.planned[len(play.batches) :]
        first, final = len(play.batches) + 1, len(play.planned)
        which = f"batch {first}" if first == final else f"batches {first}-{final}"
        self._say(
            f"STOPPED after batch {last.index} of {play.total}: {reason}; "
            f"{which} never ran ({sum(left)} host{'s' if sum(left) != 1 else ''})",
            C.COLOR_ERROR,
        )

    def _open_play(self, play: Any) -> PlayTrack:
        inventory = play.get_variable_manager()._inventory  # no public accessor
        every = [h.name for h in inventory.get_hosts(play.hosts, order=play.order, ignore_restrictions=True)]
        try:
            planned: list[int] | None = serial_batch_sizes(play.serial, len(every))
        except ValueError as exc:
            self.warn_once(f"play {play.get_name()!r}: {exc}; batch totals unknown")
            planned = None
        forks = int(context.CLIARGS.get("forks") or C.DEFAULT_FORKS)
        throttle = int(play.throttle or 0)
        track = PlayTrack(
            uuid=play._uuid,  # each batch runs a copy of the play with the same uuid
            name=str(play.get_name()),
            serial=plain(play.serial or []),
            hosts=[str.__str__(h) for h in every],
            planned=planned,
            max_fail_percentage=play.max_fail_percentage,
            any_errors_fatal=bool(play.any_errors_fatal),
            concurrency=max(1, min(forks, throttle) if throttle > 0 else forks),
        )
        self._state.plays.append(track)
        return track

    @guarded
    def v2_playbook_on_start(self, playbook: Any) -> None:
        self._state = RunState(
            playbook=str(getattr(playbook, "_file_name", "") or "") or None,
            check_mode=bool(context.CLIARGS.get("check")),
        )
        self._play, self._batch, self._members = None, None, frozenset()

    @guarded
    def _next_batch_of_current_play(self, play: Any) -> bool:
        """Is this play start the next serial batch of the play being tracked?

        Each batch runs a copy of the play with the same uuid; under
        ansible-runner the copies arrive with new uuids, so the same play
        (name and host list) with batches still to come counts too.
        """
        current = self._play
        if current is None:
            return False
        if current.uuid == play._uuid:
            return True
        inventory = play.get_variable_manager()._inventory  # no public accessor
        every = [
            str.__str__(h.name)
            for h in inventory.get_hosts(play.hosts, order=play.order, ignore_restrictions=True)
        ]
        return (
            str(play.get_name()) == current.name
            and every == current.hosts
            and current.planned is not None
            and len(current.batches) < len(current.planned)
        )

    def v2_playbook_on_play_start(self, play: Any) -> None:
        same_play = self._next_batch_of_current_play(play)
        if same_play:
            self._close_batch()
        else:
            self._finish_play()
            if not self._wants_report(play):
                return
            self._play = self._open_play(play)
            if not self._play.hosts:
                self._say(f"{printable(self._play.name)}: no hosts matched, nothing to roll out")
                return
        play_track = self._play
        if play_track is None:
            return
        # The executor restricted the inventory to this batch's hosts before the play started.
        inventory = play.get_variable_manager()._inventory
        hosts = [str.__str__(h.name) for h in inventory.get_hosts(play.hosts, order=play.order)]
        if self._state.started_mono is None:
            self._state.started_mono, self._state.started_at = monotonic(), utc_now()
        batch = BatchTrack(
            play=play_track.name,
            index=len(play_track.batches) + 1,
            hosts=hosts,
            started_mono=monotonic(),
            started_at=utc_now(),
        )
        play_track.batches.append(batch)
        self._batch, self._members = batch, frozenset(hosts)
        for name in hosts:
            self._state.hosts[name] = HostTrack(name=name, play=play_track.name, batch=batch.index)
        self._say(
            f"batch {batch.index} of {play_track.total}: {len(hosts)} host{'s' if len(hosts) != 1 else ''} "
            f"({name_list(hosts)}) | " + self._progress(play_track, include_current=True)
        )

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
        if not ignore_errors and not is_rescued(result.task):
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

"""Record where a play's time goes: one JSON file per run (benchmarks only).

Enabled by the benchmarks with ANSIBLE_CALLBACKS_ENABLED=bench_timing and the
output path in VF_BENCH_TIMING. For every task (included ones too) it writes its
name, the file and line it comes from, its role, when it started and when its
last host answered, each host's status with the seconds since the task
started, and the controller's CPU when it started (this process and the
workers it reaped), so the CPU between two tasks' starts is the first one's.
It prints nothing: the run's own output stays as it is.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_timing
type: aggregate
short_description: per-task timing of a play, as JSON, for the benchmarks
description:
  - Writes the start, end and per-host completion of every task to the file named by VF_BENCH_TIMING.
requirements:
  - enabled in callbacks_enabled (the benchmarks set ANSIBLE_CALLBACKS_ENABLED)
options:
  output:
    description: file the JSON is written to
    env:
      - name: VF_BENCH_TIMING
"""


def cpu_seconds() -> float:
    """The controller's CPU so far: this process and the children it reaped (workers, ssh)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return round(total, 3)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._began = time.monotonic()
        self._tasks: list[dict[str, Any]] = []
        self._by_uuid: dict[str, dict[str, Any]] = {}

    def _start(self, task: Any, kind: str) -> None:
        role = getattr(task, "_role", None)
        record = {
            "name": task.get_name(),
            "path": task.get_path() or "",
            "role": role.get_name() if role else "",
            "kind": kind,
            "start": round(time.monotonic() - self._began, 4),
            "cpu": cpu_seconds(),
            "end": None,
            "hosts": {},
        }
        self._tasks.append(record)
        self._by_uuid[task._uuid] = record

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._start(task, "task")

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._start(task, "handler")

    def _result(self, result: Any, status: str) -> None:
        record = self._by_uuid.get(result._task._uuid)
        if record is None:
            return
        now = round(time.monotonic() - self._began, 4)
        record["end"] = now
        host = result._host.get_name()
        if status == "ok" and result._result.get("changed"):
            status = "changed"
        record["hosts"][host] = {"status": status, "at": round(now - record["start"], 4)}

    def v2_runner_on_ok(self, result: Any) -> None:
        self._result(result, "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._result(result, "failed")

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._result(result, "unreachable")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        output = self.get_option("output")
        if not output:
            return
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        document = {
            "total": round(time.monotonic() - self._began, 4),
            "cpu": cpu_seconds(),
            "tasks": self._tasks,
            "stats": summary,
        }
        Path(output).write_text(json.dumps(document) + "\n")
        os.chmod(output, 0o644)

"""Shared parts of the fleet benchmarks: a fleet of their own, timed plays, where the time goes.

The benchmarks run on a simulated fleet (tools/fleet.py) with their own prefix,
ports and state directory (vf-bench, 127.0.0.1:2501.., .cache/fleet-bench), so a
fleet started by hand or by the tests is never touched. Every play runs with the
repository's ansible.cfg, plus:

- a fact cache, a wheelhouse cache and a report directory of their own under
  .cache/bench/ (a benchmark never warms or reads what other runs left);
- the `bench_timing` callback (benchmarks/callback_plugins), which records the
  start and end of every task, so that a run says where its time went.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import urllib.parse
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BENCH_DIR = ROOT / ".cache" / "bench"
RESULTS_DIR = ROOT / "benchmarks" / "results"
PREFIX = "vf-bench"
PORT_BASE = 2501
STATE_DIR = ROOT / ".cache" / "fleet-bench"

# The registry stack's own reader of the env file it writes.
sys.path.insert(0, str(ROOT / "tools"))
import simfleet.model  # noqa: E402
from stack import read_env_file, stack_dir  # noqa: E402


class BenchError(Exception):
    """A benchmark step that failed; the message says which and where its log is."""


def log(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def stack_env() -> dict[str, str]:
    """The registry's settings from <stack dir>/env (make stack-up writes it), with the directory.

    VF_STACK_DIR goes with them, so that tools/fleet.py relays the bench fleet to
    that stack's gateway (a stack of the benchmark's own keeps its access log free
    of other runs' requests: see Gateway).
    """
    path = stack_dir() / "env"
    if not path.is_file():
        raise BenchError(f"{path} does not exist: start the registry first (make stack-up)")
    env = read_env_file(path)
    # tools/fleet.py runs `tools/stack.py up`, which takes the ports from VF_STACK_PORT: the
    # gateway's port of this stack, or it would look at the default stack's ports.
    port = urllib.parse.urlsplit(env.get("SUPABASE_URL", "")).port
    return {**env, "VF_STACK_DIR": str(stack_dir()), **({"VF_STACK_PORT": str(port)} if port else {})}


def load_module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def summary(samples: list[float]) -> dict[str, Any]:
    return {
        "median_s": round(statistics.median(samples), 2),
        "min_s": round(min(samples), 2),
        "max_s": round(max(samples), 2),
        "runs": len(samples),
        "samples_s": [round(s, 2) for s in samples],
    }


def run_summary(runs: list[PlayRun]) -> dict[str, Any]:
    """Wall time of several runs of one play, with the controller's CPU time and the load they met."""
    return {
        **summary([r.seconds for r in runs]),
        "controller_cpu_median_s": round(statistics.median(r.controller_cpu_s for r in runs), 2),
        "load_median": round(statistics.median(r.load for r in runs), 2),
    }


# --- the fleet ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Fleet(simfleet.model.Fleet):
    """The benchmark's own simulated fleet (its names and files are the fleet tool's)."""

    prefix: str = PREFIX
    port_base: int = PORT_BASE
    state_dir: Path = STATE_DIR
    stack: dict[str, str] = dataclasses.field(default_factory=dict)

    def names(self, count: int) -> list[str]:
        return [f"{self.prefix}-{i:02d}" for i in range(1, count + 1)]

    def _cli(self, command: str, *args: str) -> str:
        cmd = [sys.executable, str(ROOT / "tools" / "fleet.py"), command, f"--prefix={self.prefix}"]
        cmd += [f"--port-base={self.port_base}", f"--state-dir={self.state_dir}", *args]
        env = {**os.environ, **self.stack}
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT, env=env)
        if proc.returncode != 0:
            raise BenchError(f"fleet {command} {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def up(self, count: int) -> float:
        began = time.perf_counter()
        self._cli("up", f"--count={count}")
        return time.perf_counter() - began

    def down(self) -> None:
        self._cli("down")

    def exec(self, name: str, script: str) -> str:
        """Run a bash script as root in a device (docker exec); its stdout."""
        proc = subprocess.run(
            ["docker", "exec", name, "bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise BenchError(f"{name}: {script!r} failed: {proc.stderr.strip()}")
        return proc.stdout

    def copy_in(self, name: str, source: Path, dest: str) -> None:
        subprocess.run(["docker", "cp", str(source), f"{name}:{dest}"], check=True, capture_output=True)


# --- plays -------------------------------------------------------------------------------


@dataclasses.dataclass
class PlayRun:
    label: str
    seconds: float
    timing: dict[str, Any]
    log: Path
    # CPU seconds of ansible-playbook and its workers on the controller (user + system),
    # and the machine's 1-minute load average when the run started.
    controller_cpu_s: float = 0.0
    load: float = 0.0
    # Requests the registry's gateway logged during the run (Gateway.count).
    registry: dict[str, Any] = dataclasses.field(default_factory=dict)


class Player:
    """Runs ansible-playbook on the fleet with the repository's settings and times it."""

    def __init__(self, fleet: Fleet, work: Path) -> None:
        self.fleet = fleet
        self.work = work
        self.facts = work / "facts"
        self.wheelhouse = work / "wheelhouse"
        self.reports = work / "reports"
        self.logs = work / "logs"
        for path in (self.facts, self.reports, self.logs):
            path.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self.gateway = Gateway(Path(fleet.stack.get("VF_STACK_DIR", stack_dir())))

    def environ(self, overrides: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "SUPABASE_"))}
        env.update(
            SUPABASE_URL=self.fleet.stack["SUPABASE_URL"],
            SUPABASE_SERVICE_KEY=self.fleet.stack["SUPABASE_SERVICE_KEY"],
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            ANSIBLE_HOME=str(ROOT / ".ansible"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_CACHE_PLUGIN_CONNECTION=str(self.facts),
            ANSIBLE_CALLBACK_PLUGINS=os.pathsep.join(
                [str(ROOT / "callback_plugins"), str(ROOT / "benchmarks" / "callback_plugins")]
            ),
            ANSIBLE_CALLBACKS_ENABLED="rollout_report,bench_timing",
            ROLLOUT_REPORT_DIR=str(self.reports),
        )
        env.update(overrides or {})
        return env

    def play(
        self,
        label: str,
        playbook: Path,
        *args: str,
        limit: str | None = None,
        env: dict[str, str] | None = None,
    ) -> PlayRun:
        """One timed ansible-playbook run; a failed run is an error naming its log."""
        self.count += 1
        stem = f"{self.count:03d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}"
        timing_file = self.logs / f"{stem}.timing.json"
        log_file = self.logs / f"{stem}.log"
        cmd = [str(BIN / "ansible-playbook"), "-i", str(self.fleet.inventory), str(playbook)]
        cmd += ["--limit", limit or self.fleet.group, *args]
        environ = self.environ({"VF_BENCH_TIMING": str(timing_file), **(env or {})})
        log(f"{label}: {' '.join(shlex.quote(c) for c in cmd[3:])}")
        load = os.getloadavg()[0]
        mark = self.gateway.mark()
        with log_file.open("w") as out:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            began = time.perf_counter()
            proc = subprocess.run(
                cmd, cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT, check=False
            )
            seconds = time.perf_counter() - began
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        registry = self.gateway.count(mark)
        if proc.returncode != 0:
            lines = log_file.read_text().splitlines()
            first = next((line for line in lines if line.startswith("[ERROR]")), "")
            tail = "\n".join(lines[-25:])
            raise BenchError(f"{label} failed (exit {proc.returncode}): {first}; log {log_file}:\n{tail}")
        timing = json.loads(timing_file.read_text()) if timing_file.exists() else {}
        log(
            f"{label}: {seconds:.1f} s (controller CPU {cpu:.1f} s, load {load:.1f}, "
            f"registry requests {registry['requests']})"
        )
        return PlayRun(label, seconds, timing, log_file, round(cpu, 2), round(load, 2), registry)


# --- where the time goes -------------------------------------------------------------------


def task_group(task: dict[str, Any]) -> str:
    """A task's place: role/tasks file, or the playbook's tasks file."""
    path = task.get("path", "")
    file = Path(path.split(":")[0]).name if path else "?"
    if task.get("role"):
        return f"{task['role']}/{file}"
    return file


def breakdown(timing: dict[str, Any], top: int = 12) -> dict[str, Any]:
    """Seconds per group of tasks and the slowest tasks of one run (the callback's JSON)."""
    groups: dict[str, float] = defaultdict(float)
    tasks: list[tuple[float, str, str]] = []
    counted = 0.0
    for task in timing.get("tasks", []):
        if task.get("end") is None:
            continue
        seconds = task["end"] - task["start"]
        counted += seconds
        groups[task_group(task)] += seconds
        tasks.append((seconds, task["name"], task_group(task)))
    tasks.sort(reverse=True)
    total = timing.get("total", 0.0)
    return {
        "callback_total_s": round(total, 2),
        "tasks_total_s": round(counted, 2),
        "tasks_run": len(tasks),
        "groups_s": dict(sorted(((k, round(v, 2)) for k, v in groups.items()), key=lambda kv: -kv[1])),
        "slowest_tasks": [{"task": name, "where": where, "s": round(s, 2)} for s, name, where in tasks[:top]],
    }


# Where a rollout provisions the host and builds or switches the release: the
# provisioning roles voice_update runs where the stamp differs, the release
# role, and voice_update's two task files that include them. Everything else
# (voice_update's plan, record and publish, the play's resolve_release.yml) is
# the rollout's own work.
PROVISION_AND_RELEASE_ROLES = {
    "voice_legacy",
    "voice_packages",
    "voice_hardware",
    "voice_service",
    "voice_release",
}
PROVISION_AND_RELEASE_FILES = {"voice_update/provision.yml", "voice_update/release.yml"}


def provision_share(timing: dict[str, Any]) -> dict[str, float]:
    """Seconds of a run spent in provisioning and release tasks, and in everything else."""
    inside = outside = 0.0
    for task in timing.get("tasks", []):
        if task.get("end") is None:
            continue
        seconds = task["end"] - task["start"]
        if task.get("role") in PROVISION_AND_RELEASE_ROLES or task_group(task) in PROVISION_AND_RELEASE_FILES:
            inside += seconds
        else:
            outside += seconds
    return {"provision_and_release_s": round(inside, 2), "other_tasks_s": round(outside, 2)}


# The plan's one read of the device: voice_update runs it once per batch.
PLAN_TASK = "Read the device once"


def batches_run(timing: dict[str, Any]) -> int:
    """How many batches (serial) a rollout ran: the plan's device read starts once per batch."""
    # The callback names a role's task "<role> : <name>".
    return sum(1 for task in timing.get("tasks", []) if PLAN_TASK in task.get("name", ""))


def tasks_per_host(timing: dict[str, Any], hosts: list[str] | None = None) -> dict[str, Any]:
    """Tasks each device ran (a result for that host in the callback's JSON).

    `with_skipped` counts every task that reported a result for the host,
    skipped ones included; `executed` leaves the skipped ones out. A run_once
    task counts for the one host it ran on; a task whose hosts all skip it
    counts as skipped for each. Medians and the range over the hosts.
    """
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"with_skipped": 0, "executed": 0})
    for task in timing.get("tasks", []):
        for host, result in task.get("hosts", {}).items():
            counts[host]["with_skipped"] += 1
            if result.get("status") != "skipped":
                counts[host]["executed"] += 1
    names = [h for h in (hosts or sorted(counts)) if h in counts]
    if not names:
        return {}
    out: dict[str, Any] = {"hosts": len(names)}
    for key in ("with_skipped", "executed"):
        values = [counts[h][key] for h in names]
        out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return out


class Gateway:
    """Requests to the registry, counted in the gateway's access log (<stack dir>/log/nginx-access.log).

    mark() before a run, then count(mark) after it: the requests logged in
    between. Everything that talks to this stack is counted, so the benchmarks
    run on a stack of their own (VF_STACK_DIR) when other runs share .stack.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / "log" / "nginx-access.log"

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def count(self, mark: int) -> dict[str, Any]:
        if not self.path.exists():
            return {"requests": 0, "record_progress": 0, "by_request": {}}
        with self.path.open("rb") as log_file:
            log_file.seek(mark)
            lines = log_file.read().decode(errors="replace").splitlines()
        by_request: dict[str, int] = defaultdict(int)
        for line in lines:
            match = re.search(r'"([A-Z]+) (/[^ ?"]*)', line)
            by_request[" ".join(match.groups()) if match else "?"] += 1
        return {
            "requests": len(lines),
            "record_progress": sum(1 for line in lines if "fleet_record_progress" in line),
            "by_request": dict(sorted(by_request.items(), key=lambda kv: -kv[1])),
        }


def merge_breakdowns(runs: list[PlayRun]) -> dict[str, Any]:
    """The median per group over several runs of one play."""
    per_group: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        for group, seconds in breakdown(run.timing)["groups_s"].items():
            per_group[group].append(seconds)
    medians = {g: round(statistics.median(v + [0.0] * (len(runs) - len(v))), 2) for g, v in per_group.items()}
    first = breakdown(runs[0].timing)
    return {
        "groups_median_s": dict(sorted(medians.items(), key=lambda kv: -kv[1])),
        "slowest_tasks_first_run": first["slowest_tasks"],
        "tasks_run": first["tasks_run"],
    }


# --- the release being rolled out ------------------------------------------------------------


LOCK_BLOCK = r"(?m)^{name}==\S+(?: \\\n    --hash=sha256:[0-9a-f]{{64}})+\n(?:    # via .*\n)?"


def make_upgrade_source(dest: Path, version: str, pin: str, uv: Path) -> Path:
    """voice_client as release `version`: a code change and exactly one dependency pin changed.

    The copy is tools/client_variant.py's plain release; its requirements.lock is the
    current lock with the block of `pin`'s package replaced by `pin` and its hashes
    (as `uv pip compile --generate-hashes` gives them), so that nothing else moves.
    """
    variant = load_module(ROOT / "tools" / "client_variant.py", "client_variant")
    variant.make_variant("plain", version, dest, ROOT / "voice_client")
    init = dest / "src" / "voice_client" / "__init__.py"
    marker = f'BENCHMARK_RELEASE = "{version}"\n'
    if marker not in init.read_text():
        init.write_text(
            init.read_text()
            + f"\n# A code change of the benchmark's upgrade (benchmarks/fleetbench.py).\n{marker}"
        )
    name = pin.split("==", maxsplit=1)[0]
    proc = subprocess.run(
        [str(uv), "pip", "compile", "--quiet", "--no-header", "--no-annotate", "--generate-hashes", "-"],
        input=pin + "\n",
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "UV_NATIVE_TLS": "1"},
    )
    if proc.returncode != 0:
        raise BenchError(f"cannot lock {pin}: {proc.stderr.strip()}")
    block = proc.stdout.strip() + "\n"
    lock = (ROOT / "voice_client" / "requirements.lock").read_text()
    pattern = LOCK_BLOCK.format(name=re.escape(name))
    new_lock, count = re.subn(pattern, lambda _: block, lock)
    if count != 1:
        raise BenchError(f"voice_client/requirements.lock has no block for {name} to replace")
    if new_lock == lock:
        raise BenchError(f"{pin} is what the lock already pins: choose another version")
    (dest / "requirements.lock").write_text(new_lock)
    return dest


def source_archive(source: Path, dest: Path) -> Path:
    """source as a .tar.gz holding voice_client/ (what the seeds' baseline unpacks)."""
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(source, arcname="voice_client")
    return dest


# --- registry --------------------------------------------------------------------------------


def set_registry_version(stack: dict[str, str], device_names: list[str], version: str) -> None:
    """Put the devices' current_version back (what the rollout reads to mark hosts pending)."""
    import psycopg  # noqa: PLC0415 (only the rollout benchmark needs the database)

    with psycopg.connect(stack["DATABASE_URL"], autocommit=True) as db:
        db.execute(
            "UPDATE public.devices SET current_version = %s WHERE device_name = ANY(%s)",
            (version, device_names),
        )


def restore(directory: Path, saved: Path) -> None:
    """Put directory back as saved (a hard-linked copy; what a run added goes away)."""
    if directory.exists():
        shutil.rmtree(directory)
    shutil.copytree(saved, directory, copy_function=os.link)

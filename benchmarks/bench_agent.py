#!/usr/bin/env python3
"""The pull agent (issue 14, "Speed"): what one device costs the registry and the store.

    .venv/bin/python benchmarks/bench_agent.py            # one device, about 6 minutes
    .venv/bin/python benchmarks/bench_agent.py --runs 5   # more no-op runs

On a fleet of its own (prefix vf-bagent, one device) and a registry stack of its
own (VF_STACK_DIR / VF_STACK_PORT, by default .cache/stack-bench-agent on 56521,
started here), the device is provisioned for pull mode (site.yml with
voice_management=pull, as `make demo` does; the timer off, so only the runs below
happen), then, with the agent's clock inside the device's window:

1. release 1.1.0 is published and the agent installs it: the run's wall time
   (systemctl start to exit: download, verify, build, gate) and the bytes it
   fetched against the whole release's;
2. the agent runs with nothing to do (--runs times): wall time, requests and
   bytes moved (request and answer bodies, as the agent counts them);
3. release 1.2.0, whose client alone changed, is published and installed: bytes
   fetched against the whole release (only the changed files should cross).

"Time from the window opening to the new release running" is the timer's delay
(at most one hour plus voice_agent_randomized_delay_seconds, by configuration:
the figure is that bound) plus the install run measured in 1. Prints a table and
writes benchmarks/results/agent.json. Timings are measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import yaml
from fleetbench import BENCH_DIR, RESULTS_DIR, ROOT, BenchError, Fleet, Player, load_module, log, stack_env

PREFIX = "vf-bagent"
PORT_BASE = 2751
STATE_DIR = ROOT / ".cache" / "fleet-bench-agent"
DEFAULT_STACK_DIR = ROOT / ".cache" / "stack-bench-agent"
DEFAULT_STACK_PORT = "56521"
WORK = BENCH_DIR / "agent"
RESULTS = RESULTS_DIR / "agent.json"
PLATFORM = "cp311-x86_64"
RANDOMIZED_DELAY_VAR = "voice_agent_randomized_delay_seconds"


def sh(*cmd: str, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    proc = subprocess.run(
        cmd, capture_output=True, text=True, check=False, cwd=ROOT, env=env, timeout=timeout
    )
    if proc.returncode != 0:
        raise BenchError(
            f"{' '.join(cmd[:4])}... failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout


class Device:
    """The fleet's one device, driven through docker exec (its agent as systemd starts it)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, *cmd: str) -> str:
        return sh("docker", "exec", self.name, *cmd)

    def agent(self, now: float) -> tuple[float, int, str]:
        """One agent run at the agent's clock `now`: (wall seconds, exit status, its journal)."""
        self.run(
            "systemctl", "set-environment", f"VOICE_AGENT_NOW={datetime.fromtimestamp(now, UTC).isoformat()}"
        )
        cursor = self.run("journalctl", "-n", "0", "--show-cursor", "--no-pager").rsplit("-- cursor: ", 1)[-1]
        began = time.perf_counter()
        subprocess.run(
            ["docker", "exec", self.name, "systemctl", "start", "voice-agent.service"],
            capture_output=True,
            check=False,
            timeout=1800,
        )
        seconds = time.perf_counter() - began
        status = int(self.run("systemctl", "show", "-P", "ExecMainStatus", "voice-agent.service").strip())
        journal = self.run(
            "journalctl",
            "-u",
            "voice-agent.service",
            f"--after-cursor={cursor.strip()}",
            "-o",
            "cat",
            "--no-pager",
        )
        return seconds, status, journal


def number(pattern: str, text: str, what: str) -> list[int]:
    match = re.search(pattern, text)
    if not match:
        raise BenchError(f"the agent's journal does not say {what}:\n{text[-2000:]}")
    return [int(g) for g in match.groups()]


FETCHED = r"fetched (\d+) of (\d+) files, (\d+) of (\d+) bytes"


class Bench:
    """The stack, the one-device fleet, the publisher's key and the device's window."""

    def __init__(self) -> None:
        os.environ.setdefault("VF_STACK_DIR", str(DEFAULT_STACK_DIR))
        os.environ.setdefault("VF_STACK_PORT", DEFAULT_STACK_PORT)
        sh(sys.executable, str(ROOT / "tools" / "stack.py"), "up")
        self.stack = stack_env()
        self.fleet = Fleet(stack=self.stack, prefix=PREFIX, port_base=PORT_BASE, state_dir=STATE_DIR)
        WORK.mkdir(parents=True, exist_ok=True)
        self.player = Player(self.fleet, WORK)
        self.key = WORK / "publisher.key"
        if not self.key.exists():
            sh(sys.executable, str(ROOT / "tools" / "publish.py"), "keygen", "--out", str(self.key))
        self.base_url = f"http://{PREFIX}-relay:8080/store"
        self.device = Device(self.fleet.names(1)[0])

    def provision(self) -> None:
        """A device of its own, fresh: no release and no accepted manifest of an earlier run."""
        self.fleet.down()
        with psycopg.connect(self.stack["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("DELETE FROM public.updates WHERE package_url LIKE %s", (f"{self.base_url}/%",))
        self.fleet.up(1)
        self.player.play(
            "provision for pull mode",
            ROOT / "playbooks" / "site.yml",
            "-e", "voice_management=pull", "-e", f"voice_agent_public_key_file={self.key}.pub",
            "-e", "voice_agent_timer_enabled=false",
        )  # fmt: skip

    def in_window(self) -> tuple[str, float]:
        """The device's zone, and an instant ten minutes into its next (or current) window."""
        rule = load_module(ROOT / "filter_plugins" / "maintenance_window.py", "bench_agent_window")
        zone = fleet_zone(self.fleet, self.stack)
        start = rule.maintenance_window(zone, now=time.time())["start"]
        return zone, datetime.fromisoformat(start).timestamp() + 600

    def publish(self, version: str) -> dict[str, Any]:
        source = WORK / "variants" / version
        variant = [sys.executable, str(ROOT / "tools" / "client_variant.py"), "--kind", "plain"]
        sh(*variant, "--version", version, "--dest", str(source))
        began = time.perf_counter()
        command = [sys.executable, str(ROOT / "tools" / "publish.py"), "release", "--key", str(self.key)]
        command += ["--store", self.stack["VF_STORE_DIR"], "--base-url", self.base_url]
        command += ["--platform", PLATFORM, "--source", str(source), "--json"]
        out = json.loads(sh(*command, env={**os.environ, **self.stack}))
        log(f"published {version} in {time.perf_counter() - began:.1f} s")
        return out

    def install(self, version: str, now: float) -> dict[str, Any]:
        """Publish `version` and let the agent install it: wall time, files and bytes fetched."""
        release_id = self.publish(version)["manifests"][0]["release_id"]
        seconds, status, journal = self.device.agent(now)
        if status != 0:
            raise BenchError(f"installing {version} failed:\n{journal[-3000:]}")
        fetched, files, got, whole = number(FETCHED, journal, "the bytes it fetched")
        requests, moved = number(
            r"is active \([\d.]+s, (\d+) requests, (\d+) bytes\)", journal, "its requests"
        )
        return {
            "release_id": release_id,
            "wall_s": round(seconds, 2),
            "files_fetched": fetched,
            "files": files,
            "bytes_fetched": got,
            "release_bytes": whole,
            "bytes_ratio": round(got / whole, 4) if whole else None,
            "requests": requests,
            "bytes_moved": moved,
        }

    def noop(self, runs: int, now: float) -> dict[str, Any]:
        samples = []
        for _ in range(runs):
            seconds, status, journal = self.device.agent(now)
            if status != 0 or "up to date" not in journal:
                raise BenchError(f"a run with nothing to do did something:\n{journal[-2000:]}")
            requests, moved = number(r"\((\d+) request, (\d+) bytes\)", journal, "its requests")
            samples.append({"wall_s": round(seconds, 3), "requests": requests, "bytes": moved})
        return {
            "runs": samples,
            "median_wall_s": round(statistics.median(r["wall_s"] for r in samples), 3),
            "requests": max(r["requests"] for r in samples),
            "median_bytes": statistics.median(r["bytes"] for r in samples),
        }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="no-op agent runs (default 3)")
    parser.add_argument("--keep-fleet", action="store_true", help="leave the device up at the end")
    args = parser.parse_args()

    bench = Bench()
    bench.provision()
    zone, now = bench.in_window()
    result: dict[str, Any] = {"benchmark": "agent", "platform": PLATFORM, "timezone": zone}
    result["first_install"] = bench.install("1.1.0", now)
    result["noop"] = bench.noop(args.runs, now)
    result["update"] = bench.install("1.2.0", now)
    defaults = yaml.safe_load((ROOT / "roles" / "voice_agent" / "defaults" / "main.yml").read_text())
    delay = int(defaults[RANDOMIZED_DELAY_VAR])
    result["window_to_running_bound_s"] = {
        "timer_interval_s": 3600,
        "randomized_delay_s": delay,
        "install_s": result["update"]["wall_s"],
        "bound_s": round(3600 + delay + result["update"]["wall_s"], 1),
    }
    if not args.keep_fleet:
        bench.fleet.down()
    RESULTS.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print_table(result)
    return 0


def fleet_zone(fleet: Fleet, stack: dict[str, str]) -> str:
    with psycopg.connect(stack["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT timezone FROM public.devices WHERE device_name = %s", (fleet.names(1)[0],)
        ).fetchone()
    if not row:
        raise BenchError(f"{fleet.names(1)[0]} has no registry row")
    return row[0]


def print_table(r: dict[str, Any]) -> None:
    first, noop, update = r["first_install"], r["noop"], r["update"]
    bound = r["window_to_running_bound_s"]
    rows = [
        ("agent run, nothing to do (median)", f"{noop['median_wall_s']:.2f} s",
         f"{noop['requests']} request, {noop['median_bytes']:.0f} bytes"),
        ("first install 1.1.0 (download, verify, build, gate)", f"{first['wall_s']:.1f} s",
         f"{first['bytes_fetched']} of {first['release_bytes']} bytes, "
         f"{first['files_fetched']}/{first['files']} files"),
        ("update 1.2.0, client changed", f"{update['wall_s']:.1f} s",
         f"{update['bytes_fetched']} of {update['release_bytes']} bytes ({update['bytes_ratio']:.1%}), "
         f"{update['files_fetched']}/{update['files']} files"),
        ("window opening -> new release running, at most", f"{bound['bound_s']:.0f} s",
         f"timer hourly + {bound['randomized_delay_s']} s randomized delay + the install"),
    ]  # fmt: skip
    width = max(len(w) for w, _, _ in rows)
    print()
    for what, value, detail in rows:
        print(f"{what:<{width}}  {value:>9}  {detail}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"bench_agent: {exc}")

#!/usr/bin/env python3
"""Benchmark of the supabase_devices inventory (not a test): registry vs a static YAML file.

    .venv/bin/python benchmarks/bench_inventory.py [--sizes 10000 50000] [--runs 5] [--quick]

For each fleet size it seeds the registry of a stack of its own (PostgreSQL + PostgREST +
the /rest/v1/ gateway; VF_STACK_DIR / VF_STACK_PORT, by default .cache/stack-inventory on
port 55321, because seeding empties its devices table), then times, side by side and in
alternating order:

- ``ansible-inventory -i <x>.supabase.yml --list``: the plugin reading the registry;
- the same with ``cache: true`` after a first run (a cache hit: no request at all);
- ``ansible-inventory -i static.yml --list``: the same hosts, host vars and groups in a
  static YAML inventory the benchmark writes from the registry's listing (the baseline).

It checks that both listings hold the same hosts, vars and groups, counts the plugin's HTTP
requests in the gateway's access log, prints a table (median wall time, ratio to the static
file, requests) and writes benchmarks/results/inventory.json.

Goals (issue 4): at 10,000 devices, <= 1.5x the static YAML time and <= 11 requests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import yaml
from fleetbench import read_env_file

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "inventory.json"
BIN = Path(sys.executable).parent
USER_AGENT = "voice-fleet-inventory (supabase_devices)"
DEFAULT_STACK_DIR = ROOT / ".cache" / "stack-inventory"
DEFAULT_STACK_PORT = "55321"
GOAL_RATIO = 1.5
GOAL_REQUESTS = 11
GOAL_SIZE = 10_000

# Devices in every status but online are seeded too (5%), so the server-side filter is on the path.
SEED_SQL = """
INSERT INTO public.devices
    (device_uuid, device_name, timezone, status, current_version, last_seen, registered_at, metadata)
SELECT
    format('0192f0a1-%%s-7%%s-8%%s-%%s', lpad(to_hex(i / 65536), 4, '0'), lpad(to_hex(i %% 4096), 3, '0'),
           lpad(to_hex(i %% 4096), 3, '0'), lpad(to_hex(i), 12, '0')),
    format('pi-%%s', lpad(i::text, 6, '0')),
    (ARRAY['Europe/Berlin', 'America/New_York', 'Asia/Tokyo', 'UTC', 'Australia/Sydney',
           'America/Argentina/Buenos_Aires', 'Europe/London', 'Asia/Kolkata'])[1 + i %% 8],
    CASE WHEN i %% 20 = 0 THEN 'retired' ELSE 'online' END,
    (ARRAY['2.3.0', '2.4.0', '2.4.1-rc.1'])[1 + i %% 3],
    timestamptz '2026-11-22 10:00:00+00' - make_interval(secs => i),
    timestamptz '2026-01-01 00:00:00+00' + make_interval(secs => i),
    jsonb_build_object(
        'ip_address', format('10.%%s.%%s.%%s', (i / 65536) %% 256, (i / 256) %% 256, i %% 256),
        'hostname', format('pi-%%s.local', i),
        'hardware_model', (ARRAY['Raspberry Pi 5 Model B Rev 1.0', 'Raspberry Pi 4 Model B Rev 1.4',
                                 'Raspberry Pi Zero 2 W Rev 1.0'])[1 + i %% 3],
        'kernel', '6.6.51+rpt-rpi-v8', 'python', '3.11.2')
FROM generate_series(1, %(rows)s) AS i
"""


def log(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def stack_env() -> dict[str, str]:
    """Start (or find) the benchmark's own stack and read its settings."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "stack.py"), "up"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"stack up failed:\n{proc.stderr}")
    return read_env_file(Path(os.environ["VF_STACK_DIR"]) / "env")


def seed(database_url: str, online: int) -> None:
    """`online` online devices (and 5% more in other statuses), made by the database itself."""
    rows = online + online // 19 + 1
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute("TRUNCATE public.device_updates, public.updates, public.devices CASCADE")
        db.execute(SEED_SQL, {"rows": rows})
        # Trim to exactly `online` online devices.
        db.execute(
            "DELETE FROM public.devices WHERE status = 'online' AND device_uuid IN ("
            " SELECT device_uuid FROM public.devices WHERE status = 'online'"
            " ORDER BY device_uuid DESC LIMIT greatest(0, (SELECT count(*) FROM public.devices"
            " WHERE status = 'online') - %s))",
            (online,),
        )
        db.execute("ANALYZE public.devices")
        count = db.execute("SELECT count(*) FROM public.devices WHERE status = 'online'").fetchone()[0]
    if count != online:
        sys.exit(f"seeding made {count} online devices, wanted {online}")


class Runner:
    def __init__(self, env: dict[str, str]) -> None:
        self.environ = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "ANSIBLE_"))}
        self.environ.update(
            SUPABASE_URL=env["SUPABASE_URL"],
            SUPABASE_SERVICE_KEY=env["SUPABASE_SERVICE_KEY"],
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            ANSIBLE_HOME=str(ROOT / ".ansible"),
            ANSIBLE_NOCOLOR="1",
        )
        self.access_log = Path(os.environ["VF_STACK_DIR"]) / "log" / "nginx-access.log"

    def listing(self, source: Path) -> dict[str, Any]:
        proc = self._run(source, capture=True)
        return json.loads(proc.stdout)

    def timed(self, source: Path) -> tuple[float, int]:
        """Wall time of one `ansible-inventory --list` (output to /dev/null) and the plugin's requests."""
        start_size = self.access_log.stat().st_size
        began = time.perf_counter()
        self._run(source, capture=False)
        elapsed = time.perf_counter() - began
        with self.access_log.open("rb") as fh:
            fh.seek(start_size)
            requests = sum(USER_AGENT in line for line in fh.read().decode(errors="replace").splitlines())
        return elapsed, requests

    def _run(self, source: Path, *, capture: bool) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(BIN / "ansible-inventory"), "-i", str(source), "--list"],
            cwd=ROOT,
            env=self.environ,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            sys.exit(f"ansible-inventory -i {source} failed:\n{proc.stderr}")
        return proc


def plain(value: Any) -> Any:
    """A listing without `__ansible_unsafe` wrappers, member lists sorted."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: sorted(v) if k in ("hosts", "children") else plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def write_static(listing: dict[str, Any], path: Path) -> None:
    """The listing as a static YAML inventory: host vars under all.hosts, groups with their members."""
    hostvars = plain(listing["_meta"]["hostvars"])
    groups = {
        name: {"hosts": dict.fromkeys(group["hosts"])}
        for name, group in listing.items()
        if name not in ("_meta", "all") and group.get("hosts")
    }
    document = {"all": {"hosts": hostvars, "children": groups}}
    with path.open("w") as fh:
        yaml.dump(document, fh, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True, width=1000)


def same_inventory(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def shape(listing: dict[str, Any]) -> tuple[Any, Any]:
        clean = plain(listing)
        groups = {k: v.get("hosts", []) for k, v in clean.items() if k not in ("_meta", "all", "ungrouped")}
        return clean["_meta"]["hostvars"], groups

    return shape(a) == shape(b)


def bench_size(runner: Runner, env: dict[str, str], size: int, runs: int, work: Path) -> dict[str, Any]:
    log(f"seeding {size:,} online devices")
    seed(env["DATABASE_URL"], size)
    registry = work / f"bench-{size}.supabase.yml"
    registry.write_text("plugin: supabase_devices\n")
    cached = work / f"bench-{size}-cached.supabase.yml"
    cache_dir = work / f"cache-{size}"
    cached.write_text(
        yaml.safe_dump(
            {
                "plugin": "supabase_devices",
                "cache": True,
                "cache_plugin": "ansible.builtin.jsonfile",
                "cache_connection": str(cache_dir),
                "cache_timeout": 86400,
            }
        )
    )
    static = work / f"bench-{size}-static.yml"

    log("listing the registry once and writing the static YAML baseline from it")
    listing = runner.listing(registry)
    write_static(listing, static)
    if not same_inventory(listing, runner.listing(static)):
        sys.exit(f"the static inventory for {size} devices does not match the registry's listing")
    hosts = len(listing["_meta"]["hostvars"])
    if hosts != size:
        sys.exit(f"the registry listing has {hosts} hosts, expected {size}")
    runner.timed(cached)  # fills the cache

    samples: dict[str, list[float]] = {"static": [], "supabase": [], "supabase_cached": []}
    requests: dict[str, list[int]] = {"static": [], "supabase": [], "supabase_cached": []}
    for run in range(runs):
        # Alternate the order so neither side always runs on a warmer machine.
        order = ["static", "supabase", "supabase_cached"]
        if run % 2:
            order.reverse()
        for name in order:
            source = {"static": static, "supabase": registry, "supabase_cached": cached}[name]
            elapsed, count = runner.timed(source)
            samples[name].append(elapsed)
            requests[name].append(count)
            log(f"{size:>6} devices, run {run + 1}/{runs}: {name:<16} {elapsed:6.2f} s, {count} request(s)")

    static_median = statistics.median(samples["static"])
    return {
        "devices": size,
        "static_yaml_bytes": static.stat().st_size,
        "runs": runs,
        "sources": {
            name: {
                "median_s": round(statistics.median(values), 3),
                "min_s": round(min(values), 3),
                "max_s": round(max(values), 3),
                "ratio_to_static": round(statistics.median(values) / static_median, 3),
                "requests": max(requests[name]),
                "samples_s": [round(v, 3) for v in values],
            }
            for name, values in samples.items()
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per source and size (default 5)")
    parser.add_argument("--quick", action="store_true", help="1,000 devices, 2 runs: checks the script")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.runs = [1_000], 2

    os.environ.setdefault("VF_STACK_DIR", str(DEFAULT_STACK_DIR))
    os.environ.setdefault("VF_STACK_PORT", DEFAULT_STACK_PORT)
    if Path(os.environ["VF_STACK_DIR"]).resolve() == (ROOT / ".stack").resolve():
        sys.exit("refusing to seed the default stack (.stack): its devices table would be emptied")
    env = stack_env()
    runner = Runner(env)

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-inventory-") as tmp:
        for size in args.sizes:
            results.append(bench_size(runner, env, size, args.runs, Path(tmp)))

    labels = {
        "static": "static YAML file",
        "supabase": "supabase_devices",
        "supabase_cached": "supabase_devices, cache hit",
    }
    print()
    print(f"{'devices':>8}  {'source':<28} {'median s':>9} {'min s':>7} {'x static':>9} {'requests':>9}")
    for result in results:
        for name, label in labels.items():
            source = result["sources"][name]
            print(
                f"{result['devices']:>8,}  {label:<28} {source['median_s']:>9.2f} {source['min_s']:>7.2f} "
                f"{source['ratio_to_static']:>9.2f} {source['requests']:>9}"
            )
    goal = next((r for r in results if r["devices"] == GOAL_SIZE), None)
    verdict: dict[str, Any] = {}
    if goal:
        live = goal["sources"]["supabase"]
        verdict = {
            "ratio_goal": GOAL_RATIO,
            "requests_goal": GOAL_REQUESTS,
            "ratio": live["ratio_to_static"],
            "requests": live["requests"],
            "met": live["ratio_to_static"] <= GOAL_RATIO and live["requests"] <= GOAL_REQUESTS,
        }
        outcome = "met" if verdict["met"] else "MISSED"
        print(
            f"\ngoal at {GOAL_SIZE:,} devices: <= {GOAL_RATIO}x static and <= {GOAL_REQUESTS} requests: "
            f"{live['ratio_to_static']:.2f}x, {live['requests']} requests -> {outcome}"
        )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "inventory",
                "command": "ansible-inventory -i <source> --list",
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                "results": results,
                "goal": verdict,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written: {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

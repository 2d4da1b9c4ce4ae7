"""Benchmark: 10,000 maintenance-window evaluations across mixed zones (issue 3: goal <= 0.2 s).

Two workloads, each run by three implementations side by side in this process:

- "spread": 10,000 (zone, instant) pairs, zones cycling through every zone of the database and
  instants spread over 2026-2028 (seeded), so almost every evaluation is a cache miss.
- "scheduled": what the hourly play does: 10,000 devices in mixed zones, one `now`.

Implementations:

- filter: `maintenance_window` of filter_plugins/maintenance_window.py (zoneinfo + tzdata), with
  its window cache emptied before every repeat.
- pytz: the same rule written with pytz the usual correct way (localize with is_dst=None, the
  first occurrence of an ambiguous time, the jump found by bisection): what the filter would
  cost on pytz. Its results are compared with the filter's; they must agree.
- naive: converts `now` into the zone and takes that local date's (or the next one's) hour:minute
  with plain datetime arithmetic, ignoring skipped and repeated wall times. It is the floor: the
  price of merely converting 10,000 instants. Its disagreements with the filter are counted.

Timings are the best of several repeats (time.perf_counter). Writes benchmarks/results/filters.json.
Run: .venv/bin/python benchmarks/bench_filters.py [--repeats N] [--count N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.resources
import importlib.util
import json
import math
import os
import platform
import random
import sys
import time
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytz

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "filters.json"
UTC = dt.UTC
GOAL_SECONDS = 0.2


def load_plugin() -> Any:
    spec = importlib.util.spec_from_file_location(
        "maintenance_window", ROOT / "filter_plugins" / "maintenance_window.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- baseline 1: the same rule on pytz -----------------------------------------------------------


def pytz_window_start(tz: Any, day: dt.date, hour: int, minute: int) -> int:
    wall = dt.datetime(day.year, day.month, day.day, hour, minute)
    try:
        return int(tz.localize(wall, is_dst=None).timestamp())
    except pytz.AmbiguousTimeError:
        return int(min(tz.localize(wall, is_dst=flag).timestamp() for flag in (True, False)))
    except pytz.NonExistentTimeError:
        # Before the gap the wall time maps past the jump, after it before the jump: bisect.
        after = int(tz.localize(wall, is_dst=False).timestamp())
        before = int(tz.localize(wall, is_dst=True).timestamp())
        before, after = min(before, after), max(before, after)
        offset_before = dt.datetime.fromtimestamp(before, tz).utcoffset()
        while after - before > 1:
            middle = (before + after) // 2
            if dt.datetime.fromtimestamp(middle, tz).utcoffset() == offset_before:
                before = middle
            else:
                after = middle
        return after


def pytz_maintenance_window(
    name: str, now: float, hour: int = 2, minute: int = 0, duration: int = 60
) -> dict:
    tz = pytz.timezone(name)
    seconds = duration * 60
    day = dt.datetime.fromtimestamp(now, tz).date()
    start = pytz_window_start(tz, day, hour, minute)
    if start > now:
        following = start
        start = pytz_window_start(tz, day - dt.timedelta(days=1), hour, minute)
    else:
        following = pytz_window_start(tz, day + dt.timedelta(days=1), hour, minute)
    inside = start <= now < start + seconds
    if not inside:
        start = following
    return {
        "timezone": name,
        "start": dt.datetime.fromtimestamp(start, UTC).isoformat(),
        "end": dt.datetime.fromtimestamp(start + seconds, UTC).isoformat(),
        "local_start": dt.datetime.fromtimestamp(start, tz).isoformat(),
        "in_window": inside,
        "seconds_until_start": 0 if inside else math.ceil(start - now),
    }


# --- baseline 2: naive conversion ----------------------------------------------------------------


_TZDATA_ZONES: dict[str, zoneinfo.ZoneInfo] = {}


def tzdata_zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone from the same pinned tzdata package the filter reads (not /usr/share/zoneinfo)."""
    if name not in _TZDATA_ZONES:
        resource = importlib.resources.files("tzdata.zoneinfo").joinpath(*name.split("/"))
        with resource.open("rb") as stream:
            _TZDATA_ZONES[name] = zoneinfo.ZoneInfo.from_file(stream, key=name)
    return _TZDATA_ZONES[name]


def naive_maintenance_window(
    name: str, now: float, hour: int = 2, minute: int = 0, duration: int = 60
) -> dict:
    tz = tzdata_zone(name)
    seconds = duration * 60
    local = dt.datetime.fromtimestamp(now, tz)
    start_local = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    start = start_local.timestamp()
    if now >= start + seconds:
        start_local += dt.timedelta(days=1)
        start = start_local.timestamp()
    inside = start <= now < start + seconds
    return {
        "timezone": name,
        "start": dt.datetime.fromtimestamp(start, UTC).isoformat(),
        "end": dt.datetime.fromtimestamp(start + seconds, UTC).isoformat(),
        "local_start": start_local.isoformat(),
        "in_window": inside,
        "seconds_until_start": 0 if inside else math.ceil(start - now),
    }


# --- harness -------------------------------------------------------------------------------------


def best_of(
    repeats: int, run: Callable[[], list[dict]], before: Callable[[], None] | None = None
) -> tuple[float, list]:
    best, results = math.inf, []
    for _ in range(repeats):
        if before is not None:
            before()
        started = time.perf_counter()
        results = run()
        best = min(best, time.perf_counter() - started)
    return best, results


def workloads(names: list[str], count: int) -> dict[str, list[tuple[str, float]]]:
    rng = random.Random(20260308)  # noqa: S311 (a reproducible workload, not a secret)
    low = dt.datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    high = dt.datetime(2029, 1, 1, tzinfo=UTC).timestamp()
    spread = [(names[i % len(names)], float(rng.randrange(int(low), int(high)))) for i in range(count)]
    now = dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC).timestamp()  # EU spring-forward night
    scheduled = [(rng.choice(names), now) for _ in range(count)]
    return {"spread": spread, "scheduled": scheduled}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    plugin = load_plugin()
    names = sorted(plugin.timezone_names())
    window = plugin.maintenance_window
    clear = plugin._window_start.cache_clear  # a cold start for every repeat
    for name in names:  # load every zone once for all three, outside the timings
        window(name, now=0)
        pytz.timezone(name)
        tzdata_zone(name)

    report: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "load_average_before": os.getloadavg()[0],
        "tz_database": plugin.timezone_database(),
        "pytz": f"{pytz.__version__} ({pytz.OLSON_VERSION})",
        "count": args.count,
        "repeats": args.repeats,
        "goal_seconds": GOAL_SECONDS,
        "workloads": {},
    }
    rows = []
    for workload, pairs in workloads(names, args.count).items():
        ours_s, ours = best_of(args.repeats, lambda pairs=pairs: [window(z, now=t) for z, t in pairs], clear)
        pytz_s, via_pytz = best_of(
            args.repeats, lambda pairs=pairs: [pytz_maintenance_window(z, t) for z, t in pairs]
        )
        naive_s, naive = best_of(
            args.repeats, lambda pairs=pairs: [naive_maintenance_window(z, t) for z, t in pairs]
        )
        entry = {
            "filter_seconds": ours_s,
            "pytz_seconds": pytz_s,
            "naive_seconds": naive_s,
            "pytz_agrees": sum(a == b for a, b in zip(ours, via_pytz, strict=True)),
            "naive_agrees": sum(a == b for a, b in zip(ours, naive, strict=True)),
        }
        if workload == "scheduled":
            hostvars = {f"pi-{i:05d}": {"timezone": zone} for i, (zone, _) in enumerate(pairs)}
            now = pairs[0][1]
            split_s, split = best_of(
                args.repeats,
                lambda hostvars=hostvars, now=now: plugin.maintenance_window_split(
                    list(hostvars), hostvars, now=now
                ),
                clear,
            )
            entry["split_seconds"] = split_s
            entry["split_in_window"] = len(split["in_window"])
        report["workloads"][workload] = entry
        for label, seconds in (
            ("filter", ours_s),
            ("pytz (same rule)", pytz_s),
            ("naive conversion", naive_s),
        ):
            rows.append((workload, label, seconds, seconds / ours_s))
        if "split_seconds" in entry:
            rows.append(
                (
                    workload,
                    "filter via maintenance_window_split",
                    entry["split_seconds"],
                    entry["split_seconds"] / ours_s,
                )
            )

    print(
        f"{args.count:,} evaluations per row, best of {args.repeats}; "
        f"zones: {report['tz_database']}, pytz {report['pytz']}; "
        f"load average {report['load_average_before']:.2f} on {os.cpu_count()} CPUs"
    )
    print(f"{'workload':<10} {'implementation':<38} {'seconds':>8} {'us/eval':>8} {'x filter':>9}")
    for workload, label, seconds, ratio in rows:
        print(f"{workload:<10} {label:<38} {seconds:>8.4f} {seconds / args.count * 1e6:>8.2f} {ratio:>9.2f}")
    for workload, entry in report["workloads"].items():
        print(
            f"{workload}: pytz agrees on {entry['pytz_agrees']:,}/{args.count:,}, "
            f"naive on {entry['naive_agrees']:,}/{args.count:,}; "
            f"filter {'meets' if entry['filter_seconds'] <= GOAL_SECONDS else 'misses'} "
            f"the {GOAL_SECONDS} s goal"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

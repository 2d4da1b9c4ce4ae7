#!/usr/bin/env python3
"""Every benchmark of the repository in one run: one table, JSON, and the chart (make bench).

    .venv/bin/python benchmarks/run_all.py                       # run everything (about an hour)
    .venv/bin/python benchmarks/run_all.py --reuse inventory     # read that one's latest JSON instead
    .venv/bin/python benchmarks/run_all.py --summary-only        # table and chart from the latest JSON

Runs, one after the other (CPU is the scarce resource: nothing runs in parallel):

- bench_rollout.py: upgrade, re-run, connection settings, cold provision, installer
  (writes rollout.json and installer.json);
- bench_filters.py, bench_client.py: the maintenance-window filters and the voice client;
- bench_inventory.py --sizes 10000 --runs 3: the inventory plugin at the goal size
  (its own default, 10,000 and 50,000 devices, takes far longer).
- bench_agent.py: the pull agent on a device of its own (a run with nothing to do,
  the bytes an install and an update fetch).

Then prints one table (every measurement with its baseline, the ratio and the goal),
writes benchmarks/results/summary.json and draws docs/benchmarks.png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
RESULTS = HERE / "results"
CHART = ROOT / "docs" / "benchmarks.png"

BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    # name: (command after the script, result files)
    "rollout": (["bench_rollout.py"], ["rollout.json", "installer.json"]),
    "filters": (["bench_filters.py"], ["filters.json"]),
    "client": (["bench_client.py"], ["client.json"]),
    "inventory": (["bench_inventory.py", "--sizes", "10000", "--runs", "3"], ["inventory.json"]),
    "agent": (["bench_agent.py"], ["agent.json"]),
}
QUICK = {
    "rollout": ["--quick"],
    "client": ["--quick"],
    "inventory": ["--quick"],
    "filters": ["--repeats", "2"],
    "agent": ["--runs", "1"],
}


def run(name: str, quick: bool, extra: list[str]) -> float:
    command, _ = BENCHMARKS[name]
    argv = [
        sys.executable,
        str(HERE / command[0]),
        *command[1:],
        *(QUICK.get(name, []) if quick else []),
        *extra,
    ]
    print(f"\n### {name}: {' '.join(argv[1:])}", flush=True)
    began = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, check=False)
    if proc.returncode != 0:
        sys.exit(f"run_all: {name} failed (exit {proc.returncode})")
    return time.perf_counter() - began


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def file_time(name: str) -> str:
    path = RESULTS / name
    if not path.exists():
        return "missing"
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- the table -----------------------------------------------------------------------------


class Table:
    """Rows of measurements: what, value, baseline and its value, ratio, goal, verdict."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        area: str,
        what: str,
        value: float,
        *,
        unit: str = "s",
        baseline: str = "-",
        base: float | None = None,
        goal: str = "",
        met: bool | None = None,
    ) -> None:
        self.rows.append(
            {
                "area": area,
                "what": what,
                "value": value,
                "unit": unit,
                "baseline": baseline,
                "baseline_value": base,
                "ratio": round(value / base, 3) if base else None,
                "goal": goal,
                "met": met,
            }
        )


def verdict(met: Any) -> bool | None:
    return None if met is None else bool(met)


def rollout_rows(t: Table, ro: dict[str, Any]) -> None:
    upgrade_rows(t, ro)
    rerun_rows(t, ro)
    connection_rows(t, ro.get("connection"))
    cold_rows(t, ro.get("cold"))


def upgrade_rows(t: Table, ro: dict[str, Any]) -> None:
    n, up = ro["hosts"], ro.get("upgrade")
    if up and "one_batch" in up:
        seeds = up["seeds"]["median_s"]
        for key, label, goal in (
            ("one_batch", 'rollout, batches ["100%"]', "<= 0.4"),
            ("canary", "rollout, default canary batches", "<= 1.0"),
        ):
            r = up[key]
            t.add(
                "1 upgrade",
                f"{label}, {n} hosts",
                r["median_s"],
                baseline="seeds: venv + pip from PyPI",
                base=seeds,
                goal=goal,
                met=r["goal"]["met"],
            )
        for key, label in (("one_batch", 'batches ["100%"]'), ("canary", "default batches")):
            r = up[key]
            t.add(
                "1 upgrade",
                f"controller CPU per upgraded device, {label}",
                r["controller_cpu_per_device_s"],
                unit="s/device",
                baseline="before issue 12",
                base=7.6,
                goal="<= 1 s",
                met=r["cpu_goal"]["met"],
            )
        for key, label in (("one_batch", 'batches ["100%"]'), ("canary", "default batches")):
            r = up[key]
            t.add(
                "1 upgrade",
                f"registry requests per batch, {label} "
                f"({r['registry_requests']:g} in {r['batches']:g} batches)",
                r["registry_requests_per_batch"],
                unit="req",
                goal="<= 5",
                met=r["requests_goal"]["met"],
            )
        tasks = up["one_batch"]["tasks_per_device"]
        if tasks:
            t.add(
                "1 upgrade",
                f"tasks per device, upgrade (skipped included; {tasks['executed']['median']:g} not skipped)",
                tasks["with_skipped"]["median"],
                unit="tasks",
                baseline="before issue 12",
                base=188,
            )
        if "seeds_pip_cache_warm_s" in up:
            t.add(
                "1 upgrade",
                "seeds, pip cache warm",
                up["seeds_pip_cache_warm_s"],
                baseline="seeds",
                base=seeds,
            )
    if ro.get("release_only") and up:
        t.add(
            "1 upgrade",
            "voice_release role alone (no provisioning, no registry)",
            ro["release_only"]["median_s"],
            baseline="seeds",
            base=up["seeds"]["median_s"],
        )
    uv = ro.get("upgrade_uv")
    if uv and up:
        t.add(
            "1 upgrade",
            "rollout, uv installer",
            uv["rollout_uv_s"],
            baseline="seeds",
            base=up["seeds"]["median_s"],
        )


def rerun_rows(t: Table, ro: dict[str, Any]) -> None:
    n, re_ = ro["hosts"], ro.get("rerun")
    if re_ and "one_batch" in re_:
        for key, label in (("one_batch", 'batches ["100%"]'), ("canary", "default batches")):
            r = re_.get(key)
            if not r:
                continue
            # Each against the no-op play in the same batches (before the tenth run: one batch).
            t.add(
                "2 re-run",
                f"idempotent re-run, {label}, {n} hosts",
                r["median_s"],
                baseline="no-op (ping + stat), same batches" if "noop" in r else "no-op play (ping + stat)",
                base=r.get("noop", re_["noop"])["median_s"],
                goal="<= 1.5",
                met=r["goal"]["met"],
            )
        r = re_["one_batch"]
        t.add(
            "2 re-run",
            f"registry requests in a re-run (changed tasks: {r['changed_tasks']})",
            r["registry_requests"],
            unit="req",
            goal="0 writes",
            met=None if r.get("registry_record_progress") is None else r["registry_record_progress"] == 0,
        )
        tasks = r["tasks_per_device"]
        if tasks:
            t.add(
                "2 re-run",
                f"tasks per device, re-run (skipped included; {tasks['executed']['median']:g} not skipped)",
                tasks["with_skipped"]["median"],
                unit="tasks",
                baseline="before issue 12",
                base=146,
            )


def connection_rows(t: Table, conn: dict[str, Any] | None) -> None:
    if conn:
        variants = conn["variants"]
        base_name = next(iter(variants))
        for name, v in variants.items():
            if name != base_name and "median_s" in v:
                t.add(
                    "3 connection",
                    f"re-run, {name}",
                    v["median_s"],
                    baseline="ansible.cfg as is",
                    base=variants[base_name]["median_s"],
                )
        if "mitogen_noop" in conn:
            mn = conn["mitogen_noop"]
            t.add(
                "3 connection",
                "no-op play, Mitogen (mitogen_linear)",
                mn["mitogen"]["median_s"],
                baseline="no-op play, SSH",
                base=mn["ssh"]["median_s"],
            )
        facts = conn["facts"]
        for name, v in facts.items():
            if not name.startswith("none"):
                t.add(
                    "3 connection",
                    f"ping + setup {name}",
                    v["median_s"],
                    baseline="ping only",
                    base=facts["none (ping only)"]["median_s"],
                )


def cold_rows(t: Table, co: dict[str, Any] | None) -> None:
    if co:
        for count, run_ in co["runs"].items():
            t.add(
                "4 cold",
                f"site.yml on {count} fresh host(s)",
                run_["seconds"],
                baseline="1 host",
                base=co["runs"]["1"]["seconds"],
            )
        if "per_host_marginal_s" in co:
            goal = co.get("goal", {})
            t.add(
                "4 cold",
                "per-host marginal cost (fit)",
                co["per_host_marginal_s"],
                unit="s/host",
                baseline="before issue 12",
                base=goal.get("before_s"),
                goal="<= 0.5 (halved)" if goal else "",
                met=verdict(goal.get("met")),
            )
        cpu = {int(k): r["controller_cpu_s"] for k, r in co["runs"].items() if "controller_cpu_s" in r}
        if len(cpu) > 1:
            # The controller's share alone: it does not depend on what else runs on the machine.
            first, last = min(cpu), max(cpu)
            t.add(
                "4 cold",
                f"controller CPU per extra host ({first} -> {last} hosts)",
                (cpu[last] - cpu[first]) / (last - first),
                unit="s/host",
                baseline="before issue 12 (about)",
                base=7.0,
            )
        t.add("4 cold", "controller wheelhouse from scratch (one-off)", co["controller_wheelhouse_s"])


def installer_rows(t: Table, inst: dict[str, Any]) -> None:
    pip = inst["variants"]["pip"]
    for kind in ("uv", "uv-no-bytecode"):
        v = inst["variants"][kind]
        t.add(
            "5 installer",
            f"venv + {kind} install + check",
            v["total_median_s"],
            baseline="pip",
            base=pip["total_median_s"],
        )
        t.add(
            "5 installer",
            f"{kind}: install step only",
            v["install_median_s"],
            baseline="pip",
            base=pip["install_median_s"],
        )


def inventory_rows(t: Table, inv: dict[str, Any]) -> None:
    for size in inv["results"]:
        sources = size["sources"]
        for key, label in (
            ("supabase", "supabase_devices"),
            ("supabase_cached", "supabase_devices, cache hit"),
        ):
            goal = size["devices"] == 10_000 and key == "supabase"
            t.add(
                "6 inventory",
                f"{label}, {size['devices']:,} devices ({sources[key]['requests']} requests)",
                sources[key]["median_s"],
                baseline="static YAML",
                base=sources["static"]["median_s"],
                goal="<= 1.5, <= 11 requests" if goal else "",
                met=inv["goal"].get("met") if goal else None,
            )


def filter_rows(t: Table, flt: dict[str, Any]) -> None:
    for name, w in flt["workloads"].items():
        t.add(
            "6 filters",
            f"{flt['count']:,} windows, {name}",
            w["filter_seconds"],
            baseline="pytz, same rule",
            base=w["pytz_seconds"],
            goal="<= 0.2 s",
            met=w["filter_seconds"] <= flt["goal_seconds"],
        )


def client_rows(t: Table, cli: dict[str, Any]) -> None:
    first = cli["first_audio_out_s"]
    t.add(
        "6 client",
        "first audio out (streaming)",
        first["streaming"]["median"],
        baseline="Javia: download first",
        base=first["javia_download_first"]["median"],
    )
    press = cli["press_to_recording_s"]["pyaudio_alsa_null"]
    t.add(
        "6 client",
        "press -> recording (PyAudio, p95)",
        press["p95"],
        goal="<= 0.05 s",
        met=press["p95"] <= cli["goals"]["press_s"],
    )
    encode = cli["opus_encode_fraction_of_real_time"]
    t.add(
        "6 client",
        "Opus encode time / audio time (median)",
        encode["median"],
        unit="x real time",
        goal="<= 0.05",
        met=encode["median"] <= cli["goals"]["encode_fraction"],
    )
    mem = cli["idle_memory_mb"]
    t.add(
        "6 client",
        "idle RSS of voice-client run",
        mem["voice_client_run_mb"],
        unit="MB",
        baseline="bare python3",
        base=mem["bare_python_mb"],
        goal="<= 80 MB",
        met=mem["voice_client_run_mb"] <= cli["goals"]["idle_memory_mb"],
    )


def agent_rows(t: Table, ag: dict[str, Any]) -> None:
    noop, first, update = ag["noop"], ag["first_install"], ag["update"]
    t.add(
        "5 pull agent",
        f"agent run, nothing to do ({noop['requests']} request, {noop['median_bytes']:.0f} bytes)",
        noop["median_wall_s"],
        goal="1 small request",
        met=noop["requests"] == 1,
    )
    for r, label in ((first, "first install"), (update, "update, client changed")):
        t.add(
            "5 pull agent",
            f"{label}: bytes fetched ({r['files_fetched']} of {r['files']} files)",
            r["bytes_fetched"],
            unit="bytes",
            baseline="the whole release",
            base=r["release_bytes"],
            goal="only changed files" if r is update else "",
            met=(r["files_fetched"] < r["files"]) if r is update else None,
        )
        t.add("5 pull agent", f"{label}: download, verify, build, gate", r["wall_s"])
    bound = ag["window_to_running_bound_s"]
    t.add(
        "5 pull agent",
        f"window opening -> release running, at most (hourly timer + {bound['randomized_delay_s']} s delay)",
        bound["bound_s"],
    )


def rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    table = Table()
    for name, add in (
        ("rollout.json", rollout_rows),
        ("installer.json", installer_rows),
        ("inventory.json", inventory_rows),
        ("filters.json", filter_rows),
        ("client.json", client_rows),
        ("agent.json", agent_rows),
    ):
        if res.get(name):
            add(table, res[name])
    return table.rows


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("req", "tasks"):
        return f"{value:g} {unit}"
    if unit == "s" and value < 1:
        return f"{value * 1000:.1f} ms"
    if value < 0.1:
        return f"{value:.3f} {unit}"
    return f"{value:.2f} {unit}" if value < 10 else f"{value:.1f} {unit}"


def failures(res: dict[str, Any]) -> list[str]:
    """Measurements that could not be taken (a setting that broke the play), with the reason."""
    ro = res.get("rollout.json") or {}
    variants = (ro.get("connection") or {}).get("variants", {})
    return [f"3 connection, {name}: {v['error']}" for name, v in variants.items() if "error" in v]


def print_table(table: list[dict[str, Any]]) -> None:
    head = f"{'area':<13} {'measurement':<58} {'value':>10} {'baseline':<32} {'value':>10} {'ratio':>7}  goal"
    print("\n" + head + "\n" + "-" * len(head))
    for r in table:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        verdict = "" if r["met"] is None else (" met" if r["met"] else " MISSED")
        print(
            f"{r['area']:<13} {r['what'][:58]:<58} {fmt(r['value'], r['unit']):>10} {r['baseline'][:32]:<32} "
            f"{fmt(r['baseline_value'], r['unit']):>10} {ratio:>7}  {r['goal']}{verdict}"
        )


def markdown_table(table: list[dict[str, Any]]) -> str:
    """The same table in Markdown, for docs/BENCHMARKS.md."""
    lines = [
        "| area | measurement | value | baseline | baseline value | ratio | goal |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    for r in table:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        verdict = "" if r["met"] is None else (" **met**" if r["met"] else " **missed**")
        lines.append(
            f"| {r['area']} | {r['what']} | {fmt(r['value'], r['unit'])} | {r['baseline']} | "
            f"{fmt(r['baseline_value'], r['unit'])} | {ratio} | {r['goal']}{verdict} |"
        )
    return "\n".join(lines) + "\n"


# --- the chart -----------------------------------------------------------------------------


def hbars(
    ax: Any, labels: list[str], values: list[float], *, title: str, unit: str, colors: list[str]
) -> None:
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks(range(len(values)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(unit)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.1f}", va="center", fontsize=8)
    ax.margins(x=0.2)


def panel_upgrade(ax: Any, ro: dict[str, Any]) -> None:
    up = ro["upgrade"]
    bars = [
        ('rollout, ["100%"]', up["one_batch"]["median_s"], "tab:green"),
        ("rollout, canary batches", up["canary"]["median_s"], "tab:olive"),
    ]
    if ro.get("release_only"):
        bars.append(("voice_release role alone", ro["release_only"]["median_s"], "tab:cyan"))
    if "seeds_pip_cache_warm_s" in up:
        bars.append(("seeds, pip cache warm", up["seeds_pip_cache_warm_s"], "tab:orange"))
    bars.append(("seeds: pip from PyPI", up["seeds"]["median_s"], "tab:red"))
    hbars(
        ax,
        [label for label, _, _ in bars],
        [value for _, value, _ in bars],
        title=f"1. upgrade {up['from']} -> {up['to']}, {ro['hosts']} hosts: "
        f"{up['one_batch']['ratio_to_seeds']:.2f}x / {up['canary']['ratio_to_seeds']:.2f}x seeds "
        "(goals 0.4 / 1.0)",
        unit="seconds",
        colors=[color for _, _, color in bars],
    )


def panel_where(ax: Any, ro: dict[str, Any]) -> None:
    top = list(ro["upgrade"]["one_batch"]["where"]["groups_median_s"].items())[:9]
    hbars(
        ax,
        [k for k, _ in top],
        [v for _, v in top],
        title='where the ["100%"] upgrade\'s time goes (seconds per task file)',
        unit="seconds",
        colors=["tab:green"] * len(top),
    )


def panel_rerun(ax: Any, ro: dict[str, Any]) -> None:
    re_ = ro["rerun"]
    bars = [
        ('no-op play (ping + stat), ["100%"]', re_["noop"]["median_s"], "tab:gray"),
        ('re-run, ["100%"]', re_["one_batch"]["median_s"], "tab:green"),
    ]
    canary = re_.get("canary")
    if canary:
        if "noop" in canary:
            bars.append(("no-op play, canary batches", canary["noop"]["median_s"], "tab:gray"))
        bars.append(("re-run, canary batches", canary["median_s"], "tab:olive"))
    conn = ro.get("connection")
    if conn:
        variants = [(k.split(" (")[0], v["median_s"]) for k, v in conn["variants"].items() if "median_s" in v]
        bars += [(label, value, "tab:blue") for label, value in variants[1:]]
    hbars(
        ax,
        [label for label, _, _ in bars],
        [value for _, value, _ in bars],
        title=f'2. re-run, ["100%"]: {re_["one_batch"]["ratio_to_noop"]:.2f}x the no-op (goal 1.5x)',
        unit="seconds",
        colors=[color for _, _, color in bars],
    )


def panel_cold(ax: Any, ro: dict[str, Any]) -> None:
    co = ro["cold"]
    xs = [int(k) for k in co["runs"]]
    ys = [co["runs"][k]["seconds"] for k in co["runs"]]
    ax.plot(xs, ys, "o-", color="tab:purple")
    for x, y in zip(xs, ys, strict=True):
        ax.annotate(f"{y:.0f} s", (x, y), textcoords="offset points", xytext=(4, -12), fontsize=8)
    ax.set_title(
        f"4. cold provision: {co.get('per_host_marginal_s', 0):.1f} s per extra host "
        f"(+{co.get('fixed_s', 0):.0f} s fixed; was 18.1 s)",
        fontsize=10,
    )
    ax.set_xlabel("fresh hosts")
    ax.set_ylabel("seconds")
    ax.set_xticks(xs)
    ax.set_ylim(bottom=0)


def panel_installer(ax: Any, inst: dict[str, Any]) -> None:
    kinds = list(inst["variants"])
    bottom = [0.0] * len(kinds)
    for phase, color in (("venv", "tab:gray"), ("install", "tab:green"), ("check", "tab:blue")):
        values = [inst["variants"][k][f"{phase}_median_s"] for k in kinds]
        ax.bar(kinds, values, bottom=bottom, color=color, label=phase)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    for i, total in enumerate(bottom):
        ax.text(i, total, f"{total:.1f} s", ha="center", va="bottom", fontsize=8)
    ax.set_title("5. a release into a fresh venv on one device", fontsize=10)
    ax.set_ylabel("seconds")
    ax.legend(fontsize=8)


def panel_speedups(ax: Any, res: dict[str, Any]) -> None:
    labels, speedups = [], []
    inv, flt, cli, ro = (
        res.get(f) for f in ("inventory.json", "filters.json", "client.json", "rollout.json")
    )
    if inv:
        size = next((s for s in inv["results"] if s["devices"] == 10_000), inv["results"][0])
        labels.append(f"inventory, {size['devices']:,} devices\nvs static YAML")
        speedups.append(1 / size["sources"]["supabase"]["ratio_to_static"])
    if flt:
        w = flt["workloads"]["scheduled"]
        labels.append(f"{flt['count']:,} windows\nvs pytz")
        speedups.append(w["pytz_seconds"] / w["filter_seconds"])
    if cli:
        first = cli["first_audio_out_s"]
        labels.append("first audio out\nvs Javia download-first")
        speedups.append(first["javia_download_first"]["median"] / first["streaming"]["median"])
    if ro and ro.get("upgrade"):
        labels.append(f"upgrade {ro['hosts']} hosts\nvs seeds' pip + PyPI")
        speedups.append(ro["upgrade"]["speedup"])
    hbars(
        ax,
        labels,
        speedups,
        title="6. speed-up over each baseline (x, higher is better)",
        unit="x",
        colors=["tab:cyan"] * len(labels),
    )
    ax.set_xscale("log")
    ax.axvline(1, color="black", linewidth=0.8)


def chart(res: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 (only the chart needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    ro, inst = res.get("rollout.json"), res.get("installer.json")
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    hosts = ro["hosts"] if ro else "?"
    fig.suptitle(
        f"voice-fleet benchmarks (2-core machine, simulated fleet of {hosts} devices; medians)", fontsize=13
    )
    if ro and "one_batch" in ro.get("upgrade", {}):
        panel_upgrade(axes[0][0], ro)
        panel_where(axes[0][1], ro)
    if ro and "one_batch" in ro.get("rerun", {}):
        panel_rerun(axes[0][2], ro)
    if ro and ro.get("cold"):
        panel_cold(axes[1][0], ro)
    if inst:
        panel_installer(axes[1][1], inst)
    panel_speedups(axes[1][2], res)
    for ax in axes.flat:
        if not ax.has_data():
            ax.set_axis_off()
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--reuse", nargs="*", default=[], choices=list(BENCHMARKS), help="read their latest JSON"
    )
    parser.add_argument(
        "--summary-only", action="store_true", help="run nothing: table and chart from the JSON"
    )
    parser.add_argument(
        "--quick", action="store_true", help="every benchmark in its quick mode (checks the scripts)"
    )
    parser.add_argument("--chart", type=Path, default=CHART, help=f"where the PNG goes (default {CHART})")
    args = parser.parse_args()

    sources: dict[str, dict[str, Any]] = {}
    for name, (_, files) in BENCHMARKS.items():
        if args.summary_only or name in args.reuse:
            sources[name] = {"ran": False, "results_from": {f: file_time(f) for f in files}}
        else:
            seconds = run(name, args.quick, [])
            sources[name] = {"ran": True, "minutes": round(seconds / 60, 1)}
    results = {f: load(f) for _, files in BENCHMARKS.values() for f in files}
    missing = [f for f, data in results.items() if data is None]
    table = rows(results)
    print_table(table)
    for name, source in sources.items():
        how = (
            f"ran now ({source['minutes']} min)"
            if source["ran"]
            else f"latest results {source['results_from']}"
        )
        print(f"  {name}: {how}")
    if missing:
        print(f"  not available: {', '.join(missing)} (run the benchmark that writes them)")
    failed = failures(results)
    for line in failed:
        print(f"  failed, left out of the table: {line.splitlines()[0][:160]}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {
        "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "sources": sources,
        "rows": table,
        "failed": failed,
    }
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    notes = "".join(f"\nFailed, left out: {line.splitlines()[0]}\n" for line in failed)
    (RESULTS / "summary.md").write_text(markdown_table(table) + notes)
    chart(results, args.chart)
    print(f"written: {(RESULTS / 'summary.json').relative_to(ROOT)}, summary.md, {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

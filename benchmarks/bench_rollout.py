#!/usr/bin/env python3
"""Benchmark (not a test): rollouts on the simulated fleet, side by side with the alternatives.

    .venv/bin/python benchmarks/bench_rollout.py [--hosts 10] [--repeats 3] [--quick] [--keep-fleet]

Issue 9, items 1-5, on a fleet of its own (vf-bench, sshd on 127.0.0.1:2501..,
state in .cache/fleet-bench; work files, fact cache, wheelhouse cache and
rollout reports in .cache/bench/), every play with the repository's ansible.cfg:

1. cold provision (playbooks/site.yml) of 1, then 5, then N fresh devices: the
   per-host marginal cost. The controller's wheelhouse is built first, untimed
   for the plays and reported on its own (a one-off per lock and platform);
2. upgrade of N devices from 1.0.0 to 1.1.0, a release that changes code and
   one dependency pin (certifi): (a) playbooks/rollout.yml, batches ["100%"];
   (b) the seeds' way (benchmarks/playbooks/seed_upgrade.yml: a fresh venv and
   `pip install` from PyPI on every device, PyAudio compiled there), with the
   same forks and connection settings, runs alternating. Between runs the
   devices, the registry and the controller's wheelhouse go back to 1.0.0.
   Also: (a) with voice_release_installer=uv (first run installs uv on the
   devices), and (b) with pip's cache warm (a device that installed before);
3. an idempotent re-run of the rollout against a no-op play (ping + stat);
4. connection settings on that re-run: pipelining, ControlPersist, forks; and
   fact gathering (min+network, min, none) on a play that does only that. The
   plays pin `strategy: linear` (the free strategy broke the rollout, see
   docs/BENCHMARKS.md), so neither ANSIBLE_STRATEGY=free nor Mitogen's
   mitogen_linear applies to them: Mitogen (when it loads) is compared with
   SSH on the no-op play;
5. pip vs uv installing a release on one device (bench_installer.py).

Every run gets fresh SSH control sockets (a run never reuses the masters of
the run before). Prints a table and writes benchmarks/results/rollout.json and
installer.json. The fleet is removed at the end (--keep-fleet keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bench_installer
from fleetbench import (
    BENCH_DIR,
    BIN,
    RESULTS_DIR,
    ROOT,
    BenchError,
    Fleet,
    Player,
    PlayRun,
    breakdown,
    log,
    make_upgrade_source,
    merge_breakdowns,
    provision_share,
    restore,
    run_summary,
    set_registry_version,
    source_archive,
    stack_env,
    summary,
)

RESULTS = RESULTS_DIR / "rollout.json"
PHASES = ("cold", "upgrade", "release", "rerun", "connection", "installer")
PLAYS = ROOT / "playbooks"
OWN = ROOT / "benchmarks" / "playbooks"
V1 = "1.0.0"
V2 = "1.1.0"
# The dependency the upgrade changes: an older certifi than the lock's (a real, installable pin).
V2_PIN = "certifi==2026.7.22"
MITOGEN = "mitogen==0.3.54"
GOAL_UPGRADE_SPEEDUP = 10.0
GOAL_RERUN_RATIO = 2.0
DEFAULT_SSH_ARGS = (
    "-o ControlMaster=auto -o ControlPersist=120s -o ServerAliveInterval=15 -o ServerAliveCountMax=4"
)
NO_PERSIST_SSH_ARGS = "-o ControlMaster=no -o ServerAliveInterval=15 -o ServerAliveCountMax=4"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.fleet = Fleet(stack_env())
        self.player = Player(self.fleet, BENCH_DIR)
        self.names = self.fleet.names(args.hosts)
        self.v2_source = BENCH_DIR / "sources" / V2 / "voice_client"
        self.v2_archive = BENCH_DIR / "sources" / f"voice_client-{V2}.tar.gz"
        self.snapshot = BENCH_DIR / "wheelhouse.v1"
        self.v1_release = ""
        self.platform = ""
        self.at = V1
        self.runs = 0

    # -- helpers

    def play(self, label: str, playbook: Path, *args: str, limit: str | None = None, **env: str) -> PlayRun:
        """A timed play with fresh SSH control sockets (no master of a run before is reused)."""
        self.runs += 1
        control = BENCH_DIR / "cp" / f"{self.runs:03d}"
        control.mkdir(parents=True, exist_ok=True)
        env = {"ANSIBLE_SSH_CONTROL_PATH_DIR": str(control), **env}
        return self.player.play(label, playbook, *args, limit=limit, env=env)

    def common(self) -> list[str]:
        return ["-e", f"voice_release_cache_dir={self.player.wheelhouse}"]

    def rollout_args(self, *extra: str) -> list[str]:
        return [
            *self.common(),
            *("-e", f"rollout_source={self.v2_source}"),
            *("-e", json.dumps({"rollout_batches": ["100%"]})),
            *extra,
        ]

    def reset_to_v1(self) -> None:
        """Devices, registry and controller cache as they were before the upgrade (untimed)."""
        script = f"""
cd /opt/voice-client
ln -sfn releases/{self.v1_release} current.bench && mv -T current.bench current
rm -f previous
for r in releases/*; do [ "${{r#releases/}}" = {self.v1_release} ] || rm -rf "$r"; done
cd wheels/{self.platform}
{{ ls | grep -vxF -f /root/bench-v1-wheels.txt || true; }} | xargs -r rm -f
systemctl restart voice-client.service
"""
        for name in self.names:
            self.fleet.exec(name, script)
        set_registry_version(self.fleet.stack, self.names, V1)
        restore(self.player.wheelhouse, self.snapshot)
        self.at = V1

    # -- 1. cold provision

    def cold(self) -> dict[str, Any]:
        args = self.args
        self.fleet.down()
        shutil.rmtree(self.player.wheelhouse, ignore_errors=True)
        steps = sorted({1, min(5, args.hosts), args.hosts})
        results: dict[str, Any] = {"runs": {}}
        provisioned = 0
        for index, count in enumerate(steps):
            if provisioned + count > 15 or index == len(steps) - 1:
                self.fleet.down()
                provisioned = 0
            self.fleet.up(provisioned + count)
            hosts = self.fleet.names(provisioned + count)[provisioned:]
            if index == 0:
                warm = self.play(
                    "controller wheelhouse from scratch",
                    OWN / "wheelhouse.yml",
                    "-e",
                    f"bench_source={ROOT / 'voice_client'}",
                    "-e",
                    f"bench_cache_dir={self.player.wheelhouse}",
                    limit=hosts[0],
                )
                results["controller_wheelhouse_s"] = round(warm.seconds, 2)
            shutil.rmtree(self.player.facts, ignore_errors=True)
            run = self.play(
                f"cold provision of {count}", PLAYS / "site.yml", *self.common(), limit=",".join(hosts)
            )
            results["runs"][str(count)] = {
                "seconds": round(run.seconds, 2),
                "breakdown": breakdown(run.timing),
            }
            provisioned += count
        xs = [int(k) for k in results["runs"]]
        ys = [results["runs"][str(x)]["seconds"] for x in xs]
        if len(xs) > 1:
            slope, intercept = linear_fit(xs, ys)
            results["per_host_marginal_s"] = round(slope, 2)
            results["fixed_s"] = round(intercept, 2)
        # The fleet now holds args.hosts devices on 1.0.0: remember what 1.0.0 left on them.
        marker = json.loads(self.fleet.exec(self.names[0], "cat /opt/voice-client/current/.build-complete"))
        self.v1_release, self.platform = marker["release"], marker["platform"]
        for name in self.names:
            self.fleet.exec(name, f"ls /opt/voice-client/wheels/{self.platform} > /root/bench-v1-wheels.txt")
        if self.snapshot.exists():
            shutil.rmtree(self.snapshot)
        shutil.copytree(self.player.wheelhouse, self.snapshot, copy_function=os.link)
        return results

    # -- 2. upgrade

    def upgrade(self) -> dict[str, Any]:
        make_upgrade_source(self.v2_source, V2, V2_PIN, BIN / "uv")
        source_archive(self.v2_source, self.v2_archive)
        self.play("seeds: prepare the devices (untimed)", OWN / "seed_prepare.yml")
        runs: dict[str, list[PlayRun]] = {"rollout": [], "seeds": []}
        for repeat in range(self.args.repeats):
            order = ["rollout", "seeds"] if repeat % 2 == 0 else ["seeds", "rollout"]
            for method in order:
                if method == "rollout":
                    if self.at != V1:
                        self.reset_to_v1()
                    runs["rollout"].append(
                        self.play(
                            f"upgrade {repeat + 1}: rollout", PLAYS / "rollout.yml", *self.rollout_args()
                        )
                    )
                    self.at = V2
                else:
                    runs["seeds"].append(self.seeds(f"upgrade {repeat + 1}: seeds (pip from PyPI)"))
        result: dict[str, Any] = {
            "from": V1,
            "to": V2,
            "dependency_change": V2_PIN,
            "rollout": {
                **run_summary(runs["rollout"]),
                "where": merge_breakdowns(runs["rollout"]),
            },
            "seeds": {
                **run_summary(runs["seeds"]),
                "where": merge_breakdowns(runs["seeds"]),
            },
        }
        # The rollout with uv: the first run installs uv on every device, the second finds it there.
        uv_runs = []
        for attempt in ("uv installed on the devices", "uv already on the devices"):
            self.reset_to_v1()
            uv_runs.append(
                self.play(
                    f"upgrade: rollout with uv ({attempt})",
                    PLAYS / "rollout.yml",
                    *self.rollout_args("-e", "voice_release_installer=uv"),
                )
            )
            self.at = V2
        result["rollout_uv_first_s"] = round(uv_runs[0].seconds, 2)
        result["rollout_uv_s"] = round(uv_runs[1].seconds, 2)
        result["rollout_uv_where"] = breakdown(uv_runs[1].timing)
        if not self.args.quick:
            self.seeds("seeds with pip's cache: filling it (untimed)", cache=True)
            warm = self.seeds("upgrade: seeds with pip's cache warm", cache=True)
            result["seeds_pip_cache_warm_s"] = round(warm.seconds, 2)
        rollout, seeds = result["rollout"]["median_s"], result["seeds"]["median_s"]
        result["speedup"] = round(seeds / rollout, 2)
        result["goal"] = {"speedup": GOAL_UPGRADE_SPEEDUP, "met": seeds / rollout >= GOAL_UPGRADE_SPEEDUP}
        return result

    def seeds(self, label: str, *, cache: bool = False) -> PlayRun:
        return self.play(
            label,
            OWN / "seed_upgrade.yml",
            *("-e", f"bench_source_archive={self.v2_archive}"),
            *("-e", f"bench_pip_cache={str(cache).lower()}"),
        )

    def release_only(self) -> dict[str, Any]:
        """The same upgrade with the voice_release role alone: the method, without the rollout around it."""
        runs = []
        for repeat in range(self.args.repeats):
            self.reset_to_v1()
            runs.append(
                self.play(
                    f"upgrade {repeat + 1}: voice_release role only",
                    OWN / "release_only.yml",
                    *self.common(),
                    *("-e", f"voice_release_source={self.v2_source}"),
                )
            )
            self.at = V2
        return {**run_summary(runs), "where": merge_breakdowns(runs)}

    # -- 3. idempotent re-run and connection settings

    def ensure_v2(self) -> None:
        if self.at != V2:
            self.reset_to_v1()
            self.play("bring the fleet to 1.1.0 (untimed)", PLAYS / "rollout.yml", *self.rollout_args())
            self.at = V2

    def rerun(self) -> dict[str, Any]:
        self.ensure_v2()
        runs: dict[str, list[PlayRun]] = {"rollout": [], "noop": []}
        for repeat in range(self.args.repeats):
            order = ["rollout", "noop"] if repeat % 2 == 0 else ["noop", "rollout"]
            for kind in order:
                if kind == "rollout":
                    runs[kind].append(
                        self.play(
                            f"re-run {repeat + 1}: rollout", PLAYS / "rollout.yml", *self.rollout_args()
                        )
                    )
                else:
                    runs[kind].append(self.play(f"re-run {repeat + 1}: no-op", OWN / "noop.yml"))
        changed = sum(s.get("changed", 0) for s in runs["rollout"][-1].timing.get("stats", {}).values())
        rollout, noop = (statistics.median(r.seconds for r in runs[k]) for k in ("rollout", "noop"))
        # How much of a re-run re-checks provisioning and the release that is already there.
        shares = [provision_share(r.timing) for r in runs["rollout"]]
        split = {key: round(statistics.median(s[key] for s in shares), 2) for key in shares[0]}
        return {
            "rollout": {
                **run_summary(runs["rollout"]),
                "where": merge_breakdowns(runs["rollout"]),
                "split": split,
                "without_provision_and_release_s": round(rollout - split["provision_and_release_s"], 2),
            },
            "noop": run_summary(runs["noop"]),
            "changed_tasks": changed,
            "ratio": round(rollout / noop, 2),
            "goal": {"ratio": GOAL_RERUN_RATIO, "met": rollout / noop <= GOAL_RERUN_RATIO},
        }

    def connection(self) -> dict[str, Any]:
        self.ensure_v2()
        variants: dict[str, dict[str, str]] = {
            "ansible.cfg (pipelining, ControlPersist 120s, forks 20, linear)": {},
            "pipelining off": {"ANSIBLE_PIPELINING": "False"},
            "ControlPersist off": {"ANSIBLE_SSH_ARGS": NO_PERSIST_SSH_ARGS},
            "forks 5": {"ANSIBLE_FORKS": "5"},
            "forks 10": {"ANSIBLE_FORKS": "10"},
        }
        samples: dict[str, list[PlayRun]] = {name: [] for name in variants}
        errors: dict[str, str] = {}
        for repeat in range(self.args.connection_repeats):
            names = list(variants) if repeat % 2 == 0 else list(reversed(variants))
            for name in names:
                if name in errors:
                    continue
                try:
                    run = self.play(
                        f"settings {repeat + 1}: {name}",
                        PLAYS / "rollout.yml",
                        *self.rollout_args(),
                        **variants[name],
                    )
                    samples[name].append(run)
                except BenchError as exc:
                    errors[name] = str(exc).splitlines()[0]
                    log(f"{name}: failed, left out: {errors[name]}")
        base = statistics.median(r.seconds for r in samples[next(iter(variants))])
        result: dict[str, Any] = {"play": "idempotent re-run of playbooks/rollout.yml", "variants": {}}
        for name, runs in samples.items():
            if runs:
                result["variants"][name] = {
                    **run_summary(runs),
                    "ratio_to_cfg": round(statistics.median(r.seconds for r in runs) / base, 3),
                }
            else:
                result["variants"][name] = {"error": errors.get(name, "no run")}
        mitogen = self.mitogen()
        if mitogen:
            result["mitogen_noop"] = self.mitogen_noop(mitogen)
        result["facts"] = self.facts()
        return result

    def mitogen_noop(self, mitogen: dict[str, str]) -> dict[str, Any]:
        """Mitogen's strategy against SSH on the no-op play (the rollout's plays pin linear)."""
        runs: dict[str, list[PlayRun]] = {"ssh": [], "mitogen": []}
        for repeat in range(max(2, self.args.connection_repeats)):
            for kind in ("ssh", "mitogen") if repeat % 2 == 0 else ("mitogen", "ssh"):
                env = mitogen if kind == "mitogen" else {}
                runs[kind].append(self.play(f"no-op {repeat + 1}: {kind}", OWN / "noop.yml", **env))
        return {kind: run_summary(values) for kind, values in runs.items()}

    def mitogen(self) -> dict[str, str]:
        """Mitogen's strategy plugins from PyPI into the bench directory (never into .venv)."""
        target = BENCH_DIR / "mitogen"
        if not (target / "ansible_mitogen").is_dir():
            proc = subprocess.run(
                [
                    str(BIN / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--no-deps",
                    "--target",
                    str(target),
                    MITOGEN,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                log(f"Mitogen could not be installed, left out: {proc.stderr.strip()[-300:]}")
                return {}
        return {
            "ANSIBLE_STRATEGY_PLUGINS": str(target / "ansible_mitogen" / "plugins" / "strategy"),
            "ANSIBLE_STRATEGY": "mitogen_linear",
        }

    def facts(self) -> dict[str, Any]:
        subsets = {"min + network (the plays)": ["min", "network"], "min": ["min"], "none (ping only)": []}
        samples: dict[str, list[float]] = {name: [] for name in subsets}
        for repeat in range(self.args.repeats):
            names = list(subsets) if repeat % 2 == 0 else list(reversed(subsets))
            for name in names:
                run = self.play(
                    f"facts {repeat + 1}: {name}",
                    OWN / "facts.yml",
                    "-e",
                    json.dumps({"bench_subset": subsets[name]}),
                )
                samples[name].append(run.seconds)
        return {name: summary(values) for name, values in samples.items()}


def linear_fit(xs: list[int], ys: list[float]) -> tuple[float, float]:
    """Least squares slope and intercept."""
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    return slope, mean_y - slope * mean_x


def print_cold(co: dict[str, Any]) -> None:
    print("\ncold provision (playbooks/site.yml):")
    for count, run in co["runs"].items():
        print(f"  {count:>3} host(s): {run['seconds']:7.1f} s")
    if "per_host_marginal_s" in co:
        print(f"  per-host marginal cost {co['per_host_marginal_s']:.1f} s, fixed {co['fixed_s']:.1f} s")
    print(f"  controller wheelhouse from scratch (one-off per lock): {co['controller_wheelhouse_s']:.1f} s")


def print_upgrade(up: dict[str, Any], release_only: dict[str, Any] | None) -> None:
    print(f"\nupgrade {up['from']} -> {up['to']} ({up['dependency_change']}):")
    print(f"  (a) rollout            {up['rollout']['median_s']:7.1f} s")
    print(f"  (b) seeds, pip + PyPI  {up['seeds']['median_s']:7.1f} s   (b)/(a) = {up['speedup']:.2f}x")
    first = up["rollout_uv_first_s"]
    print(f"  (a) with uv            {up['rollout_uv_s']:7.1f} s   (first, installing uv: {first:.1f} s)")
    if "seeds_pip_cache_warm_s" in up:
        print(f"  (b) pip cache warm     {up['seeds_pip_cache_warm_s']:7.1f} s")
    if release_only:
        print(f"  voice_release alone    {release_only['median_s']:7.1f} s   (no provisioning, no registry)")
    print(f"  goal (b)/(a) >= {GOAL_UPGRADE_SPEEDUP:g}x: {'met' if up['goal']['met'] else 'MISSED'}")


def print_rerun(re_: dict[str, Any]) -> None:
    print("\nidempotent re-run:")
    rollout, noop = re_["rollout"]["median_s"], re_["noop"]["median_s"]
    print(f"  rollout {rollout:6.1f} s, no-op {noop:6.1f} s, ratio {re_['ratio']:.2f}")
    print(f"  goal <= {GOAL_RERUN_RATIO:g}x the no-op: {'met' if re_['goal']['met'] else 'MISSED'}")
    split = re_["rollout"]["split"]
    print(
        f"  of which provisioning and release checks {split['provision_and_release_s']:.1f} s, "
        f"other tasks {split['other_tasks_s']:.1f} s ({re_['rollout']['where']['tasks_run']} tasks)"
    )


def print_connection(conn: dict[str, Any]) -> None:
    print("\nconnection settings (idempotent re-run of the rollout):")
    for name, v in conn["variants"].items():
        if "error" in v:
            print(f"  {name:<62} failed: {v['error'][:80]}")
        else:
            print(f"  {name:<62} {v['median_s']:6.1f} s  {v['ratio_to_cfg']:5.2f}x")
    if "mitogen_noop" in conn:
        mn = conn["mitogen_noop"]
        print(f"  no-op play: ssh {mn['ssh']['median_s']:.1f} s, Mitogen {mn['mitogen']['median_s']:.1f} s")
    print("  fact gathering (ping + setup):")
    for name, v in conn["facts"].items():
        print(f"    {name:<30} {v['median_s']:6.1f} s")


def print_table(result: dict[str, Any]) -> None:
    print(
        f"\nrollout benchmarks on {result['hosts']} simulated devices (medians of {result['repeats']} runs)"
    )
    if result.get("cold"):
        print_cold(result["cold"])
    if result.get("upgrade"):
        print_upgrade(result["upgrade"], result.get("release_only"))
    if result.get("rerun"):
        print_rerun(result["rerun"])
    if result.get("connection"):
        print_connection(result["connection"])


def run_phases(bench: Bench, phases: list[str], result: dict[str, Any]) -> dict[str, Any] | None:
    """Run the phases into result; the installer's result (it has a file of its own), if it ran."""
    result["cold"] = bench.cold()
    steps = {
        "upgrade": ("upgrade", bench.upgrade),
        "release": ("release_only", bench.release_only),
        "rerun": ("rerun", bench.rerun),
        "connection": ("connection", bench.connection),
    }
    for phase in phases:
        if phase in steps:
            key, step = steps[phase]
            result[key] = step()
    if "installer" in phases:
        args = bench.args
        return bench_installer.measure(
            bench.fleet, bench.names[0], args.installer_runs, bench.player.wheelhouse
        )
    return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=10, help="devices (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each timed play (default 3)")
    parser.add_argument(
        "--connection-repeats", type=int, default=2, help="runs per connection setting (default 2)"
    )
    parser.add_argument("--installer-runs", type=int, default=5, help="runs of each installer (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 devices, 1 run each: checks the script")
    parser.add_argument("--keep-fleet", action="store_true", help="leave the benchmark fleet up at the end")
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated, cold first (it makes the fleet the others use); default {','.join(PHASES)}",
    )
    args = parser.parse_args()
    if args.quick:
        args.hosts, args.repeats, args.connection_repeats, args.installer_runs = 2, 1, 1, 1
    if not 2 <= args.hosts <= 20:
        sys.exit(f"--hosts must be 2..20, got {args.hosts}")

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    bench = Bench(args)
    began = time.perf_counter()
    load = os.getloadavg()[0]
    result: dict[str, Any] = {
        "benchmark": "rollout",
        "hosts": args.hosts,
        "repeats": args.repeats,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_before": round(load, 2),
        },
    }
    phases = args.phases.split(",")
    unknown = sorted(set(phases) - set(PHASES))
    if unknown or phases[0] != "cold":
        sys.exit(f"--phases: cold first, then any of {', '.join(PHASES[1:])}; got {args.phases!r}")
    if set(phases) != set(PHASES) and RESULTS.exists():
        # A partial run updates the phases it ran in the latest results.
        result = {**json.loads(RESULTS.read_text()), **result}
    try:
        installer = run_phases(bench, phases, result)
    except BenchError as exc:
        sys.exit(f"bench_rollout: {exc}")
    finally:
        if not args.keep_fleet:
            bench.fleet.down()
    result["minutes"] = round((time.perf_counter() - began) / 60, 1)
    print_table(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {RESULTS.relative_to(ROOT)}")
    if installer is not None:
        installer["machine"] = result["machine"]
        bench_installer.print_table(installer)
        bench_installer.RESULTS.write_text(json.dumps(installer, indent=2) + "\n")
        print(f"written: {bench_installer.RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

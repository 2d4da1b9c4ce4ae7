#!/usr/bin/env python3
"""Benchmark (not a test): rollouts on the simulated fleet, side by side with the alternatives.

    .venv/bin/python benchmarks/bench_rollout.py [--hosts 10] [--repeats 3] [--quick] [--keep-fleet]
        [--phases cold,upgrade,rerun,...] [--extras seeds_warm]

Issues 9 and 12, on a fleet of its own (vf-bench, sshd on 127.0.0.1:2501..,
state in .cache/fleet-bench; work files, fact cache, wheelhouse cache, rollout
source snapshots and reports in .cache/bench/), every play with the
repository's ansible.cfg. Phases (cold first: it makes the fleet the others use):

cold        playbooks/site.yml on 1, then 5, then N fresh devices: the per-host
            marginal cost (issue 12: at least halved from 18.1 s). The controller's
            wheelhouse is built first, untimed for the plays, reported on its own;
upgrade     N devices from 1.0.0 to 1.1.0, a release that changes code and one
            dependency pin (certifi), three ways, runs rotating their order:
            playbooks/rollout.yml with rollout_batches ["100%"] (goal <= 0.4x the
            seeds), the same with the play's default canary batches (no override;
            goal <= 1.0x), and the seeds' way (benchmarks/playbooks/seed_upgrade.yml:
            a fresh venv and `pip install` from PyPI on every device, PyAudio
            compiled there). Before each rollout the devices, the registry and the
            controller's wheelhouse go back to 1.0.0. Per rollout: the controller's
            CPU per device (goal <= 1 s), registry requests per batch (goal <= 5)
            and the tasks each device ran;
rerun       an idempotent re-run against a no-op play (ping + stat), same settings and batches
            (goal <= 1.5x). Each re-run follows an untimed rollout to 1.1.0 with the
            same -e arguments (nothing reset in between: devices and registry are as
            a real rollout left them), for ["100%"] and for the default batches;
release     the voice_release role alone (benchmarks/playbooks/release_only.yml);
uv          the one-batch upgrade with voice_release_installer=uv (not in the
            default phases: see docs/BENCHMARKS.md);
connection  pipelining, ControlPersist, forks on the re-run; fact gathering;
            Mitogen on the no-op play;
installer   pip vs uv installing a release on one device (bench_installer.py).

Registry requests are counted in the gateway's access log
(<VF_STACK_DIR or .stack>/log/nginx-access.log, the lines a run added): run it
on a stack of its own when other runs use .stack, e.g.

    export VF_STACK_DIR=$PWD/.cache/bench/stack VF_STACK_PORT=54421
    .venv/bin/python tools/stack.py up && . $VF_STACK_DIR/env

Every run gets fresh SSH control sockets (a run never reuses the masters of
the run before). Prints a table and writes benchmarks/results/rollout.json (a
run of some phases keeps the other phases' latest results) and installer.json.
The fleet is removed at the end (--keep-fleet keeps it).
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
import yaml
from fleetbench import (
    BENCH_DIR,
    BIN,
    RESULTS_DIR,
    ROOT,
    BenchError,
    Fleet,
    Player,
    PlayRun,
    batches_run,
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
    tasks_per_host,
)

RESULTS = RESULTS_DIR / "rollout.json"
PHASES = ("cold", "upgrade", "rerun", "release", "uv", "connection", "installer")
DEFAULT_PHASES = ("cold", "upgrade", "rerun", "release", "connection", "installer")
PLAYS = ROOT / "playbooks"
OWN = ROOT / "benchmarks" / "playbooks"
V1 = "1.0.0"
V2 = "1.1.0"
# The dependency the upgrade changes: an older certifi than the lock's (a real, installable pin).
V2_PIN = "certifi==2026.7.22"
MITOGEN = "mitogen==0.3.54"
# Issue 12's goals (ratios to the baseline of each row, or absolute).
GOAL_UPGRADE_ONE_BATCH = 0.4  # rollout, rollout_batches ["100%"] / seeds
GOAL_UPGRADE_CANARY = 1.0  # rollout, default batches / seeds
GOAL_RERUN_RATIO = 1.5  # idempotent re-run / no-op play
GOAL_CPU_PER_DEVICE_S = 1.0  # controller CPU per upgraded device
GOAL_REQUESTS_PER_BATCH = 5.0  # registry requests per batch (gateway log)
COLD_MARGINAL_BEFORE_S = 18.1  # cold provision, per extra device, before issue 12
GOAL_COLD_MARGINAL_S = COLD_MARGINAL_BEFORE_S / 2
# The rollout's batch settings measured: one batch, and the play's own default
# (playbooks/vars/rollout.yml: a canary, then 10%, 50%, 100%).
BATCHES: dict[str, list[Any] | None] = {"one_batch": ["100%"], "canary": None}
DEFAULT_SSH_ARGS = (
    "-o ControlMaster=auto -o ControlPersist=120s -o ServerAliveInterval=15 -o ServerAliveCountMax=4"
)
NO_PERSIST_SSH_ARGS = "-o ControlMaster=no -o ServerAliveInterval=15 -o ServerAliveCountMax=4"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.fleet = Fleet(stack=stack_env())
        self.player = Player(self.fleet, BENCH_DIR)
        self.names = self.fleet.names(args.hosts)
        self.v2_source = BENCH_DIR / "sources" / V2 / "voice_client"
        self.v2_archive = BENCH_DIR / "sources" / f"voice_client-{V2}.tar.gz"
        self.snapshot = BENCH_DIR / "wheelhouse.v1"
        self.v1_release = ""
        self.platform = ""
        self.at = V1
        self.runs = 0
        self.made_v2 = False

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

    def rollout_args(self, *extra: str, batches: str = "one_batch") -> list[str]:
        """The rollout's -e arguments: the same every time for the same batches (a re-run is one).

        batches: a key of BATCHES; "canary" passes no rollout_batches, so the play's
        default batches apply.
        """
        chosen = BATCHES[batches]
        return [
            *self.common(),
            *("-e", f"rollout_source={self.v2_source}"),
            *("-e", f"rollout_cache_dir={BENCH_DIR / 'rollout'}"),
            *(("-e", json.dumps({"rollout_batches": chosen})) if chosen is not None else ()),
            *extra,
        ]

    def serial(self, batches: str) -> list[Any]:
        """The batch sizes a key of BATCHES stands for (the play's own default for "canary")."""
        chosen = BATCHES[batches]
        if chosen is None:
            chosen = yaml.safe_load((PLAYS / "vars" / "rollout.yml").read_text())["rollout_batches"]
        return list(chosen)

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
rm -f /run/voice-client-update.lock  # a lock a run cut short left behind is no part of 1.0.0's state
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
                "controller_cpu_s": run.controller_cpu_s,
                "registry_requests": run.registry["requests"],
                "tasks_per_device": tasks_per_host(run.timing, hosts),
                "breakdown": breakdown(run.timing),
            }
            provisioned += count
        xs = [int(k) for k in results["runs"]]
        ys = [results["runs"][str(x)]["seconds"] for x in xs]
        if len(xs) > 1:
            slope, intercept = linear_fit(xs, ys)
            results["per_host_marginal_s"] = round(slope, 2)
            results["fixed_s"] = round(intercept, 2)
            results["goal"] = {
                "before_s": COLD_MARGINAL_BEFORE_S,
                "max_s": round(GOAL_COLD_MARGINAL_S, 2),
                "met": slope <= GOAL_COLD_MARGINAL_S,
            }
        # The fleet now holds args.hosts devices on 1.0.0: remember what 1.0.0 left on them.
        marker = json.loads(self.fleet.exec(self.names[0], "cat /opt/voice-client/current/.build-complete"))
        self.v1_release, self.platform = marker["release"], marker["platform"]
        for name in self.names:
            self.fleet.exec(name, f"ls /opt/voice-client/wheels/{self.platform} > /root/bench-v1-wheels.txt")
        if self.snapshot.exists():
            shutil.rmtree(self.snapshot)
        shutil.copytree(self.player.wheelhouse, self.snapshot, copy_function=os.link)
        return results

    def reuse(self) -> None:
        """Take the fleet a cold phase of an earlier run left (--keep-fleet or a run cut short)."""
        releases = self.fleet.exec(self.names[0], "ls /opt/voice-client/releases").split()
        marker = json.loads(self.fleet.exec(self.names[0], "cat /opt/voice-client/current/.build-complete"))
        self.v1_release = next(r for r in releases if r.startswith(V1 + "-"))
        self.platform = marker["platform"]
        if not self.snapshot.is_dir():
            raise BenchError(f"{self.snapshot} is missing: run the cold phase")
        self.at = V2

    # -- 2. upgrade

    def upgrade(self) -> dict[str, Any]:
        """The upgrade V1 -> V2 three ways, side by side, runs rotating their order.

        rollout with rollout_batches ["100%"], rollout with the play's default
        (canary) batches, and the seeds' method. Before each rollout the devices,
        the registry and the controller's wheelhouse go back to V1.
        """
        self.make_v2()
        self.play("seeds: prepare the devices (untimed)", OWN / "seed_prepare.yml")
        methods = [*BATCHES, "seeds"]
        runs: dict[str, list[PlayRun]] = {m: [] for m in methods}
        for repeat in range(self.args.repeats):
            order = methods[repeat % len(methods) :] + methods[: repeat % len(methods)]
            for method in order:
                if method == "seeds":
                    runs["seeds"].append(self.seeds(f"upgrade {repeat + 1}: seeds (pip from PyPI)"))
                    continue
                self.reset_to_v1()
                runs[method].append(
                    self.play(
                        f"upgrade {repeat + 1}: rollout ({method})",
                        PLAYS / "rollout.yml",
                        *self.rollout_args(batches=method),
                    )
                )
                self.at = V2
        # The same one-batch upgrade of one device: what the controller spends once per run
        # (the play, the inventory, the release's resolution and wheelhouse) against what each
        # further device adds.
        self.reset_to_v1()
        one = self.play(
            "upgrade: rollout (one_batch) of one device",
            PLAYS / "rollout.yml",
            *self.rollout_args(batches="one_batch"),
            limit=self.names[0],
        )
        seeds = statistics.median(r.seconds for r in runs["seeds"])
        result: dict[str, Any] = {
            "from": V1,
            "to": V2,
            "dependency_change": V2_PIN,
            "seeds": {
                **run_summary(runs["seeds"]),
                "where": merge_breakdowns(runs["seeds"]),
                "tasks_per_device": tasks_per_host(runs["seeds"][0].timing, self.names),
            },
        }
        goals = {"one_batch": GOAL_UPGRADE_ONE_BATCH, "canary": GOAL_UPGRADE_CANARY}
        for method in BATCHES:
            result[method] = self.rollout_result(runs[method], seeds, goals[method])
        cpu_all = statistics.median(r.controller_cpu_s for r in runs["one_batch"])
        marginal = (cpu_all - one.controller_cpu_s) / (len(self.names) - 1)
        result["one_batch"]["controller_cpu_split"] = {
            "one_device_s": one.controller_cpu_s,
            "one_device_wall_s": round(one.seconds, 2),
            "per_extra_device_s": round(marginal, 2),
            "fixed_s": round(one.controller_cpu_s - marginal, 2),
        }
        # The old key, for older readers: the one-batch rollout.
        result["rollout"] = result["one_batch"]
        result["speedup"] = round(seeds / result["one_batch"]["median_s"], 2)
        if "seeds_warm" in self.args.extras:
            self.seeds("seeds with pip's cache: filling it (untimed)", cache=True)
            warm = self.seeds("upgrade: seeds with pip's cache warm", cache=True)
            result["seeds_pip_cache_warm_s"] = round(warm.seconds, 2)
        return result

    def rollout_result(self, runs: list[PlayRun], seeds: float, goal: float) -> dict[str, Any]:
        """One rollout setting's upgrade runs: time against the seeds, CPU, registry, tasks."""
        median = statistics.median(r.seconds for r in runs)
        hosts = len(self.names)
        cpu_per_device = statistics.median(r.controller_cpu_s / hosts for r in runs)
        batches = [batches_run(r.timing) for r in runs]
        per_batch = [r.registry["requests"] / max(1, b) for r, b in zip(runs, batches, strict=True)]
        shares = [provision_share(r.timing) for r in runs]
        return {
            **run_summary(runs),
            "ratio_to_seeds": round(median / seeds, 3),
            "goal": {"ratio": goal, "met": median / seeds <= goal},
            "controller_cpu_per_device_s": round(cpu_per_device, 2),
            "cpu_goal": {"s": GOAL_CPU_PER_DEVICE_S, "met": cpu_per_device <= GOAL_CPU_PER_DEVICE_S},
            "batches": statistics.median(batches),
            "registry_requests": statistics.median(r.registry["requests"] for r in runs),
            "registry_record_progress": statistics.median(r.registry["record_progress"] for r in runs),
            "registry_requests_by_kind_first_run": runs[0].registry.get("by_request", {}),
            "registry_requests_per_batch": round(statistics.median(per_batch), 2),
            "requests_goal": {
                "per_batch": GOAL_REQUESTS_PER_BATCH,
                "met": statistics.median(per_batch) <= GOAL_REQUESTS_PER_BATCH,
            },
            "tasks_per_device": tasks_per_host(runs[0].timing, self.names),
            "split": {k: round(statistics.median(s[k] for s in shares), 2) for k in shares[0]},
            "where": merge_breakdowns(runs),
            "logs": [str(r.log.relative_to(ROOT)) for r in runs],
        }

    def uv(self) -> dict[str, Any]:
        """The one-batch upgrade with voice_release_installer=uv (first run installs uv on the devices)."""
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
        return {
            "rollout_uv_first_s": round(uv_runs[0].seconds, 2),
            "rollout_uv_s": round(uv_runs[1].seconds, 2),
            "rollout_uv_where": breakdown(uv_runs[1].timing),
        }

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

    def make_v2(self) -> None:
        """The 1.1.0 source the rollouts release (once per run; the same content every time)."""
        if not self.v2_archive.exists() or not self.made_v2:
            make_upgrade_source(self.v2_source, V2, V2_PIN, BIN / "uv")
            source_archive(self.v2_source, self.v2_archive)
            self.made_v2 = True

    def ensure_v2(self, batches: str = "one_batch") -> None:
        """The fleet and registry as a real rollout to V2 leaves them: V1, then an untimed rollout.

        The rollout uses the same -e arguments as the timed re-runs that follow (nothing
        is reset in between), so those are true re-runs of it.
        """
        self.make_v2()
        self.reset_to_v1()
        self.play(
            f"bring the fleet to {V2} ({batches}, untimed)",
            PLAYS / "rollout.yml",
            *self.rollout_args(batches=batches),
        )
        self.at = V2

    def rerun(self) -> dict[str, Any]:
        """Re-runs of the rollout that just ran (one batch and default batches) against the no-op play."""
        result: dict[str, Any] = {}
        noop_runs: dict[str, list[PlayRun]] = {}
        for batches in BATCHES:
            self.ensure_v2(batches)
            # The no-op play with the same batches: its cost per batch is the floor of the re-run's.
            noop_args = ("-e", json.dumps({"bench_batches": self.serial(batches)}))
            noop_runs[batches] = []
            runs: list[PlayRun] = []
            for repeat in range(self.args.rerun_repeats or self.args.repeats):
                order = ["rollout", "noop"] if repeat % 2 == 0 else ["noop", "rollout"]
                for kind in order:
                    if kind == "rollout":
                        runs.append(
                            self.play(
                                f"re-run {repeat + 1}: rollout ({batches})",
                                PLAYS / "rollout.yml",
                                *self.rollout_args(batches=batches),
                            )
                        )
                    else:
                        noop_runs[batches].append(
                            self.play(f"re-run {repeat + 1}: no-op ({batches})", OWN / "noop.yml", *noop_args)
                        )
            changed = [sum(s.get("changed", 0) for s in r.timing.get("stats", {}).values()) for r in runs]
            shares = [provision_share(r.timing) for r in runs]
            result[batches] = {
                **run_summary(runs),
                "where": merge_breakdowns(runs),
                "split": {k: round(statistics.median(s[k] for s in shares), 2) for k in shares[0]},
                "changed_tasks": max(changed),
                "batches": statistics.median(batches_run(r.timing) for r in runs),
                "registry_requests": max(r.registry["requests"] for r in runs),
                "registry_record_progress": max(r.registry["record_progress"] for r in runs),
                "controller_cpu_per_device_s": round(
                    statistics.median(r.controller_cpu_s / len(self.names) for r in runs), 2
                ),
                "tasks_per_device": tasks_per_host(runs[0].timing, self.names),
                "logs": [str(r.log.relative_to(ROOT)) for r in runs],
            }
        for batches in BATCHES:
            noop = {
                **run_summary(noop_runs[batches]),
                "batches": self.serial(batches),
                "tasks_per_device": tasks_per_host(noop_runs[batches][0].timing, self.names),
            }
            ratio = result[batches]["median_s"] / noop["median_s"]
            result[batches]["noop"] = noop
            result[batches]["ratio_to_noop"] = round(ratio, 3)
            result[batches]["goal"] = {"ratio": GOAL_RERUN_RATIO, "met": ratio <= GOAL_RERUN_RATIO}
        # Runs before the tenth measured every re-run against the one-batch no-op: kept for comparison.
        for batches in BATCHES:
            result[batches]["ratio_to_one_batch_noop"] = round(
                result[batches]["median_s"] / result["one_batch"]["noop"]["median_s"], 3
            )
        result["noop"] = result["one_batch"]["noop"]
        # The old keys, for older readers: the one-batch re-run.
        result["rollout"] = result["one_batch"]
        result["ratio"] = result["one_batch"]["ratio_to_noop"]
        result["goal"] = result["one_batch"]["goal"]
        return result

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
    if "goal" in co:
        print(
            f"  goal <= {co['goal']['max_s']:.2f} s per extra host (half of {co['goal']['before_s']:g} s): "
            f"{'met' if co['goal']['met'] else 'MISSED'}"
        )
    print(f"  controller wheelhouse from scratch (one-off per lock): {co['controller_wheelhouse_s']:.1f} s")


def print_upgrade(up: dict[str, Any], release_only: dict[str, Any] | None) -> None:
    print(f"\nupgrade {up['from']} -> {up['to']} ({up['dependency_change']}):")
    seeds = up["seeds"]["median_s"]
    print(f"  seeds, pip + PyPI (baseline)       {seeds:7.1f} s")
    for key, label in (("one_batch", 'rollout, batches ["100%"]'), ("canary", "rollout, default batches")):
        if key not in up:
            continue
        r = up[key]
        print(
            f"  {label:<34} {r['median_s']:7.1f} s  {r['ratio_to_seeds']:.2f}x seeds "
            f"(goal <= {r['goal']['ratio']:g}: {'met' if r['goal']['met'] else 'MISSED'})"
        )
        print(
            f"    controller CPU {r['controller_cpu_per_device_s']:.2f} s/device "
            f"({'met' if r['cpu_goal']['met'] else 'MISSED'}), {r['batches']:g} batches, "
            f"{r['registry_requests']:g} registry requests = {r['registry_requests_per_batch']:.1f}/batch "
            f"({'met' if r['requests_goal']['met'] else 'MISSED'}), tasks/device "
            f"{r['tasks_per_device'].get('executed', {}).get('median')} run, "
            f"{r['tasks_per_device'].get('with_skipped', {}).get('median')} with skipped"
        )
    split = up.get("one_batch", {}).get("controller_cpu_split")
    if split:
        print(
            f"    controller CPU of one device's upgrade {split['one_device_s']:.1f} s: "
            f"{split['fixed_s']:.1f} s once per run, {split['per_extra_device_s']:.2f} s per further device"
        )
    if "seeds_pip_cache_warm_s" in up:
        print(f"  seeds, pip cache warm              {up['seeds_pip_cache_warm_s']:7.1f} s")
    if release_only:
        print(f"  voice_release alone                {release_only['median_s']:7.1f} s")


def print_rerun(re_: dict[str, Any]) -> None:
    print("\nidempotent re-run (right after a rollout with the same arguments):")
    for key, label in (("one_batch", 'rollout, batches ["100%"]'), ("canary", "rollout, default batches")):
        r = re_.get(key)
        if not r:
            continue
        # Results before the tenth run have one no-op play, with one batch, for both.
        noop = r.get("noop", re_["noop"])
        same = json.dumps(noop.get("batches", ["100%"]))
        print(f"  no-op play (ping + stat), {same:<9} {noop['median_s']:7.1f} s")
        print(
            f"  {label:<34} {r['median_s']:7.1f} s  {r['ratio_to_noop']:.2f}x no-op "
            f"(goal <= {GOAL_RERUN_RATIO:g}: {'met' if r['goal']['met'] else 'MISSED'}); "
            f"changed {r['changed_tasks']}, registry requests {r['registry_requests']}, tasks/device "
            f"{r['tasks_per_device'].get('executed', {}).get('median')} run, "
            f"{r['tasks_per_device'].get('with_skipped', {}).get('median')} with skipped"
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


def rescore(result: dict[str, Any]) -> None:
    """Batches and requests per batch of the upgrade's rollouts again, from their timing files."""
    for key in BATCHES:
        r = result.get("upgrade", {}).get(key)
        if not r or "logs" not in r:
            continue
        batches = [
            batches_run(json.loads((ROOT / log_).with_suffix(".timing.json").read_text()))
            for log_ in r["logs"]
        ]
        r["batches"] = statistics.median(batches)
        r["registry_requests_per_batch"] = round(r["registry_requests"] / max(1, r["batches"]), 2)
        r["requests_goal"]["met"] = r["registry_requests_per_batch"] <= GOAL_REQUESTS_PER_BATCH
    for key in BATCHES:
        r = result.get("rerun", {}).get(key)
        if r and "logs" in r:
            r["batches"] = statistics.median(
                batches_run(json.loads((ROOT / log_).with_suffix(".timing.json").read_text()))
                for log_ in r["logs"]
            )


def save(result: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


def run_phases(bench: Bench, phases: list[str], result: dict[str, Any]) -> dict[str, Any] | None:
    """Run the phases into result, saved after each one (a run cut short keeps what it measured);
    the installer's result (it has a file of its own), if it ran."""
    if bench.args.reuse_fleet:
        bench.reuse()
    else:
        result["cold"] = bench.cold()
        save(result)
    steps = {
        "upgrade": ("upgrade", bench.upgrade),
        "release": ("release_only", bench.release_only),
        "rerun": ("rerun", bench.rerun),
        "uv": ("upgrade_uv", bench.uv),
        "connection": ("connection", bench.connection),
    }
    for phase in phases:
        if phase in steps:
            key, step = steps[phase]
            result[key] = step()
            save(result)
    if "installer" in phases:
        args = bench.args
        return bench_installer.measure(
            bench.fleet, bench.names[0], args.installer_runs, bench.player.wheelhouse
        )
    return None


def main() -> int:  # noqa: PLR0915 (one flat list of options and steps)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=10, help="devices (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each timed play (default 3)")
    parser.add_argument(
        "--rerun-repeats", type=int, default=0, help="runs of each re-run and no-op (default: --repeats)"
    )
    parser.add_argument(
        "--connection-repeats", type=int, default=2, help="runs per connection setting (default 2)"
    )
    parser.add_argument("--installer-runs", type=int, default=5, help="runs of each installer (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 devices, 1 run each: checks the script")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="run nothing: count the batches of the latest results again from their timing files",
    )
    parser.add_argument(
        "--reuse-fleet",
        action="store_true",
        help="no cold phase: take the fleet (and wheelhouse snapshot) an earlier run left",
    )
    parser.add_argument("--keep-fleet", action="store_true", help="leave the benchmark fleet up at the end")
    parser.add_argument(
        "--phases",
        default=",".join(DEFAULT_PHASES),
        help=(
            "comma-separated, cold first (it makes the fleet the others use), of "
            f"{','.join(PHASES)}; default {','.join(DEFAULT_PHASES)}"
        ),
    )
    parser.add_argument(
        "--extras",
        default="",
        help="comma-separated extra runs: seeds_warm (the seeds' upgrade with pip's cache warm)",
    )
    args = parser.parse_args()
    if args.quick:
        args.hosts, args.repeats, args.connection_repeats, args.installer_runs = 2, 1, 1, 1
    if not 2 <= args.hosts <= 20:
        sys.exit(f"--hosts must be 2..20, got {args.hosts}")

    if args.rescore:
        result = json.loads(RESULTS.read_text())
        rescore(result)
        save(result)
        print_table(result)
        return 0
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    bench = Bench(args)
    began = time.perf_counter()
    load = os.getloadavg()[0]
    result: dict[str, Any] = {
        "benchmark": "rollout",
        "hosts": args.hosts,
        "repeats": args.repeats,
        "phases": args.phases.split(","),
        "registry_log": str(bench.player.gateway.path),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_before": round(load, 2),
        },
    }
    phases = args.phases.split(",")
    args.extras = [e for e in args.extras.split(",") if e]
    unknown = sorted(set(phases) - set(PHASES))
    if args.reuse_fleet and phases[0] != "cold":
        phases.insert(0, "cold")  # only to pass the check below: reuse() stands in for it
    if unknown or phases[0] != "cold":
        sys.exit(f"--phases: cold first, then any of {', '.join(PHASES[1:])}; got {args.phases!r}")
    if set(phases) != set(DEFAULT_PHASES) and RESULTS.exists():
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
    save(result)
    print(f"written: {RESULTS.relative_to(ROOT)}")
    if installer is not None:
        installer["machine"] = result["machine"]
        bench_installer.print_table(installer)
        bench_installer.RESULTS.write_text(json.dumps(installer, indent=2) + "\n")
        print(f"written: {bench_installer.RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

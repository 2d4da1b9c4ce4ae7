#!/usr/bin/env python3
"""Benchmark (not a test): pip vs uv installing a release into a fresh venv on one device.

    .venv/bin/python benchmarks/bench_installer.py [--host vf-bench-01] [--runs 5]

Issue 9, item 5. On a device of the benchmark fleet that runs a release (make
bench brings it up; or tools/fleet.py up --prefix vf-bench ... and playbooks/site.yml),
benchmarks/installer_probe.py times, side by side and in alternating order, a fresh
`python3 -m venv` followed by:

- pip: the venv's pip, with the flags of the voice_release role (--no-index
  --require-hashes --only-binary=:all: --find-links <device wheels>), then `pip check`;
- uv: uv with the role's flags (env -i, --no-config --offline --no-index --no-cache
  --require-hashes --link-mode copy --compile-bytecode), then `uv pip check`;
- uv without --compile-bytecode (what bytecode costs; the role always compiles it).

The uv wheel is the one the role's wheelhouse picks for the device's platform
(hash-checked). It runs through docker exec: the installers, without Ansible.
Prints a table and writes benchmarks/results/installer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from fleetbench import BENCH_DIR, RESULTS_DIR, ROOT, BenchError, Fleet, log, stack_env

RESULTS = RESULTS_DIR / "installer.json"
UV_LOCK = ROOT / "roles" / "voice_release" / "files" / "uv-requirements.txt"
DEVICE_WORK = "/root/bench-installer"


def uv_wheel_for(fleet: Fleet, host: str, cache: Path) -> Path:
    """The uv wheel the voice_release role would send to this host (picked and hash-checked here)."""
    probe = json.loads(
        fleet.exec(
            host,
            'python3 -c \'import json, platform, sys; print(json.dumps({"arch": platform.machine(), '
            '"python": "%d.%d" % sys.version_info[:2], "glibc": platform.libc_ver()[1]}))\'',
        )
    )
    from ansible_collections.javia.voice_fleet.plugins.action import voice_wheelhouse as plugin  # noqa: PLC0415

    house = plugin.Wheelhouse(cache, plugin.Index(plugin.DEFAULT_INDEX))
    with house.locked():
        tools = house.tools(UV_LOCK, plugin.Target(probe["arch"], probe["python"], probe["glibc"]))
    (entry,) = tools["files"].values()
    return Path(entry["path"])


def measure(fleet: Fleet, host: str, runs: int, cache: Path) -> dict[str, Any]:
    marker = json.loads(fleet.exec(host, "cat /opt/voice-client/current/.build-complete"))
    wheel = uv_wheel_for(fleet, host, cache)
    fleet.exec(host, f"rm -rf {DEVICE_WORK} && mkdir -p {DEVICE_WORK}")
    fleet.copy_in(host, wheel, f"{DEVICE_WORK}/{wheel.name}")
    fleet.copy_in(host, ROOT / "benchmarks" / "installer_probe.py", f"{DEVICE_WORK}/installer_probe.py")
    log(f"installer: {runs} runs of pip and uv on {host} (release {marker['release']})")
    proc = subprocess.run(
        [
            "docker",
            "exec",
            host,
            "python3",
            f"{DEVICE_WORK}/installer_probe.py",
            *("--requirements", "/opt/voice-client/current/requirements.txt"),
            *("--wheels", f"/opt/voice-client/wheels/{marker['platform']}"),
            *("--uv-wheel", f"{DEVICE_WORK}/{wheel.name}"),
            *("--runs", str(runs), "--work", f"{DEVICE_WORK}/work"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    fleet.exec(host, f"rm -rf {DEVICE_WORK}")
    if proc.returncode != 0:
        raise BenchError(f"installer probe on {host} failed:\n{proc.stderr[-3000:]}")
    probe = json.loads(proc.stdout)
    variants = {}
    for kind, samples in probe["runs"].items():
        totals = [s["venv"] + s["install"] + s["check"] for s in samples]
        variants[kind] = {
            "total_median_s": round(statistics.median(totals), 2),
            "total_min_s": round(min(totals), 2),
            **{
                f"{phase}_median_s": round(statistics.median(s[phase] for s in samples), 2)
                for phase in ("venv", "install", "check")
            },
            "samples": samples,
        }
    pip_total = variants["pip"]["total_median_s"]
    pip_install = variants["pip"]["install_median_s"]
    for variant in variants.values():
        variant["ratio_to_pip"] = round(variant["total_median_s"] / pip_total, 3)
        variant["install_ratio_to_pip"] = round(variant["install_median_s"] / pip_install, 3)
    return {
        "benchmark": "installer",
        "host": host,
        "release": marker["release"],
        "platform": marker["platform"],
        "uv": probe["uv"],
        "uv_wheel": wheel.name,
        "runs": runs,
        "variants": variants,
    }


def print_table(result: dict[str, Any]) -> None:
    where = f"{result['host']} ({result['platform']}, {result['uv']})"
    print(f"\ninstaller on {where}, {result['runs']} runs, medians:")
    print(f"{'variant':<16} {'venv s':>7} {'install s':>10} {'check s':>8} {'total s':>8} {'x pip':>6}")
    for kind, v in result["variants"].items():
        print(
            f"{kind:<16} {v['venv_median_s']:>7.2f} {v['install_median_s']:>10.2f} "
            f"{v['check_median_s']:>8.2f} {v['total_median_s']:>8.2f} {v['ratio_to_pip']:>6.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--host", default="vf-bench-01", help="a device of the benchmark fleet that runs a release"
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    try:
        result = measure(Fleet(stack=stack_env()), args.host, args.runs, BENCH_DIR / "wheelhouse")
    except BenchError as exc:
        sys.exit(f"bench_installer: {exc}")
    result["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    print_table(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

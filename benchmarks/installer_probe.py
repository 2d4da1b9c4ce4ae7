"""Runs on a device (python3, standard library only): pip vs uv for one release's install.

    python3 installer_probe.py --requirements R --wheels DIR --uv-wheel W --runs N --work DIR

Each run creates a fresh venv (python3 -m venv, with pip, as the role does) and
installs the release's hashed requirements from the device's wheel directory,
with exactly the flags of roles/voice_release/tasks/install.yml, then checks
the result and imports the client. Variants alternate their order from run to
run. Prints one JSON document: per variant and run, the seconds of each phase.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

CLEAN_PATH = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1", "PIP_CONFIG_FILE": "/dev/null"}


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    began = time.perf_counter()
    proc = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
    )
    elapsed = time.perf_counter() - began
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def extract_uv(wheel: Path, dest: Path) -> Path:
    """The uv binary out of its wheel (the role installs the wheel into a venv instead)."""
    with zipfile.ZipFile(wheel) as archive:
        (member,) = [n for n in archive.namelist() if n.endswith(".data/scripts/uv")]
        dest.write_bytes(archive.read(member))
    dest.chmod(0o755)
    return dest


def install(kind: str, venv: Path, uv: Path, wheels: str, requirements: str) -> tuple[float, float]:
    """(install seconds, check seconds) of one variant into a fresh venv."""
    python = str(venv / "bin" / "python")
    if kind == "pip":
        argv = [str(venv / "bin" / "pip"), "install", "--no-index", "--no-deps", "--require-hashes"]
        argv += ["--only-binary=:all:", "--find-links", wheels, "--requirement", requirements]
        return timed(argv, PIP_ENV), timed([str(venv / "bin" / "pip"), "check"], PIP_ENV)
    argv = ["env", "-i", CLEAN_PATH, str(uv), "pip", "install", "--no-config", "--offline", "--no-index"]
    argv += ["--no-cache", "--no-deps", "--require-hashes", "--only-binary", ":all:", "--link-mode", "copy"]
    if kind == "uv":
        argv.append("--compile-bytecode")
    argv += ["--python", python, "--find-links", wheels, "--requirement", requirements]
    check = ["env", "-i", CLEAN_PATH, str(uv), "pip", "check", "--no-config", "--offline", "--no-cache"]
    return timed(argv), timed([*check, "--python", python])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requirements", required=True)
    parser.add_argument("--wheels", required=True)
    parser.add_argument("--uv-wheel", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    uv = extract_uv(args.uv_wheel, args.work / "uv")
    kinds = ["pip", "uv", "uv-no-bytecode"]
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    venv = args.work / "venv"
    for run in range(args.runs):
        for kind in kinds if run % 2 == 0 else list(reversed(kinds)):
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run(["sync"], check=True)
            venv_s = timed([sys.executable, "-m", "venv", str(venv)])
            install_s, check_s = install(kind, venv, uv, args.wheels, args.requirements)
            timed([str(venv / "bin" / "python"), "-c", "import voice_client, numpy, opuslib, pyaudio"])
            runs[kind].append(
                {"venv": round(venv_s, 3), "install": round(install_s, 3), "check": round(check_s, 3)}
            )
            print(f"{kind:<16} run {run + 1}: {runs[kind][-1]}", file=sys.stderr, flush=True)
    uv_version = subprocess.run([str(uv), "--version"], capture_output=True, text=True, check=False)
    shutil.rmtree(args.work)
    print(json.dumps({"runs": runs, "uv": uv_version.stdout.strip() or "unknown"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

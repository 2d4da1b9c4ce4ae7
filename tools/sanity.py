#!/usr/bin/env python3
"""`ansible-test sanity` on the collection as it is built: `make sanity`.

    .venv/bin/python tools/sanity.py

1. builds the tarball (`ansible-galaxy collection build`, galaxy.yml's build_ignore) and unpacks
   it where ansible-test wants a collection: .cache/ansible-test/ansible_collections/javia/
   voice_fleet, made a git work tree (ansible-test lists the files git knows);
2. runs `ansible-test sanity --local --requirements` with the Python of the controller venv from a
   venv of its own (.cache/ansible-test/venv: the ansible-core that requirements.txt pins), so the
   sanity tests' requirements never touch the controller venv;
3. exits with ansible-test's status. Every ignore is in tests/sanity/ignore-<core>.txt with its
   reason; ansible-test's own "ignores" test fails on an ignore that no longer matches anything.

ansible-test first fetches a pip bootstrap script from a host this machine cannot reach; when
its cache lacks the script, a stand-in that bootstraps pip from the standard library (ensurepip)
is written there (see ENVIRONMENT.md), once.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".cache" / "ansible-test"
VENV = WORK / "venv"
PIP_BOOTSTRAP = Path.home() / ".ansible" / "test" / "cache" / "get_pip_24_2.py"
BOOTSTRAP_TEXT = """\
# Written by voice-fleet's tools/sanity.py: the get-pip script ansible-test would download from a
# host that is not reachable here. pip from the standard library, then the version asked for.
import ensurepip
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
subprocess.call([sys.executable, "-m", "pip", "install", "-q", "pip==24.2"])
"""


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, text=True, check=False, **kwargs)


def core_pin() -> str:
    match = re.search(r"^ansible-core==([\w.]+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    if not match:
        sys.exit("sanity: requirements.txt pins no ansible-core")
    return match.group(1)


def sanity_venv(version: str) -> Path:
    """.cache/ansible-test/venv with ansible-core `version` (made once, remade when the pin moves)."""
    python = VENV / "bin" / "python"
    if python.exists():
        probe = run([str(python), "-c", "import ansible; print(ansible.__version__)"], capture_output=True)
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return VENV
    shutil.rmtree(VENV, ignore_errors=True)
    made = run([sys.executable, "-m", "venv", str(VENV)], capture_output=True)
    if made.returncode != 0:
        sys.exit(f"sanity: making {VENV} failed: {made.stderr.strip()}")
    pip = run([str(python), "-m", "pip", "install", "-q", f"ansible-core=={version}"], capture_output=True)
    if pip.returncode != 0:
        sys.exit(f"sanity: installing ansible-core=={version} into {VENV} failed:\n{pip.stderr.strip()}")
    return VENV


def unpacked_collection() -> Path:
    """The built collection, unpacked at .../ansible_collections/<namespace>/<name>, a git tree."""
    dist = WORK / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    built = run(
        [
            str(ROOT / ".venv" / "bin" / "ansible-galaxy"),
            "collection",
            "build",
            "--output-path",
            str(dist),
            ".",
        ],
        cwd=ROOT,
        capture_output=True,
    )
    if built.returncode != 0:
        sys.exit(f"sanity: ansible-galaxy collection build failed:\n{built.stdout}{built.stderr}")
    (tarball,) = dist.glob("*.tar.gz")
    namespace, name = tarball.name.split("-")[:2]
    root = WORK / "ansible_collections" / namespace / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(root, filter="data")
    git = [
        "git",
        "-c",
        "user.name=sanity",
        "-c",
        "user.email=sanity@localhost",
        "-c",
        "init.defaultBranch=main",
    ]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the built collection"]):
        done = run([*git, *step], cwd=root, capture_output=True)
        if done.returncode != 0:
            sys.exit(f"sanity: git {step[0]} in {root} failed: {done.stderr.strip()}")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.parse_args(argv)
    if not PIP_BOOTSTRAP.exists():
        PIP_BOOTSTRAP.parent.mkdir(parents=True, exist_ok=True)
        PIP_BOOTSTRAP.write_text(BOOTSTRAP_TEXT)
    venv = sanity_venv(core_pin())
    root = unpacked_collection()
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    cmd = [str(venv / "bin" / "ansible-test"), "sanity", "--local", "--requirements", "--python", python]
    print(f"sanity: {' '.join(cmd[1:])} in {root.relative_to(ROOT)}", flush=True)
    return run(cmd, cwd=root).returncode


if __name__ == "__main__":
    sys.exit(main())

"""`ansible-test sanity` passes on the collection as it is built (tools/sanity.py, `make sanity`).

The run is real: ansible-test from a venv of its own with the ansible-core that requirements.txt
pins, on the tarball's contents unpacked as ansible_collections/javia/voice_fleet. Every ignore
is written down with its reason in tests/sanity/ignore-<core>.txt, and ansible-test's "ignores"
test fails on one that matches nothing any more.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The tests ansible-test runs on a collection; each must run (none skipped for want of a tool).
EXPECTED = (
    "action-plugin-docs",
    "ansible-doc",
    "compile",
    "ignores",
    "import",
    "pep8",
    "pylint",
    "shebang",
    "symlinks",
    "validate-modules",
    "yamllint",
)


def test_ansible_test_sanity_passes_on_the_built_collection():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "sanity.py")],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    output = proc.stdout + proc.stderr
    errors = [line for line in output.splitlines() if line.startswith(("ERROR: ", "FATAL: "))]
    errors = [line for line in errors if "pip==24.2" not in line]  # the bootstrap's optional upgrade
    assert proc.returncode == 0, "\n".join(errors[-40:]) or output[-4000:]
    ran = {line.split('"')[1] for line in output.splitlines() if line.startswith("Running sanity test ")}
    missing = [name for name in EXPECTED if name not in ran]
    assert not missing, f"sanity tests that did not run: {missing}"

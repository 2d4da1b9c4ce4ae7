"""Fixtures shared by every test: the repository, the registry stack, the test bed.

Each fixture starts what it needs (idempotently), so any subset of the suite
runs alone on a fresh machine: `pytest tests/integration` brings the stack up
itself.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The registry stack's own reader of the env file it writes.
sys.path.insert(0, str(ROOT / "tools"))
from stack import read_env_file, stack_dir  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    """Tools (ansible-playbook, molecule) come from the venv that runs pytest."""
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    os.environ.setdefault("VF_ROOT", str(ROOT))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """The local registry's settings (SUPABASE_URL, keys, DATABASE_URL); starts it if needed."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "stack.py"), "up"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"stack up failed:\n{proc.stderr}"
    # VF_STACK_DIR/VF_STACK_PORT run a second stack beside the default one.
    return read_env_file(stack_dir() / "env")


@pytest.fixture(scope="session")
def bed_image() -> str:
    """Tag of the systemd base image; starts Docker and builds the image if needed."""
    proc = subprocess.run(
        [str(ROOT / "scripts" / "bed.sh"), "image"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"test bed failed:\n{proc.stderr}"
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def bed_image_arm64() -> str:
    """Tag of the aarch64 base image (qemu-user emulation); builds it if needed (minutes)."""
    proc = subprocess.run(
        [str(ROOT / "scripts" / "bed.sh"), "image", "arm64"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"arm64 test bed failed:\n{proc.stderr}"
    return proc.stdout.strip().splitlines()[-1]


# The CPU each test cost this machine's controller side: pytest itself and every process it
# waited for (ansible-playbook, molecule, docker, ansible-lint). Wall durations mislead when the
# lanes of `make test` share two cores; this is the figure to balance them by and to cut.
_CPU_SECONDS: dict[str, float] = {}


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    before = _cpu_seconds()
    try:
        return (yield)
    finally:
        _CPU_SECONDS[item.nodeid] = _cpu_seconds() - before


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The tests that cost the most controller CPU (setup and teardown included), and the total."""
    if not _CPU_SECONDS:
        return
    terminalreporter.write_sep("=", "most controller CPU (pytest and the processes it waited for)")
    for nodeid, seconds in sorted(_CPU_SECONDS.items(), key=lambda kv: -kv[1])[:15]:
        terminalreporter.write_line(f"{seconds:8.2f}s cpu  {nodeid}")
    terminalreporter.write_line(f"{sum(_CPU_SECONDS.values()):8.2f}s cpu  in all, {len(_CPU_SECONDS)} tests")
    # Many cheap tests of one file add up: the files, to balance the lanes by.
    by_file: dict[str, list[float]] = {}
    for nodeid, seconds in _CPU_SECONDS.items():
        by_file.setdefault(nodeid.split("::", 1)[0], []).append(seconds)
    terminalreporter.write_sep("-", "most controller CPU by file")
    for path, costs in sorted(by_file.items(), key=lambda kv: -sum(kv[1]))[:15]:
        terminalreporter.write_line(f"{sum(costs):8.2f}s cpu  {path} ({len(costs)} tests)")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: a skip must never be counted as a pass."""
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and exitstatus == 0:
        reporter.write_line(
            f"CI: {len(skipped)} test(s) skipped; failing the run (see the reasons above)", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def registry_db(stack_env):
    """An autocommit psycopg connection to the registry (DATABASE_URL of the stack)."""
    import psycopg  # noqa: PLC0415 (only tests that use the stack need the driver)

    with psycopg.connect(stack_env["DATABASE_URL"], autocommit=True) as conn:
        yield conn


@pytest.fixture
def empty_registry(registry_db):
    """The registry with no devices, updates or device_updates (tests run one at a time)."""
    registry_db.execute("TRUNCATE public.device_updates, public.updates, public.devices CASCADE")
    yield registry_db

"""contrib/cron: the wrapper run for real, and the crontab read the way cron reads it.

The wrapper runs against a throwaway project (a stand-in scheduled.yml that records what it
saw, can wait for the test, and can fail) with the controller venv's ansible-playbook, and
once against this repository's real playbooks/scheduled.yml with --syntax-check.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRON = ROOT / "contrib" / "cron"
WRAPPER = CRON / "voice-fleet-scheduled"
VENV = Path(sys.executable).parent.parent
SERVICE_KEY = "svc-key-0c4e9b7a51"
STANDIN = [
    {
        "name": "Stand-in for the scheduled play",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Record the run and the registry URL it saw",
                "ansible.builtin.copy": {
                    "content": "{{ lookup('ansible.builtin.env', 'SUPABASE_URL') }}\n",
                    "dest": "{{ out_dir }}/{{ run_id }}.started",
                    "mode": "0644",
                },
            },
            {
                "name": "Wait until the test lets the run end",
                "ansible.builtin.wait_for": {"path": "{{ out_dir }}/{{ run_id }}.release", "timeout": 120},
                "when": "hold | default(false) | bool",
            },
            {
                "name": "Fail when asked to",
                "ansible.builtin.fail": {"msg": "stand-in failure"},
                "when": "fail_run | default(false) | bool",
            },
        ],
    }
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "playbooks").mkdir(parents=True)
    (root / "ansible.cfg").write_text("[defaults]\ninventory = inventory.yml\n")
    inventory = {"all": {"hosts": {"localhost": {"ansible_connection": "local"}}}}
    (root / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (root / "playbooks" / "scheduled.yml").write_text(yaml.safe_dump(STANDIN, sort_keys=False))
    return root


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / "registry.env"
    path.write_text(
        f"# as in contrib/cron/registry.env.example\nSUPABASE_URL=http://127.0.0.1:9/registry\nSUPABASE_SERVICE_KEY={SERVICE_KEY}\n"
    )
    path.chmod(0o600)
    return path


def wrapper_env(project: Path, env_file: Path, **extra: str) -> dict[str, str]:
    """What cron would give the wrapper: a bare PATH plus the crontab's settings."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(project),
        "VF_PROJECT_DIR": str(project),
        "VF_ENV_FILE": str(env_file),
        "VF_VENV": str(VENV),
        **extra,
    }


def run_wrapper(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WRAPPER), *args], env=env, capture_output=True, text=True, check=False, timeout=300
    )


def play_args(out: Path, run_id: str, **flags: bool) -> list[str]:
    extra = {"out_dir": str(out), "run_id": run_id, **{k: str(v).lower() for k, v in flags.items()}}
    return ["-e", " ".join(f"{k}={v}" for k, v in extra.items())]


def test_runs_the_play_with_the_env_files_settings(project: Path, env_file: Path, tmp_path: Path) -> None:
    proc = run_wrapper(wrapper_env(project, env_file), *play_args(tmp_path, "one"))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "one.started").read_text() == "http://127.0.0.1:9/registry\n"
    assert SERVICE_KEY not in proc.stdout + proc.stderr
    # The lock lives in the project unless VF_LOCK_FILE says otherwise.
    assert (project / ".cache" / "voice-fleet-scheduled.lock").exists()


def wait_for_file(path: Path, proc: subprocess.Popen[str]) -> None:
    """Until the path exists; fails early if the process ends first (no timing assertion)."""
    deadline = time.monotonic() + 120
    while not path.exists():
        assert proc.poll() is None, f"the first run ended early: {proc.communicate()}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_a_second_run_while_one_holds_the_lock_does_nothing(
    project: Path, env_file: Path, tmp_path: Path
) -> None:
    env = wrapper_env(project, env_file, VF_LOCK_FILE=str(tmp_path / "lock" / "scheduled.lock"))
    first = subprocess.Popen(
        [str(WRAPPER), *play_args(tmp_path, "first", hold=True)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_file(tmp_path / "first.started", first)
        second = run_wrapper(env, *play_args(tmp_path, "second"))
        assert second.returncode == 75, second.stdout + second.stderr
        assert "another run holds" in second.stderr
        assert str(tmp_path / "lock" / "scheduled.lock") in second.stderr
        assert not (tmp_path / "second.started").exists()
    finally:
        (tmp_path / "first.release").touch()
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    # The lock went with the first run (nothing it started kept it): the next run goes ahead.
    third = run_wrapper(env, *play_args(tmp_path, "third"))
    assert third.returncode == 0, third.stdout + third.stderr
    assert (tmp_path / "third.started").exists()


def test_a_failing_play_makes_the_wrapper_fail(project: Path, env_file: Path, tmp_path: Path) -> None:
    proc = run_wrapper(wrapper_env(project, env_file), *play_args(tmp_path, "bad", fail_run=True))

    assert proc.returncode == 2  # ansible-playbook's status for a failed host
    assert (tmp_path / "bad.started").exists()
    assert "FAILED: playbooks/scheduled.yml exited with status 2" in proc.stderr


@pytest.mark.parametrize(
    ("mode", "content", "error"),
    [
        (
            0o640,
            "SUPABASE_URL=u\nSUPABASE_SERVICE_KEY=k\n",
            "has mode 640; make it readable by its owner only",
        ),
        (0o604, "SUPABASE_URL=u\nSUPABASE_SERVICE_KEY=k\n", "has mode 604"),
        (0o600, "SUPABASE_URL=u\n", "does not set SUPABASE_SERVICE_KEY"),
        (0o400, "SUPABASE_SERVICE_KEY=k\n", "does not set SUPABASE_URL"),
    ],
    ids=["group-readable", "world-readable", "no-key", "no-url"],
)
def test_a_bad_env_file_is_refused_before_the_play(
    project: Path, tmp_path: Path, mode: int, content: str, error: str
) -> None:
    env_file = tmp_path / "registry.env"
    env_file.write_text(content)
    env_file.chmod(mode)
    proc = run_wrapper(wrapper_env(project, env_file), *play_args(tmp_path, "refused"))

    assert proc.returncode == 64
    assert error in proc.stderr
    assert str(env_file) in proc.stderr
    assert not (tmp_path / "refused.started").exists()


def test_a_missing_project_or_venv_is_named(project: Path, env_file: Path, tmp_path: Path) -> None:
    proc = run_wrapper(wrapper_env(project, env_file, VF_VENV=str(tmp_path / "no-venv")))
    assert proc.returncode == 64
    assert f"VF_VENV: no ansible-playbook in {tmp_path / 'no-venv'}/bin" in proc.stderr
    proc = run_wrapper(wrapper_env(tmp_path / "nowhere", env_file))
    assert proc.returncode == 64
    assert f"VF_PROJECT_DIR: no such directory: {tmp_path / 'nowhere'}" in proc.stderr


def test_the_real_scheduled_play_passes_a_syntax_check(env_file: Path, tmp_path: Path) -> None:
    env = wrapper_env(ROOT, env_file, VF_LOCK_FILE=str(tmp_path / "scheduled.lock"), HOME=str(tmp_path))
    del env["VF_PROJECT_DIR"]  # the default: two directories above the wrapper
    proc = run_wrapper(env, "--syntax-check", "-i", "localhost,")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"start: playbooks/scheduled.yml in {ROOT}" in proc.stdout


def crontab_entries() -> tuple[dict[str, str], list[list[str]]]:
    """(environment settings, job lines split into 5 fields + command), as cron(8) reads them."""
    settings: dict[str, str] = {}
    jobs = []
    for raw in (CRON / "crontab").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        setting = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", line)
        if setting:
            settings[setting[1]] = setting[2]
        else:
            jobs.append(line.split(None, 5))
    return settings, jobs


def test_the_crontab_runs_the_wrapper_hourly_in_utc() -> None:
    settings, jobs = crontab_entries()
    assert settings["CRON_TZ"] == "UTC"
    assert settings["SHELL"] == "/bin/bash"
    (job,) = jobs
    minute, hour, day, month, weekday, command = job
    assert minute.isdigit()
    assert 0 <= int(minute) <= 59
    assert (hour, day, month, weekday) == ("*", "*", "*", "*")
    # cron turns an unescaped % into a newline: there must be none.
    assert "%" not in command
    words = shlex.split(command)
    assert words[0].endswith("/contrib/cron/voice-fleet-scheduled")
    assert ">>/var/log/voice-fleet/scheduled.log" in words
    assert "2>&1" in words
    assert "||" in words
    syntax = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    # Every VF_* setting of the crontab is one the wrapper reads.
    read = set(re.findall(r"\$\{(VF_[A-Z_]+):-", WRAPPER.read_text()))
    assert {k for k in settings if k.startswith("VF_")} <= read


def test_operations_doc_names_only_settings_the_wrapper_reads() -> None:
    named = set(re.findall(r"\bVF_[A-Z_]+", (ROOT / "docs" / "OPERATIONS.md").read_text()))
    read = set(re.findall(r"\$\{(VF_[A-Z_]+):-", WRAPPER.read_text()))
    assert named
    assert named <= read


def test_the_wrapper_is_executable_and_strict() -> None:
    assert os.access(WRAPPER, os.X_OK)
    text = WRAPPER.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    syntax = subprocess.run(["bash", "-n", str(WRAPPER)], capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr

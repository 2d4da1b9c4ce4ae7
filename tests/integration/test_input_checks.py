"""The roles' own checks of their inputs (beyond the argument specs) refuse a bad value, naming it.

Each check is a `fail` task with `when:` (skipped when the input is right, so that its
message is rendered only for a failure): a `when` that is wrong would never fire. Each case
runs the role's check file on localhost with one bad value and expects that check to fail
with its message; the last case runs them all with good values and expects no failure.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from local_play import run_local_play

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "voice_client"
SERVICE_OK = {
    "voice_service_server_url": "http://voice.example.test:8080",
    "voice_service_timezone": "Europe/Berlin",
}
IDENTITY = "01a231c2-a721-7dde-b6ce-80a08d890291"
RELEASE_OK = {"voice_release_source": str(SOURCE), "voice_release_lock": str(SOURCE / "requirements.lock")}

# (role, task file, variables, the check that fails, what its message says)
CASES = [
    (
        "voice_packages",
        "preflight",
        {"_voice_packages_supported_os_families": ["Archlinux"]},
        "Check that this OS family is supported",
        "voice_packages supports Archlinux; localhost runs Debian (Debian)",
    ),
    (
        "voice_packages",
        "preflight",
        {"voice_packages_extra": ["alsa-utils", "Not A Package"]},
        "Check that extra package names are plain Debian package names",
        "not Debian package names: ['Not A Package']",
    ),
    (
        "voice_hardware",
        "preflight",
        {"voice_hardware_is_pi": "maybe"},
        "Check voice_hardware_is_pi",
        "voice_hardware_is_pi must be auto, true or false; got maybe",
    ),
    (
        "voice_service",
        "preflight",
        {**SERVICE_OK, "voice_service_server_url": "ftp://voice.example.test"},
        "Check the voice server URL",
        "got 'ftp://voice.example.test'",
    ),
    (
        "voice_service",
        "preflight",
        {**SERVICE_OK, "voice_service_env_extra": {"bad name": "x", "QUOTED": 'say "hi"'}},
        "Check the names and values of the environment (names are printed, values never)",
        "(['bad name']), values must be one line without quotes or backslashes (check ['QUOTED'])",
    ),
    (
        "voice_service",
        "preflight",
        {**SERVICE_OK, "voice_service_timezone": "Mars/Olympus_Mons"},
        "Fail on an unknown timezone",
        "voice_service_timezone 'Mars/Olympus_Mons' is not a timezone this device knows",
    ),
    (
        "voice_registry",
        "identity",
        {"voice_registry_device_read": {"device_uuid": "javia-kitchen-1"}},
        "Check that the identity is a UUID",
        "does not hold a UUID; it is left untouched",
    ),
    (
        "voice_release",
        "inputs",
        {**RELEASE_OK, "voice_release_keep": 1},
        "Check the release inputs",
        "voice_release_keep must be >= 2 (got 1",
    ),
    (
        "voice_release",
        "inputs",
        {**RELEASE_OK, "voice_release_installer": "conda"},
        "Check the release inputs",
        "voice_release_installer one of pip, uv (got conda)",
    ),
]


def run_checks(tmp_path: Path, steps: list[tuple[str, str, dict]]) -> tuple[int, list[dict], str]:
    """Run each (role, task file, variables) on localhost; the return code and the json callback's tasks."""
    play = [
        {
            "hosts": "localhost",
            "gather_facts": True,
            "tasks": [
                {
                    "name": f"Check {role}'s inputs",
                    "ansible.builtin.include_role": {"name": role, "tasks_from": tasks_from},
                    "vars": variables,
                }
                for role, tasks_from, variables in steps
            ],
        }
    ]
    proc, output = run_local_play(play, tmp_path / "play.yml", {"ANSIBLE_PYTHON_INTERPRETER": sys.executable})
    tasks = output["plays"][0]["tasks"] if output.get("plays") else []
    return proc.returncode, tasks, proc.stdout[-3000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}:{c[3][:40]}" for c in CASES])
def test_a_bad_input_fails_its_check_with_a_message_naming_it(tmp_path, case):
    role, tasks_from, bad, check, message = case
    rc, tasks, output = run_checks(tmp_path, [(role, tasks_from, bad)])
    assert rc != 0, output
    failed = [t for t in tasks if t["hosts"]["localhost"].get("failed")]
    assert failed, output
    assert failed[0]["task"]["name"] == f"{role} : {check}", output
    assert message in " ".join(failed[0]["hosts"]["localhost"]["msg"].split()), failed[0]["hosts"][
        "localhost"
    ]["msg"]


def test_good_inputs_pass_every_check(tmp_path):
    rc, tasks, output = run_checks(
        tmp_path,
        [
            ("voice_packages", "preflight", {"voice_packages_extra": ["alsa-utils", "libopus0=1.3.1-3"]}),
            ("voice_hardware", "preflight", {"voice_hardware_is_pi": "auto"}),
            (
                "voice_service",
                "preflight",
                {**SERVICE_OK, "voice_service_env_extra": {"EXTRA_SETTING": "one"}},
            ),
            ("voice_registry", "identity", {"voice_registry_device_read": {"device_uuid": IDENTITY}}),
            ("voice_release", "inputs", RELEASE_OK),
        ],
    )
    assert rc == 0, output
    checks = {f"{case[0]} : {case[3]}" for case in CASES}
    seen = {t["task"]["name"]: t["hosts"]["localhost"] for t in tasks if t["task"]["name"] in checks}
    assert set(seen) == checks, f"checks that did not run: {sorted(checks - set(seen))}"
    assert all(result.get("skipped") for result in seen.values()), seen

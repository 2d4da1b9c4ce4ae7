"""The build action's options, derived in Python from the release and the device (`release`).

plugins/action/voice_release_build.py (derive), plugins/modules/voice_release_build.py
(release_params, which the pull agent builds with too) and the check both installers run
before a device is touched (plugins/filter/voice_release.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from ansible.errors import AnsibleActionFail, AnsibleFilterError

RELEASE = "1.1.0-0123456789ab"
ACTIVE = "1.0.0-ba9876543210"
CLIENT = "voice_client-1.1.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def action():
    from ansible_collections.javia.voice_fleet.plugins.action import voice_release_build  # noqa: PLC0415

    return voice_release_build


@pytest.fixture(scope="module")
def problem():
    from ansible_collections.javia.voice_fleet.plugins.filter.voice_release import (  # noqa: PLC0415
        voice_release_wheelhouse_problem,
    )

    return voice_release_wheelhouse_problem


def house(tmp_path: Path, **changes) -> dict:
    """A wheelhouse platform as voice_wheelhouse returns it: two locked wheels and the client's."""
    files = {}
    for name in ("certifi-2026.7.22-py3-none-any.whl", "uuid6-2025.0.1-py3-none-any.whl", CLIENT):
        path = tmp_path / name
        path.write_bytes(name.encode())
        files[name] = {"path": str(path), "sha256": hashlib.sha256(name.encode()).hexdigest()}
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("certifi==2026.7.22 --hash=sha256:00\n")
    entry = {
        "release_id": RELEASE,
        "platform": "cp311-aarch64",
        "version": "1.1.0",
        "lock_sha256": "a" * 64,
        "client_sha256": files[CLIENT]["sha256"],
        "client_source_sha256": "b" * 64,
        "client_wheel": CLIENT,
        "requirements": str(requirements),
        "files": files,
        "complete": True,
        "needs_build": [],
    }
    return {**entry, **changes}


def device(**changes) -> dict:
    state = {
        "active": ACTIVE,
        "previous": "",
        "releases": [ACTIVE],
        "wheels": ["certifi-2026.7.22-py3-none-any.whl", "voice_client-1.1.0-py3-none-any.whl"],
    }
    return {**state, **changes}


def release(tmp_path: Path, expected: str = "", **device_changes) -> dict:
    return {"house": house(tmp_path), "base": "/opt/voice-client", "device": device(**device_changes),
            "expected": expected}  # fmt: skip


def test_the_build_options_follow_from_the_release_and_the_device(action, tmp_path):
    args = {"python": "/usr/bin/python3", "activate": {"base": "/opt/voice-client", "keep": 3}}
    assert action.derive(args, release(tmp_path, expected=RELEASE), "pi-1", False) is None
    assert args["release_dir"] == f"/opt/voice-client/releases/{RELEASE}"
    assert args["wheel_dir"] == "/opt/voice-client/wheels/cp311-aarch64"
    assert args["tools_dir"] == "/opt/voice-client/tools"
    assert args["previous_release_dir"] == f"/opt/voice-client/releases/{ACTIVE}"
    assert args["requirements"] == "certifi==2026.7.22 --hash=sha256:00\n"
    assert sorted(args["wheels"]) == sorted(house(tmp_path)["files"])
    # The device lacks uuid6; the client's wheel always travels (its content can change
    # under the same name); certifi is on the device already.
    assert sorted(args["send"]) == sorted([CLIENT, "uuid6-2025.0.1-py3-none-any.whl"])
    assert args["send"][CLIENT] == str(tmp_path / CLIENT)
    assert args["build"] is True
    assert args["current"] == {"active": ACTIVE, "previous": ""}
    assert args["activate"] == {"base": "/opt/voice-client", "keep": 3, "release": RELEASE}
    marker = args["marker"]
    assert {k: marker[k] for k in ("release", "version", "platform", "client_sha256")} == {
        "release": RELEASE,
        "version": "1.1.0",
        "platform": "cp311-aarch64",
        "client_sha256": house(tmp_path)["client_sha256"],
    }
    assert marker["lock_sha256"] == "a" * 64 and marker["client_source_sha256"] == "b" * 64
    assert marker["built_at"].endswith("+00:00")
    assert args["python"] == "/usr/bin/python3", "what the task gave stays"


def test_a_release_complete_on_the_device_is_only_activated(action, tmp_path):
    args = {"activate": {}}
    assert action.derive(args, release(tmp_path, releases=[ACTIVE, RELEASE]), "pi-1", False) is None
    assert args["build"] is False


def test_a_first_release_reuses_nothing(action, tmp_path):
    args: dict = {}
    assert action.derive(args, release(tmp_path, active="", releases=[], wheels=[]), "pi-1", False) is None
    assert "previous_release_dir" not in args
    assert sorted(args["send"]) == sorted(house(tmp_path)["files"])


def test_an_incomplete_wheelhouse_fails_before_the_device_is_touched(action, tmp_path):
    given = release(tmp_path)
    given["house"].update(complete=False, needs_build=[{"name": "pyaudio"}])
    args: dict = {}
    verdict = action.derive(args, given, "pi-1", False)
    assert verdict["failed"] and verdict["outcome"] == "failed" and verdict["step"] == "wheelhouse"
    assert verdict["error"] == "the wheelhouse for cp311-aarch64 is incomplete; still to build: ['pyaudio']"
    assert verdict["active"] == ACTIVE, "the device keeps its release"
    assert "pi-1" in verdict["msg"] and f"the active release is still {ACTIVE}" in verdict["msg"]
    assert args == {}, "nothing to send or build"


def test_check_mode_plans_nothing_while_the_wheelhouse_is_not_downloaded(action, tmp_path):
    given = release(tmp_path)
    given["house"].update(complete=False, files={}, requirements="/nonexistent/requirements.txt")
    result = action.derive({}, given, "pi-1", True)
    assert result == {"changed": True, "msg": "would build the release once the wheelhouse is downloaded"}


def test_a_release_other_than_the_planned_one_is_refused(action, tmp_path):
    verdict = action.derive({}, release(tmp_path, expected="1.1.0-ffffffffffff"), "pi-1", False)
    assert verdict["failed"] and verdict["step"] == "wheelhouse"
    assert "planned release 1.1.0-ffffffffffff but the wheelhouse gives " + RELEASE in verdict["error"]


def test_a_release_without_its_layout_root_is_an_error_naming_it(action, tmp_path):
    with pytest.raises(AnsibleActionFail, match="release must give house, base, device and expected"):
        action.derive({}, {"house": house(tmp_path)}, "pi-1", False)


def test_a_missing_lock_file_is_an_error_naming_it(action, tmp_path):
    given = release(tmp_path)
    given["house"]["requirements"] = str(tmp_path / "gone.txt")
    with pytest.raises(AnsibleActionFail, match=r"the release's lock: .*gone\.txt"):
        action.derive({}, given, "pi-1", False)


def test_the_pull_agent_builds_with_the_same_options(tmp_path):
    """A published manifest (pull) gives the same options as the wheelhouse (push)."""
    from ansible_collections.javia.voice_fleet.plugins.modules.voice_release_build import (  # noqa: PLC0415
        release_params,
    )

    entry = house(tmp_path)
    manifest = {k: v for k, v in entry.items() if k not in ("requirements", "complete", "needs_build")}
    manifest["files"] = {name: {"sha256": f["sha256"], "size": 1} for name, f in entry["files"].items()}
    pushed = release_params(entry, "reqs", "/opt/voice-client", ACTIVE)
    pulled = release_params(manifest, "reqs", "/opt/voice-client", ACTIVE)
    for params in (pushed, pulled):
        params["marker"].pop("built_at")
    assert pushed == pulled
    assert "previous_release_dir" not in release_params(entry, "reqs", "/opt/voice-client", RELEASE)


@pytest.mark.parametrize(
    ("changes", "call", "says"),
    [
        ({}, ("", False), ""),
        ({}, (RELEASE, False), ""),
        ({"complete": False, "needs_build": [{"name": "pyaudio"}]}, ("", True), ""),
        (
            {"complete": False, "needs_build": [{"name": "pyaudio"}]},
            ("", False),
            "the wheelhouse for cp311-aarch64 is incomplete; still to build: ['pyaudio']",
        ),
        (
            {},
            ("1.1.0-ffffffffffff", False),
            "the caller planned release 1.1.0-ffffffffffff but the wheelhouse gives 1.1.0-0123456789ab: "
            "their inputs (source, lock) differ; nothing was changed on the device, report this as a bug",
        ),
    ],
)
def test_the_wheelhouse_problem(problem, tmp_path, changes, call, says):
    expected, check_mode = call
    assert problem(house(tmp_path, **changes), expected, check_mode) == says


def test_the_wheelhouse_problem_names_a_bad_input(problem):
    with pytest.raises(AnsibleFilterError, match="a wheelhouse platform with a release_id, got None"):
        problem(None)

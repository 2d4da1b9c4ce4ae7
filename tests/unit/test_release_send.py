"""The build action's packing of the wheels a device lacks (plugins/action/voice_release_build.py)."""

from __future__ import annotations

import hashlib
import re
import tarfile
from pathlib import Path

import pytest
from ansible.errors import AnsibleActionFail


@pytest.fixture(scope="module")
def action():
    from ansible_collections.javia.voice_fleet.plugins.action import voice_release_build  # noqa: PLC0415

    return voice_release_build


def wheel(directory: Path, name: str, body: bytes) -> tuple[str, str]:
    path = directory / name
    path.write_bytes(body)
    return str(path), hashlib.sha256(body).hexdigest()


def test_the_tar_holds_the_wheels_under_their_names_and_is_packed_once(action, tmp_path):
    house = tmp_path / "house"
    house.mkdir()
    a_path, a_sha = wheel(house, "a-1.0-py3-none-any.whl", b"A")
    b_path, b_sha = wheel(house, "b-2.0-py3-none-any.whl", b"BB")
    wheels = {"a-1.0-py3-none-any.whl": a_sha, "b-2.0-py3-none-any.whl": b_sha}
    send = {"a-1.0-py3-none-any.whl": a_path, "b-2.0-py3-none-any.whl": b_path}
    packed = action.pack(send, wheels, str(tmp_path / "packs"))
    with tarfile.open(packed) as tar:
        assert sorted(tar.getnames()) == sorted(send)
        assert tar.extractfile("b-2.0-py3-none-any.whl").read() == b"BB"
    mtime = Path(packed).stat().st_mtime_ns
    assert action.pack(dict(reversed(list(send.items()))), wheels, str(tmp_path / "packs")) == packed
    assert Path(packed).stat().st_mtime_ns == mtime  # the same wheels reuse the same file
    other = action.pack({"a-1.0-py3-none-any.whl": a_path}, wheels, str(tmp_path / "packs"))
    assert other != packed


def test_a_file_that_is_not_the_named_wheel_is_refused_by_name(action, tmp_path):
    path, sha = wheel(tmp_path, "a-1.0-py3-none-any.whl", b"A")
    with pytest.raises(AnsibleActionFail, match=r"'c-1.0-py3-none-any.whl' -> '.*a-1.0-py3-none-any.whl'"):
        action.pack({"c-1.0-py3-none-any.whl": path}, {"c-1.0-py3-none-any.whl": sha}, str(tmp_path / "p"))
    with pytest.raises(
        AnsibleActionFail, match=re.escape("'a-1.0-py3-none-any.whl', which is not a wheel of the release")
    ):
        action.pack({"a-1.0-py3-none-any.whl": path}, {}, str(tmp_path / "p"))


CURRENT = {"active": "1.0.0-aaaaaaaaaaaa", "previous": "0.9.0-bbbbbbbbbbbb"}


def test_a_failed_build_is_the_release_verdict_naming_the_step_and_the_active_release(action):
    built = {
        "failed": True,
        "changed": True,
        "step": "import check",
        "error": "No module named x",
        "msg": "...",
    }
    verdict = action.release_verdict("pi-1", "1.1.0-cccccccccccc", CURRENT, built, None)
    assert verdict["failed"] and verdict["outcome"] == "failed"
    assert (verdict["step"], verdict["error"]) == ("import check", "No module named x")
    assert (verdict["active"], verdict["previous"]) == (CURRENT["active"], CURRENT["previous"])
    assert verdict["msg"] == (
        'release 1.1.0-cccccccccccc was not activated on pi-1: step "import check" failed: '
        "No module named x; the active release is still 1.0.0-aaaaaaaaaaaa"
    )
    assert "activation" not in verdict


def test_a_build_that_crashed_is_named_by_its_last_stderr_line(action):
    built = {"failed": True, "module_stderr": "Traceback\n  ...\nMemoryError\n", "msg": "MODULE FAILURE"}
    verdict = action.release_verdict("pi-1", "r", {}, built, None)
    assert (verdict["step"], verdict["error"]) == ("build", "MemoryError")
    assert verdict["msg"].endswith("; no release is active")


@pytest.mark.parametrize(
    ("outcome", "failed"),
    [
        ("activated", False),
        ("unchanged", False),
        ("would_activate", False),
        ("rolled_back", True),
        ("failed", True),
    ],
)
def test_the_activation_decides_the_verdict(action, outcome, failed):
    activation = {
        "changed": outcome != "unchanged",
        "outcome": outcome,
        "active": "1.1.0-c" if outcome == "activated" else CURRENT["active"],
        "previous": CURRENT["active"] if outcome == "activated" else CURRENT["previous"],
        "step": "gate" if failed else "",
        "error": "did not stay up" if failed else "",
        "restored_ok": True,
        "msg": f"release 1.1.0-c {outcome}",
    }
    built = {"changed": False, "installed": ["voice-client"]}
    verdict = action.release_verdict("pi-1", "1.1.0-c", CURRENT, built, activation)
    assert bool(verdict.get("failed")) is failed
    assert verdict["outcome"] == outcome and verdict["msg"] == f"release 1.1.0-c {outcome}"
    assert verdict["build"] == built and verdict["activation"] == activation
    assert verdict["changed"] is (outcome != "unchanged")
    assert verdict["active"] == activation["active"]


def test_a_lost_connection_fails_the_host_with_its_step_never_as_unreachable(action):
    """The rollout play ignores unreachable hosts: a lost connection must fail the host, naming the step."""
    built = {"unreachable": True, "step": "build", "msg": "connection lost: ssh: timed out"}
    verdict = action.release_verdict("pi-1", "r", CURRENT, built, None)
    assert verdict["failed"] and "unreachable" not in verdict
    assert (verdict["step"], verdict["error"]) == ("build", "connection lost: ssh: timed out")
    lost = {"unreachable": True, "outcome": "failed", "step": "activation", "error": "connection lost: reset"}
    verdict = action.release_verdict("pi-1", "r", CURRENT, {"changed": True}, lost)
    assert verdict["failed"] and "unreachable" not in verdict
    assert (verdict["step"], verdict["active"]) == ("activation", CURRENT["active"])


def test_the_verdict_leaves_the_module_invocations_out(action):
    """A failed host's result is printed at 2 AM: not the requirements file and every wheel hash."""
    invocation = {"module_args": {"requirements": "numpy==2.1 --hash=sha256:" + "0" * 64}}
    built = {"changed": True, "invocation": invocation}
    activation = {
        "outcome": "rolled_back",
        "step": "gate",
        "error": "did not stay up",
        "invocation": invocation,
    }
    verdict = action.release_verdict("pi-1", "r", CURRENT, built, activation)
    assert "invocation" not in verdict["build"] and "invocation" not in verdict["activation"]
    failed = action.release_verdict("pi-1", "r", CURRENT, {"failed": True, "invocation": invocation}, None)
    assert "invocation" not in failed["build"]


def test_only_activating_needs_the_activation_and_nothing_of_a_build(action):
    """switch.yml (uv, rollback) activates through the same action, with nothing to build."""
    args = {"build": False, "activate": {"release": "r"}, "current": CURRENT}
    opts = action.options(args)
    assert (opts.build, opts.activate, opts.current) == (False, {"release": "r"}, CURRENT)
    assert args == {}, "the action's own options never reach the build module"
    with pytest.raises(AnsibleActionFail, match="build: false only makes sense with activate"):
        action.options({"build": False})

"""voice_device_state's pure parts: the provisioning verdict, file fingerprints, the update lock.

The module runs on the devices (end-to-end tests use it there); these tests call
its functions on this machine's file system.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from ansible_collections.javia.voice_fleet.plugins.modules import voice_device_state as state


def test_no_stamp_means_never_provisioned() -> None:
    assert state.provision_verdict({}, "x", {}) == [
        "the device was never provisioned by this collection (no stamp)"
    ]


def test_a_stamp_that_matches_inputs_and_files_needs_nothing(tmp_path: Path) -> None:
    unit = tmp_path / "unit"
    unit.write_text("[Service]\n")
    prints = {str(unit): state.fingerprint(str(unit))}
    stamp = {"format": state.STAMP_FORMAT, "inputs": "abc", "files": prints}
    assert state.provision_verdict(stamp, "abc", prints) == []


def test_changed_inputs_an_edited_file_a_mode_change_and_a_missing_file_are_named(tmp_path: Path) -> None:
    unit, env = tmp_path / "unit", tmp_path / "env"
    unit.write_text("[Service]\n")
    env.write_text("A=1\n")
    os.chmod(env, 0o640)
    before = {str(p): state.fingerprint(str(p)) for p in (unit, env)}
    stamp = {"format": state.STAMP_FORMAT, "inputs": "abc", "files": before}
    unit.write_text("[Service]\n# tuned by hand\n")
    os.chmod(env, 0o644)
    now = {str(p): state.fingerprint(str(p)) for p in (unit, env)}
    reasons = state.provision_verdict(stamp, "abd", now)
    assert reasons[0].startswith("the provisioning inputs changed")
    assert any(str(unit) in r and "edited" in r for r in reasons)
    assert any(str(env) in r for r in reasons), "a mode change is a difference too"
    env.unlink()
    gone = state.provision_verdict(stamp, "abc", {str(env): state.fingerprint(str(env))})
    assert gone == [f"{env} differs from what the provisioning left (missing)"]


def test_the_stamp_is_written_atomically_and_private(tmp_path: Path) -> None:
    path = tmp_path / "provisioned.json"
    state.write_atomic(str(path), json.dumps({"format": 1, "inputs": "abc", "files": {}}), mode=0o600)
    assert json.loads(path.read_text())["inputs"] == "abc"
    assert (path.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["provisioned.json"], "no temporary file is left"


def test_the_lock_is_exclusive_reentrant_and_names_its_holder(tmp_path: Path) -> None:
    lock = str(tmp_path / "update.lock")
    held = state.acquire_lock(lock, "cron@ctl scheduled", wait=0, stale=3600)
    assert held["owner"] == "cron@ctl scheduled"
    assert state.acquire_lock(lock, "cron@ctl scheduled", wait=0, stale=3600)["owner"] == "cron@ctl scheduled"
    started = time.monotonic()
    with pytest.raises(state.LockBusyError, match="cron@ctl scheduled holds"):
        state.acquire_lock(lock, "alice@laptop rollout", wait=1, stale=3600)
    assert time.monotonic() - started >= 1, "the second run waits before it gives up"
    assert not state.release_lock(lock, "alice@laptop rollout"), "only the holder gives it back"
    assert state.release_lock(lock, "cron@ctl scheduled")
    assert (
        state.acquire_lock(lock, "alice@laptop rollout", wait=0, stale=3600)["owner"]
        == "alice@laptop rollout"
    )


def test_a_lock_left_by_a_dead_run_is_taken_over(tmp_path: Path) -> None:
    lock = tmp_path / "update.lock"
    state.acquire_lock(str(lock), "a run that died", wait=0, stale=3600)
    old = time.time() - 7200
    os.utime(lock, (old, old))
    assert state.acquire_lock(str(lock), "the next run", wait=0, stale=3600)["owner"] == "the next run"


def test_probe_says_which_paths_exist(tmp_path: Path) -> None:
    # The module's option is of type path: Ansible expands ~user before the module sees it.
    (tmp_path / "javia_client").mkdir()
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    code, uuid, gone = (str(tmp_path / n) for n in ("javia_client", ".javia_device_uuid", "gone"))
    assert state.probe([code, uuid, gone]) == {code: True, uuid: False, gone: True}, "a dangling link counts"
    assert state.probe([]) == {}


def test_the_board_model_is_the_first_model_file_without_its_nul(tmp_path: Path) -> None:
    first, second = tmp_path / "base-model", tmp_path / "proc-model"
    second.write_bytes(b"Raspberry Pi 3 Model B Rev 1.2\0")
    assert state.board_model([str(first), str(second)]) == "Raspberry Pi 3 Model B Rev 1.2"
    first.write_bytes(b"Raspberry Pi 4 Model B Rev 1.5\0")
    assert state.board_model([str(first), str(second)]) == "Raspberry Pi 4 Model B Rev 1.5"
    assert state.board_model([str(tmp_path / "none")]) == ""

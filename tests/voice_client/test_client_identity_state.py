"""Identity and state files: atomic, never silently replaced, unreadable means fatal."""

from __future__ import annotations

import json
import os
import stat
import threading
import uuid
from pathlib import Path

import pytest
from fakes.client_rig import base_env
from voice_client.cli import main
from voice_client.identity import IdentityError, ensure_identity, read_identity
from voice_client.state import Activity, StateStore, atomic_create, atomic_write, utc_now

from voice_client import state

LEGACY = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


def _cli(tmp_path: Path, *args: str, **env: str) -> list[str]:
    env_file = tmp_path / "voice-client.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in base_env(tmp_path, **env).items()))
    return [*args, "--env-file", str(env_file)]


def test_ensure_creates_a_uuid7_once_with_mode_0600(tmp_path):
    path = tmp_path / "device_uuid"
    value, how = ensure_identity(path)
    assert how == "created"
    assert uuid.UUID(value).version == 7
    assert path.read_text() == value + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_identity(path) == (value, "existing")
    assert [p.name for p in tmp_path.iterdir()] == ["device_uuid"]  # no temporary file left


def test_an_existing_identity_is_never_regenerated(tmp_path):
    path = tmp_path / "device_uuid"
    path.write_text(LEGACY)  # not a UUID7, no newline: still the device's identity
    for _ in range(3):
        assert ensure_identity(path, legacy_file=None) == (LEGACY, "existing")
    assert path.read_text() == LEGACY


@pytest.mark.parametrize(
    "content",
    [b"", b"not-a-uuid\n", b"\xff\xfe\x00garbage", (LEGACY + "\n" + LEGACY).encode()],
    ids=["empty", "text", "binary", "two-lines"],
)
def test_a_corrupt_identity_is_fatal_and_left_alone(tmp_path, content):
    path = tmp_path / "device_uuid"
    path.write_bytes(content)
    with pytest.raises(IdentityError, match="is corrupt: expected one UUID"):
        ensure_identity(path)
    with pytest.raises(IdentityError):
        read_identity(path)
    assert path.read_bytes() == content


def test_an_unreadable_identity_is_fatal_and_left_alone(tmp_path):
    path = tmp_path / "device_uuid"
    path.mkdir()  # unreadable as a file even for root
    with pytest.raises(IdentityError, match="cannot read the identity file"):
        ensure_identity(path)
    assert path.is_dir()


def test_the_cli_exits_nonzero_with_a_clear_message_for_a_corrupt_identity(tmp_path, capsys):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "device_uuid").write_text("garbage\n")
    assert main(_cli(tmp_path, "identity", "--ensure")) == 1
    err = capsys.readouterr().err
    assert "device_uuid is corrupt" in err and "left untouched" in err
    assert (tmp_path / "state" / "device_uuid").read_text() == "garbage\n"


def test_identity_without_ensure_never_creates(tmp_path, capsys):
    (tmp_path / "state").mkdir()
    assert main(_cli(tmp_path, "identity")) == 1
    assert "no identity yet" in capsys.readouterr().err
    assert not (tmp_path / "state" / "device_uuid").exists()
    assert main(_cli(tmp_path, "identity", "--ensure")) == 0
    created = capsys.readouterr().out.strip()
    assert main(_cli(tmp_path, "identity")) == 0
    assert capsys.readouterr().out.strip() == created


def test_a_legacy_javia_identity_is_adopted(tmp_path, capsys):
    legacy = tmp_path / "home" / ".javia_device_uuid"
    legacy.parent.mkdir()
    legacy.write_text(LEGACY)  # Javia wrote it without a newline
    assert main(_cli(tmp_path, "identity", "--ensure", LEGACY_UUID_FILE=str(legacy))) == 0
    assert capsys.readouterr().out.strip() == LEGACY
    assert (tmp_path / "state" / "device_uuid").read_text() == LEGACY + "\n"
    assert legacy.read_text() == LEGACY  # the legacy file is kept for rollback


def test_a_corrupt_legacy_identity_is_not_replaced_by_a_new_one(tmp_path):
    legacy = tmp_path / ".javia_device_uuid"
    legacy.write_text("oops")
    with pytest.raises(IdentityError, match="legacy identity file"):
        ensure_identity(tmp_path / "device_uuid", legacy)
    assert not (tmp_path / "device_uuid").exists()


def test_racing_creators_agree_on_one_identity(tmp_path):
    path = tmp_path / "device_uuid"
    results: list[str] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        results.append(ensure_identity(path)[0])

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert path.read_text().strip() == results[0]


def test_atomic_create_never_replaces(tmp_path):
    path = tmp_path / "f"
    assert atomic_create(path, "one\n") is True
    assert atomic_create(path, "two\n") is False
    assert path.read_text() == "one\n"


def test_a_failed_write_keeps_the_old_content_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "volume"
    atomic_write(path, "40\n")
    real_write = os.write

    def failing_write(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data[:1]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state.os, "write", failing_write)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, "90\n")
    monkeypatch.undo()
    assert path.read_text() == "40\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["volume"]


def test_state_files_round_trip(tmp_path):
    store = StateStore(tmp_path)
    assert store.load_volume(70) == 70
    store.save_volume(35)
    assert store.load_volume(70) == 35
    (tmp_path / "volume").write_text("loud\n")
    assert store.load_volume(70) == 70  # corrupt volume: a warning and the default, not a crash

    assert store.load_session_id() is None
    store.save_session_id("abc")
    assert store.load_session_id() == "abc"
    assert stat.S_IMODE((tmp_path / "session_id").stat().st_mode) == 0o600

    moment = utc_now().replace(microsecond=0)
    store.save_activity(Activity(moment, True, "recording", 1234))
    data = json.loads((tmp_path / "activity.json").read_text())
    assert data["last_activity"] == moment.isoformat() and data["busy"] is True
    loaded = store.load_activity()
    assert (loaded.last_activity, loaded.busy, loaded.state, loaded.pid) == (moment, True, "recording", 1234)


def test_status_reads_state_files_only(tmp_path, capsys):
    store_dir = tmp_path / "state"
    store_dir.mkdir()
    (store_dir / "device_uuid").write_text(LEGACY + "\n")
    store = StateStore(store_dir)
    store.save_activity(Activity(utc_now(), True, "recording", os.getpid()))
    assert main(_cli(tmp_path, "status", "--json")) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["device_uuid"] == LEGACY
    assert status["busy"] is True and status["idle_seconds"] == 0
    assert status["version"] == "1.0.0"

    # A busy flag left by a process that is gone is not believed (a crash must not block updates).
    store.save_activity(Activity(utc_now().replace(year=2020), True, "recording", 2**22 + 12345))
    assert main(_cli(tmp_path, "status", "--json")) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["busy"] is False and status["state"] == "stopped"
    assert status["last_activity"].startswith("2020-") and status["last_activity"].endswith("+00:00")
    assert status["idle_seconds"] > 86400

    # Nor is one written before a reboot, even if its pid now belongs to a live process.
    store.save_activity(Activity(utc_now(), True, "recording", os.getpid()))
    data = json.loads((store_dir / "activity.json").read_text())
    assert data["boot_id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    data["boot_id"] = "00000000-0000-0000-0000-000000000000"
    (store_dir / "activity.json").write_text(json.dumps(data))
    assert main(_cli(tmp_path, "status", "--json")) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["busy"] is False and status["service_pid"] is None


def test_status_of_a_never_used_device(tmp_path, capsys):
    (tmp_path / "state").mkdir()
    assert main(_cli(tmp_path, "status", "--json")) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["device_uuid"] is None
    assert (status["busy"], status["last_activity"], status["idle_seconds"]) == (False, None, None)

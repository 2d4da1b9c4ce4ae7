"""`voice-client` as a process: run under SIGTERM and sd_notify, self-check, status, --version.

The service runs as a subprocess on mock pins against the fake server, with
real PyAudio on ALSA's null device (the simulated devices' /etc/asound.conf,
given here through the process's own ~/.asoundrc).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.client_rig import base_env, wait_until

from voice_client import version

ASOUND_NULL = "pcm.!default {\n    type null\n}\n"


@pytest.fixture
def device(tmp_path: Path) -> dict[str, str]:
    """Environment of a simulated device: null sound card, state under tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(ASOUND_NULL)
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
    env.update({"HOME": str(home), "PYTHONUNBUFFERED": "1"})
    return env


def write_env_file(tmp_path: Path, **settings: str) -> Path:
    path = tmp_path / "voice-client.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in base_env(tmp_path, **settings).items()))
    return path


def cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voice_client", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_service(env_file: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "voice_client", "run", "--env-file", str(env_file)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(30)
    yield sock
    sock.close()


def test_version_is_the_packages():
    result = cli("--version", env=dict(os.environ))
    assert result.returncode == 0
    assert result.stdout.strip() == version() == "1.0.0"


def test_run_notifies_systemd_and_stops_cleanly_on_sigterm(tmp_path, device, fake_server, notify_socket):
    env_file = write_env_file(tmp_path, SERVER_URL=fake_server.url, HEARTBEAT_INTERVAL="10")
    proc = start_service(env_file, {**device, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    try:
        assert notify_socket.recv(1024).decode().startswith("READY=1")
        (beat,) = fake_server.wait_for("/heartbeat")
        state_dir = tmp_path / "state"
        device_uuid = (state_dir / "device_uuid").read_text().strip()
        assert beat.headers["X-Device-UUID"] == device_uuid
        # lgpio's FIFOs go to the private runtime directory, the one writable place besides the state.
        assert os.readlink(f"/proc/{proc.pid}/cwd") == str(tmp_path / "run")

        status = cli("status", "--json", "--env-file", str(env_file), env=device)
        assert status.returncode == 0, status.stderr
        document = json.loads(status.stdout)
        assert document["device_uuid"] == device_uuid
        assert document["service_pid"] == proc.pid
        assert document["busy"] is False and document["state"] == "idle"

        proc.send_signal(signal.SIGTERM)
        assert notify_socket.recv(1024).decode() == "STOPPING=1"
        output, _ = proc.communicate(timeout=5)  # the contract: a clean stop within 5 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    assert "SIGTERM received: stopping" in output and "stopped" in output
    activity = json.loads((state_dir / "activity.json").read_text())
    assert activity["busy"] is False and activity["state"] == "stopped"
    assert (state_dir / "volume").read_text() == "100\n"
    assert list((tmp_path / "run").iterdir()) == []


def test_run_turns_the_watchdog_on_and_feeds_it_from_its_main_loop(tmp_path, device, notify_socket):
    env_file = write_env_file(tmp_path, SERVER_URL="http://127.0.0.1:9", WATCHDOG_SECONDS="2")
    proc = start_service(env_file, {**device, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    try:
        assert notify_socket.recv(1024).decode().startswith("READY=1")
        assert notify_socket.recv(1024).decode() == "WATCHDOG_USEC=2000000"
        notify_socket.settimeout(5)
        feeds = [notify_socket.recv(1024).decode() for _ in range(4)]
        assert feeds == ["WATCHDOG=1"] * 4, "fed more often than the 2 s it asked for"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)


def test_run_stays_up_when_the_server_is_unreachable(tmp_path, device, notify_socket):
    env_file = write_env_file(tmp_path, SERVER_URL="http://127.0.0.1:9", HEARTBEAT_INTERVAL="10")
    proc = start_service(env_file, {**device, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    lines: list[str] = []
    try:
        assert notify_socket.recv(1024).decode().startswith("READY=1")
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "heartbeat failed" in line:
                break
        assert proc.poll() is None, "".join(lines)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, "".join(lines) + output


def test_run_refuses_a_bad_configuration_with_exit_2(tmp_path, device):
    env_file = write_env_file(tmp_path, SAMPLE_RATE="48k")
    result = cli("run", "--env-file", str(env_file), env=device)
    assert result.returncode == 2
    assert "SAMPLE_RATE='48k'" in result.stderr


def test_run_stops_with_a_clear_error_on_a_corrupt_identity(tmp_path, device):
    env_file = write_env_file(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "device_uuid").write_text("not a uuid\n")
    result = cli("run", "--env-file", str(env_file), env=device)
    assert result.returncode == 1
    assert "is corrupt" in result.stderr
    assert (tmp_path / "state" / "device_uuid").read_text() == "not a uuid\n"


def test_self_check_passes_on_a_simulated_device(tmp_path, device):
    env_file = write_env_file(tmp_path)
    (tmp_path / "state").mkdir()
    result = cli("self-check", "--env-file", str(env_file), env=device)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "ok   imports",
        "ok   config",
        "ok   audio",
        "ok   state-dir",
        "ok   identity",
    ]
    assert "libopus loads" in lines[0]
    assert not (tmp_path / "state" / "device_uuid").exists()  # self-check never creates it
    assert [p.name for p in (tmp_path / "state").iterdir()] == []  # nor leaves its probe behind


def test_self_check_fails_and_says_why(tmp_path, device):
    env_file = write_env_file(tmp_path, DEVICE_TIMEZONE="Atlantis/Capital")
    result = cli("self-check", "--json", "--env-file", str(env_file), env=device)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    checks = {check["name"]: check for check in report["checks"]}
    assert report["ok"] is False
    assert checks["imports"]["ok"] is True
    assert (
        checks["config"]["ok"] is False and "DEVICE_TIMEZONE='Atlantis/Capital'" in checks["config"]["detail"]
    )


def test_self_check_reports_missing_sound_devices_and_a_bad_state_dir(tmp_path, device):
    (Path(device["HOME"]) / ".asoundrc").write_text("pcm.!default {\n    type hw\n    card 7\n}\n")
    env_file = write_env_file(tmp_path)
    (tmp_path / "state").write_text("a file, not a directory")
    result = cli("self-check", "--env-file", str(env_file), env=device)
    assert result.returncode == 1
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines["FAIL audio"].startswith("no audio input device")
    assert "is not a directory" in lines["FAIL state-dir"]


def test_self_check_reports_a_corrupt_identity(tmp_path, device):
    env_file = write_env_file(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "device_uuid").write_bytes(b"\x00\x01")
    result = cli("self-check", "--env-file", str(env_file), env=device)
    assert result.returncode == 1
    assert "FAIL identity: the identity file" in result.stdout


def test_the_fake_server_runs_as_a_script(tmp_path):
    script = Path(__file__).resolve().parents[2] / "tools" / "fakes" / "voice_server.py"
    proc = subprocess.Popen(
        ["python3", "-S", str(script), "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        import requests  # noqa: PLC0415

        answer = requests.post(
            f"{url}/api/v1/prepare",
            headers={"X-Device-UUID": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"},
            timeout=5,
        )
        assert answer.status_code == 200 and answer.json()["status"] == "ready"
        refused = requests.post(f"{url}/api/v1/prepare", timeout=5)
        assert refused.status_code == 400
    finally:
        proc.terminate()
        proc.wait(5)
    wait_until(lambda: proc.poll() is not None)


def test_sd_notify_reaches_an_abstract_socket_and_is_quiet_without_systemd():
    from voice_client.notify import sd_notify  # noqa: PLC0415

    name = f"voice-client-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert sd_notify("READY=1", {"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(64) == b"READY=1"
    assert sd_notify("READY=1", {}) is False
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": "relative/path"}) is False


def test_run_without_usable_gpio_says_which_setting_to_change(tmp_path, device):
    # The native factory needs a Raspberry Pi's /proc/device-tree: absent on the controller.
    env_file = write_env_file(tmp_path, GPIO_PIN_FACTORY="native")
    result = cli("run", "--env-file", str(env_file), env=device)
    assert result.returncode == 1
    assert "GPIO_PIN_FACTORY='native' cannot start" in result.stderr
    assert "use mock" in result.stderr

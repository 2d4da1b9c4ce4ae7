"""The service's behaviour end to end in one process: mock pins, fake sound card, fake server."""

from __future__ import annotations

import itertools
import json
import stat
import threading
import uuid

import numpy as np
import pytest
from fakes.client_rig import base_env, wait_until
from fakes.voice_server import build_container
from voice_client.app import IDLE, RECORDING, RESPONDING
from voice_client.audio import PyAudioBackend
from voice_client.config import load_config
from voice_client.heartbeat import FIRST_RETRY, backoff_delay
from voice_client.service import _default_backend, run_service

BEEP_FRAMES = 4800  # one 100 ms chirp at 48 kHz


def test_pyaudio_is_the_default_backend(tmp_path):
    assert run_service.__defaults__[0] is _default_backend
    backend = _default_backend(load_config(base_env(tmp_path)))
    try:
        assert isinstance(backend, PyAudioBackend)
        assert backend._pyaudio.get_portaudio_version() > 0
    finally:
        backend.close()


def test_a_press_records_uploads_and_plays_the_streamed_answer(make_rig, fake_server, tmp_path):
    rig = make_rig(fake_server.url, SERVER_API_KEY="key-123", MICROPHONE_GAIN="1.5")
    rig.record(1.5)
    (request,) = fake_server.wait_for("/api/v1/process", completed=True)
    rig.wait_state(IDLE)

    # What the client sent: the Javia contract.
    assert request.headers["X-Device-UUID"] == rig.client.device_uuid
    assert request.headers["X-API-Key"] == "key-123"
    filename, content_type, _data = request.files["audio"]
    assert (filename, content_type) == ("recording.opus", "audio/opus")
    assert request.form["microphone_gain"] == "1.5"
    container = request.container
    assert (container.sample_rate, container.channels, container.packet_count) == (
        24000,
        1,
        len(container.packets),
    )
    # 1.5 s of 20 ms packets, plus what the fake microphone captured until the press was handled.
    assert 75 <= len(container.packets) <= rig.audio.frames_captured // 960 + 1

    # prepare ran after the recording started and its session id went with the upload.
    (prepare,) = fake_server.of_path("/api/v1/prepare")
    assert prepare.received_at >= rig.audio.input_opened_at[0]
    assert request.form["session_id"] == fake_server.session_id
    assert (rig.config.state_dir / "session_id").read_text().strip() == fake_server.session_id

    # The answer (the echo of 1.5 s) was played after the two beeps, and the amplifier is off again.
    assert rig.audio.frames_played >= 2 * BEEP_FRAMES + int(1.4 * 48000)
    played = rig.audio.played()
    assert played.shape[1] == 2 and np.abs(played).max() > 5000
    assert not rig.amp_on

    # Privacy: the recording was deleted, the runtime directory is private.
    assert list(rig.config.runtime_dir.iterdir()) == []
    assert stat.S_IMODE(rig.config.runtime_dir.stat().st_mode) == 0o700

    activity = json.loads((rig.config.state_dir / "activity.json").read_text())
    assert activity["busy"] is False and activity["state"] == IDLE and activity["last_activity"]


def test_playback_starts_before_the_answer_has_downloaded(make_rig, fake_server):
    fake_server.hold_last_chunk = threading.Event()
    rig = make_rig(fake_server.url)
    rig.record(1.5)
    fake_server.wait_for("/api/v1/process")
    # The server holds back its last chunk; a client that waited for the whole
    # download would never get past the beeps here.
    rig.audio.wait(
        lambda a: a.frames_played > 2 * BEEP_FRAMES + int(0.5 * 48000),
        what="answer audio before the last chunk",
    )
    (request,) = fake_server.of_path("/api/v1/process")
    assert not request.completed
    fake_server.hold_last_chunk.set()
    fake_server.wait_for("/api/v1/process", completed=True)
    rig.wait_state(IDLE)


def test_a_press_during_playback_stops_it(make_rig, fake_server):
    fake_server.chunk_delay = 0.05
    rig = make_rig(fake_server.url, speed=1.0)
    rig.record(2.0)
    rig.wait_state(RESPONDING)
    rig.audio.wait(lambda a: a.frames_played > 2 * BEEP_FRAMES + 4800, what="the answer playing")
    assert rig.amp_on
    rig.press()
    rig.wait_state(IDLE)
    rig.audio.wait(lambda a: all(o.closed for o in a.outputs), what="the output stream closed")
    assert not rig.amp_on
    assert not rig.client.player.busy
    assert rig.audio.frames_played < 2 * BEEP_FRAMES + 2 * 48000  # the 2 s answer was cut short
    # The download was abandoned too.
    (request,) = fake_server.wait_for("/api/v1/process", completed=True, timeout=15)
    assert request.aborted or request.completed
    assert json.loads((rig.config.state_dir / "activity.json").read_text())["busy"] is False


def test_no_network_call_between_the_press_and_the_recording(make_rig, fake_server):
    fake_server.gate = threading.Event()  # every request now hangs until released
    rig = make_rig(fake_server.url)
    rig.press()
    rig.audio.wait(lambda a: a.frames_captured >= 24000, what="recording while the server hangs")
    assert rig.client.state == RECORDING
    activity = json.loads((rig.config.state_dir / "activity.json").read_text())
    assert activity["busy"] is True and activity["state"] == RECORDING
    fake_server.gate.set()
    rig.press()
    fake_server.wait_for("/api/v1/process", completed=True)
    rig.wait_state(IDLE)


def test_failing_heartbeats_never_block_recording(make_rig, fake_server):
    fake_server.heartbeat_status = 500
    rig = make_rig(fake_server.url)
    fake_server.wait_for("/heartbeat")
    wait_until(lambda: rig.client.heartbeat.failures >= 1, what="a failed heartbeat")
    rig.record(0.5)
    fake_server.wait_for("/api/v1/process", completed=True)
    rig.wait_state(IDLE)


def test_an_unreachable_server_only_costs_the_answer(make_rig):
    rig = make_rig("http://127.0.0.1:9")  # nothing listens on the discard port
    rig.record(0.5)
    rig.wait_state(IDLE)
    # Start beep, stop beep, then the error tones; the service carries on.
    rig.audio.wait(lambda a: a.frames_played >= 4 * BEEP_FRAMES, what="the error beep")
    rig.record(0.5)
    rig.wait_state(IDLE)
    assert list(rig.config.runtime_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (build_container(24000, 1, [b"\x00" * 10])[:-4], "stream truncated"),
        (b"<html>502 Bad Gateway</html>", "is not an Opus rate"),
        (build_container(24000, 1, [b"\xff" * 7]), "libopus cannot decode a 7-byte packet"),
    ],
    ids=["truncated", "html", "undecodable"],
)
def test_a_corrupt_answer_is_an_error_not_a_crash(make_rig, fake_server, caplog, answer, message):
    fake_server.answer_override = answer
    rig = make_rig(fake_server.url)
    rig.record(0.5)
    fake_server.wait_for("/api/v1/process", completed=True)
    rig.wait_state(IDLE)
    assert any(
        r.getMessage().startswith("interaction failed: ") and message in r.getMessage()
        for r in caplog.records
    )
    rig.audio.wait(lambda a: a.frames_played >= 4 * BEEP_FRAMES, what="the error beep")
    rig.record(0.5)  # and the next press works as ever
    fake_server.wait_for("/api/v1/process", count=2, completed=True)
    rig.wait_state(IDLE)


def test_a_refused_device_gets_the_error_beep(make_rig, fake_server):
    fake_server.process_status = 403
    rig = make_rig(fake_server.url)
    rig.record(0.5)
    fake_server.wait_for("/api/v1/process")
    rig.wait_state(IDLE)
    rig.audio.wait(lambda a: a.frames_played >= 4 * BEEP_FRAMES, what="the error beep")


def test_a_missing_microphone_is_survived(make_rig):
    rig = make_rig()
    rig.audio.fail_input = "no input device"
    rig.press()
    rig.audio.wait(lambda a: a.frames_played >= 2 * BEEP_FRAMES, what="the error beep")
    assert rig.client.state == IDLE
    rig.audio.fail_input = None
    rig.press()
    rig.wait_state(RECORDING)


def test_a_too_short_recording_is_not_sent(make_rig, fake_server):
    rig = make_rig(fake_server.url, speed=0.25)  # a slow microphone: 0.3 s of audio takes 1.2 s
    rig.press()
    rig.audio.wait(lambda a: a.reads >= 1, what="the first read")
    rig.press()
    rig.wait_state(IDLE)
    assert fake_server.of_path("/api/v1/process") == []


def test_the_length_limit_stops_and_sends_the_recording(make_rig, fake_server):
    rig = make_rig(fake_server.url, speed=0, MAX_RECORDING_SECONDS=1)
    rig.press()
    (request,) = fake_server.wait_for("/api/v1/process", completed=True)
    assert len(request.container.packets) == 50
    rig.wait_state(IDLE)


def test_the_encoder_changes_and_persists_the_volume(make_rig):
    rig = make_rig(INITIAL_VOLUME=50, VOLUME_STEP=5)
    rig.rotate(+3)
    rig.wait_state(IDLE)
    assert rig.client.volume == 65
    rig.rotate(-1)
    rig.wait_state(IDLE)
    assert rig.client.volume == 60
    assert (rig.config.state_dir / "volume").read_text() == "60\n"
    rig.rotate(+20)
    rig.wait_state(IDLE)
    assert rig.client.volume == 100
    rig.rotate(-30)
    rig.wait_state(IDLE)
    assert rig.client.volume == 0
    assert (rig.config.state_dir / "volume").read_text() == "0\n"


def test_volume_scales_what_is_played(make_rig, fake_server):
    rig = make_rig(fake_server.url, INITIAL_VOLUME=100)
    rig.press()
    rig.wait_state(RECORDING)
    wait_until(lambda: not rig.client.player.busy, what="the start beep played")
    loud = np.abs(rig.audio.played()).max()
    before = len(rig.audio.played())
    rig.rotate(-10)  # 50 %
    rig.press()  # too short to send: only the stop beep plays
    rig.wait_state(IDLE)
    wait_until(lambda: not rig.client.player.busy, what="the stop beep played")
    stop_beep = rig.audio.played()[before:]
    assert len(stop_beep) >= BEEP_FRAMES
    assert np.abs(stop_beep).max() == pytest.approx(loud / 2, rel=0.05)


def test_the_heartbeat_reports_version_status_and_metadata(make_rig, fake_server):
    fake_server.api_key = "fleet-key"
    make_rig(fake_server.url, SERVER_API_KEY="fleet-key")
    (beat,) = fake_server.wait_for("/heartbeat")
    assert beat.status == 200
    assert beat.path == "/api/v1/devices/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/heartbeat"
    assert beat.headers["X-API-Key"] == "fleet-key"
    assert beat.json["current_version"] == "1.0.0" and beat.json["status"] == "online"
    metadata = beat.json["metadata"]
    assert set(metadata) == {
        "hardware_model",
        "os_version",
        "python_version",
        "hostname",
        "ip_address",
        "mac_address",
    }
    assert metadata["ip_address"] == "127.0.0.1"  # the address that reaches the server


def test_heartbeat_backoff_grows_to_the_interval():
    fixed = [backoff_delay(n, 300.0, rng=lambda: 0.5) for n in range(8)]
    assert fixed[0] == 300.0
    assert fixed[1:5] == [FIRST_RETRY, 2 * FIRST_RETRY, 4 * FIRST_RETRY, 8 * FIRST_RETRY]
    assert fixed[-1] == 300.0
    assert all(a <= b for a, b in itertools.pairwise(fixed[1:]))


def test_a_new_session_from_the_server_is_kept(make_rig, fake_server):
    rig = make_rig(fake_server.url)
    rig.record(0.5)
    fake_server.wait_for("/api/v1/process", completed=True)
    rig.wait_state(IDLE)
    first = fake_server.session_id
    fake_server.session_id = str(uuid.uuid4())
    rig.record(0.5)
    fake_server.wait_for("/api/v1/process", count=2, completed=True)
    rig.wait_state(IDLE)
    assert rig.client.session_id() == fake_server.session_id
    assert (rig.config.state_dir / "session_id").read_text().strip() == fake_server.session_id
    # prepare carries the session the device holds (none at first), as Javia's server expects.
    prepares = fake_server.of_path("/api/v1/prepare")
    assert "session_id" not in prepares[0].form
    assert prepares[1].form["session_id"] == first

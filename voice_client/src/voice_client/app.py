"""The push-to-talk service: button, encoder, recording, upload, streamed answer.

One controller thread handles every input event in order (GPIO callbacks only
queue them), so state changes never race. Work that waits on the network runs
elsewhere: the heartbeat on its thread, ``prepare`` on a short-lived thread
started after recording began, and each interaction (encode, upload, stream,
play) on its own thread that a press can abandon at any point.

States: ``idle`` -> press -> ``recording`` -> press (or the length limit) ->
``responding`` -> answer played, failed, or press -> ``idle``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from voice_client import beeps, sysinfo, version
from voice_client.audio import AudioBackend, AudioError
from voice_client.codec import UPLOAD_RATE, CodecError, OpusDecoder, encode_recording
from voice_client.config import Config
from voice_client.container import ContainerError, ContainerParser, encode_container
from voice_client.hardware import Controls
from voice_client.heartbeat import Heartbeat
from voice_client.player import Player
from voice_client.recorder import Recorder
from voice_client.server import ServerError, VoiceServer
from voice_client.state import Activity, StateStore, utc_now

log = logging.getLogger(__name__)

IDLE, RECORDING, RESPONDING = "idle", "recording", "responding"
MIN_RECORDING_SECONDS = 0.3
PREBUFFER_SECONDS = 0.2
PREPARE_WAIT_SECONDS = 2.0  # at most, and only after the recording has ended
RECORDING_PREFIX = "recording-"


class Interaction:
    """Encode, upload and play one recording, on its own thread; :meth:`cancel` abandons it."""

    def __init__(self, client: VoiceClient, token: int, pcm: bytes) -> None:
        self.client = client
        self.token = token
        self.pcm = pcm
        self.cancelled = threading.Event()
        self._answer: Any = None
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"interaction-{token}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def cancel(self) -> None:
        self.cancelled.set()
        with self._lock:
            answer = self._answer
        if answer is not None:
            with contextlib.suppress(Exception):
                answer.close()  # aborts the download the thread may be blocked in

    def _run(self) -> None:
        client, config = self.client, self.client.config
        recording: Path | None = None
        try:
            seconds = len(self.pcm) / (2 * config.channels * config.sample_rate)
            if seconds < MIN_RECORDING_SECONDS:
                log.info("recording too short (%.2f s); nothing sent", seconds)
                return
            packets = encode_recording(self.pcm, config.sample_rate, config.channels, config.opus_bitrate)
            recording = client.write_recording(encode_container(UPLOAD_RATE, 1, packets))
            self.pcm = b""
            server = client.make_server()
            try:
                self._exchange(server, recording, seconds, len(packets))
            finally:
                server.close()
        except (ServerError, ContainerError, AudioError, OSError, ValueError) as exc:
            if not self.cancelled.is_set():
                log.error("interaction failed: %s", exc)
                client.player.play(beeps.error_beep(config.sample_rate, config.channels), "error beep")
        except Exception as exc:
            if not self.cancelled.is_set():
                log.exception("interaction failed unexpectedly: %s", exc)
        finally:
            if recording is not None:
                recording.unlink(missing_ok=True)
            client.post("done", self.token)

    def _exchange(self, server: VoiceServer, recording: Path, seconds: float, packets: int) -> None:
        client, config = self.client, self.client.config
        log.info("uploading %.1f s of audio (%d Opus packets)", seconds, packets)
        client.wait_prepared(PREPARE_WAIT_SECONDS)
        answer = server.process(recording, client.session_id(), config.microphone_gain)
        recording.unlink(missing_ok=True)  # uploaded: the recording is not kept
        with self._lock:
            self._answer = answer
        try:
            if self.cancelled.is_set():
                return
            if answer.session_id:
                client.remember_session(answer.session_id)
            if answer.transcription:  # what the user said: not for the journal at INFO
                log.debug("heard: %s", answer.transcription)
            self._play(answer)
        finally:
            answer.close()

    def _play(self, answer: Any) -> None:
        client, config = self.client, self.client.config
        parser = ContainerParser()
        decoder: OpusDecoder | None = None
        playback = client.player.stream(PREBUFFER_SECONDS)
        try:
            try:
                for chunk in answer.chunks():
                    if self.cancelled.is_set():
                        return
                    for packet in parser.feed(chunk):
                        if decoder is None and parser.header is not None:
                            decoder = OpusDecoder(parser.header.channels, config.sample_rate, config.channels)
                        if decoder is None:  # pragma: no cover - packets only follow a header
                            raise ContainerError("a packet arrived before the header")
                        playback.feed(decoder.decode(packet))
            except (ContainerError, CodecError):
                raise  # the bytes arrived but are not a valid answer: their message says why
            except Exception as exc:  # requests/urllib3 errors: reset, timeout, aborted by cancel()
                if self.cancelled.is_set():
                    return
                raise ServerError(f"the answer stopped downloading: {type(exc).__name__}: {exc}") from exc
            parser.close()
            log.info("answer received: %d packets", parser.packets)
        finally:
            playback.finish()
        while not playback.done.wait(0.1):
            if self.cancelled.is_set():
                return


class VoiceClient:
    """The device application, minus process concerns (signals, systemd): see :func:`run_service`."""

    def __init__(
        self,
        config: Config,
        device_uuid: str,
        backend: AudioBackend,
        *,
        pin_factory: Any = None,
        bounce_time: float | None = 0.05,
    ) -> None:
        self.config = config
        self.device_uuid = device_uuid
        self.backend = backend
        self.store = StateStore(config.state_dir)
        self.volume = self.store.load_volume(config.initial_volume)
        self.state = IDLE
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._tokens = itertools.count(1)
        self._interaction: Interaction | None = None
        self._session_id = self.store.load_session_id()
        self._session_lock = threading.Lock()
        self._prepared = threading.Event()
        self._prepared.set()
        self._volume_dirty = False
        self.last_press_latency: float | None = None
        self.recordings_started = 0

        self.controls = Controls(
            button_pin=config.button_pin,
            clk_pin=config.encoder_clk_pin,
            dt_pin=config.encoder_dt_pin,
            amp_pin=config.amp_shutdown_pin,
            on_press=lambda: self.post("press", time.monotonic()),
            on_rotate=lambda step: self.post("rotate", step),
            pin_factory=pin_factory,
            bounce_time=bounce_time,
        )
        self.player = Player(
            backend, config.sample_rate, config.channels, lambda: self.volume, self.controls.set_amp
        )
        self.recorder = Recorder(
            backend,
            config.sample_rate,
            config.channels,
            config.max_recording_seconds,
            on_limit=lambda: self.post("limit", None),
        )
        self._heartbeat_server = self.make_server()
        self.heartbeat = Heartbeat(
            self._heartbeat_server.heartbeat, self.heartbeat_payload, config.heartbeat_interval
        )
        self._thread = threading.Thread(target=self._loop, name="controller", daemon=True)

    # -- wiring -----------------------------------------------------------------
    def make_server(self) -> VoiceServer:
        """A client of the voice server for one thread (requests sessions are not shared)."""
        return VoiceServer(
            self.config.server_url, self.device_uuid, self.config.server_api_key, self.config.server_timeout
        )

    def post(self, kind: str, value: Any) -> None:
        self._events.put((kind, value))

    def heartbeat_payload(self) -> dict[str, Any]:
        return {
            "current_version": version(),
            "status": "online",
            "metadata": sysinfo.metadata(self.config.server_url),
        }

    def wait_prepared(self, timeout: float) -> None:
        """Give a ``prepare`` still in flight a moment: its session id should go with the upload."""
        self._prepared.wait(timeout)

    def session_id(self) -> str | None:
        with self._session_lock:
            return self._session_id

    def remember_session(self, session_id: str) -> None:
        with self._session_lock:
            if session_id == self._session_id:
                return
            self._session_id = session_id
        try:
            self.store.save_session_id(session_id)
        except OSError as exc:
            log.warning("cannot save the session id: %s", exc)

    def write_recording(self, data: bytes) -> Path:
        """The upload, in the private runtime directory (0600), until it is sent."""
        path = self.config.runtime_dir / f"{RECORDING_PREFIX}{secrets.token_hex(8)}.opus"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return path

    def _enter(self, state: str) -> None:
        """Change state, recording it in activity.json first (what `status` reads)."""
        busy = state in (RECORDING, RESPONDING)
        try:
            self.store.save_activity(Activity(utc_now(), busy, state, os.getpid()))
        except OSError as exc:
            log.warning("cannot write activity.json: %s", exc)
        self.state = state

    def sync(self, timeout: float = 10.0) -> bool:
        """Wait until the controller has handled every event posted so far."""
        done = threading.Event()
        self.post("sync", done)
        return done.wait(timeout)

    # -- life cycle ---------------------------------------------------------------
    def start(self) -> None:
        previous = self.store.load_activity()
        try:
            self.store.save_activity(Activity(previous.last_activity, False, IDLE, os.getpid()))
        except OSError as exc:
            log.warning("cannot write activity.json: %s", exc)
        self._thread.start()
        self.heartbeat.start()
        log.info(
            "ready: device %s, version %s, server %s, volume %d%%",
            self.device_uuid,
            version(),
            self.config.server_url,
            self.volume,
        )

    def stop(self) -> None:
        """Stop everything: recording discarded, playback cut, amplifier off, state saved."""
        self.post("stop", None)
        self._thread.join(1.0)
        if self.recorder.recording:
            self.recorder.stop()
        interaction, self._interaction = self._interaction, None
        if interaction is not None:
            interaction.cancel()
        self.player.close(1.5)
        self.controls.close()
        self.heartbeat.stop(0.5)
        self._heartbeat_server.close()
        try:
            self.store.save_volume(self.volume)
            previous = self.store.load_activity()
            self.store.save_activity(Activity(previous.last_activity, False, "stopped", None))
        except OSError as exc:
            log.error("cannot save state on shutdown: %s", exc)

    # -- controller -------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            kind, value = self._events.get()
            try:
                if kind == "stop":
                    return
                handler = getattr(self, f"_on_{kind}")
                handler(value)
            except Exception:
                log.exception("handling %s failed", kind)
            if self._volume_dirty and self._events.empty():
                self._save_volume()

    def _on_press(self, pressed_at: float) -> None:
        if self.state == IDLE:
            self._start_recording(pressed_at)
        elif self.state == RECORDING:
            self._finish_recording()
        else:
            log.info("press during the answer: stopping it")
            interaction, self._interaction = self._interaction, None
            if interaction is not None:
                interaction.cancel()
            self.player.stop_all()
            self._enter(IDLE)

    def _on_sync(self, done: threading.Event) -> None:
        if self._volume_dirty:
            self._save_volume()
        done.set()

    def _on_limit(self, _value: object) -> None:
        if self.state == RECORDING:
            self._finish_recording()

    def _on_done(self, token: int) -> None:
        if self._interaction is not None and self._interaction.token == token:
            self._interaction = None
            self._enter(IDLE)

    def _on_rotate(self, step: int) -> None:
        volume = max(0, min(100, self.volume + step * self.config.volume_step))
        if volume != self.volume:
            self.volume = volume
            self._volume_dirty = True
            log.debug("volume %d%%", volume)

    def _save_volume(self) -> None:
        self._volume_dirty = False
        try:
            self.store.save_volume(self.volume)
        except OSError as exc:
            log.warning("cannot save the volume: %s", exc)

    def _start_recording(self, pressed_at: float) -> None:
        # Nothing may wait on the network before the microphone is open.
        try:
            self.recorder.start()
        except AudioError as exc:
            log.error("cannot record: %s", exc)
            self.player.play(beeps.error_beep(self.config.sample_rate, self.config.channels), "error beep")
            return
        self.last_press_latency = time.monotonic() - pressed_at
        self.player.play(beeps.start_beep(self.config.sample_rate, self.config.channels), "start beep")
        self._enter(RECORDING)
        self.recordings_started += 1
        log.info("recording (started %.1f ms after the press)", self.last_press_latency * 1000)
        self._prepared.clear()
        threading.Thread(target=self._prepare, name="prepare", daemon=True).start()

    def _prepare(self) -> None:
        server = self.make_server()
        try:
            session = server.prepare(self.session_id())
            if session:
                self.remember_session(session)
        except ServerError as exc:
            log.warning("prepare failed (the upload will go ahead without it): %s", exc)
        finally:
            server.close()
            self._prepared.set()

    def _finish_recording(self) -> None:
        pcm = self.recorder.stop()
        self.player.play(beeps.stop_beep(self.config.sample_rate, self.config.channels), "stop beep")
        self._enter(RESPONDING)
        self._interaction = Interaction(self, next(self._tokens), pcm)
        self._interaction.start()


def clean_runtime_dir(runtime_dir: Path) -> None:
    """Create the private runtime directory (0700) and delete recordings a crash left behind."""
    runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):
        runtime_dir.chmod(0o700)
    for stale in runtime_dir.glob(f"{RECORDING_PREFIX}*"):
        stale.unlink(missing_ok=True)

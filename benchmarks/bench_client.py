#!/usr/bin/env python3
"""Benchmark of the voice client (not a test): latency, encode speed, memory.

    .venv/bin/python benchmarks/bench_client.py [--quick]

Measures, against the issue's goals and, where one exists, the Javia approach
run side by side on the same fake server:

- press-to-recording-start: GPIO edge (gpiozero mock pin) to the microphone
  stream open, with the fake sound card and with real PyAudio on ALSA's null
  device (goal <= 50 ms);
- Opus encode speed: downmix + resample + encode of 48 kHz stereo speech-band
  audio, as a fraction of its duration (goal <= 0.05);
- first-audio-out after the answer's first bytes: streaming (this client) vs
  download-everything-then-play (Javia), with the fake server sending a 5 s
  answer at 4x real time;
- resident memory of an idle ``voice-client run`` (goal <= 80 MB).

Prints a table and writes benchmarks/results/client.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# The fakes the voice client's tests use too (tools/fakes), never anything of tests/.
sys.path.insert(0, str(ROOT / "tools"))

from fakes.audio import FakeAudioBackend  # noqa: E402
from fakes.client_rig import Rig, base_env, wait_until  # noqa: E402
from fakes.voice_server import FakeVoiceServer  # noqa: E402
from gpiozero.pins.mock import MockFactory  # noqa: E402
from voice_client.app import IDLE, Interaction, VoiceClient  # noqa: E402
from voice_client.audio import AudioBackend, InputStream, OutputStream, PyAudioBackend  # noqa: E402
from voice_client.codec import OpusDecoder, encode_recording  # noqa: E402
from voice_client.config import load_config  # noqa: E402
from voice_client.container import encode_container, parse_container  # noqa: E402
from voice_client.server import VoiceServer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "client.json"
DEVICE_UUID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
ASOUND_NULL = "pcm.!default {\n    type null\n}\n"


class TimingBackend:
    """Wraps a backend and notes when input streams finish opening and outputs are first written."""

    def __init__(self, inner: AudioBackend) -> None:
        self.inner = inner
        self.opened: list[float] = []
        self.first_writes: list[float] = []

    def open_input(self, rate: int, channels: int, frames_per_buffer: int) -> InputStream:
        stream = self.inner.open_input(rate, channels, frames_per_buffer)
        self.opened.append(time.perf_counter())
        return stream

    def open_output(self, rate: int, channels: int, frames_per_buffer: int) -> OutputStream:
        stream = self.inner.open_output(rate, channels, frames_per_buffer)
        outer = self

        class Timed:
            def write(self, data: bytes) -> None:
                outer.first_writes.append(time.monotonic())
                stream.write(data)

            def close(self) -> None:
                stream.close()

        return Timed()

    def close(self) -> None:
        self.inner.close()


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "max": ordered[-1],
        "n": len(ordered),
    }


def make_client(tmp: Path, backend: AudioBackend, server_url: str, **env: Any) -> Rig:
    config = load_config(base_env(tmp, server_url, LOG_LEVEL="WARNING", **env))
    config.state_dir.mkdir(parents=True, exist_ok=True)
    config.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    pins = MockFactory()
    client = VoiceClient(config, DEVICE_UUID, backend, pin_factory=pins, bounce_time=None)
    client.start()
    return Rig(client, pins, backend)  # type: ignore[arg-type]


def bench_press_latency(tmp: Path, server: FakeVoiceServer, backend: AudioBackend, runs: int) -> list[float]:
    timing = TimingBackend(backend)
    rig = make_client(tmp, timing, server.url, MAX_RECORDING_SECONDS="1")
    samples = []
    try:
        for _ in range(runs):
            rig.wait_state(IDLE, timeout=30)
            wait_until(lambda: not rig.client.player.busy, timeout=30)
            opened, started = len(timing.opened), rig.client.recordings_started
            pin = rig.pins.pin(rig.config.button_pin)
            start = time.perf_counter()
            pin.drive_low()
            wait_until(lambda: len(timing.opened) > opened, timeout=10)  # noqa: B023
            samples.append(timing.opened[-1] - start)
            pin.drive_high()
            # The press is fully handled once the state changed; the 1 s limit then ends the recording.
            wait_until(lambda: rig.client.recordings_started > started, timeout=10)  # noqa: B023
    finally:
        rig.client.stop()
    return samples


def speechlike(rate: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(int(rate * seconds)) / rate
    voice = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180, 360, 720, 1440, 2880), 1))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    signal_ = 0.25 * voice * envelope + 0.02 * rng.standard_normal(len(t))
    pcm = np.clip(signal_ * 32767, -32768, 32767).astype("<i2")
    return np.repeat(pcm.reshape(-1, 1), 2, axis=1)


def bench_encode(seconds: float, runs: int) -> list[float]:
    pcm = speechlike(48000, seconds).tobytes()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        encode_recording(pcm, 48000, 2, 64000)
        samples.append((time.perf_counter() - start) / seconds)
    return samples


def bench_first_audio(
    tmp: Path, server: FakeVoiceServer, runs: int, answer_seconds: float
) -> dict[str, list[float]]:
    """First write to the speaker after the answer's first byte left the server."""
    packets = encode_recording(speechlike(48000, answer_seconds).tobytes(), 48000, 2, 64000)
    tmp.mkdir(parents=True, exist_ok=True)
    recording = tmp / "answer.opus"
    recording.write_bytes(encode_container(24000, 1, packets))
    server.packets_per_chunk = 5  # 100 ms of audio per chunk ...
    server.chunk_delay = 0.025  # ... every 25 ms: the server produces at 4x real time
    timing = TimingBackend(FakeAudioBackend(speed=0))
    rig = make_client(tmp, timing, server.url)
    results: dict[str, list[float]] = {"streaming": [], "javia": []}
    try:
        for _ in range(runs):
            for mode in ("streaming", "javia"):
                wait_until(lambda: not rig.client.player.busy, timeout=30)
                timing.first_writes.clear()
                api = VoiceServer(server.url, DEVICE_UUID, None)
                answer = api.process(recording, None, 1.0)
                if mode == "streaming":
                    Interaction(rig.client, 0, b"")._play(answer)  # this client's code path
                else:
                    play_after_download(rig.client, answer)
                answer.close()
                api.close()
                request = server.of_path("/api/v1/process")[-1]
                assert request.first_byte_at is not None and timing.first_writes
                results[mode].append(timing.first_writes[0] - request.first_byte_at)
    finally:
        rig.client.stop()
    return results


def play_after_download(client: VoiceClient, answer: Any) -> None:
    """The Javia client's way: save the whole answer, decode it all, then play."""
    body = b"".join(answer.chunks())
    header, packets = parse_container(body)
    decoder = OpusDecoder(header.channels, client.config.sample_rate, client.config.channels)
    frames = np.concatenate([decoder.decode(p) for p in packets])
    client.player.play(frames, "answer").done.wait(30)


def bench_idle_memory(tmp: Path, server: FakeVoiceServer, home: Path) -> dict[str, float]:
    env_file = tmp / "memory.env"
    env = base_env(tmp / "memory", server.url, LOG_LEVEL="WARNING")
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    sock_path = tmp / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(60)
        proc_env = {**os.environ, "HOME": str(home), "NOTIFY_SOCKET": str(sock_path)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "voice_client", "run", "--env-file", str(env_file)],
            env=proc_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            sock.recv(64)
            server.wait_for("/heartbeat", timeout=30)
            time.sleep(3)  # settle: heartbeat sent, threads parked
            rss_kb = _rss_kb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    bare = subprocess.run(
        [sys.executable, "-c", "print(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {"voice_client_run_mb": rss_kb / 1024, "bare_python_mb": int(bare.stdout) / 1024}


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def row(name: str, value: str, baseline: str, goal: str, verdict: str) -> str:
    return f"| {name} | {value} | {baseline} | {goal} | {verdict} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    runs = 5 if args.quick else 20

    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmpdir:
        tmp = Path(tmpdir)
        home = tmp / "home"
        home.mkdir()
        (home / ".asoundrc").write_text(ASOUND_NULL)
        os.environ["HOME"] = str(home)  # PortAudio reads ~/.asoundrc: ALSA null device

        with FakeVoiceServer() as server:
            press_fake = stats(bench_press_latency(tmp / "p1", server, FakeAudioBackend(speed=1.0), runs))
            press_pyaudio = stats(bench_press_latency(tmp / "p2", server, PyAudioBackend(), runs))
            encode = stats(bench_encode(10.0, max(3, runs // 4)))
            first = bench_first_audio(tmp / "f", server, max(3, runs // 4), 5.0)
        first_stream, first_javia = stats(first["streaming"]), stats(first["javia"])
        with FakeVoiceServer() as server:
            memory = bench_idle_memory(tmp, server, home)

    ms: Callable[[float], str] = lambda s: f"{s * 1000:.1f} ms"  # noqa: E731
    lines = [
        f"voice client benchmark ({platform.machine()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores; medians, p95 in brackets)",
        "",
        "| measure | voice-client | baseline | goal | |",
        "|---|---|---|---|---|",
        row(
            "press -> recording start (fake card)",
            f"{ms(press_fake['median'])} [{ms(press_fake['p95'])}]",
            "-",
            "<= 50 ms",
            "ok" if press_fake["p95"] <= 0.05 else "MISSED",
        ),
        row(
            "press -> recording start (PyAudio, ALSA null)",
            f"{ms(press_pyaudio['median'])} [{ms(press_pyaudio['p95'])}]",
            "-",
            "<= 50 ms",
            "ok" if press_pyaudio["p95"] <= 0.05 else "MISSED",
        ),
        row(
            "Opus encode, fraction of real time",
            f"{encode['median']:.4f} [{encode['p95']:.4f}]",
            "-",
            "<= 0.05",
            "ok" if encode["p95"] <= 0.05 else "MISSED",
        ),
        row(
            "first audio out after first answer byte",
            f"{ms(first_stream['median'])} [{ms(first_stream['p95'])}]",
            f"{ms(first_javia['median'])} (Javia: whole download first)",
            "-",
            f"{first_javia['median'] / first_stream['median']:.1f}x sooner",
        ),
        row(
            "idle RSS of `voice-client run`",
            f"{memory['voice_client_run_mb']:.1f} MB",
            f"{memory['bare_python_mb']:.1f} MB (bare python3)",
            "<= 80 MB",
            "ok" if memory["voice_client_run_mb"] <= 80 else "MISSED",
        ),
    ]
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": platform.machine(),
                "python": platform.python_version(),
                "press_to_recording_s": {"fake_card": press_fake, "pyaudio_alsa_null": press_pyaudio},
                "opus_encode_fraction_of_real_time": encode,
                "first_audio_out_s": {"streaming": first_stream, "javia_download_first": first_javia},
                "idle_memory_mb": memory,
                "goals": {"press_s": 0.05, "encode_fraction": 0.05, "idle_memory_mb": 80},
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

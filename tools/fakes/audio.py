"""An injected audio backend: a microphone that hears a sine, a speaker that records writes.

Both are paced like a sound card (``speed`` times real time), so a recording
grows while the button is held and playback takes time a press can interrupt.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np
from voice_client.audio import AudioError


class FakeInput:
    def __init__(self, backend: FakeAudioBackend, rate: int, channels: int) -> None:
        self.backend = backend
        self.rate = rate
        self.channels = channels
        self.closed = False
        self._position = 0

    def read(self, frames: int) -> bytes:
        backend = self.backend
        if backend.speed:
            time.sleep(frames / self.rate / backend.speed)
        t = (self._position + np.arange(frames)) / self.rate
        self._position += frames
        wave = backend.amplitude * np.sin(2 * math.pi * backend.frequency * t)
        pcm = np.round(wave * 32767).astype("<i2")
        data = np.repeat(pcm.reshape(-1, 1), self.channels, axis=1).tobytes()
        with backend.cond:
            backend.frames_captured += frames
            backend.reads += 1
            backend.cond.notify_all()
        return data

    def close(self) -> None:
        self.closed = True
        with self.backend.cond:
            self.backend.cond.notify_all()


class FakeOutput:
    def __init__(self, backend: FakeAudioBackend, rate: int, channels: int) -> None:
        self.backend = backend
        self.rate = rate
        self.channels = channels
        self.chunks: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        frames = len(data) // (2 * self.channels)
        if self.backend.speed:
            time.sleep(frames / self.rate / self.backend.speed)
        with self.backend.cond:
            self.chunks.append(data)
            self.backend.frames_played += frames
            self.backend.cond.notify_all()

    def close(self) -> None:
        with self.backend.cond:
            self.closed = True
            self.backend.cond.notify_all()


class FakeAudioBackend:
    """The :class:`voice_client.audio.AudioBackend` of the tests and the benchmark."""

    def __init__(self, speed: float = 1.0, frequency: float = 440.0, amplitude: float = 0.5) -> None:
        self.speed = speed  # 0: no pacing at all
        self.frequency = frequency
        self.amplitude = amplitude
        self.cond = threading.Condition()
        self.inputs: list[FakeInput] = []
        self.outputs: list[FakeOutput] = []
        self.frames_captured = 0
        self.frames_played = 0
        self.reads = 0
        self.fail_input: str | None = None
        self.input_opened_at: list[float] = []
        self.closed = False

    def open_input(self, rate: int, channels: int, frames_per_buffer: int) -> FakeInput:
        if self.fail_input:
            raise AudioError(self.fail_input)
        stream = FakeInput(self, rate, channels)
        with self.cond:
            self.input_opened_at.append(time.monotonic())
            self.inputs.append(stream)
            self.cond.notify_all()
        return stream

    def open_output(self, rate: int, channels: int, frames_per_buffer: int) -> FakeOutput:
        stream = FakeOutput(self, rate, channels)
        with self.cond:
            self.outputs.append(stream)
            self.cond.notify_all()
        return stream

    def close(self) -> None:
        self.closed = True

    def wait(self, predicate, timeout: float = 10.0, what: str = "the audio condition") -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self), timeout):
                raise TimeoutError(f"{what} not reached within {timeout}s")

    def played(self) -> np.ndarray:
        """Everything written to every output, as int16 frames (n, channels)."""
        with self.cond:
            data = b"".join(b"".join(o.chunks) for o in self.outputs)
            channels = self.outputs[0].channels if self.outputs else 1
        return np.frombuffer(data, dtype="<i2").reshape(-1, channels)

"""Sound card access behind a small interface; PyAudio (PortAudio) is the default backend.

Tests inject their own :class:`AudioBackend`; the service and ``self-check``
use :class:`PyAudioBackend`. Streams are 16-bit interleaved PCM, opened when
needed (recording, playback) and closed after, so the card is free while the
device is idle and ``self-check`` can open it beside a running service.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


class AudioError(RuntimeError):
    """A sound device could not be found or opened."""


class InputStream(Protocol):
    def read(self, frames: int) -> bytes:
        """Block until ``frames`` frames of interleaved int16 are captured."""
        ...

    def close(self) -> None: ...


class OutputStream(Protocol):
    def write(self, data: bytes) -> None:
        """Queue interleaved int16 frames, blocking while the device buffer is full."""
        ...

    def close(self) -> None:
        """Let queued audio play out, then release the device."""
        ...


class AudioBackend(Protocol):
    def open_input(self, rate: int, channels: int, frames_per_buffer: int) -> InputStream: ...

    def open_output(self, rate: int, channels: int, frames_per_buffer: int) -> OutputStream: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_rate: float


_stderr_lock = threading.Lock()


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Collect what C libraries (ALSA, JACK) print on fd 2 meanwhile, instead of the journal.

    PortAudio probes every ALSA and JACK device at start and both libraries
    report unusable ones on stderr; those lines are logged at debug level.
    """
    lines: list[str] = []
    with _stderr_lock:
        try:
            saved = os.dup(2)
            sink = os.memfd_create("voice-client-stderr", os.MFD_CLOEXEC)
        except OSError:  # pragma: no cover - memfd needs Linux 3.17
            yield lines
            return
        try:
            os.dup2(sink, 2)
            try:
                yield lines
            finally:
                os.dup2(saved, 2)
            os.lseek(sink, 0, os.SEEK_SET)
            with os.fdopen(os.dup(sink), "rb") as captured:
                text = captured.read().decode(errors="replace")
            lines.extend(line for line in text.splitlines() if line.strip())
        finally:
            os.close(sink)
            os.close(saved)
    for line in lines:
        log.debug("audio library: %s", line)


class _PyAudioInput:
    def __init__(self, stream: object) -> None:
        self._stream = stream

    def read(self, frames: int) -> bytes:
        return self._stream.read(frames, exception_on_overflow=False)  # type: ignore[attr-defined]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.stop_stream()  # type: ignore[attr-defined]
        self._stream.close()  # type: ignore[attr-defined]


class _PyAudioOutput:
    def __init__(self, stream: object) -> None:
        self._stream = stream

    def write(self, data: bytes) -> None:
        self._stream.write(data)  # type: ignore[attr-defined]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.stop_stream()  # type: ignore[attr-defined]  # drains what is queued
        self._stream.close()  # type: ignore[attr-defined]


class PyAudioBackend:
    """PortAudio through PyAudio. Devices: name substring or index, else the default."""

    def __init__(self, input_device: str | None = None, output_device: str | None = None) -> None:
        import pyaudio  # noqa: PLC0415 (tests that inject a backend never load PortAudio)

        self._pyaudio = pyaudio
        with captured_stderr():
            self._pa = pyaudio.PyAudio()
        self.input_spec = input_device
        self.output_spec = output_device

    def devices(self) -> list[DeviceInfo]:
        found = []
        for index in range(self._pa.get_device_count()):
            info = self._pa.get_device_info_by_index(index)
            found.append(
                DeviceInfo(
                    index=index,
                    name=str(info["name"]),
                    max_input_channels=int(info["maxInputChannels"]),
                    max_output_channels=int(info["maxOutputChannels"]),
                    default_rate=float(info["defaultSampleRate"]),
                )
            )
        return found

    def find_device(self, spec: str | None, direction: str) -> DeviceInfo:
        """The device for ``spec`` (index or name substring) or the default, with ``direction`` channels."""
        key = "max_input_channels" if direction == "input" else "max_output_channels"
        usable = [d for d in self.devices() if getattr(d, key) > 0]
        if not usable:
            raise AudioError(
                f"no audio {direction} device: PortAudio lists none (is the sound card configured?)"
            )
        if spec is None:
            try:
                default = (
                    self._pa.get_default_input_device_info()
                    if direction == "input"
                    else self._pa.get_default_output_device_info()
                )
            except OSError:
                return usable[0]
            index = int(default["index"])
            return next((d for d in usable if d.index == index), usable[0])
        if spec.isdigit():
            match = [d for d in usable if d.index == int(spec)]
        else:
            match = [d for d in usable if spec.lower() in d.name.lower()]
        if not match:
            names = ", ".join(f"{d.index}:{d.name}" for d in usable)
            variable = "AUDIO_INPUT_DEVICE" if direction == "input" else "AUDIO_OUTPUT_DEVICE"
            raise AudioError(f"{variable}={spec!r} matches no {direction} device (available: {names})")
        return match[0]

    def _open(self, direction: str, rate: int, channels: int, frames_per_buffer: int) -> object:
        spec = self.input_spec if direction == "input" else self.output_spec
        device = self.find_device(spec, direction)
        try:
            return self._pa.open(
                format=self._pyaudio.paInt16,
                channels=channels,
                rate=rate,
                frames_per_buffer=frames_per_buffer,
                **{direction: True, f"{direction}_device_index": device.index},
            )
        except (OSError, ValueError) as exc:
            raise AudioError(
                f"cannot open {direction} {device.name!r} at {rate} Hz x{channels}: {exc}"
            ) from exc

    def open_input(self, rate: int, channels: int, frames_per_buffer: int) -> InputStream:
        return _PyAudioInput(self._open("input", rate, channels, frames_per_buffer))

    def open_output(self, rate: int, channels: int, frames_per_buffer: int) -> OutputStream:
        return _PyAudioOutput(self._open("output", rate, channels, frames_per_buffer))

    def close(self) -> None:
        self._pa.terminate()

"""PCM conversions and Opus encode/decode (libopus through opuslib).

The upload is mono 24 kHz Opus (VOIP, 20 ms frames); the answer is decoded
straight to the sound card's rate where Opus allows it, and up- or down-mixed
to its channel count.
"""

from __future__ import annotations

import warnings

import numpy as np

with warnings.catch_warnings():
    # opuslib 3.0.1 compares ints with `is not` (harmless, but noisy when compiled).
    warnings.simplefilter("ignore", SyntaxWarning)
    import opuslib

from voice_client.container import OPUS_RATES


class CodecError(ValueError):
    """libopus refused a packet (the answer is corrupt)."""


UPLOAD_RATE = 24000
FRAME_MS = 20
_MAX_FRAME_MS = 120  # the longest frame an Opus packet can hold


def downmix(pcm: bytes, channels: int) -> np.ndarray:
    """Interleaved int16 ``pcm`` to a mono float32 array in [-1, 1]."""
    samples = np.frombuffer(pcm, dtype="<i2")
    usable = len(samples) - len(samples) % channels
    frames = samples[:usable].reshape(-1, channels).astype(np.float32)
    return frames.mean(axis=1) / 32768.0


def _lowpass(x: np.ndarray, cutoff: float, taps: int = 63) -> np.ndarray:
    """Windowed-sinc low-pass; ``cutoff`` in cycles per sample (< 0.5)."""
    n = np.arange(taps) - (taps - 1) / 2
    kernel = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(taps)
    kernel /= kernel.sum()
    return np.convolve(x, kernel.astype(np.float32), mode="same")


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Resample a mono float array from ``src`` to ``dst`` Hz (anti-aliased when going down)."""
    if src == dst or len(x) == 0:
        return x.astype(np.float32, copy=False)
    if dst < src:
        x = _lowpass(x, 0.45 * dst / src)
    count = int(len(x) * dst // src)
    positions = np.arange(count, dtype=np.float64) * (src / dst)
    return np.interp(positions, np.arange(len(x)), x).astype(np.float32)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")


def frame_samples(rate: int) -> int:
    return rate * FRAME_MS // 1000


class OpusEncoder:
    """Mono Opus encoder producing 20 ms packets."""

    def __init__(self, rate: int = UPLOAD_RATE, bitrate: int = 64000) -> None:
        if rate not in OPUS_RATES:
            raise ValueError(f"Opus cannot encode at {rate} Hz (rates: {OPUS_RATES})")
        self.rate = rate
        self.frame = frame_samples(rate)
        self._encoder = opuslib.Encoder(rate, 1, opuslib.APPLICATION_VOIP)
        self._encoder.bitrate = bitrate

    def encode(self, mono: np.ndarray) -> list[bytes]:
        """Encode float samples in [-1, 1]; the last frame is padded with silence."""
        pcm = to_int16(mono)
        remainder = len(pcm) % self.frame
        if remainder:
            pcm = np.concatenate([pcm, np.zeros(self.frame - remainder, dtype="<i2")])
        raw = pcm.tobytes()
        step = self.frame * 2
        return [self._encoder.encode(raw[i : i + step], self.frame) for i in range(0, len(raw), step)]


def encode_recording(pcm: bytes, rate: int, channels: int, bitrate: int) -> list[bytes]:
    """The microphone's interleaved int16 ``pcm`` as mono 24 kHz Opus packets."""
    mono = resample(downmix(pcm, channels), rate, UPLOAD_RATE)
    return OpusEncoder(UPLOAD_RATE, bitrate).encode(mono)


class OpusDecoder:
    """Decode packets of one stream to interleaved int16 at ``out_rate`` with ``out_channels``."""

    def __init__(self, stream_channels: int, out_rate: int, out_channels: int) -> None:
        # Opus decodes to any of its rates whatever the encoder used; other
        # sound card rates get 48 kHz resampled.
        self.decode_rate = out_rate if out_rate in OPUS_RATES else 48000
        self.stream_channels = stream_channels
        self.out_rate = out_rate
        self.out_channels = out_channels
        self._decoder = opuslib.Decoder(self.decode_rate, stream_channels)
        self._max_frame = self.decode_rate * _MAX_FRAME_MS // 1000

    def decode(self, packet: bytes) -> np.ndarray:
        try:
            raw = self._decoder.decode(packet, self._max_frame)
        except opuslib.OpusError as exc:
            raise CodecError(f"libopus cannot decode a {len(packet)}-byte packet: {exc}") from exc
        pcm = np.frombuffer(raw, dtype="<i2").reshape(-1, self.stream_channels)
        if self.decode_rate != self.out_rate:
            mono = pcm.mean(axis=1).astype(np.float32) / 32768.0
            pcm = to_int16(resample(mono, self.decode_rate, self.out_rate)).reshape(-1, 1)
        return remix(pcm, self.out_channels)


def remix(frames: np.ndarray, channels: int) -> np.ndarray:
    """(n, c) int16 frames to (n, channels): mono is copied to every channel, extra ones averaged."""
    have = frames.shape[1]
    if have == channels:
        return frames
    if have == 1:
        return np.repeat(frames, channels, axis=1)
    mono = frames.mean(axis=1, keepdims=True).astype("<i2")
    return np.repeat(mono, channels, axis=1)

"""Short chirps that tell the user recording started (rising) or stopped (falling)."""

from __future__ import annotations

import numpy as np

from voice_client.codec import remix, to_int16

CHIRP_SECONDS = 0.1
_FADE_SECONDS = 0.005
_LEVEL = 0.3


def chirp(
    rate: int, channels: int, start_hz: float, end_hz: float, seconds: float = CHIRP_SECONDS
) -> np.ndarray:
    """A linear chirp as (frames, channels) int16, faded in and out so it does not click."""
    count = int(rate * seconds)
    t = np.arange(count) / rate
    # Phase of a linear sweep: 2π(f0 t + (f1 - f0) t² / 2T).
    phase = 2 * np.pi * (start_hz * t + (end_hz - start_hz) * t * t / (2 * seconds))
    wave = np.sin(phase) * _LEVEL
    fade = min(int(rate * _FADE_SECONDS), count // 2)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        wave[:fade] *= ramp
        wave[-fade:] *= ramp[::-1]
    return remix(to_int16(wave).reshape(-1, 1), channels)


def start_beep(rate: int, channels: int) -> np.ndarray:
    return chirp(rate, channels, 600.0, 900.0)


def stop_beep(rate: int, channels: int) -> np.ndarray:
    return chirp(rate, channels, 900.0, 600.0)


def error_beep(rate: int, channels: int) -> np.ndarray:
    """Two low tones: the server could not answer."""
    tone = chirp(rate, channels, 400.0, 400.0)
    gap = np.zeros((int(rate * 0.08), channels), dtype="<i2")
    return np.concatenate([tone, gap, tone])

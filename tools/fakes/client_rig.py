"""Harness for the voice client's tests and benchmark: settings and a client on mock pins."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory
from voice_client.app import VoiceClient
from voice_client.config import Config

from fakes.audio import FakeAudioBackend


def wait_until(predicate: Any, timeout: float = 10.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout}s")
        time.sleep(0.01)


def base_env(tmp_path: Path, server_url: str = "http://127.0.0.1:9", **extra: Any) -> dict[str, str]:
    """Settings for a client whose state lives under ``tmp_path``."""
    env = {
        "SERVER_URL": server_url,
        "STATE_DIR": str(tmp_path / "state"),
        "RUNTIME_DIR": str(tmp_path / "run"),
        "GPIO_PIN_FACTORY": "mock",
        "HEARTBEAT_INTERVAL": "3600",
        "LOG_LEVEL": "DEBUG",
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


class Rig:
    """A started :class:`VoiceClient` on mock pins with a fake sound card."""

    def __init__(self, client: VoiceClient, pins: MockFactory, audio: FakeAudioBackend) -> None:
        self.client = client
        self.pins = pins
        self.audio = audio
        self.config: Config = client.config

    def press(self) -> None:
        pin = self.pins.pin(self.config.button_pin)
        pin.drive_low()
        pin.drive_high()

    def rotate(self, steps: int) -> None:
        a, b = self.pins.pin(self.config.encoder_clk_pin), self.pins.pin(self.config.encoder_dt_pin)
        first, second = (a, b) if steps > 0 else (b, a)
        for _ in range(abs(steps)):
            first.drive_low()
            second.drive_low()
            first.drive_high()
            second.drive_high()

    @property
    def amp_on(self) -> bool:
        return bool(self.pins.pin(self.config.amp_shutdown_pin).state)

    def wait_state(self, state: str, timeout: float = 10.0) -> None:
        """Wait until every event so far is handled and the client is in ``state``."""
        deadline = time.monotonic() + timeout
        while not (self.client.sync(timeout) and self.client.state == state):
            if time.monotonic() > deadline:
                raise TimeoutError(f"client state {self.client.state!r}, wanted {state!r}")
            time.sleep(0.01)

    def record(self, seconds: float) -> None:
        """Press, let the fake microphone capture ``seconds`` of audio, press again."""
        start = self.audio.frames_captured
        self.press()
        rate = self.config.sample_rate
        self.audio.wait(lambda a: a.frames_captured - start >= seconds * rate, what=f"{seconds}s captured")
        self.press()

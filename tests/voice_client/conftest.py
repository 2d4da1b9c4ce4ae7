"""Fixtures for the voice client: settings, the fake voice server, a client on mock pins.

The fakes are tools/fakes (tests/conftest.py puts tools/ on sys.path): the client benchmark
and the simulated fleet use the same ones, and nothing outside tests/ may import from tests/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.audio import FakeAudioBackend
from fakes.client_rig import Rig, base_env
from fakes.voice_server import FakeVoiceServer
from gpiozero.pins.mock import MockFactory
from voice_client.app import VoiceClient
from voice_client.config import load_config


@pytest.fixture
def fake_server() -> Iterator[FakeVoiceServer]:
    with FakeVoiceServer() as server:
        yield server


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(server_url: str = "http://127.0.0.1:9", speed: float = 8.0, **env: Any) -> Rig:
        config = load_config(base_env(tmp_path, server_url, **env))
        config.state_dir.mkdir(parents=True, exist_ok=True)
        config.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        pins = MockFactory()
        audio = FakeAudioBackend(speed=speed)
        client = VoiceClient(
            config, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", audio, pin_factory=pins, bounce_time=None
        )
        rig = Rig(client, pins, audio)
        rigs.append(rig)
        client.start()
        return rig

    yield make
    for rig in rigs:
        rig.client.stop()

"""``voice-client run``: process life around :class:`VoiceClient` (signals, systemd, exit codes)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from voice_client.app import VoiceClient, clean_runtime_dir
from voice_client.audio import AudioBackend, AudioError, PyAudioBackend
from voice_client.config import Config
from voice_client.hardware import GPIOError, make_pin_factory
from voice_client.identity import ensure_identity
from voice_client.notify import sd_notify

log = logging.getLogger(__name__)


def _default_backend(config: Config) -> AudioBackend:
    backend = PyAudioBackend(config.audio_input_device, config.audio_output_device)
    for direction, spec in (("input", config.audio_input_device), ("output", config.audio_output_device)):
        try:
            device = backend.find_device(spec, direction)
            log.info("audio %s: %s", direction, device.name)
        except AudioError as exc:  # not fatal: the card may appear later (e.g. overlay loading)
            log.error("%s", exc)
    return backend


def run_service(
    config: Config,
    backend_factory: Callable[[Config], AudioBackend] = _default_backend,
    stop_event: threading.Event | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or ``stop_event``); 0 on a clean stop."""
    stop = stop_event or threading.Event()
    config.state_dir.mkdir(parents=True, exist_ok=True)
    clean_runtime_dir(config.runtime_dir)
    # lgpio (the Pi 5's pin factory) creates its notification FIFOs in $LG_WD
    # (C library) and opens them relative to the working directory (Python
    # module): both must be the same writable place under ProtectSystem=strict.
    os.environ["LG_WD"] = str(config.runtime_dir)
    os.chdir(config.runtime_dir)
    device_uuid, _how = ensure_identity(config.identity_file, config.legacy_uuid_file)

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    backend = None
    client = None
    try:
        try:
            pin_factory = make_pin_factory(config.gpio_pin_factory)
        except GPIOError as exc:
            log.error("%s", exc)
            return 1
        backend = backend_factory(config)
        try:
            client = VoiceClient(config, device_uuid, backend, pin_factory=pin_factory)
        except GPIOError as exc:
            log.error("%s", exc)
            return 1
        client.start()
        sd_notify("READY=1\nSTATUS=idle")
        # The client turns systemd's watchdog on itself (WATCHDOG_USEC) instead of the unit's
        # WatchdogSec=: older releases, which never feed it, then keep running under the same unit.
        watchdog = config.watchdog_seconds
        if watchdog:
            sd_notify(f"WATCHDOG_USEC={watchdog * 1_000_000}")
        tick = min(1.0, watchdog / 4) if watchdog else 1.0
        while not stop.wait(tick):
            if watchdog:
                sd_notify("WATCHDOG=1")
        sd_notify("STOPPING=1")
    finally:
        if client is not None:
            client.stop()
        if backend is not None:
            backend.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped")
    return 0

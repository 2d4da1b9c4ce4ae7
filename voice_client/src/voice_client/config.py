"""The client's settings, read from environment variables and validated at start.

Every problem is collected and reported together, each naming the variable
and the bad value (secrets excepted), so one look at the journal is enough to
fix a device's ``/etc/voice-client/voice-client.env``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import pytz

T = TypeVar("T")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# gpiozero's own pin factory names (entry points "gpiozero_pin_factories").
PIN_FACTORIES = ("lgpio", "rpigpio", "pigpio", "native", "mock")


class ConfigError(ValueError):
    """One or more settings are invalid; ``problems`` lists them one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Config:
    """Validated settings. Build it with :func:`load_config`."""

    server_url: str
    server_api_key: str | None = field(default=None, repr=False)
    device_timezone: str = "UTC"
    device_name: str | None = None
    state_dir: Path = Path("/var/lib/voice-client")
    runtime_dir: Path = Path("/run/voice-client")
    log_level: str = "INFO"
    button_pin: int = 17
    encoder_clk_pin: int = 22
    encoder_dt_pin: int = 23
    amp_shutdown_pin: int = 27
    sample_rate: int = 48000
    channels: int = 2
    opus_bitrate: int = 64000
    volume_step: int = 5
    initial_volume: int = 100
    microphone_gain: float = 1.0
    heartbeat_interval: int = 300
    # systemd watchdog the client turns on and feeds from its main loop (0: off).
    watchdog_seconds: int = 0
    server_timeout: float = 60.0
    max_recording_seconds: int = 60
    gpio_pin_factory: str | None = None
    legacy_uuid_file: Path | None = None
    audio_input_device: str | None = None
    audio_output_device: str | None = None

    @property
    def identity_file(self) -> Path:
        return self.state_dir / "device_uuid"


class _Reader:
    """Reads one variable at a time and records what is wrong with it."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def fail(self, name: str, value: str, why: str) -> None:
        self.problems.append(f"{name}={value!r}: {why}")

    def parse(self, name: str, default: T, convert: Callable[[str], T], why: str) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return convert(value)
        except ValueError:
            self.fail(name, value, why)
            return default

    def integer(self, name: str, default: int, low: int, high: int, hint: str = "") -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value, 10)
        except ValueError:
            self.fail(name, value, f"not an integer (expected {low}..{high}{hint})")
            return default
        if not low <= number <= high:
            self.fail(name, value, f"out of range (expected {low}..{high}{hint})")
            return default
        return number

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            self.fail(name, value, f"not a number (expected {low}..{high})")
            return default
        if not math.isfinite(number) or not low <= number <= high:
            self.fail(name, value, f"out of range (expected {low}..{high})")
            return default
        return number

    def path(self, name: str, default: Path | None) -> Path | None:
        value = self.raw(name)
        if value is None:
            return default
        if not value.startswith("/"):
            self.fail(name, value, "must be an absolute path")
            return default
        return Path(value)


def _server_url(reader: _Reader) -> str:
    value = reader.raw("SERVER_URL")
    if value is None:
        reader.problems.append(
            "SERVER_URL is not set: give the voice server's base URL, e.g. https://voice.example.com"
        )
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        reader.fail("SERVER_URL", value, "expected an http:// or https:// URL with a host name")
        return ""
    if parts.query or parts.fragment:
        reader.fail("SERVER_URL", value, "must not carry a query string or fragment")
        return ""
    try:
        parts.port  # noqa: B018 (urlsplit validates the port lazily)
    except ValueError:
        reader.fail("SERVER_URL", value, "the port is not a number in 1..65535")
        return ""
    return value.rstrip("/")


def _timezone(reader: _Reader) -> str:
    value = reader.raw("DEVICE_TIMEZONE")
    if value is None:
        return "UTC"
    try:
        return pytz.timezone(value).zone
    except pytz.UnknownTimeZoneError:
        reader.fail(
            "DEVICE_TIMEZONE", value, "not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)"
        )
        return "UTC"


def _choice(reader: _Reader, name: str, choices: tuple[str, ...], default: str | None) -> str | None:
    value = reader.raw(name)
    if value is None:
        return default
    if value.lower() not in {c.lower() for c in choices}:
        reader.fail(name, value, f"expected one of {', '.join(choices)}")
        return default
    return value.upper() if name == "LOG_LEVEL" else value.lower()


def load_config(env: Mapping[str, str]) -> Config:
    """Validate ``env`` (os.environ, perhaps merged with an env file) into a :class:`Config`."""
    r = _Reader(env)
    server_url = _server_url(r)
    pins = {
        "BUTTON_PIN": r.integer("BUTTON_PIN", 17, 0, 27, ", a BCM GPIO number"),
        "ENCODER_CLK_PIN": r.integer("ENCODER_CLK_PIN", 22, 0, 27, ", a BCM GPIO number"),
        "ENCODER_DT_PIN": r.integer("ENCODER_DT_PIN", 23, 0, 27, ", a BCM GPIO number"),
        "AMP_SHUTDOWN_PIN": r.integer("AMP_SHUTDOWN_PIN", 27, 0, 27, ", a BCM GPIO number"),
    }
    seen: dict[int, str] = {}
    for name, pin in pins.items():
        if pin in seen:
            r.fail(name, str(pin), f"GPIO{pin} is already used by {seen[pin]}: every pin must be different")
        seen.setdefault(pin, name)

    device_name = r.raw("DEVICE_NAME")
    if device_name is not None and (len(device_name) > 64 or not device_name.isprintable()):
        r.fail("DEVICE_NAME", device_name, "must be at most 64 printable characters")
        device_name = None

    config = Config(
        server_url=server_url,
        server_api_key=r.raw("SERVER_API_KEY"),
        device_timezone=_timezone(r),
        device_name=device_name,
        state_dir=r.path("STATE_DIR", Path("/var/lib/voice-client")) or Path("/var/lib/voice-client"),
        runtime_dir=r.path("RUNTIME_DIR", Path("/run/voice-client")) or Path("/run/voice-client"),
        log_level=_choice(r, "LOG_LEVEL", LOG_LEVELS, "INFO") or "INFO",
        button_pin=pins["BUTTON_PIN"],
        encoder_clk_pin=pins["ENCODER_CLK_PIN"],
        encoder_dt_pin=pins["ENCODER_DT_PIN"],
        amp_shutdown_pin=pins["AMP_SHUTDOWN_PIN"],
        sample_rate=r.integer("SAMPLE_RATE", 48000, 8000, 192000, " Hz, the sound card's rate, e.g. 48000"),
        channels=r.integer("CHANNELS", 2, 1, 8, ", the sound card's channel count"),
        opus_bitrate=r.integer("OPUS_BITRATE", 64000, 6000, 510000, " bit/s"),
        volume_step=r.integer("VOLUME_STEP", 5, 1, 50, " percent per encoder detent"),
        initial_volume=r.integer("INITIAL_VOLUME", 100, 0, 100, " percent"),
        microphone_gain=r.number("MICROPHONE_GAIN", 1.0, 0.1, 20.0),
        heartbeat_interval=r.integer("HEARTBEAT_INTERVAL", 300, 10, 86400, " seconds"),
        watchdog_seconds=r.integer("WATCHDOG_SECONDS", 0, 0, 3600, " seconds (0 turns the watchdog off)"),
        server_timeout=r.number("SERVER_TIMEOUT", 60.0, 1.0, 600.0),
        max_recording_seconds=r.integer("MAX_RECORDING_SECONDS", 60, 1, 600, " seconds"),
        gpio_pin_factory=_choice(r, "GPIO_PIN_FACTORY", PIN_FACTORIES, None),
        legacy_uuid_file=r.path("LEGACY_UUID_FILE", None),
        audio_input_device=r.raw("AUDIO_INPUT_DEVICE"),
        audio_output_device=r.raw("AUDIO_OUTPUT_DEVICE"),
    )
    if config.state_dir == config.runtime_dir:
        r.fail(
            "RUNTIME_DIR",
            str(config.runtime_dir),
            "must differ from STATE_DIR (recordings are private and deleted)",
        )
    if r.problems:
        raise ConfigError(r.problems)
    return config

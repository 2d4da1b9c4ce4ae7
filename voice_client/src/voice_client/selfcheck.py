"""``voice-client self-check``: the health gate a release must pass before it goes live.

One line per check (``ok   name: detail`` / ``FAIL name: detail``) and exit 0
only when all pass. It reads and probes, and creates nothing lasting: a test
file in the state directory is removed again and the identity is never made.
"""

from __future__ import annotations

import importlib
import os
import secrets
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata

from voice_client.audio import AudioBackend, AudioError, PyAudioBackend
from voice_client.config import Config, ConfigError, load_config
from voice_client.identity import IdentityError, read_identity

# (import name, distribution name) of every runtime dependency.
RUNTIME_MODULES = (
    ("numpy", "numpy"),
    ("opuslib", "opuslib"),
    ("pyaudio", "PyAudio"),
    ("gpiozero", "gpiozero"),
    ("requests", "requests"),
    ("uuid6", "uuid6"),
    ("pytz", "pytz"),
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def check_imports() -> Check:
    found, problems = [], []
    for module, dist in RUNTIME_MODULES:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SyntaxWarning)
                importlib.import_module(module)
            found.append(f"{dist} {metadata.version(dist)}")
        except Exception as exc:  # ImportError, or opuslib's own error when libopus is missing
            problems.append(f"{module}: {type(exc).__name__}: {exc}")
    if not problems:
        try:
            import opuslib  # noqa: PLC0415

            opuslib.Encoder(24000, 1, opuslib.APPLICATION_VOIP)
            found.append("libopus loads")
        except Exception as exc:
            problems.append(f"libopus: {type(exc).__name__}: {exc} (install libopus0)")
    if problems:
        return Check("imports", False, "; ".join(problems))
    return Check("imports", True, ", ".join(found))


def check_audio(config: Config, backend_factory: Callable[[Config], AudioBackend]) -> Check:
    frames = config.sample_rate // 50
    try:
        backend = backend_factory(config)
    except Exception as exc:
        return Check("audio", False, f"PortAudio does not start: {exc}")
    try:
        names = []
        if isinstance(backend, PyAudioBackend):
            names = [
                backend.find_device(config.audio_input_device, "input").name,
                backend.find_device(config.audio_output_device, "output").name,
            ]
        stream = backend.open_input(config.sample_rate, config.channels, frames)
        try:
            data = stream.read(frames)
        finally:
            stream.close()
        if len(data) != frames * 2 * config.channels:
            return Check("audio", False, f"the input gave {len(data)} bytes for {frames} frames")
        out = backend.open_output(config.sample_rate, config.channels, frames)
        try:
            out.write(bytes(frames * 2 * config.channels))
        finally:
            out.close()
    except (AudioError, OSError) as exc:
        return Check("audio", False, str(exc))
    finally:
        backend.close()
    shown = f"input {names[0]!r}, output {names[1]!r}" if names else "input and output"
    return Check("audio", True, f"{shown} open at {config.sample_rate} Hz x{config.channels}")


def check_state_dir(config: Config) -> Check:
    directory = config.state_dir
    if not directory.is_dir():
        return Check("state-dir", False, f"{directory} does not exist or is not a directory")
    probe = directory / f".self-check-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"ok\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        probe.unlink()
    except OSError as exc:
        return Check("state-dir", False, f"{directory} is not writable: {exc.strerror or exc}")
    return Check("state-dir", True, f"{directory} is writable")


def check_identity(config: Config) -> Check:
    try:
        value = read_identity(config.identity_file)
    except IdentityError as exc:
        return Check("identity", False, str(exc))
    if value is None:
        return Check(
            "identity", True, f"{config.identity_file} absent (made by 'identity --ensure' or the service)"
        )
    return Check("identity", True, value)


def run_checks(
    env: Mapping[str, str],
    backend_factory: Callable[[Config], AudioBackend] | None = None,
) -> list[Check]:
    checks = [check_imports()]
    try:
        config = load_config(env)
    except ConfigError as exc:
        checks.append(Check("config", False, "; ".join(exc.problems)))
        for name in ("audio", "state-dir", "identity"):
            checks.append(Check(name, False, "not checked: the configuration is invalid"))
        return checks
    checks.append(Check("config", True, f"server {config.server_url}, time zone {config.device_timezone}"))
    if checks[0].ok:
        factory = backend_factory or (lambda c: PyAudioBackend(c.audio_input_device, c.audio_output_device))
        checks.append(check_audio(config, factory))
    else:
        checks.append(Check("audio", False, "not checked: a runtime dependency does not import"))
    checks.append(check_state_dir(config))
    checks.append(check_identity(config))
    return checks

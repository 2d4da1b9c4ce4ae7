"""The device lock must match the package's declared dependencies (a stale lock broke deployments).

voice_client/lock.sh regenerates voice_client/requirements.lock; these tests
fail when pyproject.toml changed without it, or when the controller venv
(requirements.txt) tests other versions than the devices install.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "voice_client" / "pyproject.toml"
LOCK = ROOT / "voice_client" / "requirements.lock"
CONTROLLER_LOCK = ROOT / "requirements.txt"
REGENERATE = "pyproject.toml changed without the lock: run voice_client/lock.sh and commit requirements.lock"

# The devices: Raspberry Pi OS 64-bit and 32-bit, and the x86_64 simulated ones.
PLATFORMS = {
    machine: {
        "platform_machine": machine,
        "python_version": "3.11",
        "python_full_version": "3.11.2",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    for machine in ("aarch64", "armv7l", "x86_64")
}


@dataclass
class Pin:
    name: str
    version: str
    marker: Marker | None
    hashes: list[str] = field(default_factory=list)


def parse_lock(text: str) -> list[Pin]:
    pins: list[Pin] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash="):
            pins[-1].hashes.append(stripped.removeprefix("--hash=").rstrip(" \\"))
            continue
        requirement = Requirement(stripped.rstrip(" \\"))
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"not an exact pin: {stripped}"
        pins.append(Pin(canonicalize_name(requirement.name), spec.version, requirement.marker))
    return pins


def declared() -> list[str]:
    with PYPROJECT.open("rb") as handle:
        return tomllib.load(handle)["project"]["dependencies"]


@pytest.fixture(scope="module")
def pins() -> list[Pin]:
    return parse_lock(LOCK.read_text())


def test_the_lock_was_made_from_the_current_dependency_list():
    recorded = re.findall(r"^#   (.+)$", LOCK.read_text(), flags=re.MULTILINE)
    assert recorded == sorted(declared()), REGENERATE


@pytest.mark.parametrize("machine", sorted(PLATFORMS))
def test_every_declared_dependency_is_pinned_for_every_device(pins, machine):
    environment = PLATFORMS[machine]
    active = {p.name: p for p in pins if p.marker is None or p.marker.evaluate(environment)}
    for dependency in map(Requirement, declared()):
        name = canonicalize_name(dependency.name)
        if dependency.marker is not None and not dependency.marker.evaluate(environment):
            assert name not in active, f"{name} is locked for {machine} but not declared for it: {REGENERATE}"
            continue
        assert name in active, f"{name} is declared but not locked for {machine}: {REGENERATE}"
        assert dependency.specifier.contains(active[name].version, prereleases=True), (
            f"{name}=={active[name].version} in the lock does not satisfy {dependency}: {REGENERATE}"
        )


def test_every_pin_is_unique_and_hashed(pins):
    seen = set()
    for pin in pins:
        key = (pin.name, str(pin.marker))
        assert key not in seen, f"{pin.name} pinned twice"
        seen.add(key)
        assert pin.hashes, f"{pin.name}=={pin.version} has no --hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in pin.hashes)


def test_lgpio_is_locked_for_the_raspberry_pis_only(pins):
    (lgpio,) = [p for p in pins if p.name == "lgpio"]
    assert lgpio.marker is not None
    assert lgpio.marker.evaluate(PLATFORMS["aarch64"]) and lgpio.marker.evaluate(PLATFORMS["armv7l"])
    assert not lgpio.marker.evaluate(PLATFORMS["x86_64"])


def test_the_controller_tests_the_versions_the_devices_get(pins):
    controller = {p.name: p.version for p in parse_lock(CONTROLLER_LOCK.read_text())}
    for pin in pins:
        if pin.name in controller:
            assert controller[pin.name] == pin.version, (
                f"requirements.txt has {pin.name}=={controller[pin.name]}, the device lock {pin.version}: "
                "run `make lock` (requirements.in is constrained by the device lock)"
            )
    for needed in ("numpy", "opuslib", "pyaudio", "gpiozero", "requests", "uuid6", "pytz"):
        assert needed in controller, f"{needed} is missing from the controller venv"


def test_the_stale_lock_check_catches_a_changed_dependency(pins):
    """The check above is not vacuous: a bumped lower bound no longer matches the pins."""
    numpy = next(p for p in pins if p.name == "numpy")
    major = int(numpy.version.split(".")[0])
    assert not Requirement(f"numpy>={major + 1}").specifier.contains(numpy.version)

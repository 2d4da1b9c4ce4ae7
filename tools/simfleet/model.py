"""What a simulated fleet is: the names, ports and paths that follow from its prefix; errors, output."""

from __future__ import annotations

import concurrent.futures
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stack import StackError, atomic_write

ROOT = Path(__file__).resolve().parents[2]
FILES = Path(__file__).resolve().parent / "files"

DEFAULT_PREFIX = "vf-fleet"
DEFAULT_PORT_BASE = 2201
DEFAULT_STATE_DIR = ROOT / ".cache" / "fleet"
MAX_DEVICES = 99
# Every container and network of a fleet carries <LABEL>.fleet=<prefix>.
LABEL = "org.voice-fleet"
# What the devices call the voice server (a network alias on the fleet's network).
VOICE_ALIAS = "vf-voice-server"
VOICE_PORT = 8080
RELAY_PORT = 8080
IDENTITY_FILE = "/var/lib/voice-client/device_uuid"
# A mix of offsets, half-hour and quarter-hour zones and both hemispheres, so a
# 2 AM maintenance window opens at different instants across the fleet.
TIMEZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/Los_Angeles",
    "Asia/Kathmandu",
    "UTC",
    "Asia/Tokyo",
    "America/Sao_Paulo",
    "Europe/London",
)
BOOT_TIMEOUT = {"amd64": 90.0, "arm64": 300.0}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")


class FleetError(StackError):
    """A failure a person can act on; printed without a traceback.

    A StackError: the stack tool's helpers (run, wait_until) raise that, and the command line
    prints either the same way.
    """


_print_lock = threading.Lock()


def say(msg: str) -> None:
    with _print_lock:
        print(msg, flush=True)


class Report:
    """Prints what changed; remembers whether anything did."""

    def __init__(self) -> None:
        self.changed = False

    def change(self, msg: str) -> None:
        self.changed = True
        say(msg)


def display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    """Atomically write text to path unless it already holds exactly that; True when written."""
    if path.exists() and path.read_text() == text and (path.stat().st_mode & 0o777) == mode:
        return False
    atomic_write(path, text, mode)
    return True


def parallel(jobs: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run jobs in threads; the first failure is raised once all have ended."""
    results: dict[str, Any] = {}
    errors: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, max(1, len(jobs)))) as pool:
        futures = {pool.submit(job): key for key, job in jobs.items()}
        for future in concurrent.futures.as_completed(futures):
            try:
                results[futures[future]] = future.result()
            except StackError as exc:
                errors.append(str(exc))
    if errors:
        raise FleetError("\n".join(sorted(errors)))
    return results


@dataclass(frozen=True)
class Fleet:
    prefix: str
    port_base: int
    state_dir: Path

    @property
    def network(self) -> str:
        return self.prefix

    @property
    def voice_server(self) -> str:
        return f"{self.prefix}-voice-server"

    @property
    def relay(self) -> str:
        return f"{self.prefix}-relay"

    @property
    def relay_url(self) -> str:
        """The registry gateway as the devices reach it (append /rest/v1/ or /store/)."""
        return f"http://{self.relay}:{RELAY_PORT}"

    @property
    def key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.state_dir / "inventory"

    @property
    def group(self) -> str:
        """The inventory group of this fleet's devices: keyed on metadata.fleet, dashes as underscores."""
        return "fleet_" + self.prefix.replace("-", "_")

    @property
    def marker(self) -> dict[str, Any]:
        """What every registry row of this fleet carries in its metadata."""
        return {"simulated": True, "fleet": self.prefix}

    def device(self, index: int, arch: str, image: str) -> Device:
        return Device(
            index=index,
            name=f"{self.prefix}-{index:02d}",
            port=self.port_base + index - 1,
            arch=arch,
            image=image,
            timezone=TIMEZONES[(index - 1) % len(TIMEZONES)],
        )


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    port: int
    arch: str  # Debian architecture of the image: amd64 | arm64
    image: str
    timezone: str


@dataclass
class Ready:
    """A device after `up`: what the registry, known_hosts and the report need."""

    device: Device
    uuid: str
    machine: str  # uname -m
    host_keys: list[str]
    changes: list[str] = field(default_factory=list)

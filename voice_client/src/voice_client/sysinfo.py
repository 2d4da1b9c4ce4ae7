"""What the heartbeat reports about the device: model, OS, Python, host name, IP, MAC.

Read from /proc and /sys (no netlink: the service's unit allows only AF_UNIX,
AF_INET and AF_INET6). The IP is the source address the kernel would use
towards the voice server (a UDP ``connect`` sends no packet).
"""

from __future__ import annotations

import contextlib
import platform
import socket
from pathlib import Path
from urllib.parse import urlsplit

_SYS_NET = Path("/sys/class/net")


def hardware_model() -> str:
    for path in (Path("/proc/device-tree/model"), Path("/sys/firmware/devicetree/base/model")):
        with contextlib.suppress(OSError):
            model = path.read_bytes().rstrip(b"\0").decode(errors="replace").strip()
            if model:
                return model
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("Model") and ":" in line:
                return line.split(":", 1)[1].strip()
    with contextlib.suppress(OSError):
        product = Path("/sys/class/dmi/id/product_name").read_text().strip()
        if product:
            return f"{product} ({platform.machine()})"
    return f"unknown ({platform.machine()})"


def os_version() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"') + f" ({platform.release()})"
    return platform.platform()


def local_ip(server_url: str) -> str | None:
    """The local address used to reach ``server_url`` (no traffic is sent)."""
    parts = urlsplit(server_url)
    host = parts.hostname
    if not host:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError:
        return None
    for family, kind, proto, _name, address in infos:
        with contextlib.suppress(OSError), socket.socket(family, kind, proto) as sock:
            sock.connect(address)
            return str(sock.getsockname()[0])
    return None


def default_interface() -> str | None:
    """The interface of the IPv4 default route, else the first non-loopback one."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 2 and fields[1] == "00000000":
                return fields[0]
    with contextlib.suppress(OSError):
        names = sorted(p.name for p in _SYS_NET.iterdir() if p.name != "lo")
        if names:
            return names[0]
    return None


def mac_address(interface: str | None = None) -> str | None:
    name = interface or default_interface()
    if not name:
        return None
    try:
        mac = (_SYS_NET / name / "address").read_text().strip()
    except OSError:
        return None
    return mac if mac and mac != "00:00:00:00:00:00" else None


def metadata(server_url: str) -> dict[str, str | None]:
    """The heartbeat's ``metadata`` object (the Javia server's DeviceMetadata fields)."""
    return {
        "hardware_model": hardware_model(),
        "os_version": os_version(),
        "python_version": platform.python_version(),
        "hostname": socket.gethostname(),
        "ip_address": local_ip(server_url),
        "mac_address": mac_address(),
    }

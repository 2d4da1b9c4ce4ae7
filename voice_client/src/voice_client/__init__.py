"""voice-client: the push-to-talk voice assistant that runs on every Raspberry Pi."""

from __future__ import annotations

from importlib import metadata

DIST_NAME = "voice-client"


def version() -> str:
    """The installed distribution's version (static in pyproject.toml)."""
    try:
        return metadata.version(DIST_NAME)
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"

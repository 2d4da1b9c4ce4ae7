"""Checks of the release a device is about to build, shared by the pip build action and uv's tasks.

``voice_release_wheelhouse_problem`` says why a device must not build the release its
platform's wheelhouse gives (empty when it may): the wheelhouse is incomplete (check
mode excepted: nothing was downloaded), or the release is not the one the caller
planned. Pure: no I/O, tested on its own.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError


def voice_release_wheelhouse_problem(house: Any, expected: str = "", check_mode: bool = False) -> str:
    """Why the release of this wheelhouse platform must not be built on the device ('' when it may)."""
    if not isinstance(house, dict) or not house.get("release_id"):
        raise AnsibleFilterError(
            "voice_release_wheelhouse_problem: expected a wheelhouse platform with a release_id, "
            f"got {house!r}"
        )
    if not (house.get("complete") or check_mode):
        missing = [str(item.get("name", item)) for item in house.get("needs_build") or []]
        return f"the wheelhouse for {house.get('platform')} is incomplete; still to build: {missing}"
    release = str(house["release_id"])
    if expected and expected != release:
        return (
            f"the caller planned release {expected} but the wheelhouse gives {release}: their inputs "
            "(source, lock) differ; nothing was changed on the device, report this as a bug"
        )
    return ""


class FilterModule:
    def filters(self):
        return {"voice_release_wheelhouse_problem": voice_release_wheelhouse_problem}

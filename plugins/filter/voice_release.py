"""Filters of the voice_release role."""

from __future__ import annotations

import os
from typing import Any

from ansible.errors import AnsibleFilterError


def voice_release_tar_argv(names: list[str], files: dict[str, Any], tar: str) -> list[str]:
    """tar's argv that packs the named wheels under their bare names (-C <dir> <name> per file).

    files: the wheelhouse's files (name -> {path, sha256}).
    """
    argv = ["tar", "--create", "--file", str(tar)]
    for name in names:
        entry = files.get(name)
        if not entry or os.path.basename(entry["path"]) != name:
            raise AnsibleFilterError(f"voice_release_tar_argv: {name!r} is not a file of the wheelhouse")
        argv += ["-C", os.path.dirname(entry["path"]), name]
    return argv


class FilterModule:
    def filters(self):
        return {"voice_release_tar_argv": voice_release_tar_argv}

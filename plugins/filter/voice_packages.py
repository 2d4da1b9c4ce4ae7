"""Which of a role's Debian packages a device lacks, from one ``dpkg-query`` of them.

``wanted | voice_packages_missing(dpkg_query_stdout)``: ``wanted`` holds package names, each
optionally pinned as ``name=version`` (apt's form; ``*`` and ``?`` match as apt matches them);
the text is what ``dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Abbrev}\\n'`` printed
for their names. A package is there only when dpkg has it installed (status ``?i``, no reinstall
flag) at the pinned version, if any; everything else is missing, and apt decides about it. The
voice_packages role asks apt only for what is missing, so a device that has every package never
loads apt's cache (1.5 s of CPU on a Pi-class core) or refreshes its index over the network.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from ansible.errors import AnsibleFilterError


def installed_packages(text: str) -> dict[str, str]:
    """Package name to its installed version, from dpkg-query's lines (other states left out)."""
    installed = {}
    for line in str(text or "").splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        name, version, status = parts[0].strip(), parts[1].strip(), parts[2].strip()
        if len(status) >= 2 and status[1] == "i" and "R" not in status[2:]:
            installed[name.split(":")[0]] = version
    return installed


def voice_packages_missing(wanted: Any, dpkg_query_stdout: Any) -> list[str]:
    """The items of `wanted` that dpkg does not have installed (at the pinned version)."""
    if not isinstance(wanted, list | tuple) or not all(isinstance(w, str) and w for w in wanted):
        raise AnsibleFilterError(
            f"voice_packages_missing: wanted must be a list of package names, got {wanted!r}"
        )
    installed = installed_packages(dpkg_query_stdout)
    missing = []
    for item in wanted:
        name, pinned, version = item.partition("=")
        have = installed.get(name)
        if have is None or (pinned and not fnmatchcase(have, version)):
            missing.append(item)
    return missing


class FilterModule:
    def filters(self):
        return {"voice_packages_missing": voice_packages_missing}

"""voice_packages_missing: which packages the voice_packages role asks apt for.

Read from real ``dpkg-query`` output (this machine runs Debian, as the devices do) and from
lines of the states a device can leave a package in.
"""

from __future__ import annotations

import subprocess

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.javia.voice_fleet.plugins.filter.voice_packages import voice_packages_missing

FORMAT = "-f=${Package}\t${Version}\t${db:Status-Abbrev}\n"


def dpkg_query(*names: str) -> str:
    """What the role's task reads: dpkg-query of the names (rc 1 when one is unknown)."""
    proc = subprocess.run(["dpkg-query", "-W", FORMAT, *names], capture_output=True, text=True, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout


def test_installed_packages_are_not_asked_for_and_unknown_ones_are():
    dpkg_version = dpkg_query("dpkg").split("\t")[1]
    text = dpkg_query("dpkg", "no-such-package-vf")
    assert voice_packages_missing(["dpkg", "no-such-package-vf"], text) == ["no-such-package-vf"]
    assert voice_packages_missing([f"dpkg={dpkg_version}"], text) == []
    assert voice_packages_missing(["dpkg=0.0.1-vf"], text) == ["dpkg=0.0.1-vf"]
    # apt's wildcard pins match as apt matches them.
    assert voice_packages_missing([f"dpkg={dpkg_version.split('.')[0]}.*"], text) == []


@pytest.mark.parametrize(
    ("status", "missing"),
    [
        ("ii ", False),  # installed
        ("hi ", False),  # installed, on hold
        ("rc ", True),  # removed, its configuration files left
        ("un ", True),  # known, never installed
        ("iU ", True),  # unpacked, not configured
        ("iF ", True),  # half-configured
        ("iHR", True),  # half-installed, reinstall required
        ("iiR", True),  # installed, but dpkg asks for a reinstall
    ],
)
def test_only_a_package_dpkg_has_installed_counts(status, missing):
    text = f"libopus0\t1.3.1-3\t{status}\nalsa-utils:amd64\t1.2.8-1\tii \n"
    assert voice_packages_missing(["libopus0", "alsa-utils"], text) == (["libopus0"] if missing else [])


def test_bad_input_is_named():
    with pytest.raises(AnsibleFilterError, match="wanted must be a list"):
        voice_packages_missing("libopus0", "")
    with pytest.raises(AnsibleFilterError, match="''"):
        voice_packages_missing(["libopus0", ""], "")

"""voice_release in check mode before the controller has its wheelhouse (a first `--check`).

In check mode the wheelhouse downloads nothing, so a platform's wheelhouse can be incomplete;
its result then lacks what the device's build needs (the client wheel and its hash). The role
must skip the build, not fail rendering its arguments (outside check mode wheelhouse.yml
fails first).
"""

from __future__ import annotations

import pytest
from local_play import run_local_play

RELEASE = "1.0.0-0123456789ab"
# What the role's preflight and wheelhouse steps give install.yml (a device with no release); the
# release's id and paths are the role's variables, derived from _voice_release_house.
FACTS = {
    # voice_wheelhouse's result for a platform it has not downloaded yet: no files, no client wheel.
    "_voice_release_house": {
        "complete": False,
        "platform": "cp311-x86_64",
        "arch": "x86_64",
        "python": "3.11",
        "release_id": RELEASE,
        "version": "1.0.0",
        "lock_sha256": "a" * 64,
        "client_source_sha256": "b" * 64,
        "wheel_dir": "/nonexistent/wheels",
        "needs_build": [],
    },
    "_voice_release_active": "",
    "_voice_release_previous": "",
    "_voice_release_complete": [],
}


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_the_build_is_skipped_while_the_wheelhouse_is_incomplete(tmp_path, installer):
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Build and activate the release",
                    "ansible.builtin.include_role": {"name": "voice_release", "tasks_from": "install"},
                    "vars": {**FACTS, "voice_release_installer": installer},
                }
            ],
        }
    ]
    proc, output = run_local_play(play, tmp_path / "play.yml", args=("--check",))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {
        task["task"]["name"]: task["hosts"]["localhost"]
        for play_out in output["plays"]
        for task in play_out["tasks"]
        if "localhost" in task["hosts"]
    }
    builds = {name: r for name, r in results.items() if name.startswith("voice_release : Build the release")}
    assert len(builds) == 2, sorted(results)
    assert all(r.get("skipped") for r in builds.values()), builds

"""The hourly play's check of published rows, through Ansible itself (playbooks/tasks/verify_published.yml).

The store is served over real HTTP on the loopback; the rows are what the registry would
return. A row whose signed source verifies gets its snapshot; one whose manifest is not in
the store, or whose signature is another key's, is reported with the reason and never fails
the play (the scheduled play skips it). Runs the voice_release role's own action plugin, as
the play does, so the task's arguments are checked by Ansible as in production.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from local_play import run_local_play

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "playbooks" / "tasks" / "verify_published.yml"


def test_published_rows_are_verified_and_the_bad_ones_reported(publish, store, tmp_path):
    directory, base_url = store
    wh = publish.wheelhouse_module()
    public = publish.keygen(tmp_path / "keys" / "publisher.key")
    other = publish.keygen(tmp_path / "other" / "publisher.key")
    key = publish.load_private_key(tmp_path / "keys" / "publisher.key")
    manifest = publish.publish_source(
        argparse.Namespace(source=ROOT / "voice_client", store=directory), wh, key, 3
    )
    version = manifest["version"]
    rows = [
        {"version": version, "package_url": f"{base_url}/{{platform}}/{version}/manifest.json?sequence=3"},
        {"version": "9.9.8", "package_url": f"{base_url}/{{platform}}/9.9.8/manifest.json?sequence=1"},
        {"version": "9.9.7", "package_url": "git:0123abc"},
        {"version": "9.9.6", "package_url": None},
    ]
    cache = tmp_path / "cache"

    def play(public_key: Path) -> dict:
        play = [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "vars": {
                    "voice_registry_updates": rows,
                    "rollout_publisher_public_key_file": str(public_key),
                    "rollout_cache_dir": str(cache),
                },
                "tasks": [
                    {"ansible.builtin.include_tasks": str(ROOT / "playbooks/tasks/verify_published.yml")},
                    {"ansible.builtin.debug": {"var": "__scheduled_published"}},
                ],
            }
        ]
        proc, output = run_local_play(play, tmp_path / "play.yml")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        tasks = output["plays"][0]["tasks"]
        results = tasks[-1]["hosts"]["localhost"]["__scheduled_published"]["results"]
        return {r["item"]["version"]: r for r in results}

    checked = play(public)
    assert sorted(checked) == [version, "9.9.8"], "only the rows that name a published manifest"
    assert checked[version]["source_sha256"] == manifest["client_source_sha256"]
    assert (cache / "sources" / f"sha256-{manifest['client_source_sha256']}" / "voice_client").is_dir()
    assert "source_sha256" not in checked["9.9.8"] and "HTTP 404" in checked["9.9.8"]["msg"]

    foreign = play(other)
    assert "source_sha256" not in foreign[version] and "bad signature" in foreign[version]["msg"]

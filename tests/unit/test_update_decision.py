"""voice_update_decision: the one place where a device's update is decided.

Pure function tests: the plan (what voice_device_state read) and the release of
the device's platform in, the decision out.
"""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.javia.voice_fleet.plugins.filter import voice_update as filters

decide = filters.voice_update_decision

PLATFORM = {"arch": "x86_64", "python": "3.11", "glibc": "2.36"}
KEY = "cp311-x86_64"
UUID = "01a231c2-a721-7dde-b6ce-80a08d890291"


def plan(active: str = "1.1.0-aaaaaaaaaaaa", version: str = "1.1.0", **extra) -> dict:
    return {
        "device_uuid": UUID,
        "active": active,
        "marker": {"version": version, "release": active} if active else {},
        "platform": PLATFORM,
        "provision_needed": False,
        "provision_reasons": [],
        **extra,
    }


def releases(release_id: str = "1.1.0-aaaaaaaaaaaa") -> dict:
    return {KEY: {"release_id": release_id, "version": release_id.split("-", maxsplit=1)[0]}}


def registry(version: str = "1.1.0", status: str = "online") -> dict:
    return {"device_uuid": UUID, "device_status": status, "current_version": version}


def test_a_device_on_its_release_with_a_matching_stamp_needs_nothing() -> None:
    d = decide(plan(), releases(), registry())
    assert d["action"] == "none"
    assert not (d["provision"] or d["release"] or d["fix_registry"])


def test_a_new_release_is_installed() -> None:
    d = decide(plan(), releases("1.2.0-bbbbbbbbbbbb"), registry())
    assert (d["action"], d["release"], d["target"]) == ("update", True, "1.2.0-bbbbbbbbbbbb")
    assert not d["provision"]


def test_the_same_version_with_other_content_is_a_new_release() -> None:
    d = decide(plan(), releases("1.1.0-cccccccccccc"), registry())
    assert d["action"] == "update" and d["release"]


def test_a_changed_stamp_or_managed_file_provisions_without_a_release() -> None:
    reasons = ["/etc/systemd/system/voice-client.service differs from what the provisioning left (edited)"]
    d = decide(plan(provision_needed=True, provision_reasons=reasons), releases(), registry())
    assert (d["action"], d["provision"], d["release"]) == ("update", True, False)
    assert reasons[0] in d["reasons"]


@pytest.mark.parametrize("status,version", [("updating", "1.1.0"), ("online", "1.0.0"), ("online", None)])
def test_a_registry_row_that_disagrees_with_the_device_is_corrected(status, version) -> None:
    d = decide(plan(), releases(), registry(version=version, status=status))
    assert (d["action"], d["fix_registry"], d["release"]) == ("update", True, False)


def test_a_device_not_in_the_registry_writes_no_row() -> None:
    d = decide(plan(), releases(), {})
    assert d["action"] == "none" and not d["fix_registry"]


def test_an_older_version_is_refused_by_default() -> None:
    d = decide(plan(active="1.4.0-dddddddddddd", version="1.4.0"), releases(), registry("1.4.0"))
    assert d["action"] == "refuse"
    assert "1.1.0 is older than 1.4.0" in d["error"] and "rollout_allow_downgrade" in d["error"]


def test_an_older_version_is_kept_where_the_play_keeps_newer_releases() -> None:
    d = decide(
        plan(active="1.4.0-dddddddddddd", version="1.4.0"), releases(), registry("1.4.0"), downgrade="keep"
    )
    assert (d["action"], d["release"]) == ("none", False)
    assert any("keeps 1.4.0" in r for r in d["reasons"])


def test_a_deliberate_downgrade_is_installed() -> None:
    d = decide(
        plan(active="1.4.0-dddddddddddd", version="1.4.0"),
        releases(),
        registry("1.4.0"),
        allow_downgrade=True,
    )
    assert (d["action"], d["release"]) == ("update", True)


def test_pre_release_and_local_versions_compare_as_pep_440() -> None:
    assert filters.older("1.1.0", "1.1.1")
    assert filters.older("1.2.0rc1", "1.2.0")
    assert not filters.older("1.2.0+crash", "1.2.0")
    assert not filters.older("not-a-version", "1.0.0"), "an unparsable version is never called older"


def test_a_device_that_is_another_device_is_never_touched() -> None:
    d = decide(plan(), releases("1.2.0-bbbbbbbbbbbb"), registry() | {"device_uuid": "someone-else"})
    assert d["action"] == "fail" and d["step"] == "identity"
    assert UUID in d["error"] and "someone-else" in d["error"]


def test_an_unreachable_device_fails_with_the_reason() -> None:
    d = decide({"unreachable": True, "msg": "ssh: connect to host timed out"}, releases(), registry())
    assert d["action"] == "fail" and "unreachable" in d["error"] and "timed out" in d["error"]


def test_a_platform_without_a_release_is_named() -> None:
    d = decide(plan(platform={"arch": "armv7l", "python": "3.11"}), releases(), registry())
    assert d["action"] == "fail" and "cp311-armv7l" in d["error"]


def test_a_bad_downgrade_mode_is_an_error_naming_it() -> None:
    with pytest.raises(AnsibleFilterError, match="'sideways'"):
        decide(plan(), releases(), registry(), downgrade="sideways")


def test_run_records_never_announce_a_refused_downgrade() -> None:
    hosts = [
        {"device_uuid": "a", "current_version": "1.0.0"},
        {"device_uuid": "b", "current_version": "1.1.0"},
        {"device_uuid": "c", "current_version": "2.0.0"},
        {"device_uuid": "d", "current_version": None},
        {"current_version": "1.0.0"},
    ]
    records = filters.voice_update_run_records(hosts, "1.1.0")
    assert records == [{"device_uuid": "a", "status": "pending"}, {"device_uuid": "d", "status": "pending"}]


def test_pending_records_of_the_hourly_play_skip_newer_devices() -> None:
    hostvars = {
        "x": {"device_uuid": "a", "current_version": "1.0.0"},
        "y": {"device_uuid": "b", "current_version": "3.0.0"},
    }
    outside = [
        {"host": "x", "opens_at": "2026-11-24T01:00:00+00:00"},
        {"host": "y", "opens_at": "2026-11-24T02:00:00+00:00"},
    ]
    records = filters.voice_update_pending_records(outside, hostvars, "1.1.0")
    assert records == [
        {"device_uuid": "a", "status": "pending", "scheduled_for": "2026-11-24T01:00:00+00:00"}
    ]


def batch_host(name: str, action: str, release: bool, outcome: str = "", **extra) -> dict:
    plan = {
        "action": action,
        "release": release,
        "fix_registry": extra.pop("fix", False),
        "active_version": "1.0.0",
    }
    host = {
        "inventory_hostname": name,
        "_voice_update_device_uuid": f"uuid-{name}",
        "_voice_update_plan": plan,
    }
    if outcome:
        host["_voice_update_outcome"] = {
            "outcome": outcome,
            "version": "1.1.0",
            "step": "",
            "error": "",
            **extra,
        }
    return host


def test_batch_records_start_only_for_the_devices_that_get_a_release() -> None:
    hosts = [
        batch_host("a", "update", True),
        batch_host("b", "update", False),
        {**batch_host("c", "update", True), "_voice_update_device_uuid": ""},
    ]
    assert filters.voice_update_batch_records(hosts, "start") == [
        {"device_uuid": "uuid-a", "status": "installing", "device_status": "updating"}
    ]


def test_batch_records_end_with_each_outcome_and_the_failed_step() -> None:
    long_error = "word " * 300
    hosts = [
        batch_host("done", "update", True, "completed"),
        batch_host("fixed", "update", False, "unchanged", fix=True),
        batch_host("same", "update", False, "unchanged"),
        batch_host("back", "update", True, "rolled_back", step="gate", error="did not stay up"),
        batch_host("plan", "fail", False, "failed", step="plan", error=long_error),
        batch_host("busy", "busy", False, "failed", step="lock", error="held by another run"),
        batch_host("other", "fail", False, "failed", step="identity", error="another device"),
    ]
    records = {r["device_uuid"]: r for r in filters.voice_update_batch_records(hosts, "end")}
    assert sorted(records) == ["uuid-back", "uuid-done", "uuid-fixed", "uuid-plan"]
    assert records["uuid-done"] == {
        "device_uuid": "uuid-done",
        "status": "completed",
        "error_message": "",
        "device_status": "online",
        "current_version": "1.1.0",
    }
    assert records["uuid-fixed"]["status"] == "completed"
    assert records["uuid-back"] == {
        "device_uuid": "uuid-back",
        "status": "rolled_back",
        "error_message": "did not stay up",
        "device_status": "online",
        "current_version": "1.0.0",
    }
    assert records["uuid-plan"]["status"] == "failed" and "current_version" not in records["uuid-plan"]
    assert len(records["uuid-plan"]["error_message"]) <= 900
    assert records["uuid-plan"]["error_message"].endswith("word...")


def test_batch_records_refuse_an_unknown_phase() -> None:
    with pytest.raises(AnsibleFilterError, match="'pending'"):
        filters.voice_update_batch_records([], "pending")


def test_batch_outcomes_are_the_report_entries_of_the_devices_with_an_outcome() -> None:
    hosts = [
        {**batch_host("a", "none", False, "unchanged"), "_voice_update_started_at": "2026-12-02T10:00:00Z"},
        batch_host("b", "update", True, "completed"),
        batch_host("c", "update", True),
    ]
    entries = filters.voice_update_batch_outcomes(hosts, "2026-12-02T10:05:00Z")
    assert sorted(entries) == ["a", "b"]
    assert entries["a"]["started_at"] == "2026-12-02T10:00:00Z"
    assert entries["a"]["finished_at"] == "2026-12-02T10:05:00Z"
    assert entries["b"]["outcome"] == "completed"
    assert list(filters.voice_update_batch_outcomes(hosts, "2026-12-02T10:05:00Z", "none")) == ["a"]

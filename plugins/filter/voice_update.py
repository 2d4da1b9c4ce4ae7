"""The one place where a device's update is decided, from its plan.

``voice_update_decision`` takes what ``voice_update_plan`` read from the device
(one module run) and the release this device's platform gets, and says what
to do: nothing (the host ends there), provision, release, fix the registry,
refuse a downgrade, or fail with a reason. Pure: no I/O, tested on its own.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

try:
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - packaging ships with ansible-core's dependencies
    Version = None  # type: ignore[assignment,misc]
    InvalidVersion = ValueError  # type: ignore[assignment,misc]

DOWNGRADE_MODES = ("refuse", "keep")


def platform_key(platform: dict[str, Any]) -> str:
    """cp311-aarch64: the key the wheelhouse files a platform under."""
    return f"cp{str(platform.get('python', '')).replace('.', '')}-{platform.get('arch', '')}"


def older(version: str, than: str) -> bool:
    """Whether version is lower than `than` (PEP 440; unparsable versions are never called older)."""
    if not version or not than or Version is None:
        return False
    try:
        return Version(version) < Version(than)
    except InvalidVersion:
        return False


def voice_update_decision(
    plan: dict[str, Any],
    releases: dict[str, Any],
    registry: dict[str, Any] | None = None,
    *,
    allow_downgrade: bool = False,
    downgrade: str = "refuse",
    register: bool = False,
) -> dict[str, Any]:
    """What one device needs.

    plan: the voice_update_plan result. releases: the wheelhouse's platforms
    (key -> {release_id, version}). registry: what the inventory says of the
    device (device_uuid, device_status, current_version; empty for a device
    not in the registry yet).
    Returns {action, provision, release, fix_registry, target, active,
    active_version, version, reasons, error}; action is one of none, update,
    refuse, fail.
    """
    if downgrade not in DOWNGRADE_MODES:
        raise AnsibleFilterError(
            f"voice_update_decision: downgrade must be one of {DOWNGRADE_MODES}, got {downgrade!r}"
        )
    if not isinstance(plan, dict):
        raise AnsibleFilterError(f"voice_update_decision: plan must be a mapping, got {type(plan).__name__}")
    registry = registry or {}
    decision: dict[str, Any] = {
        "action": "fail",
        "provision": False,
        "release": False,
        "fix_registry": False,
        "target": "",
        "active": plan.get("active", ""),
        "active_version": (plan.get("marker") or {}).get("version", ""),
        "version": "",
        "reasons": [],
        "error": "",
        "step": "plan",
    }
    if plan.get("unreachable"):
        decision["error"] = f"host unreachable while reading its state: {plan.get('msg', '')}".strip()
        return decision
    if plan.get("failed"):
        decision["error"] = f"reading the device's state failed: {plan.get('msg', 'unknown error')}"
        return decision
    identity = plan.get("device_uuid") or ""
    expected = registry.get("device_uuid") or ""
    if identity and expected and identity != expected:
        decision["error"] = (
            f"the device is {identity}, but the registry row at this address says {expected}; "
            "nothing was changed: fix the row's address in the registry"
        )
        decision["step"] = "identity"
        return decision
    key = platform_key(plan.get("platform") or {})
    release = (releases or {}).get(key)
    if not release:
        decision["error"] = (
            f"no release was prepared for platform {key} (platforms: {sorted(releases or {})})"
        )
        decision["step"] = "wheelhouse"
        return decision
    target, version = release.get("release_id", ""), release.get("version", "")
    active, active_version = decision["active"], decision["active_version"]
    decision.update(target=target, version=version)
    reasons: list[str] = list(plan.get("provision_reasons") or [])
    provision = bool(plan.get("provision_needed"))
    wants_release = active != target
    if wants_release and older(version, active_version) and not allow_downgrade:
        if downgrade == "refuse":
            decision.update(
                action="refuse",
                step="downgrade guard",
                error=(
                    f"refused: {version} is older than {active_version}, which the device runs ({active}); "
                    "roll back with playbooks/rollback.yml, or pass -e rollout_allow_downgrade=true "
                    "to install it"
                ),
            )
            return decision
        reasons.append(
            f"keeps {active_version} ({active}): {version} is older and downgrades are not allowed"
        )
        wants_release = False
    if wants_release:
        reasons.append(f"runs {active or 'no release'}, the target is {target}")
    # The device already runs what it should: only a registry that disagrees is written.
    registered_version = registry.get("current_version")
    fix = (
        not wants_release
        and bool(expected)
        and active == target
        and (registry.get("device_status") == "updating" or (registered_version or "") != version)
    )
    if fix:
        said = f"{registry.get('device_status')}/{registered_version}"
        reasons.append(f"the registry says {said}, the device runs {version}")
    decision.update(
        provision=provision,
        release=wants_release,
        fix_registry=fix,
        reasons=reasons,
        step="",
        action="update" if (provision or wants_release or fix or register) else "none",
    )
    return decision


def voice_update_pending_records(
    outside: list[dict[str, Any]], hostvars: Any, version: str
) -> list[dict[str, Any]]:
    """Registry records for the hosts outside their window: pending, with when their window opens.

    Devices the registry says run a newer version get none (the hourly play never takes one back).
    """
    records = []
    for item in outside or []:
        host = hostvars.get(item["host"]) or {}
        device_uuid = host.get("device_uuid")
        if device_uuid and not older(version, host.get("current_version") or ""):
            opens = item["opens_at"]
            records.append({"device_uuid": str(device_uuid), "status": "pending", "scheduled_for": opens})
    return records


def voice_update_run_records(hosts: list[Any], version: str) -> list[dict[str, Any]]:
    """pending records for the devices of a run that the registry says run another version.

    hosts: the hostvars of the run's hosts. A device the registry says runs a
    newer version gets no row: a rollout must not announce a downgrade it will
    refuse (the row would become the newest update).
    """
    records = []
    for host in hosts or []:
        device_uuid = host.get("device_uuid")
        current = host.get("current_version") or ""
        if not device_uuid or current == version or older(version, current):
            continue
        records.append({"device_uuid": str(device_uuid), "status": "pending"})
    return records


# Steps whose failure leaves the registry row alone: another device answered
# (identity), or another run holds the device (lock).
UNRECORDED_STEPS = ("identity", "lock")


def truncated(text: str, length: int, end: str = "...") -> str:
    """Jinja's truncate(length): kept up to 5 characters over, else cut at a word and ended with `end`."""
    if len(text) <= length + 5:
        return text
    return text[: length - len(end)].rsplit(" ", 1)[0] + end


def batch_record(host: Any, phase: str) -> dict[str, Any] | None:
    """One host's registry record for `phase` (start or end) from its plan and outcome, or None."""
    device_uuid = host.get("_voice_update_device_uuid") or ""
    plan = host.get("_voice_update_plan") or {}
    if not device_uuid or not plan:
        return None
    if phase == "start":
        if not plan.get("release"):
            return None
        return {"device_uuid": device_uuid, "status": "installing", "device_status": "updating"}
    outcome = host.get("_voice_update_outcome") or {}
    result = outcome.get("outcome") or ""
    if result == "completed" or (result == "unchanged" and plan.get("fix_registry")):
        return {
            "device_uuid": device_uuid,
            "status": "completed",
            "error_message": "",
            "device_status": "online",
            "current_version": outcome.get("version") or "",
        }
    if result in ("failed", "rolled_back") and (outcome.get("step") or "") not in UNRECORDED_STEPS:
        error = str(outcome.get("error") or "")
        record = {
            "device_uuid": device_uuid,
            "status": result,
            "error_message": truncated(error, 900),
        }
        if plan.get("release"):
            record.update(device_status="online", current_version=plan.get("active_version") or "")
        return record
    return None


def voice_update_batch_records(hosts: list[Any], phase: str) -> list[dict[str, Any]]:
    """The registry records of a batch for one phase, from its hosts' plans and outcomes.

    hosts: the hostvars of the batch's hosts (the ones still in the play).
    start: the devices that get a release -> installing, devices updating.
    end: completed (current_version moves), failed or rolled_back with the
    failed step in the error (current_version back to what the device runs),
    or a registry row corrected to what the device runs. A device with
    nothing to do writes nothing. Computed once per batch on the controller,
    not by a task per host.
    """
    if phase not in ("start", "end"):
        raise AnsibleFilterError(f"voice_update_batch_records: phase must be start or end, got {phase!r}")
    return [record for record in (batch_record(host, phase) for host in hosts or []) if record]


def voice_update_batch_outcomes(hosts: list[Any], finished_at: str, action: str = "") -> dict[str, Any]:
    """The report's entries of a batch: host -> its outcome, when its update began and ended.

    hosts: the hostvars of the batch's hosts; only those with an outcome, and
    with `action` given only those whose plan chose it (``none``: the devices
    that end at their plan). One set_stats per batch, not one per host.
    """
    entries: dict[str, Any] = {}
    for host in hosts or []:
        outcome = host.get("_voice_update_outcome")
        if not outcome or (action and (host.get("_voice_update_plan") or {}).get("action") != action):
            continue
        entries[str(host.get("inventory_hostname"))] = {
            **outcome,
            "started_at": host.get("_voice_update_started_at") or finished_at,
            "finished_at": finished_at,
        }
    return entries


class FilterModule:
    def filters(self):
        return {
            "voice_update_decision": voice_update_decision,
            "voice_update_platform_key": platform_key,
            "voice_update_pending_records": voice_update_pending_records,
            "voice_update_run_records": voice_update_run_records,
            "voice_update_batch_records": voice_update_batch_records,
            "voice_update_batch_outcomes": voice_update_batch_outcomes,
        }

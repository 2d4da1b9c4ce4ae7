"""voice_update_plan's provisioning inputs: the names whose values go into the stamp.

A device re-provisions when its stamp differs from the controller's, so the set
of option names must not depend on how the argument specs are parsed: the
loader the action uses (libyaml's where PyYAML has it) must give the names
PyYAML's pure-Python safe loader gives.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from ansible_collections.javia.voice_fleet.plugins.action import voice_update_plan as plan

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = [
    str(ROOT / "roles" / r) for r in ("voice_legacy", "voice_packages", "voice_hardware", "voice_service")
]


def test_the_stamp_inputs_are_every_option_of_the_provisioning_roles(monkeypatch) -> None:
    names = plan.role_options(PROVISIONING)
    monkeypatch.setattr(plan, "SafeLoader", yaml.SafeLoader)
    assert names == plan.role_options(PROVISIONING), "libyaml and the pure-Python loader disagree"
    # One option of each role, so that an empty or partial parse cannot pass.
    for option in (
        "voice_legacy_user",
        "voice_packages_extra",
        "voice_hardware_is_pi",
        "voice_service_server_url",
    ):
        assert option in names


def test_the_action_parses_the_specs_with_libyaml_where_pyyaml_has_it() -> None:
    assert yaml.__with_libyaml__, "this controller's PyYAML lacks libyaml (make setup installs it)"
    assert plan.SafeLoader is yaml.CSafeLoader

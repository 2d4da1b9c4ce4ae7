# Copyright: voice-fleet developers
# MIT License (see galaxy.yml)
"""Documentation of the action plugin javia.voice_fleet.voice_update_plan (plugins/action/)."""

DOCUMENTATION = r"""
module: voice_update_plan
short_description: Plan one device's update with one read of the device
description:
  - Hashes the provisioning's inputs on the controller (the provisioning roles' files, the
    variables of theirs this host sets, and O(extra)), then runs
    M(javia.voice_fleet.voice_device_state) on the device once with that hash.
  - Returns what the device runs, whether it must be provisioned and why (a hand-edited managed
    file shows up here), and optionally takes or breaks the device's update lock.
version_added: 1.0.0
author:
  - voice-fleet developers (@javia)
options:
  roles:
    description: Role directories whose files and options are provisioning inputs.
    type: list
    elements: path
  var_names:
    description: More variable names that are provisioning inputs (for example C(timezone)).
    type: list
    elements: str
  extra:
    description: More inputs, any JSON (for example the release's Debian packages).
    type: raw
  managed_files:
    description: Files the provisioning manages, fingerprinted on the device.
    type: list
    elements: dict
  probe:
    description: Paths to look for on the device (M(javia.voice_fleet.voice_device_state) O(probe)).
    type: list
    elements: str
  model_files:
    description:
      - Where the board model is read from, the first that exists
        (M(javia.voice_fleet.voice_device_state) O(model_files)); that module's default when not given.
    type: list
    elements: str
  write_stamp:
    description: Record the provisioning stamp instead of only comparing it.
    type: bool
    default: false
  force:
    description: Say the provisioning must run whatever the stamp says.
    type: bool
    default: false
  lock:
    description: The device's update lock, passed on to the module.
    type: str
    choices: [none, acquire, release, break]
  lock_owner:
    description: Who holds the lock (the controller and run).
    type: str
  lock_wait:
    description: Seconds to wait for a lock another run holds.
    type: int
"""

EXAMPLES = r"""
- name: Read the device once and decide
  javia.voice_fleet.voice_update_plan:
    roles: ["{{ role_path }}/../voice_service"]
    var_names: [timezone]
  register: plan
"""

RETURN = r"""
inputs:
  description: The hash of the provisioning's inputs on the controller.
  returned: always
  type: str
started_at:
  description: When the device read began (UTC, ISO 8601 with Z), by the controller's clock.
  returned: when the device was read
  type: str
controller:
  description: The host name of the controller that read the device (it names a lock's owner).
  returned: when the device was read
  type: str
provision:
  description: The module's verdict on the provisioning, with its reasons.
  returned: success
  type: dict
"""

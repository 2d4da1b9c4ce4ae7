# Copyright: voice-fleet developers
# MIT License (see galaxy.yml)
"""Documentation of the action plugin javia.voice_fleet.voice_registry (plugins/action/)."""

DOCUMENTATION = r"""
module: voice_registry
short_description: Read and write the Supabase device registry from the controller
description:
  - Runs on the controller only (an action plugin) with the service key, through the
    collection's one registry client (retries with backoff, errors that never show the key).
  - Every write compares first, so a re-run reports C(ok) and check mode reports what would change.
version_added: 1.0.0
author:
  - voice-fleet developers (@javia)
options:
  operation:
    description: What to do.
    type: str
    required: true
    choices: [register_device, ensure_update, latest_update, set_device_update, set_device, record_progress]
  url:
    description: The registry's URL. Default the environment's C(SUPABASE_URL), and only that one.
    type: str
  key:
    description: The service key. Default the environment's C(SUPABASE_SERVICE_KEY).
    type: str
  device:
    description: The device row for O(operation=register_device).
    type: dict
  update:
    description: The C(updates) row for O(operation=ensure_update) and O(operation=record_progress).
    type: dict
  device_uuid:
    description: The device, for O(operation=set_device_update) and O(operation=set_device).
    type: str
  version:
    description: The update's version, for O(operation=set_device_update).
    type: str
  status:
    description: The new status.
    type: str
  error_message:
    description: Why a step failed.
    type: str
  scheduled_for:
    description: When the device's window opens.
    type: str
  current_version:
    description: The device's version, for O(operation=set_device).
    type: str
  if_update_exists:
    description: Leave a version without an C(updates) row alone instead of failing.
    type: bool
    default: false
  records:
    description: One batch's per-device progress, for O(operation=record_progress), in one request.
    type: list
    elements: dict
  retries:
    description: Tries after a connection error or a 5xx answer.
    type: int
    default: 3
  limit:
    description: How many rows O(operation=latest_update) returns.
    type: int
    default: 1
"""

EXAMPLES = r"""
- name: Register the device
  javia.voice_fleet.voice_registry:
    operation: register_device
    device:
      device_uuid: "{{ device_uuid }}"
      device_name: "{{ inventory_hostname }}"
      timezone: Europe/Berlin
  no_log: true
"""

RETURN = r"""
device:
  description: The device row.
  returned: for register_device and set_device
  type: dict
update:
  description: The C(updates) row.
  returned: for ensure_update, latest_update and record_progress
  type: dict
device_update:
  description: The C(device_updates) row.
  returned: for set_device_update
  type: dict
"""

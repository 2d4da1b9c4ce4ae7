# Copyright: voice-fleet developers
# MIT License (see galaxy.yml)
"""Documentation of the action plugin javia.voice_fleet.voice_wheelhouse (plugins/action/)."""

DOCUMENTATION = r"""
module: voice_wheelhouse
short_description: Build a voice-client release's wheelhouse on the controller, once per platform
description:
  - Runs on the controller only (an action plugin). For each device platform (CPU architecture,
    CPython version, glibc) it keeps the lock's requirements whose markers hold there, downloads
    the wheel (or sdist) whose sha256 the lock allows, builds sdists and the client's own wheel,
    and writes the release's hash-pinned requirements file for an offline install.
  - Everything is cached by content under O(cache_dir); a second run for the same inputs
    downloads and builds nothing.
  - With O(published), the source is a release published with C(tools/publish.py), fetched and
    its signature verified first.
version_added: 1.0.0
author:
  - voice-fleet developers (@javia)
options:
  lock:
    description: The client's device lock (C(requirements.lock) with hashes and markers).
    type: path
  source:
    description: The voice client's source directory (with C(pyproject.toml)).
    type: path
  platforms:
    description: The devices' platforms, each C({arch, python, glibc}).
    type: list
    elements: dict
  cache_dir:
    description: Where wheels, builds and release files are kept, by content.
    type: path
    required: true
  index_url:
    description: The package index (PEP 691). Default the environment's C(PIP_INDEX_URL), else PyPI.
    type: str
  tools_lock:
    description: A hashed lock of installer tools (uv) to fetch per platform as well.
    type: path
  plan_only:
    description: Only compute each platform's release id; fetch and build nothing.
    type: bool
    default: false
  published:
    description: A published release as the source, C({url, public_key_file, version}).
    type: dict
notes:
  - Check mode is supported; nothing is written to the devices by this action.
"""

EXAMPLES = r"""
- name: Build the release's wheelhouse for the devices' platforms
  javia.voice_fleet.voice_wheelhouse:
    lock: "{{ playbook_dir }}/../voice_client/requirements.lock"
    source: "{{ playbook_dir }}/../voice_client"
    cache_dir: ~/.cache/voice-fleet/wheelhouse
    platforms:
      - {arch: aarch64, python: "3.11", glibc: "2.36"}
  register: house
"""

RETURN = r"""
platforms:
  description: Per platform key (C(cp311-aarch64)), its release id, files and whether it is complete.
  returned: success
  type: dict
complete:
  description: Whether every platform's wheelhouse is complete (no build left for a device).
  returned: success, without plan_only
  type: bool
version:
  description: The client's version.
  returned: with plan_only
  type: str
source_sha256:
  description: The digest of the client's source.
  returned: with plan_only
  type: str
"""

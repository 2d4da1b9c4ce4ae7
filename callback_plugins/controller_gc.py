"""Freeze the controller's heap at the start of each play and batch: forked workers then leave it shared."""

from __future__ import annotations

import gc
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: controller_gc
type: aggregate
short_description: Keep the controller's forked workers from copying its heap
description:
  - Ansible forks a worker process for every task on every host. The worker shares the controller's
    memory until it writes to it; when Python's cyclic garbage collector runs in the worker, it visits
    every object the worker inherited, and each visit writes to the page that holds the object, so the
    kernel copies that page. A worker that collects once copies most of the controller's heap.
  - At the start of each play, and of each of its serial batches (Ansible starts the play again for
    each), this plugin moves every object still alive (the inventory, the play, the loaded plugins) to
    the collector's permanent generation (C(gc.freeze)), which no collection visits, in the controller
    or in its workers. Objects created later are collected as before.
  - What the previous batch froze is thawed and collected first (the copy of the play each batch makes
    is garbage once the batch is over), so nothing is kept for good.
  - It prints nothing and needs no enabling; Ansible loads it from ansible.cfg's C(callback_plugins), and
    from the plays' own C(playbooks/callback_plugins) under ansible-runner and AWX.
  - docs/BENCHMARKS.md gives what it saves on the simulated fleet.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "controller_gc"
    CALLBACK_NEEDS_ENABLED = False

    def v2_playbook_on_play_start(self, play: Any) -> None:
        gc.unfreeze()
        gc.collect()
        gc.freeze()

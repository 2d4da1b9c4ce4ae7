"""The batch plan a rollout play publishes for its report.

``serial | voice_serial_batches(host_count)`` is the list of batch sizes ansible-playbook makes of
a play's hosts with that ``serial``. The rollout plays publish it first thing in every batch
(playbooks/tasks/report_plan.yml), so the rollout_report callback reads the plan from an event of
the play instead of working it out from Ansible's internals: ansible-core gives callbacks no
public view of the batches it is about to run.

The split is ansible-core 2.19's (PlaybookExecutor._get_serialized_batches; tests check it against
that method): ``serial`` is a list (a scalar counts as a one-item list, empty or none means all
hosts at once); each item is an int or ``"N%"`` of the play's host count (at least 1); an item
<= 0 takes every host left; after the last item, the last one repeats.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.utils.helpers import pct_to_int


def voice_serial_batches(serial: Any, host_count: int) -> list[int]:
    """The sizes of the serial batches of `host_count` hosts (an empty list for none)."""
    if isinstance(host_count, bool) or not isinstance(host_count, int) or host_count < 0:
        raise AnsibleFilterError(f"voice_serial_batches: host_count must be an int >= 0, got {host_count!r}")
    if serial is None:
        items: list[Any] = []
    elif isinstance(serial, list | tuple):
        items = list(serial)
    else:
        items = [serial]
    if not items:
        items = [-1]
    sizes: list[int] = []
    remaining, current = host_count, 0
    while remaining > 0:
        try:
            size = pct_to_int(items[current], host_count)
        except (TypeError, ValueError):
            raise AnsibleFilterError(
                f"voice_serial_batches: serial value {items[current]!r} is neither an integer nor 'N%'"
            ) from None
        if size <= 0:
            sizes.append(remaining)
            break
        sizes.append(min(size, remaining))
        remaining -= sizes[-1]
        current = min(current + 1, len(items) - 1)
    return sizes


class FilterModule:
    def filters(self):
        return {"voice_serial_batches": voice_serial_batches}

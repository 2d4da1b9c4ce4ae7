"""Maintenance-window filters: each device's local HH:MM window, exact across every DST change.

Filters (documented in the adjacent ``<filter>.yml`` files, shown by ``ansible-doc -t filter``):

- ``tz | maintenance_window(now, hour, minute, duration_minutes)``: the window as a dict.
- ``tz | in_maintenance_window(...)``: whether ``now`` is inside it.
- ``hosts | maintenance_window_split(hostvars, ...)``: hosts split into in window / outside / invalid.
- ``hosts | hosts_in_maintenance_window(hostvars, ...)``: only the hosts whose window is open.

The rules (DESIGN.md "Maintenance window filters"): one window per local calendar date, starting
at local ``hour:minute``. Stated as one rule, a date's window starts at the first instant whose
local wall time is at or after that date's ``hour:minute``:

- normal days: exactly at ``hour:minute``;
- spring forward (the wall time is skipped): the instant the clocks jump;
- fall back (the wall time happens twice): its first occurrence only.

``end = start + duration`` in elapsed seconds. The result is the most recent window to have
started if ``now`` is inside it (with windows longer than the shortest day, e.g. 1439 minutes on a
23-hour day, two windows can overlap; the later one is reported), else the next one to start.

Time zone library: ``zoneinfo`` with the pinned ``tzdata`` package's database, not pytz.

- Consistency: zones are read from the ``tzdata`` wheel that requirements.txt pins, with
  ``ZoneInfo.from_file``; not from the controller's /usr/share/zoneinfo (which ``ZoneInfo(name)``
  prefers, and which differs between controllers: Debian 12 ships 2025b, the pinned wheel 2026f).
  So every controller with the lock computes the same windows, from the same IANA release as pytz
  2026.6 on the devices. Only when ``tzdata`` is not installed (e.g. a bare AWX execution
  environment) does it fall back to the system database; ``timezone_database()`` says which.
- Correctness: PEP 495's ``fold`` states "first occurrence" (``fold=0``) and detects a gap (the two
  folds disagree the other way) without pytz's ``is_dst`` guesswork, whose meaning breaks down for
  transitions that change the standard offset rather than DST. zoneinfo also follows the zone's
  rule past 2037, where pytz's tables end.
- Speed: the C implementation resolves a wall time in about 1 us; pytz's ``localize`` takes about
  10 us, and each evaluation needs two or three of them (benchmarks/bench_filters.py compares
  the two side by side).

Nothing here reads the controller's own time zone: instants are epoch seconds, local dates come
from the device's zone, and ``now=None`` means ``time.time()``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import importlib.resources
import math
import time
import zoneinfo
from collections.abc import Iterable, Mapping
from typing import Any

try:
    from ansible.errors import AnsibleError, AnsibleFilterError
except ImportError:  # on a device: the pull agent (roles/voice_agent) imports the window rule without Ansible

    class AnsibleError(Exception):  # type: ignore[no-redef]
        """Stands in for ansible.errors.AnsibleError where Ansible is not installed."""

    class AnsibleFilterError(AnsibleError):  # type: ignore[no-redef]
        """Stands in for ansible.errors.AnsibleFilterError where Ansible is not installed."""


_UTC = dt.UTC
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_SECONDS_PER_DAY = 86400
# "Factory" is in the database but means "local time unknown": no device has a 2 AM there.
_NOT_A_PLACE = frozenset({"Factory", "localtime", "posixrules"})
# Instants far enough from datetime's limits that the neighbouring local dates exist.
_MIN_EPOCH = dt.datetime(1, 1, 3, tzinfo=_UTC).timestamp()
_MAX_EPOCH = dt.datetime(9999, 12, 29, tzinfo=_UTC).timestamp()


class _ZoneDatabase:
    """IANA zones by name, loaded on first use from the pinned tzdata package (else the system)."""

    def __init__(self) -> None:
        self._zones: dict[str, zoneinfo.ZoneInfo] = {}
        self._names: frozenset[str] | None = None
        self._folded: dict[str, str] = {}
        self.source = ""

    def names(self) -> frozenset[str]:
        if self._names is None:
            try:
                package = importlib.resources.files("tzdata")
                names = set(package.joinpath("zones").read_text(encoding="utf-8").split())
                import tzdata  # noqa: PLC0415 (only for its version; files() imported it already)

                self.source = f"tzdata package {tzdata.IANA_VERSION}"
            except ModuleNotFoundError:
                names = set(zoneinfo.available_timezones())
                self.source = "system tz database " + ":".join(zoneinfo.TZPATH)
            self._names = frozenset(names - _NOT_A_PLACE)
            self._folded = {name.casefold(): name for name in self._names}
        return self._names

    def get(self, name: str) -> zoneinfo.ZoneInfo | None:
        zone = self._zones.get(name)
        if zone is None and name in self.names():
            if self.source.startswith("tzdata"):
                resource = importlib.resources.files("tzdata.zoneinfo").joinpath(*name.split("/"))
                with resource.open("rb") as stream:
                    zone = zoneinfo.ZoneInfo.from_file(stream, key=name)
            else:
                zone = zoneinfo.ZoneInfo(name)
            self._zones[name] = zone
        return zone

    def suggest(self, name: str) -> list[str]:
        names = self.names()
        exact = self._folded.get(name.strip().casefold())
        if exact:
            return [exact]
        return difflib.get_close_matches(name.strip(), names, n=3, cutoff=0.75)


_DATABASE = _ZoneDatabase()


def timezone_database() -> str:
    """Where the zones come from, e.g. 'tzdata package 2026f'."""
    _DATABASE.names()
    return _DATABASE.source


def timezone_names() -> frozenset[str]:
    """Every zone name the filters accept."""
    return _DATABASE.names()


# ---------------------------------------------------------------------------------------------
# Argument checks: each error names the filter, the argument, the bad value and what is valid.


def _show(value: object) -> str:
    """The bad value as a person should see it (plain repr, tags and unsafe wrappers removed)."""
    if isinstance(value, str):
        value = str.__str__(value)
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


def _zone(value: object, filter_name: str) -> zoneinfo.ZoneInfo:
    if not isinstance(value, str):
        raise AnsibleFilterError(
            f"{filter_name}: the timezone must be a string naming an IANA zone such as 'Europe/Berlin', "
            f"got {type(value).__name__} {_show(value)}"
        )
    name = str.__str__(value)  # AnsibleUnsafeText and tagged strings are str subclasses
    if not name:
        raise AnsibleFilterError(
            f"{filter_name}: the timezone is empty (''); set the device's IANA zone, e.g. 'Europe/Berlin'"
        )
    zone = _DATABASE.get(name)
    if zone is None:
        hint = ""
        suggestions = _DATABASE.suggest(name)
        if suggestions:
            hint = " Did you mean " + " or ".join(repr(s) for s in suggestions) + "?"
        raise AnsibleFilterError(
            f"{filter_name}: unknown timezone {_show(name)}: expected an IANA tz database name such as "
            f"'Europe/Berlin' or 'America/New_York' ({len(_DATABASE.names())} names known, from the "
            f"{_DATABASE.source}).{hint}"
        )
    return zone


def _whole_number(value: object, argument: str, low: int, high: int, filter_name: str) -> int:
    """An int in low..high; integer strings (extra vars) and integral floats (Jinja maths) pass."""
    number: int | None = None
    if type(value) is int:  # the usual case first; bool is a subclass of int and stays out
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit():
            number = int(text)
    if number is None or not low <= number <= high:
        raise AnsibleFilterError(
            f"{filter_name}: {argument} must be a whole number in {low}..{high}, "
            f"got {type(value).__name__} {_show(value)}"
        )
    return number


def _epoch(now: object, filter_name: str) -> float:
    """`now` as epoch seconds: None, an aware datetime, ISO 8601 with an offset, or a number."""
    seconds: float
    if now is None:
        return time.time()
    if type(now) is int or type(now) is float:  # the fast path; bool (an int subclass) stays out
        seconds = float(now)
    elif isinstance(now, dt.datetime):
        if now.utcoffset() is None:
            raise AnsibleFilterError(
                f"{filter_name}: now must be timezone-aware, got the naive datetime "
                f"{_show(now.isoformat())}; "
                "leave now unset for the current time, or pass an ISO 8601 string with an offset "
                "(Ansible's now() is naive: use now(utc=true).isoformat() ~ 'Z')"
            )
        seconds = now.timestamp()
    elif isinstance(now, str):
        text = str.__str__(now).strip()
        if text.lstrip("+-").replace(".", "", 1).isdigit():
            raise AnsibleFilterError(
                f"{filter_name}: now {_show(now)} is a string of digits; pass epoch seconds as a number "
                "(e.g. `| int`) or an ISO 8601 string with an offset such as '2026-03-08T07:00:00Z'"
            )
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise AnsibleFilterError(
                f"{filter_name}: now {_show(now)} is not an ISO 8601 date and time; expected e.g. "
                "'2026-03-08T07:00:00Z' or '2026-03-08T02:00:00-05:00'"
            ) from None
        if parsed.utcoffset() is None:
            raise AnsibleFilterError(
                f"{filter_name}: now {_show(now)} has no UTC offset, so it names no single instant; "
                "add 'Z' or an offset such as '+01:00'"
            )
        seconds = parsed.timestamp()
    elif isinstance(now, int | float) and not isinstance(now, bool):  # their subclasses, e.g. IntEnum
        seconds = float(now)
    else:
        raise AnsibleFilterError(
            f"{filter_name}: now must be None, an aware datetime, an ISO 8601 string with an offset or "
            f"epoch seconds, got {type(now).__name__} {_show(now)}"
        )
    if not (math.isfinite(seconds) and _MIN_EPOCH <= seconds <= _MAX_EPOCH):
        raise AnsibleFilterError(
            f"{filter_name}: now {_show(now)} is outside years 1..9999 "
            "(epoch values are seconds, not milliseconds)"
        )
    return seconds


# ---------------------------------------------------------------------------------------------
# The computation, on integer epoch seconds.


# A window start depends only on (zone, date, hour, minute): a scheduled run asks for the same few
# thousand again and again (every host of a zone, the dates around one `now`).
@functools.lru_cache(maxsize=8192)
def _window_start(zone: zoneinfo.ZoneInfo, ordinal: int, hour: int, minute: int) -> int:
    """Epoch seconds at which the window of the local date `ordinal` starts (see the module doc)."""
    day = dt.date.fromordinal(ordinal)
    wall = dt.datetime(day.year, day.month, day.day, hour, minute, 0, 0, zone)
    # With fold=0 a repeated wall time resolves to its first occurrence, and a skipped one with
    # the offset in force before the gap, which lands after the jump. Converting back tells them
    # apart: only in a gap does the instant carry a different offset.
    start = int(wall.timestamp())
    offset_before = wall.utcoffset()
    offset_after = dt.datetime.fromtimestamp(start, zone).utcoffset()
    if offset_after == offset_before:
        return start
    # Spring forward: the jump lies in (wall - offset_after, wall - offset_before]; find it to the
    # second (the tz database's transitions are whole seconds).
    assert offset_before is not None and offset_after is not None  # noqa: S101 (zoneinfo always has one)
    before = start - int((offset_after - offset_before).total_seconds())
    after = start
    while after - before > 1:
        middle = (before + after) // 2
        if dt.datetime.fromtimestamp(middle, zone).utcoffset() == offset_before:
            before = middle
        else:
            after = middle
    return after


def _locate(zone: zoneinfo.ZoneInfo, now: float, hour: int, minute: int, duration: int) -> tuple[int, bool]:
    """(start of the window, whether `now` is inside it) per the module doc's rule."""
    ordinal = dt.datetime.fromtimestamp(now, zone).toordinal()
    start = _window_start(zone, ordinal, hour, minute)
    if start > now:
        # Today's window is still ahead: the latest one to have started is yesterday's (or, past
        # transitions that skipped whole days, an earlier one).
        following = start
        ordinal -= 1
        start = _window_start(zone, ordinal, hour, minute)
        while start > now:
            following = start
            ordinal -= 1
            start = _window_start(zone, ordinal, hour, minute)
    else:
        if now < start + duration:
            return start, True
        following = _window_start(zone, ordinal + 1, hour, minute)
        while following <= now:
            start = following
            ordinal += 1
            following = _window_start(zone, ordinal + 1, hour, minute)
    if now < start + duration:
        return start, True
    return following, False


def _window(zone: zoneinfo.ZoneInfo, now: float, hour: int, minute: int, duration: int) -> dict[str, Any]:
    start, inside = _locate(zone, now, hour, minute, duration)
    return {
        "timezone": zone.key,
        "start": dt.datetime.fromtimestamp(start, _UTC).isoformat(),
        "end": dt.datetime.fromtimestamp(start + duration, _UTC).isoformat(),
        "local_start": dt.datetime.fromtimestamp(start, zone).isoformat(),
        "in_window": inside,
        # Rounded up: sleeping this long never wakes up before the window.
        "seconds_until_start": 0 if inside else math.ceil(start - now),
    }


def _settings(
    now: object, hour: object, minute: object, duration_minutes: object, filter_name: str
) -> tuple[float, int, int, int]:
    return (
        _epoch(now, filter_name),
        _whole_number(hour, "hour", 0, 23, filter_name),
        _whole_number(minute, "minute", 0, 59, filter_name),
        _whole_number(duration_minutes, "duration_minutes", 1, 1439, filter_name) * 60,
    )


# ---------------------------------------------------------------------------------------------
# The filters.


def maintenance_window(
    timezone: object, now: object = None, hour: object = 2, minute: object = 0, duration_minutes: object = 60
) -> dict[str, Any]:
    """The window of `timezone` that contains `now`, else the next one to start."""
    zone = _zone(timezone, "maintenance_window")
    seconds, hour_, minute_, duration = _settings(now, hour, minute, duration_minutes, "maintenance_window")
    return _window(zone, seconds, hour_, minute_, duration)


def in_maintenance_window(
    timezone: object, now: object = None, hour: object = 2, minute: object = 0, duration_minutes: object = 60
) -> bool:
    """Whether `now` falls inside the maintenance window of `timezone`."""
    filter_name = "in_maintenance_window"
    zone = _zone(timezone, filter_name)
    seconds, hour_, minute_, duration = _settings(now, hour, minute, duration_minutes, filter_name)
    return _locate(zone, seconds, hour_, minute_, duration)[1]


def _host_names(hosts: object, filter_name: str) -> list[str]:
    if isinstance(hosts, str | bytes | Mapping) or not isinstance(hosts, Iterable):
        raise AnsibleFilterError(
            f"{filter_name}: expects a list of inventory host names (e.g. ansible_play_hosts_all), "
            f"got {type(hosts).__name__} {_show(hosts)}"
        )
    names: dict[str, None] = {}  # ordered and duplicate-free
    for host in hosts:
        if not isinstance(host, str):
            raise AnsibleFilterError(
                f"{filter_name}: host names must be strings, got {type(host).__name__} {_show(host)}"
            )
        names[str.__str__(host)] = None
    return list(names)


def _host_timezone(hostvars: Mapping[str, Any], host: str, timezone_var: str) -> tuple[object, str | None]:
    """(the host's zone value, why it cannot be used or None)."""
    if host not in hostvars:
        return None, f"{host!r} is not in the inventory"
    try:
        variables = hostvars[host]
        if not isinstance(variables, Mapping):
            return None, f"{host!r} is not in the inventory"
        if timezone_var not in variables:
            return None, f"host variable {timezone_var!r} is not set"
        value = variables[timezone_var]
        valid = variables.get("timezone_valid", True)
    except AnsibleError as exc:
        return None, f"host variable {timezone_var!r} could not be templated: {exc.message}"
    if valid is False:
        return value, f"the inventory marked timezone {_show(value)} invalid (timezone_valid: false)"
    return value, None


def _split(
    filter_name: str,
    hosts: object,
    hostvars: object,
    *,
    now: object,
    hour: object,
    minute: object,
    duration_minutes: object,
    timezone_var: object,
) -> dict[str, Any]:
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError(
            f"{filter_name}: the first argument must be hostvars, "
            f"got {type(hostvars).__name__} {_show(hostvars)}"
        )
    if not isinstance(timezone_var, str) or not timezone_var:
        raise AnsibleFilterError(
            f"{filter_name}: timezone_var must name a host variable, got {type(timezone_var).__name__} "
            f"{_show(timezone_var)}"
        )
    seconds, hour_, minute_, duration = _settings(now, hour, minute, duration_minutes, filter_name)
    inside: list[str] = []
    outside: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    for host in _host_names(hosts, filter_name):
        value, problem = _host_timezone(hostvars, host, str.__str__(timezone_var))
        zone = None
        if problem is None:
            try:
                zone = _zone(value, filter_name)
            except AnsibleFilterError as exc:
                problem = exc.message
        if zone is None:
            shown = str.__str__(value) if isinstance(value, str) else value
            invalid.append({"host": host, "timezone": shown, "error": problem})
            continue
        window = _window(zone, seconds, hour_, minute_, duration)
        if window["in_window"]:
            inside.append(host)
        else:
            outside.append(
                {
                    "host": host,
                    "timezone": window["timezone"],
                    "opens_at": window["start"],
                    "opens_local": window["local_start"],
                    "seconds_until_start": window["seconds_until_start"],
                }
            )
    return {
        "now": dt.datetime.fromtimestamp(seconds, _UTC).isoformat(),
        "in_window": inside,
        "outside": outside,
        "invalid": invalid,
    }


def maintenance_window_split(
    hosts: object,
    hostvars: object,
    *,
    now: object = None,
    hour: object = 2,
    minute: object = 0,
    duration_minutes: object = 60,
    timezone_var: object = "timezone",
) -> dict[str, Any]:
    """Hosts split by their own zone's window: in_window, outside (with when it opens), invalid."""
    return _split(
        "maintenance_window_split",
        hosts,
        hostvars,
        now=now,
        hour=hour,
        minute=minute,
        duration_minutes=duration_minutes,
        timezone_var=timezone_var,
    )


def hosts_in_maintenance_window(
    hosts: object,
    hostvars: object,
    *,
    now: object = None,
    hour: object = 2,
    minute: object = 0,
    duration_minutes: object = 60,
    timezone_var: object = "timezone",
) -> list[str]:
    """Only the hosts whose window is open now (invalid zones are never selected)."""
    split = _split(
        "hosts_in_maintenance_window",
        hosts,
        hostvars,
        now=now,
        hour=hour,
        minute=minute,
        duration_minutes=duration_minutes,
        timezone_var=timezone_var,
    )
    return split["in_window"]


class FilterModule:
    """Ansible's entry point for the filters of this file."""

    def filters(self) -> dict[str, Any]:
        return {
            "maintenance_window": maintenance_window,
            "in_maintenance_window": in_maintenance_window,
            "maintenance_window_split": maintenance_window_split,
            "hosts_in_maintenance_window": hosts_in_maintenance_window,
        }

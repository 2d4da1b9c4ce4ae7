"""Hand-checked maintenance windows: every expected value below was worked out on paper.

How the expectations were derived (tz database rules, IANA 2026f):
- America/New_York: EST -05 / EDT -04; DST from the 2nd Sunday of March 02:00 (2026-03-08,
  2027-03-14) to the 1st Sunday of November 02:00 EDT -> 01:00 EST (2026-11-01, 2027-11-07).
- Europe/Berlin: CET +01 / CEST +02; Europe/London: GMT +00 / BST +01. EU rule: at 01:00 UTC on
  the last Sunday of March (2026-03-29, 2027-03-28) and of October (2026-10-25, 2027-10-31).
  Berlin skips 02:00-02:59 and repeats 02:00-02:59; London skips and repeats 01:00-01:59.
- Australia/Sydney: AEST +10 / AEDT +11; DST ends 1st Sunday of April 03:00 AEDT -> 02:00 AEST
  (2026-04-05, 2027-04-04), starts 1st Sunday of October 02:00 -> 03:00 (2026-10-04, 2027-10-03).
- America/Santiago: -04 / -03 in summer; at 03:00 UTC on the 1st Sunday on or after April 2
  (2026-04-05, 2027-04-04: Saturday 24:00 -03 becomes Saturday 23:00 -04) and at 04:00 UTC on the
  1st Sunday on or after September 2 (2026-09-06, 2027-09-05: Saturday 24:00 -04 becomes Sunday
  01:00 -03, so that Sunday has no 00:xx at all).
- Australia/Lord_Howe: +10:30 / +11 (a 30-minute DST); 02:00 -> 02:30 on the 1st Sunday of
  October (2026-10-04, 2027-10-03), 02:00 -> 01:30 on the 1st Sunday of April (2026-04-05, 2027-04-04).
- Pacific/Chatham: +12:45 / +13:45; 02:45 -> 03:45 on the last Sunday of September (2026-09-27,
  2027-09-26), 03:45 -> 02:45 on the 1st Sunday of April (2026-04-05, 2027-04-04).
- Asia/Kathmandu +05:45, Asia/Kolkata +05:30, UTC: no DST.
UTC instant = local wall time - offset; `seconds_until_start` = start - now.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import zoneinfo
from typing import Any

import pytest
import pytz
from ansible._internal._datatag._tags import Origin
from ansible.utils.unsafe_proxy import AnsibleUnsafeText
from mw_plugin import PLUGIN_PATH, mw


def window(start: str, end: str, local_start: str, in_window: bool, seconds: int) -> dict[str, Any]:
    return {
        "start": start,
        "end": end,
        "local_start": local_start,
        "in_window": in_window,
        "seconds_until_start": seconds,
    }


# (zone, now, keyword arguments, expected window without "timezone")
CASES: dict[str, tuple[str, str, dict[str, int], dict[str, Any]]] = {
    # --- UTC: the window is 02:00-03:00Z every day; start inclusive, end exclusive.
    "utc-one-second-before": (
        "UTC",
        "2026-06-15T01:59:59Z",
        {},
        window(
            "2026-06-15T02:00:00+00:00", "2026-06-15T03:00:00+00:00", "2026-06-15T02:00:00+00:00", False, 1
        ),
    ),
    "utc-at-start": (
        "UTC",
        "2026-06-15T02:00:00Z",
        {},
        window(
            "2026-06-15T02:00:00+00:00", "2026-06-15T03:00:00+00:00", "2026-06-15T02:00:00+00:00", True, 0
        ),
    ),
    "utc-at-end-is-outside": (  # 03:00 closes today's window; tomorrow's opens 23 h later
        "UTC",
        "2026-06-15T03:00:00Z",
        {},
        window(
            "2026-06-16T02:00:00+00:00",
            "2026-06-16T03:00:00+00:00",
            "2026-06-16T02:00:00+00:00",
            False,
            82800,
        ),
    ),
    # --- Asia/Kolkata +05:30: 02:00 IST is 20:30Z the day before.
    "kolkata-inside": (  # 20:45Z = 02:15 IST on 11 January
        "Asia/Kolkata",
        "2026-01-10T20:45:00Z",
        {},
        window(
            "2026-01-10T20:30:00+00:00", "2026-01-10T21:30:00+00:00", "2026-01-11T02:00:00+05:30", True, 0
        ),
    ),
    "kolkata-yesterdays-window-still-open": (  # 23:30 IST on 10 Jan = 18:00Z, +120 min = 20:00Z;
        # now 19:15Z = 00:45 IST on 11 Jan: the local date has moved on, the 10th's window has not
        "Asia/Kolkata",
        "2026-01-10T19:15:00Z",
        {"hour": 23, "minute": 30, "duration_minutes": 120},
        window(
            "2026-01-10T18:00:00+00:00", "2026-01-10T20:00:00+00:00", "2026-01-10T23:30:00+05:30", True, 0
        ),
    ),
    # --- Asia/Kathmandu +05:45: 02:00 NPT is 20:15Z the day before.
    "kathmandu-next-day": (  # now = 05:45 NPT on 1 July; next window 2 July 02:00 = 1 July 20:15Z (20h15m)
        "Asia/Kathmandu",
        "2026-07-01T00:00:00Z",
        {},
        window(
            "2026-07-01T20:15:00+00:00",
            "2026-07-01T21:15:00+00:00",
            "2026-07-02T02:00:00+05:45",
            False,
            72900,
        ),
    ),
    # --- Pacific/Chatham +12:45 / +13:45.
    "chatham-2026-spring-02:00-unaffected": (  # 02:00 comes before the 02:45 jump: 02:00 +12:45 = 13:15Z
        "Pacific/Chatham",
        "2026-09-26T13:00:00Z",
        {},
        window(
            "2026-09-26T13:15:00+00:00", "2026-09-26T14:15:00+00:00", "2026-09-27T02:00:00+12:45", False, 900
        ),
    ),
    "chatham-2026-spring-gap": (  # 03:00 is skipped; the jump at 02:45 +12:45 = 14:00Z (03:45 +13:45)
        "Pacific/Chatham",
        "2026-09-26T13:30:00Z",
        {"hour": 3},
        window(
            "2026-09-26T14:00:00+00:00", "2026-09-26T15:00:00+00:00", "2026-09-27T03:45:00+13:45", False, 1800
        ),
    ),
    "chatham-2026-fall-first-occurrence-only": (  # 03:00 happens at 13:15Z (+13:45) and 14:15Z (+12:45);
        # now 14:20Z is after the first window; the second 03:00 is no window; next: 6 April 03:00 +12:45
        "Pacific/Chatham",
        "2026-04-04T14:20:00Z",
        {"hour": 3},
        window(
            "2026-04-05T14:15:00+00:00",
            "2026-04-05T15:15:00+00:00",
            "2026-04-06T03:00:00+12:45",
            False,
            86100,
        ),
    ),
    "chatham-2027-fall-first": (  # 4 April 2027 03:00 +13:45 = 3 April 13:15Z
        "Pacific/Chatham",
        "2027-04-03T13:00:00Z",
        {"hour": 3},
        window(
            "2027-04-03T13:15:00+00:00", "2027-04-03T14:15:00+00:00", "2027-04-04T03:00:00+13:45", False, 900
        ),
    ),
    "chatham-2027-spring-gap": (  # 26 Sept 2027: jump at 02:45 +12:45 = 25 Sept 14:00Z
        "Pacific/Chatham",
        "2027-09-25T14:30:00Z",
        {"hour": 3},
        window(
            "2027-09-25T14:00:00+00:00", "2027-09-25T15:00:00+00:00", "2027-09-26T03:45:00+13:45", True, 0
        ),
    ),
    # --- Australia/Lord_Howe +10:30 / +11.
    "lord-howe-2026-spring-gap": (  # 02:00-02:29 skipped; jump at 02:00 +10:30 = 15:30Z; now 15:45Z inside
        "Australia/Lord_Howe",
        "2026-10-03T15:45:00Z",
        {},
        window(
            "2026-10-03T15:30:00+00:00", "2026-10-03T16:30:00+00:00", "2026-10-04T02:30:00+11:00", True, 0
        ),
    ),
    "lord-howe-2026-fall-first-occurrence-only": (  # 01:45 at 14:45Z (+11) and 15:15Z (+10:30); a 30-min
        # window 14:45-15:15Z is over at 15:20Z; next: 6 April 01:45 +10:30 = 5 April 15:15Z
        "Australia/Lord_Howe",
        "2026-04-04T15:20:00Z",
        {"hour": 1, "minute": 45, "duration_minutes": 30},
        window(
            "2026-04-05T15:15:00+00:00",
            "2026-04-05T15:45:00+00:00",
            "2026-04-06T01:45:00+10:30",
            False,
            86100,
        ),
    ),
    "lord-howe-2026-fall-02:00-once": (  # 02:00 exists once after the fall-back: +10:30 = 15:30Z
        "Australia/Lord_Howe",
        "2026-04-04T15:00:00Z",
        {},
        window(
            "2026-04-04T15:30:00+00:00", "2026-04-04T16:30:00+00:00", "2026-04-05T02:00:00+10:30", False, 1800
        ),
    ),
    "lord-howe-2027-fall-first": (  # 4 April 2027 01:45 +11 = 3 April 14:45Z
        "Australia/Lord_Howe",
        "2027-04-03T14:50:00Z",
        {"hour": 1, "minute": 45},
        window(
            "2027-04-03T14:45:00+00:00", "2027-04-03T15:45:00+00:00", "2027-04-04T01:45:00+11:00", True, 0
        ),
    ),
    "lord-howe-2027-spring-gap": (  # 3 Oct 2027: jump at 02:00 +10:30 = 2 Oct 15:30Z
        "Australia/Lord_Howe",
        "2027-10-02T15:00:00Z",
        {},
        window(
            "2027-10-02T15:30:00+00:00", "2027-10-02T16:30:00+00:00", "2027-10-03T02:30:00+11:00", False, 1800
        ),
    ),
    # --- America/Santiago -04 / -03, transitions at local midnight.
    "santiago-2026-date-without-midnight": (  # 6 Sept has no 00:00: its window opens at the jump,
        # 04:00Z = 01:00 -03; now 04:10Z is inside (the 5th's window was 00:00 -04 = 5 Sept 04:00Z)
        "America/Santiago",
        "2026-09-06T04:10:00Z",
        {"hour": 0},
        window(
            "2026-09-06T04:00:00+00:00", "2026-09-06T05:00:00+00:00", "2026-09-06T01:00:00-03:00", True, 0
        ),
    ),
    "santiago-2026-gap-from-saturday-night": (  # now 03:30Z = Sat 23:30 -04; 00:30 on the 6th is skipped
        "America/Santiago",
        "2026-09-06T03:30:00Z",
        {"hour": 0, "minute": 30},
        window(
            "2026-09-06T04:00:00+00:00", "2026-09-06T05:00:00+00:00", "2026-09-06T01:00:00-03:00", False, 1800
        ),
    ),
    "santiago-2026-spring-02:00": (  # 6 Sept 02:00 -03 = 05:00Z; now 04:30Z = 01:30 -03
        "America/Santiago",
        "2026-09-06T04:30:00Z",
        {},
        window(
            "2026-09-06T05:00:00+00:00", "2026-09-06T06:00:00+00:00", "2026-09-06T02:00:00-03:00", False, 1800
        ),
    ),
    "santiago-2026-fall-first-occurrence-only": (  # Sat 4 April 23:30 at 02:30Z (-03) and 03:30Z (-04);
        # now 03:40Z is the second one: next is 5 April 23:30 -04 = 6 April 03:30Z
        "America/Santiago",
        "2026-04-05T03:40:00Z",
        {"hour": 23, "minute": 30},
        window(
            "2026-04-06T03:30:00+00:00",
            "2026-04-06T04:30:00+00:00",
            "2026-04-05T23:30:00-04:00",
            False,
            85800,
        ),
    ),
    "santiago-2026-fall-02:00": (  # 5 April 02:00 -04 = 06:00Z
        "America/Santiago",
        "2026-04-05T05:00:00Z",
        {},
        window(
            "2026-04-05T06:00:00+00:00", "2026-04-05T07:00:00+00:00", "2026-04-05T02:00:00-04:00", False, 3600
        ),
    ),
    "santiago-2027-fall-first": (  # Sat 3 April 2027 23:30 -03 = 4 April 02:30Z
        "America/Santiago",
        "2027-04-04T02:00:00Z",
        {"hour": 23, "minute": 30},
        window(
            "2027-04-04T02:30:00+00:00", "2027-04-04T03:30:00+00:00", "2027-04-03T23:30:00-03:00", False, 1800
        ),
    ),
    "santiago-2027-date-without-midnight": (  # 5 Sept 2027 starts at 01:00 -03 = 04:00Z
        "America/Santiago",
        "2027-09-05T03:00:00Z",
        {"hour": 0},
        window(
            "2027-09-05T04:00:00+00:00", "2027-09-05T05:00:00+00:00", "2027-09-05T01:00:00-03:00", False, 3600
        ),
    ),
    # --- Europe/London GMT / BST: DST at 01:00 local.
    "london-2026-spring-gap": (  # 01:00 GMT is skipped, the clocks jump at 01:00Z to 02:00 BST
        "Europe/London",
        "2026-03-29T00:59:00Z",
        {"hour": 1},
        window(
            "2026-03-29T01:00:00+00:00", "2026-03-29T02:00:00+00:00", "2026-03-29T02:00:00+01:00", False, 60
        ),
    ),
    "london-2026-spring-02:00-exists": (  # 02:00 BST = 01:00Z: same instant as the gap case above
        "Europe/London",
        "2026-03-29T01:30:00Z",
        {},
        window(
            "2026-03-29T01:00:00+00:00", "2026-03-29T02:00:00+00:00", "2026-03-29T02:00:00+01:00", True, 0
        ),
    ),
    "london-2026-fall-first-occurrence-only": (  # 01:30 at 00:30Z (BST) and 01:30Z (GMT); now 01:35Z:
        # the first window ended at 01:30Z; next is 26 Oct 01:30 GMT (23h55m)
        "Europe/London",
        "2026-10-25T01:35:00Z",
        {"hour": 1, "minute": 30},
        window(
            "2026-10-26T01:30:00+00:00",
            "2026-10-26T02:30:00+00:00",
            "2026-10-26T01:30:00+00:00",
            False,
            86100,
        ),
    ),
    "london-2027-spring-gap": (
        "Europe/London",
        "2027-03-28T01:10:00Z",
        {"hour": 1},
        window(
            "2027-03-28T01:00:00+00:00", "2027-03-28T02:00:00+00:00", "2027-03-28T02:00:00+01:00", True, 0
        ),
    ),
    "london-2027-fall-first": (  # 31 Oct 2027 01:30 BST = 00:30Z
        "Europe/London",
        "2027-10-31T00:00:00Z",
        {"hour": 1, "minute": 30},
        window(
            "2027-10-31T00:30:00+00:00", "2027-10-31T01:30:00+00:00", "2027-10-31T01:30:00+01:00", False, 1800
        ),
    ),
    # --- Europe/Berlin CET / CEST: DST at 02:00 local.
    "berlin-2026-spring-gap": (  # 02:00 CET skipped: the jump at 01:00Z shows as 03:00 CEST
        "Europe/Berlin",
        "2026-03-29T00:30:00Z",
        {},
        window(
            "2026-03-29T01:00:00+00:00", "2026-03-29T02:00:00+00:00", "2026-03-29T03:00:00+02:00", False, 1800
        ),
    ),
    "berlin-2026-fall-inside-first": (  # 02:00 CEST = 00:00Z; now 00:59:59Z
        "Europe/Berlin",
        "2026-10-25T00:59:59Z",
        {},
        window(
            "2026-10-25T00:00:00+00:00", "2026-10-25T01:00:00+00:00", "2026-10-25T02:00:00+02:00", True, 0
        ),
    ),
    "berlin-2026-fall-second-occurrence-is-no-window": (  # now 01:30Z = 02:30 CET (second time round);
        # next window 26 Oct 02:00 CET = 01:00Z, 23.5 h away
        "Europe/Berlin",
        "2026-10-25T01:30:00Z",
        {},
        window(
            "2026-10-26T01:00:00+00:00",
            "2026-10-26T02:00:00+00:00",
            "2026-10-26T02:00:00+01:00",
            False,
            84600,
        ),
    ),
    "berlin-2027-spring-gap": (
        "Europe/Berlin",
        "2027-03-28T00:00:00Z",
        {},
        window(
            "2027-03-28T01:00:00+00:00", "2027-03-28T02:00:00+00:00", "2027-03-28T03:00:00+02:00", False, 3600
        ),
    ),
    "berlin-2027-fall-first": (  # 31 Oct 2027 02:00 CEST = 00:00Z
        "Europe/Berlin",
        "2027-10-30T23:00:00Z",
        {},
        window(
            "2027-10-31T00:00:00+00:00", "2027-10-31T01:00:00+00:00", "2027-10-31T02:00:00+02:00", False, 3600
        ),
    ),
    "berlin-overlapping-long-windows-report-the-later": (  # 1439-min windows: the 29 March one
        # (01:00Z + 23h59m = 30 March 00:59Z) and the 30 March one (02:00 CEST = 00:00Z) both hold 00:30Z
        "Europe/Berlin",
        "2026-03-30T00:30:00Z",
        {"duration_minutes": 1439},
        window(
            "2026-03-30T00:00:00+00:00", "2026-03-30T23:59:00+00:00", "2026-03-30T02:00:00+02:00", True, 0
        ),
    ),
    # --- America/New_York EST / EDT: DST at 02:00 local.
    "new-york-2026-spring-gap": (  # 02:00 EST skipped: the jump at 07:00Z shows as 03:00 EDT
        "America/New_York",
        "2026-03-08T06:30:00Z",
        {},
        window(
            "2026-03-08T07:00:00+00:00", "2026-03-08T08:00:00+00:00", "2026-03-08T03:00:00-04:00", False, 1800
        ),
    ),
    "new-york-2026-spring-inside": (
        "America/New_York",
        "2026-03-08T07:30:00Z",
        {},
        window(
            "2026-03-08T07:00:00+00:00", "2026-03-08T08:00:00+00:00", "2026-03-08T03:00:00-04:00", True, 0
        ),
    ),
    "new-york-2026-fall-inside-first": (  # 01:30 EDT = 05:30Z; now 05:45Z
        "America/New_York",
        "2026-11-01T05:45:00Z",
        {"hour": 1, "minute": 30},
        window(
            "2026-11-01T05:30:00+00:00", "2026-11-01T06:30:00+00:00", "2026-11-01T01:30:00-04:00", True, 0
        ),
    ),
    "new-york-2026-fall-second-occurrence-is-no-window": (  # now 06:45Z = 01:45 EST (second time);
        # next: 2 Nov 01:30 EST = 06:30Z, 23h45m away
        "America/New_York",
        "2026-11-01T06:45:00Z",
        {"hour": 1, "minute": 30},
        window(
            "2026-11-02T06:30:00+00:00",
            "2026-11-02T07:30:00+00:00",
            "2026-11-02T01:30:00-05:00",
            False,
            85500,
        ),
    ),
    "new-york-2026-fall-02:00-once": (  # 02:00 happens once, in EST: 07:00Z; now 05:30Z = 01:30 EDT
        "America/New_York",
        "2026-11-01T05:30:00Z",
        {},
        window(
            "2026-11-01T07:00:00+00:00", "2026-11-01T08:00:00+00:00", "2026-11-01T02:00:00-05:00", False, 5400
        ),
    ),
    "new-york-2027-spring-gap": (  # now 06:00Z = 01:00 EST on 14 March 2027; jump at 07:00Z
        "America/New_York",
        "2027-03-14T06:00:00Z",
        {},
        window(
            "2027-03-14T07:00:00+00:00", "2027-03-14T08:00:00+00:00", "2027-03-14T03:00:00-04:00", False, 3600
        ),
    ),
    "new-york-2027-fall-first": (  # 7 Nov 2027 01:30 EDT = 05:30Z
        "America/New_York",
        "2027-11-07T05:00:00Z",
        {"hour": 1, "minute": 30},
        window(
            "2027-11-07T05:30:00+00:00", "2027-11-07T06:30:00+00:00", "2027-11-07T01:30:00-04:00", False, 1800
        ),
    ),
    # --- Australia/Sydney AEST / AEDT: DST at 02:00 (spring) and 03:00 DST (autumn).
    "sydney-2026-spring-gap": (  # 02:00 AEST skipped: the jump at 16:00Z shows as 03:00 AEDT
        "Australia/Sydney",
        "2026-10-03T15:00:00Z",
        {},
        window(
            "2026-10-03T16:00:00+00:00", "2026-10-03T17:00:00+00:00", "2026-10-04T03:00:00+11:00", False, 3600
        ),
    ),
    "sydney-2026-fall-second-occurrence-is-no-window": (  # 02:00 at 15:00Z (AEDT) and 16:00Z (AEST);
        # now 16:30Z = 02:30 AEST (second time round): next is 6 April 02:00 AEST = 5 April 16:00Z
        "Australia/Sydney",
        "2026-04-04T16:30:00Z",
        {},
        window(
            "2026-04-05T16:00:00+00:00",
            "2026-04-05T17:00:00+00:00",
            "2026-04-06T02:00:00+10:00",
            False,
            84600,
        ),
    ),
    "sydney-2026-fall-first": (
        "Australia/Sydney",
        "2026-04-04T15:10:00Z",
        {},
        window(
            "2026-04-04T15:00:00+00:00", "2026-04-04T16:00:00+00:00", "2026-04-05T02:00:00+11:00", True, 0
        ),
    ),
    "sydney-2027-fall-first": (  # 4 April 2027 02:00 AEDT = 3 April 15:00Z
        "Australia/Sydney",
        "2027-04-03T14:00:00Z",
        {},
        window(
            "2027-04-03T15:00:00+00:00", "2027-04-03T16:00:00+00:00", "2027-04-04T02:00:00+11:00", False, 3600
        ),
    ),
    "sydney-2027-spring-gap": (  # 3 Oct 2027: jump at 02:00 AEST = 2 Oct 16:00Z
        "Australia/Sydney",
        "2027-10-02T16:59:59Z",
        {},
        window(
            "2027-10-02T16:00:00+00:00", "2027-10-02T17:00:00+00:00", "2027-10-03T03:00:00+11:00", True, 0
        ),
    ),
}


@pytest.mark.parametrize(("zone", "now", "kwargs", "expected"), CASES.values(), ids=CASES.keys())
def test_hand_checked_window(zone: str, now: str, kwargs: dict[str, int], expected: dict[str, Any]) -> None:
    assert mw.maintenance_window(zone, now=now, **kwargs) == {"timezone": zone, **expected}
    assert mw.in_maintenance_window(zone, now=now, **kwargs) is expected["in_window"]


def test_positional_arguments_follow_the_documented_order() -> None:
    # hour 1, minute 30, 30 minutes: London 01:30 BST on 25 Oct 2026 = 00:30Z, now 00:45Z inside
    result = mw.maintenance_window("Europe/London", "2026-10-25T00:45:00Z", 1, 30, 30)
    assert (result["start"], result["end"], result["in_window"]) == (
        "2026-10-25T00:30:00+00:00",
        "2026-10-25T01:00:00+00:00",
        True,
    )


# One instant, 2026-03-08T06:30:00Z, in every accepted form.
_INSTANT = dt.datetime(2026, 3, 8, 6, 30, tzinfo=dt.UTC)
NOW_FORMS = {
    "iso-z": "2026-03-08T06:30:00Z",
    "iso-utc-offset": "2026-03-08T06:30:00+00:00",
    "iso-local-offset": "2026-03-08T01:30:00-05:00",
    "iso-basic-offset": "2026-03-08T07:30:00+0100",
    "iso-with-spaces-around": " 2026-03-08T06:30:00Z ",
    "epoch-int": int(_INSTANT.timestamp()),
    "epoch-float": _INSTANT.timestamp(),
    "aware-utc": _INSTANT,
    "aware-zoneinfo": _INSTANT.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo")),
    "aware-pytz": pytz.timezone("America/New_York").localize(dt.datetime(2026, 3, 8, 1, 30)),
    "aware-fixed-offset": _INSTANT.astimezone(dt.timezone(dt.timedelta(hours=-3, minutes=-30))),
    "tagged-string": Origin(path="/registry/devices", line_num=1).tag("2026-03-08T06:30:00Z"),
}


@pytest.mark.parametrize("now", NOW_FORMS.values(), ids=NOW_FORMS.keys())
def test_every_form_of_now_names_the_same_instant(now: object) -> None:
    expected = CASES["new-york-2026-spring-gap"][3]
    assert mw.maintenance_window("America/New_York", now=now) == {"timezone": "America/New_York", **expected}


def test_fractional_seconds_round_the_wait_up() -> None:
    # 0.25 s before 02:00Z: the wait is 1 s, never 0 (0 means "inside")
    before = dt.datetime(2026, 6, 15, 1, 59, 59, 750000, tzinfo=dt.UTC)
    result = mw.maintenance_window("UTC", now=before.timestamp())
    assert (result["in_window"], result["seconds_until_start"]) == (False, 1)


def test_now_none_means_the_current_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # time.time() is the only clock read; 1 Jan 2026 02:30Z is inside the UTC window
    monkeypatch.setattr(mw.time, "time", lambda: dt.datetime(2026, 1, 1, 2, 30, tzinfo=dt.UTC).timestamp())
    assert mw.maintenance_window("UTC")["start"] == "2026-01-01T02:00:00+00:00"
    assert mw.in_maintenance_window("UTC") is True


@pytest.mark.parametrize(
    "zone",
    [
        AnsibleUnsafeText("Europe/Berlin"),
        Origin(path="/registry/devices", line_num=1).tag("Europe/Berlin"),
        type("RegistryText", (str,), {})("Europe/Berlin"),
    ],
    ids=["unsafe-text", "tagged-str", "str-subclass"],
)
def test_zone_names_from_the_registry_may_be_str_subclasses(zone: str) -> None:
    result = mw.maintenance_window(zone, now="2026-10-25T00:30:00Z")
    assert result["start"] == "2026-10-25T00:00:00+00:00"
    assert type(result["timezone"]) is str
    assert result["timezone"] == "Europe/Berlin"


def test_integer_strings_and_integral_floats_are_accepted_for_numbers() -> None:
    # extra vars (-e hour=3) arrive as strings; Jinja division gives floats
    expected = mw.maintenance_window("Asia/Kolkata", now="2026-01-10T12:00:00Z", hour=3, minute=15)
    assert (
        mw.maintenance_window("Asia/Kolkata", now="2026-01-10T12:00:00Z", hour="3", minute=15.0) == expected
    )


def test_zones_come_from_the_pinned_tzdata_package_not_the_system() -> None:
    import tzdata  # noqa: PLC0415 (only this test cares which release is installed)

    assert mw.timezone_database() == f"tzdata package {tzdata.IANA_VERSION}"
    names = mw.timezone_names()
    assert {"America/New_York", "Pacific/Chatham", "UTC", "US/Eastern"} <= names
    assert "Factory" not in names
    assert names == frozenset(pytz.all_timezones)  # the same names the devices' pytz knows


_TZ_PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("probe", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
cases = json.loads(sys.argv[2])
print(json.dumps([module.maintenance_window(zone, now=now, **kwargs) for zone, now, kwargs, _ in cases]))
"""


@pytest.mark.parametrize("controller_tz", ["Pacific/Kiritimati", "America/Adak", "Asia/Kathmandu", "EST5EDT"])
def test_results_do_not_depend_on_the_controller_timezone(controller_tz: str) -> None:
    cases = list(CASES.values())
    env = {**os.environ, "TZ": controller_tz}
    proc = subprocess.run(
        [sys.executable, "-c", _TZ_PROBE, str(PLUGIN_PATH), json.dumps(cases)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(proc.stdout) == [{"timezone": zone, **expected} for zone, _, _, expected in cases]

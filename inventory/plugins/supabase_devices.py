"""Ansible inventory plugin: the voice-fleet, straight from the Supabase device registry."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import re
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ansible.constants import LOCALHOST as ANSIBLE_LOCALHOST
from ansible.errors import AnsibleError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.display import Display
from ansible.utils.unsafe_proxy import wrap_var
from ansible_collections.javia.voice_fleet.plugins.filter.maintenance_window import timezone_names
from ansible_collections.javia.voice_fleet.plugins.module_utils import voice_registry_client as registry
from ansible_collections.javia.voice_fleet.plugins.module_utils.voice_registry_client import (
    Redactor,
    display_url,
)

DOCUMENTATION = r"""
name: supabase_devices
short_description: Voice assistant devices from the Supabase registry
description:
  - Reads the device registry (the C(devices) table of a Supabase project, served by PostgREST under
    C(/rest/v1/)) with supabase-py and makes one host per device row.
  - The configuration file name must end in C(supabase.yml) or C(supabase.yaml).
  - Only the columns the inventory needs are read, the status filter runs on the server, and rows are
    read in pages of O(page_size) (or fewer, when the server caps its answers) ordered by
    C(device_uuid). The first page asks for the row count, so N devices take ceil(N / page) requests
    (one for an empty fleet); no extra request looks for the end, and a server cap below O(page_size)
    loses no device.
  - "Hostname: the C(device_name), with surrounding whitespace removed; the C(device_uuid) when the name
    is null or blank. When several devices resolve to the same hostname, the one registered first
    (C(registered_at), then the smaller C(device_uuid)) keeps it and each other one becomes
    C(<name>-<suffix>) where the suffix is the last 8 letters and digits of its C(device_uuid) (the
    whole C(device_uuid) if that is still taken), with a warning. Bare names are reserved before any
    suffix is given, and the rule does not depend on the order the server returns rows in."
  - "Host vars: C(device_uuid), C(device_name), C(timezone), C(timezone_valid), C(device_status),
    C(current_version), C(last_seen), C(metadata) (always a mapping: C({}) when the column is null or
    not a JSON object), C(ansible_host) (the C(ansible_host) column, else C(metadata.ip_address),
    else C(metadata.hostname)) and C(voice_management) (C(push) or C(pull), C(push) when null)."
  - "Groups: C(status_<status>), C(tz_<timezone>) (lowercase), C(version_<current_version>) and
    C(management_<push|pull>) (both always present, maybe empty; pull devices update themselves:
    C(rollout.yml) and C(rollback.yml) exclude C(management_pull), C(scheduled.yml) leaves them out). In
    those names C(+) becomes C(plus) (so C(Etc/GMT+5) and C(Etc/GMT-5) stay apart) and every other
    character outside C([A-Za-z0-9_]), including C(/), C(-), C(.) and non-ASCII letters, becomes C(_)."
  - A timezone is valid when it is exactly (case included) the name of a zone in the database the
    maintenance window filters use, the zone list of the pinned C(tzdata) package (the system's
    zoneinfo without it), less the pseudo-zones C(Factory), C(localtime) and C(posixrules). A
    device with any other timezone (or none) joins the group C(invalid_timezone) instead, with a
    warning.
  - Rows are skipped with a warning naming them when they have no C(device_uuid), or no address at all.
  - "A row whose hostname (after the rules above) is one Ansible keeps for the controller's implicit
    localhost (C(localhost), C(127.0.0.1), C(::1), in any case, with or without a trailing dot) is
    skipped with a warning naming its C(device_uuid): a registry row never stands in for the
    controller (C(delegate_to: localhost), C(hosts: localhost))."
  - "The address (the first of the C(ansible_host) column, C(metadata.ip_address) and
    C(metadata.hostname) that is a non-blank string) must be an IP address or a DNS hostname
    (RFC 1123 labels of letters, digits and inner hyphens, at most 253 characters, a top-level label
    that is not all digits). Any other value (spaces, shell metacharacters, a leading C(-) such as
    C(-oProxyCommand=...), C(@), C(/), C(..)) skips the row with a warning naming its
    C(device_uuid) and the value; the next field is not tried. C(127.0.0.1) is a valid address
    (the simulated fleet uses it with a port)."
  - Every string read from the registry is marked unsafe and is never templated.
author:
  - voice-fleet
requirements:
  - supabase (supabase-py) >= 2.34
  - tzdata (optional; the system zoneinfo is used without it)
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks this file as a configuration of this plugin.
    type: str
    required: true
    choices: [supabase_devices, javia.voice_fleet.supabase_devices]
  url:
    description:
      - URL of the Supabase project (or of a gateway serving PostgREST under C(/rest/v1/)),
        for example C(https://abcdefgh.supabase.co).
      - Required, here or in the environment.
    type: str
    env:
      - name: SUPABASE_URL
  key:
    description:
      - The project's service role key (it bypasses row level security, which hides the registry from
        every other role).
      - May be an ansible-vault encrypted string. It is never shown in output, warnings or errors.
      - Required, here or in the environment.
    type: str
    env:
      - name: SUPABASE_SERVICE_KEY
  table:
    description: The table (or view) holding the devices.
    type: str
    default: devices
  statuses:
    description:
      - Only devices whose C(status) is one of these become hosts (filtered by the server).
    type: list
    elements: str
    default: [online, updating]
  page_size:
    description:
      - Rows asked for per request. Supabase and PostgREST cap every answer (C(db-max-rows), 1000 on
        Supabase); a smaller answer than asked for is handled, so a larger value only costs nothing.
    type: int
    default: 1000
  timeout:
    description: Seconds to wait for the registry to connect or answer, per request.
    type: float
    default: 30
  retries:
    description:
      - Times a request is tried again after a connection error or a 5xx answer (waiting 0.5 s,
        1 s, 2 s, ...). A refused key or a missing table is never retried.
    type: int
    default: 3
  validate_certs:
    description: Verify the TLS certificate of an C(https) URL.
    type: bool
    default: true
"""

EXAMPLES = r"""
# inventory/supabase.yml: online and updating devices; url and key from SUPABASE_URL /
# SUPABASE_SERVICE_KEY.
plugin: supabase_devices

# Devices that are online or updating, cached for 10 minutes, grouped by hardware model
# (model_pi_5, model_pi_zero_2_w, ...), with the SSH port taken from the heartbeat metadata.
plugin: supabase_devices
statuses: [online, updating]
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: .cache/inventory
cache_timeout: 600
keyed_groups:
  - key: metadata.hardware_model | default('unknown') | lower
    prefix: model
compose:
  ansible_port: metadata.ansible_port | default(22) | int
groups:
  behind: current_version != '2.4.0'

# A vault-encrypted key (ansible-vault encrypt_string --name key).
plugin: supabase_devices
url: https://abcdefgh.supabase.co
key: !vault |
  $ANSIBLE_VAULT;1.1;AES256
  6231...
"""

display = Display()

# Failure messages per inventory being built and per source. Ansible offers a source that this
# plugin could not read to the next plugins, and `auto` hands it straight back here: answer that
# second attempt from this record instead of repeating the requests (and their retries).
_FAILURES: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()

# What the inventory reads: nothing more (registered_at only orders duplicate names).
COLUMNS: tuple[str, ...] = (
    "device_uuid",
    "device_name",
    "timezone",
    "status",
    "current_version",
    "last_seen",
    "registered_at",
    "metadata",
    "ansible_host",
    "management",
)
# Columns a project may not have yet (an existing Javia project before the pull-mode
# migration): read when there, left out (one more request) when the server says it is missing.
OPTIONAL_COLUMNS = frozenset({"management"})
MANAGEMENT_GROUPS = ("management_push", "management_pull")
ORDER_COLUMN = "device_uuid"
INVALID_TIMEZONE_GROUP = "invalid_timezone"
CONFIG_SUFFIXES = ("supabase.yml", "supabase.yaml")
USER_AGENT = "voice-fleet-inventory (supabase_devices)"
# Warnings name at most this many devices each; -vvv lists them all.
WARN_LIST_LIMIT = 20
SUFFIX_LENGTH = 8

_GROUP_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
_HEADER_SAFE_KEY = re.compile(r"[\x21-\x7e]+")
# RFC 1123 host name labels (ASCII letters, digits, inner hyphens); IPv6 zone ids (interface names).
_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_ZONE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
# The names Ansible resolves to its implicit localhost (the controller), compared without case
# and without trailing dots.
CONTROLLER_NAMES = frozenset(name.lower() for name in (*ANSIBLE_LOCALHOST, "localhost", "127.0.0.1", "::1"))


# --- rows to devices (pure functions) ----------------------------------------


def group_part(value: str, *, lower: bool = False) -> str:
    """`value` as the tail of a group name: `+` -> `plus`, anything outside [A-Za-z0-9_] -> `_`."""
    text = value.strip()
    if lower:
        text = text.lower()
    return _GROUP_UNSAFE.sub("_", text.replace("+", "plus"))


def make_unsafe(value: Any) -> Any:
    """`value` with every string in it marked unsafe (never templated), at any depth.

    wrap_var does the marking; the walk is ours because JSON only holds dicts, lists and
    scalars, and exact type checks are several times cheaper than wrap_var's ABC checks
    over tens of thousands of hosts.
    """
    kind = type(value)
    if kind is str:
        return wrap_var(value)
    if kind is dict:
        return {wrap_var(k) if isinstance(k, str) else k: make_unsafe(v) for k, v in value.items()}
    if kind is list:
        return [make_unsafe(v) for v in value]
    if value is None or kind in (bool, int, float):
        return value
    # Anything else (tagged or subclassed str, dict, list): wrap_var's general walk.
    return wrap_var(value)


def _text(value: Any) -> str | None:
    """A column value as text: None stays None, other scalars become their JSON text."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, (bool, int, float, list, dict)) else str(value)


def _json_kind(value: Any) -> str:
    kinds = {str: "a JSON string", list: "a JSON array", bool: "a JSON boolean", int: "a JSON number"}
    return kinds.get(type(value), "a JSON number" if isinstance(value, float) else type(value).__name__)


def _address(column: Any, metadata: Mapping[str, Any]) -> tuple[str, str] | None:
    """(address, where it came from): the first non-blank string of the three, stripped."""
    sources = (
        ("ansible_host", column),
        ("metadata.ip_address", metadata.get("ip_address")),
        ("metadata.hostname", metadata.get("hostname")),
    )
    for source, value in sources:
        if isinstance(value, str) and value.strip():
            return value.strip(), source
    return None


def is_valid_address(value: str) -> bool:
    """True for an IP address (v4, v6, v6 with an interface zone) or an RFC 1123 DNS hostname.

    Nothing else reaches ssh as a host: no blanks, shell metacharacters, option-like `-o...`,
    `user@host`, paths, empty labels (`..`), non-ASCII, or an all-digit top label (`2130706433`,
    `010.0.0.1`: numbers a resolver would read as an IP address in disguise).
    """
    if not isinstance(value, str) or not value.isascii():
        return False
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        scope = getattr(address, "scope_id", None)
        return scope is None or bool(_ZONE_ID.fullmatch(scope))
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    return all(_DNS_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()


def is_controller_name(name: str) -> bool:
    """True when Ansible would take `name` for the controller's implicit localhost (any case)."""
    return name.strip().rstrip(".").lower() in CONTROLLER_NAMES


def _registered_key(value: Any) -> tuple[bool, dt.datetime]:
    """Sort key putting the earliest registration first and unknown registrations last."""
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            return (False, when)
    return (True, dt.datetime.min.replace(tzinfo=dt.UTC))


@dataclass(frozen=True)
class Device:
    """One usable registry row: its hostvars (plain data) and fixed groups."""

    uuid: str
    candidate: str
    registered: tuple[bool, dt.datetime]
    hostvars: dict[str, Any]
    groups: tuple[str, ...]


@dataclass
class Findings:
    """What was wrong with the rows, for the operator: category -> list of items."""

    items: dict[str, list[str]] = field(default_factory=dict)

    def add(self, category: str, item: str) -> None:
        self.items.setdefault(category, []).append(item)


# Categories, in the order their warnings are shown.
NO_UUID = "skipped {n} device row(s) without a device_uuid"
NO_ADDRESS = (
    "skipped {n} device(s) with no address (no ansible_host column, metadata.ip_address or metadata.hostname)"
)
BAD_ADDRESS = (
    "skipped {n} device(s) whose address is neither an IP address nor a DNS hostname "
    "(device_uuid, the field and its value)"
)
CONTROLLER_NAME = (
    "skipped {n} device(s) named like the controller's implicit localhost "
    "(localhost, 127.0.0.1, ::1 in any case), which a registry row must never become"
)
BAD_TIMEZONE = (
    f"{{n}} device(s) have a timezone that is not an IANA zone and joined group {INVALID_TIMEZONE_GROUP}"
)
BAD_METADATA = "{n} device(s) have metadata that is not a JSON object; their metadata var is {{}}"
DUPLICATE_NAME = "{n} device(s) share a hostname with a device registered earlier and got a suffix"
DUPLICATE_ROW = "ignored {n} repeated row(s) for the same device_uuid"
CATEGORIES = (
    NO_UUID,
    NO_ADDRESS,
    BAD_ADDRESS,
    CONTROLLER_NAME,
    BAD_TIMEZONE,
    BAD_METADATA,
    DUPLICATE_NAME,
    DUPLICATE_ROW,
)


def device_from_row(row: Any, zones: frozenset[str], findings: Findings) -> Device | None:
    """The Device of one registry row, or None (and a finding) when the row cannot be a host."""
    if not isinstance(row, Mapping):
        findings.add(NO_UUID, f"a {type(row).__name__} instead of a row")
        return None
    name = _text(row.get("device_name"))
    uuid = _text(row.get("device_uuid"))
    if uuid is None or not uuid.strip():
        findings.add(NO_UUID, f"device_name {name!r}")
        return None
    uuid = uuid.strip()

    metadata = row.get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, Mapping):
        findings.add(BAD_METADATA, f"{uuid} ({_json_kind(metadata)})")
        metadata = {}
    found = _address(row.get("ansible_host"), metadata)
    if found is None:
        findings.add(NO_ADDRESS, uuid)
        return None
    address, source = found
    if not is_valid_address(address):
        findings.add(BAD_ADDRESS, f"{uuid} ({source} {address!r})")
        return None
    candidate = name.strip() if name and name.strip() else uuid
    if is_controller_name(candidate):
        findings.add(CONTROLLER_NAME, f"{uuid} ({candidate!r})")
        return None

    timezone = _text(row.get("timezone"))
    status = _text(row.get("status"))
    version = _text(row.get("current_version"))
    groups = []
    if status and group_part(status):
        groups.append("status_" + group_part(status))
    timezone_valid = timezone in zones
    if timezone_valid:
        groups.append("tz_" + group_part(timezone, lower=True))
    else:
        groups.append(INVALID_TIMEZONE_GROUP)
        findings.add(BAD_TIMEZONE, f"{uuid} ({timezone!r})")
    if version and group_part(version):
        groups.append("version_" + group_part(version))
    # push (a controller updates it over SSH) or pull (its own agent does); null is a push device.
    management = _text(row.get("management")) or "push"
    if group_part(management):
        groups.append("management_" + group_part(management))

    hostvars = {
        "device_uuid": uuid,
        "device_name": name,
        "timezone": timezone,
        "timezone_valid": timezone_valid,
        "device_status": status,
        "current_version": version,
        "last_seen": _text(row.get("last_seen")),
        "metadata": dict(metadata),
        "ansible_host": address,
        "voice_management": management,
    }
    return Device(uuid, candidate, _registered_key(row.get("registered_at")), hostvars, tuple(groups))


def devices_from_rows(rows: Iterable[Any], zones: frozenset[str], findings: Findings) -> list[Device]:
    """Usable devices, one per device_uuid, ordered by device_uuid."""
    seen: dict[str, Device] = {}
    for row in rows:
        device = device_from_row(row, zones, findings)
        if device is None:
            continue
        if device.uuid in seen:
            findings.add(DUPLICATE_ROW, device.uuid)
            continue
        seen[device.uuid] = device
    return [seen[uuid] for uuid in sorted(seen)]


def uuid_suffix(uuid: str) -> str:
    """The short hostname suffix of a device: the last letters/digits of its device_uuid.

    The tail, not the head: a UUID7 begins with its timestamp, so devices registered in the
    same minute share their first 8 characters but not their last.
    """
    alnum = _NOT_ALNUM.sub("", uuid).lower()
    return alnum[-SUFFIX_LENGTH:] if alnum else uuid


def assign_hostnames(devices: Iterable[Device], findings: Findings) -> dict[str, str]:
    """device_uuid -> unique hostname; deterministic whatever order the devices come in.

    First-registered devices (then smaller device_uuid) are served first. Pass 1 reserves every
    bare candidate name for its first holder, so a device never loses its own name to another
    device's suffixed one; pass 2 suffixes the rest.
    """
    ordered = sorted(devices, key=lambda d: (d.registered, d.uuid))
    names: dict[str, str] = {}
    holder: dict[str, str] = {}
    for device in ordered:
        if device.candidate not in holder:
            holder[device.candidate] = device.uuid
            names[device.uuid] = device.candidate
    for device in ordered:
        if device.uuid in names:
            continue
        options = [f"{device.candidate}-{uuid_suffix(device.uuid)}", f"{device.candidate}-{device.uuid}"]
        chosen = next((name for name in options if name not in holder), None)
        counter = 2
        while chosen is None:
            chosen = f"{device.candidate}-{device.uuid}-{counter}"
            chosen = None if chosen in holder else chosen
            counter += 1
        holder[chosen] = device.uuid
        names[device.uuid] = chosen
        findings.add(
            DUPLICATE_NAME,
            f"{device.uuid} is {chosen!r} ({device.candidate!r} is {holder[device.candidate]})",
        )
    return names


# --- reading the registry ------------------------------------------------------


class RegistryError(AnsibleError):
    """A failure reading the registry, worded for the operator; never carries the key."""


@dataclass(frozen=True)
class Settings:
    url: str
    key: str
    table: str
    statuses: tuple[str, ...]
    page_size: int
    timeout: float
    validate_certs: bool
    retries: int = 3

    @property
    def shown_url(self) -> str:
        return display_url(self.url)

    def cache_id(self) -> str:
        """What the cached rows depend on (never the key itself)."""
        material = json.dumps(
            {"url": self.url, "table": self.table, "statuses": self.statuses, "columns": COLUMNS},
            sort_keys=True,
        )
        return hashlib.sha256(material.encode()).hexdigest()[:20]


class RegistryReader:
    """Reads the device rows through the registry client, in as few requests as the server allows."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def rows(self) -> list[dict[str, Any]]:
        s = self.settings
        try:
            with registry.RegistryClient(
                s.url,
                s.key,
                retries=s.retries,
                timeout=s.timeout,
                validate_certs=s.validate_certs,
                user_agent=USER_AGENT,
            ) as client:
                rows = self._read(client)
        except registry.RegistryError as exc:
            raise RegistryError(str(exc)) from None
        return rows

    def _read(self, client: registry.RegistryClient) -> list[dict[str, Any]]:
        from postgrest.types import CountMethod  # noqa: PLC0415 (supabase-py: imported by the client)

        s = self.settings
        what = f"reading table {s.table!r}"
        rows: list[dict[str, Any]] = []
        total: int | None = None
        offset = 0
        previous_first: Any = None
        columns = list(COLUMNS)
        while True:
            query = client.table(s.table).select(
                ",".join(columns), count=CountMethod.exact if offset == 0 else None
            )
            query = query.in_("status", list(s.statuses)).order(ORDER_COLUMN)
            try:
                response = client.execute(what, query.range(offset, offset + s.page_size - 1), table=s.table)
            except registry.RegistryError as exc:
                if offset == 0 and exc.column in OPTIONAL_COLUMNS and exc.column in columns:
                    columns.remove(exc.column)
                    display.vvv(
                        f"supabase_devices: {s.table!r} has no {exc.column!r} column: read without it"
                    )
                    continue
                if exc.column:
                    raise registry.RegistryError(
                        f"{exc}; the inventory reads {', '.join(COLUMNS)}", column=exc.column
                    ) from None
                raise
            page = response.data
            if not isinstance(page, list):
                raise RegistryError(
                    f"{s.shown_url} answered {type(page).__name__} for table {s.table!r}, "
                    "not a list of rows: is this the URL of a Supabase project?"
                )
            if offset == 0:
                total = response.count
            first = page[0].get(ORDER_COLUMN) if page and isinstance(page[0], Mapping) else None
            if first is not None and first == previous_first:
                raise RegistryError(
                    f"{s.shown_url} answered the same page twice for table {s.table!r}: "
                    "it ignores offset and limit, so it is not PostgREST"
                )
            previous_first = first
            rows.extend(page)
            offset += len(page)
            # The count says where the end is, so the last page is the last request. A page
            # shorter than asked for is no end: servers cap pages (db-max-rows, 1000 on
            # Supabase) below page_size. Without a count (a proxy dropped Content-Range),
            # only an empty page is the end.
            if not page or (total is not None and offset >= total):
                break
        display.vvv(
            f"supabase_devices: {len(rows)} row(s) of {s.table!r} from {s.shown_url} "
            f"in {client.requests} request(s)"
        )
        return rows


# --- the plugin ------------------------------------------------------------------


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """One host per device of the Supabase registry."""

    NAME = "supabase_devices"

    def verify_file(self, path: str) -> bool:
        return bool(super().verify_file(path)) and str(path).endswith(CONFIG_SUFFIXES)

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        failures = _FAILURES.setdefault(getattr(inventory, "__wrapped__", inventory), {})
        if path in failures:
            raise AnsibleError(f"{failures[path]} (the same failure as above; not retried)")
        try:
            self._read_config_data(path)
            settings = self._settings(path)
            rows = self._rows(settings, use_cached=cache)
            self._populate(rows, Redactor(settings.key))
        except AnsibleError as exc:
            failures[path] = exc.message
            raise

    # -- options

    def _settings(self, path: str) -> Settings:
        url = (self.get_option("url") or "").strip()
        if not url:
            raise RegistryError(
                f"no registry URL: set url in {path} or the environment variable SUPABASE_URL"
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RegistryError(f"url {display_url(url)!r} is not an http(s) URL of a Supabase project")
        key = str(self.get_option("key") or "").strip()
        if not key:
            raise RegistryError(
                f"no registry key: set key in {path} or the environment variable SUPABASE_SERVICE_KEY"
            )
        if not _HEADER_SAFE_KEY.fullmatch(key):
            raise RegistryError(
                "the registry key contains spaces or control characters, which cannot be sent in an "
                "HTTP header: check the key option or SUPABASE_SERVICE_KEY (its value is not shown)"
            )
        table = (self.get_option("table") or "").strip()
        if not table:
            raise RegistryError(f"table must name the table of devices, got {self.get_option('table')!r}")
        statuses = self.get_option("statuses") or []
        if not statuses or not all(isinstance(s, str) and s.strip() for s in statuses):
            raise RegistryError(f"statuses must list at least one device status, got {statuses!r}")
        page_size = self.get_option("page_size")
        if page_size < 1:
            raise RegistryError(f"page_size must be at least 1, got {page_size!r}")
        timeout = self.get_option("timeout")
        if timeout <= 0:
            raise RegistryError(f"timeout must be a positive number of seconds, got {timeout!r}")
        retries = self.get_option("retries")
        if retries < 0:
            raise RegistryError(f"retries must be 0 or more, got {retries!r}")
        return Settings(
            retries=retries,
            url=url.rstrip("/"),
            key=key,
            table=table,
            statuses=tuple(dict.fromkeys(s.strip() for s in statuses)),
            page_size=page_size,
            timeout=float(timeout),
            validate_certs=bool(self.get_option("validate_certs")),
        )

    # -- rows, from the cache or the registry

    def _rows(self, settings: Settings, *, use_cached: bool) -> list[Any]:
        # The key follows what was read (url, table, statuses, columns), not the file's path, and
        # never holds the secret itself.
        cache_key = f"{self.NAME}_{settings.cache_id()}"
        caching = bool(self.get_option("cache"))
        if caching and use_cached:
            try:
                cached = self._cache[cache_key]
            except KeyError:
                cached = None
            if isinstance(cached, list):
                display.vvv(f"supabase_devices: {len(cached)} row(s) from the inventory cache")
                return cached
        rows = RegistryReader(settings).rows()
        if caching:
            self._cache[cache_key] = rows
        return rows

    # -- hosts and groups

    def _populate(self, rows: list[Any], redact: Callable[[str], str]) -> None:
        findings = Findings()
        # One zone database and "not a place" rule for the collection: the window filters'.
        devices = devices_from_rows(rows, timezone_names(), findings)
        hostnames = assign_hostnames(devices, findings)

        strict = self.get_option("strict")
        compose = self.get_option("compose")
        groups = self.get_option("groups")
        keyed_groups = self.get_option("keyed_groups")
        constructed = bool(compose or groups or keyed_groups)
        inventory = self.inventory
        # Both management groups always exist (maybe empty): the push plays exclude
        # `management_pull` by pattern, which must not warn on a fleet without pull devices.
        known_groups: dict[str, str] = {g: inventory.add_group(g) for g in MANAGEMENT_GROUPS}

        for device in devices:
            host = inventory.add_host(make_unsafe(hostnames[device.uuid]))
            for group in device.groups:
                name = known_groups.get(group)
                if name is None:
                    name = known_groups[group] = inventory.add_group(group)
                inventory.add_child(name, host)
            hostvars = make_unsafe(device.hostvars)
            for varname, value in hostvars.items():
                inventory.set_variable(host, varname, value)
            if constructed:
                self._set_composite_vars(compose, hostvars, host, strict=strict)
                self._add_host_to_composed_groups(groups, hostvars, host, strict=strict)
                self._add_host_to_keyed_groups(keyed_groups, hostvars, host, strict=strict)

        self._warn(findings, redact)

    def _warn(self, findings: Findings, redact: Callable[[str], str]) -> None:
        for category in CATEGORIES:
            items = findings.items.get(category)
            if not items:
                continue
            shown = items[:WARN_LIST_LIMIT]
            hidden = len(items) - len(shown)
            more = f"; and {hidden} more (-vvv lists them)" if hidden else ""
            headline = category.format(n=len(items))
            display.warning(redact(f"supabase_devices: {headline}: {'; '.join(shown)}{more}"))
            if more:
                display.vvv(redact(f"supabase_devices: {headline}: {'; '.join(items)}"))

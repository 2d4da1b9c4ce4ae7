"""Read an environment file in systemd's ``EnvironmentFile=`` syntax.

The same file feeds the service (systemd reads it) and the command line
(``--env-file``), so both must understand it the same way. Supported, as in
systemd: ``KEY=VALUE`` lines, blank lines, lines starting with ``#`` or ``;``,
values wrapped in single or double quotes (double quotes honour backslash
escapes), and a trailing backslash that continues a line. Not supported, as in
systemd: inline comments (``KEY=value # note`` keeps ``# note`` in the value)
and ``export``.
"""

from __future__ import annotations

import re
from pathlib import Path

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DOUBLE_QUOTE_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "$": "$", "`": "`"}


class EnvFileError(ValueError):
    """The file is missing, unreadable or has a line that is not KEY=VALUE."""


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner, out, i = value[1:-1], [], 0
        while i < len(inner):
            char = inner[i]
            if char == "\\" and i + 1 < len(inner):
                nxt = inner[i + 1]
                out.append(_DOUBLE_QUOTE_ESCAPES.get(nxt, "\\" + nxt))
                i += 2
                continue
            out.append(char)
            i += 1
        return "".join(out)
    return value


def parse_env_text(text: str, source: str = "<env>") -> dict[str, str]:
    """Parse the text of an environment file; errors name the line, never a value."""
    values: dict[str, str] = {}
    logical: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        line = raw if pending else raw.lstrip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending += line[:-1]
            continue
        logical.append((start, pending + line))
        pending = ""
    if pending:
        logical.append((start, pending))

    for number, line in logical:
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            shown = key if _KEY.match(key) else "this line"
            raise EnvFileError(
                f"{source}:{number}: expected KEY=VALUE, found {shown!s} without a valid 'KEY=' "
                "(systemd EnvironmentFile syntax: no 'export', no spaces in names)"
            )
        values[key] = _unquote(value.strip())
    return values


def read_env_file(path: Path) -> dict[str, str]:
    """Read ``path`` (systemd EnvironmentFile syntax) into a dict."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EnvFileError(f"environment file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvFileError(f"cannot read environment file {path}: {exc}") from exc
    return parse_env_text(text, str(path))

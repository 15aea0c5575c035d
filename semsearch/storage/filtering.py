"""Which documents a search looks in: ``Where``, and its translation into SQL over ``documents``.

Pure functions; the store runs the SQL. Paths are matched against the absolute paths the index
stores, so a relative pattern is taken relative to a base folder (the working directory, unless
the caller says otherwise).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from ..errors import InvalidOptionError

GLOB_FUNCTION = "semsearch_glob"  # the SQL function the store registers: (regex, path) -> 0/1
_GLOB_CHARS = re.compile(r"[*?\[]")
_TYPE = re.compile(r"^[a-z0-9]{1,16}$")
# suffixes that name one type of file
_ALIASES = {"md": ("md", "markdown"), "markdown": ("md", "markdown"), "htm": ("html", "htm", "xhtml")}
_ALIASES |= {"html": _ALIASES["htm"], "xhtml": _ALIASES["htm"], "txt": ("txt", "text"), "text": ("txt", "text")}
MAX_PATTERNS = 64  # path patterns in one filter
MAX_PATTERN_CHARS = 1_000  # characters in one path pattern
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class Where:
    """A filter on the documents searched; a document must pass every field that is set.

    ``paths``: a document matches any of them. A pattern with ``*``, ``?``, ``[...]`` or ``**``
    is a glob over the whole path (``*`` stays within one folder, ``**`` spans any number of
    them, a leading ``**/`` matches anywhere); one without is a prefix: that file, or everything
    under that folder. ``types``: file suffixes without the dot (``pdf``, ``md``; ``md`` also
    takes ``.markdown``, ``html`` ``.htm``). ``modified_after`` / ``modified_before``: the
    file's modification time when ingested, as seconds since the epoch, inclusive bounds.
    """

    paths: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    modified_after: float | None = None
    modified_before: float | None = None

    def __post_init__(self) -> None:
        for name in ("paths", "types"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,))
            elif not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        if any(not isinstance(p, str) or not p.strip() for p in self.paths):
            raise InvalidOptionError("A path filter must be a non-empty string")
        if len(self.paths) > MAX_PATTERNS:
            raise InvalidOptionError(f"At most {MAX_PATTERNS} path filters may be given; {len(self.paths)} were")
        for pattern in self.paths:
            if len(pattern) > MAX_PATTERN_CHARS:
                raise InvalidOptionError(f"A path filter may be at most {MAX_PATTERN_CHARS} characters long")
            if _GLOB_CHARS.search(pattern):
                compiled(glob_regex(pattern))  # an invalid pattern fails here, as the user's error
        if any(not isinstance(t, str) or not _TYPE.match(t.lower().lstrip(".")) for t in self.types):
            raise InvalidOptionError("A type filter is a file suffix such as 'pdf' or 'md'")

    @classmethod
    def of(cls, value: Where | Mapping[str, Any] | None) -> Where | None:
        """A Where from itself, a mapping of its fields (``path`` and ``type`` also accepted,
        dates as ISO 8601 strings or epoch seconds), or None."""
        if value is None or isinstance(value, Where):
            return value
        if not isinstance(value, Mapping):
            raise InvalidOptionError(f"where must be a Where or a mapping, not {type(value).__name__}")
        names = {f.name for f in fields(cls)}
        data = {{"path": "paths", "type": "types"}.get(key, key): item for key, item in value.items()}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidOptionError(f"Unknown filter {unknown[0]!r}; known: {', '.join(sorted(names))}")
        for key in ("modified_after", "modified_before"):
            if data.get(key) is not None:
                data[key] = parse_time(data[key])
        for key in ("paths", "types"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        return cls(**data)

    @property
    def empty(self) -> bool:
        return not (self.paths or self.types or self.modified_after is not None or self.modified_before is not None)


def parse_time(value: object, now: datetime | None = None) -> float:
    """Seconds since the epoch from a number, an ISO 8601 date or time (local time unless it
    says otherwise) or an age such as ``30d``, ``12h`` or ``2w`` (that long before ``now``)."""
    if isinstance(value, bool):
        raise InvalidOptionError(f"Not a time: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return _timestamp(value)
    text = str(value).strip()
    age = _DURATION.match(text)
    if age:
        # in seconds, not datetimes: an age past year 1 (schemathesis sent 826,111,344 days) is fine
        return (now or datetime.now()).timestamp() - float(age[1]) * _SECONDS[age[2]]
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidOptionError(
            f"Not a time: {text!r}; use an ISO date such as 2024-05-01, a time such as 2024-05-01T09:30, or an age "
            "such as 7d"
        ) from None
    return _timestamp(moment)


def _timestamp(moment: datetime) -> float:
    """Seconds since the epoch; a naive time is local time, except where local time cannot be
    worked out (year 1, say), where it is taken as UTC."""
    try:
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):
        return moment.replace(tzinfo=moment.tzinfo or timezone.utc).timestamp()


def to_sql(where: Where, base: str) -> tuple[str, list[Any]]:
    """A SQL condition over ``documents d`` for ``where``, and its parameters; relative path
    patterns are taken relative to ``base``."""
    clauses: list[str] = []
    params: list[Any] = []
    if where.paths:
        either = []
        for pattern in where.paths:
            if _GLOB_CHARS.search(pattern):
                either.append(f"{GLOB_FUNCTION}(?, d.path)")
                params.append(glob_regex(_absolute(pattern, base)))
            else:
                prefix = os.path.normpath(os.path.join(base, os.path.expanduser(pattern)))
                folder = os.fsencode(prefix.rstrip("/") + "/")
                # compared as bytes: a path that is not UTF-8 is kept as a BLOB of its bytes
                either.append("(CAST(d.path AS BLOB) = ? OR substr(CAST(d.path AS BLOB), 1, ?) = ?)")
                params.extend([os.fsencode(prefix), len(folder), folder])
        clauses.append("(" + " OR ".join(either) + ")")
    if where.types:
        suffixes = sorted(
            {s for t in where.types for s in _ALIASES.get(t.lower().lstrip("."), (t.lower().lstrip("."),))}
        )
        clauses.append("(" + " OR ".join("lower(d.path) LIKE ?" for _ in suffixes) + ")")
        params.extend(f"%.{s}" for s in suffixes)
    if where.modified_after is not None:
        clauses.append("d.mtime >= ?")
        params.append(where.modified_after)
    if where.modified_before is not None:
        clauses.append("d.mtime <= ?")
        params.append(where.modified_before)
    return " AND ".join(clauses) or "1", params


def _absolute(pattern: str, base: str) -> str:
    pattern = os.path.expanduser(pattern)
    if pattern.startswith("**") or os.path.isabs(pattern):
        return pattern
    return os.path.join(base, pattern)


def glob_regex(pattern: str) -> str:
    """An RE2 regular expression for a path glob: ``*`` and ``?`` within one folder, ``[...]`` a
    character class, ``**`` a whole component standing for any number of folders (several in a
    row count as one). RE2 matches in time linear in the path, whatever the pattern."""
    parts = pattern.split("/")
    parts = [p for i, p in enumerate(parts) if not (p == "**" and i and parts[i - 1] == "**")]
    out: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]*/)*")
        else:
            out.append(glob_component(part) + ("" if last else "/"))
    return "(?s)" + "".join(out)


def glob_component(part: str) -> str:
    """One path component of a glob as RE2 syntax: ``*``, ``?``, ``[...]`` (``[!...]`` or
    ``[^...]`` negated), ``\\x`` a literal x; nothing matches '/'."""
    out, i = [], 0
    while i < len(part):
        char, i = part[i], i + 1
        if char in "*?":
            out.append("[^/]*" if char == "*" else "[^/]")
        elif char == "\\" and i < len(part):
            out.append(re.escape(part[i]))
            i += 1
        elif char == "[" and (end := part.find("]", i + 1 + (part[i : i + 1] in ("!", "^")))) > 0:
            negate = part[i] in ("!", "^")
            out.append(_char_class(part[i + negate : end], negate))
            i = end + 1
        else:
            out.append(re.escape(char))
    return "".join(out)


def _char_class(body: str, negate: bool) -> str:
    """A glob's ``[...]`` as an RE2 class that never matches '/'; a reversed range is an error."""
    items: list[tuple[str, str]] = []  # (first, last) characters
    at = 0
    while at < len(body):
        if at + 2 < len(body) and body[at + 1] == "-":
            first, last = body[at], body[at + 2]
            if first > last:
                raise InvalidOptionError(f"Invalid path pattern: the range {first}-{last} in [{body}] is reversed")
            items.append((first, last))
            at += 3
        else:
            items.append((body[at], body[at]))
            at += 1
    if negate:
        return "[^" + "".join(_range(a, b) for a, b in items) + "/]"
    kept: list[tuple[str, str]] = []
    for first, last in items:  # cut '/' out of every range that holds it
        if first <= "/" <= last:
            kept += [(first, chr(ord("/") - 1))] if first < "/" else []
            kept += [(chr(ord("/") + 1), last)] if last > "/" else []
        else:
            kept.append((first, last))
    return "[" + "".join(_range(a, b) for a, b in kept) + "]" if kept else NOTHING


NOTHING = r"[^\x00-\x{10FFFF}]"  # an RE2 class no character is in


def _range(first: str, last: str) -> str:
    escape = lambda c: "\\" + c if c in "\\]^-[" else c  # noqa: E731
    return escape(first) if first == last else f"{escape(first)}-{escape(last)}"


@lru_cache(maxsize=256)
def compiled(regex: str) -> Any:
    """``regex`` compiled by RE2; InvalidOptionError when it is not a valid pattern."""
    import re2

    try:  # matched as UTF-8 bytes: google-re2 then skips its str-offset bookkeeping, twice as fast
        return re2.compile(regex.translate(_SURROGATES).encode("utf-8"))
    except re2.error as exc:
        raise InvalidOptionError(f"Invalid path pattern ({exc})") from None


# A file name's undecodable bytes are lone surrogates (U+DC80-U+DCFF), which RE2 cannot take:
# both patterns and paths carry them as private-use characters instead, one for one.
_SURROGATES = {0xDC80 + n: 0xF780 + n for n in range(128)}


def glob_match(regex: str, path: str | bytes) -> int:
    """The SQL function: 1 when ``path`` matches the whole of ``regex`` (from ``glob_regex``).
    Called once per document a filter looks at: kept lean."""
    if isinstance(path, bytes):  # a name that is not UTF-8: its bytes, as private-use characters
        path = os.fsdecode(path).translate(_SURROGATES)
    return compiled(regex).fullmatch(path.encode("utf-8")) is not None

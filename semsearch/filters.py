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
from datetime import datetime
from functools import lru_cache
from typing import Any

from .errors import InvalidOptionError
from .sources import glob_component

GLOB_FUNCTION = "semsearch_glob"  # the SQL function the store registers: (regex, path) -> 0/1
_GLOB_CHARS = re.compile(r"[*?\[]")
_TYPE = re.compile(r"^[a-z0-9]{1,16}$")
# suffixes that name one type of file
_ALIASES = {"md": ("md", "markdown"), "markdown": ("md", "markdown"), "htm": ("html", "htm", "xhtml")}
_ALIASES |= {"html": _ALIASES["htm"], "xhtml": _ALIASES["htm"], "txt": ("txt", "text"), "text": ("txt", "text")}
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
        return value.timestamp()
    text = str(value).strip()
    age = _DURATION.match(text)
    if age:
        # in seconds, not datetimes: an age past year 1 (schemathesis sent 826,111,344 days) is fine
        return (now or datetime.now()).timestamp() - float(age[1]) * _SECONDS[age[2]]
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidOptionError(
            f"Not a time: {text!r}; use an ISO date such as 2024-05-01, a time such as 2024-05-01T09:30, or an age "
            "such as 7d"
        ) from None


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
                folder = prefix.rstrip("/") + "/"
                either.append("(d.path = ? OR substr(d.path, 1, ?) = ?)")
                params.extend([prefix, len(folder), folder])
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
    """A regular expression for a path glob: ``*`` and ``?`` within one folder, ``[...]`` a
    character class, ``**`` a whole component standing for any number of folders."""
    parts = pattern.split("/")
    out: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]*/)*")
        else:
            out.append(glob_component(part) + ("" if last else "/"))
    return "".join(out) + r"\Z"


@lru_cache(maxsize=256)
def _compiled(regex: str) -> re.Pattern[str]:
    return re.compile(regex, re.DOTALL)


def glob_match(regex: str, path: str) -> int:
    """The SQL function: 1 when ``path`` matches the whole of ``regex`` (from ``glob_regex``)."""
    return int(_compiled(regex).match(path) is not None)

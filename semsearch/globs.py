"""Path globs as RE2 regular expressions: ``*`` and ``?`` within one folder, ``[...]`` classes,
``**`` across folders. RE2 matches in time linear in the path, whatever the pattern, so no pattern
can make a search backtrack for ever. Pure functions."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Any

from .errors import InvalidOptionError

MAX_PATTERNS = 64  # path patterns in one filter
MAX_PATTERN_CHARS = 1_000  # characters in one path pattern
_GLOB_CHARS = re.compile(r"[*?\[]")


def is_glob(pattern: str) -> bool:
    """Whether ``pattern`` is a glob (else a folder or file prefix)."""
    return _GLOB_CHARS.search(pattern) is not None


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


def re2_text(text: str) -> str:
    """``text`` as RE2 can take it: a name's undecodable bytes (lone surrogates) as private-use
    characters, one for one, so a pattern holding the same bytes still matches it."""
    return text.translate(_SURROGATES)


def glob_match(regex: str, path: str | bytes) -> int:
    """The SQL function: 1 when ``path`` matches the whole of ``regex`` (from ``glob_regex``).
    Called once per document a filter looks at: kept lean."""
    if isinstance(path, bytes):  # a name that is not UTF-8: its bytes, as private-use characters
        path = os.fsdecode(path).translate(_SURROGATES)
    return compiled(regex).fullmatch(path.encode("utf-8")) is not None

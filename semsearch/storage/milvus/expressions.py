"""A ``Where`` as a Milvus boolean expression over the fields ``path``, ``suffix`` and ``mtime``,
which chunks and ledger rows both carry (Milvus has no joins).

Milvus's LIKE cannot escape ``%`` and ``_`` reliably, and a bad escape crashes Milvus Lite (see
docs/milvus-lite-facts.md), so LIKE is never used: a folder prefix is a range
(``path >= "docs/" and path < "docs0"``, ``0`` being the character after ``/``), and a glob is
narrowed to the range of its literal leading folder, then matched exactly on the client
(``Where.admits``-style, through ``globs.glob_match``). Templated filters (``filter_params``)
are never used.

A string literal escapes ``\\`` and ``"`` and holds every other character as it is. Milvus's
grammar refuses a raw CR or LF inside a literal, and no escape means CR or LF to both parsers:
Milvus Lite 2.5 reads ``\\r`` as ``r`` (C++ ``std::quoted``), a Milvus server as CR (Go's
``strconv.Unquote``). So a path that holds CR or LF, or is not UTF-8, is stored as ``hex:`` and
its bytes (``stored_path``), never written in an expression as it is, and a folder's range is
given in both forms. Hex digits keep the bytes' order, so a folder's ``hex:`` range holds exactly
the encoded paths under it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from ...documents.formats import type_suffixes
from ...documents.reading import is_within
from ...globs import glob_match, glob_regex, is_glob
from ...query import Where
from ..filtering import glob_pattern, prefix_path

_WILDCARD = re.compile(r"[*?\[]")


HEX = "hex:"  # an absolute path never starts so


def expressible(text: str) -> bool:
    """Whether ``text`` can be a string literal that every Milvus reads back as it is: no CR or
    LF, and no lone surrogate (a file name's byte that is not UTF-8)."""
    if "\r" in text or "\n" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def literal(text: str) -> str:
    """A Milvus string literal for ``text``; ValueError for one that is not ``expressible``."""
    if not expressible(text):
        raise ValueError(f"{text!r} cannot be written in a Milvus expression; store it with stored_path")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def stored_path(path: str) -> str:
    """A path as kept in a VARCHAR: itself, or ``hex:`` and its bytes for one that is not
    ``expressible``."""
    return path if expressible(path) else HEX + os.fsencode(path).hex()


def loaded_path(value: str) -> str:
    """The path a stored value holds (``stored_path`` undone)."""
    return os.fsdecode(bytes.fromhex(value[len(HEX) :])) if value.startswith(HEX) else value


def under(folder: str, field: str = "path") -> str:
    """``field`` is ``folder`` itself or lies anywhere under it, stored as it is or as ``hex:``."""
    folder = folder.rstrip("/") or "/"
    if folder == "/":
        return f"{field} >= {literal('/')}"  # "hex:..." sorts after "/" too
    name = os.fsencode(folder)
    either = [_prefixed(field, HEX + name.hex(), HEX + (name + b"/").hex(), HEX + (name + b"0").hex())]
    if expressible(folder):  # else every path under it holds the same character and is hex too
        either.insert(0, _prefixed(field, folder, folder + "/", folder + "0"))
    return "(" + " or ".join(either) + ")"


def _prefixed(field: str, itself: str, low: str, high: str) -> str:
    return f"{field} == {literal(itself)} or ({field} >= {literal(low)} and {field} < {literal(high)})"


def to_expression(where: Where | None, base: str) -> tuple[str, Callable[[str], bool] | None]:
    """The expression for ``where`` (relative patterns taken from ``base``; "" when it lets
    everything through), and a check of a stored path that the client must still apply (for
    globs), or None."""
    if where is None or where.empty:
        return "", None
    clauses: list[str] = []
    regexes: list[str] = []
    if where.paths:
        either = []
        for pattern in where.paths:
            if is_glob(pattern):
                absolute = glob_pattern(pattern, base)
                regexes.append(glob_regex(absolute))
                literal_part = _WILDCARD.split(absolute, 1)[0]
                folder = literal_part.rpartition("/")[0]
                either.append(under(folder) if folder else 'path != ""')
            else:
                either.append(under(prefix_path(pattern, base)))
        clauses.append("(" + " or ".join(either) + ")")
    if where.types:
        suffixes = sorted({s for t in where.types for s in type_suffixes(t)})
        clauses.append("suffix in [" + ", ".join(literal(s) for s in suffixes) + "]")
    if where.modified_after is not None:
        clauses.append(f"mtime >= {float(where.modified_after):.6f}")
    if where.modified_before is not None:
        clauses.append(f"mtime <= {float(where.modified_before):.6f}")
    if not regexes:
        return " and ".join(clauses), None
    folders = [prefix_path(p, base) for p in where.paths if not is_glob(p)]

    def admits(path: str) -> bool:
        return any(glob_match(r, path) for r in regexes) or any(is_within(path, f) for f in folders)

    return " and ".join(clauses), admits


def suffix_of(path: str) -> str:
    """The type field of a path: its suffix, lower case, without the dot ('' for none)."""
    return os.path.splitext(path)[1].lower().lstrip(".")

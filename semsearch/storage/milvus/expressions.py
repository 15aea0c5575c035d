"""A ``Where`` as a Milvus boolean expression over the fields ``path``, ``suffix`` and ``mtime``,
which chunks and ledger rows both carry (Milvus has no joins).

Milvus's LIKE cannot escape ``%`` and ``_`` reliably, and a bad escape crashes Milvus Lite (see
docs/milvus-lite-facts.md), so LIKE is never used: a folder prefix is a range
(``path >= "docs/" and path < "docs0"``, ``0`` being the character after ``/``), and a glob is
narrowed to the range of its literal leading folder, then matched exactly on the client
(``Where.admits``-style, through ``globs.glob_match``). String literals are escaped as ``\\\\``,
``\\"`` and ``\\'`` only; templated filters (``filter_params``) are never used.
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


def literal(text: str) -> str:
    """A Milvus string literal for ``text``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'") + '"'


def under(folder: str, field: str = "path") -> str:
    """``field`` is ``folder`` itself or lies anywhere under it."""
    folder = folder.rstrip("/") or "/"
    if folder == "/":
        return f"{field} >= {literal('/')}"
    return (
        f"({field} == {literal(folder)} or ({field} >= {literal(folder + '/')} and {field} < {literal(folder + '0')}))"
    )


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

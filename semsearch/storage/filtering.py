"""A ``Where`` as SQL over the ``documents`` table, for the store to run.

Paths are matched against the absolute paths the index stores, so a relative pattern is taken
relative to a base folder (the working directory, unless the caller says otherwise). Globs go
through the SQL function ``GLOB_FUNCTION`` (``globs.glob_match``, RE2), prefixes, types and
times through plain SQL.
"""

from __future__ import annotations

import os
from typing import Any

from ..documents.formats import type_suffixes
from ..globs import glob_regex, is_glob
from ..query import Where

GLOB_FUNCTION = "semsearch_glob"  # the SQL function the store registers: (regex, path) -> 0/1


def to_sql(where: Where, base: str) -> tuple[str, list[Any]]:
    """A SQL condition over ``documents d`` for ``where``, and its parameters; relative path
    patterns are taken relative to ``base``."""
    clauses: list[str] = []
    params: list[Any] = []
    if where.paths:
        either = []
        for pattern in where.paths:
            if is_glob(pattern):
                either.append(f"{GLOB_FUNCTION}(?, d.path)")
                params.append(glob_regex(glob_pattern(pattern, base)))
            else:
                prefix = prefix_path(pattern, base)
                folder = os.fsencode(prefix.rstrip("/") + "/")
                # compared as bytes: a path that is not UTF-8 is kept as a BLOB of its bytes
                either.append("(CAST(d.path AS BLOB) = ? OR substr(CAST(d.path AS BLOB), 1, ?) = ?)")
                params.extend([os.fsencode(prefix), len(folder), folder])
        clauses.append("(" + " OR ".join(either) + ")")
    if where.types:
        suffixes = sorted({s for t in where.types for s in type_suffixes(t)})
        clauses.append("(" + " OR ".join("lower(d.path) LIKE ?" for _ in suffixes) + ")")
        params.extend(f"%.{s}" for s in suffixes)
    if where.modified_after is not None:
        clauses.append("d.mtime >= ?")
        params.append(where.modified_after)
    if where.modified_before is not None:
        clauses.append("d.mtime <= ?")
        params.append(where.modified_before)
    return " AND ".join(clauses) or "1", params


def prefix_path(pattern: str, base: str) -> str:
    """The absolute file or folder a prefix filter names, relative ones taken from ``base``."""
    return os.path.normpath(os.path.join(base, os.path.expanduser(pattern)))


def glob_pattern(pattern: str, base: str) -> str:
    """A glob filter as a pattern over absolute paths (one starting ``**`` matches anywhere)."""
    pattern = os.path.expanduser(pattern)
    if pattern.startswith("**") or os.path.isabs(pattern):
        return pattern
    return os.path.join(base, pattern)

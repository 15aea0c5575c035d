"""What index a location names, as one string two namings of the same index share.

A folder is known by its real path (relative or absolute, a trailing slash, a symbolic link: one
folder), a Milvus collection by its server's address, or its Lite file's real path, and its name
(the default collection filled in). Standard library only, nothing heavy: ``semsearch query``
uses it to find a running server before anything else is imported.
"""

from __future__ import annotations

import os
from pathlib import Path

from .milvus.connection import is_milvus, parse


def identity(location: str | os.PathLike[str]) -> str:
    """The index ``location`` names; equal for two locations of one index. InvalidOptionError
    for a malformed Milvus location."""
    if isinstance(location, str) and is_milvus(location):
        target = parse(location)
        if target.lite is not None:
            return f"milvus-lite:{os.path.realpath(target.lite)}/{target.collection}"
        scheme, _, address = target.uri.partition("://")
        return f"{scheme}://{address.lower()}/{target.collection}"
    return os.path.realpath(location)


def lite_file(location: str | os.PathLike[str]) -> Path | None:
    """The Milvus Lite file a location names (its real path); None for a folder or a server."""
    if isinstance(location, str) and location.startswith("milvus-lite:"):
        lite = parse(location).lite
        return Path(os.path.realpath(lite)) if lite is not None else None
    return None

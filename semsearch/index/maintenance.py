"""Taking documents out of an index, on any backend."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..documents.reading import is_within
from ..errors import SourceNotFoundError
from ..results import RemoveReport
from .backend import Backend


def remove(handle: Backend, paths: Sequence[str | os.PathLike[str]], missing_ok: bool = False) -> RemoveReport:
    """Take the documents at ``paths`` (files, or everything under folders) out of the index;
    SourceNotFoundError for a path with nothing indexed there, unless ``missing_ok``."""
    if missing_ok and handle.manifest is None:
        return RemoveReport(files_removed=0, chunks_removed=0, paths=[])
    with handle.lock():
        handle.require_manifest()
        documents = handle.documents_in([Path(os.path.abspath(p)) for p in paths])
        matched: list[str] = []
        for given in paths:
            target = os.path.abspath(given)
            found = [p for p in documents if is_within(p, target)]
            if not found and not missing_ok:
                raise SourceNotFoundError(f"Nothing indexed at {given}")
            matched.extend(p for p in found if p not in matched)
        chunks = handle.delete(matched)
        handle.save()
    return RemoveReport(files_removed=len(matched), chunks_removed=chunks, paths=matched)

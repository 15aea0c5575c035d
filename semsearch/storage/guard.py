"""SQLite's errors turned into semsearch's own, naming the file: locked, damaged, full,
read-only, used after closing. The store's every method goes through ``guard``."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..errors import IndexClosedError, IndexCorruptError, IndexLockedError, ReadOnlyIndexError
from .layout import disk_full, low_on_space

R = TypeVar("R")


class _HasPath(Protocol):
    path: Path


@contextmanager
def guard(path: Path) -> Iterator[None]:
    """Turn SQLite's errors about ``path`` into semsearch's, naming the file."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "full" in text or ("disk I/O error" in text and low_on_space(path)):
            raise disk_full(path, text) from exc
        if "readonly" in text or "read-only" in text:
            raise ReadOnlyIndexError(
                f"The index at {path.parent} is read-only (its folder or file cannot be written): searches work, "
                "writes need a writable copy"
            ) from exc
        if "locked" in text or "busy" in text:
            raise IndexLockedError(
                f"{path} is locked by another program ({text}); close it, or try again later"
            ) from exc
        if "unable to open" in text:
            raise IndexCorruptError(f"Cannot open {path}: {text}; check that it exists and is readable") from exc
        raise IndexCorruptError(f"{path}: {text}") from exc
    except sqlite3.ProgrammingError as exc:
        if "closed" in str(exc):
            raise IndexClosedError(f"{path} was used after the index was closed; open it again") from exc
        raise
    except sqlite3.DatabaseError as exc:
        if "full" in str(exc) or low_on_space(path):
            raise disk_full(path, str(exc)) from exc
        raise IndexCorruptError(
            f"{path} is damaged ({exc}); its contents cannot be trusted: rebuild the index into a new --index"
        ) from exc


def guarded(method: Callable[..., R]) -> Callable[..., R]:
    """A store method that turns SQLite's errors into semsearch's (``guard``)."""

    @functools.wraps(method)
    def call(self: _HasPath, *args: Any, **kwargs: Any) -> R:
        with guard(self.path):
            return method(self, *args, **kwargs)

    return call

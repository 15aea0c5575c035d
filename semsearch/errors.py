"""Typed errors: the library raises these, the CLI turns them into one `Error:` line."""

from __future__ import annotations


class SemsearchError(Exception):
    "Base class of every error semsearch reports to a user"


class ModelLoadError(SemsearchError):
    "The embedding model could not be found, fetched or assembled"


class ConversionError(ModelLoadError):
    "OpenVINO could not convert the model (an operation it lacks); PyTorch can still run it"


class UnsupportedModelError(ModelLoadError):
    "The model folder uses a sentence-transformers feature semsearch does not implement"


class IndexNotFoundError(SemsearchError):
    "No index exists at the given path"


class IndexClosedError(SemsearchError):
    "The index was used after it was closed"


class IndexCorruptError(SemsearchError):
    "An index file is unreadable or inconsistent"


class ModelMismatchError(SemsearchError):
    "The requested model differs from the one the index was built with"


class SourceNotFoundError(SemsearchError):
    "A path given to ingest or remove does not exist"


class NothingToIngestError(SemsearchError):
    "The given paths contain no readable text files"


class ChunkNotFoundError(SemsearchError):
    "No chunk with the given id is in the index (it may have been re-indexed since)"


class InvalidQueryError(SemsearchError):
    "A query is empty or otherwise unusable"


class InvalidOptionError(SemsearchError):
    "An option value is out of range or inconsistent with another"


class SameIndexError(InvalidOptionError):
    "A migration's source and target are one index"


class DatasetError(SemsearchError):
    "An evaluation dataset is missing files or malformed"


class MissingExtraError(SemsearchError):
    "A feature needs an optional package that is not installed"


class IndexLockedError(SemsearchError):
    "Another process is writing to the index"

    def __init__(self, message: str, waitable: bool = False) -> None:
        super().__init__(message)
        self.waitable = waitable  # waiting for it (``wait=True``; the CLI's --wait) would see it through


class Interrupted(SemsearchError):
    "Work stopped on request (Ctrl-C); everything committed before the stop is kept"

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        self.report = report  # for an ingest: the IngestReport of what was done before the stop


class PathNotAllowedError(SemsearchError):
    "A path outside the folders this server may ingest"


class DiskFullError(SemsearchError):
    "The disk holding the index has no room left for a write"


class ReadOnlyIndexError(SemsearchError):
    "The index's folder cannot be written: searches work, writes do not"


class WatchError(SemsearchError):
    "A watch that cannot go on: its watcher failed to start again, time after time"


def first_line(exc: BaseException) -> str:
    """An exception's message, first line only (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class MilvusError(SemsearchError):
    """Milvus could not be reached, or refused a request."""

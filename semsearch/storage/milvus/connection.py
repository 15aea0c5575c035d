"""Where a Milvus index is, and the connection to it.

Locations: ``milvus://HOST:PORT/COLLECTION`` (plain gRPC/HTTP, a standalone or a cluster),
``milvus+https://HOST:PORT/COLLECTION`` (TLS: Zilliz Cloud, a server behind a TLS proxy), and
``milvus-lite:PATH.db[/COLLECTION]`` (Milvus Lite, embedded: the engine runs as a child process
on a local file). The collection name defaults to ``semsearch``. Credentials come from the
environment variable ``SEMSEARCH_MILVUS_TOKEN`` (``user:password`` or an API key), never from the
location, so they never reach a command line, a log or the manifest.

Milvus Lite allows one process per file, and a refused process deletes the engine's lock file on
its way out (see docs/milvus-lite-facts.md); semsearch therefore holds a lock of its own beside
the file for as long as a process has it open, shared by every index of that process.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import IndexLockedError, InvalidOptionError, MilvusError, MissingExtraError
from ..locking import WriteLock

TOKEN_VARIABLE = "SEMSEARCH_MILVUS_TOKEN"
SCHEMES = ("milvus://", "milvus+https://", "milvus+http://", "milvus-lite:")
DEFAULT_COLLECTION = "semsearch"
_COLLECTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,180}$")
_LITE_FILE = re.compile(r"^[a-zA-Z0-9.\-_]{1,36}$")  # what Milvus Lite accepts as a file name
_REFUSED_FOR = 15.0  # seconds to wait for the server of a killed process to let go of a Lite file


def is_milvus(location: str) -> bool:
    return location.startswith(SCHEMES)


@dataclass(frozen=True)
class Target:
    """A parsed location: the client URI, the collection name, and the Lite file if embedded."""

    uri: str
    collection: str
    lite: Path | None = None
    scheme: str = "milvus"

    @property
    def shown(self) -> str:
        """The location in its full form, as given to ``--index`` (there is never a secret in it)."""
        if self.lite:
            return f"milvus-lite:{self.lite}/{self.collection}"
        return f"{self.scheme}://{self.uri.partition('://')[2]}/{self.collection}"


def parse(location: str) -> Target:
    """The ``Target`` a location names; InvalidOptionError for one that is malformed."""
    if location.startswith("milvus-lite:"):
        rest = location[len("milvus-lite:") :]
        path, collection = rest, DEFAULT_COLLECTION
        if not rest.endswith(".db") and "/" in rest:
            path, collection = rest.rsplit("/", 1)
        lite = Path(path).expanduser().resolve()
        if lite.suffix != ".db" or not _LITE_FILE.match(lite.name):
            raise InvalidOptionError(
                f"{location}: a Milvus Lite location is milvus-lite:PATH.db[/COLLECTION], the file name of "
                "letters, digits, '.', '-' or '_' (at most 36 characters), ending in .db"
            )
        return Target(str(lite), _collection(collection, location), lite)
    scheme, _, rest = location.partition("://")
    address, _, collection = rest.partition("/")
    if "@" in address:
        raise InvalidOptionError(
            f"Credentials do not belong in --index; put them in the environment variable {TOKEN_VARIABLE}"
        )
    if not address or ":" not in address:
        raise InvalidOptionError(f"{location}: give the server as {scheme}://HOST:PORT/COLLECTION")
    protocol = "https" if scheme == "milvus+https" else "http"
    return Target(f"{protocol}://{address}", _collection(collection or DEFAULT_COLLECTION, location), None, scheme)


def _collection(name: str, location: str) -> str:
    if not _COLLECTION.match(name):
        raise InvalidOptionError(
            f"{location}: the collection name {name!r} must start with a letter or '_' and hold only "
            "letters, digits and '_'"
        )
    return name


class Connection:
    """A ``MilvusClient`` for a target; for Lite, with this process's lock on the file."""

    def __init__(self, target: Target, wait: bool | float = False) -> None:
        self.target = target
        self.client: Any = None
        self._lite_key: str | None = None
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise MissingExtraError(
                "A Milvus index needs pymilvus: pip install 'semsearch[milvus]' (Milvus Lite also 'milvus-lite<3')"
            ) from None
        # its iterator warns on every Lite page, and it logs each failed call with a traceback
        # (the call raises, and reaches the user as one MilvusError line)
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
        if target.lite is not None:
            self._lite_key = _hold_lite(target.lite, wait)
        try:
            client = self._connect(MilvusClient)
            self.client = client if target.lite is None else _TriedOnce(client)
        except BaseException:
            self.close()
            raise

    def _connect(self, client_class: Any) -> Any:
        token = os.environ.get(TOKEN_VARIABLE, "")
        deadline = time.monotonic() + _REFUSED_FOR
        while True:
            try:
                with warnings.catch_warnings():  # milvus-lite 2.5 imports the deprecated pkg_resources
                    warnings.simplefilter("ignore", UserWarning)
                    return client_class(uri=self.target.uri, token=token, timeout=60)
            except Exception as exc:  # pymilvus raises its own, and grpc's, and OSError
                refused = "opened by another program" in str(exc)
                if refused and time.monotonic() < deadline:
                    time.sleep(0.5)  # the server of a killed process ends within seconds
                    continue
                what = "is held by another program" if refused else f"could not be reached: {_first_line(exc)}"
                raise MilvusError(f"Milvus at {self.target.shown} {what}") from None

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):  # closing a connection to a server already gone
                self.client.close()
            self.client = None
        if self._lite_key is not None:
            _let_go_lite(self._lite_key)
            self._lite_key = None


# MilvusClient's calls that reach the server. pymilvus tries a call up to 75 times, backing off
# to 3 s (about 3.5 minutes in all), on a gRPC error it does not know to be final, and pymilvus
# 2.5 on an unavailable server too. Milvus Lite's server is a child process that never comes back
# once it has ended (a bad LIKE escape crashes it), and answers every other error at once: on Lite
# a call is tried again once, 10 ms later (``retry_times=0`` would prefix every error, final or
# not, with "Retry run out of 0 retry times"). A server keeps the retries, which outlast a restart.
_CALLS = frozenset(
    {
        "create_collection",
        "create_index",
        "delete",
        "describe_collection",
        "describe_index",
        "drop_collection",
        "drop_index",
        "get",
        "has_collection",
        "hybrid_search",
        "insert",
        "load_collection",
        "query",
        "query_iterator",
        "release_collection",
        "search",
        "upsert",
    }
)


class _TriedOnce:
    """A ``MilvusClient`` whose calls to the server are retried once at most."""

    def __init__(self, client: Any) -> None:
        self.wrapped = client

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.wrapped, name)
        return functools.partial(found, retry_times=1) if name in _CALLS else found


# Milvus Lite files this process has open: path -> (our lock, how many connections use it)
_lite_held: dict[str, tuple[WriteLock, int]] = {}
_lite_mutex = threading.Lock()


def _hold_lite(path: Path, wait: bool | float) -> str:
    key = str(path)
    with _lite_mutex:
        if key in _lite_held:
            lock, users = _lite_held[key]
            _lite_held[key] = (lock, users + 1)
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = _LiteLock(path, wait)
        try:
            lock.acquire()
        except IndexLockedError:
            raise IndexLockedError(
                f"Milvus Lite file {path} is open in another process (Milvus Lite allows one); try again when "
                "it is done, or use a Milvus server for several processes",
                waitable=not wait,
            ) from None
        _lite_held[key] = (lock, 1)
        return key


def _let_go_lite(key: str) -> None:
    with _lite_mutex:
        lock, users = _lite_held[key]
        if users > 1:
            _lite_held[key] = (lock, users - 1)
            return
        del _lite_held[key]
        try:  # stop the engine's child process now rather than at interpreter exit
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(key)
        except Exception:  # an older or newer milvus-lite without it: it ends with the process
            pass
        lock.release()


class _LiteLock(WriteLock):
    """The lock beside a Lite file: ``.NAME.semsearch.lock``."""

    def __init__(self, path: Path, wait: bool | float) -> None:
        super().__init__(path.parent, wait)
        self.path = path.parent / f".{path.name}.semsearch.lock"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__

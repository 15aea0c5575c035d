"""How a running server is found: a record beside the index, written by ``serve`` once it
listens and removed when it stops. For a local index it is ``server.json`` in the index folder;
for a Milvus Lite index, ``.NAME.db.server.json`` beside the Lite file (one process holds a Lite
file, so one record serves every collection in it). A Milvus server has no local place: its
clients reach it themselves. The record holds the server's loopback address, its pid and the
index it serves, and nothing secret (the API key stays in the environment). Standard library
only: the command that reads it must start fast."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import SemsearchError
from ..storage.locations import identity, lite_file
from ..storage.milvus.connection import is_milvus

FILE = "server.json"


def record_file(location: str) -> Path | None:
    """Where the record of a server on the index at ``location`` lives; None for an index in a
    Milvus server, or a location that names no index."""
    try:
        lite = lite_file(location)
    except SemsearchError:  # a malformed location: no server serves it
        return None
    if lite is not None:
        return lite.parent / f".{lite.name}.{FILE}"
    return None if is_milvus(location) else Path(location) / FILE


def write(location: str, url: str) -> None:
    """Say that this process serves the index at ``location`` at ``url`` (atomically: a reader
    sees all or nothing)."""
    path = record_file(location)
    if path is None:
        return
    record = {"url": url, "pid": os.getpid(), "index": identity(location)}
    temporary = path.parent / f".{path.name}.{os.getpid()}"
    temporary.write_text(json.dumps(record), encoding="utf-8")
    os.replace(temporary, path)


def remove(location: str) -> None:
    """Take the record away, if it is still this process's."""
    path = record_file(location)
    found = _read(path) if path else None
    if path is not None and found is not None and found["pid"] == os.getpid():
        path.unlink(missing_ok=True)


def read(location: str) -> dict[str, Any] | None:
    """The record of a live server on loopback serving the index at ``location`` (however it is
    named: ``identity``); None when there is none."""
    path = record_file(location)
    found = _read(path) if path else None
    try:
        return found if found is not None and found["index"] == identity(location) else None
    except SemsearchError:
        return None


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        pid, url, index = int(record["pid"]), str(record["url"]), str(record["index"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not url.startswith("http://127.0.0.1:") and not url.startswith("http://[::1]:"):
        return None  # only a server on this machine's loopback is trusted with a query
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return {"url": url, "pid": pid, "index": index}


def loopback_url(host: str, port: int) -> str | None:
    """Where a client on this machine reaches a server bound to ``host``:``port``; None when not
    on loopback (a specific outside address) or when the port is chosen by the system (0)."""
    if port == 0:
        return None
    if host in ("127.0.0.1", "localhost", "0.0.0.0", "") or host.startswith("127."):
        return f"http://127.0.0.1:{port}"
    if host in ("::1", "::", "ip6-localhost"):
        return f"http://[::1]:{port}"
    return None

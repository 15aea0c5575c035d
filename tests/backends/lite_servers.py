"""The backends every contract test runs on, and the Milvus Lite servers tests start: a local
folder (SQLite + FAISS) and Milvus Lite 2.5 (the real Milvus engine, embedded as a child
``milvus`` process). Milvus Lite stands in for a Milvus server here: one process per file, so
"several processes" are several threads of one process sharing its server; a server or cluster
has no such limit. Each test must leave no ``milvus`` process behind: closing an index stops its
server, and the ``location`` fixture checks."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BACKENDS = ["local", "milvus-lite"]


def lite_servers(under: Path) -> list[int]:
    """Pids of Milvus Lite servers whose database lies under ``under`` (argv[1] is its path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 1 and argv[0].endswith(b"/milvus") and argv[1].startswith(os.fsencode(under)):
            found.append(int(entry.name))
    return found


def end_servers(under: Path, wait: float = 5.0) -> list[int]:
    """Wait for the servers under ``under`` to end (a killed parent's does by itself), then kill
    those left; returns the pids that had to be killed."""
    deadline = time.monotonic() + wait
    while lite_servers(under) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = lite_servers(under)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def location_for(backend: str, folder: Path, name: str = "index") -> str:
    if backend == "local":
        return str(folder / name)
    pytest.importorskip("milvus_lite")
    pytest.importorskip("pymilvus")
    return f"milvus-lite:{folder / name}.db"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def location(backend: str, tmp_path: Path) -> Iterator[str]:
    yield location_for(backend, tmp_path)
    assert end_servers(tmp_path, wait=2.0) == [], "a test left a Milvus Lite server running"

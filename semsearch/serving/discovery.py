"""How a running server is found: ``server.json`` in the index folder, written by ``serve`` once
it listens and removed when it stops. It holds the server's loopback address, its pid and the
index it serves, and nothing secret (the API key stays in the environment). Standard library
only: the command that reads it must start fast."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FILE = "server.json"


def write(folder: Path, url: str, index: str) -> None:
    """Say that this process serves ``index`` at ``url`` (atomically: a reader sees all or nothing)."""
    record = {"url": url, "pid": os.getpid(), "index": os.path.realpath(index)}
    temporary = folder / f".{FILE}.{os.getpid()}"
    temporary.write_text(json.dumps(record), encoding="utf-8")
    os.replace(temporary, folder / FILE)


def remove(folder: Path) -> None:
    """Take the record away, if it is still this process's."""
    found = read(folder)
    if found is not None and found.get("pid") == os.getpid():
        (folder / FILE).unlink(missing_ok=True)


def read(folder: Path) -> dict[str, Any] | None:
    """The record of a server on ``folder`` whose process is alive; None when there is none."""
    try:
        record = json.loads((folder / FILE).read_text(encoding="utf-8"))
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

"""A ``semsearch serve`` process on loopback for the server's and the search page's tests:
started on a free port, up and answering before it is handed over, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    index: Path
    root: Path
    log: Path

    def post(self, path: str, body: object, **kwargs: object) -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=60, **kwargs)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(index: Path, root: Path, log: Path, *extra: str, env: dict[str, str] | None = None) -> Server:
    """A server process, up and answering; another port is tried when the one picked was taken
    meanwhile (tests run in parallel workers)."""
    for _ in range(5):
        try:
            return _start(index, root, log, *extra, env=env)
        except PortTaken:
            continue
    raise AssertionError("no free port found in five tries")


class PortTaken(Exception):
    pass


def _start(index: Path, root: Path, log: Path, *extra: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "semsearch", "serve", "--index", str(index), "--port", str(port)]
    command += ["--root", str(root), "--device", "cpu", *extra]
    with open(log, "wb") as out:
        # offline: a reranker named by a hub id is checked against the cache alone
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)
    server = Server(f"http://127.0.0.1:{port}", process, index, root, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if "address already in use" in log.read_text().lower():
                raise PortTaken
            raise AssertionError(f"the server exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"the server did not come up: {log.read_text()}")


def stop(server: Server) -> None:
    server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()

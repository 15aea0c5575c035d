"""The ``semsearch`` command: its commands, in the order its help lists them, and the console
entry point. Each command parses its flags, calls one library function and prints; ``base``
holds what they share, ``render`` what they print."""

from __future__ import annotations

import os
import sys
from contextlib import suppress

from . import admin, evaluate, ingest, mcp, search, serve, watch
from .base import Command, app

for name, function in (
    ("ingest", ingest.ingest),
    ("watch", watch.watch),
    ("query", search.query),
    ("info", admin.info),
    ("repair", admin.repair),
    ("remove", admin.remove),
    ("migrate", admin.migrate),
    ("eval", evaluate.evaluate),
    ("serve", serve.serve),
    ("mcp", mcp.mcp),
):
    app.command(name, cls=Command)(function)

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``semsearch`` console script.

    Every command has closed its index, committed and synced its files by the time ``app``
    returns, so the process ends there without tearing the interpreter down: freeing torch's and
    transformers' modules one by one took about a second, a fifth of a cold query.
    """
    try:
        app()
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
        if isinstance(exit.code, str):
            print(exit.code, file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError):  # a closed pipe (`semsearch query ... | head`): nobody reads any more
            stream.flush()
    os._exit(code)

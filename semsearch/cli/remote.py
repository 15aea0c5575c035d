"""``semsearch query`` through a running ``semsearch serve`` on the same index.

A cold query spends seconds importing torch and loading the model; a server on this machine has
both loaded (and on a Milvus Lite file, holds the file: no other process may open it). When the
record beside the index (``serving/discovery.py``: ``server.json`` in a local index's folder,
``.NAME.db.server.json`` beside a Lite file) names a live process on loopback serving this very
index, the queries go to its ``POST /search`` and the hits come back as the library's ``Hit``,
printed exactly as an in-process answer would be.
Anything unexpected (no server, a dead one, another index, options beyond what the server takes,
an error) returns None and the query is answered in process, which then says what is wrong.
Standard library only, and nothing heavy imported: the whole point is to start fast.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import fields
from typing import Any

from ..globs import is_glob
from ..query import parse_time
from ..results import Hit
from ..serving import discovery

MAX_QUERIES = 32  # the server's limit on queries in one request
TIMEOUT = 300.0  # seconds a search may take (a deep rerank on a CPU is slow)
_HIT_FIELDS = {f.name for f in fields(Hit)}


def search(index: str, queries: list[str], options: dict[str, Any]) -> tuple[str, list[list[Hit]], list[str]] | None:
    """(model, hits of each query, notes) from the server on ``index``; None to answer in process."""
    found = discovery.read(index)
    if found is None:
        return None
    try:
        body = _body(options)
    except Exception:  # a bad option: the in-process path reports it as it always has
        return None
    model, hits, notes = "", [], []
    for first in range(0, len(queries), MAX_QUERIES):
        answer = _post(found["url"] + "/search", {"query": queries[first : first + MAX_QUERIES], **body})
        if answer is None or len(answer.get("results", ())) != len(queries[first : first + MAX_QUERIES]):
            return None
        model = answer["model"]
        notes += [note for note in answer.get("notes", []) if note not in notes]
        hits += [[_hit(h) for h in result["hits"]] for result in answer["results"]]
    return model, hits, notes


def _body(options: dict[str, Any]) -> dict[str, Any]:
    """The request's options: path filters made absolute from this working directory (the server
    takes relative ones from its own), times as epoch seconds, unset ones left out."""
    from ..storage.filtering import glob_pattern, prefix_path

    where = dict(options.get("where") or {})
    cwd = os.getcwd()
    paths = [glob_pattern(p, cwd) if is_glob(p) else prefix_path(p, cwd) for p in where.get("paths") or ()]
    filters: dict[str, Any] = {"paths": paths, "types": list(where.get("types") or ())}
    for name in ("modified_after", "modified_before"):
        if where.get(name) is not None:
            filters[name] = parse_time(where[name])
    body = {name: value for name, value in options.items() if name != "where" and value is not None}
    return {**body, "where": filters}


def _post(url: str, body: dict[str, Any]) -> dict[str, Any] | None:
    headers = {"Content-Type": "application/json"}
    if key := os.environ.get("SEMSEARCH_API_KEY"):
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, json.dumps(body).encode("utf-8"), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - loopback, from server.json
            answer = json.loads(response.read().decode("utf-8", "surrogateescape"))
    except (urllib.error.URLError, OSError, ValueError):  # refused, an HTTP error, a bad body
        return None
    return answer if isinstance(answer, dict) else None


def _hit(data: dict[str, Any]) -> Hit:
    known = {name: value for name, value in data.items() if name in _HIT_FIELDS}
    known["highlights"] = tuple(tuple(span) for span in known.get("highlights", ()))
    known["chunk_ids"] = tuple(known.get("chunk_ids", ()))
    return Hit(**known)

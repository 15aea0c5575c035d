"""Checking and repairing a Milvus index: the invariants a reader relies on, proven by reading
every ledger row and every chunk row's (id, path, version, seq), and the rows a crash or a lost
race leaves behind deleted. Nothing is re-embedded: a document whose current version lost chunks
is taken out of the ledger, so the next ingest embeds it again."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import Manifest
from ..documents.terms import indexed
from ..results import Check
from ..storage.milvus.expressions import expressible
from ..storage.milvus.store import LEDGER_FIELDS, MilvusStore, clip

TERMS_SAMPLE = 2_000  # chunks whose stored terms are compared with their text, at most


@dataclass
class Survey:
    """What a full read of the ledger and the chunk rows found."""

    current: dict[str, dict[str, Any]] = field(default_factory=dict)  # stored path -> newest live row
    superseded: list[int] = field(default_factory=list)  # ledger keys of older rows and old removals
    orphans: list[int] = field(default_factory=list)  # chunk ids of versions not current
    repeated: list[int] = field(default_factory=list)  # chunk ids stored more than once
    broken: list[str] = field(default_factory=list)  # stored paths whose current chunks are not whole
    chunks: int = 0
    sample: list[int] = field(default_factory=list)


def survey(store: MilvusStore) -> Survey:
    found = Survey()
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in store.scan(store.ledger_name, "version >= 0", [*LEDGER_FIELDS, "key"]):
        rows[row["path"]].append(row)
    for path, versions in rows.items():
        versions.sort(key=lambda r: r["version"])
        newest = versions[-1]
        found.superseded += [r["key"] for r in versions[:-1]]
        if newest["deleted"] or not expressible(path):  # see MilvusData._ledger
            found.superseded.append(newest["key"])
        else:
            found.current[path] = newest
    seqs: dict[str, list[int]] = defaultdict(list)
    ids: Counter[int] = Counter()
    for row in store.scan(store.chunks_name, "id >= 0", ["id", "path", "version", "seq"]):
        ids[int(row["id"])] += 1
        live = found.current.get(row["path"])
        if live is None or live["version"] != row["version"]:
            found.orphans.append(int(row["id"]))
        else:
            seqs[row["path"]].append(int(row["seq"]))
            if len(found.sample) < TERMS_SAMPLE:
                found.sample.append(int(row["id"]))
    found.repeated = [i for i, n in ids.items() if n > 1]
    found.broken = [p for p, r in found.current.items() if sorted(seqs.get(p, [])) != list(range(int(r["chunks"])))]
    found.chunks = sum(len(s) for s in seqs.values())
    return found


def checks(store: MilvusStore, manifest: Manifest) -> list[Check]:
    """Every invariant: each current document's chunks present exactly once, with vectors and
    terms; no id twice. Rows of versions not current (a killed writer's, or superseded ones not
    yet deleted) are told, not failed: readers never see them."""
    found = survey(store)
    mend = "; run 'semsearch repair'"

    def check(name: str, count: int, what: str) -> Check:
        return Check(name, count == 0, f"{count} {what}{mend}" if count else "")

    result = [check("every document's chunks present, once each", len(found.broken), "documents not whole")]
    result.append(check("no chunk id twice", len(found.repeated), "ids stored more than once"))
    # rows of versions not current are invisible to readers: garbage, not damage (repair deletes them)
    garbage = f"{len(found.orphans)} chunk rows and {len(found.superseded)} ledger rows of versions not current"
    left = bool(found.orphans or found.superseded)
    result.append(
        Check("only current versions stored", True, f"{garbage}; 'semsearch repair' deletes them" if left else "")
    )
    dimension = manifest.model.dimension
    rows = store.by_ids(store.chunks_name, found.sample, ["id", "text", "terms", "vector"])
    bad_terms = sum(1 for r in rows if r["terms"] != clip(indexed(r["text"])))
    bad_vectors = sum(1 for r in rows if len(r["vector"]) != dimension or not np.isfinite(r["vector"]).all())
    result.append(check("chunks carry their lexical terms", bad_terms, f"of {len(rows)} sampled differ"))
    result.append(check("chunks carry finite vectors", bad_vectors, f"of {len(rows)} sampled are bad"))
    return result


def reterm(store: MilvusStore) -> int:
    """Write again, whole, every chunk row whose stored terms are not its text's terms now (an
    index from before a change to folding); how many. A row whose version another writer deletes
    meanwhile can come back as a version not current: invisible to readers, and repair deletes it."""
    stale = [
        int(row["id"])
        for row in store.scan(store.chunks_name, "id >= 0", ["id", "text", "terms"])
        if row["terms"] != clip(indexed(row["text"]))
    ]
    fields = [f["name"] for f in store.client.describe_collection(store.chunks_name)["fields"] if f["name"] != "sparse"]
    for first in range(0, len(stale), 512):
        rows = store.by_ids(store.chunks_name, stale[first : first + 512], fields)
        for row in rows:
            row["terms"] = clip(indexed(row["text"]))
        store.upsert(store.chunks_name, rows)  # BM25's sparse vector is computed again from the terms
    return len(stale)


def repair(store: MilvusStore) -> int:
    """Delete orphan versions, superseded ledger rows and repeated rows (one copy put back), and
    take documents that are not whole out of the ledger; how many documents that was."""
    found = survey(store)
    for first in range(0, len(found.orphans), 1_000):
        store.delete(store.chunks_name, f"id in [{', '.join(map(str, found.orphans[first : first + 1_000]))}]")
    for first in range(0, len(found.superseded), 256):
        keys = ", ".join(str(k) for k in found.superseded[first : first + 256])
        store.delete(store.ledger_name, f"key in [{keys}]")
    if found.repeated:
        described = store.client.describe_collection(store.chunks_name)
        fields = [f["name"] for f in described["fields"] if f["name"] != "sparse"]  # BM25's output is computed
        copies = {int(r["id"]): r for r in store.by_ids(store.chunks_name, found.repeated, fields)}
        store.delete(store.chunks_name, f"id in [{', '.join(map(str, copies))}]")
        store.insert(store.chunks_name, list(copies.values()))
    broken = [found.current[p] for p in found.broken]
    for first in range(0, len(broken), 256):
        keys = ", ".join(str(r["key"]) for r in broken[first : first + 256])
        store.delete(store.ledger_name, f"key in [{keys}]")
    return len(broken)

"""Retrieval quality on a BEIR-layout dataset: index its corpus, run its queries, score the ranking.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``,
``text``) and ``qrels/<split>.tsv`` (query-id, corpus-id, score, with a header line). Each corpus
entry becomes one file (title, a blank line, text) ingested through the ordinary ingest, so what
is measured is what users get: the same chunking, embedding and index. Chunk hits are mapped to
their documents, each document ranked by its best chunk. The metrics come from ir-measures
(pytrec_eval underneath), not from code of our own.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DatasetError, InvalidOptionError, MissingExtraError
from .query import MODES, RERANK_DEPTH, RRF_K

if TYPE_CHECKING:
    from .index import Index

MEASURES = ("nDCG@10", "R@10", "R@100", "RR@10")
CHUNKS_PER_QUERY = 100  # chunk hits fetched per query, before they are folded into documents


@dataclass(frozen=True)
class Dataset:
    """A BEIR dataset in memory: corpus id -> (title, text), query id -> text, and judgements."""

    name: str
    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id -> {corpus id: relevance}


@dataclass
class EvalReport:
    """Scores of one evaluation run, and what it ran on."""

    dataset: str
    model: str
    mode: str
    documents: int
    queries: int
    reranker: str | None = None  # the cross-encoder that rescored the mode's candidates, if any
    metrics: dict[str, float] = field(default_factory=dict)  # MEASURES -> mean over the queries
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50, p95, mean of one query
    index_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_beir(folder: str | os.PathLike[str], split: str = "test") -> Dataset:
    """Read a BEIR folder; DatasetError names what is missing or malformed."""
    root = Path(folder)
    qrels_file = root / "qrels" / f"{split}.tsv"
    for path in (root / "corpus.jsonl", root / "queries.jsonl", qrels_file):
        if not path.is_file():
            raise DatasetError(f"{root} is not a BEIR dataset: {path.relative_to(root)} is missing")
    corpus = {
        str(row["_id"]): (str(row.get("title") or ""), str(row.get("text") or ""))
        for row in _jsonl(root / "corpus.jsonl")
    }
    queries = {str(row["_id"]): str(row["text"]) for row in _jsonl(root / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_file, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            fields = line.rstrip("\n").split("\t")
            if number == 1 and len(fields) == 3 and not fields[2].lstrip("-").isdigit():
                continue  # the header line: query-id, corpus-id, score
            if len(fields) != 3 or not fields[2].lstrip("-").isdigit():
                raise DatasetError(f"{qrels_file}:{number}: expected query-id, corpus-id, score separated by tabs")
            qrels.setdefault(fields[0], {})[fields[1]] = int(fields[2])
    judged = {
        q: docs for q, docs in qrels.items() if queries.get(q, "").strip() and any(score > 0 for score in docs.values())
    }
    if not judged:
        raise DatasetError(f"{qrels_file} judges none of the queries in queries.jsonl")
    return Dataset(root.resolve().name, corpus, {q: queries[q] for q in judged}, judged)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict) or "_id" not in row or ("text" not in row and "title" not in row):
                raise DatasetError(f"{path}:{number}: expected an object with _id and text")
            rows.append(row)
    return rows


def subset(dataset: Dataset, limit: int) -> Dataset:
    """The first ``limit`` judged queries, with the whole corpus (the candidates stay the same)."""
    kept = dict(list(dataset.queries.items())[:limit])
    return Dataset(dataset.name, dataset.corpus, kept, {q: dataset.qrels[q] for q in kept})


def write_corpus(dataset: Dataset, folder: Path) -> dict[str, str]:
    """One text file per corpus entry under ``folder``; returns file path -> corpus id. A file
    is named by a hash of its id (ids may hold any character), so a kept folder stays valid when
    entries are added or removed; files of entries no longer in the corpus are deleted."""
    import hashlib

    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    for doc_id, (title, text) in dataset.corpus.items():
        path = folder / f"{hashlib.sha256(doc_id.encode()).hexdigest()[:24]}.txt"
        body = f"{title}\n\n{text}" if title else text
        if not path.exists() or path.read_text(encoding="utf-8") != body:
            path.write_text(body, encoding="utf-8")
        paths[str(path.resolve())] = doc_id
    for stale in folder.glob("*.txt"):
        if str(stale.resolve()) not in paths:
            stale.unlink()
    return paths


def evaluate(
    dataset: Dataset,
    model: str | None = None,
    *,
    modes: Sequence[str] = ("dense",),
    rrf_k: int = RRF_K,
    device: str = "auto",
    fp32: bool = False,
    precision: str = "auto",
    runtime: str = "auto",
    workdir: str | os.PathLike[str] | None = None,
    progress: bool | None = False,
    location: str | os.PathLike[str] | None = None,
    rerank: str | None = None,
    rerank_depth: int = RERANK_DEPTH,
) -> list[EvalReport]:
    """Index ``dataset``'s corpus with ``model`` (see ``open_index``), run every query one at a
    time in each search mode of ``modes`` and score the document rankings: one report a mode,
    and with ``rerank`` (a cross-encoder) a second one for the mode reranked (its first
    max(``rerank_depth``, 100) candidates rescored: Recall@100 needs 100).
    The corpus files and the index go under ``workdir`` (kept, and reused by the next run: an
    unchanged corpus is not embedded again), else into a temporary folder removed at the end;
    ``location`` puts the index elsewhere (a folder or a Milvus location)."""
    measures = _measures()  # first: a missing ir-measures is a MissingExtraError, not an ImportError
    import ir_measures

    from .index import open_index

    unknown = [mode for mode in modes if mode not in MODES]
    if unknown or not modes:
        raise InvalidOptionError(f"Unknown search mode {unknown[0] if unknown else ''!r}; use {', '.join(MODES)}")
    qrels = [ir_measures.Qrel(q, d, score) for q, docs in dataset.qrels.items() for d, score in docs.items()]
    reports = []
    with tempfile.TemporaryDirectory(prefix="semsearch-eval-") as scratch:
        root = Path(workdir) if workdir is not None else Path(scratch)
        paths = write_corpus(dataset, root / "corpus")
        where = location if location is not None else root / "index"
        with open_index(where, model, device=device, fp32=fp32, precision=precision, runtime=runtime) as index:
            started = time.perf_counter()
            index.ingest([root / "corpus"], progress=progress, max_file_bytes=None)
            index_seconds = time.perf_counter() - started
            for mode, reranker in [(m, r) for m in modes for r in ((None, rerank) if rerank else (None,))]:
                options = {"mode": mode, "rrf_k": rrf_k, "rerank": reranker, "rerank_depth": rerank_depth}
                run, latencies = _run_queries(index, dataset, paths, options, progress)
                scores = ir_measures.calc_aggregate(measures, qrels, run)
                milliseconds = [seconds * 1000 for seconds in latencies]
                reports.append(
                    EvalReport(
                        dataset=dataset.name,
                        model=index.manifest.model.model if index.manifest else "",
                        mode=mode,
                        reranker=reranker,
                        documents=len(dataset.corpus),
                        queries=len(dataset.queries),
                        metrics={str(m): round(float(scores.get(m, 0.0)), 4) for m in measures},
                        latency_ms={
                            "p50": round(statistics.median(milliseconds), 2),
                            "p95": round(float(np.percentile(milliseconds, 95)), 2),
                            "mean": round(statistics.fmean(milliseconds), 2),
                        },
                        index_seconds=round(index_seconds, 2),
                    )
                )
    return reports


def _run_queries(
    index: Index, dataset: Dataset, paths: dict[str, str], options: dict[str, Any], progress: bool | None
) -> tuple[list[Any], list[float]]:
    """The ranked documents of each query (ir-measures ScoredDocs) and each query's latency."""
    import ir_measures
    from tqdm.auto import tqdm

    from .config import tqdm_disable

    run: list[Any] = []
    latencies: list[float] = []
    index.search("warm-up", k=1, **options)  # loads what the mode needs before the clock starts
    label = options["mode"] + (" + rerank" if options["rerank"] else "")
    queries = tqdm(dataset.queries.items(), desc=f"Querying ({label})", unit="query", disable=tqdm_disable(progress))
    for query_id, text in queries:
        started = time.perf_counter()
        hits = index.search(text, k=CHUNKS_PER_QUERY, **options)
        latencies.append(time.perf_counter() - started)
        best: dict[str, float] = {}
        for hit in hits:  # best first: a document's first hit is its best chunk
            doc_id = paths.get(hit.source)
            if doc_id is not None and doc_id not in best:
                best[doc_id] = hit.score
        run.extend(ir_measures.ScoredDoc(query_id, doc_id, score) for doc_id, score in best.items())
    return run, latencies


def _measures() -> list[Any]:
    try:
        import ir_measures
    except ImportError:
        raise MissingExtraError("semsearch eval needs ir-measures: pip install 'semsearch[eval]'") from None
    return [ir_measures.parse_measure(name) for name in MEASURES]

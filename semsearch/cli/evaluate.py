"""``semsearch eval``: retrieval quality on a BEIR dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..query import MODES, RERANK_DEPTH, RRF_K, Query, option_of
from .base import DeviceOption, Fp32Option, JsonOption, ModelOption, PrecisionOption, RuntimeOption, errors
from .render import print_json

_RRF_K = option_of(Query, "rrf_k")  # as the query command offers it
_RERANK, _DEPTH = option_of(Query, "rerank"), option_of(Query, "rerank_depth")


def _modes(values: list[str] | None) -> list[str] | None:
    for value in values or ():
        if value not in MODES:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(map(repr, MODES))}")
    return values


def evaluate(
    dataset: Annotated[
        Path,
        typer.Argument(help="A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.", metavar="DATASET"),
    ],
    mode: Annotated[
        Optional[list[str]],
        typer.Option(
            "--mode",
            metavar="[" + "|".join(MODES) + "]",
            callback=_modes,
            help="Search mode to evaluate; repeatable (default: all three).",
            show_default=False,
        ),
    ] = None,
    rrf_k: Annotated[
        int, typer.Option("--rrf-k", min=_RRF_K.low, max=_RRF_K.high, metavar="N", help=_RRF_K.help)
    ] = RRF_K,
    rerank: Annotated[
        Optional[str],
        typer.Option(
            "--rerank",
            metavar="[MODEL]",
            help="Also measure each mode reranked by this cross-encoder (default model: " + _RERANK.flag_value + ").",
        ),
    ] = None,
    rerank_depth: Annotated[
        int,
        typer.Option(
            "--rerank-depth",
            min=1,
            max=_DEPTH.high,
            metavar="N",
            help=_DEPTH.help + " eval rescores at least 100: Recall@100 needs them.",
        ),
    ] = RERANK_DEPTH,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    fp32: Fp32Option = False,
    precision: PrecisionOption = "auto",
    runtime: RuntimeOption = "auto",
    limit: Annotated[
        Optional[int],
        typer.Option("--limit", min=1, metavar="N", help="Only the first N judged queries (a quick check)."),
    ] = None,
    split: Annotated[str, typer.Option("--split", metavar="NAME", help="Which qrels file: qrels/NAME.tsv.")] = "test",
    workdir: Annotated[
        Optional[Path],
        typer.Option(
            "--workdir",
            metavar="DIR",
            help="Keep the corpus files and the index here, and reuse them next time (default: a temporary folder).",
            show_default=False,
        ),
    ] = None,
    index: Annotated[
        Optional[str],
        typer.Option(
            "--index",
            metavar="DIR|URI",
            help="Build the index here, a folder or a Milvus location (default: in the work folder).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Measure retrieval quality on a BEIR dataset: nDCG@10, Recall@10, Recall@100, MRR@10 and latency."""
    from ..evaluation import MEASURES, load_beir, subset
    from ..evaluation import evaluate as run

    with errors():
        data = load_beir(dataset, split)
        if limit is not None:
            data = subset(data, limit)
        modes = list(dict.fromkeys(mode or MODES))
        reports = run(
            data,
            model,
            modes=modes,
            rrf_k=rrf_k,
            device=device,
            fp32=fp32,
            precision=precision,
            runtime=runtime,
            workdir=workdir,
            progress=None,
            location=index,
            rerank=rerank,
            rerank_depth=rerank_depth,
        )
    if as_json:
        print_json([report.to_dict() for report in reports])
        return
    first = reports[0]
    typer.echo(
        f"{first.dataset}: {first.documents} documents, {first.queries} queries; "
        f"model {first.model}; indexed in {first.index_seconds:.1f} s"
    )
    if rerank:
        typer.echo(f"reranked by {rerank}, the first {max(rerank_depth, 100)} candidates")
    typer.echo(f"{'mode':<16}" + "".join(f"{name:>9}" for name in MEASURES) + f"{'p50 ms':>9}{'p95 ms':>9}")
    for report in reports:
        scores = "".join(f"{report.metrics[name]:>9.4f}" for name in MEASURES)
        latency = report.latency_ms
        label = report.mode + (" + rerank" if report.reranker else "")
        typer.echo(f"{label:<16}{scores}{latency['p50']:>9.1f}{latency['p95']:>9.1f}")

"""``semsearch ingest``: chunk, embed and index files, or re-embed the index with another model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..config import DEFAULT_INDEX, DEFAULT_MAX_FILE_BYTES, ChunkSettings
from ..documents.formats import describe
from .base import (
    DeviceOption,
    Fp32Option,
    IndexOption,
    IndexTypeOption,
    JsonOption,
    ModelOption,
    PrecisionOption,
    RuntimeOption,
    WaitOption,
    errors,
    open_index,
)
from .render import print_notes, print_report

ChunkTokensOption = Annotated[
    Optional[int],
    typer.Option("--chunk-tokens", min=1, metavar="N", help="Tokens per chunk (default 256, or the model's limit)."),
]
OverlapTokensOption = Annotated[
    Optional[int],
    typer.Option("--overlap-tokens", min=0, metavar="N", help="Tokens shared by neighbour chunks (default 32)."),
]
ExcludeOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--exclude",
        "-x",
        metavar="PATTERN",
        help=".gitignore-style pattern of paths to leave out (applied after the ignore files); repeatable.",
    ),
]
NoIgnoreOption = Annotated[
    bool, typer.Option("--no-ignore", metavar="", help="Do not honour .gitignore and .ignore files.")
]
MaxFileMbOption = Annotated[
    float, typer.Option("--max-file-mb", min=0, metavar="MB", help="Skip files larger than this (0: no limit).")
]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", metavar="", help="List every skipped file, each with its reason.")
]


def ingest(
    paths: Annotated[
        Optional[list[Path]],
        typer.Argument(help="Files or folders to index (folders recursively).", metavar="PATH", show_default=False),
    ] = None,
    index: IndexOption = DEFAULT_INDEX,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    chunk_tokens: ChunkTokensOption = None,
    overlap_tokens: OverlapTokensOption = None,
    exclude: ExcludeOption = None,
    no_ignore: NoIgnoreOption = False,
    max_file_mb: MaxFileMbOption = DEFAULT_MAX_FILE_BYTES / 1e6,
    reindex: Annotated[
        bool,
        typer.Option(
            "--reindex",
            metavar="",
            help="Re-embed every indexed document (and PATHS) with --model; the old index serves until done.",
        ),
    ] = False,
    shard: Annotated[
        Optional[str],
        typer.Option(
            "--shard",
            metavar="I/N",
            help="Only the files whose path hash falls in share I of N (1 to N): N workers ingest one corpus "
            "together; each adds, updates and removes only its share.",
            show_default=False,
        ),
    ] = None,
    index_type: IndexTypeOption = None,
    wait: WaitOption = False,
    fp32: Fp32Option = False,
    precision: PrecisionOption = "auto",
    runtime: RuntimeOption = "auto",
    verbose: VerboseOption = False,
    as_json: JsonOption = False,
) -> None:
    """Chunk, embed and index text, Markdown, PDF, Word and HTML files; re-running updates the index.

    Reads {plain}, and with the docs extra (pip install 'semsearch[docs]')
    {docs}. Honours .gitignore and .ignore files (--no-ignore: not).
    Commits every 256 embedded chunks: Ctrl-C or a crash keeps them, and running the same
    command again goes on from there, inside a large file too.
    """
    if not paths and not reindex:
        raise typer.BadParameter("give at least one file or folder", param_hint="PATH")
    if shard is not None and reindex:
        raise typer.BadParameter("--reindex re-embeds the whole index; it takes no --shard", param_hint="--shard")
    chunking = chunk_settings(chunk_tokens, overlap_tokens)
    options = reading_options(exclude, no_ignore, max_file_mb)
    with errors(as_json, verbose):
        if reindex:
            with open_index(index, None, device, fp32, precision, runtime, wait=wait, index_type=index_type) as idx:
                report = idx.reindex(paths or [], model, chunking=chunking, **options)
                print_notes(idx)
        else:
            with open_index(
                index, model, device, fp32, precision, runtime, chunking=chunking, wait=wait, index_type=index_type
            ) as idx:
                report = idx.ingest(paths or [], shard=shard, **options)
                print_notes(idx)
    print_report(report, as_json, verbose)


ingest.__doc__ = (ingest.__doc__ or "").format(plain=describe(None), docs=describe("docs"))  # the format registry's


def reading_options(exclude: list[str] | None, no_ignore: bool, max_file_mb: float) -> dict[str, Any]:
    """``Index.ingest``'s options from the flags: what to read, with a bar on a terminal."""
    return {
        "progress": None,
        "exclude": exclude or [],
        "max_file_bytes": int(max_file_mb * 1e6) or None,
        "ignore_files": not no_ignore,
    }


def chunk_settings(chunk_tokens: int | None, overlap_tokens: int | None) -> ChunkSettings | None:
    if chunk_tokens is None and overlap_tokens is None:
        return None
    defaults = ChunkSettings()
    return ChunkSettings(
        chunk_tokens=defaults.chunk_tokens if chunk_tokens is None else chunk_tokens,
        overlap_tokens=defaults.overlap_tokens if overlap_tokens is None else overlap_tokens,
    )

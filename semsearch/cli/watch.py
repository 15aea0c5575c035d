"""``semsearch watch``: ingest, then keep the index in step as the files change."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import DEFAULT_DEBOUNCE_MS, DEFAULT_INDEX, DEFAULT_MAX_FILE_BYTES
from .base import (
    DeviceOption,
    Fp32Option,
    IndexOption,
    IndexTypeOption,
    JsonOption,
    ModelOption,
    PrecisionOption,
    RuntimeOption,
    errors,
    open_index,
)
from .ingest import (
    ChunkTokensOption,
    ExcludeOption,
    MaxFileMbOption,
    NoIgnoreOption,
    OverlapTokensOption,
    VerboseOption,
    chunk_settings,
    reading_options,
)
from .render import display, print_json, print_notes, print_report, printable

if TYPE_CHECKING:
    from ..index.watching import Round

DebounceOption = Annotated[
    int,
    typer.Option(
        "--debounce",
        min=10,
        max=60_000,
        metavar="MS",
        help="Ingest once files have been quiet this long, so a burst of saves is one round.",
    ),
]


def watch(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Files or folders to index and watch (folders recursively).", metavar="PATH"),
    ],
    index: IndexOption = DEFAULT_INDEX,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    chunk_tokens: ChunkTokensOption = None,
    overlap_tokens: OverlapTokensOption = None,
    exclude: ExcludeOption = None,
    no_ignore: NoIgnoreOption = False,
    max_file_mb: MaxFileMbOption = DEFAULT_MAX_FILE_BYTES / 1e6,
    debounce: DebounceOption = DEFAULT_DEBOUNCE_MS,
    index_type: IndexTypeOption = None,
    fp32: Fp32Option = False,
    precision: PrecisionOption = "auto",
    runtime: RuntimeOption = "auto",
    verbose: VerboseOption = False,
    as_json: JsonOption = False,
) -> None:
    """Ingest PATHS, then keep the index in step as files are created, changed, renamed or deleted.

    Each round is an ingest of PATHS with the same options, ignore files and crash safety;
    a round prints ingest's summary line (--json: one JSON object per line). While another
    process writes to the index, a round waits for it. Ctrl-C stops: between rounds at once,
    during one after its next commit, as ingest does.
    """
    from ..index.watching import watch as watching

    chunking = chunk_settings(chunk_tokens, overlap_tokens)
    options = reading_options(exclude, no_ignore, max_file_mb)
    logging.getLogger("watchfiles").setLevel(logging.ERROR)  # it logs Ctrl-C; "Stopped watching" says it
    with (
        errors(as_json, verbose),
        open_index(
            index, model, device, fp32, precision, runtime, chunking=chunking, wait=True, index_type=index_type
        ) as idx,
    ):
        try:
            for number, done in enumerate(watching(idx, paths, debounce_ms=debounce, **options)):
                print_round(done, as_json, verbose)
                print_notes(idx)
                if number == 0:
                    watched = ", ".join(display(str(p)) for p in paths)
                    typer.echo(f"Watching {watched} (Ctrl-C to stop)", err=True)
        except KeyboardInterrupt:
            pass  # between rounds (a round's ingest turns Ctrl-C into Interrupted): a clean stop
    typer.echo("Stopped watching", err=True)


def print_round(done: Round, as_json: bool, verbose: bool, lead: str = "") -> None:
    """A round's report as ingest prints it, after ``lead`` and the number of changes that
    started it; a round that could not run, as one line (JSON: its error). What happened to the
    watch itself before it (restarted, a watched path gone) comes first, on a line of its own
    on stderr (JSON: ``note``)."""
    if as_json:
        report = done.report.to_dict() if done.report else None
        error = {"type": type(done.error).__name__, "message": str(done.error)} if done.error else None
        print_json({"changes": done.changes, "report": report, "error": error, "note": done.note})
        return
    if done.note:
        typer.echo(f"{lead or 'watch: '}{printable(done.note)}", err=True)
    if done.changes:
        lead += f"{done.changes} change{'s' if done.changes != 1 else ''}: "
    if done.report is not None:
        print_report(done.report, False, verbose, lead)
    else:
        typer.echo(f"{lead}not ingested this time: {printable(str(done.error))}", err=True)

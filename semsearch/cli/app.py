"""The ``semsearch`` command: parse flags, call one library function, print.

Errors from the library arrive typed; ``_errors`` is the one place that turns them into a
single ``Error:`` line and exit code 1. Heavy imports (torch, faiss) happen inside commands.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from ..config import DEFAULT_INDEX, DEFAULT_MAX_FILE_BYTES, DEFAULT_MODEL, ChunkSettings
from ..errors import Interrupted, MissingExtraError, SemsearchError, SourceNotFoundError, first_line
from ..query import DEFAULT_MODE, RRF_K, Where
from ..results import UNSUPPORTED, IngestReport, Skipped

if TYPE_CHECKING:
    from ..index import Index
    from ..results import Check, Hit


class _Command(TyperCommand):
    """typer's command, with help that reads like a classic CLI's: arguments by their metavar
    alone (not their Python type), ``--help`` as a flag."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
                param.get_usage_pieces = functools.partial(_usage, param)  # type: ignore[method-assign]

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


def _usage(argument: TyperArgument, ctx: Any) -> list[str]:
    """An argument in the usage line as classic CLIs write it: ``NAME``, ``[NAME]``, ``NAME...``."""
    name = argument.display_name_raw
    name = name if argument.required else f"[{name}]"
    return [name + ("..." if argument.nargs != 1 else "")]


class _Group(TyperGroup):
    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Chinese-first semantic search over your files, with an embedded index.",
)
command = functools.partial(app.command, cls=_Command)
_state = {"debug": False}

Mode = Literal["dense", "lexical", "hybrid"]  # ranking.MODES
IndexType = Literal["auto", "flat", "ivf", "hnsw"]  # vectors.INDEX_TYPES

IndexOption = Annotated[
    Path,
    typer.Option("--index", envvar="SEMSEARCH_INDEX", metavar="DIR", help="Index folder.", show_default=True),
]
ModelOption = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        envvar="SEMSEARCH_MODEL",
        metavar="MODEL",
        help=f"Hub id or local sentence-transformers folder (default: the index's, else {DEFAULT_MODEL}).",
        show_default=False,
    ),
]
DeviceOption = Annotated[
    str, typer.Option("--device", metavar="DEVICE", help="auto (CUDA when present), cpu, cuda or cuda:N.")
]
Fp32Option = Annotated[bool, typer.Option("--fp32", metavar="", help="Run the model in float32 on CUDA too.")]
JsonOption = Annotated[bool, typer.Option("--json", metavar="", help="Print JSON for scripts.")]
WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait", metavar="", help="If another process is writing to the index, wait for it instead of failing."
    ),
]
IndexTypeOption = Annotated[
    Optional[IndexType],
    typer.Option(
        "--index-type",
        help="Vector structure: auto (exact while fast enough, then IVF), flat, ivf or hnsw. "
        "Kept for later writes; changing it rebuilds from the stored vectors, nothing re-embedded.",
        show_default=False,
    ),
]


def _print_version(value: bool) -> None:
    if value:
        from ..config import __version__

        typer.echo(f"semsearch {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[
        bool, typer.Option("--debug", envvar="SEMSEARCH_DEBUG", metavar="", help="Show tracebacks on errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, metavar="", help="Print the version and exit."
        ),
    ] = False,
) -> None:
    _state["debug"] = debug
    # pypdf logs every repair it makes to a damaged PDF; the skip line already says what matters
    if not debug:
        logging.getLogger("pypdf").setLevel(logging.ERROR)


@contextmanager
def _errors(as_json: bool = False, verbose: bool = False) -> Iterator[None]:
    try:
        yield
    except Interrupted as exc:
        if isinstance(exc.report, IngestReport):
            _print_report(exc.report, as_json, verbose)
        typer.echo(f"Interrupted: {printable(str(exc))}", err=True)
        raise typer.Exit(130) from None
    except SemsearchError as exc:
        if _state["debug"]:
            raise
        typer.echo(f"Error: {printable(str(exc))}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("Interrupted", err=True)
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort, typer.BadParameter):
        raise
    except Exception as exc:
        if _state["debug"]:
            raise
        message = first_line(exc) if str(exc).strip() else ""
        message = printable(message)
        typer.echo(f"Error: unexpected {type(exc).__name__}: {message} (rerun with --debug for details)", err=True)
        raise typer.Exit(1) from None


def _open(index: Path, model: str | None, device: str = "auto", fp32: bool = False, **kwargs: Any) -> Index:
    from ..index import open_index

    return open_index(index, model, device=device, fp32=fp32, **kwargs)


def _print_json(data: Any) -> None:
    typer.echo(json_text(data))


def json_text(data: Any) -> str:
    """``data`` as JSON, valid UTF-8 whatever the file names: a name's undecodable bytes (lone
    surrogates) are written as JSON escapes (``\\udcff``), which read back to the same name."""
    return json.dumps(data, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")


@command()
def ingest(
    paths: Annotated[
        Optional[list[Path]],
        typer.Argument(help="Files or folders to index (folders recursively).", metavar="PATH", show_default=False),
    ] = None,
    index: IndexOption = Path(DEFAULT_INDEX),
    model: ModelOption = None,
    device: DeviceOption = "auto",
    chunk_tokens: Annotated[
        Optional[int],
        typer.Option(
            "--chunk-tokens", min=1, metavar="N", help="Tokens per chunk (default 256, or the model's limit)."
        ),
    ] = None,
    overlap_tokens: Annotated[
        Optional[int],
        typer.Option("--overlap-tokens", min=0, metavar="N", help="Tokens shared by neighbour chunks (default 32)."),
    ] = None,
    exclude: Annotated[
        Optional[list[str]],
        typer.Option(
            "--exclude",
            "-x",
            metavar="PATTERN",
            help=".gitignore-style pattern of paths to leave out (applied after the ignore files); repeatable.",
        ),
    ] = None,
    no_ignore: Annotated[
        bool,
        typer.Option("--no-ignore", metavar="", help="Do not honour .gitignore and .ignore files."),
    ] = False,
    max_file_mb: Annotated[
        float, typer.Option("--max-file-mb", min=0, metavar="MB", help="Skip files larger than this (0: no limit).")
    ] = DEFAULT_MAX_FILE_BYTES / 1e6,
    reindex: Annotated[
        bool,
        typer.Option(
            "--reindex",
            metavar="",
            help="Re-embed every indexed document (and PATHS) with --model; the old index serves until done.",
        ),
    ] = False,
    index_type: IndexTypeOption = None,
    wait: WaitOption = False,
    fp32: Fp32Option = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", metavar="", help="List every skipped file, each with its reason.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Chunk, embed and index text, Markdown, PDF, Word and HTML files; re-running updates the index.

    Reads .txt .md .markdown .rst .text, and with the docs extra (pip install 'semsearch[docs]')
    .pdf .docx .html .htm .xhtml. Honours .gitignore and .ignore files (--no-ignore: not).
    Commits every 256 embedded chunks: Ctrl-C or a crash keeps them, and running the same
    command again goes on from there, inside a large file too.
    """
    if not paths and not reindex:
        raise typer.BadParameter("give at least one file or folder", param_hint="PATH")
    chunking = _chunking(chunk_tokens, overlap_tokens)
    options: dict[str, Any] = {
        "progress": None,
        "exclude": exclude or [],
        "max_file_bytes": int(max_file_mb * 1e6) or None,
        "ignore_files": not no_ignore,
    }
    with _errors(as_json, verbose):
        if reindex:
            with _open(index, None, device, fp32, wait=wait, index_type=index_type) as idx:
                report = idx.reindex(paths or [], model, chunking=chunking, **options)
                _print_notes(idx)
        else:
            with _open(index, model, device, fp32, chunking=chunking, wait=wait, index_type=index_type) as idx:
                report = idx.ingest(paths or [], **options)
                _print_notes(idx)
    _print_report(report, as_json, verbose)


def _chunking(chunk_tokens: int | None, overlap_tokens: int | None) -> ChunkSettings | None:
    if chunk_tokens is None and overlap_tokens is None:
        return None
    defaults = ChunkSettings()
    return ChunkSettings(
        chunk_tokens=defaults.chunk_tokens if chunk_tokens is None else chunk_tokens,
        overlap_tokens=defaults.overlap_tokens if overlap_tokens is None else overlap_tokens,
    )


def _print_report(report: IngestReport, as_json: bool, verbose: bool = False) -> None:
    if as_json:
        _print_json(report.to_dict())
        return
    for line in skip_lines(report.skipped, verbose):
        typer.echo(line, err=True)
    reused = f" ({report.files_reused} from identical indexed content)" if report.files_reused else ""
    excluded = f" ({report.files_removed_excluded} now excluded)" if report.files_removed_excluded else ""
    resumed = f", {report.chunks_resumed} more taken from an interrupted run" if report.chunks_resumed else ""
    rate = (
        f" ({report.chunks_embedded / report.seconds:,.1f} chunks/s)"
        if report.chunks_embedded and report.seconds
        else ""
    )
    typer.echo(
        f"{report.files_added} added, {report.files_updated} updated{reused}, {report.files_unchanged} unchanged, "
        f"{report.files_removed} removed{excluded}, {report.files_skipped} skipped; "
        f"{_count(report.chunks_embedded, 'chunk')} embedded in {report.seconds:.1f} s{rate}{resumed}; "
        f"{report.chunks_total:,} in the index"
    )


def skip_lines(skipped: list[Skipped], verbose: bool = False) -> list[str]:
    """What to say of the skipped files: one line for each problem with a file semsearch reads;
    files of types it does not read in one line (one per reason for types needing an extra);
    ``verbose``: every file on a line of its own."""
    if verbose:
        return [f"skipped {_display(s.path)}: {printable(s.reason)}" for s in skipped]
    lines = [f"skipped {_display(s.path)}: {printable(s.reason)}" for s in skipped if s.kind != UNSUPPORTED]
    groups: dict[str, list[str]] = {}
    for s in skipped:
        if s.kind == UNSUPPORTED:
            reason = "" if s.reason.startswith("unsupported file type") else s.reason
            groups.setdefault(reason, []).append(os.path.splitext(s.path)[1].lower() or "(no suffix)")
    for reason, suffixes in groups.items():
        counts = ", ".join(f"{suffix} {n}" for suffix, n in Counter(suffixes).most_common())
        what = f"skipped {_count(len(suffixes), 'file')}"
        if reason:
            lines.append(f"{what} ({printable(counts)}): {printable(reason)}")
        else:
            lines.append(f"{what} of types semsearch does not read ({printable(counts)}); --verbose lists them")
    return lines


def _count(number: int, noun: str) -> str:
    """``1 document``, ``2 documents``, ``1,234 chunks``."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


@command()
def query(
    text: Annotated[
        Optional[str],
        typer.Argument(help="The query; '-' or none reads one query per line from stdin.", metavar="TEXT"),
    ] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=10_000, metavar="N", help="How many passages.")] = 10,
    min_score: Annotated[
        Optional[float], typer.Option("--min-score", metavar="SCORE", help="Drop passages scoring below this.")
    ] = None,
    file: Annotated[
        Optional[Path],
        typer.Option("--file", "-f", metavar="FILE", help="Read queries from a file, one per line ('-': stdin)."),
    ] = None,
    index: IndexOption = Path(DEFAULT_INDEX),
    mode: Annotated[
        Mode,
        typer.Option(
            "--mode",
            help="dense (embeddings), lexical (BM25 over Chinese-segmented terms) or hybrid (both, fused by rank).",
        ),
    ] = DEFAULT_MODE,  # type: ignore[assignment]
    rrf_k: Annotated[
        int,
        typer.Option(
            "--rrf-k", min=1, metavar="N", help="Hybrid: the rank fusion constant; larger flattens the top ranks."
        ),
    ] = RRF_K,
    path: Annotated[
        Optional[list[str]],
        typer.Option(
            "--path",
            metavar="GLOB",
            help="Only documents under this folder or file, or matching this glob ('docs/**/*.md'); repeatable.",
        ),
    ] = None,
    file_type: Annotated[
        Optional[list[str]],
        typer.Option("--type", metavar="TYPE", help="Only files of this type (pdf, md, html…); repeatable."),
    ] = None,
    modified_after: Annotated[
        Optional[str],
        typer.Option(
            "--modified-after",
            metavar="WHEN",
            help="Only files modified since: 2024-05-01, 2024-05-01T09:30 or an age (7d).",
        ),
    ] = None,
    modified_before: Annotated[
        Optional[str],
        typer.Option("--modified-before", metavar="WHEN", help="Only files modified before this (same forms)."),
    ] = None,
    context: Annotated[
        int,
        typer.Option(
            "--context",
            min=0,
            max=20,
            metavar="N",
            help="Widen each hit by N chunks either side; touching hits merge into one.",
        ),
    ] = 0,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    fp32: Fp32Option = False,
    as_json: JsonOption = False,
) -> None:
    """Find the passages best matching a query. Several queries print as JSON Lines with --json."""
    queries = _read_queries(text, file)
    filters: dict[str, Any] = {"paths": path or (), "types": file_type or ()}
    filters |= {"modified_after": modified_after, "modified_before": modified_before}
    with _errors(), _open(index, model, device, fp32, create=False) as idx:
        where = Where.of(filters)
        results = idx.search_many(
            queries, k=k, min_score=min_score, mode=mode, rrf_k=rrf_k, where=where, context=context
        )
        _print_notes(idx)
        model_name = idx.manifest.model.model if idx.manifest else ""
    for number, (question, hits) in enumerate(zip(queries, results, strict=True)):
        if as_json:
            _print_json({"query": question, "model": model_name, "results": [h.to_dict() for h in hits]})
            continue
        if len(queries) > 1:
            typer.echo(("\n" if number else "") + f"# {printable(question)}")
        _print_hits(hits, show_matched=mode != "dense", whole=context > 0)


def _read_queries(text: str | None, file: Path | None) -> list[str]:
    if file is not None:
        source = sys.stdin.read() if str(file) == "-" else _read_file(file)
        lines = source.splitlines()
    elif text == "-" or (text is None and not sys.stdin.isatty()):
        lines = sys.stdin.read().splitlines()
    elif text is None:
        raise typer.BadParameter("give a query, --file, or queries on stdin", param_hint="TEXT")
    else:
        return [text]
    queries = [line for line in lines if line.strip()]
    if not queries:
        typer.echo("Error: no queries given (all lines were empty)", err=True)
        raise typer.Exit(1)
    return queries


def _read_file(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"Error: cannot read {printable(str(file))}: {printable(str(exc))}", err=True)
        raise typer.Exit(1) from None


def _print_hits(hits: list[Hit], show_matched: bool = False, whole: bool = False) -> None:
    """Each hit's rank, score and place, then its passage on one line, or (``whole``) all of it."""
    if not hits:
        typer.echo("No results.")
    for hit in hits:
        place = f"{_display(hit.source)}:{hit.line}" + (f" (page {hit.page})" if hit.page else "")
        place += f"  § {printable(hit.heading)}" if hit.heading else ""
        matched = f"  [{hit.matched}]" if show_matched else ""
        typer.echo(f"{hit.rank:>2}. {hit.score:.4f}  {place}{matched}")
        text, highlights = _body(hit)
        if whole:
            typer.echo(textwrap.indent(_styled(_pieces(text, highlights)), "    ") + "\n")
        else:
            typer.echo(f"    {_passage(text, highlights)}")


def _body(hit: Hit) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The hit's text without the heading lines it starts with when the ``§`` path above already
    shows them, and its highlights moved to match."""
    titles = {part.strip() for part in (hit.heading or "").split(">")}
    start = 0
    lines = hit.text.splitlines(keepends=True)
    for number, line in enumerate(lines):
        stripped = line.strip()
        underline = number and set(stripped) <= {"=", "-"}  # a Markdown setext heading's (or a blank line)
        if not (underline or stripped.strip("#").strip() in titles):
            break
        start += len(line)
    if not titles - {""} or not hit.text[start:].strip():
        return hit.text, hit.highlights
    moved = tuple((max(s - start, 0), e - start) for s, e in hit.highlights if e > start)
    return hit.text[start:], moved


def _pieces(text: str, highlights: tuple[tuple[int, int], ...]) -> list[tuple[str, bool]]:
    """``text`` as (piece, highlighted) pairs."""
    pieces: list[tuple[str, bool]] = []
    at = 0
    for start, end in [*highlights, (len(text), len(text))]:
        pieces += [(text[at:start], False), (text[start:end], True)]
        at = end
    return pieces


def _passage(text: str, highlights: tuple[tuple[int, int], ...], width: int = 240) -> str:
    """The passage on one line (runs of white space as one space), cut to ``width`` characters,
    with the highlighted spans in bold yellow (plain where the output is not a terminal)."""
    pieces = _pieces(text, highlights)
    shown: list[tuple[str, bool]] = []
    used, space = 0, False
    for piece, marked in pieces:
        words = "".join(" " if char.isspace() else char for char in piece)
        out: list[str] = []
        for char in words:
            if char == " " and (space or used == 0):
                continue
            space = char == " "
            if used == width - 1:
                shown.append(("".join(out), marked))
                return _styled(shown).rstrip() + "…"
            out.append(char)
            used += 1
        shown.append(("".join(out), marked))
    return _styled(shown).rstrip()


def _styled(pieces: list[tuple[str, bool]]) -> str:
    """The pieces joined, highlighted ones in bold yellow, control characters escaped (the
    passage's own line breaks kept)."""
    shown = [(printable(text, lines=True), marked) for text, marked in pieces]
    return "".join(typer.style(text, fg="yellow", bold=True) if marked and text else text for text, marked in shown)


@command()
def info(
    index: IndexOption = Path(DEFAULT_INDEX),
    check: Annotated[
        bool, typer.Option("--check", metavar="", help="Verify the index's invariants; exit 1 if any fails.")
    ] = False,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Describe an index: model, dimension, documents, chunks, vector index, size on disk."""
    with _errors(), _open(index, None, create=False, wait=wait) as idx:
        if check:
            _report_checks(idx.check(), as_json)
            return
        details = idx.info()
        _print_notes(idx)
    if as_json:
        _print_json(details.to_dict())
        return
    for key, value in details.to_dict().items():
        if key == "size_bytes":
            key, value = "size", f"{value / 1e6:.1f} MB"
        elif key == "revision" and value is None:
            value = "- (a local model folder)"
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        typer.echo(f"{key.replace('_', ' ')}: {printable(str(value))}")


@command()
def repair(
    index: IndexOption = Path(DEFAULT_INDEX),
    index_type: IndexTypeOption = None,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Rebuild the vector index from the vectors stored in SQLite, then verify the index."""
    with _errors(), _open(index, None, create=False, wait=wait, index_type=index_type) as idx:
        _report_checks(idx.repair(), as_json)


def _report_checks(checks: list[Check], as_json: bool) -> None:
    ok = all(c.ok for c in checks)
    if as_json:
        _print_json({"ok": ok, "checks": [c.to_dict() for c in checks]})
    else:
        for c in checks:
            typer.echo(f"{'ok  ' if c.ok else 'FAIL'}  {c.name}" + (f": {printable(c.detail)}" if c.detail else ""))
    if not ok:
        raise typer.Exit(1)


@command()
def remove(
    paths: Annotated[
        list[Path], typer.Argument(help="Indexed files, or folders to remove everything under.", metavar="PATH")
    ],
    index: IndexOption = Path(DEFAULT_INDEX),
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Take documents out of the index (the files themselves are left alone)."""
    with _errors(), _open(index, None, create=False, wait=wait) as idx:
        report = idx.remove(list(paths))
    if as_json:
        _print_json(report.to_dict())
        return
    typer.echo(f"removed {_count(report.files_removed, 'document')}, {_count(report.chunks_removed, 'chunk')}")


def _modes(values: list[str] | None) -> list[str] | None:
    from ..query import MODES

    for value in values or ():
        if value not in MODES:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(map(repr, MODES))}")
    return values


@command("eval")
def evaluate(
    dataset: Annotated[
        Path,
        typer.Argument(help="A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.", metavar="DATASET"),
    ],
    mode: Annotated[
        Optional[list[str]],
        typer.Option(
            "--mode",
            metavar="[dense|lexical|hybrid]",
            callback=_modes,
            help="Search mode to evaluate; repeatable (default: all three).",
            show_default=False,
        ),
    ] = None,
    rrf_k: Annotated[
        int, typer.Option("--rrf-k", min=1, metavar="N", help="Hybrid: the rank fusion constant.")
    ] = RRF_K,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    fp32: Fp32Option = False,
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
    as_json: JsonOption = False,
) -> None:
    """Measure retrieval quality on a BEIR dataset: nDCG@10, Recall@10, Recall@100, MRR@10 and latency."""
    from ..evaluation import MEASURES, load_beir, subset
    from ..evaluation import evaluate as run
    from ..query import MODES

    with _errors():
        data = load_beir(dataset, split)
        if limit is not None:
            data = subset(data, limit)
        modes = list(dict.fromkeys(mode or MODES))
        reports = run(data, model, modes=modes, rrf_k=rrf_k, device=device, fp32=fp32, workdir=workdir, progress=None)
    if as_json:
        _print_json([report.to_dict() for report in reports])
        return
    first = reports[0]
    typer.echo(
        f"{first.dataset}: {first.documents} documents, {first.queries} queries; "
        f"model {first.model}; indexed in {first.index_seconds:.1f} s"
    )
    typer.echo(f"{'mode':<8}" + "".join(f"{name:>9}" for name in MEASURES) + f"{'p50 ms':>9}{'p95 ms':>9}")
    for report in reports:
        scores = "".join(f"{report.metrics[name]:>9.4f}" for name in MEASURES)
        latency = report.latency_ms
        typer.echo(f"{report.mode:<8}{scores}{latency['p50']:>9.1f}{latency['p95']:>9.1f}")


@command()
def serve(
    index: IndexOption = Path(DEFAULT_INDEX),
    host: Annotated[
        str,
        typer.Option("--host", metavar="HOST", help="Address to bind; beyond loopback SEMSEARCH_API_KEY must be set."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, metavar="PORT", help="Port to listen on.")] = 8000,
    root: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--root",
            metavar="DIR",
            help="A folder POST /ingest may read (repeatable); without one, ingest is refused.",
        ),
    ] = None,
    max_batch: Annotated[
        int,
        typer.Option(
            "--max-batch", min=1, max=1024, metavar="N", help="Most queries embedded together (1: no batching)."
        ),
    ] = 64,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    fp32: Fp32Option = False,
) -> None:
    """Serve the index over HTTP (POST /search, GET /info, GET /health, POST /ingest); docs at /docs.

    Needs the server extra: pip install 'semsearch[server]'. With SEMSEARCH_API_KEY set, every
    route but /health and the docs wants 'Authorization: Bearer KEY'.
    """
    api_key = os.environ.get("SEMSEARCH_API_KEY") or None
    with _errors():
        server = _server_module()
        roots = [r.resolve() for r in root or ()]
        missing = [str(r) for r in roots if not r.is_dir()]
        if missing:
            raise SourceNotFoundError(f"--root must be a folder: {', '.join(missing)}")
        server.check_bind(host, api_key)  # before the model loads: fail fast
        from ..serving.service import Service

        opener = lambda: _open(index, model, device, fp32, create=bool(roots))  # noqa: E731
        service = Service(opener, roots, max_batch).start()
        try:
            server.run(service, host, port, api_key)
        finally:
            service.stop()


def _server_module() -> Any:
    try:
        from ..serving import server
    except ImportError as exc:
        raise MissingExtraError(
            f"semsearch serve needs FastAPI and uvicorn ({exc.name} is missing): pip install 'semsearch[server]'"
        ) from None
    return server


def _print_notes(idx: Index) -> None:
    for note in idx.notes:
        typer.echo(f"Note: {printable(note)}", err=True)


def _display(path: str) -> str:
    # paths are stored absolute; show them relative to where the user stands when inside it
    relative = os.path.relpath(path)
    return printable(path if relative.startswith("..") else relative)


# control characters (C0 and C1), the bidirectional overrides that reorder a line, and lone
# surrogates (a file name's undecodable bytes): what must never reach a terminal raw
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE_IN_LINE = re.compile(f"[{_UNSAFE}\t\n]")
_UNSAFE_IN_TEXT = re.compile(f"[{_UNSAFE}]")


def printable(text: str, lines: bool = False) -> str:
    """``text`` safe to print for a human: control characters (escape sequences, and with
    ``lines`` False also tabs and line breaks, which could forge output lines), bidirectional
    overrides and undecodable bytes written as visible escapes (``\\x1b``, ``\\xff``).
    ``--json`` output is exact instead."""
    return (_UNSAFE_IN_TEXT if lines else _UNSAFE_IN_LINE).sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 in a file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


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

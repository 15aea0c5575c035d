"""What every command shares: the typer app and its help style, the common options, opening
the index, and ``errors``, the one place where library errors become an ``Error:`` line and
an exit code. Heavy imports (torch, faiss) happen inside commands, never here."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from ..config import DEFAULT_MODEL
from ..errors import IndexLockedError, Interrupted, SemsearchError, SourceNotFoundError, first_line
from ..query import DEFAULT_RERANKER, Query, Where, options
from ..results import IngestReport
from .render import print_report, printable

if TYPE_CHECKING:
    from ..index import Index


FLAG_VALUES = {  # option -> its value when given alone
    name: how.flag_value
    for cls in (Query, Where)
    for found, how in options(cls)
    if how.flag_value
    for name in how.names(found.name)
}


class Command(TyperCommand):
    """typer's command, with help that reads like a classic CLI's: arguments by their metavar
    alone (not their Python type), ``--help`` as a flag."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                setattr(param, "display_type_rich", lambda ctx: None)  # noqa: B010 - typer 0.29 only
                param.get_usage_pieces = functools.partial(_usage, param)  # type: ignore[method-assign]

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _state["flags"] = {flag for param in self.params for flag in getattr(param, "opts", ())}
        return super().parse_args(ctx, with_flag_values(args))


def with_flag_values(args: list[str]) -> list[str]:
    """``args`` with each option whose value may be left out (``--rerank [MODEL]``, see
    ``query.Option.flag_value``) given its value where it was left out: at the end, or before
    another option. typer's parser has no optional values of its own."""
    out = list(args)
    for number, arg in enumerate(out):
        if arg == "--":
            break
        value = FLAG_VALUES.get(arg)
        following = out[number + 1] if number + 1 < len(out) else None
        if value is not None and (following is None or (following.startswith("-") and len(following) > 1)):
            out[number] = f"{arg}={value}"
    return out


def _usage(argument: TyperArgument, ctx: Any) -> list[str]:
    """An argument in the usage line as classic CLIs write it: ``NAME``, ``[NAME]``, ``NAME...``."""
    name = getattr(argument, "display_name_raw", None) or argument.human_readable_name  # typer 0.29 or before
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
_state: dict[str, Any] = {"debug": False, "flags": set()}  # --debug, and the flags of the command running

# storage.vectors.INDEX_TYPES, and the Milvus ones (storage.milvus.store.INDEX_TYPES)
IndexType = Literal["auto", "flat", "ivf", "hnsw", "diskann", "ivf_sq8", "ivf_pq"]

IndexOption = Annotated[
    str,
    typer.Option(
        "--index",
        envvar="SEMSEARCH_INDEX",
        metavar="DIR|URI",
        help="Index folder, or Milvus: milvus://HOST:PORT/COLLECTION, milvus+https://HOST:PORT/COLLECTION, "
        "milvus-lite:FILE.db[/COLLECTION] (credentials in SEMSEARCH_MILVUS_TOKEN).",
        show_default=True,
    ),
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
Fp32Option = Annotated[bool, typer.Option("--fp32", metavar="", help="The same as --precision fp32.")]
PrecisionOption = Annotated[
    str,
    typer.Option(
        "--precision",
        envvar="SEMSEARCH_PRECISION",
        metavar="P",
        help="auto, fp32, fp16 (CUDA), bf16 or int8 (OpenVINO). auto: fp16 on CUDA; on the CPU bf16 where it "
        "computes bf16 natively, else fp32.",
    ),
]
RuntimeOption = Annotated[
    str,
    typer.Option(
        "--runtime",
        envvar="SEMSEARCH_RUNTIME",
        metavar="R",
        help="auto, torch or openvino. auto: PyTorch on CUDA; on the CPU OpenVINO where semsearch[cpu] is "
        "installed (the model is converted once and cached).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", metavar="", help="Print JSON for scripts.")]
RerankModelOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--rerank-model",
        metavar="MODEL",
        help=f"A reranker a search may ask for: a cross-encoder folder or hub id (repeatable; default "
        f"{DEFAULT_RERANKER}; 'none' refuses reranking). One that cannot be had is left out, with a note.",
    ),
]
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
        help="Vector structure: auto (local: exact while fast enough, then IVF; Milvus: FLAT on Lite, AUTOINDEX "
        "on a server), flat, ivf or hnsw; on a Milvus server also diskann, ivf_sq8, ivf_pq. Kept for later "
        "writes; changing it rebuilds from the stored vectors, nothing re-embedded.",
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
def errors(as_json: bool = False, verbose: bool = False) -> Iterator[None]:
    """Library errors as one ``Error:`` line and exit 1; an interrupted ingest's report, then
    ``Interrupted`` and exit 130; anything unexpected as one line too (``--debug``: raised)."""
    try:
        yield
    except Interrupted as exc:
        if isinstance(exc.report, IngestReport):
            print_report(exc.report, as_json, verbose)
        typer.echo(f"Interrupted: {printable(str(exc))}", err=True)
        raise typer.Exit(130) from None
    except SemsearchError as exc:
        if _state["debug"]:
            raise
        typer.echo(f"Error: {printable(str(exc))}{_wait_hint(exc)}", err=True)
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


def _wait_hint(exc: SemsearchError) -> str:
    """How to wait for the writer an IndexLockedError met, where waiting would help and the
    command has --wait (a query, a server or an MCP tool has none to offer)."""
    waitable = isinstance(exc, IndexLockedError) and exc.waitable
    return ", or pass --wait to wait for it" if waitable and "--wait" in _state["flags"] else ""


def offered_rerankers(names: list[str] | None) -> list[str]:
    """The rerankers a server offers, from its --rerank-model options: each checked first (a
    folder, in the hub cache, or known to a hub in reach; nothing is downloaded), and one that
    cannot be had left out with a line on stderr, so no client is offered a reranker that fails."""
    from ..embedding.hub import check

    offered = []
    for name in dict.fromkeys(names or [DEFAULT_RERANKER]):
        if name == "none":
            continue
        try:
            check(name, kind="reranker")
        except SemsearchError as exc:
            typer.echo(f"Note: reranker {printable(name)} is not offered: {printable(str(exc))}", err=True)
            continue
        offered.append(name)
    return offered


def ingest_roots(folders: list[Path] | None) -> list[Path]:
    """A server's --root folders, resolved; SourceNotFoundError naming any that is not a folder."""
    roots = [folder.resolve() for folder in folders or ()]
    missing = [str(r) for r in roots if not r.is_dir()]
    if missing:
        raise SourceNotFoundError(f"--root must be a folder: {', '.join(missing)}")
    return roots


def open_index(
    index: str,
    model: str | None,
    device: str = "auto",
    fp32: bool = False,
    precision: str = "auto",
    runtime: str = "auto",
    **kwargs: Any,
) -> Index:
    from ..index import open_index

    return open_index(index, model, device=device, fp32=fp32, precision=precision, runtime=runtime, **kwargs)

"""``semsearch query``: its search options are made from ``Query``'s and ``Where``'s fields, so an
option added there is a flag here with no further declaration."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, get_type_hints

import typer

from ..config import DEFAULT_INDEX
from ..query import Option, Query, Where, options
from . import remote
from .base import (
    DeviceOption,
    Fp32Option,
    IndexOption,
    JsonOption,
    ModelOption,
    PrecisionOption,
    RuntimeOption,
    errors,
    open_index,
)
from .render import print_hits, print_json, print_notes, printable

_FILTERS = tuple(found.name for found, _ in options(Where))


def flag(name: str, how: Option, default: Any) -> inspect.Parameter:
    """The command-line parameter of one search option: its flags, help, metavar and bounds."""
    names = how.names(name)
    metavar = how.metavar or None
    if how.choices:
        kind: Any = Literal[how.choices]  # typer lists the choices itself
        return _parameter(name, kind, typer.Option(*names, help=how.help), default)
    if how.kind is list:
        kind = Optional[list[str]]
        return _parameter(name, kind, typer.Option(*names, metavar=metavar, help=how.help), None)
    if how.kind is datetime:  # a time or an age, parsed by Where
        return _parameter(name, Optional[str], typer.Option(*names, metavar=metavar, help=how.help), None)
    bounds: dict[str, Any] = {"min": how.low, "max": how.high} if how.kind is int else {}
    kind = how.kind if default is not None else Optional[how.kind]
    return _parameter(name, kind, typer.Option(*names, metavar=metavar, help=how.help, **bounds), default)


def _parameter(name: str, kind: Any, how: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=Annotated[kind, how]
    )


def with_search_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command``, taking every search option as a flag (after its first parameter) and called
    with them gathered in its ``search`` parameter: ``Index.search``'s keyword arguments, with
    ``where`` the filters as given (``Where.of`` checks them)."""
    hints = get_type_hints(command, include_extras=True)
    own = [p.replace(annotation=hints[p.name]) for p in inspect.signature(command).parameters.values()]
    own = [p for p in own if p.name != "search"]
    added = [flag(found.name, how, found.default) for cls in (Query, Where) for found, how in options(cls)]
    names = [p.name for p in added]

    @functools.wraps(command)
    def run(**given: Any) -> None:
        chosen = {name: given.pop(name) for name in names}
        where = {name: chosen.pop(name) for name in _FILTERS}
        where |= {name: where[name] or () for name in ("paths", "types")}
        command(**given, search={**chosen, "where": where})

    parameters = [own[0], *added, *own[1:]]
    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    return run


@with_search_options
def query(
    text: Annotated[
        Optional[str],
        typer.Argument(help="The query; '-' or none reads one query per line from stdin.", metavar="TEXT"),
    ] = None,
    file: Annotated[
        Optional[Path],
        typer.Option("--file", "-f", metavar="FILE", help="Read queries from a file, one per line ('-': stdin)."),
    ] = None,
    index: IndexOption = DEFAULT_INDEX,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    fp32: Fp32Option = False,
    precision: PrecisionOption = "auto",
    runtime: RuntimeOption = "auto",
    as_json: JsonOption = False,
    no_server: Annotated[
        bool,
        typer.Option(
            "--no-server", help="Answer in this process even when a 'semsearch serve' on this index is running."
        ),
    ] = False,
    *,
    search: dict[str, Any],
) -> None:
    """Find the passages best matching a query. Several queries print as JSON Lines with --json.

    When a 'semsearch serve' on the same index runs on this machine, the query goes to it (no
    model to load: an answer in a blink), with the same output; --no-server answers here."""
    queries = _read_queries(text, file)
    answered = None if no_server or model is not None else remote.search(index, queries, search)
    if answered is not None:
        model_name, results, notes = answered
        for note in notes:
            typer.echo(f"Note: {printable(note)}", err=True)
    else:
        with errors(), open_index(index, model, device, fp32, precision, runtime, create=False) as idx:
            results = idx.search_many(queries, **{**search, "where": Where.of(search["where"])})
            print_notes(idx)
            model_name = idx.manifest.model.model if idx.manifest else ""
    for number, (question, hits) in enumerate(zip(queries, results, strict=True)):
        if as_json:
            print_json({"query": question, "model": model_name, "results": [h.to_dict() for h in hits]})
            continue
        if len(queries) > 1:
            typer.echo(("\n" if number else "") + f"# {printable(question)}")
        print_hits(hits, show_matched=search["mode"] != "dense", whole=search["context"] > 0)


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

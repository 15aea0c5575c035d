"""``semsearch info``, ``repair`` and ``remove``: looking after an index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import DEFAULT_INDEX
from .base import IndexOption, IndexTypeOption, JsonOption, WaitOption, errors, open_index
from .render import count, print_checks, print_json, print_notes, printable


def info(
    index: IndexOption = DEFAULT_INDEX,
    check: Annotated[
        bool, typer.Option("--check", metavar="", help="Verify the index's invariants; exit 1 if any fails.")
    ] = False,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Describe an index: model, dimension, documents, chunks, vector index, size on disk."""
    with errors(), open_index(index, None, create=False, wait=wait) as idx:
        if check:
            print_checks(idx.check(), as_json)
            return
        details = idx.info()
        print_notes(idx)
    if as_json:
        print_json(details.to_dict())
        return
    for key, value in details.to_dict().items():
        if key == "size_bytes":
            key, value = "size", f"{value / 1e6:.1f} MB" if value >= 0 else "- (on the Milvus server)"
        elif key == "revision" and value is None:
            value = "- (a local model folder)"
        elif key.endswith("_prompt"):
            value = "- (not recorded: the model's default prompt)" if value is None else repr(value)
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        typer.echo(f"{key.replace('_', ' ')}: {printable(str(value))}")


def repair(
    index: IndexOption = DEFAULT_INDEX,
    index_type: IndexTypeOption = None,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Rebuild the vector index from the vectors stored in SQLite, then verify the index."""
    with errors(), open_index(index, None, create=False, wait=wait, index_type=index_type) as idx:
        print_checks(idx.repair(), as_json)


def remove(
    paths: Annotated[
        list[Path], typer.Argument(help="Indexed files, or folders to remove everything under.", metavar="PATH")
    ],
    index: IndexOption = DEFAULT_INDEX,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Take documents out of the index (the files themselves are left alone)."""
    with errors(), open_index(index, None, create=False, wait=wait) as idx:
        report = idx.remove(list(paths))
    if as_json:
        print_json(report.to_dict())
        return
    typer.echo(f"removed {count(report.files_removed, 'document')}, {count(report.chunks_removed, 'chunk')}")


def migrate(
    source: Annotated[str, typer.Argument(help="The index to copy: a folder or a Milvus location.", metavar="SRC")],
    target: Annotated[str, typer.Argument(help="Where to copy it: a folder or a Milvus location.", metavar="DST")],
    index_type: IndexTypeOption = None,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Copy an index to another backend (a folder into Milvus, or back) with its stored vectors, nothing
    re-embedded; rerun to resume."""
    from ..index import migrate as copy

    with errors():
        report = copy(source, target, progress=None, index_type=index_type, wait=wait)
    if as_json:
        print_json(report.to_dict())
        return
    typer.echo(
        f"copied {count(report.documents_copied, 'document')} ({count(report.chunks_copied, 'chunk')}), "
        f"{report.documents_present} already there, {report.documents_removed} removed, in {report.seconds:.1f} s"
    )

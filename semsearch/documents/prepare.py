"""One source file -> the document row and chunks to embed, or why it was passed over.

Reads the file (the only I/O here); decides unchanged by size and mtime, then by content hash;
decodes and chunks. Knows nothing of the store, the vectors or the model beyond a tokenizer.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import ChunkSettings
from ..results import EMPTY, REFUSED, UNSUPPORTED, Skipped
from .chunking import Chunk, TokenCounts, TokenSpans, chunk_text
from .formats import Extracted, HeadingPaths, extract, missing_extra, page_at
from .reading import (
    CHANGED,
    NOT_REGULAR,
    OutsideError,
    UnreadableError,
    check_file,
    os_error_reason,
    read_bytes,
    too_large,
)


@dataclass(frozen=True)
class Document:
    """A file as the index records it: where, which content (sha256), its size and mtime when
    read, and the encoding its text was decoded from."""

    path: str
    content_hash: str
    size: int
    mtime: float
    encoding: str


@dataclass(frozen=True)
class Prepared:
    """A file to embed: its ``documents`` row and its chunks."""

    document: Document
    chunks: list[Chunk]
    is_update: bool  # the path was indexed before, with other content
    inputs: list[Any] | None = None  # the chunks tokenized for the model, when done ahead


class Unchanged:
    "The indexed copy of the file is current"


UNCHANGED = Unchanged()


@dataclass(frozen=True)
class Loaded:
    """A changed or new file, read: its stat, sha256 and extracted text."""

    path: Path
    info: os.stat_result
    digest: str
    extracted: Extracted
    is_update: bool


def prepare(
    path: Path,
    known: Document | None,
    token_spans: TokenSpans,
    settings: ChunkSettings,
    max_tokens: int,
    *,
    max_bytes: int | None = None,
    token_counts: TokenCounts | None = None,
) -> Prepared | Unchanged | Skipped:
    """Prepare ``path``; ``known`` is its current ``documents`` row, if any: ``read``, then ``cut``.

    A file that is not a regular one, is over ``max_bytes``, cannot be read, changes while it
    is read or is not text comes back as Skipped, with the reason.
    """
    loaded = read(path, known, max_bytes)
    if not isinstance(loaded, Loaded):
        return loaded
    return cut(loaded, token_spans, settings, max_tokens, token_counts)


def read(
    path: Path, known: Document | None, max_bytes: int | None = None, within: Sequence[str] = ()
) -> Loaded | Unchanged | Skipped:
    """``path`` read and its text extracted, or UNCHANGED when ``known`` (its ``documents`` row)
    is current, or Skipped with the reason. Needs no tokenizer: an ingest that finds nothing
    changed never loads the model. With ``within``, a file that is not, once opened, within
    those folders is refused (see ``sources.read_bytes``)."""
    missing = missing_extra(path.suffix)
    if missing:  # a type read with an extra that is not installed: grouped with unsupported types
        return Skipped(str(path), missing, UNSUPPORTED)
    try:
        loaded = _load(path, known, max_bytes, within)
    except OutsideError as exc:
        return Skipped(str(path), str(exc), REFUSED)
    except UnreadableError as exc:  # decoding errors included
        return Skipped(str(path), str(exc))
    except OSError as exc:
        return Skipped(str(path), os_error_reason(exc, path))
    if isinstance(loaded, Unchanged):
        return loaded
    info, digest, extracted = loaded
    if not extracted.text.strip():  # told here, without the tokenizer: no model loads for it
        return Skipped(str(path), _no_text(extracted), EMPTY)
    return Loaded(path, info, digest, extracted, is_update=known is not None)


def cut(
    loaded: Loaded,
    token_spans: TokenSpans,
    settings: ChunkSettings,
    max_tokens: int,
    token_counts: TokenCounts | None = None,
) -> Prepared | Skipped:
    """A read file's chunks (cut apart at pages and headings) and its ``documents`` row."""
    extracted, path = loaded.extracted, loaded.path
    text = extracted.text
    chunks: list[Chunk] = []
    lines, counted = 0, 0  # line breaks before ``counted``: counted on, so many sections stay linear
    headings = HeadingPaths(extracted.headings)
    for start, end in sections(extracted):
        found = chunk_text(
            text[start:end],
            token_spans,
            settings.chunk_tokens,
            settings.overlap_tokens,
            max_tokens=max_tokens,
            token_counts=token_counts,
        )
        lines, counted = lines + text.count("\n", counted, start), start
        chunks.extend(_placed(c, extracted.pages, headings, start, lines) for c in found)
    if not chunks:
        return Skipped(str(path), _no_text(extracted), EMPTY)
    document = Document(str(path), loaded.digest, loaded.info.st_size, loaded.info.st_mtime, extracted.encoding)
    return Prepared(document, chunks, is_update=loaded.is_update)


def _no_text(extracted: Extracted) -> str:
    """Why a file with nothing but white space to chunk is passed over."""
    return "no text (a scanned PDF?)" if extracted.pages else "empty or only white space"


def sections(extracted: Extracted) -> list[tuple[int, int]]:
    """(start, end) of the parts of the text chunked apart: split at each page and heading, so a
    chunk's page and headings are those of all of it; a heading with no text of its own before
    the next one stays with what follows. Linear in the text: each line is looked at once."""
    text, pages = extracted.text, set(extracted.pages)
    starts = {h.start for h in extracted.headings}
    cuts = sorted(c for c in {len(text)} | pages | starts if 0 < c <= len(text))
    parts, begin, at = [], 0, 0
    bare = True  # text[begin:at] is nothing but heading lines
    for cut in cuts:
        bare = bare and _only_headings(text, at, cut, starts)
        at = cut
        if cut < len(text) and cut not in pages and bare:
            continue
        parts.append((begin, cut))
        begin, bare = cut, True
    return parts


def _only_headings(text: str, start: int, end: int, starts: set[int]) -> bool:
    """Whether text[start:end] is nothing but heading lines (and Markdown underlines)."""
    at = start
    for line in text[start:end].splitlines(keepends=True):
        if line.strip() and at not in starts and not _UNDERLINE.fullmatch(line.strip()):
            return False
        at += len(line)
    return True


_UNDERLINE = re.compile(r"=+|-+")


def _placed(chunk: Chunk, pages: tuple[int, ...], headings: HeadingPaths, offset: int, lines: int) -> Chunk:
    """A chunk of the section at ``offset`` (after ``lines`` line breaks), placed in the whole
    text, with the page it is on and the headings it sits under (those at its end: any heading
    inside a chunk leads it, followed by the text it heads)."""
    start = chunk.start + offset
    page, heading = page_at(pages, start), headings.at(chunk.end + offset - 1)
    if not offset and page is None and heading is None:
        return chunk
    return replace(chunk, start=start, end=chunk.end + offset, line=chunk.line + lines, page=page, heading=heading)


def _load(
    path: Path, known: Document | None, max_bytes: int | None, within: Sequence[str] = ()
) -> tuple[os.stat_result, str, Extracted] | Unchanged:
    """The file's stat, sha256 and extracted text, or UNCHANGED; raises for a file to pass over.

    The bytes are dropped on return: only the text is held while it is chunked.
    """
    before = path.stat()
    if not stat.S_ISREG(before.st_mode):  # a FIFO would block the read forever
        raise UnreadableError(NOT_REGULAR)
    if known and known.size == before.st_size and known.mtime == before.st_mtime:
        if within:
            check_file(path, within)  # an unchanged name may now be a link leading out
        return UNCHANGED
    if max_bytes is not None and before.st_size > max_bytes:
        raise UnreadableError(too_large(before.st_size, max_bytes))
    data, digest = read_bytes(path, max_bytes, within)
    after = path.stat()
    if len(data) != before.st_size or _version(after) != _version(before):
        raise UnreadableError(CHANGED)
    if known and known.content_hash == digest:
        return UNCHANGED
    return before, digest, extract(path, data)


def _version(info: os.stat_result) -> tuple[int, int, int, int]:
    return info.st_size, info.st_mtime_ns, info.st_ino, info.st_dev

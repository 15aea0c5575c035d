"""Embedding queued files in batches of ``FLUSH_CHUNKS`` chunks and committing each batch: the
files it finishes are published, the embedded part of a file not finished yet is staged.

Before each batch is embedded, and again before it is committed, every queued file is checked
(one ``stat``) to be still there with the size and mtime it was read with. A file that vanished
or changed since is dropped: nothing more of it is embedded, it is not published, and its staged
work goes. So the work spent on a file that is no longer what was read stays within one batch,
however large the file (a 5 MB file that existed for 50 ms once cost a watch round 3,545 chunks).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..documents.prepare import Document, Prepared
from ..results import IngestReport, Skipped
from .backend import Backend, Published, Staged
from .progress import Progress

if TYPE_CHECKING:
    from ..embedding.encoder import Encoder

FLUSH_CHUNKS = 256  # chunks embedded and committed together: at most this much work is lost to a crash
VANISHED = "vanished before it was indexed"
CHANGED_SINCE_READ = "changed after it was read; ingest it again"


@dataclass
class Queued:
    """A file queued to be published: its chunks' vectors so far, and what is still to embed."""

    item: Prepared
    vectors: np.ndarray  # (chunks, dimension); the rows of ``missing`` are not filled yet
    missing: list[int]  # positions of the chunks still to embed, in order
    reused: bool = False  # chunks and vectors taken from an indexed copy of the same content
    staged: int = 0  # chunks this run embedded and staged, not yet published
    resumed: int = 0  # chunks taken from an earlier run's staged work


class Batch:
    """Files waiting to be embedded and published, and the commits that keep the work."""

    def __init__(
        self,
        backend: Backend,
        dimension: int,
        encoder: Callable[[], Encoder],
        report: IngestReport,
        stop: Callable[[], bool],
        progress: Progress,
    ) -> None:
        self.backend, self.dimension, self.encoder, self.report, self.stop = backend, dimension, encoder, report, stop
        self.progress = progress
        self.files: deque[Queued] = deque()
        self.to_embed = 0  # chunks of the queued files still to embed
        self.ready = 0  # chunks of queued files with nothing left to embed
        self.dropped: set[str] = set()  # paths of files dropped: vanished or changed since read

    def add(self, item: Prepared) -> int:
        """Queue a file; returns how many of its chunks it needs embedded (none when its
        content is indexed elsewhere, fewer when an earlier run staged some)."""
        dimension = self.dimension
        content = item.document.content_hash
        # read an indexed copy's vectors now, before this batch replaces any document
        copy = self.backend.find_content(content, item.chunks)
        if copy is not None:
            chunks, matrix = copy
            self.files.append(Queued(Prepared(item.document, chunks, item.is_update), matrix, [], reused=True))
            self.ready += len(chunks)
            return 0
        matrix = np.zeros((len(item.chunks), dimension), dtype=np.float32)
        staged = self.backend.staged(content)
        missing = []
        for seq, chunk in enumerate(item.chunks):
            found = staged.get(seq)
            if found is not None and found[:2] == (chunk.start, chunk.end):
                matrix[seq] = found[2]
            else:
                missing.append(seq)
        resumed = len(item.chunks) - len(missing)
        self.report.chunks_resumed += resumed
        self.files.append(Queued(item, matrix, missing, resumed=resumed))
        self.to_embed += len(missing)
        self.ready += 0 if missing else len(item.chunks)
        return len(missing)

    def flush(self, final: bool = False) -> None:
        """Embed and commit ``FLUSH_CHUNKS`` chunks at a time while that many wait or that many
        are ready to publish; ``final``: until nothing is left."""
        while self._due(final):
            self._drop_changed()  # nothing is embedded for a file that is no longer what was read
            if not self._due(final):
                break
            taken = self._embed_next()
            self._drop_changed(taken)  # nor published
            queued = {id(file) for file in self.files}
            self._commit([(file, part) for file, part in taken if id(file) in queued])

    def _due(self, final: bool) -> bool:
        return bool(self.files) and (final or self.to_embed >= FLUSH_CHUNKS or self.ready >= FLUSH_CHUNKS)

    def _drop_changed(self, taken: Sequence[tuple[Queued, list[int]]] = ()) -> None:
        """Drop each queued file that vanished or changed since it was read (see the module's
        docstring): reported as skipped, its staged work unstaged, its chunks no longer waited
        for; ``taken``, the chunks just embedded and not committed, are lost with it."""
        kept: deque[Queued] = deque()
        for file in self.files:
            reason = _changed(file.item.document)
            if reason is None:
                kept.append(file)
                continue
            self.to_embed -= len(file.missing)
            self.ready -= 0 if file.missing else len(file.item.chunks)
            self.report.chunks_staged -= file.staged
            self.report.chunks_resumed -= file.resumed
            self.report.skipped.append(Skipped(file.item.document.path, reason))
            self.dropped.add(file.item.document.path)
            lost = len(file.missing) + sum(len(part) for f, part in taken if f is file)
            self.progress.dropped(lost, file.item.document.path)
        if len(kept) == len(self.files):
            return
        content = {file.item.document.content_hash for file in self.files}
        self.files = kept
        unneeded = content - {file.item.document.content_hash for file in kept}
        if unneeded:
            self.backend.unstage(sorted(unneeded))

    def _embed_next(self) -> list[tuple[Queued, list[int]]]:
        """Embed the next ``FLUSH_CHUNKS`` chunks still to embed, in queue order, into their files."""
        taken: list[tuple[Queued, list[int]]] = []
        room = FLUSH_CHUNKS
        for file in self.files:
            if room == 0:
                break
            if file.missing:
                taken.append((file, file.missing[:room]))
                room -= len(taken[-1][1])
        if not taken:
            return taken
        encoder = self.encoder()
        inputs: list[Any] = []
        for file, part in taken:
            tokenized = file.item.inputs or encoder.tokenize_documents([c.text for c in file.item.chunks])
            inputs.extend(tokenized[seq] for seq in part)
        started = time.perf_counter()
        embedded = encoder.encode_tokenized(inputs, stop=self.stop)
        self.report.embedding_seconds += time.perf_counter() - started
        at = 0
        for file, part in taken:
            file.vectors[part] = embedded[at : at + len(part)]
            at += len(part)
            del file.missing[: len(part)]
            self.ready += 0 if file.missing else len(file.item.chunks)
        self.to_embed -= len(inputs)
        return taken

    def _commit(self, taken: list[tuple[Queued, list[int]]]) -> None:
        """One commit: publish every queued file with nothing left to embed, and stage the chunks
        just embedded of files that still miss some."""
        done = [file for file in self.files if not file.missing]
        partial = [(file, part) for file, part in taken if file.missing]
        if not done and not partial:
            return
        self.backend.commit(
            [Published(f.item.document, f.item.chunks, f.vectors, f.reused) for f in done],
            [
                Staged(
                    file.item.document.content_hash,
                    file.item.document.path,
                    [(seq, file.item.chunks[seq].start, file.item.chunks[seq].end) for seq in part],
                    file.vectors[part],
                )
                for file, part in partial
            ],
        )
        self.files = deque(file for file in self.files if file.missing)
        self.ready -= sum(len(file.item.chunks) for file in done)
        embedded = sum(len(part) for _, part in taken)
        for file, part in partial:
            file.staged += len(part)
        report = self.report
        report.chunks_embedded += embedded
        report.chunks_staged += sum(len(part) for _, part in partial) - sum(file.staged for file in done)
        report.files_reused += sum(1 for file in done if file.reused)
        report.files_updated += sum(1 for file in done if file.item.is_update)
        report.files_added += sum(1 for file in done if not file.item.is_update)
        self.progress.embedded(embedded, len(done))


def _changed(document: Document) -> str | None:
    """Why the file ``document`` was read from is no longer that file (None while it is): gone,
    or another size or mtime."""
    try:
        info = os.stat(document.path)
    except FileNotFoundError:
        return VANISHED
    except OSError:
        return CHANGED_SINCE_READ
    return None if (info.st_size, info.st_mtime) == (document.size, document.mtime) else CHANGED_SINCE_READ

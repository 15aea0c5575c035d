"""The ingest's progress bar: chunks embedded against chunks to embed, files done beside it."""

from __future__ import annotations

from pathlib import Path

from ..config import tqdm_disable
from ..documents.prepare import Document


class Progress:
    """The ingest's progress bar: chunks embedded against the chunks to embed, with the rate, the
    time left and the files done beside it.

    The chunks of files read so far are known exactly; the rest are estimated from the bytes of
    the files still to read that may have changed (size or mtime differs from the indexed copy),
    at the chunks per byte seen so far, so the time left means something from the first file on.
    """

    def __init__(self, files: list[Path], known: dict[str, Document], progress: bool | None) -> None:
        from tqdm.auto import tqdm

        disable = tqdm_disable(progress)
        self.bar = tqdm(total=0, desc="Embedding", unit="chunk", disable=disable, dynamic_ncols=True)
        self.files = len(files)
        self.done = 0
        self.queued = 0  # chunks to embed of the files read so far
        self.bytes_read = 0
        self.sizes = {} if self.bar.disable else _changed_sizes(files, known)
        self.bytes_left = sum(self.sizes.values())
        self._show()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def read(self, path: Path, chunks: int, done: bool) -> None:
        """A file came out of reading with ``chunks`` to embed (``done``: nothing more to do)."""
        size = self.sizes.pop(str(path), 0)
        self.bytes_left -= size
        self.bytes_read += size
        self.queued += chunks
        self.done += done
        self._show()

    def embedded(self, chunks: int, files: int) -> None:
        """``chunks`` more were embedded and ``files`` more published."""
        self.done += files
        self.bar.update(chunks)
        self._show()

    def dropped(self, chunks: int) -> None:
        """A file was dropped (vanished or changed since it was read) with ``chunks`` of it never
        to be embedded."""
        self.queued -= chunks
        self.done += 1
        self._show()

    def _show(self) -> None:
        if self.bar.disable:
            return
        rate = self.queued / self.bytes_read if self.bytes_read else 0.0
        self.bar.total = max(self.bar.n, self.queued + round(rate * self.bytes_left))
        self.bar.set_postfix_str(f"files {self.done}/{self.files}", refresh=False)
        self.bar.refresh()


def _changed_sizes(files: list[Path], known: dict[str, Document]) -> dict[str, int]:
    """Sizes of the files whose size or mtime differ from their indexed copy (or that have none)."""
    sizes: dict[str, int] = {}
    for path in files:
        try:
            info = path.stat()
        except OSError:
            continue
        row = known.get(str(path))
        if row is None or (row.size, row.mtime) != (info.st_size, info.st_mtime):
            sizes[str(path)] = info.st_size
    return sizes

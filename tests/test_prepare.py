"""One file -> Prepared, Unchanged or Skipped."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from semsearch.config import ChunkSettings
from semsearch.prepare import Prepared, Unchanged, prepare
from semsearch.sources import Skipped

SETTINGS = ChunkSettings(chunk_tokens=8, overlap_tokens=0)


def char_spans(texts: list[str]) -> list[list[tuple[int, int]]]:
    return [[(i, i + 1) for i, c in enumerate(t) if not c.isspace()] for t in texts]


def run(path: Path, known: dict | None = None) -> Prepared | Unchanged | Skipped:
    return prepare(path, known, char_spans, SETTINGS, max_tokens=8)


def test_new_file_is_prepared(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("第一句话。第二句话！", encoding="gbk")
    item = run(path)
    assert isinstance(item, Prepared) and not item.is_update
    assert [c.text for c in item.chunks] == ["第一句话。", "第二句话！"]
    assert item.document["encoding"] == "gb18030" and item.document["size"] == path.stat().st_size


def test_unchanged_by_size_and_mtime_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("内容。", encoding="utf-8")
    stat = path.stat()
    known = {"size": stat.st_size, "mtime": stat.st_mtime, "content_hash": "not-even-checked"}
    assert isinstance(run(path, known), Unchanged)


def indexed(path: Path, text: str) -> dict[str, Any]:
    """Write ``text`` to ``path`` and return the documents row a first ingest would store."""
    path.write_text(text, encoding="utf-8")
    item = run(path)
    assert isinstance(item, Prepared) and not item.is_update
    return item.document


def test_unchanged_by_content_hash_after_touch(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    known = indexed(path, "内容。")
    os.utime(path, (1, 1))  # a new mtime, so only the content hash can tell
    assert isinstance(run(path, known), Unchanged)


def test_changed_file_is_an_update(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    known = indexed(path, "旧内容。")
    path.write_text("新的内容，长一点。", encoding="utf-8")
    item = run(path, known)
    assert isinstance(item, Prepared) and item.is_update


def test_skipped_reasons(tmp_path: Path) -> None:
    (tmp_path / "blank.txt").write_text(" \n\t", encoding="utf-8")
    (tmp_path / "bin.txt").write_bytes(b"\x00" * 10)
    results = {name: run(tmp_path / name) for name in ("blank.txt", "bin.txt", "gone.txt")}
    reasons = {name: r.reason for name, r in results.items() if isinstance(r, Skipped)}
    assert reasons == {
        "blank.txt": "empty or only white space",
        "bin.txt": "binary file",
        "gone.txt": "vanished while reading",
    }

"""One file -> Prepared, Unchanged or Skipped."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from semsearch import results
from semsearch.config import ChunkSettings
from semsearch.documents import prepare as prepare_module
from semsearch.documents import reading as sources
from semsearch.documents.prepare import Document, Prepared, Unchanged, prepare
from semsearch.results import Skipped

SETTINGS = ChunkSettings(chunk_tokens=8, overlap_tokens=0)


def char_spans(texts: list[str]) -> list[list[tuple[int, int]]]:
    return [[(i, i + 1) for i, c in enumerate(t) if not c.isspace()] for t in texts]


def run(path: Path, known: Document | None = None) -> Prepared | Unchanged | Skipped:
    return prepare(path, known, char_spans, SETTINGS, max_tokens=8)


def test_new_file_is_prepared(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("第一句话。第二句话！", encoding="gbk")
    item = run(path)
    assert isinstance(item, Prepared) and not item.is_update
    assert [c.text for c in item.chunks] == ["第一句话。", "第二句话！"]
    assert item.document.encoding == "gb18030" and item.document.size == path.stat().st_size


def test_unchanged_by_size_and_mtime_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("内容。", encoding="utf-8")
    stat = path.stat()
    known = Document(str(path), "not-even-checked", stat.st_size, stat.st_mtime, "utf-8")
    assert isinstance(run(path, known), Unchanged)


def indexed(path: Path, text: str) -> Document:
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


def reason(path: Path, **options: Any) -> str:
    item = prepare(path, None, char_spans, SETTINGS, max_tokens=8, **options)
    assert isinstance(item, Skipped), item
    return item.reason


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_skipped_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    done: list[str] = []
    worker = threading.Thread(target=lambda: done.append(reason(tmp_path / "pipe.txt")), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert done == ["not a regular file"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_text("内容。", encoding="utf-8")
    path.chmod(0)
    assert reason(path) == "permission denied"


def test_file_that_vanishes_before_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.txt"
    path.write_text("内容。", encoding="utf-8")

    def vanish_then_read(target: Path, limit: int | None = None, within: tuple[str, ...] = ()) -> tuple[bytes, str]:
        target.unlink()
        return sources.read_bytes(target, limit, within)

    monkeypatch.setattr(prepare_module, "read_bytes", vanish_then_read)
    assert reason(path) == "vanished while reading"


@pytest.mark.parametrize("change", ["append", "touch"])
def test_file_that_changes_while_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    path = tmp_path / "a.txt"
    path.write_text("第一句话。", encoding="utf-8")

    def read_then_change(target: Path, limit: int | None = None, within: tuple[str, ...] = ()) -> tuple[bytes, str]:
        read = sources.read_bytes(target, limit, within)
        if change == "append":
            with target.open("a", encoding="utf-8") as file:
                file.write("写到一半又多了一句。")
        else:  # same size, new mtime
            os.utime(target, ns=(1, 1))
        return read

    monkeypatch.setattr(prepare_module, "read_bytes", read_then_change)
    assert reason(path) == "changed while being read; ingest it again"


def test_file_over_the_size_limit_is_skipped_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big, small = tmp_path / "big.txt", tmp_path / "small.txt"
    big.write_text("长" * 1000, encoding="utf-8")  # 3,000 bytes
    small.write_text("短。" * 500, encoding="utf-8")  # 3,000 bytes too: at the limit is fine
    assert isinstance(prepare(small, None, char_spans, SETTINGS, max_tokens=8, max_bytes=3000), Prepared)

    def fail(*args: object) -> None:
        raise AssertionError("a file over the limit was read")

    monkeypatch.setattr(prepare_module, "read_bytes", fail)
    assert reason(big, max_bytes=2000) == "larger than the 2 kB limit (size 3 kB)"
    assert reason(big, max_bytes=1000) == "larger than the 1 kB limit (size 3 kB)"


def test_no_size_limit_by_default(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("句子。" * 100_000, encoding="utf-8")
    assert isinstance(run(path), Prepared)


def test_sections_split_at_pages_and_headings_keeping_bare_titles_with_their_text() -> None:
    from semsearch.documents.formats import Extracted, markdown_headings
    from semsearch.documents.prepare import sections

    text = "# 茶\n\n## 绿茶\n\n龙井。\n\n## 红茶\n\n祁门。\n"
    headed = Extracted(text, "utf-8", headings=markdown_headings(text))
    red = text.index("## 红茶")
    assert sections(headed) == [(0, red), (red, len(text))]  # "# 茶" alone is not a section
    paged = Extracted("第一页\n\n第二页", "pdf", pages=(0, 5))
    assert sections(paged) == [(0, 5), (5, 8)]
    assert sections(Extracted("", "utf-8")) == []


def test_prepared_chunks_carry_page_and_heading(tmp_path: Path, tiny_encoder) -> None:
    path = tmp_path / "tea.md"
    path.write_text("# 茶\n\n## 绿茶\n\n龙井产于杭州。\n\n## 红茶\n\n祁门红茶香。\n", encoding="utf-8")
    item = prepare(path, None, tiny_encoder.token_spans, ChunkSettings(64, 8), tiny_encoder.max_text_tokens)
    assert isinstance(item, Prepared)
    text = path.read_text(encoding="utf-8")
    assert [(c.heading, c.page) for c in item.chunks] == [("茶 > 绿茶", None), ("茶 > 红茶", None)]
    assert all(text[c.start : c.end] == c.text for c in item.chunks)
    assert [c.line for c in item.chunks] == [1, 7]


# -- within the roots: what is opened is checked, not only what was walked ------------------------


def test_a_link_swapped_in_after_the_walk_cannot_read_outside(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    secret = outside / "passwd"
    secret.write_text("root:x:0:0:秘密。", encoding="utf-8")
    victim = root / "zzz.txt"
    victim.write_text("无害的内容。", encoding="utf-8")  # what the walk saw: a regular file inside
    victim.unlink()
    victim.symlink_to(secret)  # swapped in before the read
    within = (os.path.realpath(root),)
    item = prepare_module.read(victim, None, within=within)
    assert isinstance(item, Skipped) and item.reason == sources.OUTSIDE and item.kind == results.REFUSED
    folder_link = root / "sub"
    folder_link.symlink_to(outside)  # a folder swapped for a link: the path looks inside
    item = prepare_module.read(folder_link / "passwd", None, within=within)
    assert isinstance(item, Skipped) and item.kind == results.REFUSED
    inside = root / "fine.txt"
    inside.write_text("里面的文件。", encoding="utf-8")
    (root / "alias.txt").symlink_to(inside)  # a link that stays inside is fine
    assert isinstance(prepare_module.read(root / "alias.txt", None, within=within), prepare_module.Loaded)


def test_a_hard_link_within_the_roots_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_text("外面的秘密。", encoding="utf-8")
    os.link(outside, root / "linked.txt")
    item = prepare_module.read(root / "linked.txt", None, within=(os.path.realpath(root),))
    assert isinstance(item, Skipped) and item.reason == sources.HARD_LINK and item.kind == results.REFUSED
    assert isinstance(prepare_module.read(root / "linked.txt", None), prepare_module.Loaded)  # no roots: read


def test_an_unchanged_file_that_became_a_link_out_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("秘密。", encoding="utf-8")
    victim = root / "a.txt"
    victim.write_text("秘密。", encoding="utf-8")
    info = secret.stat()
    os.utime(victim, ns=(info.st_atime_ns, info.st_mtime_ns))
    known = Document(str(victim), "x", info.st_size, info.st_mtime, "utf-8")
    victim.unlink()
    victim.symlink_to(secret)  # same size and mtime as the indexed copy: would look unchanged
    item = prepare_module.read(victim, known, within=(os.path.realpath(root),))
    assert isinstance(item, Skipped) and item.kind == results.REFUSED

"""Context: hits widened by their neighbouring chunks, touching passages merged, text rebuilt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import semsearch
from semsearch.cli import app
from semsearch.results import Hit
from semsearch.retrieval.passages import around, join, merge, windows
from semsearch.storage.rows import ChunkRow

SOURCE = "第一句话。第二句话！\n\n第三句  话？第四句。\nFifth sentence. Sixth one."


def rows_of(spans: list[tuple[int, int]], document: int = 1) -> list[ChunkRow]:
    return [
        ChunkRow(
            id=100 * document + seq,
            text=SOURCE[s:e],
            start=s,
            end=e,
            line=SOURCE.count("\n", 0, s) + 1,
            page=None,
            heading=None,
            document_id=document,
            seq=seq,
            path=f"/doc{document}.txt",
        )
        for seq, (s, e) in enumerate(spans)
    ]


def test_join_rebuilds_the_source_from_overlapping_and_separated_chunks() -> None:
    cut = [(0, 10), (5, 10), (12, 23), (19, 23), (24, 39), (40, len(SOURCE))]
    assert [r.text for r in rows_of(cut)][:2] == ["第一句话。第二句话！", "第二句话！"]
    assert join(rows_of(cut)) == SOURCE  # overlaps once, two line breaks, one line break, a space
    assert join(rows_of([(0, 5), (5, 10)])) == SOURCE[:10]  # touching: nothing between
    assert join(rows_of([(0, 10), (2, 8)])) == SOURCE[:10]  # one inside the other


def hit(rank: int, chunk_id: int, matched: str = "dense") -> Hit:
    return Hit(rank, 1.0 - rank / 10, "", "", 1, 0, 0, chunk_id, matched, (), None, None, (chunk_id,))


def test_windows_join_when_they_overlap_or_touch_in_one_document() -> None:
    rows = {r.id: r for r in rows_of([(0, 1)] * 12) + rows_of([(0, 1)] * 12, document=2)}
    hits = [hit(1, 105), hit(2, 101), hit(3, 109), hit(4, 205)]
    assert sorted(windows(hits, rows, 1)) == [(1, 0, 2), (1, 4, 6), (1, 8, 10), (2, 4, 6)]
    assert sorted(windows(hits, rows, 2)) == [(1, 0, 11), (2, 3, 7)]  # 0-3, 3-7, 7-11 touch
    assert sorted(windows(hits, rows, 0)) == [(1, 1, 1), (1, 5, 5), (1, 9, 9), (2, 5, 5)]


def test_merge_keeps_the_best_rank_and_recounts_ranks() -> None:
    cut = [(0, 10), (12, 23), (24, 39), (40, len(SOURCE))]
    chunks = rows_of(cut)
    rows = {r.id: r for r in chunks}
    hits = [hit(1, 103, "dense"), hit(2, 101, "lexical"), hit(3, 100, "dense")]
    (only,) = merge(hits, rows, chunks, 1, "第二句")
    assert only.text == SOURCE and only.rank == 1 and only.chunk_id == 103
    assert only.chunk_ids == (100, 101, 102, 103) and only.matched == "dense+lexical"
    assert only.start == 0 and only.end == len(SOURCE) and only.line == 1
    assert only.highlights and all(only.text[s:e] in "第二句" for s, e in only.highlights)


def test_around_is_the_window_as_one_passage_with_the_querys_terms() -> None:
    chunks = rows_of([(0, 10), (12, 23), (24, 39)])
    passage = around(101, chunks, "第二句")
    assert passage.text == SOURCE[:39] and (passage.start, passage.end, passage.line) == (0, 39, 1)
    assert passage.chunk_id == 101 and passage.chunk_ids == (100, 101, 102) and passage.source == "/doc1.txt"
    assert [passage.text[s:e] for s, e in passage.highlights] == ["第二句"]
    assert around(101, chunks, None).highlights == ()


@pytest.fixture
def index(tmp_path: Path, tiny_model: Path) -> tuple[semsearch.Index, str]:
    text = "".join(f"这是第{n}句，讲的是{'熊猫' if n in (5, 6, 30) else '天气'}的故事。" for n in range(40))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "story.txt").write_text(text, encoding="utf-8")
    chunking = semsearch.ChunkSettings(chunk_tokens=24, overlap_tokens=6)
    idx = semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu", chunking=chunking)
    idx.ingest([tmp_path / "docs"])
    return idx, text


def test_context_passages_are_the_source_text_around_each_hit(index: tuple[semsearch.Index, str]) -> None:
    idx, text = index
    plain = idx.search("熊猫", k=3, mode="lexical")
    assert len(plain) == 3 and all(len(h.chunk_ids) == 1 for h in plain)
    widened = idx.search("熊猫", k=3, mode="lexical", context=1)
    assert 1 <= len(widened) <= 3 and [p.rank for p in widened] == list(range(1, len(widened) + 1))
    for passage in widened:
        assert passage.text == text[passage.start : passage.end]  # no white space to lose here
        assert len(passage.chunk_ids) >= 2 and list(passage.chunk_ids) == sorted(passage.chunk_ids)
        assert all(passage.text[s:e] == "熊猫" for s, e in passage.highlights)
    covered = {c for p in widened for c in p.chunk_ids}
    assert {h.chunk_id for h in plain} <= covered
    everything = idx.search("故事", k=100, mode="lexical", context=1)
    assert len(everything) == 1 and everything[0].text == text.strip()  # every hit touches the next


def test_query_context_prints_whole_passages(index: tuple[semsearch.Index, str], tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["query", "熊猫", "--index", str(tmp_path / "kb"), "--mode", "lexical", "-k", "2"]
    result = runner.invoke(app, [*base, "--context", "2", "--json"])
    assert result.exit_code == 0, result.output
    passages = json.loads(result.stdout)["results"]
    assert passages and all(len(p["chunk_ids"]) >= 3 for p in passages)
    shown = runner.invoke(app, [*base, "--context", "2"])
    assert shown.exit_code == 0 and passages[0]["text"] in shown.stdout
    assert runner.invoke(app, [*base, "--context", "-1"]).exit_code == 2


def test_index_passage_widens_one_chunk_in_its_document(index: tuple[semsearch.Index, str]) -> None:
    idx, text = index
    first, *_ = idx.search("熊猫", k=1, mode="lexical")
    alone = idx.passage(first.chunk_id, 0, "熊猫")
    assert (alone.text, alone.chunk_ids, alone.highlights) == (first.text, (first.chunk_id,), first.highlights)
    sizes = []
    for context in (1, 2, 3):
        passage = idx.passage(first.chunk_id, context, "熊猫")
        assert passage.text == text[passage.start : passage.end] and first.chunk_id in passage.chunk_ids
        assert passage.highlights and all(passage.text[s:e] == "熊猫" for s, e in passage.highlights)
        sizes.append(len(passage.chunk_ids))
    assert sizes[0] < sizes[1] < sizes[2] <= 7 and idx.passage(first.chunk_id, 2).highlights == ()
    # as search widens it: the same passage as the lone hit with context
    (widened,) = idx.search("熊猫", k=1, mode="lexical", context=2)
    assert idx.passage(first.chunk_id, 2, "熊猫").text == widened.text
    wide = idx.passage(first.chunk_id, 20)  # past the document's start: cut there, no error
    assert wide.start == 0 and wide.text == text[: wide.end] and len(wide.chunk_ids) > sizes[2]
    with pytest.raises(semsearch.ChunkNotFoundError, match="search again"):
        idx.passage(10**9, 1)
    for bad in (-1, 21, True, 1.5):
        with pytest.raises(semsearch.InvalidOptionError):
            idx.passage(first.chunk_id, bad)  # type: ignore[arg-type]

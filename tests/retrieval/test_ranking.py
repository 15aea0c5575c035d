"""Search modes end to end: lexical and hybrid search, fusion, highlights, repair, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import semsearch
from semsearch.cli import app
from semsearch.retrieval.ranking import Ranked, fuse


@pytest.fixture
def index(tmp_path: Path, tiny_model: Path, docs: Path) -> semsearch.Index:
    idx = semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu")
    idx.ingest([docs])
    return idx


def test_fusion_rewards_agreement_and_keeps_dense_order_on_ties() -> None:
    dense = [(1, 0.9), (2, 0.8), (3, 0.7)]
    lexical = [(3, 12.0), (4, 9.0)]
    fused = fuse(dense, lexical, rrf_k=60)
    assert [r.chunk_id for r in fused] == [3, 1, 2, 4]  # 3 is in both lists
    assert fused[0] == Ranked(3, 1 / 63 + 1 / 61, dense=True, lexical=True)
    assert fused[1].score == pytest.approx(1 / 61) and (fused[1].dense, fused[1].lexical) == (True, False)
    tie = fuse([(5, 0.5)], [(6, 3.0)])
    assert [r.chunk_id for r in tie] == [5, 6]
    # a small constant lets the top of one list outweigh agreement further down
    assert [r.chunk_id for r in fuse(dense, lexical, rrf_k=1)][:2] == [3, 1]
    assert fuse([], []) == []


def test_lexical_search_finds_exact_terms_with_highlights(index: semsearch.Index, docs: Path) -> None:
    hits = index.search("大熊猫", k=5, mode="lexical")
    assert hits and all(Path(h.source).name == "大熊猫.md" for h in hits)
    assert all(h.matched == "lexical" for h in hits) and [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score > 0 for a, b in zip(hits, hits[1:], strict=False))
    for hit in hits:
        assert hit.highlights and all(hit.text[s:e] == "大熊猫" for s, e in hit.highlights)
    python = index.search("PYTHON 3.12", k=3, mode="lexical")  # case and a number, in an English file
    assert python and all("3.12" in h.text or "python" in h.text.lower() for h in python)
    assert index.search("鸭嘴兽", k=5, mode="lexical") == []  # no term occurs anywhere
    assert index.search("？！", k=5, mode="lexical") == []  # no terms at all


def test_hybrid_combines_both_lists(index: semsearch.Index) -> None:
    dense = {h.chunk_id for h in index.search("大熊猫吃竹子", k=50, mode="dense")}
    lexical = {h.chunk_id for h in index.search("大熊猫吃竹子", k=50, mode="lexical")}
    hybrid = index.search("大熊猫吃竹子", k=10, mode="hybrid")
    assert len(hybrid) == 10 and {h.chunk_id for h in hybrid} <= dense | lexical
    for hit in hybrid:
        assert hit.matched == "+".join(
            name for name, found in (("dense", hit.chunk_id in dense), ("lexical", hit.chunk_id in lexical)) if found
        )
        assert bool(hit.highlights) == ("lexical" in hit.matched)
    assert all(a.score >= b.score for a, b in zip(hybrid, hybrid[1:], strict=False))


def test_modes_follow_updates_and_removals(index: semsearch.Index, docs: Path) -> None:
    (docs / "新文件.txt").write_text("蓝鲸是地球上最大的动物。", encoding="utf-8")
    index.ingest([docs])
    assert [Path(h.source).name for h in index.search("蓝鲸", k=3, mode="lexical")] == ["新文件.txt"]
    (docs / "新文件.txt").write_text("座头鲸会唱歌。", encoding="utf-8")
    index.ingest([docs])
    assert index.search("蓝鲸", k=3, mode="lexical") == []
    index.remove([docs / "新文件.txt"])
    assert index.search("座头鲸", k=3, mode="lexical") == []
    assert all(c.ok for c in index.check())


def test_bad_mode_and_repair_of_the_lexical_index(index: semsearch.Index) -> None:
    with pytest.raises(semsearch.InvalidOptionError, match="Unknown search mode 'fuzzy'"):
        index.search("熊猫", mode="fuzzy")
    with pytest.raises(semsearch.InvalidOptionError, match="rrf_k"):
        index.search("熊猫", mode="hybrid", rrf_k=0)
    index.handle.store.db.execute("DELETE FROM chunks_fts WHERE rowid IN (SELECT rowid FROM chunks_fts LIMIT 3)")
    failed = [c.name for c in index.check() if not c.ok]
    assert failed == ["chunks without lexical terms"]
    assert all(c.ok for c in index.repair())


def test_cli_query_modes_print_what_matched_and_json_highlights(index: semsearch.Index) -> None:
    runner = CliRunner()
    kb = str(index.folder)
    lexical = runner.invoke(app, ["query", "大熊猫", "--index", kb, "--mode", "lexical", "-k", "2"])
    assert lexical.exit_code == 0, lexical.output
    assert "[lexical]" in lexical.output and "大熊猫.md" in lexical.output
    hybrid = runner.invoke(app, ["query", "大熊猫", "--index", kb, "--mode", "hybrid", "--json"])
    results = json.loads(hybrid.output)["results"]
    assert len(results) == 10 and {"matched", "highlights"} <= set(results[0])
    first = next(r for r in results if "lexical" in r["matched"])
    assert all(first["text"][s:e] == "大熊猫" for s, e in first["highlights"])
    bad = runner.invoke(app, ["query", "熊猫", "--index", kb, "--mode", "fuzzy"])
    assert bad.exit_code == 2 and "'fuzzy' is not one of 'dense', 'lexical', 'hybrid'" in bad.output  # a usage error


def test_passage_shows_highlights_and_stays_on_one_line() -> None:
    import click

    from semsearch.cli.render import passage as _passage

    text = "第一行\n\n  大熊猫   吃竹子"
    shown = _passage(text, ((7, 10),))
    assert click.unstyle(shown) == "第一行 大熊猫 吃竹子"  # click drops the style off a terminal
    assert click.style("大熊猫", fg="yellow", bold=True) in shown
    long = "熊猫" * 200
    assert len(click.unstyle(_passage(long, ((0, 2),), width=20))) == 20 and _passage(long, (), width=20).endswith("…")

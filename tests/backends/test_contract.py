"""The backend contract, on every backend (``conftest.BACKENDS``): the same ingest, search,
filters, context, check and repair behaviour, checked against brute force over the vectors and
terms the backend itself stores, and migration between backends with identical hits."""

from __future__ import annotations

import importlib
import os
import shutil
import threading
from pathlib import Path

import lite_servers
import numpy as np
import pytest
from lite_servers import location_for

import semsearch
from semsearch import Query, Where
from semsearch.documents.formats import type_suffixes
from semsearch.documents.terms import terms
from semsearch.globs import glob_match, glob_regex, is_glob

backend, location = lite_servers.backend, lite_servers.location  # the fixtures: once per backend

TIE = 1e-5  # scores this close are a tie: float32 sums in another order may swap them

QUERIES = ["你是谁", "python packaging", "熊猫吃竹子", "coral reef bleaching"]
FILTERS = [
    None,
    Where(paths=("science",)),
    Where(paths=("**/*.md",)),
    Where(types=("txt",)),
    Where(modified_after=1_700_005_000.0),
    Where(paths=("science", "大熊猫.md"), types=("md",)),
]


def dated(docs: Path) -> Path:
    """Give the sample files distinct modification times, 1,000 s apart."""
    for number, path in enumerate(sorted(p for p in docs.rglob("*") if p.is_file())):
        os.utime(path, (1_700_000_000 + 1_000 * number,) * 2)
    return docs


def admitted(where: Where | None, path: str, mtime: float, base: Path) -> bool:
    """``where`` as the documents say it works, applied by hand."""
    if where is None:
        return True
    if where.paths:
        either = []
        for pattern in where.paths:
            if is_glob(pattern):
                full = pattern if pattern.startswith("**") else os.path.join(base, pattern)
                either.append(glob_match(glob_regex(full), path))
            else:
                folder = os.path.join(base, pattern)
                either.append(path == folder or path.startswith(folder + "/"))
        if not any(either):
            return False
    if where.types and os.path.splitext(path)[1].lower().lstrip(".") not in {
        s for t in where.types for s in type_suffixes(t)
    }:
        return False
    if where.modified_after is not None and mtime < where.modified_after:
        return False
    return where.modified_before is None or mtime <= where.modified_before


def untied(hits: list[semsearch.Hit]) -> tuple[int, list[tuple[str, int, int, float]]]:
    """How many hits, and those scoring above the last one, ties put in source order: equal
    scores are ordered by chunk id, and a migration gives chunks new ids."""
    found = sorted(((h.source, h.start, h.end, round(h.score, 4)) for h in hits), key=lambda h: (-h[3], h[:3]))
    return len(hits), [h for h in found if not hits or h[3] > round(hits[-1].score, 4)]


def stored_chunks(index: semsearch.Index) -> list[tuple[str, int, int, str, float, np.ndarray]]:
    """(path, start, end, text, mtime, vector) of every chunk, as the backend stores them."""
    found = []
    for item in index.handle.export(sorted(index.handle.documents())):
        for chunk, vector in zip(item.chunks, item.vectors, strict=True):
            found.append((item.document.path, chunk.start, chunk.end, chunk.text, item.document.mtime, vector))
    return found


@pytest.fixture
def built(location: str, docs: Path, tiny_model: Path):
    index = semsearch.open_index(location, str(tiny_model), device="cpu")
    index.ingest([dated(docs)])
    yield index
    index.close()


def test_ingest_reingest_rename_and_remove(built: semsearch.Index, docs: Path) -> None:
    info = built.info()
    assert (info.documents, info.chunks) == (12, built.handle.chunk_count()) and info.chunks > 12
    again = built.ingest([docs])
    assert (again.files_unchanged, again.chunks_embedded, again.files_added) == (12, 0, 0)
    (docs / "大熊猫.md").rename(docs / "熊猫.md")
    moved = built.ingest([docs])
    assert (moved.files_added, moved.files_removed, moved.files_reused, moved.chunks_embedded) == (1, 1, 1, 0)
    assert [h.source for h in built.search("熊猫", k=1, mode="lexical")] == [str(docs / "熊猫.md")]
    report = built.remove([docs / "science"])
    assert report.files_removed == 3 and report.chunks_removed > 0
    assert not [h for h in built.search("coral reef", k=50) if "/science/" in h.source]
    assert built.info().documents == 9 and all(c.ok for c in built.check())


@pytest.mark.parametrize("where", FILTERS, ids=lambda w: "none" if w is None else repr(w)[6:40])
def test_every_mode_and_filter_against_brute_force(built: semsearch.Index, docs: Path, where: Where | None) -> None:
    chunks = stored_chunks(built)
    allowed = [c for c in chunks if admitted(where, c[0], c[4], docs)]
    assert allowed, "every filter here matches something"
    vectors = np.stack([c[5] for c in allowed])
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for text in QUERIES:
        queries = [Query(text, k=5, mode=mode, where=where) for mode in ("dense", "lexical", "hybrid")]
        dense, lexical, hybrid = built.search_queries(queries, base=docs)
        query = built.encoder.encode([text])[0]
        scores = vectors @ (query / np.linalg.norm(query))
        best = np.argsort(-scores, kind="stable")[:5]
        assert np.allclose([h.score for h in dense], scores[best], atol=TIE)
        found = [(h.source, h.start, h.end) for h in dense]
        assert len(set(found)) == len(found) == min(5, len(allowed))
        position = {c[:3]: i for i, c in enumerate(allowed)}
        assert all(abs(scores[position[f]] - h.score) <= TIE for f, h in zip(found, dense, strict=True))
        # the brute-force top 5, but for ties (within float error) at the cut
        assert {allowed[i][:3] for i in best if scores[i] > scores[best[-1]] + TIE} <= set(found)
        wanted = set(terms(text))
        matching = {c[:3] for c in allowed if wanted & set(terms(c[3]))}
        assert {(h.source, h.start, h.end) for h in lexical} <= matching
        assert len(lexical) == min(5, len(matching))
        assert [h.score for h in lexical] == sorted((h.score for h in lexical), reverse=True)
        assert len(hybrid) == min(5, len(allowed))
        assert all(admitted(where, h.source, os.stat(h.source).st_mtime, docs) for h in hybrid)


def test_context_widens_each_hit_with_its_neighbours(built: semsearch.Index) -> None:
    hits = built.search("熊猫", k=3, mode="lexical", context=1)
    assert hits
    for hit in hits:
        text = Path(hit.source).read_text(encoding="utf-8")
        assert text[hit.start : hit.end] == hit.text and len(hit.chunk_ids) >= 2
    alone = {h.chunk_id for h in built.search("熊猫", k=3, mode="lexical")}
    assert alone <= {i for h in hits for i in h.chunk_ids}


def test_a_passage_around_a_hit_is_the_hits_context(built: semsearch.Index) -> None:
    (hit,) = built.search("熊猫", k=1, mode="lexical", context=1)
    passage = built.passage(hit.chunk_id, 1, "熊猫")
    assert (passage.text, passage.chunk_ids, passage.source) == (hit.text, hit.chunk_ids, hit.source)
    assert passage.highlights == hit.highlights and (passage.start, passage.end) == (hit.start, hit.end)
    assert built.passage(hit.chunk_id, 0).text == built.search("熊猫", k=1, mode="lexical")[0].text
    for missing in (12_345, 2**63, 10**30):
        with pytest.raises(semsearch.ChunkNotFoundError):
            built.passage(missing, 1)


def test_a_reranker_reorders_every_mode_with_filters_alike(
    location: str, tmp_path: Path, tiny_model: Path, oracle_reranker: Path
) -> None:
    from conftest import ORACLE_MARKER as M

    (tmp_path / "docs" / "other").mkdir(parents=True)
    texts = {"a.md": "苹果苹果苹果。苹果好吃。", "b.md": "苹果和香蕉。"}
    texts["other/c.md"] = f"很长的一段，最后提到苹果和{M}{M}。"  # the relevant one
    for name, text in texts.items():
        (tmp_path / "docs" / name).write_text(text, encoding="utf-8")
    with semsearch.open_index(location, str(tiny_model), device="cpu") as index:
        index.ingest([tmp_path / "docs"])
        for mode in ("dense", "lexical", "hybrid"):
            hits = index.search("苹果", k=3, mode=mode, rerank=str(oracle_reranker))
            assert Path(hits[0].source).name == "c.md" and all(h.reranked for h in hits)
        where = {"paths": [str(tmp_path / "docs" / "a.md"), str(tmp_path / "docs" / "b.md")]}
        kept = index.search("苹果", k=3, mode="hybrid", rerank=str(oracle_reranker), where=where)
        assert sorted(Path(h.source).name for h in kept) == ["a.md", "b.md"]


def test_an_ingest_removes_only_inside_what_it_was_given(built: semsearch.Index, docs: Path, tmp_path: Path) -> None:
    # a one-file ingest once removed every other document
    everything = set(built.handle.documents())
    (docs / "长城的历史.md").unlink()  # gone, but not where the next ingests look
    one = built.ingest([docs / "大熊猫.md"])
    assert (one.files_unchanged, one.files_removed) == (1, 0) and set(built.handle.documents()) == everything
    (docs / "science" / "coral_reefs.md").unlink()
    two = built.ingest([docs / "science", docs / "红烧肉做法.txt"])
    assert (two.files_unchanged, two.files_removed) == (3, 1)
    assert set(built.handle.documents()) == everything - {str(docs / "science" / "coral_reefs.md")}
    with pytest.raises(semsearch.NothingToIngestError):  # a file of no type read: that path's error
        built.ingest([docs / "notes.log"] if (docs / "notes.log").write_text("x") else [])
    with pytest.raises(semsearch.SourceNotFoundError):
        built.ingest([docs / "大熊猫.md", docs / "missing.md"])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.md").write_text("外面", encoding="utf-8")
    # refused: outside the folders that may be read; neither it nor anything else is touched
    refused = built.ingest([outside / "x.md", docs / "大熊猫.md"], within=[docs])
    assert (refused.files_removed, [s.kind for s in refused.skipped]) == (0, ["refused"])
    assert len(built.handle.documents()) == 11 and all(c.ok for c in built.check())


def test_the_same_bytes_as_another_type_are_cut_as_their_own_type(location: str, tmp_path: Path, tiny_model: Path):
    # found by the model-based test: a .txt copy of a Markdown file took the .md's chunks (cut
    # at its headings, with headings) from the index, as content reused by its hash
    docs = tmp_path / "docs"
    docs.mkdir()
    text = "# 长城\n\n长城是古代中国的防御工程。\n\n## 历史\n\n始建于春秋战国时期，明代大规模修筑。"
    (docs / "长城.md").write_text(text, encoding="utf-8")
    chunking = semsearch.ChunkSettings(chunk_tokens=24, overlap_tokens=4)
    with semsearch.open_index(location, str(tiny_model), device="cpu", chunking=chunking) as index:
        index.ingest([docs])
        (docs / "长城.txt").write_text(text, encoding="utf-8")
        report = index.ingest([docs])
        assert (report.files_added, report.files_reused) == (1, 0)
        exported = {Path(i.document.path).suffix: i for i in index.handle.export(sorted(index.handle.documents()))}
        assert [c.heading for c in exported[".txt"].chunks] == [None] * len(exported[".txt"].chunks)
        assert [c.heading for c in exported[".md"].chunks] == ["长城", "长城 > 历史"]
        (docs / "副本.md").write_text(text, encoding="utf-8")  # the same type: reused, nothing embedded
        again = index.ingest([docs])
        assert (again.files_reused, again.chunks_embedded) == (1, 0)


def test_a_file_emptied_has_its_document_removed(built: semsearch.Index, docs: Path) -> None:
    # found by the model-based test: an emptied file was skipped as "could not be read this
    # time" and its old text stayed searchable
    (docs / "大熊猫.md").write_text("  \n", encoding="utf-8")
    report = built.ingest([docs])
    assert report.files_removed == 1 and [s.kind for s in report.skipped] == ["empty"]
    assert str(docs / "大熊猫.md") not in built.handle.documents()
    assert not built.search("熊猫", k=5, mode="lexical", where={"paths": [str(docs / "大熊猫.md")]})


def test_a_reindex_with_nothing_left_to_read_changes_nothing(built: semsearch.Index, docs: Path) -> None:
    shutil.rmtree(docs)
    with pytest.raises(semsearch.NothingToIngestError):
        built.reindex()
    assert len(built.handle.documents()) == 12 and all(c.ok for c in built.check())


def test_a_reindex_that_makes_the_index_takes_the_chunking_it_was_opened_with(
    location: str, docs: Path, tiny_model: Path
) -> None:
    # found by the model-based test (a kill before the first commit left no manifest): the
    # reindex cut the files with the default 256 tokens instead
    chunking = semsearch.ChunkSettings(chunk_tokens=24, overlap_tokens=4)
    with semsearch.open_index(location, str(tiny_model), device="cpu", chunking=chunking) as index:
        index.reindex([docs])
        assert index.manifest is not None and index.manifest.chunking == chunking


def test_check_and_repair_pass_on_a_sound_index(built: semsearch.Index) -> None:
    assert all(c.ok for c in built.check()), built.check()
    assert all(c.ok for c in built.repair())


def test_shards_ingest_every_file_exactly_once(location: str, docs: Path, tiny_model: Path) -> None:
    with semsearch.open_index(location, str(tiny_model), device="cpu") as index:
        added = [index.ingest([docs], shard=(number, 3)).files_added for number in (1, 2, 3)]
        assert sum(added) == 12
        assert sorted(index.handle.documents()) == sorted(str(p) for p in docs.rglob("*") if p.is_file())
        assert all(c.ok for c in index.check())


def test_two_writers_on_disjoint_folders_at_once(location: str, docs: Path, tiny_model: Path) -> None:
    first, second = docs / "science", docs.parent / "other"
    second.mkdir()
    for path in [p for p in docs.iterdir() if p.is_file()]:
        path.rename(second / path.name)
    errors: list[BaseException] = []

    def write(folder: Path) -> None:
        try:
            with semsearch.open_index(location, str(tiny_model), device="cpu", wait=True) as index:
                index.ingest([folder])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(folder,)) for folder in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with semsearch.open_index(location, create=False) as index:
        assert len(index.handle.documents()) == 12 and all(c.ok for c in index.check())


@pytest.mark.slow
def test_migrate_both_ways_copies_without_embedding_and_finds_the_same(
    backend: str, docs: Path, tiny_model: Path, tmp_path: Path
) -> None:
    other = "milvus-lite" if backend == "local" else "local"
    source = location_for(backend, tmp_path, "source")
    middle, back = location_for(other, tmp_path, "middle"), location_for(backend, tmp_path, "back")
    with semsearch.open_index(source, str(tiny_model), device="cpu") as index:
        index.ingest([dated(docs)])
    first = semsearch.migrate(source, middle)
    assert (first.documents_copied, first.documents_present) == (12, 0) and first.chunks_copied > 12
    assert semsearch.migrate(source, middle).documents_copied == 0  # a rerun finds it all there
    assert semsearch.migrate(middle, back).documents_copied == 12
    found = {}
    for where in (source, middle, back):
        with semsearch.open_index(where, create=False, device="cpu") as index:
            assert all(c.ok for c in index.check())
            found[where] = {
                (text, mode): untied(index.search(text, k=5, mode=mode))
                for text in QUERIES
                for mode in ("dense", "lexical", "hybrid")
            }
    for key, (count, hits) in found[source].items():
        if key[1] != "hybrid":  # the same backend: the same hits, the same scores
            assert found[back][key] == (count, hits), key
        # hybrid ranks follow ties in BM25, which chunk ids order, and a migration renumbers chunks;
        # BM25's formula differs between the two engines: the same number of hits, the same best
        for other in (back, middle):
            assert found[other][key][0] == count, (key, other)
            assert [h[:3] for h in found[other][key][1][:1]] == [h[:3] for h in hits[:1]], (key, other)
    dense = {key: hits for key, hits in found[source].items() if key[1] == "dense"}
    assert {key: found[middle][key] for key in dense} == dense


def test_a_migration_into_itself_is_refused_however_the_index_is_named(
    backend: str, location: str, docs: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with semsearch.open_index(location, str(tiny_model), device="cpu") as index:
        index.ingest([docs])
    monkeypatch.chdir(tmp_path)
    if backend == "local":
        os.symlink(tmp_path / "index", tmp_path / "link")
        namings = ["index", "./index/", str(tmp_path / "index"), "link", f"{tmp_path}/sub/../index"]
    else:
        namings = ["milvus-lite:index.db", "milvus-lite:./index.db/semsearch", f"milvus-lite:{tmp_path}/index.db"]
    for naming in namings:
        with pytest.raises(semsearch.SameIndexError, match="into itself"):
            semsearch.migrate(location, naming)
    if backend != "local":  # another collection of the same Lite file is another index
        assert semsearch.migrate(location, "milvus-lite:index.db/other").documents_copied == 12
    with semsearch.open_index(location, create=False) as index:
        assert len(index.handle.documents()) == 12 and all(c.ok for c in index.check())


def test_lexical_terms_fold_alike_on_every_backend(location: str, tmp_path: Path, tiny_model: Path) -> None:
    folder = tmp_path / "terms"
    folder.mkdir()
    (folder / "wide.md").write_text("安装 ＰＹＴＨＯＮ　３．１２ 和 Ｃ＋＋ 编译器。", encoding="utf-8")
    (folder / "other.md").write_text("安装 c 语言 3.11 和 java。", encoding="utf-8")
    with semsearch.open_index(location, str(tiny_model), device="cpu") as index:
        index.ingest([folder])
        for query in ("python", "PYTHON", "3.12", "c++", "ｃ＋＋"):
            hits = index.search(query, k=5, mode="lexical")
            assert [Path(h.source).name for h in hits] == ["wide.md"], query


def test_traditional_and_simplified_find_each_other_on_every_backend(
    location: str, tmp_path: Path, tiny_model: Path
) -> None:
    folder = tmp_path / "variants"
    folder.mkdir()
    (folder / "traditional.md").write_text("萬里長城。電腦的記憶體不夠，軟體很慢。", encoding="utf-8")
    (folder / "simplified.md").write_text("黄河很长。我的内存够用。", encoding="utf-8")
    (folder / "other.md").write_text("熊猫吃竹子。", encoding="utf-8")
    with semsearch.open_index(location, str(tiny_model), device="cpu") as index:
        index.ingest([folder])
        for query, wanted in [("长城", ["traditional.md"]), ("黃河", ["simplified.md"]), ("软件", ["traditional.md"])]:
            hits = index.search(query, k=5, mode="lexical")
            assert [Path(h.source).name for h in hits] == wanted, query
        found = index.search("記憶體", k=5, mode="lexical")
        assert sorted(Path(h.source).name for h in found) == ["simplified.md", "traditional.md"]
        spans = {Path(h.source).name: [h.text[s:e] for s, e in h.highlights] for h in found}
        assert spans == {"traditional.md": ["記憶體"], "simplified.md": ["内存"]}  # the original characters


def test_an_interrupted_migration_resumes_where_it_stopped(
    backend: str, docs: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migration = importlib.import_module("semsearch.index.migration")

    source, target = location_for("local", tmp_path, "source"), location_for(backend, tmp_path, "target")
    with semsearch.open_index(source, str(tiny_model), device="cpu") as index:
        index.ingest([docs])
    commits = []
    real = migration._commit

    def stop_after_one(target_backend, batch, report, bar) -> None:  # type: ignore[no-untyped-def]
        if commits and batch:
            raise KeyboardInterrupt
        commits.append(len(batch))
        real(target_backend, batch, report, bar)

    monkeypatch.setattr(migration, "FLUSH_CHUNKS", 5)
    monkeypatch.setattr(migration, "_commit", stop_after_one)
    with pytest.raises(KeyboardInterrupt):
        semsearch.migrate(source, target)
    monkeypatch.setattr(migration, "_commit", real)
    resumed = semsearch.migrate(source, target)
    assert resumed.documents_present == commits[0] and resumed.documents_copied == 12 - commits[0]
    with semsearch.open_index(target, create=False) as index:
        assert len(index.handle.documents()) == 12 and all(c.ok for c in index.check())

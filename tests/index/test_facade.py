"""The Python API end to end: ingest, search, update, remove, model checks, vector rebuild."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

import semsearch
from semsearch.storage.vectors import normalize, saved_files


@pytest.fixture
def index(tmp_path: Path, tiny_model: Path, docs: Path) -> semsearch.Index:
    idx = semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu")
    report = idx.ingest([docs])
    assert report.files_added == 12 and report.chunks_embedded == report.chunks_total > 12
    return idx


def brute_force(idx: semsearch.Index, query: str) -> dict[int, float]:
    """Cosine score of every stored chunk, by id, computed with numpy."""
    store = idx.handle.store
    assert store is not None
    ids, matrix = zip(*store.iter_vectors(idx.manifest.model.dimension), strict=True)
    ids_all, vectors = np.concatenate(ids), normalize(np.concatenate(matrix))
    q = normalize(idx.encoder.encode([query]))[0]
    return dict(zip(ids_all.tolist(), (vectors @ q).tolist(), strict=True))


def test_search_matches_brute_force_over_stored_vectors(index: semsearch.Index) -> None:
    # near-tied scores may swap places between FAISS and numpy, so compare scores rank by rank
    # and check each returned id really has the score it is reported with
    for query in ["你是谁？", "大熊猫吃什么", "how to bake sourdough bread", "Python 3.12"]:
        hits = index.search(query, k=5)
        scores = brute_force(index, query)
        best = sorted(scores.values(), reverse=True)[:5]
        assert np.allclose([h.score for h in hits], best, atol=1e-5)
        assert all(abs(scores[h.chunk_id] - h.score) < 1e-5 for h in hits)
        assert len({h.chunk_id for h in hits}) == 5
        assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
        assert all(a.score >= b.score for a, b in pairwise(hits))


def test_hits_point_into_their_source(index: semsearch.Index, docs: Path) -> None:
    for hit in index.search("茶", k=10):
        source = Path(hit.source)
        assert source.is_absolute() and docs in source.parents
        from semsearch.documents.reading import decode

        text, _ = decode(source.read_bytes())
        assert text[hit.start : hit.end] == hit.text
        assert hit.line == text.count("\n", 0, hit.start) + 1


def test_stored_vectors_are_the_encoder_output(index: semsearch.Index) -> None:
    hit = index.search("长城", k=1)[0]
    stored = {
        int(i): v for ids, matrix in index.handle.store.iter_vectors(96) for i, v in zip(ids, matrix, strict=True)
    }
    assert np.abs(stored[hit.chunk_id] - index.encoder.encode([hit.text])[0]).max() < 1e-5


def test_min_score_and_k(index: semsearch.Index) -> None:
    hits = index.search("熊猫", k=3)
    assert len(hits) == 3
    cut = index.search("熊猫", k=3, min_score=hits[1].score)
    assert [h.chunk_id for h in cut] == [h.chunk_id for h in hits[:2]]
    assert len(index.search("熊猫", k=10_000)) == index.info().chunks


def test_ingest_twice_embeds_nothing(index: semsearch.Index, docs: Path) -> None:
    report = index.ingest([docs])
    assert (report.files_unchanged, report.chunks_embedded, report.files_added) == (12, 0, 0)


def test_touched_but_unchanged_file_is_not_embedded(index: semsearch.Index, docs: Path) -> None:
    path = docs / "大熊猫.md"
    path.write_bytes(path.read_bytes())  # new mtime, same content
    report = index.ingest([docs])
    assert report.files_unchanged == 12 and report.chunks_embedded == 0


def test_changed_file_replaces_its_chunks(index: semsearch.Index, docs: Path) -> None:
    before = index.info().chunks
    path = docs / "长城的历史.md"
    path.write_text("# 新内容\n\n这份文件已经完全改写，只剩一句话。", encoding="utf-8")
    report = index.ingest([docs])
    assert (report.files_updated, report.chunks_embedded) == (1, 1)
    hits = [h for h in index.search("完全改写", k=100) if h.source == str(path)]
    assert len(hits) == 1 and "完全改写" in hits[0].text
    assert index.info().chunks < before


def test_deleted_file_is_removed(index: semsearch.Index, docs: Path) -> None:
    (docs / "science" / "coral_reefs.md").unlink()
    report = index.ingest([docs])
    assert report.files_removed == 1
    assert all("coral_reefs" not in h.source for h in index.search("coral reef", k=100))
    assert index.info().documents == 11


def test_ingesting_a_subfolder_leaves_the_rest_alone(index: semsearch.Index, docs: Path) -> None:
    report = index.ingest([docs / "science"])
    assert report.files_unchanged == 3 and report.files_removed == 0
    assert index.info().documents == 12


def test_unsupported_files_are_skipped_and_counted(index: semsearch.Index, docs: Path) -> None:
    (docs / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (docs / "empty.txt").write_text("  \n ", encoding="utf-8")
    (docs / "binary.txt").write_bytes(b"\x00\x01\x02" * 100)
    report = index.ingest([docs])
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(reasons) == {"photo.png", "empty.txt", "binary.txt"}
    assert "binary" in reasons["binary.txt"] and "empty" in reasons["empty.txt"]
    assert report.files_unchanged == 12


def test_gbk_file_is_decoded(index: semsearch.Index, docs: Path) -> None:
    hits = [h for h in index.search("茶", k=100) if h.source.endswith("中国茶文化_gbk.txt")]
    assert hits and "茶" in hits[0].text


def test_reopen_uses_the_manifest_model(index: semsearch.Index, tiny_model: Path) -> None:
    folder = index.folder
    expected = index.search("你是谁？", k=3)
    index.close()
    reopened = semsearch.open_index(folder, device="cpu")
    assert reopened.manifest.model.model == str(tiny_model)
    assert reopened.search("你是谁？", k=3) == expected


def test_a_model_folder_may_be_given_as_a_path(tmp_path: Path, tiny_model: Path, docs: Path) -> None:
    # a pathlib.Path, as a folder usually comes in Python, is recorded as its string
    with semsearch.open_index(tmp_path / "kb", model=tiny_model, device="cpu") as idx:
        assert idx.ingest([docs / "大熊猫.md"]).files_added == 1
        assert idx.manifest.model.model == str(tiny_model)
    with semsearch.open_index(tmp_path / "kb", model=tiny_model, device="cpu") as idx:
        assert idx.search("大熊猫", k=1)[0].source.endswith("大熊猫.md")
    assert semsearch.Encoder.load(tiny_model, device="cpu").encode(["你好"]).shape[0] == 1


def test_a_different_model_is_refused(index: semsearch.Index, minilm_model: Path) -> None:
    with pytest.raises(semsearch.ModelMismatchError, match="was built with model"):
        semsearch.open_index(index.folder, model=str(minilm_model))


def test_the_same_model_moved_is_accepted(index: semsearch.Index, tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    moved = shutil.copytree(tiny_model, tmp_path / "moved-model")
    assert semsearch.open_index(index.folder, model=str(moved)).manifest is not None


def test_changed_chunking_is_refused(index: semsearch.Index) -> None:
    with pytest.raises(semsearch.InvalidOptionError, match="chunks"):
        semsearch.open_index(index.folder, chunking=semsearch.ChunkSettings(100, 10))


def test_chunk_tokens_over_the_model_limit(tmp_path: Path, minilm_model: Path, docs: Path) -> None:
    idx = semsearch.open_index(tmp_path / "kb", model=str(minilm_model), chunking=semsearch.ChunkSettings(400, 0))
    with pytest.raises(semsearch.InvalidOptionError, match="between 1 and 254"):
        idx.ingest([docs])
    assert not (tmp_path / "kb").exists()


def test_default_chunk_size_fits_a_short_model(tmp_path: Path, minilm_model: Path, docs: Path) -> None:
    idx = semsearch.open_index(tmp_path / "kb", model=str(minilm_model), device="cpu")
    idx.ingest([docs / "python_packaging.rst"])
    assert idx.manifest.chunking.chunk_tokens == 254


def test_remove(index: semsearch.Index, docs: Path) -> None:
    report = index.remove([docs / "science"])
    assert report.files_removed == 3 and report.chunks_removed > 0
    assert index.info().documents == 9
    assert all("/science/" not in h.source for h in index.search("行星", k=100))
    with pytest.raises(semsearch.SourceNotFoundError, match="Nothing indexed"):
        index.remove([docs / "science"])


def test_vector_file_behind_the_database_is_brought_up_to_date(index: semsearch.Index, docs: Path) -> None:
    folder = index.folder
    (path, _), *_ = saved_files(folder)
    old_name, old_file = path.name, path.read_bytes()
    (docs / "新文件.txt").write_text("睡眠不足会影响记忆力。" * 20, encoding="utf-8")
    index.ingest([docs])
    expected = index.search("睡眠", k=100)
    assert any("新文件" in h.source for h in expected)
    index.close()
    for path, _ in saved_files(folder):
        path.unlink()
    (folder / old_name).write_bytes(old_file)  # as if a crash came between SQLite and FAISS
    reopened = semsearch.open_index(folder, device="cpu")
    assert reopened.search("睡眠", k=100) == expected
    assert len(reopened.notes) == 1 and "brought it up to date" in reopened.notes[0]
    assert [state for _, state in saved_files(folder)] == [reopened.handle.store.state()]  # saved: the lock was free
    assert failed(reopened.check()) == {}


def test_errors(tmp_path: Path, tiny_model: Path) -> None:
    with pytest.raises(semsearch.IndexNotFoundError, match="No index at"):
        semsearch.open_index(tmp_path / "none", create=False)
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(semsearch.IndexNotFoundError, match="is a file, not an index folder"):
        semsearch.open_index(tmp_path / "notes.txt")
    idx = semsearch.open_index(tmp_path / "kb", model=str(tiny_model))
    with pytest.raises(semsearch.IndexNotFoundError, match="No index at"):
        idx.search("anything")  # nothing ingested yet: no index to search, and it says so
    (tmp_path / "empty").mkdir()
    with pytest.raises(semsearch.NothingToIngestError):
        idx.ingest([tmp_path / "empty"])
    with pytest.raises(semsearch.SourceNotFoundError, match="no-such"):
        idx.ingest([tmp_path / "no-such"])
    assert not (tmp_path / "kb").exists()  # nothing written by failed ingests
    with pytest.raises(semsearch.InvalidQueryError):
        idx.search("   ")


def failed(checks: list[semsearch.Check]) -> dict[str, str]:
    return {c.name: c.detail for c in checks if not c.ok}


def test_a_sound_index_passes_every_check(index: semsearch.Index) -> None:
    checks = index.check()
    assert len(checks) == 13 and failed(checks) == {}


def test_a_missing_or_behind_vector_file_is_brought_up_to_date_by_check(index: semsearch.Index) -> None:
    # what a kill -9 between a commit and the vector file's save leaves: the database ahead
    for path, _ in saved_files(index.folder):
        path.unlink()
    with semsearch.open_index(index.folder, create=False) as other:  # a process of its own
        checks = {c.name: c for c in other.check()}
    assert all(c.ok for c in checks.values()) and "no vector file" in checks["vector index file current"].detail
    assert saved_files(index.folder) and failed(index.check()) == {} and failed(index.repair()) == {}


def test_extra_and_missing_faiss_ids_fail_and_repair_fixes_them(index: semsearch.Index) -> None:
    from semsearch.storage.vectors import FaissIndex

    (path, _), *_ = saved_files(index.folder)
    vectors = FaissIndex.load(path, 96, use_gpu=False)
    vectors.remove(vectors.ids()[:2])
    vectors.add(np.array([10**9], dtype=np.int64), np.ones((1, 96), dtype=np.float32))
    vectors.save(index.folder, index.handle.store.state())
    assert failed(index.check()) == {
        "vector index matches the chunks": "2 chunks without a vector, 1 vectors without a chunk",
        "vector index holds the stored vectors": f"2 of {len(index.handle.store.chunk_ids())} compared differ; "
        "run 'semsearch repair'",
    }
    assert failed(index.repair()) == {}


def test_store_problems_are_reported(index: semsearch.Index) -> None:
    db = index.handle.store.db
    db.execute("DELETE FROM vectors WHERE chunk_id = (SELECT min(id) FROM chunks)")
    db.execute("UPDATE documents SET chunks = chunks + 1 WHERE id = (SELECT min(id) FROM documents)")
    problems = failed(index.repair())  # repair rebuilds FAISS from SQLite: it cannot invent a vector
    assert problems["chunks without a vector"] == "1 found"
    assert problems["documents with a wrong chunk count"] == "1 found"
    assert problems["vector index matches the chunks"] == "1 chunks without a vector, 0 vectors without a chunk"


def test_corrupt_vector_file_is_reported_and_repaired(index: semsearch.Index) -> None:
    (path, _), *_ = saved_files(index.folder)
    path.write_bytes(path.read_bytes()[:100])
    assert "vector index readable" in failed(index.check())
    assert failed(index.repair()) == {}


def test_one_handle_serves_many_threads(index: semsearch.Index, docs: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    queries = ["大熊猫", "长城", "睡眠", "红烧肉", "bread", "bicycle"] * 6
    expected = {q: [h.chunk_id for h in index.search(q, k=3, mode="hybrid")] for q in queries}
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda q: [h.chunk_id for h in index.search(q, k=3, mode="hybrid")], queries))
        (docs / "新文件.txt").write_text("线程里写入的新文件。", encoding="utf-8")
        ingested = pool.submit(index.ingest, [docs])  # a write from another thread, among the searches
        more = list(pool.map(lambda q: index.search(q, k=3), queries))
    assert found == [expected[q] for q in queries]
    assert ingested.result().files_added == 1 and all(len(hits) == 3 for hits in more)


def test_a_closed_index_says_so(index: semsearch.Index) -> None:
    index.close()
    index.close()  # twice is fine
    with pytest.raises(semsearch.IndexClosedError, match="closed"):
        index.search("长城")
    with pytest.raises(semsearch.IndexClosedError):
        index.info()


def test_run_answers_mixed_queries_as_each_alone(index: semsearch.Index, docs: Path) -> None:
    queries = [
        semsearch.Query("大熊猫", k=3, mode="hybrid"),
        semsearch.Query("长城", k=5, where=semsearch.Where(types=("md",))),
        semsearch.Query("茶", k=2, mode="lexical", context=1),
        semsearch.Query("大熊猫", k=4, where=semsearch.Where(paths=(str(docs / "science"),))),
    ]
    together = index.run(queries)
    for query, hits in zip(queries, together, strict=True):
        alone = index.search(query.text, query.k, mode=query.mode, where=query.where, context=query.context)
        # embedded in one batch or alone, a vector can differ in its last bits: near-ties may swap
        assert [h.score for h in hits] == pytest.approx([h.score for h in alone], abs=1e-5) and hits
        clear = [h.chunk_id for h in hits if h.score > hits[-1].score + 1e-4]
        assert set(clear) <= {h.chunk_id for h in alone}
    assert all(h.source.endswith(".md") for h in together[1])
    assert all("/science/" in h.source for h in together[3])


def test_a_search_where_there_is_no_index_raises_but_the_handle_can_create_one(
    tmp_path: Path, tiny_model: Path, docs: Path
) -> None:
    typo = semsearch.open_index(tmp_path / "no-such-index", model=str(tiny_model), device="cpu")
    for call in (
        lambda: typo.search("bread"),
        lambda: typo.search("bread", mode="lexical"),
        lambda: typo.search_many(["bread", "面包"]),
        lambda: typo.info(),
        lambda: typo.check(),
        lambda: typo.remove([docs]),
    ):
        with pytest.raises(semsearch.IndexNotFoundError, match="No index at"):
            call()
    typo.ingest([docs])  # the same handle creates the index
    assert typo.search("熊猫", mode="lexical")
    typo.close()


def test_a_filter_that_matches_no_document_says_which(index: semsearch.Index, docs: Path) -> None:
    assert index.search("熊猫", where={"types": ["foo"]}) == []
    assert index.notes[-1] == ("No indexed document matches the type filter 'foo' (types indexed: md, rst, txt)")
    assert index.search("熊猫", where={"paths": [str(docs / "nowhere"), "**/*.pdf"]}) == []
    assert "the path filter" in index.notes[-1] and "'**/*.pdf'" in index.notes[-1]
    assert index.search("熊猫", where={"paths": ["**/大熊猫.md"], "types": ["txt"]}) == []
    assert index.notes[-1] == "No indexed document passes all the filters together"
    before = list(index.notes)
    assert index.search("熊猫", where={"types": ["md"]}, mode="lexical")  # found: no note
    assert index.notes == before


def test_a_database_restored_from_a_backup_never_meets_stale_vectors(
    tmp_path: Path, tiny_model: Path, docs: Path
) -> None:
    import shutil

    a, b, c = (tmp_path / name for name in ("a", "b", "c"))
    for folder, word in ((a, "甲"), (b, "乙"), (c, "丙")):
        folder.mkdir()
        for n in range(3):
            (folder / f"{n}.txt").write_text(f"{word}{n}的内容，各不相同。" * (n + 2), encoding="utf-8")
    folder = tmp_path / "kb"
    with semsearch.open_index(folder, model=str(tiny_model), device="cpu") as index:
        index.ingest([a])
        a_ids = set(index.handle.store.chunk_ids().tolist())
    backup = (folder / "semsearch.db").read_bytes()  # closed: the WAL is checkpointed into it
    with semsearch.open_index(folder, device="cpu") as index:
        index.ingest([b])
        b_ids = set(index.handle.store.chunk_ids().tolist()) - a_ids
    for leftover in folder.glob("semsearch.db-*"):
        leftover.unlink()
    (folder / "semsearch.db").write_bytes(backup)  # back to before b: the vector file is of a lost state
    with semsearch.open_index(folder, device="cpu") as index:
        index.ingest([c])  # the same generation number again, other chunks
        assert any("never had" in note for note in index.notes)
        c_ids = set(index.handle.store.chunk_ids().tolist()) - a_ids
        assert c_ids and min(c_ids) > max(b_ids)  # an id never stands for two chunks
        assert failed(index.check()) == {}
        stored = dict(zip(*next(index.handle.store.iter_vectors(96, batch=10_000)), strict=True))
        for chunk_id, vector in stored.items():  # every vector searched is the chunk's own
            found = index.handle.vectors().cpu.reconstruct(int(chunk_id))
            assert np.allclose(found, normalize(vector[None])[0], atol=1e-5)
    shutil.rmtree(folder)


def test_documents_an_exclude_now_leaves_out_are_removed_and_counted(index: semsearch.Index, docs: Path) -> None:
    report = index.ingest([docs], exclude=["science/"])
    assert (report.files_removed, report.files_removed_excluded) == (3, 3)
    (docs / "大熊猫.md").unlink()
    report = index.ingest([docs], exclude=["science/"])
    assert (report.files_removed, report.files_removed_excluded) == (1, 0)  # gone from disk: not "excluded"


def test_a_vector_file_that_does_not_hold_what_its_state_says_is_called_damaged(index: semsearch.Index) -> None:
    from semsearch.storage.vectors import FaissIndex

    (path, state), *_ = saved_files(index.folder)
    assert state == index.handle.store.state()
    vectors = FaissIndex.load(path, 96, use_gpu=False)
    vectors.remove(vectors.ids()[:3])  # as flipped bytes would lose them, under the same name
    vectors.save(index.folder, state)
    index.close()
    with semsearch.open_index(index.folder, device="cpu") as reopened:
        reopened.search("熊猫", k=3)
        assert len(reopened.notes) == 1 and "did not hold what the database does (damaged?)" in reopened.notes[0]
        assert "behind" not in reopened.notes[0]
        assert failed(reopened.check()) == {}  # brought in step and saved


def test_vectors_of_the_wrong_size_say_that_only_a_reindex_mends_them(index: semsearch.Index) -> None:
    store = index.handle.store
    (chunk_id,) = store.db.execute("SELECT chunk_id FROM vectors LIMIT 1").fetchone()
    with store.transaction():
        store.db.execute("UPDATE vectors SET vector = ? WHERE chunk_id = ?", [b"\0" * 12, chunk_id])
    assert (
        failed(index.check())["vectors of the wrong size"] == "1 found; re-embed them with 'semsearch ingest --reindex'"
    )
    with pytest.raises(
        semsearch.IndexCorruptError, match="cannot mend; re-embed them with 'semsearch ingest --reindex'"
    ):
        index.repair()


def test_a_reader_never_meets_a_half_made_index(tmp_path: Path, tiny_model: Path, docs: Path) -> None:
    # searches in a loop while the first ingest creates the index see no index, then the index;
    # never a locked or damaged one (they made the first ingest fail with 'database is locked')
    import threading

    from semsearch.errors import IndexNotFoundError

    seen: list[str] = []
    done = threading.Event()

    def search() -> None:
        while not done.is_set():
            try:
                with semsearch.open_index(tmp_path / "kb", create=False, device="cpu") as reader:
                    reader.search("大熊猫", k=1, mode="lexical")
                seen.append("found")
            except IndexNotFoundError:
                seen.append("none")
            except Exception as exc:  # noqa: BLE001 - any other is the failure this test is about
                seen.append(repr(exc))

    readers = [threading.Thread(target=search) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        with semsearch.open_index(tmp_path / "kb", model=tiny_model, device="cpu") as writer:
            assert writer.ingest([docs]).files_added == 12
    finally:
        done.set()
        for reader in readers:
            reader.join(timeout=60)
    assert seen and set(seen) <= {"none", "found"}, {s for s in seen if s not in ("none", "found")}


def test_the_database_appears_whole(tmp_path: Path, tiny_model: Path, docs: Path, monkeypatch) -> None:
    from semsearch.storage import store

    apply = store.migrations.apply
    made: list[bool] = []

    def watched_apply(db) -> None:  # type: ignore[no-untyped-def]
        made.append((tmp_path / "kb" / store.Store.FILENAME).exists())
        apply(db)

    monkeypatch.setattr(store.migrations, "apply", watched_apply)
    with semsearch.open_index(tmp_path / "kb", model=tiny_model, device="cpu") as index:
        index.ingest([docs / "大熊猫.md"])
    assert made == [False]  # the schema was made before the database had its name
    assert sorted(p.name for p in (tmp_path / "kb").glob(".*.new*")) == []

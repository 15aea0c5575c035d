"""Store: the SQLite side — schema, documents, chunks, vectors, generation and manifest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from semsearch.config import ChunkSettings, Manifest, ModelInfo
from semsearch.documents.chunking import Chunk
from semsearch.documents.prepare import Document
from semsearch.errors import IndexCorruptError
from semsearch.storage.store import Store

DIM = 4


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "index", create=True)
    yield opened
    opened.close()


def document(path: str, content_hash: str = "h") -> Document:
    return Document(path, content_hash, 10, 1.5, "utf-8")


def chunk_rows(texts: list[str]) -> list[Chunk]:
    rows, start = [], 0
    for line, text in enumerate(texts, start=1):
        rows.append(Chunk(text, start, start + len(text), line, len(text)))
        start += len(text) + 1
    return rows


def vectors_for(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def put(store: Store, path: str, texts: list[str], seed: int = 0) -> list[int]:
    with store.transaction():
        return store.put_document(document(path), chunk_rows(texts), vectors_for(len(texts), seed))


# -- opening ------------------------------------------------------------------------------


def test_open_with_create_makes_folder_and_database(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    store = Store.open(folder, create=True)
    try:
        assert (folder / Store.FILENAME).is_file()
        assert store.counts() == {"documents": 0, "chunks": 0, "vectors": 0}
        assert store.generation() == 0
        assert store.manifest() is None
    finally:
        store.close()


def test_reopen_keeps_data_and_applies_migrations_once(tmp_path: Path) -> None:
    folder = tmp_path / "index"
    first = Store.open(folder, create=True)
    put(first, "/docs/a.txt", ["one", "two"])
    first.close()
    again = Store.open(folder)
    try:
        assert again.counts() == {"documents": 1, "chunks": 2, "vectors": 2}
        assert again.generation() == 1
        applied = again.db.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = 'semsearch'").fetchall()
        assert [row[0] for row in applied] == [
            "m001_initial",
            "m002_content_hash_index",
            "m003_lexical",
            "m004_page_heading",
            "m005_staged",
            "m006_states",
            "m007_folded_terms",
        ]
    finally:
        again.close()


def test_open_garbage_file_raises_index_corrupt_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "index"
    folder.mkdir()
    (folder / Store.FILENAME).write_bytes(b"this is not a SQLite database at all\x00\xff" * 100)
    with pytest.raises(IndexCorruptError, match=Store.FILENAME) as caught:
        Store.open(folder)
    assert str(folder / Store.FILENAME) in str(caught.value)


# -- documents, chunks, vectors ------------------------------------------------------------


def test_put_document_returns_chunk_ids_and_chunks_returns_rows(store: Store) -> None:
    ids = put(store, "/docs/a.txt", ["first chunk", "second chunk", "third"])
    assert len(ids) == 3 and ids == sorted(ids) and len(set(ids)) == 3
    rows = store.chunks(ids)
    assert set(rows) == set(ids)
    assert [rows[i].text for i in ids] == ["first chunk", "second chunk", "third"]
    assert {rows[i].path for i in ids} == {"/docs/a.txt"}
    assert rows[ids[1]].start == len("first chunk") + 1
    assert rows[ids[1]].line == 2
    assert store.counts() == {"documents": 1, "chunks": 3, "vectors": 3}
    assert store.documents()["/docs/a.txt"] == document("/docs/a.txt") and len(store.chunk_ids_of(["/docs/a.txt"])) == 3


def test_chunks_of_no_ids_is_empty(store: Store) -> None:
    put(store, "/docs/a.txt", ["one"])
    assert store.chunks([]) == {}


def test_replacing_a_document_drops_old_chunks_and_vectors(store: Store) -> None:
    old = put(store, "/docs/a.txt", ["one", "two", "three"])
    put(store, "/docs/b.txt", ["other"])
    new = put(store, "/docs/a.txt", ["replacement"], seed=1)
    assert store.counts() == {"documents": 2, "chunks": 2, "vectors": 2}
    assert store.chunks(old) == {}
    assert min(new) > max(old)
    assert store.chunk_ids_of(["/docs/a.txt"]) == new


def test_chunk_ids_are_never_reused_after_deleting_the_highest(store: Store) -> None:
    put(store, "/docs/a.txt", ["one"])
    last = put(store, "/docs/z.txt", ["two", "three"])
    with store.transaction():
        store.delete_documents(["/docs/z.txt"])
    again = put(store, "/docs/z.txt", ["four"])
    assert min(again) > max(last)


def test_delete_documents_cascades_to_chunks_and_vectors(store: Store) -> None:
    put(store, "/docs/a.txt", ["one", "two"])
    keep = put(store, "/docs/b.txt", ["three"])
    put(store, "/docs/c.txt", ["four", "five", "six"])
    with store.transaction():
        store.delete_documents(["/docs/a.txt", "/docs/c.txt"])
    assert store.counts() == {"documents": 1, "chunks": 1, "vectors": 1}
    assert list(store.documents()) == ["/docs/b.txt"]
    ids = [int(i) for batch, _ in store.iter_vectors(DIM) for i in batch]
    assert ids == keep


def test_documents_under_a_folder_excludes_sibling_with_common_prefix(store: Store, tmp_path: Path) -> None:
    docs = tmp_path / "a" / "docs"
    put(store, str(docs / "one.txt"), ["x"])
    put(store, str(docs / "sub" / "two.txt"), ["y"])
    put(store, str(tmp_path / "a" / "docs2" / "three.txt"), ["z"])
    put(store, str(tmp_path / "a" / "docs.txt"), ["w"])
    assert set(store.documents_in([docs])) == {str(docs / "one.txt"), str(docs / "sub" / "two.txt")}
    assert len(store.documents()) == 4


def test_documents_under_a_chinese_folder(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "文档" / "茶"
    inside = str(folder / "中国茶文化.txt")
    put(store, inside, ["茶"])
    put(store, str(tmp_path / "文档" / "茶叶" / "绿茶.txt"), ["绿茶"])
    assert list(store.documents_in([folder])) == [inside]


def test_documents_under_several_folders_is_their_union(store: Store) -> None:
    put(store, "/a/x.txt", ["x"])
    put(store, "/b/y.txt", ["y"])
    put(store, "/c/z.txt", ["z"])
    assert set(store.documents_in([Path("/a"), Path("/c")])) == {"/a/x.txt", "/c/z.txt"}


def test_documents_in_nothing_is_nothing_and_files_match_exactly(store: Store) -> None:
    # an empty scope meant "every document" once, and a one-file ingest removed all the others
    put(store, "/a/x.txt", ["x"])
    put(store, "/a/x.txt.bak/y.txt", ["y"])
    put(store, "/b/" + "\udcff.txt", ["z"])  # a name that is not UTF-8, kept as bytes
    assert store.documents_in([]) == {} and store.documents_in([], []) == {}
    assert set(store.documents_in([], [Path("/a/x.txt")])) == {"/a/x.txt"}
    assert set(store.documents_in([], [Path("/b/\udcff.txt")])) == {"/b/\udcff.txt"}
    assert set(store.documents_in([Path("/a/x.txt.bak")], [Path("/a/x.txt")])) == {"/a/x.txt", "/a/x.txt.bak/y.txt"}
    assert set(store.documents_in([Path("/a/x.txt")])) == {"/a/x.txt"}  # a folder now where a file was


# -- generation and transactions -----------------------------------------------------------


def test_generation_moves_on_by_one_per_transaction(store: Store) -> None:
    assert store.generation() == 0
    put(store, "/docs/a.txt", ["one"])
    assert store.generation() == 1
    with store.transaction():
        pass
    assert store.generation() == 2
    with store.transaction():
        store.delete_documents(["/docs/a.txt"])
    assert store.generation() == 3


def test_transaction_that_raises_is_rolled_back(store: Store) -> None:
    put(store, "/docs/a.txt", ["one"])
    before = (store.counts(), store.generation(), store.documents())
    with pytest.raises(RuntimeError, match="boom"), store.transaction():
        store.put_document(document("/docs/b.txt"), chunk_rows(["two", "three"]), vectors_for(2))
        store.delete_documents(["/docs/a.txt"])
        raise RuntimeError("boom")
    assert (store.counts(), store.generation(), store.documents()) == before


# -- vectors -----------------------------------------------------------------------------


def test_iter_vectors_yields_all_in_id_order_with_exact_values(store: Store) -> None:
    expected: dict[int, np.ndarray] = {}
    for seed, (path, texts) in enumerate([("/d/a.txt", ["1", "2", "3"]), ("/d/b.txt", ["4", "5"])]):
        new = put(store, path, texts, seed=seed)
        expected.update(zip(new, vectors_for(len(texts), seed), strict=True))
    batches = list(store.iter_vectors(DIM, batch=2))
    assert [len(batch) for batch, _ in batches] == [2, 2, 1]
    ids = np.concatenate([batch for batch, _ in batches])
    matrix = np.concatenate([m for _, m in batches])
    assert ids.dtype == np.int64 and matrix.dtype == np.float32
    assert ids.tolist() == sorted(expected)
    np.testing.assert_array_equal(matrix, np.stack([expected[i] for i in sorted(expected)]))


def test_iter_vectors_of_empty_store_yields_nothing(store: Store) -> None:
    assert list(store.iter_vectors(DIM)) == []


# -- manifest ----------------------------------------------------------------------------


def test_manifest_round_trips(store: Store, tmp_path: Path) -> None:
    manifest = Manifest(
        model=ModelInfo(
            model="lier007/xiaobu-embedding-v2",
            revision="0123456789abcdef",
            fingerprint="sha256:feed",
            dimension=1792,
            pooling=["cls"],
            dense=[{"in_features": 1024, "out_features": 1792, "activation_function": "Identity"}],
            normalize=True,
            max_seq_length=512,
        ),
        chunking=ChunkSettings(chunk_tokens=128, overlap_tokens=16),
    )
    store.set_manifest(manifest)
    assert store.manifest() == manifest
    store.close()
    reopened = Store.open(tmp_path / "index")
    try:
        assert reopened.manifest() == manifest
    finally:
        reopened.close()


def test_unreadable_manifest_raises_index_corrupt(store: Store) -> None:
    store.db.execute("INSERT OR REPLACE INTO meta VALUES ('manifest', '{\"not\": \"a manifest\"}')")
    with pytest.raises(IndexCorruptError, match="manifest"):
        store.manifest()


# -- lexical index --------------------------------------------------------------------------


def lexical(store: Store, query: str, limit: int = 10) -> list[int]:
    from semsearch.documents.terms import match_expression

    expression = match_expression(query)
    assert expression is not None
    return [chunk_id for chunk_id, _ in store.lexical_search(expression, limit)]


def test_lexical_terms_follow_every_insert_replace_and_delete(store: Store) -> None:
    first = put(store, "/docs/a.txt", ["北京大学在海淀区。", "长江是最长的河流。"])
    other = put(store, "/docs/b.txt", ["Python 3.12 发布了。"])
    assert lexical(store, "大学") == [first[0]]  # a part of 北京大学 finds it
    assert lexical(store, "ＰＹＴＨＯＮ") == other  # full-width and case folded
    assert lexical(store, "3.12") == other and lexical(store, "3") == []  # a number stays whole
    replaced = put(store, "/docs/a.txt", ["黄河在北方。"])  # replacing a document drops its old terms
    assert lexical(store, "长江") == [] and lexical(store, "黄河") == replaced
    with store.transaction():
        store.delete_documents(["/docs/b.txt"])
    assert lexical(store, "python") == []
    assert {k: v for k, v in store.problems(DIM).items() if v} == {}


def test_bm25_ranks_the_chunk_with_more_of_the_rare_terms_first(store: Store) -> None:
    ids = put(store, "/docs/a.txt", ["熊猫吃竹子。", "熊猫和竹子和熊猫宝宝，熊猫。", "今天天气很好。", "竹子很高。"])
    found = store.lexical_search('"熊猫" OR "宝宝"', 10)
    assert [i for i, _ in found] == [ids[1], ids[0]] and found[0][1] > found[1][1] > 0


def test_lost_and_stray_lexical_rows_are_found_by_problems_and_repaired(store: Store) -> None:
    ids = put(store, "/docs/a.txt", ["北京大学在海淀区。", "长江是最长的河流。"])
    store.db.execute("DELETE FROM chunks_fts WHERE rowid = ?", [ids[1]])
    store.db.execute("INSERT INTO chunks_fts (rowid, terms) VALUES (999, '幽灵')")
    problems = store.problems(DIM)
    assert problems["chunks without lexical terms"] == 1 and problems["lexical terms without a chunk"] == 1
    assert store.repair_lexical() == 2 and store.repair_lexical() == 0
    assert {k: v for k, v in store.problems(DIM).items() if v} == {}
    assert lexical(store, "长江") == [ids[1]] and store.lexical_search('"幽灵"', 10) == []


def test_an_index_from_before_the_lexical_index_is_filled_when_opened(tmp_path: Path) -> None:
    folder = tmp_path / "index"
    old = Store.open(folder, create=True)
    ids = put(old, "/docs/a.txt", ["北京大学在海淀区。", "长江是最长的河流。"])
    old.db.execute("DROP TRIGGER chunks_fts_delete")
    old.db.execute("DROP TABLE chunks_fts")
    old.db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm003_lexical'")
    old.close()
    reopened = Store.open(folder)
    try:
        assert lexical(reopened, "长江") == [ids[1]]
        assert {k: v for k, v in reopened.problems(DIM).items() if v} == {}
    finally:
        reopened.close()


def test_traditional_and_simplified_find_each_other(store: Store) -> None:
    traditional = put(store, "/docs/t.txt", ["萬里長城在北方。", "電腦的記憶體不夠。"])
    simplified = put(store, "/docs/s.txt", ["长城很长。", "电脑的内存不够，软件很慢。"])
    assert sorted(lexical(store, "长城")) == sorted(lexical(store, "長城")) == [traditional[0], simplified[0]]
    assert lexical(store, "記憶體") == lexical(store, "内存") == [traditional[1], simplified[1]]
    assert lexical(store, "軟體") == [simplified[1]]


def test_an_index_from_before_folding_gets_folded_terms_when_opened(tmp_path: Path) -> None:
    import unicodedata

    import rjieba

    from semsearch.documents.terms import indexed

    folder = tmp_path / "index"
    old = Store.open(folder, create=True)
    ids = put(old, "/docs/a.txt", ["萬里長城在北方。", "電腦的記憶體不夠。"])
    # the terms as semsearch wrote them before: NFKC + casefold, no Traditional -> Simplified
    for chunk_id, text in old.db.execute("SELECT id, text FROM chunks").fetchall():
        unfolded = unicodedata.normalize("NFKC", text).casefold()
        terms = " ".join(t for t in rjieba.cut_for_search(unfolded) if t.strip("。，"))
        old.db.execute("UPDATE chunks_fts SET terms = ? WHERE rowid = ?", [terms, chunk_id])
    old.db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm007_folded_terms'")
    old.db.conn.commit()
    assert old.lexical_search('"长城"', 10) == []
    old.close()
    reopened = Store.open(folder)
    try:
        assert lexical(reopened, "长城") == lexical(reopened, "長城") == [ids[0]]
        assert lexical(reopened, "内存") == [ids[1]]
        stored = reopened.db.execute("SELECT c.text, f.terms FROM chunks c JOIN chunks_fts f ON f.rowid = c.id")
        assert all(terms == indexed(text) for text, terms in stored.fetchall())  # every chunk re-termed
        assert {k: v for k, v in reopened.problems(DIM).items() if v} == {}
    finally:
        reopened.close()

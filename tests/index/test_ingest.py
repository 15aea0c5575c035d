"""Ingest beyond the basics: content reuse, Ctrl-C in-process, reindex with another model."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

import semsearch
from semsearch.config import ChunkSettings
from semsearch.storage.layout import CURRENT
from semsearch.storage.vectors import saved_files


@pytest.fixture
def index(tmp_path: Path, tiny_model: Path, docs: Path) -> semsearch.Index:
    idx = semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu")
    idx.ingest([docs])
    return idx


def failed(checks: list[semsearch.Check]) -> dict[str, str]:
    return {c.name: c.detail for c in checks if not c.ok}


def stored_vectors(index: semsearch.Index, path: Path) -> np.ndarray:
    store = index.handle.store
    ids = store.chunk_ids_of([str(path)])
    return np.concatenate([m for _, m in store.iter_vectors(index.manifest.model.dimension, ids)])


def test_a_renamed_file_is_not_embedded_again(index: semsearch.Index, docs: Path) -> None:
    source = docs / "science" / "太阳系行星.md"
    before = stored_vectors(index, source)
    moved = docs / "太阳系-改名.md"
    source.rename(moved)
    report = index.ingest([docs])
    assert (report.files_added, report.files_removed, report.files_reused, report.chunks_embedded) == (1, 1, 1, 0)
    assert np.array_equal(stored_vectors(index, moved), before)
    hits = index.search("行星", k=100)
    assert any(h.source == str(moved) for h in hits) and all(h.source != str(source) for h in hits)
    assert failed(index.check()) == {}


def test_a_copy_reuses_vectors_and_both_paths_are_found(index: semsearch.Index, docs: Path) -> None:
    copy = docs / "副本.md"
    copy.write_bytes((docs / "science" / "太阳系行星.md").read_bytes())
    report = index.ingest([docs])
    assert (report.files_added, report.files_reused, report.chunks_embedded) == (1, 1, 0)
    assert failed(index.check()) == {}


def test_swapped_contents_are_both_right(index: semsearch.Index, docs: Path) -> None:
    a, b = docs / "science" / "太阳系行星.md", docs / "大熊猫.md"
    vectors_a, vectors_b = stored_vectors(index, a), stored_vectors(index, b)
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    report = index.ingest([docs])
    assert report.files_updated == 2 and report.chunks_embedded == 0
    assert np.array_equal(stored_vectors(index, a), vectors_b)
    assert np.array_equal(stored_vectors(index, b), vectors_a)


def test_ctrl_c_in_process_raises_interrupted_with_the_report(
    tmp_path: Path, tiny_model: Path, docs: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    import semsearch.index.batch as batch_module

    monkeypatch.setattr(batch_module, "FLUSH_CHUNKS", 5)  # a commit every few files
    # as in an interactive Python, even where the test run was started with Ctrl-C ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    idx = semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu")
    encode = idx.encoder.encode_tokenized
    calls = []

    def encode_then_ctrl_c(inputs, **kwargs):
        calls.append(len(inputs))
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while this batch is being embedded
        return encode(inputs, **kwargs)

    monkeypatch.setattr(idx.encoder, "encode_tokenized", encode_then_ctrl_c)
    with pytest.raises(semsearch.Interrupted, match="run the same command again") as caught:
        idx.ingest([docs])
    report = caught.value.report
    # the stop came before the second batch was embedded: only the first was committed, as whole
    # files published and the embedded part of the next one staged
    assert report.chunks_embedded == calls[0] == report.chunks_total + report.chunks_staged
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler put back
    assert failed(idx.check()) == {}
    monkeypatch.undo()
    resumed = idx.ingest([docs])
    assert resumed.files_unchanged == report.files_added and resumed.files_added == 12 - report.files_added
    assert resumed.chunks_resumed == report.chunks_staged  # nothing committed is embedded twice
    assert resumed.chunks_embedded + resumed.chunks_resumed + report.chunks_total == resumed.chunks_total
    assert idx.handle.store.staged_count() == 0


@pytest.mark.slow
def test_reindex_with_another_model_switches_atomically(
    index: semsearch.Index, docs: Path, minilm_model: Path, tiny_model: Path
) -> None:
    folder = index.folder
    reader = semsearch.open_index(folder, create=False)
    assert reader.search("熊猫", k=3)
    documents = index.info().documents
    report = index.reindex(model=str(minilm_model))
    assert report.files_added == documents and report.chunks_embedded == report.chunks_total
    assert index.manifest.model.model == str(minilm_model) and index.info().dimension == 384
    assert (folder / CURRENT).read_text().strip() == index.data.name
    assert not (folder / "semsearch.db").exists() and not list(folder.glob("vectors-*.faiss"))  # old data gone
    assert failed(index.check()) == {}
    # a long-lived reader notices the switch and reloads the new model
    assert len(reader.search("熊猫", k=3)) == 3 and reader.manifest.model.dimension == 384
    assert any("rebuilt" in note for note in reader.notes)
    # a new process sees only the new index; the old model is now refused
    with pytest.raises(semsearch.ModelMismatchError, match="--reindex"):
        semsearch.open_index(folder, model=str(tiny_model))
    again = index.reindex(model=str(tiny_model))  # and back, into a second data folder
    assert again.files_added == documents and index.info().dimension == 96
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == [index.data.name]


@pytest.mark.slow
def test_an_interrupted_reindex_leaves_the_old_index_serving_and_resumes(
    index: semsearch.Index, docs: Path, minilm_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import semsearch.index.batch as batch_module

    folder = index.folder
    monkeypatch.setattr(batch_module, "FLUSH_CHUNKS", 5)
    real_encode = semsearch.Encoder.encode_tokenized
    calls = []

    def stop_on_third(self, inputs, **kwargs):
        calls.append(len(inputs))
        if len(calls) == 3:
            raise semsearch.Interrupted("stopped")
        return real_encode(self, inputs, **kwargs)

    monkeypatch.setattr(semsearch.Encoder, "encode_tokenized", stop_on_third)
    with pytest.raises(semsearch.Interrupted):
        index.reindex(model=str(minilm_model))
    monkeypatch.undo()
    assert not (folder / CURRENT).exists()  # not switched: the old index still answers
    with semsearch.open_index(folder, create=False) as old:
        assert old.manifest.model.dimension == 96 and old.search("熊猫", k=3)
    resumed = semsearch.open_index(folder, create=False).reindex(model=str(minilm_model))
    assert resumed.files_unchanged > 0 and resumed.files_added > 0  # what was committed is kept
    with semsearch.open_index(folder, create=False) as new:
        assert new.manifest.model.dimension == 384 and failed(new.check()) == {}


def test_damaged_sqlite_is_named_in_a_clear_error(index: semsearch.Index) -> None:
    path = index.data / "semsearch.db"
    index.close()
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    data = bytearray(path.read_bytes())
    data[4096:8192] = os.urandom(4096)  # a page of the tables
    path.write_bytes(bytes(data))
    with (
        pytest.raises(semsearch.IndexCorruptError, match="semsearch.db") as caught,
        semsearch.open_index(index.folder, create=False) as opened,
    ):
        opened.search("熊猫")
        opened.check()
    assert "\n" not in str(caught.value)


def test_sqlite_locked_by_another_program_is_a_clear_error(index: semsearch.Index) -> None:
    path = index.data / "semsearch.db"
    index.close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    try:
        from semsearch.storage.store import Store

        with pytest.raises(semsearch.IndexLockedError, match="semsearch.db is locked by another program"):
            store = Store.open(index.data, timeout=0.2)
            store.counts()
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_missing_manifest_is_a_clear_error(index: semsearch.Index) -> None:
    index.handle.store.db.execute("DELETE FROM meta WHERE key = 'manifest'")
    with pytest.raises(semsearch.IndexCorruptError, match="has chunks but no manifest"):
        semsearch.open_index(index.folder)


def test_corrupt_vector_file_is_an_error_naming_it_until_repaired(index: semsearch.Index) -> None:
    (path, _), *_ = saved_files(index.data)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(semsearch.IndexCorruptError, match=f"{path.name}.*semsearch repair"):
        semsearch.open_index(index.folder).search("熊猫")
    assert failed(index.repair()) == {}
    assert semsearch.open_index(index.folder).search("熊猫")


def test_a_query_over_the_limit_is_truncated_with_a_note(index: semsearch.Index) -> None:
    assert index.search("熊猫" * 600, k=3)
    assert any("the model reads only the first 510" in n for n in index.notes)
    index.notes.clear()
    index.search("熊猫", k=3)
    assert index.notes == []


def test_any_unicode_query(index: semsearch.Index) -> None:
    for query in ["😀🐼", "\u200b熊猫\u200d", "𠀀𪚥", "ｆｕｌｌｗｉｄｔｈ", "\x00控制"]:
        assert index.search(query, k=2)


def test_a_file_that_cannot_be_read_this_time_keeps_its_indexed_copy(index: semsearch.Index, docs: Path) -> None:
    grown = docs / "大熊猫.md"
    grown.write_text(grown.read_text(encoding="utf-8") * 50, encoding="utf-8")
    before = index.info().chunks
    report = index.ingest([docs], max_file_bytes=20_000)
    assert [s.path for s in report.skipped] == [str(grown)] and "limit" in report.skipped[0].reason
    assert report.files_removed == 0 and index.info().chunks == before
    grown.unlink()
    assert index.ingest([docs], max_file_bytes=20_000).files_removed == 1  # gone for good: removed


def test_a_file_denied_to_us_is_skipped_and_keeps_its_indexed_copy(
    index: semsearch.Index, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # chmod 000 does not stop root, who runs CI: deny the read itself, as the OS would
    import semsearch.documents.prepare as prepare_module

    denied = docs / "大熊猫.md"
    real_read = prepare_module.read_bytes

    def read_bytes(path: Path, *args, **kwargs):
        if path == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(prepare_module, "read_bytes", read_bytes)
    denied.write_text(denied.read_text(encoding="utf-8") + "新的一段。", encoding="utf-8")  # changed: must be read
    chunks = index.info().chunks
    report = index.ingest([docs])
    assert [(s.path, s.reason) for s in report.skipped] == [(str(denied), "permission denied")]
    assert report.files_removed == 0 and index.info().chunks == chunks


def test_an_ingest_with_nothing_to_embed_never_loads_the_model(index: semsearch.Index, docs: Path) -> None:
    import subprocess
    import sys

    os.utime(docs / "大熊猫.md", (1, 1))  # touched: read and hashed, still unchanged
    (docs / "红烧肉做法.txt").unlink()  # gone: removed, nothing to embed
    index.close()
    script = (
        "import sys, semsearch\n"
        f"index = semsearch.open_index({str(index.folder)!r}, create=False)\n"
        f"report = index.ingest([{str(docs)!r}])\n"
        "print(report.files_unchanged, report.files_removed, report.chunks_embedded, "
        "'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["11", "1", "0", "False", "False"]


def test_an_empty_file_beside_an_indexed_one_never_loads_the_model(tmp_path: Path, tiny_model: Path) -> None:
    # an empty file is never indexed, so every ingest reads it anew: it must be told empty
    # without the model (issue 23: 6.6 s instead of 0.2 s for each ingest with nothing to do)
    import subprocess
    import sys

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "笔记.md").write_text("# 熊猫\n\n大熊猫吃竹子。", encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.md").write_text(" \n\u3000\t\n", encoding="utf-8")
    with semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu") as index:
        index.ingest([folder])
    script = (
        "import sys, semsearch\n"
        f"index = semsearch.open_index({str(tmp_path / 'kb')!r}, create=False)\n"
        f"report = index.ingest([{str(folder)!r}])\n"
        "print(report.files_unchanged, sorted(s.reason for s in report.skipped), "
        "'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1 ['empty or only white space', 'empty or only white space'] False False"


def test_the_report_gives_the_model_load_time_and_the_embedding_rate_apart(
    tmp_path: Path, tiny_model: Path, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # issue 23: "4 chunks embedded in 8.8 s (0.5 chunks/s)" counted the model's loading as embedding
    import semsearch.index.batch as batch_module
    from semsearch.embedding.encoder import Encoder

    load, encode = Encoder.load.__func__, Encoder.encode_tokenized  # type: ignore[attr-defined]
    monkeypatch.setattr(Encoder, "load", classmethod(lambda cls, *a, **kw: time.sleep(0.5) or load(cls, *a, **kw)))
    monkeypatch.setattr(Encoder, "encode_tokenized", lambda self, *a, **kw: time.sleep(0.05) or encode(self, *a, **kw))
    monkeypatch.setattr(batch_module, "FLUSH_CHUNKS", 16)
    with semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu") as index:
        first = index.ingest([docs])  # a new index: the model loads for its manifest
        (docs / "大熊猫.md").write_text("大熊猫爱吃竹子，也吃竹笋。", encoding="utf-8")
        again = index.ingest([docs])  # the model is loaded already
    (docs / "大熊猫.md").write_text("大熊猫一天要吃很多竹子。", encoding="utf-8")
    with semsearch.open_index(tmp_path / "kb", create=False, device="cpu") as index:
        reopened = index.ingest([docs])  # loaded on the first change the reading meets
    batches = -(-first.chunks_embedded // 16)
    assert first.model_load_seconds >= 0.5 and reopened.model_load_seconds >= 0.5 and again.model_load_seconds < 0.1
    assert first.embedding_seconds >= 0.05 * batches and again.embedding_seconds >= 0.05
    for report in (first, again, reopened):
        assert report.seconds >= report.model_load_seconds + report.embedding_seconds - 0.002
        assert report.chunks_per_second == pytest.approx(report.chunks_embedded / report.embedding_seconds)
        data = report.to_dict()
        assert data["model_load_seconds"] == report.model_load_seconds
        assert data["chunks_per_second"] == round(report.chunks_per_second, 1)
    assert first.chunks_per_second > first.chunks_embedded / first.seconds  # the load no longer counts


def bar_states(stderr: str) -> list[tuple[int, int, str]]:
    """(done, total, the whole line) of every render of the Embedding bar in ``stderr``."""
    import re

    states = []
    for piece in re.split(r"[\r\n]", stderr):
        found = re.search(r"Embedding:.*?\| *(\d+)/(\d+) ", piece)
        if found:
            states.append((int(found[1]), int(found[2]), piece))
    return states


@pytest.mark.slow
def test_the_progress_bar_counts_chunks_embedded_with_the_files_beside(
    tmp_path: Path, tiny_model: Path, docs: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import semsearch.index.batch as batch_module

    monkeypatch.setattr(batch_module, "FLUSH_CHUNKS", 8)
    (docs / "长篇.txt").write_text("很长的一段话，讲了许多事情。" * 400, encoding="utf-8")  # one file, most chunks
    idx = semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu", chunking=ChunkSettings(32, 0))
    encode = idx.encoder.encode_tokenized
    monkeypatch.setattr(idx.encoder, "encode_tokenized", lambda inputs, **kw: time.sleep(0.12) or encode(inputs, **kw))
    report = idx.ingest([docs], progress=True)
    states = bar_states(capfd.readouterr().err)
    total = report.chunks_embedded
    assert states[-1][:2] == (total, total) and "files 13/13" in states[-1][2] and "chunk/s" in states[-1][2]
    # the bar was never full before the embedding was done, and moved in between
    assert all(done == total for done, whole, _ in states if done == whole and whole)
    assert any(0 < done < total for done, _, _ in states)
    assert any("files 0/13" in line or "files 1/13" in line for _, _, line in states)
    # once the big file was read its chunks counted in the total: the time left meant something
    assert max(whole for _, whole, _ in states[:-1]) >= 0.9 * total
    monkeypatch.undo()
    idx.close()


def test_reindex_shows_the_same_bar(index: semsearch.Index, capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    report = index.reindex(progress=True)
    states = bar_states(capfd.readouterr().err)
    assert states[-1][:2] == (report.chunks_embedded, report.chunks_embedded) and "files 12/12" in states[-1][2]


@pytest.mark.slow
def test_staged_work_no_file_needs_is_dropped_and_other_work_is_kept(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    import semsearch.index.batch as batch_module

    monkeypatch.setattr(batch_module, "FLUSH_CHUNKS", 4)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        (folder / "big.txt").write_text(f"{folder.name}的长文，讲了许多事情。" * 200, encoding="utf-8")
    idx = semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu", chunking=ChunkSettings(16, 0))
    encode = idx.encoder.encode_tokenized

    def stop_after_two(inputs, **kwargs):
        stop_after_two.calls += 1
        if stop_after_two.calls == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return encode(inputs, **kwargs)

    stop_after_two.calls = 0
    monkeypatch.setattr(idx.encoder, "encode_tokenized", stop_after_two)
    for folder in (first, second):  # each big file stopped part-way, its first batches staged
        stop_after_two.calls = 0
        with pytest.raises(semsearch.Interrupted, match="in files not finished yet"):
            idx.ingest([folder])
    store = idx.handle.store
    assert set(store.staged_files()) == {str(first / "big.txt"), str(second / "big.txt")}
    (first / "big.txt").write_text("改过的内容。" * 300, encoding="utf-8")  # its staged work is now of no use
    monkeypatch.setattr(idx.encoder, "encode_tokenized", encode)
    report = idx.ingest([first])
    assert report.chunks_resumed == 0
    # a's old content is dropped; b, not walked this time, keeps its staged work for its own rerun
    assert set(store.staged_files()) == {str(second / "big.txt")}
    again = idx.ingest([second])
    assert again.chunks_resumed > 0 and store.staged_count() == 0
    assert failed(idx.check()) == {}
    idx.close()


def test_a_file_name_that_is_not_utf8_is_kept_losslessly(tmp_path: Path, tiny_model: Path, docs: Path) -> None:
    raw = os.fsencode(docs) + b"/bad\xff\xfename.txt"
    with open(raw, "wb") as handle:
        handle.write("名字坏了的文件，内容讲熊猫。".encode())
    name = os.fsdecode(raw)
    idx = semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu")
    report = idx.ingest([docs])
    assert report.files_added == 13 and report.skipped == []
    hits = idx.search("名字坏了", k=3, mode="lexical")
    assert hits[0].source == name and os.fsencode(hits[0].source) == raw
    filtered = idx.search("名字坏了", k=3, mode="lexical", where={"paths": [str(docs)]})
    assert filtered[0].source == name
    assert idx.search("名字坏了", k=3, mode="lexical", where={"paths": [str(docs) + "/bad*"]})[0].source == name
    assert idx.ingest([docs]).files_unchanged == 13  # found again as itself: not re-embedded
    os.unlink(raw)
    assert idx.ingest([docs]).files_removed == 1
    assert failed(idx.check()) == {}
    idx.close()


def test_within_the_roots_a_file_swapped_for_a_link_out_is_refused_and_forgotten(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import semsearch.index.ingest as ingest_module

    root, secret = tmp_path / "root", tmp_path / "passwd"
    (root / "race").mkdir(parents=True)
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    (root / "race" / "0000big.txt").write_text("大文件的内容。" * 200, encoding="utf-8")
    victim = root / "race" / "zzz.txt"
    victim.write_text("无害的内容。", encoding="utf-8")
    idx = semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu")
    assert idx.ingest([root / "race"], within=[root]).files_added == 2
    real_read = ingest_module.read

    def swap_then_read(path: Path, *args: object) -> object:
        if path.name == "zzz.txt" and not path.is_symlink():  # after the walk saw a regular file
            path.unlink()
            path.symlink_to(secret)
        return real_read(path, *args)

    monkeypatch.setattr(ingest_module, "read", swap_then_read)
    report = idx.ingest([root / "race"], within=[root])
    assert [(Path(s.path).name, s.kind) for s in report.skipped] == [("zzz.txt", "refused")]
    assert report.files_removed == 1  # the indexed copy of a file now refused is not kept
    assert all("root:x" not in hit.text for hit in idx.search("root", k=50, mode="lexical"))
    assert [Path(d).name for d in idx.handle.store.documents()] == ["0000big.txt"]
    idx.close()


def test_shards_ingest_every_file_exactly_once_and_remove_only_their_own(
    tmp_path: Path, tiny_model: Path, docs: Path
) -> None:
    # shares go by the hash of the absolute path, which holds pytest's folder names: with 12 files
    # one share of 3 is empty about 1 run in 40, so files are added until each holds one
    extra = 0
    while not all(any(semsearch.Shard(n, 3).holds(str(p.resolve())) for p in docs.rglob("*.*")) for n in (1, 2, 3)):
        (docs / f"extra{extra}.txt").write_text(f"额外的文件 {extra}。", encoding="utf-8")
        extra += 1
    whole = semsearch.open_index(tmp_path / "whole", model=str(tiny_model), device="cpu")
    whole.ingest([docs])
    expected = set(whole.handle.store.documents())
    assert len(expected) == 12 + extra
    idx = semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu")
    added = [idx.ingest([docs], shard=f"{n}/3").files_added for n in (1, 2, 3)]
    assert sum(added) == len(expected) and all(added)  # each share took some, together all, none twice
    assert set(idx.handle.store.documents()) == expected and failed(idx.check()) == {}
    assert idx.ingest([docs], shard=(2, 3)).chunks_embedded == 0  # a rerun of a share: nothing new
    # a file of share 2 is deleted: share 1's worker leaves its document alone, share 2's removes it
    gone = next(p for p in sorted(expected) if semsearch.Shard(2, 3).holds(p))
    Path(gone).unlink()
    first = idx.ingest([docs], shard="1/3")
    assert first.files_removed == 0 and gone in idx.handle.store.documents()
    assert first.files_unchanged == added[0] and first.files_added == 0
    second = idx.ingest([docs], shard=semsearch.Shard(2, 3))
    assert second.files_removed == 1 and gone not in idx.handle.store.documents()
    assert second.files_unchanged == added[1] - 1
    with pytest.raises(semsearch.InvalidOptionError, match="shard"):
        idx.ingest([docs], shard="4/3")


@pytest.mark.parametrize("what", ["deleted", "changed"])
def test_a_file_deleted_or_changed_while_it_is_embedded_stops_at_the_next_batch(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    import semsearch.index.batch as batch_module

    monkeypatch.setattr(batch_module, "FLUSH_CHUNKS", 8)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "small.txt").write_text("一个小文件，讲大熊猫。", encoding="utf-8")
    big, text = folder / "big.txt", "很长的文件，讲了许多事情。" * 400
    whole = semsearch.open_index(tmp_path / "whole", model=str(tiny_model), device="cpu", chunking=ChunkSettings(16, 0))
    (tmp_path / "alone").mkdir()
    (tmp_path / "alone" / "big.txt").write_text(text, encoding="utf-8")
    chunks = whole.ingest([tmp_path / "alone"]).chunks_embedded  # what embedding it whole takes
    assert chunks >= 25 * 8
    idx = semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu", chunking=ChunkSettings(16, 0))
    if what == "changed":
        big.write_text("原来的内容。", encoding="utf-8")
        assert idx.ingest([folder]).files_added == 2
    big.write_text(text, encoding="utf-8")
    encode = idx.encoder.encode_tokenized
    batches: list[int] = []

    def encode_then_touch(inputs, **kwargs):  # type: ignore[no-untyped-def]
        batches.append(len(inputs))
        if len(batches) == 1:  # big.txt's first batch, while it is being embedded
            big.unlink() if what == "deleted" else big.write_text("又改了。", encoding="utf-8")
        return encode(inputs, **kwargs)

    monkeypatch.setattr(idx.encoder, "encode_tokenized", encode_then_touch)
    report = idx.ingest([folder])
    assert len(batches) <= 2 and sum(batches) <= 16  # its first batch (and small.txt's), not 25 more
    reason = batch_module.VANISHED if what == "deleted" else batch_module.CHANGED_SINCE_READ
    assert [(s.path, s.reason) for s in report.skipped] == [(str(big), reason)]
    assert idx.handle.store.staged_count() == 0 and failed(idx.check()) == {}
    if what == "deleted":  # neither published nor counted
        assert (report.files_added, report.files_updated, report.files_removed) == (1, 0, 0)
        assert sorted(Path(d).name for d in idx.handle.store.documents()) == ["small.txt"]
    else:  # the indexed copy stays as it was until the next ingest reads the file again
        assert (report.files_added, report.files_updated, report.files_unchanged) == (0, 0, 1)
        assert [Path(h.source).name for h in idx.search("原来的内容", k=1, mode="lexical")] == ["big.txt"]
        monkeypatch.undo()
        again = idx.ingest([folder])
        assert again.files_updated == 1 and again.chunks_total == 2
    whole.close()
    idx.close()

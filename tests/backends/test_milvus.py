"""What only the Milvus backend has: locations and credentials, the Lite file's one process,
versions (a reader never sees a file half-replaced or twice, the newer of two writers wins),
check and repair of what a crash leaves, index types, a reindex, and the commands, the server
and the retrievers on it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lite_servers import end_servers, lite_servers

import semsearch
from semsearch.errors import InvalidOptionError, MilvusError

pytest.importorskip("milvus_lite")
pytest.importorskip("pymilvus")

import grpc  # noqa: E402  (pymilvus's)
from children import child_environment

from semsearch.index import milvus_data, milvus_upkeep  # noqa: E402
from semsearch.storage.milvus.connection import TOKEN_VARIABLE, parse  # noqa: E402
from semsearch.storage.milvus.expressions import stored_path  # noqa: E402


def lite(folder: Path, name: str = "index") -> str:
    return f"milvus-lite:{folder / name}.db"


@pytest.fixture
def built(tmp_path: Path, docs: Path, tiny_model: Path) -> Iterator[semsearch.Index]:
    index = semsearch.open_index(lite(tmp_path), str(tiny_model), device="cpu")
    index.ingest([docs])
    yield index
    index.close()
    assert end_servers(tmp_path, wait=2.0) == []


# -- locations and credentials ----------------------------------------------------------------


def test_locations_name_the_server_the_collection_and_the_lite_file(tmp_path: Path) -> None:
    assert parse("milvus://db.example:19530/docs").uri == "http://db.example:19530"
    assert parse("milvus://db.example:19530/docs").collection == "docs"
    assert parse("milvus+https://x.zillizcloud.com:443/kb").uri == "https://x.zillizcloud.com:443"
    assert parse("milvus://db:19530").collection == "semsearch"
    found = parse(f"milvus-lite:{tmp_path}/a.db/notes")
    assert (found.lite, found.collection) == (tmp_path / "a.db", "notes")
    assert parse(f"milvus-lite:{tmp_path}/a.db").collection == "semsearch"
    for bad, words in [
        ("milvus://user:secret@db:19530/x", TOKEN_VARIABLE),
        ("milvus://db/x", "HOST:PORT"),
        ("milvus://db:19530/bad-name", "collection name"),
        (f"milvus-lite:{tmp_path}/索引.db", "file name"),
        (f"milvus-lite:{tmp_path}/a.sqlite", "ending in .db"),
    ]:
        with pytest.raises(InvalidOptionError, match=words):
            semsearch.open_index(bad)


def test_the_token_comes_from_the_environment_and_is_never_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    import pymilvus

    seen: dict[str, Any] = {}

    class Refusing:
        def __init__(self, **kwargs: Any) -> None:
            seen.update(kwargs)
            raise ConnectionError("connection refused\nmore detail")

    monkeypatch.setattr(pymilvus, "MilvusClient", Refusing)
    monkeypatch.setenv(TOKEN_VARIABLE, "root:Milvus")
    with pytest.raises(MilvusError) as caught:
        semsearch.open_index("milvus://db.example:19530/docs")
    assert seen["token"] == "root:Milvus" and seen["uri"] == "http://db.example:19530"
    assert str(caught.value) == "Milvus at milvus://db.example:19530/docs could not be reached: connection refused"
    assert "Milvus" not in str(caught.value).split("reached")[0].replace("Milvus at", "")


def test_a_lite_file_is_one_process_s_and_a_second_is_told_so(built: semsearch.Index, tmp_path: Path) -> None:
    code = f"import semsearch; semsearch.open_index({lite(tmp_path)!r}, create=False)"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert other.returncode == 1 and "IndexLockedError" in other.stderr
    assert "open in another process (Milvus Lite allows one)" in other.stderr
    assert built.search("熊猫", k=1)  # the first process still has it


# -- errors no retry can mend, and names no filter can spell -----------------------------------


class _Internal(grpc.RpcError):
    """A gRPC error pymilvus does not know to be final (it retries these 75 times, ~3.5 min)."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.INTERNAL

    def details(self) -> str:
        return "simulated"


def test_an_error_no_retry_can_mend_fails_at_once_in_one_line(built: semsearch.Index) -> None:
    store = built.handle._require()
    started = time.monotonic()
    with pytest.raises(MilvusError) as bad:  # a raw CR: Milvus's grammar refuses it
        store.query(store.ledger_name, 'path == "a\rb"', ["path"])
    assert "): Invalid expr: path ==" in str(bad.value) and "\n" not in str(bad.value)
    handler = getattr(store.client, "wrapped", store.client)._get_connection()
    stub = handler._stub

    class Failing:
        def __getattr__(self, name: str) -> Any:
            if name == "Query":
                return lambda *args, **kwargs: (_ for _ in ()).throw(_Internal())
            return getattr(stub, name)

    handler._stub = Failing()
    try:
        with pytest.raises(MilvusError, match="simulated"):
            store.query(store.ledger_name, 'path == "x"', ["path"])
    finally:
        handler._stub = stub
    assert time.monotonic() - started < 10  # both at once: before, the second took 75 tries over 3.5 min
    assert built.search("熊猫", k=1)


def test_a_lite_server_that_died_fails_the_next_call_at_once(built: semsearch.Index, tmp_path: Path) -> None:
    for pid in lite_servers(tmp_path):
        os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(MilvusError):
        built.search("熊猫", k=1, mode="lexical")
    assert time.monotonic() - started < 10  # pymilvus 2.5 retried a dead server for 210 s


def test_children_forked_after_milvus_was_used_never_die_by_a_signal(built: semsearch.Index) -> None:
    # gRPC's fork handlers restarted a poller in each forked child on an epoll descriptor that
    # subprocess then closed: 1 to 2 children in 100 died with SIGABRT (CI's test_crash). With
    # them on, each of 5 runs of this test lost 6 or more of 500. tests/conftest.py turns them off.
    built.search("熊猫", k=1)  # gRPC loaded and used in this process
    true = shutil.which("true") or pytest.skip("no 'true' command")
    codes = [subprocess.run([true], preexec_fn=lambda: None).returncode for _ in range(300)]  # fork, not vfork
    assert [code for code in codes if code != 0] == []


def fields_of(store: Any, name: str) -> list[str]:
    """A collection's fields but BM25's output, which Milvus computes."""
    return [f["name"] for f in store.client.describe_collection(name)["fields"] if f["name"] != "sparse"]


def test_a_raw_cr_path_an_older_version_wrote_is_ingested_again_and_repaired(
    built: semsearch.Index, docs: Path
) -> None:
    path = docs / "cr\rname.md"
    path.write_text("legacyword 熊猫\n", encoding="utf-8")
    built.ingest([docs])
    store = built.handle._require()
    stored = f'path == "{stored_path(str(path))}"'
    # rewrite its rows as semsearch before issue 23 wrote them: the path raw, which no filter can
    # name (every ingest of that folder then failed)
    names = (store.chunks_name, store.ledger_name)
    chunks, ledger = (store.query(name, stored, fields_of(store, name)) for name in names)
    store.delete(store.chunks_name, stored)
    store.delete(store.ledger_name, stored)
    store.insert(store.chunks_name, [r | {"path": str(path), "id": r["id"] ^ 1} for r in chunks])
    store.insert(store.ledger_name, [r | {"path": str(path), "key": r["key"] ^ 1} for r in ledger])
    assert built.search("legacyword", k=3, mode="lexical") == []  # never current, and no error
    assert all(c.ok for c in built.check())
    again = built.ingest([docs])
    assert (again.files_added, again.files_unchanged) == (1, 12)
    assert [h.source for h in built.search("legacyword", k=3, mode="lexical")] == [str(path)]
    assert "1 ledger rows" in " ".join(c.detail for c in built.check())
    assert all(c.ok and not c.detail for c in built.repair())
    assert built.remove([path]).files_removed == 1 and all(c.ok for c in built.check())


# -- versions ---------------------------------------------------------------------------------


def test_a_version_being_written_is_invisible_and_repair_deletes_it(built: semsearch.Index, docs: Path) -> None:
    backend = built.handle
    store = backend._require()
    panda = str(docs / "大熊猫.md")
    before = [(h.source, h.start) for h in built.search("熊猫", k=50, mode="lexical")]
    # a writer killed after inserting a new version's chunks, before publishing it
    item = next(backend.export([panda]))
    rows = milvus_data.chunk_rows(panda, milvus_data.new_version(), item.document, item.chunks, item.vectors)
    store.insert(store.chunks_name, rows)
    after = [(h.source, h.start) for h in built.search("熊猫", k=50, mode="lexical")]
    assert after == before and len(set(after)) == len(after)
    checks = {c.name: c for c in built.check()}
    assert all(c.ok for c in checks.values())
    assert checks["only current versions stored"].detail.startswith(f"{len(rows)} chunk rows and 0 ledger rows")
    built.repair()
    assert milvus_upkeep.survey(store).orphans == []


def test_the_newer_of_two_writers_of_one_file_wins_whole(
    built: semsearch.Index, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = built.handle
    panda = docs / "大熊猫.md"
    item = next(backend.export([str(panda)]))
    newer = semsearch.index.backend.Published(item.document, item.chunks[:2], item.vectors[:2])
    backend.commit([newer], [])  # the newer version: two chunks
    # a slower writer whose version is older publishes after it: it lost, and takes itself out
    monkeypatch.setattr(milvus_data, "new_version", lambda: 1)
    backend.commit([item], [])
    hits = [h for h in built.search("熊猫", k=50, mode="lexical") if h.source == str(panda)]
    assert 0 < len(hits) <= 2
    survey = milvus_upkeep.survey(backend._require())
    assert survey.orphans == [] and survey.superseded == [] and survey.broken == []


def test_a_document_missing_chunks_fails_the_check_and_repair_takes_it_out(built: semsearch.Index, docs: Path) -> None:
    backend = built.handle
    store = backend._require()
    panda = str(docs / "大熊猫.md")
    first = min(h.chunk_id for h in built.search("熊猫", k=50, mode="lexical") if h.source == panda)
    store.delete(store.chunks_name, f"id in [{first}]")
    failed = [c for c in built.check() if not c.ok]
    assert [c.name for c in failed] == ["every document's chunks present, once each"]
    assert all(c.ok for c in built.repair())
    assert built.notes[-1] == "1 documents were not whole and were taken out; ingest them again"
    again = built.ingest([docs])
    assert again.files_added == 1 and again.chunks_embedded > 0 and all(c.ok for c in built.check())


def test_an_index_from_before_folding_gets_folded_terms_on_ingest_or_repair(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import unicodedata

    from semsearch.documents import terms

    folder = tmp_path / "variants"
    folder.mkdir()
    (folder / "traditional.md").write_text("萬里長城。電腦的記憶體不夠。", encoding="utf-8")
    (folder / "other.md").write_text("熊猫吃竹子。", encoding="utf-8")

    def written_before_folding() -> None:  # as semsearch wrote it before: NFKC + casefold only
        with monkeypatch.context() as patched:
            patched.setattr(terms, "fold", lambda text: unicodedata.normalize("NFKC", text).casefold())
            with semsearch.open_index(lite(tmp_path), str(tiny_model), device="cpu") as index:
                index.handle.upgrade_terms()  # the stored terms as the old fold makes them
                index.handle._meta().delete_meta(f"terms:{index.handle._require().prefix}")

    with semsearch.open_index(lite(tmp_path), str(tiny_model), device="cpu") as index:
        index.ingest([folder])
    written_before_folding()
    with semsearch.open_index(lite(tmp_path), str(tiny_model), device="cpu") as index:
        assert index.search("长城", k=5, mode="lexical") == []
        assert "written before Traditional/Simplified folding" in index.notes[-1]
        assert [c.name for c in index.check() if not c.ok] == ["chunks carry their lexical terms"]
        index.ingest([folder])  # nothing to embed; the Traditional chunk's terms are written again, once
        assert any(note.startswith("Wrote the lexical terms of 1 chunks again") for note in index.notes)
        assert [Path(h.source).name for h in index.search("长城", k=5, mode="lexical")] == ["traditional.md"]
        assert all(c.ok for c in index.check())
    written_before_folding()
    with semsearch.open_index(lite(tmp_path), str(tiny_model), device="cpu") as index:
        assert all(c.ok for c in index.repair())
        assert [Path(h.source).name for h in index.search("内存", k=5, mode="lexical")] == ["traditional.md"]
    with semsearch.open_index(lite(tmp_path), create=False) as index:
        assert index.handle.terms_version == terms.TERMS_VERSION and index.notes == []
    assert end_servers(tmp_path, wait=2.0) == []


# -- index types and a reindex ----------------------------------------------------------------


def test_index_types_map_to_milvus_and_lite_refuses_what_it_cannot_build(
    built: semsearch.Index, tmp_path: Path
) -> None:
    assert built.info().index_type == "FLAT in Milvus Lite"
    with pytest.raises(InvalidOptionError, match="Milvus Lite builds only auto, flat, ivf; hnsw needs a Milvus server"):
        semsearch.open_index(lite(tmp_path), index_type="hnsw")
    with pytest.raises(InvalidOptionError, match="a Milvus index type"):
        semsearch.open_index(tmp_path / "local", index_type="diskann")
    built.close()
    with semsearch.open_index(lite(tmp_path), index_type="ivf", device="cpu") as index:
        before = [h.chunk_id for h in index.search("熊猫", k=5)]
        assert all(c.ok for c in index.repair())
        assert index.info().index_type == "IVF_FLAT in Milvus Lite" and index.manifest.index_type == "ivf"
        assert [h.chunk_id for h in index.search("熊猫", k=5)] == before


def test_a_reindex_builds_new_collections_and_switches_to_them(built: semsearch.Index, docs: Path) -> None:
    old = built.handle._require().prefix
    report = built.reindex(chunking=semsearch.ChunkSettings(chunk_tokens=64, overlap_tokens=8))
    assert report.files_added == 12 and report.chunks_embedded == report.chunks_total
    store = built.handle._require()
    assert store.prefix != old and not store.client.has_collection(f"{old}_chunks")
    assert built.manifest.chunking.chunk_tokens == 64 and all(c.ok for c in built.check())
    assert built.search("熊猫", k=1, mode="lexical")[0].source == str(docs / "大熊猫.md")


# -- the commands, the server, the retrievers --------------------------------------------------


def run(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = child_environment() | {"HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "semsearch", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=cwd)


@pytest.mark.slow
def test_every_command_works_on_milvus(tmp_path: Path, docs: Path, tiny_model: Path) -> None:
    where = lite(tmp_path)
    ingest = run("ingest", docs, "--index", where, "--model", tiny_model, "--device", "cpu", "--json")
    assert ingest.returncode == 0 and json.loads(ingest.stdout)["files_added"] == 12, ingest.stderr
    query = run("query", "熊猫", "--index", where, "--mode", "hybrid", "--type", "md", "--context", "1", "--json")
    assert query.returncode == 0 and json.loads(query.stdout)["results"], query.stderr
    info = run("info", "--index", where, "--json")
    assert json.loads(info.stdout)["documents"] == 12 and json.loads(info.stdout)["index_type"] == "FLAT in Milvus Lite"
    assert run("info", "--check", "--index", where).returncode == 0
    assert run("remove", docs / "science", "--index", where).stdout.startswith("removed 3 documents")
    assert run("repair", "--index", where).returncode == 0
    back = tmp_path / "local"
    moved = run("migrate", where, back, "--json")
    assert moved.returncode == 0 and json.loads(moved.stdout)["documents_copied"] == 9, moved.stderr
    assert run("info", "--check", "--index", back).returncode == 0
    missing = run("query", "熊猫", "--index", lite(tmp_path, "none"))
    assert missing.returncode == 1 and missing.stderr.startswith("Error: No index at milvus-lite:")
    assert end_servers(tmp_path) == []  # each process's server ended with it


@pytest.mark.slow
def test_a_query_on_a_lite_file_a_server_holds_goes_to_that_server(
    built: semsearch.Index, tmp_path: Path, docs: Path
) -> None:
    # issue 23: the query failed with "... or --wait", a flag query does not have
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from servers import start, stop

    expected = [(h.source, h.start) for h in built.search("熊猫", k=3, mode="lexical")]
    built.close()
    record = tmp_path / ".index.db.server.json"
    server = start(lite(tmp_path), tmp_path, tmp_path / "server.log")  # type: ignore[arg-type]
    try:
        assert json.loads(record.read_text(encoding="utf-8")) == {
            "url": server.url, "pid": server.process.pid, "index": f"milvus-lite:{tmp_path / 'index.db'}/semsearch"
        }  # fmt: skip
        served = httpx.get(server.url + "/info").json()["server"]["queries"]
        query = ["query", "熊猫", "--mode", "lexical", "-k", "3", "--json", "--index"]
        for naming, cwd in [(lite(tmp_path), None), ("milvus-lite:./index.db/semsearch", tmp_path)]:
            through = run(*query, naming, cwd=cwd)
            assert through.returncode == 0, through.stderr
            assert [(h["source"], h["start"]) for h in json.loads(through.stdout)["results"]] == expected
        assert httpx.get(server.url + "/info").json()["server"]["queries"] == served + 2
        # what cannot go to the server is told the file is held, never to use a flag it lacks
        for refused in (run(*query, lite(tmp_path), "--no-server"), run(*query, lite(tmp_path) + "/other")):
            lines = refused.stderr.strip().splitlines()
            assert refused.returncode == 1 and len(lines) == 1, refused.stderr
            assert lines[0].startswith("Error: Milvus Lite file") and "open in another process" in lines[0]
            assert "--wait" not in lines[0] and "Traceback" not in refused.stderr
        ingest = run("ingest", docs, "--index", lite(tmp_path))  # a command with --wait is offered it
        assert ingest.returncode == 1 and ingest.stderr.strip().endswith("or pass --wait to wait for it")
    finally:
        stop(server)
    assert not record.exists()
    assert end_servers(tmp_path) == []


@pytest.mark.slow
def test_the_server_and_the_retrievers_answer_from_milvus(built: semsearch.Index, tmp_path: Path, docs: Path) -> None:
    import httpx

    pytest.importorskip("langchain_core")
    from semsearch.integrations.langchain import SemsearchRetriever

    expected = [(h.source, h.start) for h in built.search("熊猫", k=3)]
    retrieved = SemsearchRetriever(index=built, k=3).invoke("熊猫")
    assert [(d.metadata["source"], d.metadata["start"]) for d in retrieved] == expected
    built.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "semsearch", "serve", "--index", lite(tmp_path), "--port", str(port)]
    server = subprocess.Popen([*command, "--device", "cpu"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                found = httpx.post(f"http://127.0.0.1:{port}/search", json={"query": "熊猫", "k": 3}, timeout=60)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, (
                    server.stderr.read() if server.stderr else ""
                )
                time.sleep(0.3)
        assert [(h["source"], h["start"]) for h in found.json()["results"][0]["hits"]] == expected
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    assert end_servers(tmp_path) == []

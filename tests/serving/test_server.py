"""The HTTP server, as a real process on loopback: search, info, health, ingest, auth, limits,
concurrency, an ingest during searches, and a schemathesis fuzz from the served schema."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from children import child_environment  # noqa: E402
from servers import Server, start, stop  # noqa: E402

import semsearch  # noqa: E402

pytestmark = pytest.mark.slow  # real servers, in processes of their own

SAMPLE_DOCS = Path(__file__).resolve().parents[2] / "sample_docs"
KEY = "s3cret-key-for-tests"


def assert_same_ranking(found: list[dict], expected: list[dict]) -> None:
    """The same hits, up to near-ties: a query embedded in a batch or alone can differ in the
    last bits of its vector, which may swap two hits scoring within 1e-5 of each other."""
    assert [h["score"] for h in found] == pytest.approx([h["score"] for h in expected], abs=1e-5)
    clear = [h["chunk_id"] for h in found if h["score"] > found[-1]["score"] + 1e-4]
    assert found and set(clear) <= {h["chunk_id"] for h in expected}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("served")
    root = work / "root"
    shutil.copytree(SAMPLE_DOCS, root / "docs")
    with semsearch.open_index(work / "kb", model=str(tiny_model), device="cpu") as index:
        index.ingest([root / "docs"])
    return work / "kb", root


@pytest.fixture(scope="module")
def server(built: tuple[Path, Path], oracle_reranker: Path) -> Iterator[Server]:
    index, root = built
    running = start(index, root, index.parent / "server.log", "--rerank-model", str(oracle_reranker))
    yield running
    stop(running)


def test_health_info_and_schema(server: Server) -> None:
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    info = httpx.get(server.url + "/info").json()
    assert info["documents"] == 12 and info["ingest_roots"] == [str(server.root.resolve())]
    assert info["server"]["queries"] >= 0 and info["rerankers"]
    schema = httpx.get(server.url + "/openapi.json").json()
    assert {"/search", "/passage", "/info", "/health", "/ingest"} <= set(schema["paths"])


def test_search_answers_as_the_library_does(server: Server) -> None:
    body = {"query": ["大熊猫吃什么", "长城"], "k": 3, "mode": "hybrid"}
    answer = server.post("/search", body).json()
    assert [r["query"] for r in answer["results"]] == body["query"] and answer["model"]
    with semsearch.open_index(server.index, create=False, device="cpu") as index:
        for result, query in zip(answer["results"], body["query"], strict=True):
            expected = [h.to_dict() for h in index.search(query, k=3, mode="hybrid")]
            assert_same_ranking(result["hits"], expected)
    one = server.post("/search", {"query": "大熊猫", "k": 2, "mode": "lexical"}).json()
    assert len(one["results"]) == 1 and Path(one["results"][0]["hits"][0]["source"]).name == "大熊猫.md"


def test_search_filters_and_context(server: Server) -> None:
    where = {"paths": [str(server.root / "docs" / "science")], "types": ["md"]}
    hits = server.post("/search", {"query": "海洋", "k": 5, "where": where}).json()["results"][0]["hits"]
    assert hits and all("/science/" in h["source"] and h["source"].endswith(".md") for h in hits)
    relative = {"paths": ["docs/science/*.md"]}  # taken from the first --root
    hits = server.post("/search", {"query": "海洋", "k": 5, "where": relative}).json()["results"][0]["hits"]
    assert hits and all(h["source"].startswith(str(server.root.resolve() / "docs" / "science")) for h in hits)
    wide = server.post("/search", {"query": "大熊猫", "k": 2, "mode": "lexical", "context": 1}).json()
    assert all(len(h["chunk_ids"]) >= 1 for h in wide["results"][0]["hits"])
    bad = server.post("/search", {"query": "x", "where": {"modified_after": "someday"}})
    assert bad.status_code == 422 and "modified_after" in bad.json()["error"]["message"]
    for when in ("2024-05-01T09:30:00Z", "7d", 1_700_000_000):
        found = server.post("/search", {"query": "长城", "k": 1, "where": {"modified_after": when}})
        assert found.status_code == 200 and len(found.json()["results"][0]["hits"]) == 1


def test_a_passage_widens_a_hit_in_place(server: Server) -> None:
    (hit,) = server.post("/search", {"query": "大熊猫", "k": 1, "mode": "lexical"}).json()["results"][0]["hits"]
    body = {"chunk_id": hit["chunk_id"], "context": 2, "query": "大熊猫"}
    wide = server.post("/passage", body)
    assert wide.status_code == 200, wide.text
    passage = wide.json()["passage"]
    assert hit["text"] in passage["text"] and len(passage["text"]) > len(hit["text"])
    assert hit["chunk_id"] in passage["chunk_ids"] and len(passage["chunk_ids"]) > 1
    assert passage["source"] == hit["source"] and passage["start"] <= hit["start"]
    assert passage["highlights"] and all("熊猫" in passage["text"][s:e] for s, e in passage["highlights"])
    with semsearch.open_index(server.index, create=False, device="cpu") as index:
        assert passage == json.loads(json.dumps(index.passage(hit["chunk_id"], 2, "大熊猫").to_dict()))
    plain = server.post("/passage", {"chunk_id": hit["chunk_id"]}).json()["passage"]  # context 1, no highlights
    assert plain["highlights"] == [] and len(plain["chunk_ids"]) <= len(passage["chunk_ids"])
    for missing in (10**12, 2**63, 10**30):  # beyond any id an index holds (SQLite's or Milvus's)
        gone = server.post("/passage", {"chunk_id": missing, "context": 1})
        assert gone.status_code == 404 and gone.json()["error"]["type"] == "ChunkNotFoundError"
        assert "search again" in gone.json()["error"]["message"]
    for bad in ({"chunk_id": hit["chunk_id"], "context": 11}, {"chunk_id": -1}, {"chunk_id": "5"}, {"context": 1}):
        refused = server.post("/passage", bad)
        assert refused.status_code == 422 and refused.json()["error"]["type"] == "invalid_request", bad
    extra = server.post("/passage", {"chunk_id": hit["chunk_id"], "k": 3})
    assert extra.status_code == 422 and "k" in extra.json()["error"]["message"]


def test_search_reranks_with_the_models_the_server_offers(server: Server, oracle_reranker: Path) -> None:
    body = {"query": "向量检索", "k": 3, "mode": "hybrid", "rerank_depth": 20}
    plain = server.post("/search", body).json()["results"][0]["hits"]
    reranked = server.post("/search", {**body, "rerank": str(oracle_reranker)}).json()["results"][0]["hits"]
    assert all(hit["reranked"] for hit in reranked) and not any(hit["reranked"] for hit in plain)
    assert [hit["score"] for hit in reranked] == sorted((hit["score"] for hit in reranked), reverse=True)
    # no passage holds the oracle's marker: every score ties, and ties keep the first stage's order
    assert [(h["chunk_id"], h["first_score"]) for h in reranked] == [(h["chunk_id"], h["score"]) for h in plain]
    for other in (True, "BAAI/bge-reranker-base"):  # the default model is not offered here, nor that one
        refused = server.post("/search", {**body, "rerank": other})
        assert refused.status_code == 422 and "rerank" in refused.json()["error"]["message"]
    schema = httpx.get(server.url + "/openapi.json").json()["components"]["schemas"]["SearchRequest"]
    assert oracle_reranker.name in json.dumps(schema["properties"]["rerank"])  # by its id, not its path


def test_openai_embeddings_equal_the_encoder_through_the_openai_client(server: Server, tiny_model: Path) -> None:
    openai = pytest.importorskip("openai")
    import numpy as np

    from semsearch.embedding.encoder import Encoder

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    model = client.models.list().data[0].id
    assert model == tiny_model.name  # the folder's name, not its path
    texts = ["大熊猫吃什么？", "长城" * 300, "Python 3.12", " "]
    expected = Encoder.load(str(tiny_model), device="cpu").encode(texts)
    for chosen in ({}, {"encoding_format": "float"}):  # by default the client asks for base64 and decodes it
        answer = client.embeddings.create(model=model, input=texts, **chosen)
        vectors = np.array([item.embedding for item in answer.data], dtype=np.float32)
        assert [item.index for item in answer.data] == [0, 1, 2, 3]
        assert np.abs(vectors - expected).max() <= 1e-5
        assert answer.usage.prompt_tokens == answer.usage.total_tokens > 512  # the long text read up to the limit
    one = client.embeddings.create(model=model, input="大熊猫")
    assert len(one.data) == 1 and len(one.data[0].embedding) == expected.shape[1]
    raw = server.post("/v1/embeddings", {"input": texts[:1], "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert np.abs(decoded - expected[0]).max() <= 1e-5
    bad = server.post("/v1/embeddings", {"input": []})
    assert bad.status_code == 422 and set(bad.json()["error"]) == {"message", "type", "param", "code"}


def test_rerank_in_the_form_jina_and_cohere_clients_send(server: Server, oracle_reranker: Path) -> None:
    documents = ["没有记号的一段。", {"text": "乒乒乒"}, "一段很长的文字，只有一个乒。"]
    answer = server.post("/v1/rerank", {"model": str(oracle_reranker), "query": "问题", "documents": documents})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [r["index"] for r in body["results"]] == [1, 2, 0] and body["usage"]["total_tokens"] > 0
    assert body["results"][0]["document"] == {"text": "乒乒乒"} and body["model"] == oracle_reranker.name
    scores = [r["relevance_score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    top = server.post("/v1/rerank", {"query": "问题", "documents": documents, "top_n": 1, "return_documents": False})
    assert top.json()["results"] == [{"index": 1, "relevance_score": scores[0]}]
    other = server.post("/v1/rerank", {"model": "BAAI/bge-reranker-base", "query": "q", "documents": ["d"]})
    assert other.status_code == 404 and "does not rerank" in other.json()["error"]["message"]
    listed = [m["id"] for m in httpx.get(server.url + "/v1/models").json()["data"]]
    assert oracle_reranker.name in listed and str(oracle_reranker) not in listed


def test_embeddings_refuse_an_unknown_model_and_empty_input_as_openai_does(server: Server) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert missing.value.code == "model_not_found" and missing.value.type == "invalid_request_error"
    for empty in ("", ["大熊猫", ""]):
        with pytest.raises(openai.BadRequestError) as refused:
            client.embeddings.create(model=client.models.list().data[0].id, input=empty)
        assert refused.value.type == "invalid_request_error" and refused.value.param == "input"
    raw = server.post("/v1/embeddings", {"input": ["a", ""]})
    assert raw.status_code == 400 and "input[1]" in raw.json()["error"]["message"]


def test_a_query_answers_through_the_running_server_with_the_same_output(server: Server) -> None:
    record = json.loads((server.index / "server.json").read_text(encoding="utf-8"))
    assert record["pid"] == server.process.pid and record["url"] == server.url
    command = [sys.executable, "-m", "semsearch", "query", "--index", str(server.index), "--device", "cpu"]
    environment = child_environment() | {"HF_HUB_OFFLINE": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, *args], capture_output=True, text=True, env=environment, timeout=300)

    served = httpx.get(server.url + "/info").json()["server"]["queries"]
    for args in (["大熊猫", "--mode", "lexical", "--json"], ["长城", "-k", "3", "--mode", "hybrid", "--context", "1"]):
        through, here = run(*args), run(*args, "--no-server")
        assert through.returncode == here.returncode == 0, through.stderr + here.stderr
        assert through.stdout == here.stdout and through.stderr == here.stderr
    filtered = ["海洋", "--path", "docs/science", "--json"]  # relative to the query's directory, not the server's
    inside = subprocess.run([*command, *filtered], capture_output=True, text=True, env=environment, cwd=server.root)
    hits = json.loads(inside.stdout)["results"]
    assert hits and all("/science/" in h["source"] for h in hits)
    assert httpx.get(server.url + "/info").json()["server"]["queries"] == served + 3  # the --no-server ones did not


def test_a_stale_server_record_is_passed_over(tmp_path: Path, tiny_model: Path, docs: Path) -> None:
    with semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu") as index:
        index.ingest([docs])
    record = {"url": "http://127.0.0.1:9", "pid": 2**22 + 7, "index": str(tmp_path / "kb")}  # no such process
    (tmp_path / "kb" / "server.json").write_text(json.dumps(record), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "semsearch", "query", "大熊猫", "--index", str(tmp_path / "kb"), "--mode", "lexical"],
        capture_output=True, text=True, timeout=300,
        env=child_environment() | {"HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0 and "大熊猫.md" in result.stdout, result.stderr


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"query": "x", "k": 0}, 422, "k"),
        ({"query": "x", "k": 101}, 422, "k"),
        ({"query": ""}, 422, "query"),
        ({"query": " \u3000\x1c"}, 422, "query"),
        ({"query": ["x"] * 33}, 422, "query"),
        ({"query": "x", "mode": "psychic"}, 422, "mode"),
        ({"query": "x", "context": 11}, 422, "context"),
        ({"query": "x", "colour": "red"}, 422, "colour"),
        ({"k": 3}, 422, "query"),
        ({"query": "x" * 4001}, 422, "query"),
        ({"query": "x", "k": True}, 422, "k"),
        ({"query": "x", "k": "5"}, 422, "k"),
        ({"query": "x", "min_score": "nan"}, 422, "min_score"),
        ({"query": ["x"] * 32, "k": 100, "context": 10}, 422, "67,200 chunks"),
        ({"query": "x", "where": {"paths": ["[z-a]*"]}}, 400, "Invalid path pattern"),
    ],
)
def test_bad_searches_get_json_errors(server: Server, body: object, status: int, words: str) -> None:
    response = server.post("/search", body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["status"] == status and words in error["message"]


def test_a_date_in_year_one_is_a_time_like_any_other(server: Server) -> None:
    found = server.post("/search", {"query": "长城", "k": 1, "where": {"modified_after": "0001-01-01"}})
    assert found.status_code == 200 and found.json()["results"][0]["hits"]


def test_malformed_and_oversized_requests(server: Server) -> None:
    broken = httpx.post(server.url + "/search", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 422 and "error" in broken.json()
    huge = httpx.post(server.url + "/search", content=b"x" * 1_000_001, headers={"content-type": "application/json"})
    assert huge.status_code == 413 and huge.json()["error"]["type"] == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size is counted as it arrives
        for _ in range(20):
            yield b" " * 100_000

    streamed = httpx.post(server.url + "/search", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and streamed.headers["connection"] == "close"  # the rest is never read
    assert httpx.get(server.url + "/nowhere").json()["error"]["status"] == 404
    assert httpx.get(server.url + "/search").status_code == 405


def test_health_answers_while_the_heaviest_allowed_search_runs(server: Server) -> None:
    heavy = {"query": [f"长城{n}" for n in range(20)], "k": 100, "context": 4, "mode": "hybrid"}
    with ThreadPoolExecutor(4) as pool:
        searches = [pool.submit(server.post, "/search", heavy) for _ in range(3)]
        while not all(s.done() for s in searches):
            started = time.monotonic()
            assert httpx.get(server.url + "/health", timeout=30).status_code == 200
            assert time.monotonic() - started < 10
        assert all(s.result().status_code == 200 for s in searches)


def test_ingest_stays_within_its_roots(server: Server, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("机密文件。", encoding="utf-8")
    for path in (str(outside), "../../", "/etc", "docs/../../outside"):
        response = server.post("/ingest", {"paths": [path]})
        assert response.status_code == 403, path
        assert "outside" in response.json()["error"]["message"]
    (server.root / "escape").symlink_to(outside)
    assert server.post("/ingest", {"paths": ["escape"]}).status_code == 403
    missing = server.post("/ingest", {"paths": ["docs/no-such-folder"]})
    assert missing.status_code == 404 and "No such file" in missing.json()["error"]["message"]
    for wait in (True, False):  # a NUL byte: refused by the schema, never an internal error
        nul = server.post("/ingest", {"paths": ["docs/a\x00b.md"], "wait": wait})
        assert nul.status_code == 422 and "paths" in nul.json()["error"]["message"]
    report = server.post("/ingest", {"paths": ["."]}).json()  # the link inside is passed over, and why
    assert any(s["path"].endswith("escape") and "outside" in s["reason"] for s in report["skipped"])
    assert server.post("/search", {"query": "机密", "mode": "lexical"}).json()["results"][0]["hits"] == []
    # one file: it alone is looked at (this once removed every other document)
    documents = httpx.get(server.url + "/info").json()["documents"]
    one = server.post("/ingest", {"paths": ["docs/大熊猫.md"]}).json()
    assert one["files_removed"] == 0 and httpx.get(server.url + "/info").json()["documents"] == documents


def test_fifty_concurrent_searches_are_batched_and_all_answered(server: Server) -> None:
    queries = [f"{topic}{n}" for n in range(10) for topic in ("大熊猫", "长城", "睡眠", "茶", "面包")]
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda q: server.post("/search", {"query": q, "k": 3}), queries))
    assert all(a.status_code == 200 for a in answers)
    assert [a.json()["results"][0]["query"] for a in answers] == queries
    alone = server.post("/search", {"query": queries[7], "k": 3}).json()["results"][0]["hits"]
    assert_same_ranking(answers[7].json()["results"][0]["hits"], alone)
    assert httpx.get(server.url + "/info").json()["server"]["largest_batch"] > 1


def test_searches_keep_working_during_an_ingest(server: Server) -> None:
    more = server.root / "more"
    more.mkdir()
    for n in range(60):
        (more / f"note{n}.txt").write_text(f"第{n}号笔记。" + "今天学习了向量检索和倒排索引。" * 40, encoding="utf-8")
    results: list[httpx.Response] = []
    ingest = threading.Thread(target=lambda: results.append(server.post("/ingest", {"paths": ["more"]})))
    ingest.start()
    answered = []
    while ingest.is_alive() or len(answered) < 5:
        answered.append(server.post("/search", {"query": "向量检索", "k": 5, "mode": "hybrid"}))
    ingest.join()
    assert all(a.status_code == 200 for a in answered), [a.text for a in answered if a.status_code != 200]
    (report,) = results
    assert report.status_code == 200 and report.json()["files_added"] == 60
    busy = server.post("/ingest", {"paths": ["more"]})  # a second ingest now finds nothing to do
    assert busy.status_code == 200 and busy.json()["files_unchanged"] == 60
    hits = server.post("/search", {"query": "向量检索", "k": 5, "mode": "lexical"}).json()["results"][0]["hits"]
    assert len(hits) == 5 and all("/more/" in h["source"] for h in hits)


def test_an_api_key_guards_every_route_but_health_and_the_docs(built: tuple[Path, Path], tmp_path: Path) -> None:
    index, root = built
    keyed = start(index, root, tmp_path / "keyed.log", env={"SEMSEARCH_API_KEY": KEY})
    try:
        body = {"query": "长城"}
        assert httpx.get(keyed.url + "/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": "Basic x"}):
            response = keyed.post("/search", body, headers=headers)
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["type"] == "unauthorized"
        for route in ("/info", "/ingest"):
            assert httpx.get(keyed.url + route).status_code == 401
        assert keyed.post("/passage", {"chunk_id": 1}).status_code == 401
        # the docs and the search page hold no data: a browser (which sends no key) can read them;
        # 'Authorize' and the page send it
        for public in ("/docs", "/", "/static/page.js", "/static/page.css"):
            assert httpx.get(keyed.url + public).status_code == 200, public
        schema = httpx.get(keyed.url + "/openapi.json").json()
        assert schema["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
        assert keyed.post("/search", body, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    finally:
        stop(keyed)


@pytest.fixture(scope="module")
def named(
    built: tuple[Path, Path], oracle_reranker: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server with a key, its model served by a name of its own, the oracle reranker offered
    and another that cannot load (no such folder)."""
    index, root = built
    missing = str(tmp_path_factory.mktemp("nothing") / "no-reranker")
    options = ["--served-model-name", "xiaobu-small", "--rerank-model", str(oracle_reranker), "--rerank-model", missing]
    log = tmp_path_factory.mktemp("named") / "named.log"
    running = start(index, root, log, *options, env={"SEMSEARCH_API_KEY": KEY})
    yield running
    stop(running)


def test_no_answer_without_the_key_names_a_path(named: Server, tmp_path_factory: pytest.TempPathFactory) -> None:
    # the index, the roots and the models all lie under pytest's base folder
    base = str(tmp_path_factory.getbasetemp())
    public = ["/", "/health", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"]
    public += ["/static/page.js", "/static/page.css", "/static/none.js", "/v1/models", "/info"]  # the last: 401
    for route in public:
        answer = httpx.get(named.url + route)
        assert answer.status_code in (200, 401, 404) and base not in answer.text, route
    schema = httpx.get(named.url + "/openapi.json").json()["components"]["schemas"]
    assert schema["EmbeddingRequest"]["properties"]["model"]["examples"] == ["xiaobu-small"]
    assert "oracle-reranker" in json.dumps(schema["SearchRequest"]["properties"]["rerank"])


def test_models_go_by_short_ids_and_by_their_full_names(named: Server, tiny_model: Path, oracle_reranker: Path) -> None:
    keyed = {"Authorization": f"Bearer {KEY}"}
    listed = httpx.get(named.url + "/v1/models", headers=keyed).json()["data"]
    assert [m["id"] for m in listed] == ["xiaobu-small", "oracle-reranker"]  # --served-model-name, the folder's name
    for model in ("xiaobu-small", str(tiny_model)):
        answer = named.post("/v1/embeddings", {"model": model, "input": "长城"}, headers=keyed)
        assert answer.status_code == 200 and answer.json()["model"] == "xiaobu-small", answer.text
    body = {"query": "问题", "documents": ["乒乒", "无"]}
    for model in ("oracle-reranker", str(oracle_reranker)):
        answer = named.post("/v1/rerank", {**body, "model": model}, headers=keyed)
        assert answer.status_code == 200 and answer.json()["model"] == "oracle-reranker", answer.text
        found = named.post("/search", {"query": "长城", "k": 2, "rerank": model}, headers=keyed)
        assert found.status_code == 200 and all(h["reranked"] for h in found.json()["results"][0]["hits"])


def test_a_reranker_that_cannot_load_is_not_offered(named: Server, oracle_reranker: Path) -> None:
    log = named.log.read_text(encoding="utf-8")
    (note,) = [line for line in log.splitlines() if "no-reranker" in line]
    assert note.startswith("Note: reranker ") and "is not offered: Cannot load reranker" in note
    assert "--rerank-model" in note and "pass --model" not in note
    keyed = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(named.url + "/info", headers=keyed).json()["rerankers"] == [str(oracle_reranker)]
    listed = [m["id"] for m in httpx.get(named.url + "/v1/models", headers=keyed).json()["data"]]
    assert not any("no-reranker" in model for model in listed)
    missing = next(word for word in note.split() if word.endswith("no-reranker"))
    refused = named.post("/search", {"query": "长城", "rerank": missing}, headers=keyed)
    assert refused.status_code == 422 and "rerank" in refused.json()["error"]["message"]


def test_serve_says_what_it_serves_once_it_listens(named: Server) -> None:
    deadline = time.monotonic() + 30  # printed once bound, which /health answering follows closely
    while not (lines := [x for x in named.log.read_text(encoding="utf-8").splitlines() if x.startswith("Serving")]):
        assert time.monotonic() < deadline, named.log.read_text(encoding="utf-8")
        time.sleep(0.1)
    (line,) = lines
    shown = re.escape(str(named.index))
    expected = rf"Serving {shown}: [0-9,]+ documents, [0-9,]+ chunks, model xiaobu-small; the search page at "
    assert re.fullmatch(expected + re.escape(f"{named.url}/ (API docs at {named.url}/docs)"), line), line


def test_the_search_page_and_the_docs_work_offline_from_the_package(server: Server) -> None:
    import re

    home = httpx.get(server.url + "/", follow_redirects=False)
    assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in home.headers["content-security-policy"] and 'href="/docs"' in home.text
    for page in ("/", "/docs", "/redoc"):
        html = httpx.get(server.url + page).text
        assert "https://" not in html and "http://" not in html
        sources = re.findall(r"""(?:src|href)=["']([^"':]+)["']""", html)  # data: URLs left out
        sources += re.findall(r"""url:\s*['"]([^'"]+)['"]""", html)
        assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources), sources  # no CDN
        for source in sources:
            response = httpx.get(server.url + source)
            assert response.status_code == 200, source
            assert source in ("/docs", "/redoc") or len(response.content) > 1000, source  # pages, or assets


def test_serving_beyond_loopback_needs_a_key(built: tuple[Path, Path]) -> None:
    index, root = built
    env = {k: v for k, v in os.environ.items() if k != "SEMSEARCH_API_KEY"}
    command = [sys.executable, "-m", "semsearch", "serve", "--index", str(index), "--host", "0.0.0.0"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: Serving on 0.0.0.0") and "SEMSEARCH_API_KEY" in result.stderr


def test_schemathesis_finds_nothing_wrong(server: Server) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    # per operation; the default run is the same every time (a fuzz finding must not turn one CI
    # run red and the next green), a deeper one (more examples) draws new cases each time
    examples = int(os.environ.get("SEMSEARCH_FUZZ_EXAMPLES", "40"))
    fixed = "SEMSEARCH_FUZZ_EXAMPLES" not in os.environ
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=fixed,
        )
        @given(case=operation.as_strategy())
        def check(case: object) -> None:
            case.call_and_validate()  # type: ignore[attr-defined]

        try:
            check()
        except Exception as exc:  # collect every operation's findings before failing
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_serve_reports_setup_errors_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from semsearch.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--index", str(tmp_path / "none")])
    assert result.exit_code == 1 and result.stderr.startswith("Error: No index at")
    result = runner.invoke(app, ["serve", "--index", str(tmp_path / "none"), "--root", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "--root must be a folder" in result.stderr
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if the server extra were not installed
    monkeypatch.delitem(sys.modules, "semsearch.serving.server", raising=False)
    import semsearch.serving

    monkeypatch.delattr(semsearch.serving, "server", raising=False)
    result = runner.invoke(app, ["serve", "--index", str(tmp_path / "none")])
    assert result.exit_code == 1 and "pip install 'semsearch[server]'" in result.stderr


def test_an_ingest_by_another_process_never_breaks_a_query(server: Server, tiny_model: Path) -> None:
    outside = server.root / "cli"
    outside.mkdir()
    for n in range(40):
        (outside / f"cli{n}.txt").write_text(f"命令行写入的第{n}篇。" + "分词与检索。" * 60, encoding="utf-8")
    command = [sys.executable, "-m", "semsearch", "ingest", str(outside), "--index", str(server.index)]
    writer = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    answered = []
    while writer.poll() is None or len(answered) < 5:
        answered.append(server.post("/search", {"query": "分词与检索", "k": 3, "mode": "hybrid"}))
    assert writer.returncode == 0, writer.stderr.read() if writer.stderr else ""
    assert all(a.status_code == 200 for a in answered), [a.text for a in answered if a.status_code != 200]
    hits = server.post("/search", {"query": "分词与检索", "k": 3, "mode": "lexical"}).json()["results"][0]["hits"]
    assert len(hits) == 3 and all("/cli/" in h["source"] for h in hits)


def test_an_overloaded_server_turns_searches_away_with_503() -> None:
    from fastapi.testclient import TestClient

    from semsearch.serving.server import MAX_BACKLOG, create_app

    class Swamped:  # a service with more searches waiting than the server takes on
        backlog, alive, roots, rerankers = MAX_BACKLOG, True, (), ()

        def watch_state(self) -> None:  # nothing watched: /health is ok
            return None

        def call(self, work: object) -> Future[tuple[str, int]]:  # the model, for the /v1 routes
            done: Future[tuple[str, int]] = Future()
            done.set_result(("m", 4))
            return done

    client = TestClient(create_app(Swamped()))  # type: ignore[arg-type]
    response = client.post("/search", json={"query": "长城"})
    assert response.status_code == 503 and response.json()["error"]["type"] == "overloaded"
    assert client.get("/health").json()["status"] == "ok"


def test_an_ingest_can_run_without_holding_the_request(server: Server) -> None:
    later = server.root / "later"
    later.mkdir()
    for n in range(10):
        (later / f"later{n}.txt").write_text(f"稍后查看的第{n}篇。" + "异步导入。" * 50, encoding="utf-8")
    started = server.post("/ingest", {"paths": ["later"], "wait": False})
    assert started.status_code == 202 and started.json()["state"] == "running"
    assert started.json()["paths"] == [str(later.resolve())]
    deadline = time.monotonic() + 60
    while (state := httpx.get(server.url + "/ingest").json())["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert state["state"] == "done" and state["report"]["files_added"] == 10 and state["finished"] >= state["started"]
    failed = server.post("/ingest", {"paths": ["later/none"], "wait": False})
    assert failed.status_code == 202
    while (state := httpx.get(server.url + "/ingest").json())["state"] == "running":
        time.sleep(0.1)
    assert state["state"] == "failed" and state["report"] is None
    assert state["error"]["status"] == 404 and "No such file" in state["error"]["message"]


def test_a_name_that_is_not_utf8_travels_through_the_server_losslessly(server: Server) -> None:
    import json

    folder = server.root / "odd"
    folder.mkdir()
    raw = os.fsencode(folder) + b"/bad\xff\xfename.txt"
    with open(raw, "wb") as handle:
        handle.write("奇怪名字的文件讲述月亮。".encode())
    report = server.post("/ingest", {"paths": ["odd"]})
    assert report.status_code == 200, report.text
    found = server.post("/search", {"query": "奇怪名字", "k": 1, "mode": "lexical", "where": {"paths": ["odd/"]}})
    body = json.loads(found.content.decode("utf-8"))  # valid UTF-8 on the wire
    assert os.fsencode(body["results"][0]["hits"][0]["source"]) == raw


def test_serve_watch_goes_on_past_a_bad_name_and_health_says_when_the_watch_is_down(
    tmp_path: Path, tiny_model: Path
) -> None:
    root = tmp_path / "root"
    docs = root / "docs"
    shutil.copytree(SAMPLE_DOCS, docs)
    server = start(tmp_path / "kb", root, tmp_path / "server.log", "--model", str(tiny_model), "--watch", str(docs))
    try:

        def names() -> set[bytes]:
            found = server.post("/search", {"query": "文件", "k": 50, "mode": "lexical"})
            if found.status_code == 404:  # no index until the first round has committed
                return set()
            return {os.fsencode(Path(h["source"]).name) for h in found.json()["results"][0]["hits"]}

        def until(check, what: str) -> None:  # type: ignore[no-untyped-def]
            deadline = time.monotonic() + 120
            while not check():
                assert time.monotonic() < deadline, f"{what} not within 120 s: {server.log.read_text()}"
                time.sleep(0.2)

        until(lambda: httpx.get(server.url + "/info").json().get("documents") == 12, "the first round")
        with open(os.fsencode(docs) + b"/new\xffname.txt", "w", encoding="utf-8") as bad:
            bad.write("名字不是UTF-8的文件。")
        (docs / "after.txt").write_text("坏名字之后写下的文件。", encoding="utf-8")
        until(lambda: {b"new\xffname.txt", b"after.txt"} <= names(), "both files indexed")
        until(lambda: httpx.get(server.url + "/health").json()["status"] == "ok", "the watcher up again")
        watch = httpx.get(server.url + "/info").json()["watch"]
        assert watch["state"] == "watching" and watch["restarts"] >= 1 and watch["paths"] == [str(docs)]

        shutil.rmtree(docs)  # down while the watched folder is gone
        until(lambda: httpx.get(server.url + "/health").json()["status"] == "degraded", "degraded")
        health = httpx.get(server.url + "/health").json()
        assert health["reason"] == "watch: a watched path is gone" and str(tmp_path) not in json.dumps(health)
        watch = httpx.get(server.url + "/info").json()["watch"]
        assert watch["state"] == "degraded" and str(docs) in watch["problem"] and watch["since"] is not None
        docs.mkdir()
        (docs / "back.txt").write_text("回来的文件夹里的文件。", encoding="utf-8")
        until(lambda: names() == {b"back.txt"}, "the folder back and watched")
        ok = {"status": "ok", "version": semsearch.__version__, "reason": None}
        until(lambda: httpx.get(server.url + "/health").json() == ok, "ok again")
    finally:
        stop(server)
    assert "Traceback" not in server.log.read_text()


def test_a_watch_that_gives_up_is_degraded_in_health_and_info(
    tmp_path: Path, tiny_model: Path, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    import semsearch.index.watcher as watcher
    from semsearch.serving.server import create_app
    from semsearch.serving.service import Service

    def failing(*paths: object, **options: object):  # type: ignore[no-untyped-def]
        raise OSError(28, "OS file watch limit reached")
        yield set()

    monkeypatch.setattr(watcher, "RESTART_PAUSE_S", 0.01)
    monkeypatch.setattr(pytest.importorskip("watchfiles"), "watch", failing)
    opener = lambda: semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu")  # noqa: E731
    with opener() as index:
        index.ingest([docs])
    service = Service(opener, rerankers=()).start()
    try:
        client = TestClient(create_app(service))
        assert client.get("/health").json()["status"] == "ok" and client.get("/info").json()["watch"] is None
        service.watch([docs], on_round=lambda done: None)
        deadline = time.monotonic() + 60
        while client.get("/health").json()["status"] == "ok":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        deadline = time.monotonic() + 60
        while (watch := client.get("/info").json()["watch"])["state"] != "stopped":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert "failed to start 6 times in a row" in watch["problem"] and "watch limit" in watch["problem"]
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["reason"] == "watch: the watcher has stopped"
    finally:
        service.stop()

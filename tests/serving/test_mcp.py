"""The MCP server as a real process, through the official SDK's own stdio client: the tools it
lists, a search that finds the expected passage, bad arguments as tool errors, info, ingest
confined to the root."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from children import child_environment
from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

import semsearch  # noqa: E402

pytestmark = pytest.mark.slow  # a real server, in a process of its own

SAMPLE_DOCS = Path(__file__).resolve().parents[2] / "sample_docs"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("mcp")
    root = work / "root"
    shutil.copytree(SAMPLE_DOCS, root / "docs")
    with semsearch.open_index(work / "kb", model=str(tiny_model), device="cpu") as index:
        index.ingest([root / "docs"])
    return work / "kb", root


def session(index: Path, *extra: str) -> Any:
    """The SDK's stdio client, starting ``semsearch mcp`` (ended when the context exits)."""
    env = child_environment()
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    command = ["-m", "semsearch", "mcp", "--index", str(index), "--device", "cpu", "--rerank-model", "none", *extra]
    return stdio_client(StdioServerParameters(command=sys.executable, args=command, env=env))


def text(result: Any) -> str:
    return "\n".join(block.text for block in result.content)


async def conversation(index: Path, root: Path) -> None:
    async with session(index, "--root", str(root)) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == {"search", "info", "ingest"}
        schema = tools["search"].input_schema
        assert schema["required"] == ["query"]
        assert {"k", "mode", "where", "context", "min_score", "rerank", "rerank_depth"} <= set(schema["properties"])
        assert schema["properties"]["k"]["maximum"] == 100  # the HTTP server's bound, not the library's

        found = await client.call_tool("search", {"query": "大熊猫", "mode": "lexical", "k": 3})
        assert not found.is_error, text(found)
        first = found.structured_content["hits"][0]
        assert first["source"].endswith("大熊猫.md") and "大熊猫" in first["text"]
        assert f"{first['source']}:{first['line']}" in text(found).splitlines()[0]

        filtered = await client.call_tool(
            "search", {"query": "大熊猫", "mode": "lexical", "where": {"types": ["pdf"]}, "context": 1}
        )
        assert not filtered.is_error and all(h["source"].endswith(".pdf") for h in filtered.structured_content["hits"])

        for bad in (
            {"query": "大熊猫", "k": 0},
            {"query": "大熊猫", "mode": "psychic"},
            {"query": "大熊猫", "colour": "blue"},
            {"query": "   "},
            {"k": 3},
            {"query": "大熊猫", "where": {"modified_after": "yesterday-ish"}},
            {"query": "大熊猫", "rerank": True},  # this server offers no reranker
        ):
            result = await client.call_tool("search", bad)
            assert result.is_error, bad
            assert len(text(result).splitlines()) == 1 and "Traceback" not in text(result)

        info = await client.call_tool("info", {})
        assert not info.is_error and info.structured_content["documents"] == 12
        assert (await client.call_tool("info", {"verbose": True})).is_error
        assert (await client.call_tool("nope", {})).is_error

        outside = await client.call_tool("ingest", {"paths": [str(SAMPLE_DOCS)]})
        assert outside.is_error and "outside" in text(outside)
        nul = await client.call_tool("ingest", {"paths": ["docs/a\x00b.md"]})  # an invalid argument, not a crash
        assert nul.is_error and "NUL byte" in text(nul) and "Internal error" not in text(nul), text(nul)
        (root / "docs" / "新文件.md").write_text("# 新文件\n\n金丝猴生活在高山森林里。\n", encoding="utf-8")
        added = await client.call_tool("ingest", {"paths": ["docs"]})
        assert not added.is_error and added.structured_content["files_added"] == 1, text(added)
        again = await client.call_tool("search", {"query": "金丝猴", "mode": "lexical", "k": 1})
        assert again.structured_content["hits"][0]["source"].endswith("新文件.md")

        still = await client.call_tool("search", {"query": "大熊猫", "mode": "lexical", "k": 1})
        assert not still.is_error  # the server carried on after every error


def test_search_info_errors_and_ingest_over_stdio(built: tuple[Path, Path]) -> None:
    asyncio.run(asyncio.wait_for(conversation(*built), timeout=180))


async def without_roots(index: Path) -> None:
    async with session(index) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        assert {tool.name for tool in (await client.list_tools()).tools} == {"search", "info"}
        refused = await client.call_tool("ingest", {"paths": ["docs"]})
        assert refused.is_error


def test_no_ingest_tool_without_a_root(built: tuple[Path, Path]) -> None:
    asyncio.run(asyncio.wait_for(without_roots(built[0]), timeout=120))


KEY = "mcp-key-for-tests"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def over_http(url: str) -> None:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    keyed = httpx2.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    async with (
        keyed as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        found = await client.call_tool("search", {"query": "大熊猫", "mode": "lexical", "k": 1})
        assert found.structured_content["hits"][0]["source"].endswith("大熊猫.md")
    async with httpx2.AsyncClient(headers={"Authorization": "Bearer wrong"}) as http:
        assert (await http.post(url, json={})).status_code == 401


def test_streamable_http_wants_the_key(built: tuple[Path, Path], tmp_path: Path) -> None:
    port = free_port()
    env = child_environment()
    env.update(HF_HUB_OFFLINE="1", SEMSEARCH_API_KEY=KEY)
    command = [sys.executable, "-m", "semsearch", "mcp", "--http", "--port", str(port), "--index", str(built[0])]
    log = tmp_path / "mcp.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([*command, "--device", "cpu"], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while "Uvicorn running" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        asyncio.run(asyncio.wait_for(over_http(f"http://127.0.0.1:{port}/mcp"), timeout=120))
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_http_beyond_loopback_wants_a_key(built: tuple[Path, Path]) -> None:
    env = child_environment()
    command = [sys.executable, "-m", "semsearch", "mcp", "--http", "--host", "0.0.0.0", "--index", str(built[0])]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1 and "SEMSEARCH_API_KEY" in done.stderr

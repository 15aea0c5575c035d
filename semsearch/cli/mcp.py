"""``semsearch mcp``: the index as a Model Context Protocol server, for agents."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..config import DEFAULT_INDEX
from ..errors import MissingExtraError
from .base import (
    DeviceOption,
    Fp32Option,
    IndexOption,
    ModelOption,
    PrecisionOption,
    RerankModelOption,
    RuntimeOption,
    errors,
    ingest_roots,
    offered_rerankers,
    open_index,
)


def mcp(
    index: IndexOption = DEFAULT_INDEX,
    http: Annotated[
        bool, typer.Option("--http", metavar="", help="Serve streamable HTTP at /mcp instead of stdio.")
    ] = False,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            metavar="HOST",
            help="With --http: address to bind; beyond loopback SEMSEARCH_API_KEY must be set.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, metavar="PORT", help="With --http: port.")] = 8001,
    root: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--root",
            metavar="DIR",
            help="A folder the ingest tool may read (repeatable); without one, there is no ingest tool.",
        ),
    ] = None,
    rerank_model: RerankModelOption = None,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    fp32: Fp32Option = False,
    precision: PrecisionOption = "auto",
    runtime: RuntimeOption = "auto",
) -> None:
    """Serve the index to agents over the Model Context Protocol: tools search, info (and ingest with --root).

    Speaks stdio (what an MCP client's configuration starts), or streamable HTTP with --http.
    Needs the mcp extra: pip install 'semsearch[mcp]'. With SEMSEARCH_API_KEY set, HTTP requests
    want 'Authorization: Bearer KEY'.
    """
    api_key = os.environ.get("SEMSEARCH_API_KEY") or None
    with errors():
        server = _mcp_module()
        roots = ingest_roots(root)
        if http:
            server.check_bind(host, api_key)  # before the model loads: fail fast
        from ..serving.service import Service

        opener = lambda: open_index(index, model, device, fp32, precision, runtime, create=bool(roots))  # noqa: E731
        service = Service(opener, roots, rerankers=()).start()
        # checked once the index is open, so a setup error comes alone
        service.rerankers = tuple(offered_rerankers(rerank_model))
        try:
            if http:
                server.run_http(service, host, port, api_key)
            else:
                server.run_stdio(service)
        finally:
            service.stop()


def _mcp_module() -> Any:
    try:
        from ..serving import mcp
    except ImportError as exc:
        raise MissingExtraError(
            f"semsearch mcp needs the MCP SDK ({exc.name} is missing): pip install 'semsearch[mcp]'"
        ) from None
    return mcp

"""semsearch over the Model Context Protocol (the ``mcp`` extra: the official SDK).

Tools: ``search`` (the passages for a query, ready to quote), ``info`` (the index), and
``ingest`` where the server was given folders it may read. A tool's input schema is made from
the search options in ``query.py``, as the HTTP server's request body is (``models.served``),
with the HTTP server's bounds. The index sits behind a ``Service``, as it does for ``serve``:
opened once, queries batched, ingests confined to the roots. Bad arguments and library errors
come back as tool errors (``isError``) with a one-line message, never as a crash.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import mcp_types as types
from mcp.server import Server
from mcp.server.stdio import stdio_server
from pydantic import BaseModel, Field, ValidationError, create_model

from ..config import __version__
from ..errors import InvalidOptionError, SemsearchError, first_line
from ..query import Query, Where, options
from ..results import Hit
from .binding import check_bind
from .models import Filters, Strict, Text, served
from .service import Service

INSTRUCTIONS = (
    "Semantic search over a local collection of documents (Chinese-first, any language). Call `search` "
    "with what you are looking for, in your own words; quote passages with the source:line they give."
)


class IngestArguments(Strict):
    paths: list[str] = Field(min_length=1, max_length=64, description="Files or folders within the served roots.")
    exclude: list[str] = Field(default=[], max_length=64, description="Glob patterns of paths to leave out.")


def search_arguments(rerankers: Sequence[str]) -> type[BaseModel]:
    """The ``search`` tool's arguments on a server that offers ``rerankers``: the query's text,
    its filter and every option of ``Query``, bounded as the HTTP server bounds them."""
    chosen = {found.name: served(how, found.default, rerankers) for found, how in options(Query)}
    return create_model(  # type: ignore[call-overload,no-any-return]
        "SearchArguments",
        __base__=Strict,
        query=(Text, Field(description="What to look for, in your own words or as keywords.")),
        where=(Filters | None, Field(default=None, description=Where.__doc__.splitlines()[0])),  # type: ignore[union-attr]
        **chosen,
    )


def tools(service: Service) -> list[types.Tool]:
    """The tools this server offers."""
    found = [
        types.Tool(
            name="search",
            description="Find the passages of the indexed documents that best answer a query. Each hit gives its "
            "rank, score, source file and line (and page and heading where there are), then the passage.",
            input_schema=search_arguments(service.rerankers).model_json_schema(),
        ),
        types.Tool(
            name="info",
            description="Describe the index: its model, documents, chunks and size.",
            input_schema={"type": "object", "properties": {}, "additionalProperties": False},
        ),
    ]
    if service.roots:
        roots = ", ".join(map(str, service.roots))
        found.append(
            types.Tool(
                name="ingest",
                description=f"Add or update files in the index (within {roots}; relative paths from the first).",
                input_schema=IngestArguments.model_json_schema(),
            )
        )
    return found


def create_server(service: Service) -> Server[Any]:
    """An MCP server over ``service``: its tools and their handlers."""
    offered = tools(service)
    names = {tool.name for tool in offered}
    arguments_of: dict[str, type[BaseModel]] = {
        "search": search_arguments(service.rerankers),
        "ingest": IngestArguments,
    }

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=offered)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        if params.name not in names:
            return _error(f"Unknown tool {params.name!r}; this server offers: {', '.join(sorted(names))}")
        try:
            given = params.arguments or {}
            model = arguments_of.get(params.name)
            if model is None and given:
                raise InvalidOptionError(f"{params.name} takes no arguments; got {', '.join(sorted(given))}")
            arguments = model.model_validate(given) if model else None
            return await _call(service, params.name, arguments)
        except ValidationError as exc:
            return _error(_invalid(exc))
        except SemsearchError as exc:
            return _error(first_line(exc))
        except Exception as exc:  # a bug: the agent hears of it, the server carries on
            traceback.print_exc(file=sys.stderr)
            return _error(f"Internal error: {type(exc).__name__}: {first_line(exc)}")

    return Server(
        "semsearch",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def _call(service: Service, name: str, arguments: Any) -> types.CallToolResult:
    if name == "info":
        details = (await asyncio.wrap_future(service.call(lambda index: index.info()))).to_dict()
        return _result(json.dumps(details, ensure_ascii=False, indent=1), details)
    if name == "ingest":
        report = (await asyncio.wrap_future(service.ingest(arguments.paths, arguments.exclude))).to_dict()
        return _result(json.dumps(report, ensure_ascii=False, indent=1), report)
    values = arguments.model_dump()
    where = Where.of(values.pop("where")) if values.get("where") is not None else None
    query = Query(values.pop("query"), where=where, **{found.name: values[found.name] for found, _ in options(Query)})
    answer = await asyncio.wrap_future(service.search([query]))
    hits = answer.hits[0]
    text = "\n\n".join(quotable(hit) for hit in hits) or "No passage matched."
    if answer.notes:
        text += "\n\n" + "\n".join(f"Note: {note}" for note in answer.notes)
    return _result(text, {"hits": [_hit(hit) for hit in hits], "model": answer.model, "notes": answer.notes})


def quotable(hit: Hit) -> str:
    """A hit as an agent quotes it: rank, score, source:line, page, heading, then the passage."""
    where = f"{hit.source}:{hit.line}" + (f", page {hit.page}" if hit.page is not None else "")
    heading = f" ({hit.heading})" if hit.heading else ""
    return f"[{hit.rank}] score {hit.score:.4f}  {where}{heading}\n{hit.text}"


def _hit(hit: Hit) -> dict[str, Any]:
    keep = ("rank", "score", "source", "line", "page", "heading", "text", "matched", "reranked", "first_score")
    return {key: getattr(hit, key) for key in keep}


def _invalid(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "arguments"
    return f"Invalid argument {where}: {first['msg']}"


def _result(text: str, structured: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured)


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def run_stdio(service: Service) -> None:
    """Serve one client over stdin and stdout until it closes them."""
    server = create_server(service)

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    asyncio.run(main())


def run_http(service: Service, host: str, port: int, api_key: str | None) -> None:
    """Serve streamable HTTP at ``/mcp`` until Ctrl-C; with ``api_key``, every request wants
    ``Authorization: Bearer KEY``."""
    import uvicorn

    check_bind(host, api_key)
    app: Any = create_server(service).streamable_http_app(host=host)
    if api_key:
        app = _BearerKey(app, api_key)
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)


class _BearerKey:
    """ASGI middleware: HTTP requests without the bearer key get 401 (compared in constant time)."""

    def __init__(self, app: Any, key: str) -> None:
        self.app, self.expected = app, f"Bearer {key}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or ()).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = json.dumps({"error": "Missing or wrong API key: send 'Authorization: Bearer KEY'"}).encode()
                headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

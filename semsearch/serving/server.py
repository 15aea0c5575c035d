"""semsearch over HTTP: a FastAPI app over ``Service`` (the ``server`` extra: fastapi, uvicorn).

``POST /search``, ``POST /passage``, ``GET /info``, ``GET /health``, ``POST /ingest``,
``GET /ingest``; the search page at ``/`` (``page``); the schema at ``/openapi.json``. Requests
are bounded (body size, queries, k, context); every error is JSON, ``{"error": {"status",
"type", "message"}}``, with the status that fits. With an API key every route but ``/health``,
the page and the API docs wants it as a bearer token, compared in constant time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import __version__
from ..errors import (
    ChunkNotFoundError,
    IndexLockedError,
    IndexNotFoundError,
    InvalidOptionError,
    InvalidQueryError,
    ModelLoadError,
    ModelMismatchError,
    NothingToIngestError,
    PathNotAllowedError,
    SemsearchError,
    SourceNotFoundError,
)
from . import discovery, openai, page
from .binding import check_bind
from .models import (
    ErrorDetail,
    ErrorResponse,
    Health,
    IngestRequest,
    IngestResponse,
    IngestState,
    PassageRequest,
    PassageResponse,
    QueryResult,
    SearchResponse,
    _Search,
    search_request,
)
from .names import ServedModels
from .service import Service

MAX_BODY = 1_000_000  # bytes of one request body
MAX_BACKLOG = 1_000  # search requests waiting; beyond, new ones are turned away (503)
DOCS_ASSETS = "/docs/assets"  # Swagger UI's and ReDoc's scripts, served from the package
PUBLIC = frozenset({"/", "/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})

_STATUS = {  # the HTTP status of each library error; others are 500
    InvalidOptionError: 400,
    InvalidQueryError: 400,
    PathNotAllowedError: 403,
    NothingToIngestError: 404,
    SourceNotFoundError: 404,
    ChunkNotFoundError: 404,
    IndexNotFoundError: 404,
    IndexLockedError: 409,
    ModelMismatchError: 409,
    ModelLoadError: 503,  # a reranker asked for that cannot be loaded (no hub, say)
}


class SafeJSONResponse(JSONResponse):
    """JSON that stays valid UTF-8 when a file name is not: its undecodable bytes (lone
    surrogates) are written as JSON escapes (``\\udcff``), which read back to the same name."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
        return text.encode("utf-8", "backslashreplace")


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "A request the index cannot answer",
        401: "Missing or wrong API key",
        403: "A path outside the ingest roots",
        404: "Nothing at that path",
        409: "Busy: an ingest is running",
        413: "Request body too large",
        422: "A malformed request",
        500: "An internal error",
        503: "Too many searches waiting",
    }.items()
}


def create_app(service: Service, api_key: str | None = None, served_name: str | None = None) -> FastAPI:
    """The HTTP app over a started ``service``; with ``api_key``, bearer authentication. Models
    go by short ids (``names``): the embedding model by ``served_name``, else its folder's name.

    ``/`` is the search page; ``/docs`` (Swagger UI) and ``/redoc`` load their scripts from this
    package (fastapi-offline ships them), not from a CDN, so they work offline, as the page does.
    """
    from fastapi_offline import FastAPIOffline

    app = FastAPIOffline(
        title="semsearch",
        version=__version__,
        description="Chinese-first semantic search over an index.",
        static_url=DOCS_ASSETS,
        default_response_class=SafeJSONResponse,
    )
    app.add_middleware(_Guard, api_key=api_key)
    _add_error_handlers(app)
    embedding, dimension = service.call(openai.model_and_size).result()
    names = ServedModels.of(embedding, service.rerankers, served_name)
    if api_key:
        _declare_bearer(app)

    async def search(request: _Search) -> Any:
        """The best passages for one query or a list of them."""
        if service.backlog >= MAX_BACKLOG:
            return _error(503, "overloaded", f"{service.backlog} searches are waiting; try again shortly")
        answer = await asyncio.wrap_future(service.search(request.queries(names.rerankers)))
        texts = request.texts
        results = [QueryResult(query=text, hits=hits) for text, hits in zip(texts, answer.hits, strict=True)]
        return SearchResponse(model=answer.model, results=results, notes=answer.notes)

    # the body names the rerankers this server offers (by id), so its schema says which it takes
    search.__annotations__["request"] = search_request(names.rerankers)
    app.post("/search", response_model=SearchResponse, responses=ERRORS)(search)

    @app.post("/passage", response_model=PassageResponse, responses=ERRORS)
    async def passage(request: PassageRequest) -> Any:
        """The source text around one hit's chunk, with up to ``context`` chunks either side: for
        showing more of a hit than the search gave."""
        if service.backlog >= MAX_BACKLOG:
            return _error(503, "overloaded", f"{service.backlog} searches are waiting; try again shortly")
        around = lambda index: index.passage(request.chunk_id, request.context, request.query)  # noqa: E731
        return PassageResponse(passage=await asyncio.wrap_future(service.call(around)))

    @app.get("/info", responses=ERRORS)
    async def info() -> dict[str, Any]:
        """What the index holds, how it is stored, the folders this server may ingest, and how
        its watch is doing (``serve --watch``; null without one)."""
        details = await asyncio.wrap_future(service.call(lambda index: index.info().to_dict()))
        batches = list(service.batches)
        served = {"queries": sum(batches), "batches": len(batches), "largest_batch": max(batches, default=0)}
        roots = [str(r) for r in service.roots]
        extra = {"ingest_roots": roots, "rerankers": list(service.rerankers), "server": served}
        return {**details, **extra, "watch": service.watch_state()}

    @app.get("/health", response_model=Health, responses={503: {"model": ErrorResponse}})
    async def health() -> Any:
        """Whether the server can answer (no API key needed): ok, or degraded while its watch is
        down (with why, naming no path; /info has the details)."""
        if not service.alive:
            return _error(503, "unavailable", "The search thread has stopped")
        watch = service.watch_state()
        if watch is not None and watch["summary"] is not None:
            return Health(status="degraded", version=__version__, reason=f"watch: {watch['summary']}")
        return Health(status="ok", version=__version__)

    accepted: dict[int | str, dict[str, Any]] = {
        202: {"model": IngestState, "description": "Started (with wait false); see GET /ingest"}
    }

    @app.post("/ingest", response_model=IngestResponse, responses={**ERRORS, **accepted})
    async def ingest(request: IngestRequest) -> Any:
        """Ingest files or folders within the server's roots; one ingest at a time."""
        running = service.ingest(request.paths, request.exclude)
        if not request.wait:
            return SafeJSONResponse(_ingest_state(service).model_dump(), status_code=202)
        report = await asyncio.wrap_future(running)
        return IngestResponse(**report.to_dict())

    @app.get("/ingest", response_model=IngestState, responses=ERRORS)
    async def ingest_state() -> IngestState:
        """The last ingest started here: running, done (with its report) or failed (with the error)."""
        return _ingest_state(service)

    openai.add_routes(app, service, names, dimension)
    page.add_routes(app)
    return app


def _declare_bearer(app: FastAPI) -> None:
    """Say in the schema that every route wants the bearer token, so /docs offers 'Authorize'."""
    build = app.openapi

    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            document.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            document["security"] = [{"bearer": []}]
            document["paths"].get("/health", {}).get("get", {})["security"] = []
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = schema  # type: ignore[method-assign]


def _ingest_state(service: Service) -> IngestState:
    last = service.last_ingest
    if last is None:
        return IngestState(state="idle")
    report = IngestResponse(**last.report.to_dict()) if last.report else None
    error = None
    if last.error is not None:
        error = ErrorDetail(status=_status(last.error), type=type(last.error).__name__, message=str(last.error))
    return IngestState(
        state=last.state, paths=last.paths, started=last.started, finished=last.finished, report=report, error=error
    )


def _status(exc: BaseException) -> int:
    """The HTTP status of a library error (500 for anything else)."""
    return next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 500)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.url.path.startswith(openai.PREFIX) and (refusal := openai.refusal(exc.errors())):
            return await refused(request, refusal)
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
        return _error(422, "invalid_request", "; ".join(problems) or "Invalid request", request.url.path)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail), request.url.path)

    @app.exception_handler(openai.Refused)
    async def refused(request: Request, exc: openai.Refused) -> JSONResponse:
        body = openai.openai_error(exc.status, exc.kind, exc.message, exc.param, exc.code)
        return SafeJSONResponse(body, status_code=exc.status)

    @app.exception_handler(SemsearchError)
    async def library_error(request: Request, exc: SemsearchError) -> JSONResponse:
        return _error(_status(exc), type(exc).__name__, str(exc), request.url.path)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        traceback.print_exception(exc, file=sys.stderr)
        message = f"Internal error: {type(exc).__name__}; see the server's log"
        return _error(500, "internal_error", message, request.url.path)


def _error(status: int, kind: str, message: str, path: str = "") -> JSONResponse:
    """An error answer: semsearch's body, or OpenAI's shape on the ``/v1`` routes."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if path.startswith(openai.PREFIX):
        return SafeJSONResponse(openai.openai_error(status, kind, message), status_code=status, headers=headers)
    body = ErrorResponse(error=ErrorDetail(status=status, type=kind, message=message))
    return SafeJSONResponse(body.model_dump(), status_code=status, headers=headers)


class _Guard:
    """ASGI middleware: the API key, and the body size limit (the body is read here, at most
    MAX_BODY bytes, before the app sees the request)."""

    def __init__(self, app: ASGIApp, api_key: str | None) -> None:
        self.app = app
        self.key = api_key.encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.key is not None and not _public(scope["path"]) and not self._authorized(headers):
            await _error(401, "unauthorized", "Send the API key as 'Authorization: Bearer KEY'")(scope, receive, send)
            return
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY:
            await _too_large()(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY:
                await _too_large()(scope, receive, send)
                return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # the disconnect, when it comes
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and self.key is not None and hmac.compare_digest(token.strip(), self.key)


def _too_large() -> JSONResponse:
    """413, closing the connection: the rest of the body is never read, so the connection cannot
    carry another request."""
    response = _error(413, "too_large", f"The request body is over {MAX_BODY} bytes")
    response.headers["connection"] = "close"
    return response


def _public(path: str) -> bool:
    """Routes open without the API key: health, the search page and the API's documentation
    (the pages, their scripts and styles, the schema they read), which hold none of the index's
    data."""
    return path in PUBLIC or path.startswith((DOCS_ASSETS + "/", page.ASSETS + "/"))


def run(
    service: Service,
    host: str,
    port: int,
    api_key: str | None,
    served_name: str | None = None,
    on_listening: Callable[[int], None] | None = None,
) -> None:
    """Serve until Ctrl-C or SIGTERM. Binding beyond loopback needs ``api_key``. While it runs, a
    record beside a local or Milvus Lite index (``discovery``) tells ``semsearch query`` where to
    find it. ``on_listening`` is told the port once the server listens."""
    check_bind(host, api_key)
    app = create_app(service, api_key, served_name)
    url = discovery.loopback_url(host, port)
    location = service.call(lambda index: str(index.location)).result() if url else None
    if url and location:
        with contextlib.suppress(OSError):  # a read-only index folder: queries answer in process
            discovery.write(location, url)
    try:
        _listening(app, host, port, on_listening).run()
    finally:
        if location:
            with contextlib.suppress(OSError):
                discovery.remove(location)


def _listening(app: FastAPI, host: str, port: int, on_listening: Callable[[int], None] | None) -> Any:
    """A uvicorn server for ``app`` that calls ``on_listening`` with the port it is bound to (the
    system's choice where ``port`` is 0) once it listens."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and on_listening is not None:
                on_listening(int(self.servers[0].sockets[0].getsockname()[1]))

    return Server(uvicorn.Config(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5))

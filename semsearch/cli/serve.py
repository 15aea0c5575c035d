"""``semsearch serve``: the index over HTTP."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..config import DEFAULT_DEBOUNCE_MS, DEFAULT_INDEX, DEFAULT_MAX_FILE_BYTES
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
from .ingest import ExcludeOption, MaxFileMbOption, NoIgnoreOption, reading_options
from .render import count, display, printable
from .watch import DebounceOption, print_round

if TYPE_CHECKING:
    from ..index.watching import Round


def serve(
    index: IndexOption = DEFAULT_INDEX,
    host: Annotated[
        str,
        typer.Option("--host", metavar="HOST", help="Address to bind; beyond loopback SEMSEARCH_API_KEY must be set."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, metavar="PORT", help="Port to listen on.")] = 8000,
    root: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--root",
            metavar="DIR",
            help="A folder POST /ingest may read (repeatable); without one, ingest is refused.",
        ),
    ] = None,
    max_batch: Annotated[
        int,
        typer.Option(
            "--max-batch", min=1, max=1024, metavar="N", help="Most queries embedded together (1: no batching)."
        ),
    ] = 64,
    rerank_model: RerankModelOption = None,
    served_model_name: Annotated[
        Optional[str],
        typer.Option(
            "--served-model-name",
            metavar="NAME",
            help="The id clients name the embedding model by in the /v1 routes (default: its folder's name, or "
            "its hub id).",
        ),
    ] = None,
    watch: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--watch",
            metavar="PATH",
            help="Ingest this file or folder and keep the index in step as it changes, as semsearch watch does "
            "(repeatable).",
        ),
    ] = None,
    exclude: ExcludeOption = None,
    no_ignore: NoIgnoreOption = False,
    max_file_mb: MaxFileMbOption = DEFAULT_MAX_FILE_BYTES / 1e6,
    debounce: DebounceOption = DEFAULT_DEBOUNCE_MS,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    fp32: Fp32Option = False,
    precision: PrecisionOption = "auto",
    runtime: RuntimeOption = "auto",
) -> None:
    """Serve the index over HTTP: a search page at /, and POST /search, POST /passage, GET /info,
    GET /health, POST /ingest, the OpenAI-style /v1 routes; the API's docs at /docs.

    With --watch, also ingest those paths and keep the index in step as they change; --exclude,
    --no-ignore, --max-file-mb and --debounce apply to them as to semsearch watch.

    Needs the server extra: pip install 'semsearch[server]'. With SEMSEARCH_API_KEY set, every
    route but /health and the docs wants 'Authorization: Bearer KEY'.
    """
    api_key = os.environ.get("SEMSEARCH_API_KEY") or None
    with errors():
        server = _server_module()
        roots = ingest_roots(root)
        server.check_bind(host, api_key)  # before the model loads: fail fast
        from ..serving.service import Service

        opener = lambda: open_index(index, model, device, fp32, precision, runtime, create=bool(roots or watch))  # noqa: E731
        reading = {k: v for k, v in reading_options(exclude, no_ignore, max_file_mb).items() if k != "progress"}
        from ..documents.walk import check_patterns

        check_patterns(reading["exclude"])  # before the model loads: fail fast
        service = Service(opener, roots, max_batch, rerankers=()).start()
        # checked once the index is open, so a setup error comes alone
        service.rerankers = tuple(offered_rerankers(rerank_model))
        try:
            if watch:
                service.watch(watch, _print_round, debounce_ms=debounce, **reading)
            served = _served(service, index, served_model_name)
            server.run(service, host, port, api_key, served_model_name, lambda bound: _announce(served, host, bound))
        finally:
            service.stop()


def _served(service: Any, index: str, served_name: str | None) -> str:
    """What this server serves, for the line printed once it listens: the index, its
    documents and chunks, and the model's id."""
    from ..errors import SemsearchError
    from ..serving.names import short_id

    shown = index if "://" in index or index.startswith("milvus") else display(os.path.abspath(index))
    try:
        info = service.call(lambda opened: opened.info()).result()
    except SemsearchError:  # no index yet: the first ingest makes it
        return f"{shown} (no index yet: the first ingest makes it)"
    model = served_name or short_id(info.model)
    return f"{shown}: {count(info.documents, 'document')}, {count(info.chunks, 'chunk')}, model {printable(model)}"


def _announce(served: str, host: str, port: int) -> None:
    from ..serving.discovery import loopback_url

    url = loopback_url(host, port) or (f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}")
    typer.echo(f"Serving {served}; the search page at {url}/ (API docs at {url}/docs)")


def _print_round(done: Round) -> None:
    print_round(done, as_json=False, verbose=False, lead="watch: ")


def _server_module() -> Any:
    try:
        from ..serving import server
    except ImportError as exc:
        raise MissingExtraError(
            f"semsearch serve needs FastAPI and uvicorn ({exc.name} is missing): pip install 'semsearch[server]'"
        ) from None
    return server

"""OpenAI-compatible routes: ``POST /v1/embeddings`` (the form OpenAI's clients send),
``POST /v1/rerank`` (the form Jina's and Cohere's rerank clients send) and ``GET /v1/models``.

RAG platforms that take "any OpenAI-compatible embedding endpoint" (Dify, FastGPT, RAGFlow, Open
WebUI, LangChain's ``OpenAIEmbeddings``) can use the index's own model through these: the vectors
are ``Encoder.encode``'s, computed in the search thread's batches. Errors on these routes take
OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.exceptions import HTTPException

from .models import MAX_QUERY_CHARS
from .service import Service

MAX_INPUTS = 256  # texts in one embedding request
MAX_INPUT_CHARS = 20_000  # characters in one text (a chunk of 512 tokens is well under it)
MAX_DOCUMENTS = 1_000  # documents in one rerank request
PREFIX = "/v1/"


class _Open(BaseModel):
    # clients send fields of their own (user, truncate...): ignored, as OpenAI-compatible servers do
    model_config = ConfigDict(extra="ignore")


Input = Annotated[str, Field(max_length=MAX_INPUT_CHARS)]


class EmbeddingRequest(_Open):
    input: Input | Annotated[list[Input], Field(min_length=1, max_length=MAX_INPUTS)]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None


def embedding_request(model: str, dimension: int) -> type[EmbeddingRequest]:
    """The body on a server whose model is ``model``: the schema says which model and size."""
    named: Any = Literal[model] | None
    sized: Any = Literal[dimension] | None
    fields: dict[str, Any] = {
        "model": (named, Field(default=None, description="The index's model; may be left out.")),
        "dimensions": (sized, Field(default=None, description="The model's own size, if given.")),
    }
    return create_model("EmbeddingRequest", __base__=EmbeddingRequest, **fields)  # type: ignore[no-any-return]


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int


class OpenAIError(BaseModel):
    error: OpenAIErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OpenAIError, "description": text}
    for code, text in {
        401: "Missing or wrong API key",
        404: "No such model here",
        413: "Request body too large",
        422: "A malformed request",
        500: "An internal error",
        503: "A model that cannot be loaded",
    }.items()
}


class _Text(_Open):
    text: Annotated[str, Field(max_length=MAX_INPUT_CHARS)]


class RerankRequest(_Open):
    query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)]
    documents: Annotated[list[Input | _Text], Field(min_length=1, max_length=MAX_DOCUMENTS)]
    model: str | None = Field(default=None, description="A reranker this server offers; default the first.")
    top_n: Annotated[int | None, Field(ge=1)] = None
    return_documents: bool = True


def add_routes(app: FastAPI, service: Service) -> None:
    """The ``/v1`` routes over ``service`` (started: its model is loaded)."""
    name, dimension = service.call(_model).result()

    async def embeddings(request: EmbeddingRequest) -> dict[str, Any]:
        """Embeddings of one text or a list, as OpenAI's API gives them (float or base64)."""
        texts = [request.input] if isinstance(request.input, str) else request.input
        embedded = await asyncio.wrap_future(service.embed(texts))
        data = [
            {"object": "embedding", "index": number, "embedding": _encoded(vector, request.encoding_format)}
            for number, vector in enumerate(embedded.vectors)
        ]
        tokens = sum(embedded.tokens)
        return {
            "object": "list",
            "data": data,
            "model": embedded.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    # the body names this server's model and size, so its schema says what it takes
    embeddings.__annotations__["request"] = embedding_request(name, dimension)
    app.post("/v1/embeddings", responses=ERRORS)(embeddings)

    @app.post("/v1/rerank", responses=ERRORS)
    async def rerank(request: RerankRequest) -> dict[str, Any]:
        """Documents ordered by a cross-encoder's score for the query, as Jina's and Cohere's
        rerank APIs answer (``results``: ``index``, ``relevance_score``, ``document``)."""
        if not service.rerankers:
            raise HTTPException(404, "This server offers no reranker; start it with --rerank-model MODEL")
        chosen = request.model or service.rerankers[0]
        if chosen not in service.rerankers:  # as OpenAI answers for a model it does not have
            offered = ", ".join(service.rerankers)
            raise HTTPException(404, f"This server does not rerank with {chosen!r}; it offers: {offered}")
        texts = [d if isinstance(d, str) else d.text for d in request.documents]
        scores, tokens = await asyncio.wrap_future(
            service.call(lambda index: _scored(index.reranker(chosen), request.query, texts))
        )
        order = sorted(range(len(texts)), key=lambda i: -scores[i])[: request.top_n]
        results = []
        for number in order:
            result: dict[str, Any] = {"index": number, "relevance_score": float(scores[number])}
            if request.return_documents:
                result["document"] = {"text": texts[number]}
            results.append(result)
        return {"model": chosen, "results": results, "usage": {"total_tokens": tokens}}

    @app.get("/v1/models", responses=ERRORS)
    async def models() -> dict[str, Any]:
        """The index's embedding model and the rerankers offered, as OpenAI lists models."""
        listed = [name, *service.rerankers]
        return {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": 0, "owned_by": "semsearch"} for m in listed],
        }


def openai_error(status: int, kind: str, message: str) -> dict[str, Any]:
    """An error body in OpenAI's shape."""
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


def _encoded(vector: Any, encoding: str) -> Any:
    # OpenAI's base64 is the float32 array's little-endian bytes
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.astype(float).tolist()


def _scored(reranker: Any, query: str, texts: list[str]) -> tuple[list[float], int]:
    pairs = [(query, text) for text in texts]
    return reranker.predict(pairs).tolist(), sum(reranker.token_counts(pairs))


def _model(index: Any) -> tuple[str, int]:
    """The index's model (or the one a new index will get) and the size of its vectors."""
    encoder = index.encoder
    return (index.manifest.model.model if index.manifest else encoder.info.model), encoder.dimension

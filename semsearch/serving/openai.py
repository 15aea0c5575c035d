"""OpenAI-compatible routes: ``POST /v1/embeddings`` (the form OpenAI's clients send),
``POST /v1/rerank`` (the form Jina's and Cohere's rerank clients send) and ``GET /v1/models``.

RAG platforms that take "any OpenAI-compatible embedding endpoint" (Dify, FastGPT, RAGFlow, Open
WebUI, LangChain's ``OpenAIEmbeddings``) can use the index's own model through these: the vectors
are ``Encoder.encode``'s, computed in the search thread's batches. Models go by short ids
(``names``), never a folder's path. Errors on these routes take OpenAI's shape, ``{"error":
{"message", "type", "param", "code"}}``; a model the server does not hold is 404
``model_not_found``, an empty input 400 ``invalid_request_error``, as OpenAI answers them.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, create_model

from .models import MAX_QUERY_CHARS
from .names import ServedModels
from .service import Service

MAX_INPUTS = 256  # texts in one embedding request
MAX_INPUT_CHARS = 20_000  # characters in one text (a chunk of 512 tokens is well under it)
MAX_DOCUMENTS = 1_000  # documents in one rerank request
PREFIX = "/v1/"
NOT_FOUND = "model_not_found"  # OpenAI's code for a model it does not have


class _Open(BaseModel):
    # clients send fields of their own (user, truncate...): ignored, as OpenAI-compatible servers do
    model_config = ConfigDict(extra="ignore")


Input = Annotated[str, Field(max_length=MAX_INPUT_CHARS)]
Embeddable = Annotated[str, Field(min_length=1, max_length=MAX_INPUT_CHARS)]  # OpenAI refuses ""


class EmbeddingRequest(_Open):
    input: Embeddable | Annotated[list[Embeddable], Field(min_length=1, max_length=MAX_INPUTS)]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None


def embedding_request(model: str, dimension: int) -> type[EmbeddingRequest]:
    """The body on a server whose model is served as ``model``: the schema names it and its size."""
    sized: Any = Literal[dimension] | None
    fields: dict[str, Any] = {
        "model": (
            str | None,
            Field(default=None, description=f"The index's model, {model!r}; may be left out.", examples=[model]),
        ),
        "dimensions": (sized, Field(default=None, description="The model's own size, if given.")),
    }
    return create_model("EmbeddingRequest", __base__=EmbeddingRequest, **fields)  # type: ignore[no-any-return]


class Refused(Exception):
    """A request refused as OpenAI refuses it: the status, and the error's type, param and code."""

    def __init__(
        self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None, code: str = ""
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int | str  # OpenAI's code where it has one (model_not_found), else the status


class OpenAIError(BaseModel):
    error: OpenAIErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OpenAIError, "description": text}
    for code, text in {
        400: "An empty input",
        401: "Missing or wrong API key",
        404: "No such model here (model_not_found)",
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
    model: str | None = Field(default=None, description="A reranker offered (see /v1/models); default the first.")
    top_n: Annotated[int | None, Field(ge=1)] = None
    return_documents: bool = True


def add_routes(app: FastAPI, service: Service, names: ServedModels, dimension: int) -> None:
    """The ``/v1`` routes over ``service`` (started: its model is loaded), its models served by
    ``names``' ids, its vectors of ``dimension`` numbers."""

    async def embeddings(request: EmbeddingRequest) -> dict[str, Any]:
        """Embeddings of one text or a list, as OpenAI's API gives them (float or base64)."""
        if request.model is not None and not names.is_embedding(request.model):
            message = f"The model {request.model!r} does not exist here; it embeds with {names.embedding_id!r}"
            raise Refused(404, message, code=NOT_FOUND)
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
            "model": names.embedding_id,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    # the body names this server's model and size, so its schema says what it takes
    embeddings.__annotations__["request"] = embedding_request(names.embedding_id, dimension)
    app.post("/v1/embeddings", responses=ERRORS)(embeddings)

    @app.post("/v1/rerank", responses=ERRORS)
    async def rerank(request: RerankRequest) -> dict[str, Any]:
        """Documents ordered by a cross-encoder's score for the query, as Jina's and Cohere's
        rerank APIs answer (``results``: ``index``, ``relevance_score``, ``document``)."""
        if not names.rerankers:
            raise Refused(404, "This server offers no reranker; start it with --rerank-model MODEL", code=NOT_FOUND)
        chosen = names.reranker(request.model) if request.model else next(iter(names.rerankers.values()))
        if chosen is None:  # as OpenAI answers for a model it does not have
            offered = ", ".join(names.rerankers)
            message = f"This server does not rerank with {request.model!r}; it offers: {offered}"
            raise Refused(404, message, code=NOT_FOUND)
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
        return {"model": names.reranker_id(chosen), "results": results, "usage": {"total_tokens": tokens}}

    @app.get("/v1/models", responses=ERRORS)
    async def models() -> dict[str, Any]:
        """The index's embedding model and the rerankers offered, by their ids, as OpenAI lists
        models."""
        return {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": 0, "owned_by": "semsearch"} for m in names.ids],
        }


def refusal(errors: Sequence[Any]) -> Refused | None:
    """OpenAI's answer to an empty input (400 ``invalid_request_error``, where FastAPI's
    validation gives 422), when the validation ``errors`` include one; else None."""
    for error in errors:
        where = tuple(error.get("loc", ()))
        if error.get("type") == "string_too_short" and where[:2] == ("body", "input"):
            named = f"input[{where[-1]}]" if isinstance(where[-1], int) else "input"
            return Refused(400, f"{named} is an empty string; each input must hold at least a character", param="input")
    return None


def openai_error(status: int, kind: str, message: str, param: str | None = None, code: str = "") -> dict[str, Any]:
    """An error body in OpenAI's shape (``code`` the status where OpenAI has no code of its own)."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code or status}}


def _encoded(vector: Any, encoding: str) -> Any:
    # OpenAI's base64 is the float32 array's little-endian bytes
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.astype(float).tolist()


def _scored(reranker: Any, query: str, texts: list[str]) -> tuple[list[float], int]:
    pairs = [(query, text) for text in texts]
    return reranker.predict(pairs).tolist(), sum(reranker.token_counts(pairs))


def model_and_size(index: Any) -> tuple[str, int]:
    """The index's model (or the one a new index will get) and the size of its vectors."""
    encoder = index.encoder
    return (index.manifest.model.model if index.manifest else encoder.info.model), encoder.dimension

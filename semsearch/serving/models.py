"""The HTTP API's request and response bodies (pydantic), derived from the library's own types.

A search request's options and filters are made from ``Query``'s and ``Where``'s fields and
their ``Option``s (help, bounds, patterns), so an option added to ``Query`` is served with no
declaration here; an ingest's report is ``IngestReport``'s fields. What is the server's own:
the ``query`` field (one text or a list), JSON's strict integers, and the bounds on one
request's work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_type_hints

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator

from ..query import DEFAULT_RERANKER, Option, Query, Where, option_of, options
from ..results import Hit, IngestReport, Passage

MAX_QUERIES = 32  # queries in one search request
MAX_QUERY_CHARS = 4_000
MAX_PATHS = 100
MAX_WORK = 20_000  # queries x k x (2 x context + 1) in one search request: chunks of passages to build


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# not only white space as Python's str.isspace() has it: \s, plus control characters it counts
# (\x1c-\x1f, \x85) that some regex engines' \s leaves out
Text = Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=r"[^\s\x1c-\x1f\x85]")]
# no NUL (no path holds one), and not only white space
Pattern = Annotated[str, Field(max_length=1_000, pattern=r"^[^\x00]*[^\s\x1c-\x1f\x85\x00][^\x00]*$")]
Age = Annotated[str, Field(pattern=r"^[0-9]{1,9}(\.[0-9]{1,6})?[smhdw]$", description="An age: 30d, 12h, 2w…")]
Time = float | datetime | Age


def _json_integer(value: Any) -> Any:
    # a JSON integer (36, or 36.0, which JSON Schema counts as one), never true or "5"
    if isinstance(value, bool | str):
        raise ValueError("Input should be an integer, not a boolean or a string")
    return value


Integer = Annotated[int, BeforeValidator(_json_integer)]


def served(how: Option, default: Any, offered: Sequence[str] = ()) -> tuple[Any, Any]:
    """The pydantic type and field of one search option, as a request may give it; ``offered``
    are the values an option with a ``flag_value`` (a model) takes on this server."""
    high = how.served_high if how.served_high is not None else how.high
    if how.kind is list:
        item = Annotated[str, Field(pattern=how.pattern or None, max_length=how.max_chars)]
        return list[item], Field(default=[], max_length=None if high is None else int(high), description=how.help)
    if how.kind is datetime:
        return Time | None, Field(default=default, description=how.help)
    if how.choices:
        return Literal[how.choices], Field(default=default, description=how.help)
    if how.flag_value:  # one of the models offered, true for the default one where it is offered
        switch = bool if how.flag_value in offered else Literal[False]
        kind = switch | Literal[tuple(offered)] | None if offered else switch | None  # type: ignore[valid-type]
        return kind, Field(default=default, description=how.help)
    if how.kind is int:
        return Integer, Field(default=default, ge=how.low, le=high, description=how.help)
    if how.kind is float:
        return float | None, Field(default=default, ge=how.low, le=high, allow_inf_nan=False, description=how.help)
    return str, Field(default=default, pattern=how.pattern or None, max_length=how.max_chars, description=how.help)


Filters: type[Strict] = create_model(  # type: ignore[call-overload]
    "Filters",
    __base__=Strict,
    __doc__="Which documents to search; a document must pass every filter given.",
    **{found.name: served(how, found.default) for found, how in options(Where)},
)


class _Search(Strict):
    query: Text | Annotated[list[Text], Field(min_length=1, max_length=MAX_QUERIES)]
    where: Filters | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _bounded(self) -> _Search:
        # what one request may ask of the search thread: passages of up to (2 context + 1) chunks
        k, context = (getattr(self, name) for name in ("k", "context"))  # fields made from Query's
        work = len(self.texts) * k * (2 * context + 1)
        if work > MAX_WORK:
            raise ValueError(
                f"the request asks for {work:,} chunks of passages (queries x k x (2 x context + 1)); "
                f"the limit is {MAX_WORK:,}: ask for fewer queries, a smaller k or less context"
            )
        return self

    @property
    def texts(self) -> list[str]:
        return [self.query] if isinstance(self.query, str) else self.query

    def queries(self, rerankers: Mapping[str, str] | None = None) -> list[Query]:
        """The request as the library's queries, one per text; ``rerankers`` maps the id of each
        reranker offered to the model it stands for."""
        where = Where.of(self.where.model_dump()) if self.where is not None else None  # type: ignore[attr-defined]
        chosen = {found.name: getattr(self, found.name) for found, _ in options(Query)}
        if isinstance(chosen.get("rerank"), str) and rerankers:
            chosen["rerank"] = rerankers.get(chosen["rerank"], chosen["rerank"])
        return [Query(text, where=where, **chosen) for text in self.texts]


def search_request(rerankers: Mapping[str, str]) -> type[_Search]:
    """The search request's body on a server that offers ``rerankers`` (id -> model): the schema
    lists their ids (never a folder's path), and a request may name one by either."""
    ids = {model: ident for ident, model in rerankers.items()}

    def by_id(value: Any) -> Any:
        return ids.get(value, value) if isinstance(value, str) else value

    fields = {}
    for found, how in options(Query):
        kind, field = served(how, found.default, tuple(rerankers))
        fields[found.name] = (Annotated[kind, BeforeValidator(by_id)] if how.flag_value else kind, field)
    return create_model("SearchRequest", __base__=_Search, **fields)  # type: ignore[call-overload,no-any-return]


if TYPE_CHECKING:
    SearchRequest = _Search
else:
    SearchRequest = search_request({DEFAULT_RERANKER: DEFAULT_RERANKER})


class QueryResult(BaseModel):
    query: str
    hits: list[Hit]  # the library's own dataclass: one definition of a hit


class SearchResponse(BaseModel):
    model: str
    results: list[QueryResult]
    notes: list[str] = []


class PassageRequest(Strict):
    """The passage around one hit's chunk, with more context than the search gave it."""

    # no upper bound: a JSON client may round a 63-bit id to a float past 2**63 - 1; an id
    # outside what an index holds is a 404 from the library
    chunk_id: Integer = Field(ge=0, description="A hit's chunk_id.")
    context: Integer = Field(
        default=1,
        ge=0,
        le=int(option_of(Query, "context").served_high or 0),
        description="Chunks either side of it, within its document.",
    )
    query: Text | None = Field(default=None, description="Highlight this query's terms in the passage.")


class PassageResponse(BaseModel):
    passage: Passage  # the library's own dataclass, as a hit is


class IngestRequest(Strict):
    paths: list[Pattern] = Field(min_length=1, max_length=MAX_PATHS, description="Within the server's roots.")
    exclude: list[Pattern] = Field(default=[], max_length=MAX_PATHS, description=".gitignore-style patterns.")
    wait: bool = Field(default=True, description="Answer with the report when done; false: 202 at once (GET /ingest).")


# IngestReport's fields (skipped files as the library's Skipped), and how many were skipped
IngestResponse: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "IngestResponse",
    __doc__="What an ingest did.",
    **{found.name: (get_type_hints(IngestReport)[found.name], ...) for found in fields(IngestReport)},
    files_skipped=(int, ...),
    chunks_per_second=(float, ...),
)


class Health(BaseModel):
    """``degraded``: the server answers, but something it was asked to keep doing is down (the
    watch of ``serve --watch``); ``reason`` says what, naming no path (the details are in /info)."""

    status: Literal["ok", "degraded"]
    version: str
    reason: str | None = None


class ErrorDetail(BaseModel):
    status: int
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class IngestState(BaseModel):
    """The last ingest started through this server."""

    state: Literal["idle", "running", "done", "failed"]
    paths: list[str] = []
    started: float | None = None
    finished: float | None = None
    report: IngestResponse | None = None  # type: ignore[valid-type]
    error: ErrorDetail | None = None

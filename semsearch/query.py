"""What a search asks for: ``Query`` and its filter, ``Where``. The one list of search options.

Every option is a field here, with an ``Option`` saying how it is offered: its help, its
command-line flag and metavar, its bounds (the server's may be tighter). ``Index.search``, the
``query`` command, the server's request body and the framework retrievers are all derived from
these fields or checked by them, so an option added here reaches every one of them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any

from .errors import InvalidOptionError, InvalidQueryError
from .globs import MAX_PATTERN_CHARS, MAX_PATTERNS, compiled, glob_regex, is_glob

MODES = ("dense", "lexical", "hybrid")
DEFAULT_MODE = "dense"
RRF_K = 60  # the constant of the original paper; larger flattens the weight of the top ranks
DEFAULT_RERANKER = "BAAI/bge-reranker-v2-m3"  # the usual Chinese and multilingual cross-encoder
RERANK_DEPTH = 50  # first-stage candidates a reranker rescores
_TYPE = re.compile(r"^[a-z0-9]{1,16}$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class Option:
    """How one search option is offered. ``kind`` is its value's type (int, float, str, list
    of str for a repeatable one, or datetime for a moment, given as a time or an age);
    ``low``/``high`` its bounds (of the value, or of a list's length); ``served_high`` a tighter
    upper bound for requests over HTTP; ``flags`` its command-line names (default ``--name``);
    ``choices`` the values it takes; ``pattern`` and ``max_chars`` what each string given must
    match and its longest length (the server's schema states them); ``flag_value`` what the
    flag alone means, for an option whose value may be left out (``--rerank [MODEL]``)."""

    help: str
    kind: type
    metavar: str = ""
    flags: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    served_high: float | None = None
    choices: tuple[str, ...] = ()
    pattern: str = ""
    max_chars: int | None = None
    flag_value: str = ""  # what the flag means given without a value (an optional value)

    def names(self, name: str) -> tuple[str, ...]:
        return self.flags or ("--" + name.replace("_", "-"),)


def option(default: Any, **how: Any) -> Any:
    """A dataclass field with its ``Option``."""
    return field(default=default, metadata={"option": Option(**how)})


def options(cls: type) -> Iterator[tuple[Field[Any], Option]]:
    """The fields of ``Query`` or ``Where`` that are options, with how each is offered."""
    for found in fields(cls):
        if "option" in found.metadata:
            yield found, found.metadata["option"]


def option_of(cls: type, name: str) -> Option:
    """How the option ``name`` of ``Query`` or ``Where`` is offered."""
    return next(how for found, how in options(cls) if found.name == name)


@dataclass(frozen=True)
class Where:
    """A filter on the documents searched; a document must pass every field that is set.

    ``paths``: a document matches any of them. A pattern with ``*``, ``?``, ``[...]`` or ``**``
    is a glob over the whole path (``*`` stays within one folder, ``**`` spans any number of
    them, a leading ``**/`` matches anywhere); one without is a prefix: that file, or everything
    under that folder. ``types``: file types (``pdf``, ``md``; a type takes all its suffixes:
    ``md`` also ``.markdown``, ``html`` ``.htm``). ``modified_after`` / ``modified_before``: the
    file's modification time when ingested, as seconds since the epoch, inclusive bounds.
    """

    paths: tuple[str, ...] = option(
        (),
        help="Only documents under this folder or file, or matching this glob ('docs/**/*.md'); repeatable.",
        kind=list,
        metavar="GLOB",
        flags=("--path",),
        high=MAX_PATTERNS,
        served_high=32,
        # not only white space (nor the control characters Python's str.isspace() counts as such), no NUL
        pattern=r"^[^\x00]*[^\s\x1c-\x1f\x85\x00][^\x00]*$",
        max_chars=MAX_PATTERN_CHARS,
    )
    types: tuple[str, ...] = option(
        (),
        help="Only files of this type (pdf, md, html…); repeatable.",
        kind=list,
        metavar="TYPE",
        flags=("--type",),
        served_high=16,
        pattern=r"^\.?[A-Za-z0-9]{1,16}$",
    )
    modified_after: float | None = option(
        None,
        help="Only files modified since: 2024-05-01, 2024-05-01T09:30 or an age (7d).",
        kind=datetime,
        metavar="WHEN",
    )
    modified_before: float | None = option(
        None, help="Only files modified before this (same forms).", kind=datetime, metavar="WHEN"
    )

    def __post_init__(self) -> None:
        for name in ("paths", "types"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,))
            elif not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        if any(not isinstance(p, str) or not p.strip() for p in self.paths):
            raise InvalidOptionError("A path filter must be a non-empty string")
        if len(self.paths) > MAX_PATTERNS:
            raise InvalidOptionError(f"At most {MAX_PATTERNS} path filters may be given; {len(self.paths)} were")
        for pattern in self.paths:
            if len(pattern) > MAX_PATTERN_CHARS:
                raise InvalidOptionError(f"A path filter may be at most {MAX_PATTERN_CHARS} characters long")
            if is_glob(pattern):
                compiled(glob_regex(pattern))  # an invalid pattern fails here, as the user's error
        if any(not isinstance(t, str) or not _TYPE.match(t.lower().lstrip(".")) for t in self.types):
            raise InvalidOptionError("A type filter is a file suffix such as 'pdf' or 'md'")

    @classmethod
    def of(cls, value: Where | Mapping[str, Any] | None) -> Where | None:
        """A Where from itself, a mapping of its fields (``path`` and ``type`` also accepted,
        dates as ISO 8601 strings or epoch seconds), or None."""
        if value is None or isinstance(value, Where):
            return value
        if not isinstance(value, Mapping):
            raise InvalidOptionError(f"where must be a Where or a mapping, not {type(value).__name__}")
        names = {f.name for f in fields(cls)}
        data = {{"path": "paths", "type": "types"}.get(key, key): item for key, item in value.items()}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidOptionError(f"Unknown filter {unknown[0]!r}; known: {', '.join(sorted(names))}")
        for key in ("modified_after", "modified_before"):
            if data.get(key) is not None:
                data[key] = parse_time(data[key])
        for key in ("paths", "types"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        return cls(**data)

    @property
    def empty(self) -> bool:
        return not (self.paths or self.types or self.modified_after is not None or self.modified_before is not None)


@dataclass(frozen=True)
class Query:
    """One search: the ``k`` best passages for ``text`` in ``mode``, among the documents
    ``where`` allows (a ``Where`` or a dict of its fields), each with ``context``
    neighbouring chunks either side merged in. ``min_score`` drops hits scoring below it, in
    the mode's own score; ``rrf_k`` is hybrid fusion's constant. Made with bad options, it
    raises InvalidOptionError (InvalidQueryError for an empty text)."""

    text: str
    k: int = option(
        10, help="How many passages.", kind=int, metavar="N", flags=("-k",), low=1, high=10_000, served_high=100
    )
    min_score: float | None = option(None, help="Drop passages scoring below this.", kind=float, metavar="SCORE")
    mode: str = option(
        DEFAULT_MODE,
        help="dense (embeddings), lexical (BM25 over Chinese-segmented terms) or hybrid (both, fused by rank).",
        kind=str,
        choices=MODES,
    )
    where: Where | None = None
    context: int = option(
        0,
        help="Widen each hit by N chunks either side; touching hits merge into one.",
        kind=int,
        metavar="N",
        low=0,
        high=20,
        served_high=10,
    )
    rrf_k: int = option(
        RRF_K,
        help="Hybrid: the rank fusion constant; larger flattens the top ranks.",
        kind=int,
        metavar="N",
        low=1,
        high=10_000,
    )

    rerank: str | None = option(
        None,
        help="Rescore the top candidates with a cross-encoder (default model: " + DEFAULT_RERANKER + ").",
        kind=str,
        metavar="[MODEL]",
        flag_value=DEFAULT_RERANKER,
        pattern=r"^[^\x00\s][^\x00]*$",
        max_chars=300,
    )
    rerank_depth: int = option(
        RERANK_DEPTH,
        help="Reranking: how many first-stage candidates to rescore (at least k).",
        kind=int,
        metavar="N",
        low=1,
        high=1_000,
        served_high=200,
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "where", Where.of(self.where))
        object.__setattr__(self, "rerank", _reranker(self.rerank))
        if not isinstance(self.text, str) or not self.text.strip():
            raise InvalidQueryError("The query is empty")
        for found, how in options(Query):
            value = getattr(self, found.name)
            if value is None or how.kind is str:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InvalidOptionError(f"{found.name} must be a finite number, not {value!r}")
            if how.kind is int and value != int(value):
                raise InvalidOptionError(f"{found.name} must be a whole number, not {value!r}")
            if how.low is not None and value < how.low:
                raise InvalidOptionError(f"{found.name} must be at least {how.low:g}")
        if self.mode not in MODES:
            raise InvalidOptionError(f"Unknown search mode {self.mode!r}; use one of {', '.join(MODES)}")

    @classmethod
    def check_options(cls, **given: Any) -> dict[str, Any]:
        """``given`` checked as a query's options (InvalidOptionError if any is unknown or bad),
        as a dict of those options: for what stores options to search with later."""
        known = {f.name for f in fields(cls)} - {"text"}
        unknown = sorted(set(given) - known)
        if unknown:
            raise InvalidOptionError(f"Unknown search option {unknown[0]!r}; known: {', '.join(sorted(known))}")
        checked = cls("x", **given)
        return {name: getattr(checked, name) for name in given}

    def again(self, text: str) -> Query:
        """The same options for another text."""
        return replace(self, text=text)

    @property
    def dense(self) -> bool:
        return self.mode != "lexical"

    @property
    def depth(self) -> int:
        """First-stage candidates a reranked query rescores: ``rerank_depth``, at least ``k``."""
        return max(self.k, self.rerank_depth)

    @property
    def lexical(self) -> bool:
        return self.mode != "dense"


def _reranker(value: object) -> str | None:
    """The reranker a query asks for: a model name, True for the default, False or None for none."""
    if value is None or value is False:
        return None
    if value is True:
        return DEFAULT_RERANKER
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise InvalidOptionError(f"rerank takes a model name, or true for {DEFAULT_RERANKER}; not {value!r}")
    return value.strip()


def parse_time(value: object, now: datetime | None = None) -> float:
    """Seconds since the epoch from a number, an ISO 8601 date or time (local time unless it
    says otherwise) or an age such as ``30d``, ``12h`` or ``2w`` (that long before ``now``)."""
    if isinstance(value, bool):
        raise InvalidOptionError(f"Not a time: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return _timestamp(value)
    text = str(value).strip()
    age = _DURATION.match(text)
    if age:
        # in seconds, not datetimes: an age past year 1 (schemathesis sent 826,111,344 days) is fine
        return (now or datetime.now()).timestamp() - float(age[1]) * _SECONDS[age[2]]
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidOptionError(
            f"Not a time: {text!r}; use an ISO date such as 2024-05-01, a time such as 2024-05-01T09:30, or an age "
            "such as 7d"
        ) from None
    return _timestamp(moment)


def _timestamp(moment: datetime) -> float:
    """Seconds since the epoch; a naive time is local time, except where local time cannot be
    worked out (year 1, say), where it is taken as UTC."""
    try:
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):
        return moment.replace(tzinfo=moment.tzinfo or timezone.utc).timestamp()

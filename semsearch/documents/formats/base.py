"""What every reader returns, and the helpers readers share: text with its pages and headings."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import accumulate

from ...errors import first_line
from ..reading import UnreadableError

MAX_LEVEL = 6  # the deepest heading level kept


@dataclass(frozen=True)
class Heading:
    """A heading's level (1-6), title and line start; a PDF bookmark not in its page's text: the page start."""

    start: int
    level: int
    title: str


@dataclass(frozen=True)
class Extracted:
    """A file's plain text; for a PDF where each page starts; its headings in text order."""

    text: str
    encoding: str  # the text encoding, or "pdf", "docx", "html (<encoding>)"
    pages: tuple[int, ...] = ()  # PDF only: the offset where page i + 1 starts; pages[0] == 0
    headings: tuple[Heading, ...] = ()


def page_at(pages: tuple[int, ...], offset: int) -> int | None:
    """The 1-based page holding text ``offset``; None for a text without pages."""
    if not pages:
        return None
    return max(1, bisect.bisect_right(pages, offset))


def heading_at(headings: tuple[Heading, ...], offset: int) -> str | None:
    """The headings in effect at ``offset``, outermost first, joined with " > "; None if none.
    For many offsets in one text, build a ``HeadingPaths`` once instead."""
    return HeadingPaths(headings).at(offset)


class HeadingPaths:
    """The path of headings in effect anywhere in a text, worked out once for all its headings."""

    def __init__(self, headings: tuple[Heading, ...]) -> None:
        self.starts = [h.start for h in headings]
        self.paths: list[str] = []
        enclosing: list[Heading] = []  # the headings the current one sits under, and itself
        for heading in headings:
            while enclosing and enclosing[-1].level >= heading.level:
                enclosing.pop()
            enclosing.append(heading)
            self.paths.append(" > ".join(h.title for h in enclosing))

    def at(self, offset: int) -> str | None:
        """The path of the last heading starting at or before ``offset``; None before the first."""
        last = bisect.bisect_right(self.starts, offset)
        return self.paths[last - 1] if last else None


@contextmanager
def reading(label: str, missing: str) -> Iterator[None]:
    """Turn whatever a parser raises on bad input into an UnreadableError naming the format
    (``missing``: what to say when its library is not installed)."""
    try:
        yield
    except ImportError as exc:
        raise UnreadableError(missing) from exc
    except UnreadableError:
        raise
    except Exception as exc:  # parsers raise anything from KeyError to RecursionError
        raise UnreadableError(f"not a readable {label}: {first_line(exc)[:200]}") from exc


def starts(parts: list[str], gap: int) -> tuple[int, ...]:
    """Where each of ``parts`` starts once they are joined with ``gap`` characters between."""
    return tuple(accumulate((len(part) + gap for part in parts[:-1]), initial=0)) if parts else ()


def joined(lines: list[str], headings: list[tuple[int, int]], encoding: str) -> Extracted:
    """``lines`` joined with newlines, the headings among them (by line index) placed in it."""
    begins = starts(lines, 1)
    found = tuple(Heading(begins[i], level, lines[i]) for i, level in headings)
    return Extracted("\n".join(lines), encoding, headings=found)

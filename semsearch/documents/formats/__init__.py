"""The kinds of file semsearch reads: one registry, ``FORMATS``.

Each ``Format`` names its type (what ``--type`` takes), its suffixes, the reader that turns its
bytes into text with pages and headings, and the library it needs and the extra that installs
it. The walk, the type filters, the CLI's help and the README's table are all derived from it:
a new format is one more entry here and its reader. Readers import their library only when a
file of theirs is read, so start-up stays fast.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..reading import UnreadableError
from .base import Extracted, Heading, HeadingPaths, heading_at, page_at
from .docx import read_docx
from .html import read_html
from .markdown import markdown_headings, read_markdown, read_text
from .pdf import read_pdf

__all__ = [
    "FORMATS",
    "SUFFIXES",
    "Extracted",
    "Format",
    "Heading",
    "HeadingPaths",
    "extract",
    "heading_at",
    "markdown_headings",
    "missing_extra",
    "page_at",
    "type_suffixes",
]


@dataclass(frozen=True)
class Format:
    """A kind of file: ``name`` is its type for filters, ``label`` how messages call it,
    ``suffixes`` (lower case, the first the usual one) what the walk takes, ``read`` turns its
    bytes into text (given what to say when ``module``, its library, is missing), and ``extra``
    is the pip extra that installs that library."""

    name: str
    label: str
    suffixes: tuple[str, ...]
    read: Callable[[bytes, str], Extracted]
    module: str | None = None
    extra: str | None = None

    def missing(self) -> str | None:
        """Why files of this format cannot be read here, or None when they can."""
        if self.module is None:
            return None
        try:
            found = importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):  # a broken or half-imported package
            found = False
        return None if found else f"{self.label} support is not installed; pip install 'semsearch[{self.extra}]'"


FORMATS: tuple[Format, ...] = (
    Format("txt", "text", (".txt", ".text"), read_text),
    Format("md", "Markdown", (".md", ".markdown"), read_markdown),
    Format("rst", "reStructuredText", (".rst",), read_text),
    Format("pdf", "PDF", (".pdf",), read_pdf, module="pypdf", extra="docs"),
    Format("docx", "DOCX", (".docx",), read_docx, module="docx", extra="docs"),
    Format("html", "HTML", (".html", ".htm", ".xhtml"), read_html, module="bs4", extra="docs"),
)
SUFFIXES: tuple[str, ...] = tuple(suffix for f in FORMATS for suffix in f.suffixes)
_BY_SUFFIX = {suffix: f for f in FORMATS for suffix in f.suffixes}


def format_of(path: Path | str) -> Format | None:
    """The format of a file, by its suffix (any case); None for one semsearch does not read."""
    return _BY_SUFFIX.get(Path(path).suffix.lower())


def missing_extra(suffix: str) -> str | None:
    """Why files with ``suffix`` cannot be read here, or None when they can."""
    found = _BY_SUFFIX.get(suffix.lower())
    return found.missing() if found else None


def type_suffixes(kind: str) -> tuple[str, ...]:
    """The suffixes (without the dot) a type filter takes: all of its format's (``md``: md and
    markdown; ``htm``: html, htm and xhtml), or the one given when no format has it."""
    key = kind.lower().lstrip(".")
    found = next((f for f in FORMATS if f.name == key), None) or _BY_SUFFIX.get("." + key)
    return tuple(s.lstrip(".") for s in found.suffixes) if found else (key,)


def describe(extra: str | None) -> str:
    """The suffixes of the formats read with ``extra`` (None: without one), for help texts."""
    return " ".join(suffix for f in FORMATS if f.extra == extra for suffix in f.suffixes)


def extract(path: Path, data: bytes) -> Extracted:
    """The text of ``data``, read as the suffix of ``path`` says. Raises UnreadableError."""
    found = format_of(path)
    if found is None:
        raise UnreadableError(f"unsupported file type '{path.suffix or '(none)'}'")
    return found.read(data, found.missing() or "")

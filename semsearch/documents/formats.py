"""File bytes -> plain text, with where each PDF page and each heading starts (I/O edge).

PDF, DOCX and HTML need the ``docs`` extra (pypdf, python-docx, beautifulsoup4), imported only
when such a file is read: start-up stays fast. Other files are decoded text.
"""

from __future__ import annotations

import bisect
import importlib.util
import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

from .sources import UnreadableError, decode

DOCUMENT_SUFFIXES: dict[str, str] = {".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html", ".xhtml": "html"}
MARKDOWN_SUFFIXES = (".md", ".markdown")
DOCS_EXTRA = "pip install 'semsearch[docs]'"

_LIBRARIES = {"pdf": ("pypdf", "PDF"), "docx": ("docx", "DOCX"), "html": ("bs4", "HTML")}
_MAX_LEVEL = 6


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


def missing_extra(suffix: str) -> str | None:
    """Why files with ``suffix`` cannot be read here, or None when they can."""
    kind = DOCUMENT_SUFFIXES.get(suffix.lower())
    if kind is None:
        return None
    module, label = _LIBRARIES[kind]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or half-imported package
        found = False
    return None if found else f"{label} support is not installed; {DOCS_EXTRA}"


def extract(path: Path, data: bytes) -> Extracted:
    """The text of ``data``, read as the suffix of ``path`` says. Raises UnreadableError."""
    suffix = path.suffix.lower()
    kind = DOCUMENT_SUFFIXES.get(suffix)
    if kind is not None:
        return _READERS[kind](data)
    text, encoding = decode(data)
    return Extracted(text, encoding, headings=markdown_headings(text) if suffix in MARKDOWN_SUFFIXES else ())


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
def _reading(label: str) -> Iterator[None]:
    """Turn whatever a parser raises on bad input into an UnreadableError naming the format."""
    try:
        yield
    except ImportError as exc:
        raise UnreadableError(f"{label} support is not installed; {DOCS_EXTRA}") from exc
    except UnreadableError:
        raise
    except Exception as exc:  # parsers raise anything from KeyError to RecursionError
        lines = str(exc).strip().splitlines()
        raise UnreadableError(f"not a readable {label}: {lines[0][:200] if lines else type(exc).__name__}") from exc


# -- PDF ----------------------------------------------------------------------------------------

# pypdf puts a space between glyphs placed one by one with a gap (justified Chinese text): a run
# of single CJK characters between spaces is one word. "第一章 总则" keeps its space.
_CJK = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_SPACED_CJK = re.compile(f"[{_CJK}](?: [{_CJK}]){{2,}}")


def _pdf(data: bytes) -> Extracted:
    with _reading("PDF"):
        import pypdf

        reader = pypdf.PdfReader(io.BytesIO(data))
        _decrypt(reader)
        texts = [_SPACED_CJK.sub(lambda m: m[0].replace(" ", ""), page.extract_text() or "") for page in reader.pages]
    text, pages = "\n\n".join(texts), _starts(texts, 2)
    return Extracted(text, "pdf", pages, _outline(reader, text, pages))


def _decrypt(reader: Any) -> None:
    try:  # many PDFs are encrypted only against editing, with an empty user password
        opened = not reader.is_encrypted or reader.decrypt("")
    except Exception as exc:  # pypdf.errors.DependencyError when AES needs a missing library
        raise UnreadableError("encrypted PDF") from exc
    if not opened:
        raise UnreadableError("encrypted PDF")


def _starts(parts: list[str], gap: int) -> tuple[int, ...]:
    """Where each of ``parts`` starts once they are joined with ``gap`` characters between."""
    return tuple(accumulate((len(part) + gap for part in parts[:-1]), initial=0)) if parts else ()


def _outline(reader: Any, text: str, pages: tuple[int, ...]) -> tuple[Heading, ...]:
    """Headings from the PDF's bookmarks at the line where their title is, else the page start."""
    found: list[Heading] = []
    items: list[tuple[Any, int]] = [(reader.outline, 0)]  # an entry's children: a list after it
    try:  # the outline is a nicety: a damaged one gives no headings, the text is read already
        while items:
            item, level = items.pop()
            if isinstance(item, list):
                items.extend((child, level + 1) for child in reversed(item) if level < _MAX_LEVEL)
                continue
            page, title = reader.get_destination_page_number(item), " ".join(str(item.title or "").split())
            if title and isinstance(page, int) and 0 <= page < len(pages):
                end = pages[page + 1] if page + 1 < len(pages) else len(text)
                at = text.find(title, pages[page], end)
                found.append(Heading(pages[page] if at < 0 else text.rfind("\n", 0, at) + 1, level, title))
    except Exception:
        return ()
    return tuple(sorted(found, key=lambda h: h.start))


# -- DOCX ---------------------------------------------------------------------------------------


MAX_UNZIPPED = 50_000_000  # bytes a zip-based document (DOCX) may expand to, all parts together
MAX_RATIO = 100  # how many times its compressed size one part may expand to (beyond 1 MB)
_RATIO_FROM = 1_000_000


def check_zip(data: bytes, label: str) -> None:
    """Refuse a zip-based document that would expand past the limits (a decompression bomb)
    before any parser opens it: the sizes its directory declares, then the bytes each part
    really inflates to (a directory can lie), read in bounded pieces."""
    import zipfile

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise UnreadableError(f"not a readable {label}: {exc}") from exc
    with archive:
        declared = 0
        for info in archive.infolist():
            declared += info.file_size
            if declared > MAX_UNZIPPED:
                raise UnreadableError(_too_big(label, "expands to more than", MAX_UNZIPPED))
            if info.file_size > max(_RATIO_FROM, MAX_RATIO * info.compress_size):
                raise UnreadableError(
                    f"{label} part {info.filename} expands {info.file_size // max(1, info.compress_size)} times "
                    f"(the limit is {MAX_RATIO} times, beyond {_RATIO_FROM // 1_000_000} MB): a decompression bomb?"
                )
        inflated = 0
        for info in archive.infolist():
            try:
                with archive.open(info) as part:
                    while piece := part.read(1 << 20):
                        inflated += len(piece)
                        if inflated > MAX_UNZIPPED:
                            raise UnreadableError(_too_big(label, "expands to more than", MAX_UNZIPPED))
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
                raise UnreadableError(f"not a readable {label}: {exc}") from exc


def _too_big(label: str, what: str, limit: int) -> str:
    from .sources import human_size

    return f"{label} {what} the {human_size(limit)} limit for unpacked documents"


def _docx(data: bytes) -> Extracted:
    with _reading("DOCX"):
        import docx
        from docx.table import Table

        check_zip(data, "DOCX")

        lines: list[str] = []
        headings: list[tuple[int, int]] = []  # (line index, level)
        for block in docx.Document(io.BytesIO(data)).iter_inner_content():
            if isinstance(block, Table):
                lines.extend(_table_rows(block))
            elif block.text.strip():
                level = _docx_level(block)
                if level is not None:
                    headings.append((len(lines), level))
                lines.append(" ".join(block.text.split()) if level else block.text.strip())
    return _joined(lines, headings, "docx")


def _table_rows(table: Any) -> Iterator[str]:
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) not in seen:  # a merged cell comes once per grid column it spans
                seen.add(id(cell._tc))
                cells.append(" ".join(cell.text.split()))
        if any(cells):
            yield " | ".join(cells)


_HEADING_STYLE = re.compile(r"(?:heading|标题)\s*([1-9])", re.IGNORECASE)


def _docx_level(paragraph: Any) -> int | None:
    """A paragraph's heading level: its own outline level, else its style's (or a base style's)."""
    level = _outline_level(paragraph._p.pPr)
    style = paragraph.style
    for _ in range(10):  # styles are based on styles; a damaged file may loop
        if level is not None or style is None:
            break
        match = _HEADING_STYLE.fullmatch(style.name or "")
        level = int(match[1]) if match else 1 if style.name in ("Title", "标题") else None
        level = level or _outline_level(style.element.pPr)
        style = style.base_style
    return level if level and level <= _MAX_LEVEL else None


def _outline_level(ppr: Any) -> int | None:
    """w:outlineLvl as a heading level: val 0 is level 1, 9 is body text (0); None when unset."""
    if ppr is None:
        return None
    from docx.oxml.ns import qn

    element = ppr.find(qn("w:outlineLvl"))
    value = None if element is None else element.get(qn("w:val"))
    return (int(value) + 1) % 10 if value is not None and value.isdigit() else None


def _joined(lines: list[str], headings: list[tuple[int, int]], encoding: str) -> Extracted:
    """``lines`` joined with newlines, the headings among them (by line index) placed in it."""
    starts = _starts(lines, 1)
    found = tuple(Heading(starts[i], level, lines[i]) for i, level in headings)
    return Extracted("\n".join(lines), encoding, headings=found)


# -- HTML ---------------------------------------------------------------------------------------


def _html(data: bytes) -> Extracted:
    from .htmltext import decode_html, html_lines

    text, encoding = decode_html(data)
    with _reading("HTML"):
        lines, headings = html_lines(text)
    return _joined(lines, headings, f"html ({encoding})")


# -- Markdown -----------------------------------------------------------------------------------

_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*))?")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
# lines that end a paragraph, or start something else: indented code, list items, quotes, rules
_NOT_PARAGRAPH = re.compile(r" {4}|\t| {0,3}(?:[-+*>]|\d{1,9}[.)])(?:[ \t]|$)| {0,3}(?:[-*_][ \t]*){3,}$")
# YAML front matter: '---', lines of which the first is 'key:', '---' (or '...')
_FRONT_MATTER = re.compile(
    r"---[ \t]*\r?\n(?=[\w\"'-]+ *:).*?^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE
)


def markdown_headings(text: str) -> tuple[Heading, ...]:
    """ATX (``# Title``) and setext (a paragraph underlined with === or ---) headings, in order."""
    headings: list[Heading] = []
    fence = ""  # the marker of the open code fence: '#' lines inside are code
    paragraph: list[tuple[int, str]] = []  # the lines of the paragraph so far: a setext title
    front = _FRONT_MATTER.match(text)  # YAML front matter: its closing '---' underlines nothing
    offset = front.end() if front else 0
    for line in text[offset:].splitlines(keepends=True):
        start, offset, content = offset, offset + len(line), line.rstrip()
        fenced = _fence_after(content, fence)
        if fenced is not None or fence:
            fence = fence if fenced is None else fenced
            paragraph = []
        elif atx := _ATX.fullmatch(content):
            title = re.sub(r"(?:^|[ \t]+)#+$", "", (atx[2] or "").strip()).strip()
            headings.extend([Heading(start, len(atx[1]), title)] if title else [])
            paragraph = []
        elif paragraph and (setext := _SETEXT.fullmatch(content)):
            title = " ".join(part for _, part in paragraph)
            headings.append(Heading(paragraph[0][0], 1 if setext[1][0] == "=" else 2, title))
            paragraph = []
        elif content.strip() and not _NOT_PARAGRAPH.match(content):
            paragraph.append((start, content.strip()))
        else:
            paragraph = []
    return tuple(headings)


def _fence_after(content: str, fence: str) -> str | None:
    """The open fence after this line ('' for none), or None when the line opens or closes none."""
    match = _FENCE.match(content)
    if match is None:
        return None
    marker = match[1]
    if not fence:
        return marker
    closes = marker[0] == fence[0] and len(marker) >= len(fence) and not content[match.end() :].strip()
    return "" if closes else None


_READERS: dict[str, Callable[[bytes], Extracted]] = {"pdf": _pdf, "docx": _docx, "html": _html}

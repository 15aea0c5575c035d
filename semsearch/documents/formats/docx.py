"""DOCX: python-docx, paragraphs and tables in body order; heading styles and outline levels.
A DOCX is a zip: it is refused before parsing when it would unpack past the limits."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

from ..reading import UnreadableError
from .base import MAX_LEVEL, Extracted, joined, reading

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
    from .reading import human_size

    return f"{label} {what} the {human_size(limit)} limit for unpacked documents"


def read_docx(data: bytes, missing: str) -> Extracted:
    """The text of a Word document: paragraphs and table rows in body order, with its headings."""
    with reading("DOCX", missing):
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
    return joined(lines, headings, "docx")


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
    return level if level and level <= MAX_LEVEL else None


def _outline_level(ppr: Any) -> int | None:
    """w:outlineLvl as a heading level: val 0 is level 1, 9 is body text (0); None when unset."""
    if ppr is None:
        return None
    from docx.oxml.ns import qn

    element = ppr.find(qn("w:outlineLvl"))
    value = None if element is None else element.get(qn("w:val"))
    return (int(value) + 1) % 10 if value is not None and value.isdigit() else None

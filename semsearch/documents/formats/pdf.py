"""PDF: pypdf, page by page; bookmarks as headings."""

from __future__ import annotations

import io
import re
from typing import Any

from ..reading import UnreadableError
from .base import MAX_LEVEL, Extracted, Heading, reading, starts

# pypdf puts a space between glyphs placed one by one with a gap (justified Chinese text): a run
# of single CJK characters between spaces is one word. "第一章 总则" keeps its space.
_CJK = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_SPACED_CJK = re.compile(f"[{_CJK}](?: [{_CJK}]){{2,}}")


def read_pdf(data: bytes, missing: str) -> Extracted:
    """The text of a PDF, page by page, and its bookmarks as headings."""
    with reading("PDF", missing):
        import pypdf

        reader = pypdf.PdfReader(io.BytesIO(data))
        _decrypt(reader)
        texts = [_SPACED_CJK.sub(lambda m: m[0].replace(" ", ""), page.extract_text() or "") for page in reader.pages]
    text, pages = "\n\n".join(texts), starts(texts, 2)
    return Extracted(text, "pdf", pages, _outline(reader, text, pages))


def _decrypt(reader: Any) -> None:
    try:  # many PDFs are encrypted only against editing, with an empty user password
        opened = not reader.is_encrypted or reader.decrypt("")
    except Exception as exc:  # pypdf.errors.DependencyError when AES needs a missing library
        raise UnreadableError("encrypted PDF") from exc
    if not opened:
        raise UnreadableError("encrypted PDF")


def _outline(reader: Any, text: str, pages: tuple[int, ...]) -> tuple[Heading, ...]:
    """Headings from the PDF's bookmarks at the line where their title is, else the page start."""
    found: list[Heading] = []
    items: list[tuple[Any, int]] = [(reader.outline, 0)]  # an entry's children: a list after it
    try:  # the outline is a nicety: a damaged one gives no headings, the text is read already
        while items:
            item, level = items.pop()
            if isinstance(item, list):
                items.extend((child, level + 1) for child in reversed(item) if level < MAX_LEVEL)
                continue
            page, title = reader.get_destination_page_number(item), " ".join(str(item.title or "").split())
            if title and isinstance(page, int) and 0 <= page < len(pages):
                end = pages[page + 1] if page + 1 < len(pages) else len(text)
                at = text.find(title, pages[page], end)
                found.append(Heading(pages[page] if at < 0 else text.rfind("\n", 0, at) + 1, level, title))
    except Exception:
        return ()
    return tuple(sorted(found, key=lambda h: h.start))

"""Plain text and Markdown: decoded bytes; Markdown's ATX and setext headings."""

from __future__ import annotations

import re

from ..reading import decode
from .base import Extracted, Heading


def read_text(data: bytes, missing: str) -> Extracted:
    """Decoded text, without headings."""
    text, encoding = decode(data)
    return Extracted(text, encoding)


def read_markdown(data: bytes, missing: str) -> Extracted:
    """Decoded text with its Markdown headings."""
    text, encoding = decode(data)
    return Extracted(text, encoding, headings=markdown_headings(text))


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

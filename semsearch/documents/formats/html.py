"""HTML: lines of text and h1-h6 headings, with BeautifulSoup and Python's own parser; the
charset from a byte-order mark, ``<meta>`` or the bytes themselves."""

from __future__ import annotations

import codecs
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from ..reading import decode
from .base import Extracted, joined, reading

_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_DROP = {"script", "style", "noscript", "template", "svg", "title", "meta", "link", "base", "iframe", "object"}
_BLOCK = re.compile(
    "address|article|aside|blockquote|body|br|caption|dd|details|dialog|div|dl|dt|fieldset|figcaption|figure|footer"
    "|form|h[1-6]|header|hgroup|hr|html|legend|li|main|nav|ol|option|p|pre|section|summary|table|tbody|tfoot|thead|tr|ul"
)
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""\s*<\?xml[^>]*?encoding\s*=\s*["']([\w.:-]+)""", re.IGNORECASE)
# browsers read these labels as a superset (WHATWG Encoding Standard); UTF-16 in a meta is a lie
_CHARSET_ALIASES = {"gbk": "gb18030", "gb2312": "gb18030", "iso8859-1": "cp1252", "ascii": "cp1252"}


def read_html(data: bytes, missing: str) -> Extracted:
    """The text of an HTML page (blocks on lines of their own, scripts and styles dropped)."""
    text, encoding = decode_html(data)
    with reading("HTML", missing):
        lines, headings = html_lines(text)
    return joined(lines, headings, f"html ({encoding})")


def html_lines(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The lines of text of an HTML page (blocks on lines of their own, scripts and styles
    dropped) and its h1-h6 headings as (line index, level)."""
    from bs4 import BeautifulSoup

    with warnings.catch_warnings():  # bs4 warns of pages that look like a file name or XML
        warnings.simplefilter("ignore", UserWarning)
        soup = BeautifulSoup(text, "html.parser")
    lines = _HtmlLines()
    lines.walk(soup)
    return lines.lines, lines.headings


def decode_html(data: bytes) -> tuple[str, str]:
    """Decode as the page declares (when the bytes agree), else as any text file."""
    match = _XML_ENCODING.match(data) or _META_CHARSET.search(data[:4096])
    if match and not data.startswith(_BOMS):  # a byte-order mark outranks a declaration
        try:
            name = codecs.lookup(match[1].decode("ascii")).name
            if not name.startswith(("utf-16", "utf-32")):
                name = _CHARSET_ALIASES.get(name, name)
                return data.decode(name), name
        except (LookupError, UnicodeDecodeError):  # an unknown label, or bytes that belie it
            pass
    return decode(data)


@dataclass
class _HtmlLines:
    """The lines of text of an HTML tree, blocks on lines of their own, and its h1-h6."""

    lines: list[str] = field(default_factory=list)
    headings: list[tuple[int, int]] = field(default_factory=list)  # (line index, level)
    parts: list[str] = field(default_factory=list)  # the line being built
    open_headings: list[tuple[int, int]] = field(default_factory=list)
    pre: int = 0  # depth of <pre>: white space kept

    def walk(self, root: Any) -> None:
        from bs4 import NavigableString, Tag
        from bs4.element import PreformattedString

        # an explicit stack, not recursion: real pages nest deeper than Python's recursion limit
        stack: list[tuple[Any, bool]] = [(root, True)]
        while stack:
            node, entering = stack.pop()
            if isinstance(node, Tag) and node.name not in _DROP:
                if entering:
                    self.open(node.name)
                    stack.append((node, False))
                    stack.extend((child, True) for child in reversed(node.contents))
                else:
                    self.close(node.name)
            elif isinstance(node, NavigableString) and not isinstance(node, PreformattedString):  # not comments
                self.add(str(node))
        self.end_line()

    def open(self, name: str) -> None:
        if name in ("td", "th") and "".join(self.parts).strip():
            self.parts.append(" | ")
        elif _BLOCK.fullmatch(name):
            self.end_line()
        self.pre += name == "pre"
        if name in _HEADINGS:
            self.open_headings.append((len(self.lines), _HEADINGS[name]))

    def close(self, name: str) -> None:
        if _BLOCK.fullmatch(name):
            self.end_line()
        self.pre -= name == "pre"
        if name in _HEADINGS and self.open_headings:
            first, level = self.open_headings.pop()
            if first < len(self.lines):  # a heading broken by <br> is one line; headings inside it go
                self.lines[first:] = [" ".join(self.lines[first:])]
                self.headings = [h for h in self.headings if h[0] < first] + [(first, level)]

    def add(self, text: str) -> None:
        first, *rest = text.split("\n") if self.pre else [re.sub(r"\s+", " ", text)]
        self.parts.append(first)
        for line in rest:
            self.end_line()
            self.parts.append(line)

    def end_line(self) -> None:
        line = "".join(self.parts)
        line = line.rstrip() if self.pre else " ".join(line.split())
        if line.strip():
            self.lines.append(line)
        self.parts.clear()

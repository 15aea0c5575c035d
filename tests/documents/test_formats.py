"""Formats: PDF, DOCX, HTML and Markdown bytes -> text with page and heading positions."""

from __future__ import annotations

import importlib.util
import io
import re
import sys
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest

from semsearch.documents.formats import (
    FORMATS,
    SUFFIXES,
    Extracted,
    Heading,
    extract,
    heading_at,
    missing_extra,
    page_at,
)
from semsearch.documents.reading import DecodeError, UnreadableError

DOCS_EXTRA = "pip install 'semsearch[docs]'"
DOCUMENT_SUFFIXES = tuple(suffix for f in FORMATS if f.extra == "docs" for suffix in f.suffixes)
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def read(tmp_path: Path, name: str, data: bytes) -> Extracted:
    """Write ``data`` as ``name`` and extract it as the ingest would: bytes plus the path's suffix."""
    path = tmp_path / name
    path.write_bytes(data)
    return extract(path, path.read_bytes())


def titles(extracted: Extracted) -> list[tuple[int, str]]:
    return [(h.level, h.title) for h in extracted.headings]


def assert_headings_placed(extracted: Extracted) -> None:
    """Every heading starts a line of the text with its title, and they come in text order."""
    starts = [h.start for h in extracted.headings]
    assert starts == sorted(starts)
    for heading in extracted.headings:
        assert heading.start == 0 or extracted.text[heading.start - 1] == "\n"
        assert extracted.text[heading.start :].startswith(heading.title), heading


# -- PDF ----------------------------------------------------------------------------------------


def make_pdf(pages: list[list[str]], sections: dict[int, list[tuple[int, str]]] | None = None) -> bytes:
    """A PDF with one page per entry of ``pages``, each line a paragraph; ``sections`` bookmarks."""
    fpdf = pytest.importorskip("fpdf")
    pdf = fpdf.FPDF()
    pdf.set_font("Helvetica", size=12)
    for number, lines in enumerate(pages):
        pdf.add_page()
        for level, name in (sections or {}).get(number, []):
            pdf.start_section(name, level=level)
        for line in lines:
            pdf.multi_cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


PAGES = [
    ["Chapter One", "Tea grows on hillsides in Fujian."],
    ["Chapter Two", "Oolong is partly oxidised.", "Brewing", "Use water just off the boil."],
    ["Chapter Three", "Green tea keeps its colour."],
]


def test_pdf_text_and_pages(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    extracted = read(tmp_path, "tea.pdf", make_pdf(PAGES))
    assert extracted.encoding == "pdf"
    assert len(extracted.pages) == 3
    assert extracted.pages[0] == 0
    for number, lines in enumerate(PAGES, start=1):
        assert extracted.text[extracted.pages[number - 1] :].startswith(lines[0])
        for line in lines:
            offset = extracted.text.index(line)
            assert page_at(extracted.pages, offset) == number
            assert page_at(extracted.pages, offset + len(line) - 1) == number
    # pages are joined with a blank line, so a page's text never runs into the next one's
    assert extracted.text[extracted.pages[1] - 2 : extracted.pages[1]] == "\n\n"
    assert extracted.headings == ()


def test_pdf_empty_page_keeps_its_entry(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    extracted = read(tmp_path, "gap.pdf", make_pdf([["First page"], [], ["Third page"]]))
    assert len(extracted.pages) == 3
    assert extracted.pages[1] == extracted.pages[2] - 2  # the empty page: nothing between its gaps
    assert page_at(extracted.pages, extracted.text.index("Third page")) == 3
    assert page_at(extracted.pages, extracted.text.index("First page")) == 1


def test_pdf_outline_gives_headings(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    sections = {0: [(0, "Chapter One")], 1: [(0, "Chapter Two"), (1, "Brewing")], 2: [(0, "Chapter Three")]}
    extracted = read(tmp_path, "outline.PDF", make_pdf(PAGES, sections))
    assert titles(extracted) == [(1, "Chapter One"), (1, "Chapter Two"), (2, "Brewing"), (1, "Chapter Three")]
    assert_headings_placed(extracted)
    assert heading_at(extracted.headings, extracted.text.index("Use water")) == "Chapter Two > Brewing"
    assert heading_at(extracted.headings, extracted.text.index("Green tea")) == "Chapter Three"


def test_pdf_with_a_unicode_font(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    fpdf = pytest.importorskip("fpdf")
    if not DEJAVU.exists():
        pytest.skip("no DejaVu font to embed")
    pdf = fpdf.FPDF()
    pdf.add_font("DejaVu", fname=str(DEJAVU))
    pdf.set_font("DejaVu", size=12)
    for line in ("Ελληνικό τσάι", "Русский чай"):
        pdf.add_page()
        pdf.multi_cell(0, 8, line)
    extracted = read(tmp_path, "unicode.pdf", bytes(pdf.output()))
    assert page_at(extracted.pages, extracted.text.index("Ελληνικό τσάι")) == 1
    assert page_at(extracted.pages, extracted.text.index("Русский чай")) == 2


def chinese_pdf(pages: list[list[tuple[int, int, str]]]) -> bytes:
    """A PDF drawing (x, y, text) with the standard, not embedded, STSong-Light font.

    fpdf2 needs a CJK font file to embed, which most machines lack; the predefined UniGB-UCS2-H
    encoding needs none, and pypdf maps it to Unicode as Chinese PDFs from many tools are mapped.
    """
    font = (
        b"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UCS2-H /DescendantFonts"
        b" [<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light /DW 1000"
        b" /CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 2 >> >>] >>"
    )
    objects = [font]  # object n is objects[n - 1]
    tree = 2 + 2 * len(pages)  # the page tree's number, after the font and each page's two objects
    for lines in pages:
        ops = b"".join(
            b"BT /F1 12 Tf %d %d Td <%s> Tj ET\n" % (x, y, t.encode("utf-16-be").hex().encode()) for x, y, t in lines
        )
        objects.append(b"<< /Length %d >>\nstream\n%sendstream" % (len(ops), ops))
        objects.append(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Contents %d 0 R"
            b" /Resources << /Font << /F1 1 0 R >> >> >>" % (tree, len(objects))
        )
    kids = b" ".join(b"%d 0 R" % (3 + 2 * i) for i in range(len(pages)))
    objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)))
    objects.append(b"<< /Type /Catalog /Pages %d 0 R >>" % tree)
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, len(objects), xref)
    return bytes(out)


def test_pdf_in_chinese(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    data = chinese_pdf(
        [
            [(72, 760, "第一章 总则"), (72, 740, "茶是中国人日常生活的一部分。")],
            [(72, 760, "第二章 历史"), (72, 740, "唐代陆羽写了《茶经》。")],
        ]
    )
    extracted = read(tmp_path, "中文.pdf", data)
    assert extracted.text == "第一章 总则\n茶是中国人日常生活的一部分。\n\n第二章 历史\n唐代陆羽写了《茶经》。"
    assert page_at(extracted.pages, extracted.text.index("陆羽")) == 2
    assert page_at(extracted.pages, extracted.text.index("中国人")) == 1


def test_pdf_chinese_set_glyph_by_glyph_is_not_spaced_out(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    line = "逐字放置的中文"
    tight = [(72 + 12 * i, 700, char) for i, char in enumerate(line)]
    justified = [(72 + 15 * i, 650, char) for i, char in enumerate(line)]  # pypdf sees a space in each gap
    extracted = read(tmp_path, "glyphs.pdf", chinese_pdf([[*tight, *justified, (72, 600, "第一章 总则")]]))
    assert extracted.text == "逐字放置的中文\n逐字放置的中文\n第一章 总则"


def encrypted_pdf(user: str, owner: str) -> bytes:
    pypdf = pytest.importorskip("pypdf")
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(make_pdf(PAGES))))
    writer.encrypt(user, owner, algorithm="RC4-128")  # RC4 needs no crypto library
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_encrypted_with_a_password_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableError, match="^encrypted PDF$"):
        read(tmp_path, "secret.pdf", encrypted_pdf("secret", "owner"))


def test_pdf_encrypted_only_against_editing_is_read(tmp_path: Path) -> None:
    extracted = read(tmp_path, "locked.pdf", encrypted_pdf("", "owner"))
    assert "Oolong is partly oxidised." in extracted.text
    assert len(extracted.pages) == 3


@pytest.mark.parametrize("cut", [0.5, 0.1])
def test_pdf_truncated_is_unreadable(tmp_path: Path, cut: float) -> None:
    pytest.importorskip("pypdf")
    data = make_pdf(PAGES)
    with pytest.raises(UnreadableError, match="^not a readable PDF: "):
        read(tmp_path, "cut.pdf", data[: int(len(data) * cut)])


def test_pdf_of_random_bytes_is_unreadable(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    with pytest.raises(UnreadableError, match="^not a readable PDF: "):
        read(tmp_path, "noise.pdf", bytes(range(256)) * 8)


# -- DOCX ---------------------------------------------------------------------------------------


def set_outline_level(paragraph: Any, value: int) -> None:
    """Put <w:outlineLvl w:val=value> in the paragraph's own properties, as Word does."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    element = OxmlElement("w:outlineLvl")
    element.set(qn("w:val"), str(value))
    paragraph._p.get_or_add_pPr().append(element)


def make_docx() -> bytes:
    docx = pytest.importorskip("docx")
    from docx.enum.style import WD_STYLE_TYPE

    document = docx.Document()
    document.add_heading("Tea Handbook", 0)  # the Title style
    document.add_heading("第一章 总则", 1)
    document.add_paragraph("茶是中国人日常生活的一部分。")
    document.add_heading("1.1 安装", 2)
    document.add_paragraph("Install the kettle first.")
    table = document.add_table(rows=2, cols=2)
    for (row, col), text in {(0, 0): "名称", (0, 1): "值", (1, 0): "绿茶", (1, 1): "龙井\n西湖"}.items():
        table.cell(row, col).text = text
    document.add_paragraph("")  # empty paragraphs leave no empty lines
    custom = document.add_paragraph("第二章 自定义", style=document.styles.add_style("标题 1", WD_STYLE_TYPE.PARAGRAPH))
    set_outline_level(custom, 0)
    document.add_paragraph("正文在第二章。")
    # a style with no heading-like name: only the outline level makes it a heading
    plain = document.add_paragraph("2.1 大纲级别", style=document.styles.add_style("章节", WD_STYLE_TYPE.PARAGRAPH))
    set_outline_level(plain, 1)
    demoted = document.add_heading("Not a heading any more", 2)
    set_outline_level(demoted, 9)  # level 9 is body text, whatever the style says
    document.add_paragraph("The end.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_docx_text_in_document_order(tmp_path: Path) -> None:
    extracted = read(tmp_path, "handbook.docx", make_docx())
    assert extracted.encoding == "docx"
    assert extracted.pages == ()
    assert extracted.text.split("\n") == [
        "Tea Handbook",
        "第一章 总则",
        "茶是中国人日常生活的一部分。",
        "1.1 安装",
        "Install the kettle first.",
        "名称 | 值",
        "绿茶 | 龙井 西湖",
        "第二章 自定义",
        "正文在第二章。",
        "2.1 大纲级别",
        "Not a heading any more",
        "The end.",
    ]


def test_docx_headings_from_styles_and_outline_levels(tmp_path: Path) -> None:
    extracted = read(tmp_path, "handbook.docx", make_docx())
    assert titles(extracted) == [
        (1, "Tea Handbook"),
        (1, "第一章 总则"),
        (2, "1.1 安装"),
        (1, "第二章 自定义"),
        (2, "2.1 大纲级别"),
    ]
    assert_headings_placed(extracted)
    text = extracted.text
    assert heading_at(extracted.headings, text.index("Install the kettle")) == "第一章 总则 > 1.1 安装"
    assert heading_at(extracted.headings, text.index("绿茶 | 龙井")) == "第一章 总则 > 1.1 安装"
    assert heading_at(extracted.headings, text.index("正文在第二章")) == "第二章 自定义"
    assert heading_at(extracted.headings, text.index("The end.")) == "第二章 自定义 > 2.1 大纲级别"


def test_docx_merged_cells_appear_once(tmp_path: Path) -> None:
    docx = pytest.importorskip("docx")
    document = docx.Document()
    table = document.add_table(rows=1, cols=3)
    merged = table.cell(0, 0).merge(table.cell(0, 1))
    merged.text = "合并"
    table.cell(0, 2).text = "单独"
    out = io.BytesIO()
    document.save(out)
    assert read(tmp_path, "merged.docx", out.getvalue()).text == "合并 | 单独"


def test_docx_of_random_bytes_is_unreadable(tmp_path: Path) -> None:
    pytest.importorskip("docx")
    with pytest.raises(UnreadableError, match="^not a readable DOCX: File is not a zip file"):
        read(tmp_path, "noise.docx", bytes(range(256)) * 8)


def test_docx_that_is_another_zip_is_unreadable(tmp_path: Path) -> None:
    pytest.importorskip("docx")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "not a Word document")
    with pytest.raises(UnreadableError, match="^not a readable DOCX: "):
        read(tmp_path, "fake.docx", out.getvalue())


def swollen_docx(paragraphs: int, lying_size: int | None = None) -> bytes:
    """A real DOCX whose body is ``paragraphs`` identical paragraphs: tiny zipped, huge unzipped.
    ``lying_size``: the directory claims that size for the body instead of the true one."""
    docx = pytest.importorskip("docx")
    plain = io.BytesIO()
    docx.Document().save(plain)
    body = "<w:p><w:r><w:t>炸弹</w:t></w:r></w:p>" * paragraphs
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(plain.getvalue())) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "word/document.xml":
                text = data.decode("utf-8")
                data = text.replace("<w:body>", "<w:body>" + body, 1).encode("utf-8")
            target.writestr(info.filename, data)
    packed = out.getvalue()
    if lying_size is not None:  # patch the central directory's uncompressed size of the body
        at = packed.rfind(b"word/document.xml")
        header = packed.rfind(b"PK\x01\x02", 0, at)
        packed = packed[: header + 24] + lying_size.to_bytes(4, "little") + packed[header + 28 :]
    return packed


def test_a_docx_that_unzips_past_the_limits_is_refused_before_parsing(tmp_path: Path) -> None:
    bomb = swollen_docx(300_000)  # 12 MB of XML zipped into a few tens of kB
    assert len(bomb) < 200_000
    started = time.perf_counter()
    with pytest.raises(UnreadableError, match="decompression bomb"):
        read(tmp_path, "bomb.docx", bomb)
    assert time.perf_counter() - started < 30  # refused, not parsed (that took a minute and more)
    liar = swollen_docx(300_000, lying_size=1000)  # the directory says 1 kB
    with pytest.raises(UnreadableError):
        read(tmp_path, "liar.docx", liar)
    assert "炸弹" in read(tmp_path, "small.docx", swollen_docx(20)).text  # an ordinary one still reads


# -- HTML ---------------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Page title</title>
<style>body { color: red; }</style><script>var hidden = "script text";</script></head>
<body>
<noscript>Enable JavaScript</noscript><template><p>template text</p></template>
<svg><text>svg text</text></svg>
<!-- a comment -->
<h1>茶的历史</h1>
<p>Tea is <b>old</b> and
   <a href="#">widely</a>   loved.</p>
<h2>唐代</h2>
<div>陆羽写了《茶经》。<br>Second line</div>
<h3>Details<br>continued</h3>
<ul><li>one</li><li>two</li></ul>
<h2>宋代</h2>
<table><tr><th>Name</th><th>Era</th></tr><tr><td>点茶</td><td>宋</td></tr></table>
<pre>  indented code
    more</pre>
<p>After</p>
</body></html>"""


def test_html_text_blocks_and_dropped_parts(tmp_path: Path) -> None:
    pytest.importorskip("bs4")
    extracted = read(tmp_path, "tea.html", PAGE.encode("utf-8"))
    assert extracted.encoding == "html (utf-8)"
    assert extracted.text.split("\n") == [
        "茶的历史",
        "Tea is old and widely loved.",
        "唐代",
        "陆羽写了《茶经》。",
        "Second line",
        "Details continued",
        "one",
        "two",
        "宋代",
        "Name | Era",
        "点茶 | 宋",
        "  indented code",
        "    more",
        "After",
    ]
    for hidden in ("Page title", "color", "script text", "JavaScript", "template text", "svg text", "comment"):
        assert hidden not in extracted.text


def test_html_headings_nest(tmp_path: Path) -> None:
    pytest.importorskip("bs4")
    extracted = read(tmp_path, "tea.htm", PAGE.encode("utf-8"))
    assert titles(extracted) == [(1, "茶的历史"), (2, "唐代"), (3, "Details continued"), (2, "宋代")]
    assert_headings_placed(extracted)
    text = extracted.text
    assert heading_at(extracted.headings, text.index("陆羽")) == "茶的历史 > 唐代"
    assert heading_at(extracted.headings, text.index("two")) == "茶的历史 > 唐代 > Details continued"
    assert heading_at(extracted.headings, text.index("点茶")) == "茶的历史 > 宋代"


@pytest.mark.parametrize(
    "meta", ['<meta charset="gbk">', '<meta http-equiv="Content-Type" content="text/html; charset=GB2312">']
)
def test_html_gbk_page_declared_in_meta(tmp_path: Path, meta: str) -> None:
    pytest.importorskip("bs4")
    page = f"<html><head>{meta}</head><body><h1>简介</h1><p>中文网页常用 GBK 编码。</p></body></html>"
    extracted = read(tmp_path, "gbk.html", page.encode("gbk"))
    assert extracted.text == "简介\n中文网页常用 GBK 编码。"
    assert extracted.encoding == "html (gb18030)"
    assert extracted.headings == (Heading(0, 1, "简介"),)


def test_html_without_declaration_is_detected(tmp_path: Path) -> None:
    pytest.importorskip("bs4")
    extracted = read(tmp_path, "plain.html", "<p>没有声明编码的中文网页，内容比较长一些。</p>".encode("gbk"))
    assert extracted.text == "没有声明编码的中文网页，内容比较长一些。"
    assert extracted.encoding == "html (gb18030)"


def test_html_bom_outranks_a_wrong_declaration(tmp_path: Path) -> None:
    pytest.importorskip("bs4")
    page = '<meta charset="gbk"><p>UTF-8 页面</p>'
    extracted = read(tmp_path, "bom.xhtml", b"\xef\xbb\xbf" + page.encode("utf-8"))
    assert extracted.text == "UTF-8 页面"
    assert extracted.encoding == "html (utf-8-sig)"


def test_html_declaration_the_bytes_belie_falls_back(tmp_path: Path) -> None:
    pytest.importorskip("bs4")
    page = '<meta charset="ascii-nonsense"><p>声明错误</p>'
    assert read(tmp_path, "odd.html", page.encode("utf-8")).text == "声明错误"


def test_html_body_inside_an_unclosed_head_is_kept(tmp_path: Path) -> None:
    pytest.importorskip("bs4")
    # html.parser nests <body> inside a <head> that is never closed
    page = "<html><head><title>T</title><body><h2>正文</h2><p>text</p>"
    extracted = read(tmp_path, "unclosed.html", page.encode("utf-8"))
    assert extracted.text == "正文\ntext"
    assert titles(extracted) == [(2, "正文")]


def test_html_deep_nesting(tmp_path: Path) -> None:
    pytest.importorskip("bs4")
    page = "<div>" * 3000 + "deep" + "</div>" * 3000
    assert read(tmp_path, "deep.html", page.encode("utf-8")).text == "deep"


def test_html_parsing_warns_nothing(tmp_path: Path) -> None:
    pytest.importorskip("bs4")
    xhtml = '<?xml version="1.0" encoding="utf-8"?>\n<html><body><p>xhtml</p></body></html>'
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read(tmp_path, "page.html", b"index.html").text == "index.html"  # bs4: "looks like a filename"
        assert read(tmp_path, "page.xhtml", xhtml.encode()).text == "xhtml"


def test_html_binary_is_unreadable(tmp_path: Path) -> None:
    pytest.importorskip("bs4")
    with pytest.raises(DecodeError):
        read(tmp_path, "binary.html", b"\x00\x01\x02" * 100)


# -- Markdown and plain text --------------------------------------------------------------------

MARKDOWN = """---
title: front matter
---
# 第一章 开始 #

Intro text.

## 1.1 安装 ##

```bash
# not a heading: a shell comment
```

~~~
## nor this
~~~

    # indented code, not a heading

#hashtag is not a heading

Setext 标题
===========

Two line
setext title
------------

- a list item
---

### Deep *title*
Body.
"""


def test_markdown_headings(tmp_path: Path) -> None:
    extracted = read(tmp_path, "notes.md", MARKDOWN.encode("utf-8"))
    assert extracted.text == MARKDOWN
    assert extracted.encoding == "utf-8"
    assert titles(extracted) == [
        (1, "第一章 开始"),
        (2, "1.1 安装"),
        (1, "Setext 标题"),
        (2, "Two line setext title"),
        (3, "Deep *title*"),
    ]
    for heading in extracted.headings:
        assert heading.start == 0 or MARKDOWN[heading.start - 1] == "\n"
    assert MARKDOWN[extracted.headings[0].start :].startswith("# 第一章 开始")
    assert MARKDOWN[extracted.headings[3].start :].startswith("Two line\nsetext title")
    assert heading_at(extracted.headings, MARKDOWN.index("shell comment")) == "第一章 开始 > 1.1 安装"
    assert (
        heading_at(extracted.headings, MARKDOWN.index("Body.")) == "Setext 标题 > Two line setext title > Deep *title*"
    )
    assert heading_at(extracted.headings, MARKDOWN.index("front matter")) is None


def test_markdown_suffix_is_case_blind_and_other_text_has_no_headings(tmp_path: Path) -> None:
    data = b"# Title\n\ntext\n"
    assert titles(read(tmp_path, "README.MARKDOWN", data)) == [(1, "Title")]
    plain = read(tmp_path, "notes.txt", data)
    assert plain == Extracted("# Title\n\ntext\n", "utf-8")


def test_markdown_starting_with_a_rule_has_no_front_matter(tmp_path: Path) -> None:
    source = "---\n# 第一节\n\n正文\n\n---\n\n# 第二节\n"
    extracted = read(tmp_path, "rule.md", source.encode("utf-8"))
    assert titles(extracted) == [(1, "第一节"), (1, "第二节")]
    assert [source[h.start :].split("\n")[0] for h in extracted.headings] == ["# 第一节", "# 第二节"]


def test_markdown_in_gbk_and_with_crlf(tmp_path: Path) -> None:
    source = "# 标题\r\n\r\n正文内容比较长一些。\r\n子标题\r\n---\r\n"
    extracted = read(tmp_path, "gbk.md", source.encode("gbk"))
    assert extracted.text == source
    assert extracted.encoding == "gb18030"
    assert titles(extracted) == [(1, "标题"), (2, "正文内容比较长一些。 子标题")]


def test_text_that_is_binary_raises_decode_error(tmp_path: Path) -> None:
    with pytest.raises(DecodeError):
        read(tmp_path, "data.md", b"\x00\xff" * 50)


# -- heading_at and page_at ---------------------------------------------------------------------


HEADINGS = (
    Heading(10, 1, "一"),
    Heading(20, 2, "1.1"),
    Heading(30, 3, "1.1.1"),
    Heading(40, 2, "1.2"),
    Heading(50, 4, "1.2.0.1"),
    Heading(60, 1, "二"),
    Heading(70, 3, "2.0.1"),
)


@pytest.mark.parametrize(
    ("offset", "path"),
    [
        (0, None),
        (9, None),
        (10, "一"),
        (25, "一 > 1.1"),
        (30, "一 > 1.1 > 1.1.1"),
        (45, "一 > 1.2"),  # a new level 2 drops 1.1 and the 1.1.1 under it
        (55, "一 > 1.2 > 1.2.0.1"),  # a skipped level leaves no gap in the path
        (65, "二"),  # a new level 1 resets everything
        (10_000, "二 > 2.0.1"),
    ],
)
def test_heading_at(offset: int, path: str | None) -> None:
    assert heading_at(HEADINGS, offset) == path


def test_heading_at_without_headings_or_level_one() -> None:
    assert heading_at((), 5) is None
    assert heading_at((Heading(0, 3, "c"), Heading(5, 2, "b")), 7) == "b"
    assert heading_at((Heading(0, 2, "b"), Heading(5, 3, "c")), 7) == "b > c"


def test_page_at_edges() -> None:
    pages = (0, 100, 250)
    assert page_at((), 5) is None
    assert page_at(pages, 0) == 1
    assert page_at(pages, 99) == 1
    assert page_at(pages, 100) == 2
    assert page_at(pages, 249) == 2
    assert page_at(pages, 250) == 3
    assert page_at(pages, 10_000) == 3
    assert page_at((0,), 0) == 1
    assert page_at((0, 0, 5), 0) == 2  # an empty first page holds no offset


# -- missing_extra ------------------------------------------------------------------------------


def test_missing_extra_when_installed() -> None:
    for module in ("pypdf", "docx", "bs4"):
        pytest.importorskip(module)
    for suffix in (*DOCUMENT_SUFFIXES, ".txt", ".md", ".PDF"):
        assert missing_extra(suffix) is None


def test_missing_extra_when_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def find_spec(name: str, *args: object) -> None:
        asked.append(name)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert missing_extra(".pdf") == f"PDF support is not installed; {DOCS_EXTRA}"
    assert missing_extra(".DOCX") == f"DOCX support is not installed; {DOCS_EXTRA}"
    assert missing_extra(".htm") == f"HTML support is not installed; {DOCS_EXTRA}"
    assert asked == ["pypdf", "docx", "bs4"]
    assert missing_extra(".md") is None
    assert missing_extra(".txt") is None
    assert asked == ["pypdf", "docx", "bs4"]  # plain text needs no look-up


@pytest.mark.parametrize(("name", "module"), [("a.pdf", "pypdf"), ("a.docx", "docx"), ("a.html", "bs4")])
def test_extract_without_the_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(UnreadableError, match=f"support is not installed; {re.escape(DOCS_EXTRA)}$"):
        read(tmp_path, name, b"<p>any bytes</p>")


def test_missing_extra_with_a_broken_package(monkeypatch: pytest.MonkeyPatch) -> None:
    def find_spec(name: str, *args: object) -> None:
        raise ValueError(f"{name}.__spec__ is None")

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert missing_extra(".xhtml") == f"HTML support is not installed; {DOCS_EXTRA}"


def test_the_registry_is_the_one_list_of_formats() -> None:
    from semsearch.documents.formats import type_suffixes

    assert DOCUMENT_SUFFIXES == (".pdf", ".docx", ".html", ".htm", ".xhtml")
    assert len(SUFFIXES) == len(set(SUFFIXES)) and all(s == s.lower() and s.startswith(".") for s in SUFFIXES)
    assert type_suffixes("md") == ("md", "markdown") and type_suffixes(".htm") == ("html", "htm", "xhtml")
    assert type_suffixes("TXT") == ("txt", "text") and type_suffixes("foo") == ("foo",)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for found in FORMATS:  # the README names every suffix semsearch reads
        assert all(suffix in readme for suffix in found.suffixes), found.name

"""Sources: walking folders for text files and decoding their bytes."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from semsearch.errors import SourceNotFoundError
from semsearch.sources import DecodeError, decode, walk

SAMPLE_DOCS = Path(__file__).resolve().parents[1] / "sample_docs"

SIMPLIFIED = "中国茶文化历史悠久，茶叶是中国人日常生活的一部分。我们喜欢喝绿茶和红茶，也喜欢乌龙茶。" * 3
TRADITIONAL = "臺灣的大熊貓與保護：熊貓是中國特有的動物，牠們喜歡吃竹子。" * 5
MIXED = "semsearch 支持中文和 English 混合文本。第二句话！"


def touch(path: Path, text: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- decode ---------------------------------------------------------------------------------


def test_decode_utf8_without_bom() -> None:
    assert decode(MIXED.encode("utf-8")) == (MIXED, "utf-8")


def test_decode_utf8_with_bom_strips_the_bom() -> None:
    text, encoding = decode(codecs.BOM_UTF8 + MIXED.encode("utf-8"))
    assert text == MIXED
    assert encoding == "utf-8-sig"


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_decode_utf16_with_bom(codec: str) -> None:
    bom = codecs.BOM_UTF16_LE if codec == "utf-16-le" else codecs.BOM_UTF16_BE
    text, encoding = decode(bom + MIXED.encode(codec))
    assert text == MIXED
    assert encoding.replace("_", "-").startswith("utf-16")


def test_decode_gbk_simplified_chinese() -> None:
    text, encoding = decode(SIMPLIFIED.encode("gbk"))
    assert text == SIMPLIFIED
    assert encoding in {"gb18030", "gbk"}


def test_decode_gb18030_with_four_byte_characters() -> None:
    # 䶵 and 𠀀 are not in GBK: GB18030 writes them as four-byte sequences
    original = "䶵和𠀀是罕见的汉字。" + SIMPLIFIED
    data = original.encode("gb18030")
    with pytest.raises(UnicodeEncodeError):
        original.encode("gbk")
    assert decode(data) == (original, "gb18030")


@pytest.mark.parametrize("text", ["说明书", "价格：100元", "## 概览", "机器学习", "茶"])
def test_decode_short_gbk_text(text: str) -> None:
    data = text.encode("gbk")
    data.decode("big5")  # the ambiguity: these bytes are valid Big5 too
    assert decode(data) == (text, "gb18030")


@pytest.mark.parametrize("text", ["說明書", "價格：100元", "繁體中文測試。"])
def test_decode_short_big5_text(text: str) -> None:
    data = text.encode("big5")
    data.decode("gb18030")  # the ambiguity: GB18030 reads these bytes too
    assert decode(data) == (text, "big5")


def test_decode_gbk_sample_documents_line_by_line() -> None:
    """Each Chinese line of the sample documents, re-encoded as GBK, decodes back exactly."""
    for path in sorted(SAMPLE_DOCS.rglob("*")):
        if path.suffix not in (".md", ".txt") or "gbk" in path.name:
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if any(ord(c) > 127 for c in line):
                try:
                    data = line.encode("gbk")
                except UnicodeEncodeError:
                    continue
                assert decode(data) == (line, "gb18030"), line


def test_decode_big5_traditional_chinese() -> None:
    assert decode(TRADITIONAL.encode("big5")) == (TRADITIONAL, "big5")


def test_decode_rejects_binary_with_nul_bytes() -> None:
    with pytest.raises(DecodeError, match="binary"):
        decode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))


def test_decode_rejects_bytes_valid_in_no_supported_encoding() -> None:
    data = b"\x80\x81\xff" * 50
    for encoding in ("utf-8", "gb18030", "big5"):
        with pytest.raises(UnicodeDecodeError):
            data.decode(encoding)
    with pytest.raises(DecodeError):
        decode(data)


def test_decode_rejects_utf8_bom_followed_by_invalid_utf8() -> None:
    with pytest.raises(DecodeError, match="byte-order mark"):
        decode(codecs.BOM_UTF8 + b"valid start \xc3\x28 then broken")


def test_decode_sample_gbk_file_as_gb18030() -> None:
    text, encoding = decode((SAMPLE_DOCS / "中国茶文化_gbk.txt").read_bytes())
    assert encoding == "gb18030"
    assert "茶" in text


# -- walk ---------------------------------------------------------------------------------


def test_walk_recurses_and_returns_absolute_sorted_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "docs"
    expected = [
        touch(root / "b.txt"),
        touch(root / "a.md"),
        touch(root / "sub" / "deeper" / "c.rst"),
        touch(root / "sub" / "d.markdown"),
    ]
    monkeypatch.chdir(tmp_path)
    found = walk([Path("docs")])
    assert found.files == sorted(p.resolve() for p in expected)
    assert all(p.is_absolute() for p in found.files)
    assert found.skipped == []


def test_walk_skips_hidden_folders_and_hidden_files(tmp_path: Path) -> None:
    keep = touch(tmp_path / "keep.txt")
    touch(tmp_path / ".git" / "notes.txt")
    touch(tmp_path / "sub" / ".semsearch" / "inner.md")
    touch(tmp_path / ".hidden.txt")
    touch(tmp_path / "sub" / ".also-hidden.md")
    found = walk([tmp_path])
    assert found.files == [keep]
    assert found.skipped == []


def test_walk_skips_excluded_folder(tmp_path: Path) -> None:
    keep = touch(tmp_path / "docs" / "keep.txt")
    touch(tmp_path / "docs" / "index" / "inside.txt")
    found = walk([tmp_path / "docs"], exclude=[tmp_path / "docs" / "index"])
    assert found.files == [keep]


def test_walk_reports_unsupported_types_as_skipped(tmp_path: Path) -> None:
    keep = touch(tmp_path / "keep.txt")
    (tmp_path / "paper.pdf").write_bytes(b"%PDF-1.7")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    touch(tmp_path / "Makefile")
    found = walk([tmp_path])
    assert found.files == [keep]
    reasons = {Path(s.path).name: s.reason for s in found.skipped}
    assert set(reasons) == {"paper.pdf", "image.png", "Makefile"}
    assert ".pdf" in reasons["paper.pdf"] and "type" in reasons["paper.pdf"]
    assert ".png" in reasons["image.png"]
    assert "type" in reasons["Makefile"]


def test_walk_matches_suffixes_case_insensitively(tmp_path: Path) -> None:
    upper = touch(tmp_path / "README.MD")
    mixed = touch(tmp_path / "notes.Txt")
    assert walk([tmp_path]).files == sorted([upper, mixed])


def test_walk_includes_a_file_given_directly(tmp_path: Path) -> None:
    single = touch(tmp_path / "one.txt")
    touch(tmp_path / "other.txt")
    found = walk([single])
    assert found.files == [single]
    assert found.folders == []


def test_walk_reports_a_directly_given_file_of_unsupported_type(tmp_path: Path) -> None:
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.7")
    found = walk([pdf])
    assert found.files == []
    assert [s.path for s in found.skipped] == [str(pdf)]


def test_walk_raises_for_missing_path_naming_it(tmp_path: Path) -> None:
    touch(tmp_path / "exists.txt")
    missing = tmp_path / "no-such-folder"
    with pytest.raises(SourceNotFoundError, match="no-such-folder"):
        walk([tmp_path, missing])


def test_walk_lists_walked_folders(tmp_path: Path) -> None:
    first = tmp_path / "first"
    second = tmp_path / "second"
    touch(first / "a.txt")
    touch(second / "nested" / "b.txt")
    single = touch(tmp_path / "single.md")
    found = walk([first, second, single])
    assert found.folders == [first, second]
    assert found.files == sorted([first / "a.txt", second / "nested" / "b.txt", single])


def test_walk_finds_sample_docs_with_chinese_names() -> None:
    found = walk([SAMPLE_DOCS])
    names = {p.name for p in found.files}
    assert {"中国茶文化_gbk.txt", "大熊猫.md", "长城的历史.md"} <= names
    assert any(p.parent.name == "science" for p in found.files)
    assert found.folders == [SAMPLE_DOCS]


def test_walk_lists_each_file_once_when_paths_overlap(tmp_path: Path) -> None:
    inner = touch(tmp_path / "sub" / "a.txt")
    found = walk([tmp_path, tmp_path / "sub", inner])
    assert found.files == [inner]

"""PDF, DOCX, HTML and Markdown end to end: ingested, searched, cited by page and heading."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import semsearch
from semsearch.cli import app

PAGES = [
    "Giant pandas eat bamboo for most of the day.",
    "The Great Wall was built over many centuries.",
    "Sourdough bread needs a lively starter.",
]


def write_pdf(path: Path) -> None:
    fpdf = pytest.importorskip("fpdf")
    pdf = fpdf.FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in PAGES:
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    pdf.output(str(path))


def write_docx(path: Path) -> None:
    docx = pytest.importorskip("docx")
    document = docx.Document()
    document.add_heading("茶文化", level=1)
    document.add_heading("绿茶", level=2)
    document.add_paragraph("龙井是杭州西湖的名茶，春天采摘。")
    document.add_heading("红茶", level=2)
    document.add_paragraph("祁门红茶香气浓郁，适合加奶。")
    document.save(str(path))


@pytest.fixture
def library(tmp_path: Path) -> Path:
    pytest.importorskip("pypdf")
    pytest.importorskip("bs4")
    root = tmp_path / "library"
    root.mkdir()
    write_pdf(root / "facts.pdf")
    write_docx(root / "tea.docx")
    (root / "page.html").write_text(
        "<html><head><title>t</title><script>var hidden = '不该出现';</script></head><body>"
        "<h1>长城</h1><p>长城是古代的防御工程。</p><h2>明长城</h2><p>明长城东起山海关，西至嘉峪关。</p>"
        "</body></html>",
        encoding="utf-8",
    )
    (root / "notes.md").write_text("# 烹饪\n\n## 红烧肉\n\n五花肉切块，先焯水再炒糖色。\n", encoding="utf-8")
    return root


def test_documents_are_searched_and_cited_by_page_and_heading(tmp_path: Path, tiny_model: Path, library: Path) -> None:
    with semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu") as index:
        report = index.ingest([library])
        assert report.files_added == 4 and not report.skipped
        by_text = {}
        for query in ("bamboo", "centuries", "starter", "龙井", "祁门", "山海关", "防御", "五花肉"):
            (hit,) = index.search(query, k=1, mode="lexical")
            by_text[query] = hit
        assert [by_text[q].page for q in ("bamboo", "centuries", "starter")] == [1, 2, 3]
        assert all(by_text[q].source.endswith("facts.pdf") for q in ("bamboo", "centuries", "starter"))
        assert by_text["龙井"].heading == "茶文化 > 绿茶" and by_text["祁门"].heading == "茶文化 > 红茶"
        assert by_text["山海关"].heading == "长城 > 明长城" and by_text["防御"].heading == "长城"
        assert by_text["五花肉"].heading == "烹饪 > 红烧肉" and by_text["五花肉"].page is None
        assert not index.search("不该出现", k=5, mode="lexical")  # script text is not indexed
        assert [h.source for h in index.search("bamboo", k=5, mode="lexical", where={"type": "pdf"})]
        assert not index.search("bamboo", k=5, mode="lexical", where={"type": "docx"})


def test_without_the_docs_extra_those_files_are_skipped_with_a_note(
    tmp_path: Path, tiny_model: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    missing = {"pypdf", "docx", "bs4"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a))
    result = CliRunner().invoke(
        app, ["ingest", str(library), "--index", str(tmp_path / "kb"), "--model", str(tiny_model), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["files_added"] == 1  # the Markdown file
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"facts.pdf", "tea.docx", "page.html"}
    assert all("pip install 'semsearch[docs]'" in reason for reason in reasons.values())
    assert reasons["facts.pdf"].startswith("PDF support is not installed")


def test_a_damaged_document_is_skipped_and_the_rest_ingested(tmp_path: Path, tiny_model: Path, library: Path) -> None:
    (library / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj <<")
    (library / "broken.docx").write_bytes(b"not a zip file")
    with semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu") as index:
        report = index.ingest([library])
    assert report.files_added == 4
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(reasons) == {"broken.pdf", "broken.docx"}
    assert reasons["broken.pdf"].startswith("not a readable PDF")


def test_ingest_within_roots_never_follows_a_link_out(tmp_path: Path, tiny_model: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "secret"
    root.mkdir()
    outside.mkdir()
    (root / "ok.txt").write_text("允许的内容。", encoding="utf-8")
    (outside / "secret.txt").write_text("机密内容。", encoding="utf-8")
    (root / "link").symlink_to(outside)
    (root / "file-link.txt").symlink_to(outside / "secret.txt")
    with semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu") as index:
        report = index.ingest([root], within=[root])
        assert report.files_added == 1
        assert {Path(s.path).name for s in report.skipped} == {"link", "file-link.txt"}
        assert all("outside" in s.reason for s in report.skipped)
        assert not index.search("机密", k=5, mode="lexical")
        report = index.ingest([outside], within=[root])
        assert report.files_added == 0 and [Path(s.path).name for s in report.skipped] == ["secret"]


@pytest.mark.slow
def test_the_cli_reports_a_damaged_pdf_in_one_line(tmp_path: Path, tiny_model: Path) -> None:
    import subprocess
    import sys

    pytest.importorskip("pypdf")
    folder = tmp_path / "pdfs"
    folder.mkdir()
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj <<")
    (folder / "notes.txt").write_text("正常的文本文件。", encoding="utf-8")
    command = [sys.executable, "-m", "semsearch", "ingest", str(folder), "--index", str(tmp_path / "kb")]
    result = subprocess.run([*command, "--model", str(tiny_model)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"skipped {folder / 'broken.pdf'}: not a readable PDF: ")

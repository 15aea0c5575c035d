"""``semsearch watch`` and ``serve --watch`` as real processes, on real file events."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest
from children import child_environment

import semsearch

pytestmark = pytest.mark.slow  # processes of their own, each loading the model

SEMSEARCH = Path(sys.executable).parent / "semsearch"
SAMPLE_DOCS = Path(__file__).resolve().parents[2] / "sample_docs"


class Lines:
    """The lines a stream of a process writes, read in a thread so a wait can time out."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def quiet(self, seconds: float) -> None:
        """Wait until no line has come for ``seconds``."""
        while True:
            try:
                self.seen.append(self.lines.get(timeout=seconds))
            except queue.Empty:
                return

    def wait_for(self, check, timeout: float = 120) -> str:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if check(line):
                return line
        raise AssertionError(f"no such line within {timeout} s; saw: {self.seen}")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    shutil.copytree(SAMPLE_DOCS, tmp_path / "docs")
    return tmp_path


def start(work: Path, *args: str | Path) -> tuple[subprocess.Popen[str], Lines, Lines]:
    if not SEMSEARCH.exists():
        pytest.skip("the semsearch console script is not installed")
    environment = child_environment()
    process = subprocess.Popen(
        [str(SEMSEARCH), *map(str, args)],
        cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**environment, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    return process, Lines(process.stdout), Lines(process.stderr)


def end(process: subprocess.Popen[str]) -> int:
    """Ctrl-C, as a user stops it; killed if it does not end."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError("Ctrl-C did not stop it") from None


def test_watch_follows_the_folder_and_ctrl_c_stops_it_cleanly(work: Path, tiny_model: Path) -> None:
    process, out, err = start(work, "watch", "docs", "--model", tiny_model, "--json", "--debounce", "100")
    try:
        first = json.loads(out.wait_for(lambda line: line.startswith("{")))
        assert first["changes"] == 0 and first["report"]["files_added"] == 12 and first["error"] is None
        err.wait_for(lambda line: line == "Watching docs (Ctrl-C to stop)")

        (work / "docs" / "乒乓.txt").write_text("乒乓球是中国的国球。", encoding="utf-8")
        added = json.loads(out.wait_for(lambda line: line.startswith("{")))
        assert added["changes"] >= 1 and added["report"]["files_added"] == 1
        with semsearch.open_index(work / ".semsearch", create=False, device="cpu") as index:  # read beside it
            assert Path(index.search("乒乓球", k=1, mode="lexical")[0].source).name == "乒乓.txt"

        (work / "docs" / "大熊猫.md").unlink()
        removed = json.loads(out.wait_for(lambda line: line.startswith("{")))
        assert removed["report"]["files_removed"] == 1
        out.quiet(2.0)  # no round under way: Ctrl-C then stops it cleanly (in one, exit 130)
    finally:
        code = end(process)
    assert code == 0, err.seen
    err.wait_for(lambda line: line == "Stopped watching", timeout=10)
    assert not any("Traceback" in line or "KeyboardInterrupt" in line for line in err.seen)
    with semsearch.open_index(work / ".semsearch", create=False, device="cpu") as index:
        assert index.info().documents == 12 and all(check.ok for check in index.check())


def test_watch_refuses_a_path_that_does_not_exist(work: Path, tiny_model: Path) -> None:
    process, out, err = start(work, "watch", "nowhere", "--model", tiny_model)
    assert process.wait(timeout=120) == 1
    line = err.wait_for(lambda line: line.startswith("Error:"), timeout=10)
    assert "nowhere" in line


def test_serve_watch_keeps_the_served_index_in_step(work: Path, tiny_model: Path) -> None:
    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    from servers import start as start_server
    from servers import stop

    server = start_server(
        work / "kb", work / "docs", work / "server.log", "--model", str(tiny_model), "--watch", str(work / "docs"),
        "--debounce", "100",
    )  # fmt: skip
    try:

        def found(query: str) -> list[str]:
            body = {"query": query, "k": 3, "mode": "lexical"}
            answer = httpx.post(server.url + "/search", json=body, timeout=60)
            if answer.status_code == 404:  # no index until the first round has committed
                return []
            assert answer.status_code == 200, answer.text
            return [Path(hit["source"]).name for hit in answer.json()["results"][0]["hits"]]

        deadline = time.monotonic() + 120
        while "长城的历史.md" not in found("长城") and time.monotonic() < deadline:
            time.sleep(0.2)  # the first round ingests the folder while the server answers
        assert "长城的历史.md" in found("长城")
        (work / "docs" / "乒乓.txt").write_text("乒乓球是中国的国球。", encoding="utf-8")
        while "乒乓.txt" not in found("乒乓球") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert found("乒乓球")[0] == "乒乓.txt"
        state = httpx.get(server.url + "/ingest", timeout=30).json()
        assert state["state"] == "done" and state["report"]["files_added"] == 1
    finally:
        stop(server)
    assert server.process.returncode == 130  # as serve ends on Ctrl-C, watching or not
    log = server.log.read_text()
    assert "watch: 1 change: 1 added, 0 updated, 12 unchanged" in log and "Traceback" not in log


def test_watch_goes_on_past_a_name_that_is_not_utf8(work: Path, tiny_model: Path) -> None:
    process, out, err = start(work, "watch", "docs", "--model", tiny_model, "--json", "--debounce", "100")
    docs = work / "docs"
    try:
        assert json.loads(out.wait_for(lambda line: line.startswith("{")))["report"]["files_added"] == 12
        with open(os.fsencode(docs) + b"/new\xffname.txt", "w", encoding="utf-8") as bad:
            bad.write("名字不是UTF-8的文件，讲乒乓球。")
        (docs / "after.txt").write_text("坏名字之后写下的文件，讲羽毛球。", encoding="utf-8")
        restarted = json.loads(out.wait_for(lambda line: line.startswith("{") and '"note": null' not in line))
        assert "started again" in restarted["note"] and restarted["error"] is None
        deadline = time.monotonic() + 120
        while True:
            with semsearch.open_index(work / ".semsearch", create=False, device="cpu") as index:
                names = {os.fsencode(Path(path).name) for path in index.handle.documents()}
            if {b"new\xffname.txt", b"after.txt"} <= names or time.monotonic() > deadline:
                break
            out.quiet(0.5)
        assert {b"new\xffname.txt", b"after.txt"} <= names and process.poll() is None
        out.quiet(2.0)
    finally:
        code = end(process)
    assert code == 0, err.seen
    err.wait_for(lambda line: line == "Stopped watching", timeout=10)
    assert not any("Traceback" in line or "Error" in line for line in err.seen)


def test_watch_says_so_and_exits_1_when_its_watcher_cannot_start_again(
    work: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import semsearch.index.watcher as watcher
    from semsearch.cli import app

    def failing(*paths: object, **options: object):  # type: ignore[no-untyped-def]
        raise OSError(28, "OS file watch limit reached")
        yield set()

    monkeypatch.setattr(watcher, "RESTART_PAUSE_S", 0.01)
    monkeypatch.setattr(pytest.importorskip("watchfiles"), "watch", failing)
    index = work / "kb"
    result = CliRunner().invoke(app, ["watch", str(work / "docs"), "--index", str(index), "--model", str(tiny_model)])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "failed to start 6 times in a row" in errors[0] and "watch limit" in errors[0]
    assert "Traceback" not in result.output

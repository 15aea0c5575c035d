"""``watch``: an index kept in step with real file events (inotify through watchfiles)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import semsearch
from semsearch.errors import NothingToIngestError, SourceNotFoundError
from semsearch.index.watching import Relevant, Round, watch

pytest.importorskip("watchfiles")
pytestmark = pytest.mark.slow  # real file events, and waits that show no round came

QUIET = 2.0  # seconds with no round, to say that none came (rounds come within 0.1 s + a round)


class Watching:
    """``watch`` in a thread of its own, its rounds handed over one by one."""

    def __init__(self, index: semsearch.Index, paths: list[Path], **options: Any) -> None:
        self.rounds: queue.Queue[Round | BaseException] = queue.Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(index, paths), kwargs=options, daemon=True)
        self.thread.start()

    def _run(self, index: semsearch.Index, paths: list[Path], **options: Any) -> None:
        try:
            for done in watch(index, paths, debounce_ms=100, stop=self.stop, **options):
                self.rounds.put(done)
        except BaseException as exc:
            self.rounds.put(exc)

    def next(self, timeout: float = 120) -> Round:
        done = self.rounds.get(timeout=timeout)
        if isinstance(done, BaseException):
            raise done
        return done

    def none_within(self, seconds: float = QUIET) -> bool:
        try:
            self.rounds.get(timeout=seconds)
        except queue.Empty:
            return True
        return False

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the watch did not stop when asked"


@pytest.fixture
def index(tmp_path: Path, tiny_model: Path) -> Iterator[semsearch.Index]:
    with semsearch.open_index(tmp_path / "kb", model=tiny_model, device="cpu") as opened:
        yield opened


@pytest.fixture
def watching(index: semsearch.Index, docs: Path) -> Iterator[Watching]:
    running = Watching(index, [docs])
    first = running.next()
    assert first.changes == 0 and first.report is not None and first.report.files_added == 12
    yield running
    running.close()


def sources(index: semsearch.Index, query: str, k: int = 20) -> set[str]:
    return {Path(hit.source).name for hit in index.search(query, k=k, mode="lexical")}


def test_files_created_changed_renamed_and_deleted_are_followed(
    watching: Watching, index: semsearch.Index, docs: Path
) -> None:
    (docs / "新文件.txt").write_text("乒乓球是中国的国球。", encoding="utf-8")
    report = watching.next().report
    assert report is not None and (report.files_added, report.files_unchanged) == (1, 12)
    assert "新文件.txt" in sources(index, "乒乓球")

    (docs / "新文件.txt").write_text("羽毛球也很受欢迎。", encoding="utf-8")
    report = watching.next().report
    assert report is not None and report.files_updated == 1
    assert "新文件.txt" in sources(index, "羽毛球") and "新文件.txt" not in sources(index, "乒乓球")

    (docs / "新文件.txt").rename(docs / "改名.txt")
    report = watching.next().report
    assert report is not None and (report.files_added, report.files_removed, report.chunks_embedded) == (1, 1, 0)
    assert "改名.txt" in sources(index, "羽毛球") and "新文件.txt" not in sources(index, "羽毛球")

    (docs / "改名.txt").unlink()
    report = watching.next().report
    assert report is not None and report.files_removed == 1 and index.info().documents == 12


def test_a_burst_of_saves_is_one_round(watching: Watching, index: semsearch.Index, docs: Path) -> None:
    for n in range(30):  # 30 saves of 10 files, well within one debounce period
        (docs / f"burst{n % 10}.md").write_text(f"# 第{n}次\n\n保存的内容 {n}。", encoding="utf-8")
    done = watching.next()
    assert done.report is not None and done.report.files_added == 10 and done.changes >= 10
    assert watching.none_within()
    assert index.info().documents == 22


def test_ignored_hidden_and_unread_files_start_nothing_or_add_nothing(
    watching: Watching, index: semsearch.Index, docs: Path
) -> None:
    (docs / ".hidden").mkdir()
    (docs / ".hidden" / "secret.txt").write_text("隐藏的文件。", encoding="utf-8")
    (docs / "picture.png").write_bytes(b"\x89PNG")
    assert watching.none_within()  # neither can change what an ingest finds

    (docs / ".gitignore").write_text("drafts/\n", encoding="utf-8")
    (docs / "drafts").mkdir()
    (docs / "drafts" / "draft.txt").write_text("草稿。", encoding="utf-8")
    done = watching.next()
    assert done.report is not None and done.report.files_added == 0 and done.report.files_unchanged == 12
    assert index.info().documents == 12


def test_an_index_inside_the_watched_folder_does_not_watch_itself(tmp_path: Path, tiny_model: Path, docs: Path) -> None:
    with semsearch.open_index(docs / "kb", model=tiny_model, device="cpu") as index:
        running = Watching(index, [docs])
        try:
            assert running.next().report.files_added == 12  # type: ignore[union-attr]
            (docs / "one.txt").write_text("一个新文件。", encoding="utf-8")
            assert running.next().report.files_added == 1  # type: ignore[union-attr]
            assert running.none_within()  # its own commits started no round
        finally:
            running.close()


def test_a_change_during_a_round_starts_the_next(
    index: semsearch.Index, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest = index.ingest
    calls = []

    def ingest_and_write(*args: Any, **kwargs: Any) -> semsearch.IngestReport:
        calls.append(args)
        if len(calls) == 2:  # during the second round, after its walk
            report = ingest(*args, **kwargs)
            (docs / "during.txt").write_text("一轮之中写下的文件。", encoding="utf-8")
            return report
        return ingest(*args, **kwargs)

    monkeypatch.setattr(index, "ingest", ingest_and_write)
    running = Watching(index, [docs])
    try:
        assert running.next().report.files_added == 12  # type: ignore[union-attr]
        (docs / "before.txt").write_text("之前的文件。", encoding="utf-8")
        assert running.next().report.files_added == 1  # type: ignore[union-attr]
        third = running.next()
        assert third.changes >= 1 and third.report is not None and third.report.files_added == 1
        assert "during.txt" in sources(index, "一轮之中")
    finally:
        running.close()


def test_a_watched_file_that_goes_is_removed_and_an_empty_folder_waits(
    index: semsearch.Index, tmp_path: Path, docs: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    single = docs / "大熊猫.md"
    running = Watching(index, [empty, single])
    try:
        first = running.next()
        assert first.report is not None and first.report.files_added == 1
        (empty / "first.txt").write_text("空文件夹里的第一个文件。", encoding="utf-8")
        assert running.next().report.files_added == 1  # type: ignore[union-attr]
        single.unlink()
        done = running.next()
        assert done.report is not None and done.report.files_removed == 1
        assert index.info().documents == 1
    finally:
        running.close()


def test_nothing_to_ingest_yet_is_a_round_that_waits(index: semsearch.Index, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    running = Watching(index, [empty])
    try:
        first = running.next()
        assert first.report is None and isinstance(first.error, NothingToIngestError)
        (empty / "at last.md").write_text("# 终于\n\n有了文件。", encoding="utf-8")
        assert running.next().report.files_added == 1  # type: ignore[union-attr]
    finally:
        running.close()


def test_a_path_that_does_not_exist_is_refused(index: semsearch.Index, tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="nowhere"):
        next(watch(index, [tmp_path / "nowhere"]))


def test_which_events_can_matter(tmp_path: Path) -> None:
    relevant = Relevant([tmp_path / "docs"], [tmp_path / "docs" / "kb"])
    base = str(tmp_path / "docs")
    assert relevant(None, f"{base}/a.md") and relevant(None, f"{base}/deep/b.PDF")
    assert relevant(None, f"{base}/sub/.gitignore") and relevant(None, f"{base}/a folder")
    assert not relevant(None, f"{base}/kb/data.sqlite") and not relevant(None, f"{base}/kb/CURRENT")
    assert not relevant(None, f"{base}/.git/index") and not relevant(None, f"{base}/.git/info.txt")
    assert not relevant(None, f"{base}/.notes.txt") and not relevant(None, f"{base}/photo.jpg")

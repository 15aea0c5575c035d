"""``watch``: an index kept in step with real file events (inotify through watchfiles)."""

from __future__ import annotations

import os
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import semsearch
from semsearch.errors import NothingToIngestError, SourceNotFoundError
from semsearch.index.watcher import Relevant, WatchStatus, rounds
from semsearch.index.watching import Round, watch

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


def test_a_watched_path_gone_with_nothing_indexed_there_removes_nothing_and_the_watch_goes_on(
    index: semsearch.Index, tmp_path: Path
) -> None:
    # found by the model-based test: the round's remove raised IndexNotFoundError (no index yet)
    # or SourceNotFoundError (nothing indexed there), and the first ended the watch
    empty, single = tmp_path / "empty", tmp_path / "one.log"
    empty.mkdir()
    single.write_text("not a type semsearch reads", encoding="utf-8")
    running = Watching(index, [empty, single])
    try:
        assert isinstance(running.next().error, NothingToIngestError)
        single.unlink()  # gone, and nothing of it indexed, in an index not made yet
        gone = running.next()
        assert gone.error is None or isinstance(gone.error, NothingToIngestError), gone.error
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


def documents(index: semsearch.Index) -> set[bytes]:
    """The indexed file names, as the bytes the file system holds, read by a handle of its own
    (the watch's is busy in its thread)."""
    with semsearch.open_index(index.folder, create=False, device="cpu") as reader:
        return {os.fsencode(Path(path).name) for path in reader.handle.documents()}


def until(check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.05)


def test_a_name_that_is_not_utf8_restarts_the_watcher_and_nothing_is_missed(index: semsearch.Index, docs: Path) -> None:
    status = WatchStatus([docs])
    running = Watching(index, [docs], status=status)
    try:
        assert running.next().report.files_added == 12  # type: ignore[union-attr]
        with open(os.fsencode(docs) + b"/new\xffname.txt", "w", encoding="utf-8") as bad:
            bad.write("名字不是UTF-8的文件，讲乒乓球。")
        (docs / "after.txt").write_text("坏名字之后写下的文件，讲羽毛球。", encoding="utf-8")  # while it restarts
        restarted = running.next()
        assert restarted.note is not None and "started again" in restarted.note and "decode" in restarted.note
        until(lambda: {b"new\xffname.txt", b"after.txt"} <= documents(index))
        (docs / "later.txt").write_text("再后来的文件，讲网球。", encoding="utf-8")
        until(lambda: b"later.txt" in documents(index))  # the new watcher takes events
        assert status.snapshot()["state"] == "watching" and status.snapshot()["restarts"] >= 1
        assert len(documents(index)) == 15
    finally:
        running.close()


def test_a_folder_whose_name_is_not_utf8_makes_the_watch_poll(index: semsearch.Index, docs: Path) -> None:
    status = WatchStatus([docs])
    running = Watching(index, [docs], status=status)
    try:
        assert running.next().report.files_added == 12  # type: ignore[union-attr]
        folder = os.fsencode(docs) + b"/sub\xfe"
        os.mkdir(folder)  # inotify's watcher now fails at every start
        with open(folder + b"/inside.txt", "w", encoding="utf-8") as inside:
            inside.write("坏名字文件夹里的文件。")
        until(lambda: b"inside.txt" in documents(index))
        until(lambda: status.snapshot()["events"] == "polling")
        (docs / "polled.txt").write_text("轮询发现的文件。", encoding="utf-8")
        until(lambda: b"polled.txt" in documents(index))
        state = status.snapshot()
        assert state["state"] == "watching" and "decode" in state["polling_because"]
    finally:
        running.close()


def test_a_watched_folder_deleted_is_degraded_until_it_is_back(index: semsearch.Index, docs: Path) -> None:
    status = WatchStatus([docs])
    running = Watching(index, [docs], status=status)
    try:
        assert running.next().report.files_added == 12  # type: ignore[union-attr]
        shutil.rmtree(docs)
        until(lambda: documents(index) == set() and status.snapshot()["state"] == "degraded")
        state = status.snapshot()
        assert state["state"] == "degraded" and state["summary"] == "a watched path is gone"
        assert str(docs) in state["problem"] and state["gone"] == [str(docs)]
        docs.mkdir()
        (docs / "back.txt").write_text("回来的文件夹里的新文件。", encoding="utf-8")
        until(lambda: documents(index) == {b"back.txt"})
        until(lambda: status.snapshot()["state"] == "watching")
        (docs / "again.txt").write_text("又一个新文件。", encoding="utf-8")
        until(lambda: b"again.txt" in documents(index))  # watched anew, not only rescanned once
    finally:
        running.close()


class FakeWatchfiles:
    """watchfiles with a watcher that ``fails`` as told: each start runs the next of ``plans``
    (the number of quiet answers it gives, then raises; None: quiet until stopped), recording
    the watch's state as each one starts."""

    def __init__(self, status: WatchStatus, plans: list[int | None]) -> None:
        self.status, self.plans, self.states = status, plans, []

    def watch(self, *paths: Path, stop_event: threading.Event | None = None, **options: Any) -> Iterator[set[Any]]:
        self.states.append((self.status.snapshot()["state"], options["force_polling"]))
        plan = self.plans.pop(0) if self.plans else 0
        answered = 0
        while plan is None or answered < plan:
            if stop_event is not None and stop_event.wait(0.01):
                return
            answered += 1
            yield set()
        raise RuntimeError('Unable to decode path "/x/bad\\xFF" to string')


def test_the_watch_is_degraded_only_while_its_watcher_is_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    status = WatchStatus([tmp_path])
    fake = FakeWatchfiles(status, [3, None])  # up, fails after a while; up again for good
    monkeypatch.setitem(sys.modules, "watchfiles", fake)
    stop = threading.Event()
    bursts = []
    for burst in rounds([tmp_path], stop=stop, status=status):
        bursts.append(burst)
        if len(bursts) == 2:
            assert status.snapshot()["state"] == "watching" and status.snapshot()["restarts"] == 1
            stop.set()
    assert [b.changes for b in bursts] == [0, 0] and bursts[0].note is None
    assert bursts[1].note is not None and "decode" in bursts[1].note
    # the second watcher started while the first was down, with the file system's events still
    assert fake.states == [("starting", False), ("degraded", False)]


def test_a_watcher_that_never_comes_up_polls_then_gives_up_with_watch_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import semsearch.index.watcher as watcher

    monkeypatch.setattr(watcher, "RESTART_PAUSE_S", 0.01)
    status = WatchStatus([tmp_path])
    fake = FakeWatchfiles(status, [])  # every start fails at once
    monkeypatch.setitem(sys.modules, "watchfiles", fake)
    with pytest.raises(semsearch.WatchError, match="failed to start 6 times in a row, last with: Unable to decode"):
        next(rounds([tmp_path], status=status))
    assert [polling for _, polling in fake.states] == [False] + [True] * (watcher.RESTART_TRIES - 1)
    state = status.snapshot()
    assert state["state"] == "stopped" and state["summary"] == "the watcher has stopped"
    assert "failed to start" in state["problem"]

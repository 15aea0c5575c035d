"""Crashes, interruptions and concurrent use, with real ``semsearch`` subprocesses.

The kill loop here is short enough for CI; scripts/crash_soak.py runs the long one.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from faults import (
    SEMSEARCH,
    check_after_kill,
    check_final,
    environment,
    generation,
    ingest_command,
    kill_loop,
    make_corpus,
    run_and_kill,
    state_of,
)

import semsearch
from semsearch.storage.locking import holder_pid, is_locked

pytestmark = [
    pytest.mark.skipif(not SEMSEARCH.exists(), reason="the semsearch console script is not installed"),
    pytest.mark.slow,  # kill loops: real processes, killed and checked again and again
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    make_corpus(folder, files=60, chars=3000)
    return folder


def fresh_index(corpus: Path, folder: Path, model: Path) -> Path:
    with semsearch.open_index(folder, model=str(model), device="cpu") as index:
        index.ingest([corpus])
    return folder


def test_kill_9_at_random_moments_loses_and_corrupts_nothing(corpus: Path, tmp_path: Path, tiny_model: Path) -> None:
    index = tmp_path / "index"
    rounds = kill_loop(corpus, index, tiny_model, kills=10, max_delay=12.0, seed=3)
    assert [r.problems for r in rounds] == [[]] * len(rounds)
    assert any(r.mid_ingest for r in rounds)  # a kill landed between commits, not only before or after
    finish = subprocess.run(ingest_command(corpus, index, None), capture_output=True, text=True, env=environment())
    assert finish.returncode == 0, finish.stderr
    assert check_final(index, corpus, fresh_index(corpus, tmp_path / "reference", tiny_model)) == []


def test_a_kill_before_the_first_commit_leaves_no_index_and_every_command_says_so(
    corpus: Path, tmp_path: Path, tiny_model: Path
) -> None:
    index = tmp_path / "index"
    code = run_and_kill(ingest_command(corpus, index, tiny_model), 0.0, index)  # as soon as it holds the lock
    assert code == -9 and generation(index)[0] <= 0 and state_of(index) == "no index"
    assert check_after_kill(index) == []  # info: "No index at ..."
    query = run_cli("query", "宝玉", "--index", index)
    assert query.returncode == 1 and query.stderr.startswith("Error: No index at"), query.stderr
    finish = subprocess.run(
        ingest_command(corpus, index, tiny_model), capture_output=True, text=True, env=environment()
    )
    assert finish.returncode == 0, finish.stderr
    assert check_final(index, corpus, fresh_index(corpus, tmp_path / "reference", tiny_model)) == []


def start_ingest(corpus: Path, index: Path, model: Path, *extra: str) -> subprocess.Popen[str]:
    command = [*ingest_command(corpus, index, model), *extra]
    command.remove("--wait")
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
        preexec_fn=default_sigint,  # a test run started in the background would pass Ctrl-C on ignored
    )


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_chunks(index: Path, process: subprocess.Popen[str], timeout: float = 120) -> None:
    """Until the running ingest has committed a first batch."""
    from faults import generation

    deadline = time.monotonic() + timeout
    while generation(index)[1] == 0:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_ctrl_c_stops_at_a_batch_keeps_the_work_and_the_next_run_resumes(tmp_path: Path, tiny_model: Path) -> None:
    # enough work (about 4,000 chunks) that the stop lands well before the end on a fast machine
    corpus = tmp_path / "corpus"
    make_corpus(corpus, files=250, chars=3000)
    index = tmp_path / "index"
    process = start_ingest(corpus, index, tiny_model, "--json")
    wait_for_chunks(index, process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Interrupted:" in err and "run the same command again" in err and "Traceback" not in err
    stopped = json.loads(out)
    assert 0 < stopped["chunks_total"] < 3000
    assert stopped["chunks_total"] + stopped["chunks_staged"] == stopped["chunks_embedded"]
    with semsearch.open_index(index, create=False) as opened:
        assert failed(opened.check()) == {}  # the vector file was saved at the stop
    again = subprocess.run(
        [*ingest_command(corpus, index, None), "--json"], capture_output=True, text=True, env=environment()
    )
    resumed = json.loads(again.stdout)
    assert resumed["files_unchanged"] == stopped["files_added"]  # committed work is not embedded again
    assert resumed["chunks_resumed"] == stopped["chunks_staged"]
    assert resumed["chunks_embedded"] + stopped["chunks_embedded"] == resumed["chunks_total"]


def failed(checks: list[semsearch.Check]) -> dict[str, str]:
    return {c.name: c.detail for c in checks if not c.ok}


def writing(index: Path, writer: subprocess.Popen[str]) -> bool:
    """Whether ``writer`` holds the index's writer lock now."""
    return writer.poll() is None and is_locked(index) and holder_pid(index) == writer.pid


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SEMSEARCH), *map(str, args)], capture_output=True, text=True, env=environment())


def test_queries_during_an_ingest_see_committed_states_and_a_second_writer_is_refused(
    corpus: Path, tmp_path: Path, tiny_model: Path
) -> None:
    index = fresh_index(corpus, tmp_path / "index", tiny_model)
    with semsearch.open_index(index, create=False) as reader:
        before = len(reader.search("宝玉", k=10_000))
        for path in sorted(corpus.glob("*.txt"))[:40]:  # new content, the same chunk boundaries
            path.write_text("新" + path.read_text(encoding="utf-8")[1:], encoding="utf-8")
        writer = start_ingest(corpus, index, tiny_model)
        counts, refusals = set(), 0
        while writer.poll() is None:
            hits = reader.search("宝玉", k=10_000)  # one long-lived reader, as a RAG server has
            assert len({h.chunk_id for h in hits}) == len(hits)
            counts.add(len(hits))
            if writing(index, writer):
                second = run_cli("repair", "--index", index)
                if writing(index, writer):  # it held the lock all along: the repair must have been refused
                    assert second.returncode == 1 and "is being written by process" in second.stderr, second.stderr
                    assert "--wait" in second.stderr and "Traceback" not in second.stderr
                    refusals += 1
        assert writer.wait() == 0, writer.communicate()
        # every state a query saw had each file whole (old or new chunks, never both or neither)
        assert len(reader.search("宝玉", k=10_000)) == before
        assert failed(reader.check()) == {}
    assert refusals and counts == {before}


def test_wait_waits_for_the_running_writer(corpus: Path, tmp_path: Path, tiny_model: Path) -> None:
    index = tmp_path / "index"
    writer = start_ingest(corpus, index, tiny_model)
    wait_for_chunks(index, writer)
    waited = run_cli("remove", corpus / "part0001.txt", "--index", index, "--wait")
    assert waited.returncode == 0, waited.stderr
    assert writer.wait() == 0
    with semsearch.open_index(index, create=False) as opened:
        assert opened.info().documents == 59  # the remove came after the whole ingest, not in the middle
        assert failed(opened.check()) == {}


def staged_count(index: Path) -> int:
    try:
        with sqlite3.connect(f"{(index / 'semsearch.db').as_uri()}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT count(*) FROM staged").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_kill_9_in_a_large_file_then_the_rerun_embeds_only_the_rest(tmp_path: Path, tiny_model: Path) -> None:
    corpus = tmp_path / "corpus"
    make_corpus(corpus, files=1, chars=40_000)  # about 2,600 chunks of 16 tokens: one big file
    index = tmp_path / "index"
    command = [*ingest_command(corpus, index, tiny_model), "--chunk-tokens", "16", "--overlap-tokens", "0"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment())
    try:
        deadline = time.monotonic() + 120
        while staged_count(index) < 300:  # past the first commit, well before the file's end
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        process.kill()
        process.communicate()
    staged = staged_count(index)
    assert generation(index)[1] == 0  # nothing published: the file is not in the index yet
    with semsearch.open_index(index, device="cpu", create=False) as opened:
        assert opened.search("宝玉", mode="lexical") == []  # the staged chunks are nobody's hits
        encoder = opened.encoder
        counted: list[int] = []
        encode = encoder.encode_tokenized
        encoder.encode_tokenized = lambda inputs, **kw: counted.append(len(inputs)) or encode(inputs, **kw)
        report = opened.ingest([corpus])
        total = report.chunks_total
        assert 0 < staged < total
        assert sum(counted) == report.chunks_embedded == total - staged  # only the rest was embedded
        assert report.chunks_resumed == staged and report.files_added == 1
        assert opened.handle.store.staged_count() == 0
        rows = opened.handle.store.chunks(opened.handle.store.chunk_ids().tolist())
        texts = [rows[i].text for i in sorted(rows)]
        stored = np.concatenate([m for _, m in opened.handle.store.iter_vectors(encoder.dimension)])
        assert np.allclose(stored, encode(encoder.tokenize(texts)), atol=1e-5)  # staged vectors are the right ones
        assert failed(opened.check()) == {}

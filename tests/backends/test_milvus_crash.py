"""kill -9 of ``semsearch ingest`` into Milvus Lite at random moments: after each kill a reader
sees a sound index (every current document whole, no passage twice) or none at all; a rerun
converges to the corpus exactly, ``info --check`` passes, and ``repair`` leaves no row of a
version that is not current. At least five kills a run (fewer than the local loop's ten: each
round starts the Milvus engine)."""

from __future__ import annotations

import hashlib
import random
import subprocess
import time
from pathlib import Path

import pytest
from conftest import end_servers

import semsearch

pytest.importorskip("milvus_lite")
pytest.importorskip("pymilvus")
pytestmark = pytest.mark.slow

from faults import SEMSEARCH, environment, make_corpus, mutate  # noqa: E402

from semsearch.index import milvus_upkeep  # noqa: E402


def reader_problems(where: str) -> tuple[int, list[str]]:
    """How many documents a reader finds after a kill, and what is wrong with what it sees."""
    try:
        index = semsearch.open_index(where, create=False, device="cpu")
    except semsearch.IndexNotFoundError:
        return 0, []  # killed before the first commit: no index, and that is what every command says
    with index:
        hits = index.search("宝玉", k=50, mode="hybrid")
        passages = [(h.source, h.start) for h in hits]
        problems = [] if len(set(passages)) == len(passages) else ["a passage appears twice"]
        problems += [f"{c.name}: {c.detail}" for c in index.check() if not c.ok]
        return len(index.handle.documents()), problems


def test_kill_9_at_random_moments_then_a_rerun_converges(tmp_path: Path, tiny_model: Path) -> None:
    corpus, where = tmp_path / "corpus", f"milvus-lite:{tmp_path / 'index.db'}"
    make_corpus(corpus, files=80, chars=2_000)  # about 800 chunks: an ingest commits three times or more
    command = [str(SEMSEARCH), "ingest", str(corpus), "--index", where, "--model", str(tiny_model), "--device", "cpu"]
    rng = random.Random(11)
    kills, log, partial, finished = 0, [], 0, False
    for number in range(14):
        if kills >= 6:
            break
        if finished:  # a whole ingest: change half the corpus, so the next one commits several times
            for path in rng.sample(sorted(corpus.glob("*.txt")), 40):
                path.write_text(path.read_text(encoding="utf-8") + f"补记{number}。", encoding="utf-8")
        elif number:
            log.append(", ".join(mutate(corpus, rng) for _ in range(3)))
        delay = rng.uniform(4.0, 20.0)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment())
        try:
            process.wait(timeout=delay)
            finished = True
        except subprocess.TimeoutExpired:
            finished = False
            process.kill()
            process.wait()
            kills += 1
        end_servers(tmp_path, wait=15.0)  # a killed process's server ends by itself within seconds
        documents, problems = reader_problems(where)
        files = len(list(corpus.glob("*.txt")))
        partial += process.returncode == -9 and documents > 0
        what = f"{documents} of {files} documents"
        log.append(f"round {number}: {delay:.1f} s, rc {process.returncode}, {what}: {'; '.join(problems) or 'ok'}")
        assert problems == [], "\n".join(log)
    assert kills >= 5 and partial >= 2, "\n".join(log)  # at least two kills landed after a commit
    finish = subprocess.run(command, capture_output=True, text=True, env=environment(), timeout=600)
    assert finish.returncode == 0, finish.stderr
    check = subprocess.run([str(SEMSEARCH), "info", "--check", "--index", where], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with semsearch.open_index(where, create=False, device="cpu") as index:
        stored = {path: d.content_hash for path, d in index.handle.documents().items()}
        on_disk = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in corpus.glob("*.txt")}
        assert stored == on_disk
        chunks = sorted((c.text, c.start) for item in index.handle.export(sorted(stored)) for c in item.chunks)
        assert all(c.ok for c in index.repair())
        survey = milvus_upkeep.survey(index.handle._require())
        assert (survey.orphans, survey.superseded, survey.repeated, survey.broken) == ([], [], [], [])
    with semsearch.open_index(tmp_path / "fresh", str(tiny_model), device="cpu") as fresh:
        fresh.ingest([corpus])
        expected = sorted((c.text, c.start) for item in fresh.handle.export(sorted(stored)) for c in item.chunks)
    assert chunks == expected
    started = time.monotonic()
    assert end_servers(tmp_path) == [], f"a server outlived its index ({time.monotonic() - started:.1f} s)"

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
from lite_servers import end_servers

import semsearch

pytest.importorskip("milvus_lite")
pytest.importorskip("pymilvus")
pytestmark = pytest.mark.slow

from faults import SEMSEARCH, environment, make_corpus, mutate  # noqa: E402

from semsearch.index import milvus_upkeep  # noqa: E402


def after_kill(where: str, edited: list[Path]) -> tuple[int, list[str]]:
    """How many of the ``edited`` files a reader finds published in their new content after a
    kill, and what is wrong with what it sees: every current document whole, no passage twice."""
    try:
        index = semsearch.open_index(where, create=False, device="cpu")
    except semsearch.IndexNotFoundError:
        return 0, []  # killed before the first commit: no index, and that is what every command says
    with index:
        hits = index.search("宝玉", k=50, mode="hybrid")
        passages = [(h.source, h.start) for h in hits]
        problems = [] if len(set(passages)) == len(passages) else ["a passage appears twice"]
        problems += [f"{c.name}: {c.detail}" for c in index.check() if not c.ok]
        stored = {path: d.content_hash for path, d in index.handle.documents().items()}
    published = sum(1 for p in edited if p.exists() and stored.get(str(p)) == digest(p))
    return published, problems


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_kill_9_at_random_moments_then_a_rerun_converges(tmp_path: Path, tiny_model: Path) -> None:
    corpus, where = tmp_path / "corpus", f"milvus-lite:{tmp_path / 'index.db'}"
    make_corpus(corpus, files=60, chars=2_000)
    command = [str(SEMSEARCH), "ingest", str(corpus), "--index", where, "--model", str(tiny_model), "--device", "cpu"]
    started = time.monotonic()
    first = subprocess.run(command, capture_output=True, text=True, env=environment(), timeout=600)
    assert first.returncode == 0, first.stderr
    took = time.monotonic() - started  # a whole ingest of the corpus, on this machine, now
    rng = random.Random(11)
    kills, between, log = 0, 0, []
    for number in range(20):
        if kills >= 5 and between >= 1:
            break
        # change half the corpus (some 300 chunks, committed in two batches or more), and a few files
        edited = rng.sample(sorted(corpus.glob("*.txt")), 30)
        for path in edited:
            path.write_text(path.read_text(encoding="utf-8") + f"补记{number}。" * 400, encoding="utf-8")
        log.append(", ".join(mutate(corpus, rng) for _ in range(2)))
        # a moment within the run: ``took`` follows the last run that finished, so a machine
        # that speeds up or slows down (CI beside other work) still sees most runs killed
        delay = rng.uniform(0.2, 0.9) * took
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment())
        begun = time.monotonic()
        try:
            process.wait(timeout=delay)
            took = time.monotonic() - begun
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            kills += 1
        end_servers(tmp_path, wait=15.0)  # a killed process's server ends by itself within seconds
        published, problems = after_kill(where, edited)
        between += process.returncode == -9 and 0 < published < len([p for p in edited if p.exists()])
        what = f"{published} of {len(edited)} edited files published"
        log.append(f"round {number}: {delay:.1f} s, rc {process.returncode}, {what}: {'; '.join(problems) or 'ok'}")
        assert problems == [], "\n".join(log)
    assert kills >= 5 and between >= 1, "\n".join(log)  # one kill at least landed between two commits
    finish = subprocess.run(command, capture_output=True, text=True, env=environment(), timeout=600)
    assert finish.returncode == 0, finish.stderr
    check = subprocess.run([str(SEMSEARCH), "info", "--check", "--index", where], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with semsearch.open_index(where, create=False, device="cpu") as index:
        stored = {path: d.content_hash for path, d in index.handle.documents().items()}
        assert stored == {str(p): digest(p) for p in corpus.glob("*.txt")}
        chunks = sorted((c.text, c.start) for item in index.handle.export(sorted(stored)) for c in item.chunks)
        assert all(c.ok for c in index.repair())
        survey = milvus_upkeep.survey(index.handle._require())
        assert (survey.orphans, survey.superseded, survey.repeated, survey.broken) == ([], [], [], [])
    with semsearch.open_index(tmp_path / "fresh", str(tiny_model), device="cpu") as fresh:
        fresh.ingest([corpus])
        expected = sorted((c.text, c.start) for item in fresh.handle.export(sorted(stored)) for c in item.chunks)
    assert chunks == expected
    assert end_servers(tmp_path) == [], "a server outlived its index"

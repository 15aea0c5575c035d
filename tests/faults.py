"""Fault injection for ingest: kill -9 a real ``semsearch ingest`` at random moments, then check
the index. Used by tests/index/test_crash.py (a short run for CI) and scripts/crash_soak.py (long).

After every kill: ``semsearch info`` works, a search works and shows no passage twice, SQLite
holds one vector per chunk. At the end, after one more ingest runs to completion: ``info
--check`` passes (one FAISS vector per chunk and the reverse), the documents are exactly the
corpus files with their current content, and the chunks equal those of a fresh index.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from children import child_environment

SEMSEARCH = Path(sys.executable).parent / "semsearch"
NOVEL = Path(__file__).resolve().parents[2] / "shared" / "data" / "zh-novels" / "红楼梦.txt"


def environment() -> dict[str, str]:
    env = child_environment()
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def make_corpus(folder: Path, files: int, chars: int, seed: int = 0) -> None:
    """``files`` Chinese text files of ``chars`` characters: a novel when ../shared has one."""
    if NOVEL.exists():
        text = NOVEL.read_text(encoding="utf-8")
    else:
        rng = random.Random(seed)
        words = "天地人和春夏秋冬山水花鸟风月日星云雨"
        text = "".join(rng.choice(words) + ("。" if i % 23 == 22 else "") for i in range(10**6))
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(files):
        start = (number * chars) % max(1, len(text) - chars)
        (folder / f"part{number:04d}.txt").write_text(text[start : start + chars], encoding="utf-8")


def mutate(folder: Path, rng: random.Random) -> str:
    """One change a user might make between runs: edit, delete, rename or add a file."""
    files = sorted(folder.glob("*.txt"))
    victim = rng.choice(files)
    action = rng.choice(["edit", "delete", "rename", "add"])
    if action == "edit":
        victim.write_text(victim.read_text(encoding="utf-8") + f"\n补记第{rng.randrange(10**6)}条。", encoding="utf-8")
    elif action == "delete" and len(files) > 2:
        victim.unlink()
    elif action == "rename":
        victim.rename(folder / f"renamed{rng.randrange(10**9)}.txt")
    else:
        victim = folder / f"new{rng.randrange(10**9)}.txt"
        victim.write_text(f"新增文件{rng.randrange(10**6)}。" * 40, encoding="utf-8")
        action = "add"
    return f"{action} {victim.name}"


def ingest_command(corpus: Path, index: Path, model: Path | None) -> list[str]:
    command = [str(SEMSEARCH), "ingest", str(corpus), "--index", str(index), "--device", "cpu", "--wait"]
    return command + (["--model", str(model)] if model else [])


def run_and_kill(command: list[str], delay: float, index: Path | None = None, after_commit: bool = False) -> int:
    """Run ``command`` and SIGKILL it ``delay`` seconds after it starts; with ``index``, after it
    takes the index's writer lock; with ``after_commit`` too, after its first commit. Returns its
    return code, -9 when killed.

    A commit is a move of the database's generation past where it stood: a new database starts at
    generation 0 (created, with no manifest yet), so its first commit is generation 1."""
    from semsearch.storage.locking import holder_pid

    committed = max(generation(index)[0], 0) if index is not None else 0
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment())
    while index is not None and process.poll() is None and holder_pid(index) != process.pid:
        time.sleep(0.01)
    while after_commit and index is not None and process.poll() is None and generation(index)[0] <= committed:
        time.sleep(0.01)
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
    return process.returncode


@dataclass
class Round:
    """What one kill left behind."""

    delay: float
    returncode: int
    generation: int
    chunks: int
    mid_ingest: bool  # killed after committing part of its work
    state: str  # what the kill left: "no index" (nothing committed yet) or "index"
    problems: list[str] = field(default_factory=list)


def state_of(index: Path) -> str:
    """ "index" once a manifest is committed; "no index" before (no database, or a new one that
    the kill caught before its first commit)."""
    try:
        with sqlite3.connect(f"{(index / 'semsearch.db').as_uri()}?mode=ro", uri=True) as db:
            found = db.execute("SELECT count(*) FROM meta WHERE key = 'manifest'").fetchone()[0]
    except sqlite3.Error:
        return "no index"
    return "index" if found else "no index"


def check_after_kill(index: Path) -> list[str]:
    """The invariants that must hold right after a kill, before any repair: either there is no
    index, and every command says exactly that, or there is a sound one."""
    problems: list[str] = []
    info = subprocess.run(
        [str(SEMSEARCH), "info", "--index", str(index), "--json"], capture_output=True, text=True, env=environment()
    )
    if "Traceback" in info.stderr:
        problems.append(f"info crashed: {info.stderr.strip()[-300:]}")
    if state_of(index) == "no index":
        if info.returncode != 1 or not info.stderr.startswith("Error: No index at"):
            problems.append(f"no index yet, but info did not say so: {info.stderr.strip()[-300:]}")
        if (index / "semsearch.db").exists():
            problems += _sqlite_problems(index)
        return problems
    if info.returncode != 0:
        problems.append(f"info failed: {info.stderr.strip()[-300:]}")
    problems += _sqlite_problems(index)
    problems += _search_problems(index)
    return problems


def _sqlite_problems(index: Path) -> list[str]:
    with sqlite3.connect(index / "semsearch.db") as db:
        problems = [] if db.execute("PRAGMA quick_check").fetchone()[0] == "ok" else ["sqlite quick_check failed"]
        if db.execute("SELECT count(*) FROM meta WHERE key = 'manifest'").fetchone()[0] == 0:
            return problems
        orphans = db.execute(
            "SELECT (SELECT count(*) FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM vectors v WHERE v.chunk_id = c.id))"
            " + (SELECT count(*) FROM vectors v WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.id = v.chunk_id))"
            " + (SELECT count(*) FROM documents d WHERE d.chunks != "
            "(SELECT count(*) FROM chunks c WHERE c.document_id = d.id))"
            " + (SELECT count(*) FROM chunks WHERE id NOT IN (SELECT rowid FROM chunks_fts))"
            " + (SELECT count(*) FROM chunks_fts WHERE rowid NOT IN (SELECT id FROM chunks))"
        ).fetchone()[0]
        if orphans:
            problems.append(f"{orphans} chunk/vector/lexical/document rows out of step in SQLite")
    return problems


def _search_problems(index: Path) -> list[str]:
    import semsearch

    try:
        with semsearch.open_index(index, device="cpu", create=False) as opened:
            hits = opened.search("宝玉", k=50)
            vectors = opened.handle.vectors()
            chunk_ids = opened.handle.store.chunk_ids() if opened.handle.store else []
    except semsearch.SemsearchError as exc:
        return [f"search failed: {exc}"]
    problems = []
    passages = [(h.source, h.start, h.end) for h in hits]
    if len(set(passages)) != len(passages) or len({h.chunk_id for h in hits}) != len(hits):
        problems.append("a passage appears twice in the results")
    if sorted(vectors.ids().tolist()) != sorted(int(i) for i in chunk_ids):
        problems.append("the vector index read by a query does not match the chunks")
    return problems


def check_final(index: Path, corpus: Path, reference: Path) -> list[str]:
    """After a completed ingest: every check passes, documents and chunks are exactly right."""
    problems: list[str] = []
    check = subprocess.run(
        [str(SEMSEARCH), "info", "--check", "--index", str(index)], capture_output=True, text=True, env=environment()
    )
    if check.returncode != 0:
        problems.append(f"info --check failed: {check.stdout.strip()} {check.stderr.strip()}")
    with sqlite3.connect(index / "semsearch.db") as db:
        stored = dict(db.execute("SELECT path, content_hash FROM documents").fetchall())
    on_disk = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in corpus.glob("*.txt")}
    if stored != on_disk:
        problems.append(f"documents differ from the corpus: {len(stored)} indexed, {len(on_disk)} files")
    if _chunks(index, corpus) != _chunks(reference, corpus):
        problems.append("chunks differ from those of a fresh index of the same files")
    return problems


def _chunks(index: Path, corpus: Path) -> list[tuple[str, int, str]]:
    with sqlite3.connect(index / "semsearch.db") as db:
        rows = db.execute("SELECT d.path, c.seq, c.text FROM chunks c JOIN documents d ON d.id = c.document_id")
        return sorted((os.path.relpath(path, corpus), seq, text) for path, seq, text in rows)


def generation(index: Path) -> tuple[int, int]:
    """(generation, chunks) of the index's database, (-1, 0) when there is none yet."""
    try:
        with sqlite3.connect(f"{(index / 'semsearch.db').as_uri()}?mode=ro", uri=True) as db:
            value = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]
            return int(value), int(db.execute("SELECT count(*) FROM chunks").fetchone()[0])
    except sqlite3.Error:
        return -1, 0


def kill_loop(
    corpus: Path, index: Path, model: Path, kills: int, max_delay: float, seed: int, log=print
) -> list[Round]:
    """Kill ``kills`` ingests of ``corpus`` at random moments, changing the corpus between runs."""
    rng = random.Random(seed)
    rounds: list[Round] = []
    for number in range(kills):
        if number:
            log(f"  corpus changes: {', '.join(mutate(corpus, rng) for _ in range(3))}")
        # a fifth of the kills land anywhere in start-up; the others while the ingest holds the
        # lock (loading the model, reading, embedding, committing, saving), half of those just
        # after a commit, where the database is ahead of the vector file
        mode = rng.choice(["startup", "lock", "lock", "commit", "commit"])
        delay = rng.uniform(0.0, {"startup": 8.0, "lock": max_delay, "commit": 1.0}[mode])
        if number == 0:  # the first ingest embeds the whole corpus: a kill after its first commit is mid-way
            mode, delay = "commit", 0.0
        started = time.perf_counter()
        before = generation(index)[0]
        target = None if mode == "startup" else index
        code = run_and_kill(ingest_command(corpus, index, model), delay, target, after_commit=mode == "commit")
        gen, chunks = generation(index)
        if code == 0 and mode == "lock":  # finished first: aim the next kills earlier
            max_delay = max(1.0, min(max_delay, 0.8 * delay))
        committed = code != 0 and gen > max(before, 0)
        state = state_of(index)
        problems = check_after_kill(index)
        rounds.append(Round(round(delay, 2), code, gen, chunks, committed, state, problems))
        when = {"startup": "after start", "lock": "after taking the lock", "commit": "after its first commit"}[mode]
        log(
            f"kill {number + 1}/{kills} {delay:.2f} s {when} (rc {code}, generation {before}->{gen}, {chunks} chunks, "
            f"{state}, round {time.perf_counter() - started:.1f} s): {'; '.join(problems) or 'ok'}"
        )
    return rounds

"""A model-based test of the index across writes, on every backend (hypothesis's
``RuleBasedStateMachine``): random sequences of what a user does to a folder (create, change,
rename, delete and move files and folders with Chinese names, spaces and deep paths; ignore
files) and to the index (ingest the root, a sub-folder, named files, several paths at once,
with exclude patterns, without ignore files, one share of a ``--shard``; a server's ingest
confined to its root; a watch round; remove; reindex; on the local backend, an ingest killed
with SIGKILL at a random moment). After every step the index must equal a plain oracle, the
documents each operation should leave with the content each was read with, every chunk's
text, place and vector what a fresh ingest of that content gives, and ``check`` must pass.

The oracle walks the folders itself with the few rules the test uses (hidden names, the
types read, ``*.SUFFIX`` and ``NAME`` patterns, ignore files from the walked folder down) and
knows one rule of removal: an ingest removes only what it proved gone or left out inside the
folders it walked and the files it was named, and nothing outside the folders it may read.

The default run is short and the same every time (derandomized): CI checks the same
sequences. ``SEMSEARCH_MODEL_EXAMPLES=N`` (and ``SEMSEARCH_MODEL_STEPS``) asks for a long run
of N new random sequences per backend; ``SEMSEARCH_MODEL_SEED`` replays one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lite_servers
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, note, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from lite_servers import end_servers, location_for

import semsearch
from semsearch.config import ChunkSettings
from semsearch.documents.sharding import Shard
from semsearch.index.watcher import Burst
from semsearch.index.watching import one_round

backend = lite_servers.backend  # the fixture: once per backend

EXAMPLES = int(os.environ.get("SEMSEARCH_MODEL_EXAMPLES", "0"))
LONG = EXAMPLES > 0
STEPS = int(os.environ.get("SEMSEARCH_MODEL_STEPS", "40" if LONG else "16"))
SEED = os.environ.get("SEMSEARCH_MODEL_SEED")
DEFAULT_EXAMPLES = {"local": 20, "milvus-lite": 4}
CHUNKING = ChunkSettings(chunk_tokens=24, overlap_tokens=4)  # a few chunks a file, cheaply
READ = (".md", ".txt")
STATS: Counter[str] = Counter()  # rules run, for the report of a run
KILLED: Counter[str] = Counter()  # how each killed ingest ended
TOL = 1e-4  # vectors of one text embedded in other batches differ by float error only

FOLDERS = ["", "子目录", "sub dir", "子目录/深 层", "a/b/c/d/e/f/很深的路径"]
NAMES = ["说明.md", "read me.txt", "第 二 章.txt", "b.md", "笔记 1.md", "notes.log", "换\r行.md", "坏\udcff名.txt"]
TEXTS = [
    "大熊猫主要吃竹子，每天要花十几个小时进食。",
    "# 长城\n\n长城是古代中国的防御工程。\n\n## 历史\n\n始建于春秋战国时期，明代大规模修筑。",
    "量子计算利用叠加和纠缠。量子比特可以同时处于多个状态。这使某些问题的求解速度大大提高。",
    "Sourdough bread needs a starter, flour, water and salt. 面包需要酵母。",
    "红烧肉要用五花肉，先焯水，再炒糖色，最后小火慢炖一个小时。",
    "睡眠对健康很重要。成年人每天需要七到九小时的睡眠。" * 3,
    "",  # an empty file
    "   \n\n  ",  # only white space
]
PATTERNS = ["*.txt", "*.md", "子目录", "深 层", "b.md"]
IGNORE_FILES = [".ignore", ".gitignore"]


@dataclass
class World:
    """The folders a sequence plays in: ``root`` (what the user ingests and a server may read)
    and ``outside`` (the operator's other folder, which no confined request may touch)."""

    base: Path
    location: str
    model: Path
    backend: str

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def outside(self) -> Path:
        return self.base / "outside"


# -- the oracle ----------------------------------------------------------------------------------


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _rules(folder: Path) -> list[str]:
    lines: list[str] = []
    for name in IGNORE_FILES:
        if (folder / name).is_file():
            lines += [line.strip() for line in (folder / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines


def _matches(pattern: str, name: str) -> bool:
    return name.endswith(pattern[1:]) if pattern.startswith("*.") else name == pattern


def oracle_walk(root: Path, patterns: list[str], ignore_files: bool) -> set[str]:
    """The files an ingest of folder ``root`` takes, by the rules this test uses."""
    found: set[str] = set()

    def visit(folder: Path, inherited: list[str]) -> None:
        rules = inherited + (_rules(folder) if ignore_files else [])
        for entry in sorted(folder.iterdir()):
            name = entry.name
            if name.startswith(".") or any(_matches(p, name) for p in rules + patterns):
                continue
            if entry.is_dir():
                visit(entry, rules)
            elif entry.is_file() and entry.suffix in READ:
                found.add(str(entry))

    visit(root, [])
    return found


def has_text(content: bytes) -> bool:
    return bool(content.decode("utf-8").strip())


@dataclass(frozen=True)
class Expected:
    """What an operation should leave: the documents by path with the content each was read
    with, or the error it should raise (and then nothing changes)."""

    documents: dict[str, bytes]
    error: type[Exception] | None = None


def oracle_ingest(
    documents: dict[str, bytes],
    targets: list[Path],
    patterns: list[str] = (),  # type: ignore[assignment]
    ignore_files: bool = True,
    shard: tuple[int, int] | None = None,
    within: Path | None = None,
) -> Expected:
    if any(not os.path.lexists(t) for t in targets):
        return Expected(documents, semsearch.SourceNotFoundError)

    def readable(path: str | Path) -> bool:  # links followed: within= is about real paths
        return within is None or _inside(os.path.realpath(path), str(within))

    allowed = [t for t in targets if readable(t)]  # the others are refused
    folders = [str(t) for t in allowed if t.is_dir()]
    named = [str(t) for t in allowed if not t.is_dir()]
    walked: set[str] = set()
    refused = len(allowed) < len(targets)
    for folder in folders:  # a link in them leading out is refused, and its document removed
        found = oracle_walk(Path(folder), list(patterns), ignore_files)
        walked |= {p for p in found if readable(p)}
        refused = refused or not all(readable(p) for p in found)
    walked |= {path for path in named if Path(path).suffix in READ}
    scope = {p for p in documents if p in named or any(_inside(p, f) for f in folders)}
    if not walked and not scope and not refused:  # a refusal is reported instead
        return Expected(documents, semsearch.NothingToIngestError)
    held = Shard.of(shard).holds if shard else (lambda path: True)
    walked = {p for p in walked if held(p)}
    scope = {p for p in scope if held(p) and (within is None or _inside(p, str(within)))}
    after = {p: c for p, c in documents.items() if p not in scope}
    for path in walked:
        content = Path(path).read_bytes()
        if has_text(content):  # a file with no text is no document
            after[path] = content
    return Expected(after)


def oracle_remove(documents: dict[str, bytes], targets: list[Path]) -> Expected:
    """Every target must name something indexed (before any of them is taken out)."""
    gone = {p for p in documents if any(_inside(p, str(t)) for t in targets)}
    if any(not any(_inside(p, str(t)) for p in documents) for t in targets):
        return Expected(documents, semsearch.SourceNotFoundError)
    return Expected({p: c for p, c in documents.items() if p not in gone})


# -- what a fresh ingest gives ------------------------------------------------------------------

_FRESH: dict[tuple[str, bytes], tuple[list[tuple[str, int, int, int, str | None]], np.ndarray]] = {}


def fresh_chunks(folder: Path, model: Path, suffix: str, content: bytes) -> tuple[list, np.ndarray]:
    """The chunks (text, start, end, line, heading) and vectors a fresh local index gives a file
    of ``content``, remembered for the session."""
    key = (suffix, content)
    if key not in _FRESH:
        digest = hashlib.sha256(content).hexdigest()[:16]
        docs = folder / digest
        docs.mkdir(parents=True, exist_ok=True)
        (docs / f"file{suffix}").write_bytes(content)
        with semsearch.open_index(folder / f"{digest}-index", str(model), device="cpu", chunking=CHUNKING) as index:
            index.ingest([docs])
            (item,) = index.handle.export([str(docs / f"file{suffix}")])
        _FRESH[key] = (_chunk_keys(item), np.asarray(item.vectors))
    return _FRESH[key]


def _chunk_keys(item: semsearch.index.backend.Published) -> list[tuple[str, int, int, int, str | None]]:
    return [(c.text, c.start, c.end, c.line, c.heading) for c in item.chunks]


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


# -- the machine ---------------------------------------------------------------------------------


class IndexModel(RuleBasedStateMachine):
    """One sequence: a world of files, the index under test, and what it should hold."""

    world: World  # set on the class by ``machine_for``

    def __init__(self) -> None:
        super().__init__()
        world = self.world
        if world.base.exists():
            shutil.rmtree(world.base)
        world.root.mkdir(parents=True)
        world.outside.mkdir()
        (world.outside / "operator.md").write_text("运维人员自己索引的文件，不在根目录里。", encoding="utf-8")
        self.index = semsearch.open_index(world.location, str(world.model), device="cpu", chunking=CHUNKING)
        self.documents: dict[str, bytes] = {}
        self.kills = 0
        self.seen: set[Path] = set()  # every file and folder the rules have made
        self.fresh = world.base.parent / "fresh"

    def teardown(self) -> None:
        self.index.close()
        if self.world.backend != "local":
            end_servers(self.world.base, wait=5.0)

    # -- the files ------------------------------------------------------------------------------

    def files(self) -> list[Path]:
        return sorted(p for p in self.world.root.rglob("*") if p.is_file() and not p.name.startswith("."))

    def folders(self) -> list[Path]:
        return sorted(p for p in self.world.root.rglob("*") if p.is_dir())

    @rule(folder=st.sampled_from(FOLDERS), name=st.sampled_from(NAMES), text=st.sampled_from(TEXTS))
    def write(self, folder: str, name: str, text: str) -> None:
        STATS["write"] += 1
        path = self.world.root / folder / name
        if path.parent.exists() and not path.parent.is_dir():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            return
        path.write_text(text, encoding="utf-8")
        note(f"write {path.relative_to(self.world.base)} <- {text[:12]!r}")

    @rule(data=st.data(), text=st.sampled_from(TEXTS[:6]))
    def append(self, data: st.DataObject, text: str) -> None:
        STATS["append"] += 1
        files = self.files()
        assume(files)
        path = data.draw(st.sampled_from(files))
        with path.open("a", encoding="utf-8") as handle:
            handle.write("\n" + text)
        note(f"append to {path.relative_to(self.world.base)}")

    @rule(data=st.data(), folder=st.sampled_from(FOLDERS), name=st.sampled_from(NAMES))
    def rename(self, data: st.DataObject, folder: str, name: str) -> None:
        STATS["rename"] += 1
        files = self.files()
        assume(files)
        source = data.draw(st.sampled_from(files))
        target = self.world.root / folder / name
        if target.exists() or (target.parent.exists() and not target.parent.is_dir()):
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        source.rename(target)
        note(f"rename {source.relative_to(self.world.base)} -> {target.relative_to(self.world.base)}")

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        STATS["delete"] += 1
        files = self.files()
        assume(files)
        path = data.draw(st.sampled_from(files))
        path.unlink()
        note(f"delete {path.relative_to(self.world.base)}")

    @rule(data=st.data(), name=st.sampled_from(["移走了", "moved dir", "子目录"]))
    def move_folder(self, data: st.DataObject, name: str) -> None:
        STATS["move_folder"] += 1
        folders = self.folders()
        assume(folders)
        source = data.draw(st.sampled_from(folders))
        target = self.world.root / name
        if target.exists() or _inside(str(target), str(source)):
            return
        source.rename(target)
        note(f"move folder {source.relative_to(self.world.base)} -> {target.relative_to(self.world.base)}")

    @rule(data=st.data())
    def delete_folder(self, data: st.DataObject) -> None:
        STATS["delete_folder"] += 1
        folders = self.folders()
        assume(folders)
        folder = data.draw(st.sampled_from(folders))
        shutil.rmtree(folder)
        note(f"delete folder {folder.relative_to(self.world.base)}")

    @rule(folder=st.sampled_from(FOLDERS), name=st.sampled_from(["链接.md", "link to outside.txt"]))
    def link(self, folder: str, name: str) -> None:
        """A link in the root to the operator's file outside it: followed by an ingest, refused
        (and its document removed) by one confined to the root."""
        STATS["link"] += 1
        path = self.world.root / folder / name
        if os.path.lexists(path) or (path.parent.exists() and not path.parent.is_dir()):
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(self.world.outside / "operator.md")
        note(f"link {path.relative_to(self.world.base)} -> outside/operator.md")

    @rule(
        folder=st.sampled_from(FOLDERS[:4]),
        name=st.sampled_from(IGNORE_FILES),
        patterns=st.lists(st.sampled_from(PATTERNS), max_size=2),
    )
    def ignore_file(self, folder: str, name: str, patterns: list[str]) -> None:
        STATS["ignore_file"] += 1
        place = self.world.root / folder
        if not place.is_dir():
            return
        (place / name).write_text("\n".join(patterns) + "\n", encoding="utf-8")
        note(f"{(place / name).relative_to(self.world.base)}: {patterns}")

    # -- the index ------------------------------------------------------------------------------

    def targets(self, data: st.DataObject) -> list[Path]:
        """One to three paths to ingest: the root, a folder in it, files in it (or gone from
        it), the operator's folder."""
        world = self.world
        choices = [world.root, world.outside, world.outside / "operator.md", world.root / "缺失的.md"]
        choices += self.folders() + self.files()
        return data.draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3, unique=True), label="targets")

    def apply(self, expected: Expected, action: str, work) -> None:  # type: ignore[no-untyped-def]
        note(action)
        if expected.error is not None:
            with pytest.raises(expected.error):
                work()
        else:
            work()
            self.documents = expected.documents

    @rule(
        data=st.data(),
        patterns=st.lists(st.sampled_from(PATTERNS), max_size=2),
        ignore_files=st.booleans(),
        shard=st.one_of(st.none(), st.sampled_from([(1, 2), (2, 2), (1, 3)])),
    )
    def ingest(self, data: st.DataObject, patterns: list[str], ignore_files: bool, shard: tuple[int, int] | None):
        STATS["ingest"] += 1
        targets = self.targets(data)
        expected = oracle_ingest(self.documents, targets, patterns, ignore_files, shard)
        self.apply(
            expected,
            f"ingest {self.shown(targets)} exclude={patterns} ignore_files={ignore_files} shard={shard}",
            lambda: self.index.ingest(targets, exclude=patterns, ignore_files=ignore_files, shard=shard),
        )

    @rule(data=st.data())
    def ingest_confined(self, data: st.DataObject) -> None:
        """What POST /ingest and MCP's ingest do: only what lies in the server's root is read,
        and nothing outside it is touched."""
        STATS["ingest_confined"] += 1
        targets = self.targets(data)
        root = self.world.root
        expected = oracle_ingest(self.documents, targets, within=root)
        self.apply(
            expected,
            f"ingest {self.shown(targets)} within root",
            lambda: self.index.ingest(targets, within=[root]),
        )

    @rule(data=st.data())
    def watch_round(self, data: st.DataObject) -> None:
        """One round of ``semsearch watch PATHS``: the watched paths that exist are ingested,
        the documents at or under those gone are removed (none there is no error)."""
        STATS["watch_round"] += 1
        roots = self.targets(data)
        existing = [r for r in roots if os.path.lexists(r)]
        expected = oracle_ingest(self.documents, existing) if existing else Expected(self.documents)
        gone = [str(r) for r in roots if r not in existing]
        after = {p: c for p, c in expected.documents.items() if not any(_inside(p, g) for g in gone)}
        note(f"watch round {self.shown(roots)}")
        found = one_round(
            Burst(1),
            roots,
            lambda paths: self.index.ingest(paths),
            lambda paths: self.index.remove(paths, missing_ok=True).files_removed,
        )
        if expected.error is not None:
            assert isinstance(found.error, expected.error), found
        else:
            assert found.error is None, found.error
        self.documents = after

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        STATS["remove"] += 1
        # drawn from what the rules made, never from what the index holds: that depends on when
        # a kill landed, and the draws of a sequence must not (hypothesis replays them)
        choices = sorted(self.seen) + [self.world.root / "没有.md"]
        targets = data.draw(st.lists(st.sampled_from(choices), min_size=1, max_size=2, unique=True), label="remove")
        expected = oracle_remove(self.documents, targets)
        self.index.handle.follow()  # another process may have made the index
        if self.index.manifest is None:
            expected = Expected(self.documents, semsearch.IndexNotFoundError)
        self.apply(expected, f"remove {self.shown(targets)}", lambda: self.index.remove(targets))

    @rule(extra=st.booleans())
    def reindex(self, extra: bool) -> None:
        """Re-embed what is indexed and still there, plus the root if asked."""
        STATS["reindex"] += 1
        kept = [Path(p) for p in self.documents if os.path.lexists(p)]
        expected = oracle_ingest({}, [*kept, *([self.world.root] if extra else [])])
        if expected.error is not None:  # nothing left to read: an error, and the index stays
            expected = Expected(self.documents, expected.error)
        self.apply(
            expected, f"reindex (and the root: {extra})", lambda: self.index.reindex([self.world.root] if extra else [])
        )

    @precondition(lambda self: self.world.backend == "local" and self.kills < (3 if LONG else 1))
    @rule(files=st.integers(0, 80), delay=st.floats(0.0, 2.0), after_commit=st.booleans())
    def killed_ingest(self, files: int, delay: float, after_commit: bool) -> None:
        """``files`` more files, then ``semsearch ingest ROOT`` killed with SIGKILL ``delay`` s
        after it takes the lock (or after its first commit): each document is as it was or as
        the ingest would leave it, and the rest as it was."""
        STATS["killed_ingest"] += 1
        from faults import ingest_command

        self.kills += 1
        batch = self.world.root / "批量 文件"
        batch.mkdir(exist_ok=True)
        for number in range(files):
            (batch / f"第{number}份.md").write_text(TEXTS[number % 6] * (1 + number % 4), encoding="utf-8")
        before = dict(self.documents)
        after = oracle_ingest(before, [self.world.root])
        folder = Path(self.world.location)
        command = ingest_command(self.world.root, folder, self.world.model)
        command += ["--chunk-tokens", str(CHUNKING.chunk_tokens), "--overlap-tokens", str(CHUNKING.overlap_tokens)]
        code, stderr = _run_and_kill(command, delay, folder, after_commit and self.index.manifest is not None)
        note(f"{files} files, then an ingest of the root killed {delay:.2f} s in: exit {code} {stderr[-300:]}")
        KILLED["by SIGKILL" if code == -signal.SIGKILL else f"exit {code}"] += 1
        assert code in ((1,) if after.error else (0, -signal.SIGKILL)), stderr
        actual = self.stored()
        for path in set(before) | set(after.documents) | set(actual):
            state = actual.get(path)
            assert state in (before.get(path), after.documents.get(path)), f"{path}: neither old nor new"
        self.documents = actual

    def stored(self) -> dict[str, bytes]:
        """The documents as the index holds them, with the content their hash names (the content
        of the oracle where it agrees, else the file's, else a marker)."""
        known = {hashlib.sha256(c).hexdigest(): c for c in self.documents.values()}
        self.index.handle.follow()  # as every read does: another process may have made the index
        found = {}
        for path, document in self.index.handle.documents().items():
            content = known.get(document.content_hash)
            if content is None and os.path.exists(path):
                on_disk = Path(path).read_bytes()
                content = on_disk if hashlib.sha256(on_disk).hexdigest() == document.content_hash else None
            found[path] = content if content is not None else b"<unknown content>"
        return found

    def shown(self, paths: list[Path]) -> str:
        return ", ".join(os.path.relpath(p, self.world.base) for p in paths)

    # -- what must hold after every step --------------------------------------------------------

    @invariant()
    def holds_what_the_oracle_says(self) -> None:
        self.seen |= {p for top in (self.world.root, self.world.outside) for p in top.rglob("*")}
        self.index.handle.follow()
        stored = self.index.handle.documents()
        assert sorted(stored) == sorted(self.documents)
        for path, document in stored.items():
            assert document.content_hash == hashlib.sha256(self.documents[path]).hexdigest(), path
        for item in self.index.handle.export(sorted(stored)) if stored else ():
            path = item.document.path
            chunks, vectors = fresh_chunks(self.fresh, self.world.model, Path(path).suffix, self.documents[path])
            assert _chunk_keys(item) == chunks, path
            assert np.allclose(_unit(np.asarray(item.vectors)), _unit(vectors), atol=TOL), path

    @invariant()
    def passes_check(self) -> None:
        if self.index.manifest is not None:
            failed = [c for c in self.index.check() if not c.ok]
            assert failed == []


def machine_for(world: World) -> type[IndexModel]:
    return type("IndexModelOn" + world.backend.title().replace("-", ""), (IndexModel,), {"world": world})


@pytest.fixture
def world(backend: str, tmp_path: Path, tiny_model: Path) -> Iterator[World]:
    location = location_for(backend, tmp_path / "sequence")
    yield World(tmp_path / "sequence", location, tiny_model, backend)
    assert end_servers(tmp_path, wait=5.0) == []


@pytest.mark.slow
def test_the_index_follows_the_oracle(world: World) -> None:
    examples = EXAMPLES or DEFAULT_EXAMPLES[world.backend]
    options = settings(
        max_examples=examples,
        stateful_step_count=STEPS,
        deadline=None,
        derandomize=not LONG and SEED is None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
        phases=[p for p in Phase if p != Phase.shrink or os.environ.get("SEMSEARCH_MODEL_SHRINK") != "0"],
    )
    machine = machine_for(world)
    if SEED is not None:
        machine = seed(int(SEED))(machine)  # type: ignore[assignment]
    started = time.perf_counter()
    STATS.clear()
    KILLED.clear()
    run_state_machine_as_test(machine, settings=options)
    took = time.perf_counter() - started
    steps = ", ".join(f"{name} {count}" for name, count in STATS.most_common())
    print(f"{world.backend}: {examples} sequences of up to {STEPS} steps in {took:.0f} s")
    print(f"  {sum(STATS.values())} steps: {steps}; ingests killed: {KILLED or 'none'}")


def _run_and_kill(command: list[str], delay: float, index: Path, after_commit: bool) -> tuple[int, str]:
    """``faults.run_and_kill``, with what the process said on stderr."""
    from faults import environment, generation

    from semsearch.storage.locking import holder_pid

    committed = max(generation(index)[0], 0)
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment()) as process:
        deadline = time.monotonic() + 120
        while process.poll() is None and holder_pid(index) != process.pid and time.monotonic() < deadline:
            time.sleep(0.01)
        while after_commit and process.poll() is None and generation(index)[0] <= committed:
            time.sleep(0.01)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.stderr is not None
        return process.returncode, process.stderr.read().decode("utf-8", "replace")

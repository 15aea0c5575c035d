"""Hostile file names, on every backend: a folder and a file of each kind of name a file system
holds (quotes, backslashes, LIKE's wildcards, CR, LF, TAB, every other C0 and C1 control,
bidirectional controls, bytes that are not UTF-8, emoji, Milvus's keywords, a 4 KB path) are
ingested, found with their source, filtered by folder and by path, left alone by a second ingest,
removed one by one, and the index checks sound after each step. On Milvus a path is written
into filter expressions: a CR or LF in one made every ingest fail (issue 23)."""

from __future__ import annotations

import os
from pathlib import Path

import lite_servers

import semsearch
from semsearch import Query, Where

backend, location = lite_servers.backend, lite_servers.location  # the fixtures: once per backend

C0 = "".join(chr(code) for code in range(1, 32))  # NUL and '/' are the two bytes no name holds
C1 = "\x7f" + "".join(chr(code) for code in range(0x80, 0xA0))
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
UNDECODABLE = os.fsdecode(b"\xff\xfe\xe9\x80")  # lone surrogates in a str (surrogateescape)

# kind -> (folder, file name): the folder holds the file and nothing else
NAMES = {
    "quotes": ('it\'s "quoted"', 'say "hi" it\'s.md'),
    "backslash": ("back\\slash\\", "a\\b\\\\.md"),
    "wildcards": ("100%_done", "50%_off_%.md"),
    "cr": ("cr\rdir", "cr\rname.md"),
    "lf": ("lf\ndir", "lf\nname.md"),
    "crlf": ("crlf\r\n", "\r\n.md"),
    "tab": ("tab\tdir", "tab\tname.md"),
    "c0": (f"c0{C0}", f"{C0}.md"),
    "c1": (f"c1{C1}", f"{C1}.md"),
    "bidi": (f"bidi{BIDI}", "rtl_\u202edm.png.md"),
    "undecodable": (f"bytes{UNDECODABLE}", f"bad{UNDECODABLE}name.md"),
    "emoji": ("😀🐼", "熊猫🐼👍🏽.md"),
    "keywords": ("and/in/like", "true.md"),
    "functions": ("json_contains", "array_contains(path, 1) or not.md"),
    "hexlike": ("hex:2f", "hex:41.md"),
}


def long_folder(root: Path) -> Path:
    """A folder nested until a file's path in it is nearly 4 KB (PATH_MAX is 4,096 bytes with
    the NUL, and a name holds at most 255)."""
    folder = root / "long"
    while len(os.fsencode(folder)) + 241 <= 3_900:
        folder = folder / ("长" * 80)  # 240 bytes
    return folder


def make(root: Path) -> dict[str, tuple[Path, Path, str]]:
    """Create each kind's folder and file; kind -> (folder, file, the word only it holds)."""
    made = {}
    kinds = [(kind, root / folder, name) for kind, (folder, name) in NAMES.items()]
    kinds.append(("long", long_folder(root), "长" * 60 + ".md"))
    for number, (kind, folder, name) in enumerate(kinds):
        word = "hostile" + "abcdefghijklmnopqrstuvwxyz"[number]
        folder.mkdir(parents=True)
        (folder / name).write_text(f"{word} 熊猫 {word}\n", encoding="utf-8")
        made[kind] = (folder, folder / name, word)
    (root / "plain.md").write_text("an ordinary file 普通\n", encoding="utf-8")
    return made


def problems(index: semsearch.Index, made: dict[str, tuple[Path, Path, str]]) -> list[str]:
    """What is wrong with finding each file: by its word, and filtered to its folder (given
    relative to the folder above it) and to itself."""
    every = " ".join(word for _, _, word in made.values())
    found = []
    for kind, (folder, path, word) in made.items():
        queries = [
            Query(word, k=3, mode="lexical"),
            Query(every, k=5, mode="lexical", where=Where(paths=(folder.name,))),
            Query(every, k=5, mode="dense", where=Where(paths=(folder.name,))),
            Query(every, k=5, mode="hybrid", where=Where(paths=(os.path.join(folder.name, path.name),))),
        ]
        answers = index.search_queries(queries, base=folder.parent)
        sources = [[hit.source for hit in hits] for hits in answers]
        if sources[0][:1] != [str(path)] or any(hits != [str(path)] for hits in sources[1:]):
            found.append(f"{kind}: {sources!r}")
    return found


def test_every_kind_of_name_is_ingested_found_filtered_and_removed(location: str, tmp_path: Path, tiny_model: Path):
    root = tmp_path / "names"
    made = make(root)
    with semsearch.open_index(location, str(tiny_model), device="cpu") as index:
        first = index.ingest([root])
        assert (first.files_added, first.files_skipped) == (len(made) + 1, 0), first.skipped
        assert problems(index, made) == []
        assert all(c.ok for c in index.check()), index.check()
        again = index.ingest([root])
        assert (again.files_unchanged, again.files_added, again.files_updated, again.files_removed) == (
            len(made) + 1,
            0,
            0,
            0,
        )
        assert again.chunks_embedded == 0
        for kind, (_, path, word) in made.items():
            removed = index.remove([path])
            assert (kind, removed.files_removed, removed.paths) == (kind, 1, [str(path)])
            assert index.search(word, k=3, mode="lexical") == [], kind
        assert set(index.handle.documents()) == {str(root / "plain.md")}
        assert all(c.ok for c in index.check()), index.check()


def test_a_removed_folder_of_hostile_names_goes_whole(location: str, tmp_path: Path, tiny_model: Path) -> None:
    root = tmp_path / "names"
    made = make(root)
    with semsearch.open_index(location, str(tiny_model), device="cpu") as index:
        index.ingest([root])
        for kind in ("cr", "undecodable", "keywords"):
            folder = made[kind][0]
            removed = index.remove([folder])
            assert (kind, removed.files_removed) == (kind, 1)
        left = index.ingest([root])  # what was removed comes back; nothing else changes
        assert (left.files_added, left.files_unchanged) == (3, len(made) + 1 - 3)
        assert all(c.ok for c in index.check())


def test_an_ingest_of_one_hostile_file_touches_nothing_else(location: str, tmp_path: Path, tiny_model: Path) -> None:
    root = tmp_path / "names"
    made = make(root)
    with semsearch.open_index(location, str(tiny_model), device="cpu") as index:
        index.ingest([root])
        for kind in ("cr", "lf", "undecodable"):
            path = made[kind][1]
            path.write_text(f"changed hostilechanged{kind}\n", encoding="utf-8")
            one = index.ingest([path])
            assert (kind, one.files_updated, one.files_removed) == (kind, 1, 0)
            hits = index.search(f"hostilechanged{kind}", k=3, mode="lexical")
            assert [h.source for h in hits] == [str(path)], kind
        assert len(index.handle.documents()) == len(made) + 1 and all(c.ok for c in index.check())

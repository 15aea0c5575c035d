"""A full disk: writes fail with one clear error, reads keep working, nothing is left behind.

A small tmpfs is mounted for the index, so this needs the right to mount (root, and a kernel
that lets this process do it); it is skipped where that is refused.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import semsearch
from semsearch.storage.layout import pending_builds


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB file system of its own."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(disk: Path, leave: int) -> None:
    """Take all the free space of ``disk`` but ``leave`` bytes."""
    free = shutil.disk_usage(disk).free
    with open(disk / "filler", "ab") as handle:
        handle.write(b"\0" * max(0, free - leave))
    assert shutil.disk_usage(disk).free <= leave + 65536


def failed(checks: list[semsearch.Check]) -> dict[str, str]:
    return {c.name: c.detail for c in checks if not c.ok}


@pytest.mark.slow
def test_a_full_disk_fails_writes_clearly_and_never_a_read(disk: Path, tmp_path: Path, tiny_model: Path, docs: Path):
    folder = disk / "kb"
    with semsearch.open_index(folder, model=str(tiny_model), device="cpu") as index:
        index.ingest([docs])
    big = tmp_path / "big"
    big.mkdir()
    for n in range(40):
        (big / f"{n}.txt").write_text(f"第{n}篇，很长的文字，讲了许多事情。" * 400, encoding="utf-8")
    fill(disk, 2_000_000)
    with semsearch.open_index(folder, device="cpu") as index, pytest.raises(semsearch.DiskFullError, match="is full"):
        index.ingest([big])  # commits some batches, then runs out of room
    with semsearch.open_index(folder, device="cpu") as reader:  # the vector file is behind: a reader syncs
        assert reader.search("许多事情", k=3)  # and cannot save its cache: the query still answers
        assert reader.info().documents >= 12
    (disk / "filler").unlink()
    fill(disk, 0)
    with semsearch.open_index(folder, device="cpu") as reader:
        assert reader.search("熊猫", k=3, mode="hybrid")
        assert reader.info().chunks > 0
        with pytest.raises(semsearch.DiskFullError, match="is full"):
            reader.reindex()
    assert pending_builds(folder) == []  # the unfinished copy was deleted to free its room
    (disk / "filler").unlink()
    with semsearch.open_index(folder, device="cpu") as index:
        index.ingest([big])  # with room again, the ingest finishes
        assert failed(index.check()) == {}


def test_an_index_on_a_read_only_mount_answers_searches(disk: Path, tiny_model: Path, docs: Path) -> None:
    folder = disk / "kb"
    with semsearch.open_index(folder, model=str(tiny_model), device="cpu") as index:
        index.ingest([docs])
        expected = index.search("熊猫", k=3, mode="hybrid")
    done = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot remount read-only here: {done.stderr.decode(errors='replace').strip()}")
    with semsearch.open_index(folder, device="cpu", create=False) as index:
        assert index.search("熊猫", k=3, mode="hybrid") == expected
        assert index.info().documents == 12
        with pytest.raises(semsearch.ReadOnlyIndexError, match="read-only"):
            index.ingest([docs])

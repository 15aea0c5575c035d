"""The writer lock: exclusive between processes, released on exit or death, waitable."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from semsearch.errors import IndexLockedError
from semsearch.storage.locking import WriteLock, holder_pid, is_locked

HOLD = """
import sys, time
from pathlib import Path
from semsearch.storage.locking import WriteLock
lock = WriteLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold(folder: Path, seconds: float) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    return process


def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    other = hold(tmp_path, 30)
    try:
        assert is_locked(tmp_path) and holder_pid(tmp_path) == other.pid
        started = time.monotonic()
        with pytest.raises(IndexLockedError, match=f"process {other.pid}.*try again when it is done$") as caught:
            WriteLock(tmp_path).acquire()
        assert caught.value.waitable  # the CLI offers --wait where the command has it, no one else
        assert time.monotonic() - started < 1
    finally:
        other.kill()
        other.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    other = hold(tmp_path, 30)
    other.kill()  # SIGKILL: no clean-up code runs
    other.wait()
    assert not is_locked(tmp_path)
    with WriteLock(tmp_path):
        assert holder_pid(tmp_path) is not None


def test_wait_gets_the_lock_when_the_holder_ends(tmp_path: Path) -> None:
    other = hold(tmp_path, 1.0)
    started = time.monotonic()
    with WriteLock(tmp_path, wait=True):
        assert time.monotonic() - started > 0.3
        assert other.poll() is not None
    other.wait()


def test_wait_with_a_limit_gives_up(tmp_path: Path) -> None:
    other = hold(tmp_path, 30)
    try:
        with pytest.raises(IndexLockedError, match="gave up after waiting 0.5 s"):
            WriteLock(tmp_path, wait=0.5).acquire()
    finally:
        other.kill()
        other.wait()


def test_release_lets_the_next_writer_in(tmp_path: Path) -> None:
    with WriteLock(tmp_path):
        pass
    assert not is_locked(tmp_path)
    with WriteLock(tmp_path):
        assert is_locked(tmp_path)

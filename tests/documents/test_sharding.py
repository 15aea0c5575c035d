"""Shards: every path in exactly one share of N, the same on every machine; I/N parsed strictly."""

from __future__ import annotations

import hashlib

import pytest

from semsearch import Shard
from semsearch.errors import InvalidOptionError


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_every_path_falls_in_exactly_one_share(count: int) -> None:
    paths = [f"/corpus/{folder}/文件{n}.txt" for folder in "abc" for n in range(200)] + ["/bad\udcffname.txt"]
    shares = [Shard(number, count) for number in range(1, count + 1)]
    for path in paths:
        assert sum(share.holds(path) for share in shares) == 1
    sizes = [sum(share.holds(p) for p in paths) for share in shares]
    assert all(size > len(paths) / count / 2 for size in sizes)  # spread, not all in one share


def test_the_share_of_a_path_is_fixed_by_its_bytes_alone() -> None:
    # a stable hash (not Python's per-process hash()): another machine, another run agree
    # changing the hash would move files between workers' shares: it is pinned here
    assert [Shard(n, 4).holds("/corpus/a.txt") for n in range(1, 5)] == [False, False, False, True]
    digest = hashlib.blake2b("/corpus/文件.txt".encode(), digest_size=8).digest()
    assert Shard(int.from_bytes(digest, "big") % 10 + 1, 10).holds("/corpus/文件.txt")


def test_shards_are_written_i_of_n() -> None:
    assert Shard.of("2/4") == Shard(2, 4) == Shard.of((2, 4)) and str(Shard(2, 4)) == "2/4"
    assert Shard.of(None) is None and Shard.of(" 1 / 1 ") == Shard(1, 1)
    for bad in ("0/4", "5/4", "2", "a/b", "1/0", "-1/4", "1/99999999"):
        with pytest.raises(InvalidOptionError, match="shard"):
            Shard.of(bad)

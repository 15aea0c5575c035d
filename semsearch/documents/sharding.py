"""One corpus ingested by N workers together: ``Shard(I, N)`` holds the files whose path hash
falls in share I of N (1-based), so N workers given ``--shard 1/N`` … ``--shard N/N`` over the
same folders take every file exactly once, and each removes only the documents of its share."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from ..errors import InvalidOptionError

MAX_SHARDS = 65_536
_FORM = re.compile(r"^\s*(\d{1,6})\s*/\s*(\d{1,6})\s*$")


@dataclass(frozen=True)
class Shard:
    number: int  # 1 to count
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS or not 1 <= self.number <= self.count:
            raise InvalidOptionError(f"A shard is I/N with 1 <= I <= N <= {MAX_SHARDS}, not {self.number}/{self.count}")

    @classmethod
    def of(cls, value: Shard | str | tuple[int, int] | None) -> Shard | None:
        """A Shard from itself, ``"I/N"`` or ``(I, N)``; None for none."""
        if value is None or isinstance(value, Shard):
            return value
        if isinstance(value, str):
            form = _FORM.match(value)
            if not form:
                raise InvalidOptionError(f"A shard is written I/N, such as 2/4 (share 2 of 4), not {value!r}")
            return cls(int(form[1]), int(form[2]))
        number, count = value
        return cls(int(number), int(count))

    def holds(self, path: str) -> bool:
        """Whether the file at ``path`` (absolute, as the index stores it) is in this share. The
        hash is of the path's bytes, so every machine that sees the corpus at the same path agrees."""
        digest = hashlib.blake2b(os.fsencode(path), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count == self.number - 1

    def __str__(self) -> str:
        return f"{self.number}/{self.count}"

"""The names a server gives its models: short ids for clients, never a folder's path.

A model given as a local folder is served by the folder's own name (``/srv/models/bge-m3`` is
``bge-m3``), a hub id as it is (``BAAI/bge-m3``); the embedding model may be given a name of the
operator's choosing (``serve --served-model-name``). A request may name a model by its id or by
its full name (the path or hub id the server was started with). The schema, which answers without
the API key, lists the ids only, so nothing public tells where the models lie on the host.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# a hub id is NAME or ORG/NAME; anything that starts like a path is a folder's
_PATH_LIKE = re.compile(r"^(/|\.{1,2}([\\/]|$)|~|[A-Za-z]:[\\/]|\\\\)")


def short_id(model: str) -> str:
    """The id a model is served by: a local folder's own name, a hub id as it is."""
    hub_like = not _PATH_LIKE.match(model) and model.count("/") <= 1 and "\\" not in model
    if hub_like and not Path(model).expanduser().is_dir():
        return model
    name = PurePosixPath(model.replace("\\", "/").rstrip("/")).name
    return name if name not in ("", ".", "..", "~") else "model"


@dataclass(frozen=True)
class ServedModels:
    """The embedding model and the rerankers a server offers: each one's id, and the full name
    (a folder's path or a hub id) it stands for."""

    embedding: str  # the full name
    embedding_id: str
    rerankers: dict[str, str]  # id -> full name, in the order offered

    @classmethod
    def of(cls, embedding: str, rerankers: Sequence[str], served_name: str | None = None) -> ServedModels:
        """The ids of ``embedding`` (``served_name`` where given) and of ``rerankers``; an id
        taken already gets a number (``bge-m3-2``)."""
        embedding_id = served_name or short_id(embedding)
        ids: dict[str, str] = {}
        for name in dict.fromkeys(rerankers):
            ids[_unique(short_id(name), {embedding_id, *ids})] = name
        return cls(embedding, embedding_id, ids)

    def is_embedding(self, given: str) -> bool:
        """Whether ``given`` names the embedding model, by its id or its full name."""
        return given in (self.embedding_id, self.embedding)

    def reranker(self, given: str) -> str | None:
        """The full name of the reranker ``given`` names (by its id or its full name); None
        for one not offered."""
        if given in self.rerankers:
            return self.rerankers[given]
        return given if given in self.rerankers.values() else None

    def reranker_id(self, full: str) -> str:
        """The id a reranker is served by."""
        return next((ident for ident, name in self.rerankers.items() if name == full), full)

    @property
    def ids(self) -> list[str]:
        """Every model's id: the embedding model's, then the rerankers'."""
        return [self.embedding_id, *self.rerankers]


def _unique(wanted: str, taken: set[str]) -> str:
    number, chosen = 1, wanted
    while chosen in taken:
        number += 1
        chosen = f"{wanted}-{number}"
    return chosen

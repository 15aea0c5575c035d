"""Settings and the index manifest: frozen dataclasses, saved as JSON.

Defaults live here. The CLI turns flags and ``SEMSEARCH_*`` variables into these objects; the
library never reads the environment itself.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__version__ = "0.1.0"

DEFAULT_MODEL = "lier007/xiaobu-embedding-v2"
DEFAULT_INDEX = ".semsearch"
DEFAULT_MAX_FILE_BYTES = 20_000_000  # larger files are skipped unless the limit is raised
DEFAULT_DEBOUNCE_MS = 500  # a watch ingests once files have been quiet this long


@dataclass(frozen=True)
class ChunkSettings:
    """How documents are cut into passages, in the model's own tokens."""

    chunk_tokens: int = 256
    overlap_tokens: int = 32


@dataclass(frozen=True)
class ModelInfo:
    """What identifies an embedding pipeline: enough to refuse a different one."""

    model: str  # as the user named it: a hub id or a local folder
    revision: str | None  # hub commit hash, or None for a local folder
    fingerprint: str  # hash of the folder's configs and weight file names and sizes
    dimension: int
    pooling: list[str]
    dense: list[dict[str, Any]]
    normalize: bool
    max_seq_length: int
    # the prompts put before queries and documents; None in an index of an earlier semsearch,
    # which put the model's default prompt before both (resolved by ``prompts``)
    query_prompt: str | None = None
    document_prompt: str | None = None
    # what embedded the index when it was made (torch/openvino; fp32, fp16, bf16, int8): None in
    # an index of an earlier semsearch. Not part of the identity: see docs/design.md
    runtime: str | None = None
    precision: str | None = None

    def prompts(self, default: str) -> tuple[str, str]:
        """(query prompt, document prompt), ``default`` standing in for those not recorded."""
        query, document = self.query_prompt, self.document_prompt
        return (default if query is None else query, default if document is None else document)


@dataclass(frozen=True)
class Manifest:
    """What an index was built with; stored beside it and checked on every open."""

    model: ModelInfo
    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    metric: str = "cosine"
    index_type: str = "auto"  # the vector structure: auto, flat, ivf or hnsw (a cache; changeable)
    semsearch_version: str = __version__

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        return cls(
            model=ModelInfo(**_known(ModelInfo, data["model"])),
            chunking=ChunkSettings(**_known(ChunkSettings, data.get("chunking", {}))),
            metric=data.get("metric", "cosine"),
            index_type=data.get("index_type", "auto"),
            semsearch_version=data.get("semsearch_version", "unknown"),
        )


def tqdm_disable(progress: bool | None) -> bool | None:
    """tqdm's ``disable`` for a progress setting: None means "only on a terminal"."""
    return None if progress is None else not progress


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    # tolerate keys written by a newer semsearch
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}

"""Finding a model's folder: a local path, else the Hugging Face hub through huggingface_hub.

huggingface_hub reads its own variables (``HF_HOME``, ``HF_ENDPOINT`` for mirrors,
``HF_HUB_OFFLINE``), so semsearch gets the usual cache and mirror behaviour for free.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError, first_line

# Formats semsearch never reads: skip them so a hub download fetches one copy of the weights.
_IGNORE = ["onnx/*", "openvino/*", "*.onnx", "*.h5", "*.msgpack", "*.ot", "tf_model*", "flax_model*", "rust_model*"]
_HINT = (
    "pass --model with a local sentence-transformers folder (see 'Offline quickstart' in the README) or a hub id "
    "(HF_ENDPOINT selects a mirror; HF_HUB_OFFLINE=1 uses the local cache only)"
)


@dataclass(frozen=True)
class ModelFolder:
    """A model resolved to a folder on disk."""

    name: str
    path: Path
    revision: str | None  # the hub commit, None for a local folder


def resolve(name: str, revision: str | None = None) -> ModelFolder:
    """Find ``name`` on disk or in the hub cache, downloading it when it is not cached."""
    local = Path(name).expanduser()
    if local.is_dir():
        return ModelFolder(name=name, path=local.resolve(), revision=None)
    if local.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelLoadError(f"Cannot load model '{name}': not a folder; {_HINT}")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - a dependency of transformers
        raise ModelLoadError(f"Cannot load model '{name}': huggingface_hub is not installed") from exc
    try:
        # the cache first: a query must not wait on the network for a model already here
        path = snapshot_download(name, revision=revision, local_files_only=True, ignore_patterns=_IGNORE)
    except Exception:
        try:
            path = snapshot_download(name, revision=revision, ignore_patterns=_IGNORE)
        except Exception as exc:  # network, auth, not found, offline: all one message
            raise ModelLoadError(f"Cannot load model '{name}': {_reason(exc)}; {_HINT}") from exc
    folder = Path(path)
    return ModelFolder(name=name, path=folder, revision=folder.name)


def _reason(exc: BaseException) -> str:
    """Why a download failed, in a few words: the hub unreachable, or the error's first line."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, LocalEntryNotFoundError) and cause is not None:
        # huggingface_hub's message here is "Got: <the network error>" and a paragraph of advice
        return f"the Hugging Face hub cannot be reached ({type(cause).__name__}: {first_line(cause)})"
    return first_line(exc)


def fingerprint(folder: Path) -> str:
    """A short hash of a model folder: small config files by content, weights by name and size.

    Hashing gigabytes of weights on every open would cost seconds; names and sizes plus the
    configs tell models apart in practice.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts):
        relative = path.relative_to(folder).as_posix()
        size = path.stat().st_size
        digest.update(f"{relative}\0{size}\0".encode())
        if path.suffix in (".json", ".txt") and size < 1_000_000:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]

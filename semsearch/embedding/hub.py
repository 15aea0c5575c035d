"""Finding a model's folder: a local path, else the Hugging Face hub through huggingface_hub.

huggingface_hub reads its own variables (``HF_HOME``, ``HF_ENDPOINT`` for mirrors,
``HF_HUB_OFFLINE``), so semsearch gets the usual cache and mirror behaviour for free.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ModelLoadError, first_line

# Formats semsearch never reads: skip them so a hub download fetches one copy of the weights.
_IGNORE = ["onnx/*", "openvino/*", "*.onnx", "*.h5", "*.msgpack", "*.ot", "tf_model*", "flax_model*", "rust_model*"]
_HUB = " (HF_ENDPOINT selects a mirror; HF_HUB_OFFLINE=1 uses the local cache only)"
# what to pass instead, by what was being loaded: the embedding model or a reranker (cross-encoder)
_INSTEAD = {
    "model": "pass --model with a local sentence-transformers folder (see 'Offline quickstart' in the README) "
    "or a hub id",
    "reranker": "pass --rerank PATH with a local cross-encoder folder (for serve and mcp: --rerank-model PATH, "
    "or --rerank-model none to offer no reranker) or a hub id",
}
Kind = Literal["model", "reranker"]


@dataclass(frozen=True)
class ModelFolder:
    """A model resolved to a folder on disk."""

    name: str
    path: Path
    revision: str | None  # the hub commit, None for a local folder


def resolve(name: str, revision: str | None = None, kind: Kind = "model") -> ModelFolder:
    """Find ``name`` on disk or in the hub cache, downloading it when it is not cached. ``kind``
    (the embedding model or a reranker) picks the advice an error gives."""
    local = Path(name).expanduser()
    if local.is_dir():
        return ModelFolder(name=name, path=local.resolve(), revision=None)
    _check_hub_id(name, local, kind)
    from huggingface_hub import snapshot_download

    try:
        # the cache first: a query must not wait on the network for a model already here
        path = snapshot_download(name, revision=revision, local_files_only=True, ignore_patterns=_IGNORE)
    except Exception:
        try:
            path = snapshot_download(name, revision=revision, ignore_patterns=_IGNORE)
        except Exception as exc:  # network, auth, not found, offline: all one message
            raise _failure(name, kind, exc) from exc
    folder = Path(path)
    return ModelFolder(name=name, path=folder, revision=folder.name)


def check(name: str, revision: str | None = None, kind: Kind = "reranker") -> None:
    """ModelLoadError, with the message ``resolve`` would give, where ``name`` can be had
    neither from disk, nor from the hub cache, nor from the hub (which is asked whether it
    knows it); downloads nothing, so a server can check at start what it offers."""
    local = Path(name).expanduser()
    if local.is_dir():
        return
    _check_hub_id(name, local, kind)
    from huggingface_hub import HfApi, snapshot_download

    try:
        snapshot_download(name, revision=revision, local_files_only=True, ignore_patterns=_IGNORE)
        return
    except Exception:
        pass
    try:
        HfApi().model_info(name, revision=revision)
    except Exception as exc:
        raise _failure(name, kind, exc) from exc


def _check_hub_id(name: str, local: Path, kind: Kind) -> None:
    """ModelLoadError where ``name`` is meant as a path (it is not a folder) or hub ids are
    out of reach."""
    if local.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelLoadError(f"Cannot load {kind} '{name}': not a folder; {_INSTEAD[kind]}{_HUB}")
    try:
        import huggingface_hub  # noqa: F401
    except ImportError as exc:  # pragma: no cover - a dependency of transformers
        raise ModelLoadError(f"Cannot load {kind} '{name}': huggingface_hub is not installed") from exc


def _failure(name: str, kind: Kind, exc: BaseException) -> ModelLoadError:
    """Why ``name`` could not be had from the hub, and what to do instead."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, OfflineModeIsEnabled) or isinstance(cause, OfflineModeIsEnabled):
        return ModelLoadError(
            f"Cannot load {kind} '{name}': it is not in the local Hugging Face cache, and HF_HUB_OFFLINE=1 keeps "
            f"the hub from being asked; download it once with HF_HUB_OFFLINE unset, or {_INSTEAD[kind]}"
        )
    if isinstance(exc, LocalEntryNotFoundError) and cause is not None:
        # huggingface_hub's message here is "Got: <the network error>" and a paragraph of advice
        reason = f"the Hugging Face hub cannot be reached ({type(cause).__name__}: {first_line(cause)})"
    elif _network_error(exc):
        reason = f"the Hugging Face hub cannot be reached ({type(exc).__name__}: {first_line(exc)})"
    else:
        reason = first_line(exc)
    return ModelLoadError(f"Cannot load {kind} '{name}': {reason}; {_INSTEAD[kind]}{_HUB}")


def _network_error(exc: BaseException) -> bool:
    # huggingface_hub's HTTP client raises httpx's (or httpx2's) transport errors, and OSError
    # subclasses for sockets
    return isinstance(exc, OSError) or any(cls.__name__ == "TransportError" for cls in type(exc).__mro__)


def fingerprint(folder: Path) -> str:
    """A short hash of a model folder: small config files by content, weights by name and size.

    Hashing gigabytes of weights on every open would cost seconds; names and sizes plus the
    configs tell models apart in practice.
    """
    digest = hashlib.sha256()
    for path in model_files(folder):
        relative = path.relative_to(folder).as_posix()
        size = path.stat().st_size
        digest.update(f"{relative}\0{size}\0".encode())
        if path.suffix in (".json", ".txt") and size < 1_000_000:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def model_files(folder: Path) -> list[Path]:
    """Every file of a model folder, sorted, leaving out a git checkout's own."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts)

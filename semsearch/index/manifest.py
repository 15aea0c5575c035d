"""What an index was built with: reading its manifest and checking a request against it,
planning a new one, and telling whether a loaded model is the one it was built with."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ChunkSettings, Manifest
from ..errors import IndexCorruptError, InvalidOptionError, ModelMismatchError
from ..storage.store import Store

if TYPE_CHECKING:
    from ..embedding.encoder import Encoder


def same_model(model: str, manifest: Manifest) -> bool:
    """Whether ``model`` names the model ``manifest`` was built with (a moved local copy counts)."""
    if model == manifest.model.model:
        return True
    if Path(model).expanduser().is_dir() and manifest.model.revision is None:
        from ..embedding.hub import fingerprint

        return fingerprint(Path(model).expanduser()) == manifest.model.fingerprint
    return False


def same_pipeline_info(one: Manifest, other: Manifest) -> bool:
    """Whether two indexes hold vectors of the same model, prompts and chunks cut the same way."""
    pipeline = (one.model.fingerprint, one.model.dimension, one.chunking)
    if pipeline != (other.model.fingerprint, other.model.dimension, other.chunking):
        return False
    if None in (one.model.query_prompt, other.model.query_prompt):
        # an index of an earlier semsearch put one prompt (the same files' default) before both
        recorded = [m for m in (one.model, other.model) if m.query_prompt is not None]
        return all(m.query_prompt == m.document_prompt for m in recorded)
    return one.model.prompts("") == other.model.prompts("")


def same_pipeline(encoder: Encoder, manifest: Manifest) -> bool:
    """Whether ``encoder`` computes what the index was built with (same files, same size, the
    same prompts before queries and documents)."""
    built = manifest.model
    if (encoder.info.fingerprint, encoder.dimension) != (built.fingerprint, built.dimension):
        return False
    return same_prompts(encoder, manifest)


def same_prompts(encoder: Encoder, manifest: Manifest) -> bool:
    """Whether ``encoder`` puts the prompts before queries and documents that the index's were
    embedded with. An index of an earlier semsearch recorded none: it put the model's default
    prompt (usually none) before both."""
    prompts = encoder.prompts
    return manifest.model.prompts(prompts.default) == (prompts.query, prompts.document)


def read(store: Store, folder: Path, model: str | None, chunking: ChunkSettings | None) -> Manifest | None:
    """The manifest of the index whose database is ``store`` (None for one not written yet),
    checked against the ``model`` and ``chunking`` asked for, if any."""
    manifest = store.manifest()
    if manifest is None:
        if store.counts()["chunks"]:
            raise IndexCorruptError(f"{store.path} has chunks but no manifest; rebuild the index into a new --index")
        return None
    return checked(manifest, folder, model, chunking)


def checked(manifest: Manifest, folder: Path | str, model: str | None, chunking: ChunkSettings | None) -> Manifest:
    """``manifest``, once the ``model`` and ``chunking`` asked for (if any) are found to be its."""
    if model is not None and not same_model(model, manifest):
        raise ModelMismatchError(
            f"The index at {folder} was built with model '{manifest.model.model}' "
            f"({manifest.model.dimension}-d); '{model}' was asked for. Use the index's "
            "model, 'semsearch ingest --reindex --model NEW' to re-embed it, or another --index"
        )
    if chunking is not None and chunking != manifest.chunking:
        raise InvalidOptionError(
            f"The index at {folder} was built with {manifest.chunking.chunk_tokens}-token chunks and "
            f"{manifest.chunking.overlap_tokens}-token overlap; --reindex to change them"
        )
    return manifest


def plan(encoder: Encoder, chunking: ChunkSettings | None, index_type: str | None) -> Manifest:
    """The manifest a new index will get; checks the options before anything is written."""
    limit = encoder.max_text_tokens
    chunking = chunking or ChunkSettings(chunk_tokens=min(ChunkSettings().chunk_tokens, limit))
    if not 1 <= chunking.chunk_tokens <= limit:
        raise InvalidOptionError(f"--chunk-tokens must be between 1 and {limit} for this model")
    if not 0 <= chunking.overlap_tokens < chunking.chunk_tokens:
        raise InvalidOptionError("--overlap-tokens must be at least 0 and less than --chunk-tokens")
    return Manifest(model=encoder.info, chunking=chunking, index_type=index_type or "auto")


def check_model(encoder: Encoder, manifest: Manifest, model: str, folder: Path | str) -> None:
    """ModelMismatchError when ``encoder`` (loaded from ``model``) is not what the index was
    built with: the model's files changed under its name, or the prompts it puts before queries
    and documents did."""
    built = manifest.model
    if (encoder.info.fingerprint, encoder.dimension) != (built.fingerprint, built.dimension):
        raise ModelMismatchError(
            f"Model '{model}' is now {encoder.dimension}-d with fingerprint "
            f"{encoder.info.fingerprint}; the index at {folder} was built with "
            f"{built.dimension}-d, fingerprint {built.fingerprint}. Use the original model files, "
            "or 'semsearch ingest --reindex' to re-embed with these"
        )
    if not same_prompts(encoder, manifest):
        query, document = built.prompts(encoder.prompts.default)
        raise ModelMismatchError(
            f"Model '{model}' puts {encoder.prompts.query!r} before queries and {encoder.prompts.document!r} "
            f"before documents; the index at {folder} was embedded with {query!r} and {document!r}. "
            "Use 'semsearch ingest --reindex' to re-embed with these prompts, or another --index"
        )

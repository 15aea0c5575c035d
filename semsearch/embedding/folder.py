"""A sentence-transformers model folder read for the encoder: the stages ``modules.json`` lists,
the prompts, the token limit, and the tokenizer set up as sentence-transformers sets it
(lowercasing inside it, truncation), loaded quietly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError, UnsupportedModelError

# sentence-transformers has used several names for the Transformer stage's config over the years
_TRANSFORMER_CONFIGS = (
    "sentence_bert_config.json",
    "sentence_roberta_config.json",
    "sentence_distilbert_config.json",
    "sentence_camembert_config.json",
    "sentence_albert_config.json",
    "sentence_xlm-roberta_config.json",
    "sentence_xlnet_config.json",
)

# models whose position ids start after the pad id, as RoBERTa's do
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "mpnet", "data2vec-text"}


POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")

# The older boolean form (xiaobu's), in the order sentence-transformers concatenates them.
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON config file, as a ModelLoadError naming the file when it is unreadable."""
    data: dict[str, Any] = read_json_as(path, dict)
    return data


def read_json_as(path: Path, kind: type) -> Any:
    """Read a JSON file holding a ``kind`` (dict: an object, list: an array), as a
    ModelLoadError naming the file when it is unreadable or holds something else."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Cannot read {path}: {exc}") from exc
    if not isinstance(data, kind):
        raise ModelLoadError(f"Cannot read {path}: expected a JSON {'object' if kind is dict else 'array'}")
    return data


def pooling_modes(config: dict[str, Any]) -> tuple[str, ...]:
    """The pooling modes a ``1_Pooling/config.json`` asks for, in either of its two forms."""
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(m for key, m in _LEGACY_POOLING_KEYS.items() if config.get(key, False))
        modes = modes or ("mean",)
    for mode in modes:
        if mode not in POOLING_MODES:
            raise UnsupportedModelError(f"Unknown pooling mode {mode!r}; known: {', '.join(POOLING_MODES)}")
    return modes


@dataclass(frozen=True)
class Prompts:
    """The texts put before inputs, resolved from ``config_sentence_transformers.json`` as
    sentence-transformers resolves them."""

    default: str = ""  # SentenceTransformer.encode: prompts[default_prompt_name]
    query: str = ""  # encode_query
    document: str = ""  # encode_document


@dataclass
class Stages:
    """What ``modules.json`` lists, resolved to folders and configs."""

    transformer: Path
    transformer_config: dict[str, Any]
    pooling: tuple[str, ...] = ("mean",)
    pooling_config: dict[str, Any] = field(default_factory=dict)
    dense: list[Path] = field(default_factory=list)
    normalize: bool = False
    prompts: Prompts = field(default_factory=Prompts)


def read_stages(folder: Path) -> Stages:
    modules_file = folder / "modules.json"
    if not modules_file.exists():
        # a plain transformers folder: sentence-transformers wraps it with mean pooling
        if not (folder / "config.json").exists():
            raise ModelLoadError(f"{folder} has neither modules.json nor config.json: not a model folder")
        return Stages(transformer=folder, transformer_config=_transformer_config(folder))
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Cannot read {modules_file}: {exc}") from exc
    stages: Stages | None = None
    for module in sorted(modules, key=lambda m: m.get("idx", 0)):
        kind = str(module.get("type", "")).rpartition(".")[2]
        path = folder / module.get("path", "")
        if kind == "Transformer" and stages is None:
            stages = Stages(transformer=path, transformer_config=_transformer_config(path))
        elif stages is None:
            raise UnsupportedModelError(f"{modules_file}: the first stage must be a Transformer, not {kind!r}")
        elif kind == "Pooling":
            stages.pooling_config = read_json(path / "config.json")
            stages.pooling = pooling_modes(stages.pooling_config)
        elif kind == "Dense":
            stages.dense.append(path)
        elif kind == "Normalize":
            stages.normalize = True  # its folder is optional: all-MiniLM-L6-v2 ships none
        else:
            raise UnsupportedModelError(f"{modules_file}: stage type {module.get('type')!r} is not supported")
    if stages is None:
        raise ModelLoadError(f"{modules_file} lists no Transformer stage")
    stages.prompts = prompts = read_prompts(folder)
    if any((prompts.default, prompts.query, prompts.document)) and stages.pooling_config.get("include_prompt") is False:
        raise UnsupportedModelError(f"{folder}: pooling that excludes the prompt is not supported")
    return stages


def read_prompts(folder: Path) -> Prompts:
    """The default, query and document prompts of a model folder, as sentence-transformers 6.2
    resolves them: it starts from empty ``query`` and ``document`` prompts and fills in the saved
    ones, so ``encode_query`` reads ``query`` and ``encode_document`` reads ``document`` (its
    ``passage`` and ``corpus`` candidates come after ``document``, which is always there), and
    neither falls back to the default prompt, which only ``encode`` uses."""
    config_file = folder / "config_sentence_transformers.json"
    config = read_json(config_file) if config_file.exists() else {}
    prompts: dict[str, str | None] = {"query": None, "document": None}
    for name, text in (config.get("prompts") or {}).items():
        if prompts.get(name) is None:
            prompts[name] = text
    resolved = {name: str(text or "") for name, text in prompts.items()}
    name = config.get("default_prompt_name")
    if name and name not in resolved:
        raise ModelLoadError(f"{config_file}: default prompt {name!r} is not among its prompts")
    document = next(resolved[n] for n in ("document", "passage", "corpus") if n in resolved)
    return Prompts(default=resolved[name] if name else "", query=resolved["query"], document=document)


def _transformer_config(folder: Path) -> dict[str, Any]:
    for name in _TRANSFORMER_CONFIGS:
        if (folder / name).exists():
            return read_json(folder / name)
    return {}


@contextmanager
def quiet_transformers() -> Iterator[None]:
    # loading prints a progress bar and notes on unused weights (the BERT pooler): not for users
    from transformers.utils import logging

    bars = logging.is_progress_bar_enabled()
    verbosity = logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def max_seq_length(config: dict[str, Any], tokenizer: Any, model_config: Any) -> int:
    # the same rule as sentence-transformers: the saved max_seq_length, else the tokenizer's
    # limit capped by the model's position embeddings
    limit = getattr(model_config, "max_position_embeddings", None)
    if config.get("max_seq_length"):
        length = int(config["max_seq_length"])
    else:
        length = int(tokenizer.model_max_length)
        if limit and limit > 0:
            length = min(length, int(limit))
    if limit and getattr(model_config, "model_type", None) in _OFFSET_POSITIONS:
        # RoBERTa's family numbers positions from pad id + 1 (XLM-R: 514 embeddings, 512 usable);
        # sentence-transformers would fail on a longer input, so the limit stops there
        length = min(length, int(limit) - int(getattr(model_config, "pad_token_id", 1) or 0) - 1)
    return length


def lowercase_normalizer(tokenizer: Any) -> None:
    # sentence-transformers lowercases inside the tokenizer, which keeps offsets into the original
    from tokenizers import normalizers

    backend = tokenizer.backend_tokenizer
    current = backend.normalizer
    parts = [normalizers.Lowercase()]
    if current is not None:
        parts.append(current)
    backend.normalizer = normalizers.Sequence(parts)

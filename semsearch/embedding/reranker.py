"""The hand-assembled cross-encoder: (query, passage) pairs through the tokenizer and
``AutoModelForSequenceClassification``, then the activation the model's config implies.

The scores equal ``sentence_transformers.CrossEncoder(folder).predict(pairs)`` (see
``sentence_transformers/cross_encoder/model.py``): pairs truncated longest-first to the
tokenizer's limit capped by the model's position embeddings, one logit per pair, and the saved
activation (``config_sentence_transformers.json``'s ``activation_fn``, else ``config.json``'s
``sentence_transformers.activation_fn`` or the older ``sbert_ce_default_activation_function``,
only ``torch.*`` classes), else Sigmoid. BERT (bge-reranker-base/large) and XLM-RoBERTa
(bge-reranker-v2-m3) layouts are verified against the reference on tiny random folders.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelLoadError, UnsupportedModelError
from ..query import DEFAULT_RERANKER
from .folder import quiet_transformers
from .hub import fingerprint, resolve
from .runtime import MAX_ROWS, padded_inputs, pick_device, token_batches
from .stages import read_json, read_json_as

if TYPE_CHECKING:
    import torch

_SIGMOID = "torch.nn.modules.activation.Sigmoid"


class Reranker:
    """Scores how well passages answer a query. Build one with ``Reranker.load``."""

    def __init__(self, folder: Path, name: str, revision: str | None, device: str, fp32: bool) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.name = name
        self.revision = revision
        self.fingerprint = fingerprint(folder)
        self.device = device
        self.dtype = torch.float32 if fp32 or device == "cpu" else torch.float16
        path, settings = _transformer_folder(folder)
        try:
            with quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(str(path))
                self.model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch.float32)
        except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ...
            raise ModelLoadError(f"Cannot load the reranker in {path}: {exc}") from exc
        if int(self.model.config.num_labels) != 1:
            raise UnsupportedModelError(
                f"{name} has {self.model.config.num_labels} labels; a reranker gives one score per pair"
            )
        if not getattr(self.tokenizer, "is_fast", False):
            raise UnsupportedModelError(f"{type(self.tokenizer).__name__} is not a fast (tokenizers) tokenizer")
        self.max_seq_length = _max_length(settings, self.tokenizer, self.model.config)
        self.activation_name = _activation_name(settings, self.model.config)
        self.activation = _activation(self.activation_name)
        self._pairs = _pair_tokenizer(self.tokenizer, self.max_seq_length)
        names = self.tokenizer.model_input_names
        self._input_names = [n for n in ("input_ids", "token_type_ids", "attention_mask") if n in names]
        self.model.to(device=device, dtype=self.dtype).eval()

    @classmethod
    def load(
        cls,
        model: str | os.PathLike[str] = DEFAULT_RERANKER,
        device: str = "auto",
        *,
        revision: str | None = None,
        fp32: bool = False,
    ) -> Reranker:
        """Assemble the cross-encoder of a hub id or a local folder (the hub cache first, then
        the hub, ``HF_ENDPOINT`` for a mirror). ``device`` is ``auto`` (CUDA when present),
        ``cpu``, ``cuda`` or ``cuda:N``; on CUDA it runs in float16 unless ``fp32`` is set."""
        model = os.fspath(model)
        folder = resolve(model, revision, kind="reranker")
        return cls(folder.path, model, folder.revision, pick_device(device), fp32)

    def score(self, query: str, passages: Sequence[str], max_batch_tokens: int | None = None) -> np.ndarray:
        """How well each passage answers ``query``: float32, one score per passage, higher better."""
        return self.predict([(query, passage) for passage in passages], max_batch_tokens)

    def predict(self, pairs: Sequence[tuple[str, str]], max_batch_tokens: int | None = None) -> np.ndarray:
        """The score of each (query, passage) pair, as ``CrossEncoder.predict`` gives it.

        Pairs are sorted by token count and cut into batches of at most ``max_batch_tokens``
        padded tokens (default 32 times the model's limit)."""
        import torch

        out = np.empty(len(pairs), dtype=np.float32)
        if not pairs:
            return out
        encodings = self._pairs.encode_batch_fast([(str(q), str(p)) for q, p in pairs])
        lengths = np.fromiter(map(len, encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")
        budget = max_batch_tokens or 32 * self.max_seq_length
        with torch.inference_mode():
            for first, last in token_batches(lengths[order], budget, MAX_ROWS):
                rows = order[first:last]
                batch = self._batch([encodings[i] for i in rows], int(lengths[rows[0]]))
                logits = self.model(**batch).logits.float()
                out[rows] = self.activation(logits).squeeze(-1).cpu().numpy()
        return out

    def token_counts(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        """How many tokens the model reads for each pair (special tokens in, truncated)."""
        return [len(e) for e in self._pairs.encode_batch_fast([(str(q), str(p)) for q, p in pairs])] if pairs else []

    def describe(self) -> dict[str, Any]:
        """What identifies this reranker, for reports."""
        return {"model": self.name, "revision": self.revision, "fingerprint": self.fingerprint}

    def _batch(self, encodings: list[Any], width: int) -> dict[str, torch.Tensor]:
        """The model's inputs for ``encodings`` as (rows, width) tensors on the device."""
        return padded_inputs(encodings, width, self.tokenizer, self._input_names, self.device)


def _transformer_folder(folder: Path) -> tuple[Path, dict[str, Any]]:
    """The folder holding the transformer, and the sentence-transformers settings that apply:
    ``max_seq_length`` (from the Transformer stage's config) and ``activation_fn``."""
    settings: dict[str, Any] = {}
    st_config = folder / "config_sentence_transformers.json"
    if st_config.exists():
        saved = read_json(st_config)
        if saved.get("default_prompt_name"):
            raise UnsupportedModelError(f"{st_config}: a reranker with a default prompt is not supported")
        if "activation_fn" in saved:
            settings["activation_fn"] = saved["activation_fn"]
    modules_file = folder / "modules.json"
    if not modules_file.exists():
        return folder, settings
    modules = read_json_as(modules_file, list)
    kinds = [str(m.get("type", "")).rpartition(".")[2] for m in modules]
    if kinds != ["Transformer"]:
        raise UnsupportedModelError(f"{modules_file}: a reranker of stages {kinds} is not supported")
    path = folder / modules[0].get("path", "")
    stage = path / "sentence_bert_config.json"
    if stage.exists():
        config = read_json(stage)
        if config.get("transformer_task", "sequence-classification") != "sequence-classification":
            raise UnsupportedModelError(f"{stage}: task {config['transformer_task']!r} is not supported")
        if config.get("max_seq_length"):
            settings["max_seq_length"] = int(config["max_seq_length"])
    return path, settings


def _max_length(settings: dict[str, Any], tokenizer: Any, model_config: Any) -> int:
    # CrossEncoder truncates to the tokenizer's model_max_length, capped by the position
    # embeddings unless a max_seq_length was saved
    if settings.get("max_seq_length"):
        return int(settings["max_seq_length"])
    length = int(tokenizer.model_max_length)
    limit = getattr(model_config, "max_position_embeddings", None)
    if limit and limit != -1:
        length = min(length, int(limit))
    return length


def _activation_name(settings: dict[str, Any], model_config: Any) -> str:
    # in CrossEncoder's order: config_sentence_transformers.json, then config.json (its
    # sentence_transformers entry, else the key before v4), else Sigmoid; a path that is not a
    # torch class is passed over with a warning, as sentence-transformers does without
    # trust_remote_code
    st = getattr(model_config, "sentence_transformers", None)
    saved = st.get("activation_fn") if isinstance(st, dict) and "activation_fn" in st else None
    saved = saved or getattr(model_config, "sbert_ce_default_activation_function", None)
    for path in (settings.get("activation_fn"), saved):
        if path and str(path).startswith("torch."):
            return str(path)
        if path:
            warnings.warn(f"Reranker activation {path!r} is not a torch class; passed over", stacklevel=3)
    return _SIGMOID


def _activation(name: str) -> torch.nn.Module:
    import torch

    module_name, _, class_name = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ModelLoadError(f"Unknown reranker activation {name!r}") from exc
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ModelLoadError(f"Reranker activation {name!r} is not a torch.nn.Module class")
    return cls()


def _pair_tokenizer(tokenizer: Any, max_length: int) -> Any:
    """A private copy of the fast tokenizer's backend that encodes pairs as the tokenizer does
    with ``truncation="longest_first"`` to ``max_length`` (special tokens and type ids included)."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.enable_truncation(max_length, stride=0, strategy="longest_first", direction=tokenizer.truncation_side)
    return backend

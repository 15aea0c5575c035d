"""The hand-assembled pipelines as PyTorch modules, and running them in PyTorch.

``assemble_encoder`` builds transformer -> Pooling -> Dense -> Normalize from a model folder's
stages (sentence-transformers' ``SentenceTransformer``), ``assemble_reranker`` transformer ->
logit -> activation (its ``CrossEncoder``). Each gives one ``nn.Module`` from the model's inputs
to its outputs: ``TorchRunner`` runs it on the CPU or a GPU, and ``converted.py`` converts the
same module for OpenVINO, so both engines compute one graph. torch and transformers are imported
here, so only the paths that assemble a model import this module.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModelLoadError, UnsupportedModelError
from .folder import Stages, lowercase_normalizer, max_seq_length, quiet_transformers
from .inputs import InputSpec
from .stages import Dense, pool

# causal decoders among the model types semsearch runs (Qwen3-Embedding) and their relatives
_DECODERS = {"qwen2", "qwen3", "llama", "mistral", "gemma", "gemma2", "gemma3_text"}
_SIGMOID = "torch.nn.modules.activation.Sigmoid"
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Assembled:
    """A pipeline as one module, with what its inputs and outputs need."""

    module: nn.Module  # the model's inputs (by name) -> embeddings or scores
    spec: InputSpec
    tokenizer: str  # the tokenizers backend as sentence-transformers sets it up, saved as JSON
    meta: dict[str, Any] = field(default_factory=dict)  # dimension, dense, activation, ...
    pairs: bool = False  # inputs are (query, passage) pairs: a cross-encoder


class EmbeddingPipeline(nn.Module):
    """transformer -> pooling -> Dense stages -> Normalize, as ``SentenceTransformer`` runs them.

    With ``own_mask`` a decoder (Qwen3: causal, left padding) gets its attention mask from here
    as an additive 4-D mask, -1e4 where a token may not look: the same tokens seen with the same
    weights (exp(-1e4) is 0 in float32 and bfloat16), but a row of left padding, which may look
    at nothing, averages over what it may not see instead of giving NaN. PyTorch's SDPA handles
    such rows itself; converted for OpenVINO, the mask transformers builds gives NaN there,
    which then reaches every row of the batch (0 x NaN). The pad rows are never pooled."""

    def __init__(
        self,
        transformer: nn.Module,
        modes: tuple[str, ...],
        dense: list[Dense],
        normalize: bool,
        own_mask: bool = False,
    ) -> None:
        super().__init__()
        self.transformer = transformer
        # a decoder (Qwen3) would fill a key-value cache for generation: nothing to convert or keep
        self.cacheless = "use_cache" in inspect.signature(transformer.forward).parameters
        config = getattr(transformer, "config", None)
        decoder = getattr(config, "is_decoder", False) or getattr(config, "model_type", "") in _DECODERS
        self.own_mask = own_mask and bool(decoder)
        self.modes = modes
        self.dense = nn.ModuleList(dense)
        self.normalize = normalize

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        inputs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        if self.cacheless:
            inputs["use_cache"] = False
        if self.own_mask:
            width = attention_mask.shape[1]
            causal = torch.ones(width, width, dtype=torch.bool, device=attention_mask.device).tril()
            seen = causal[None, None] & attention_mask[:, None, None, :].bool()
            inputs["attention_mask"] = torch.zeros(seen.shape, dtype=torch.float32).masked_fill(~seen, -1e4)
        hidden = self.transformer(**inputs).last_hidden_state
        embeddings = pool(hidden, attention_mask, self.modes)
        for stage in self.dense:
            embeddings = stage(embeddings)
        if self.normalize:
            embeddings = nn.functional.normalize(embeddings, p=2, dim=-1)
        return embeddings


class ScoringPipeline(nn.Module):
    """A sequence-classification model's one logit per input, through its activation."""

    def __init__(self, model: nn.Module, activation: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.activation = activation

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        logits = self.model(**inputs).logits.float()
        return self.activation(logits).squeeze(-1)


class TorchRunner:
    """Runs an assembled module in PyTorch on ``device`` at ``precision``."""

    runtime = "torch"

    def __init__(self, module: nn.Module, device: str, precision: str) -> None:
        self.device = device
        self.precision = precision
        self.dtype = _DTYPES[precision]
        self.module = module.to(device=device, dtype=self.dtype).eval()

    def run(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """The module's float32 output for a batch of int64 input arrays."""
        cuda = self.device.startswith("cuda")
        with torch.inference_mode():
            tensors = {
                name: torch.from_numpy(array).pin_memory().to(self.device, non_blocking=True)
                if cuda
                else torch.from_numpy(array)
                for name, array in arrays.items()
            }
            return self.module(**tensors).float().cpu().numpy()


def assemble_encoder(stages: Stages, for_conversion: bool = False) -> Assembled:
    """The embedding pipeline of a model folder's stages, in float32 on the CPU;
    ``for_conversion``: a decoder gets its attention mask from the pipeline (see
    ``EmbeddingPipeline``)."""
    from transformers import AutoModel

    path = stages.transformer
    config = stages.transformer_config
    tokenizer, model = _pretrained(path, AutoModel, "the transformer")
    limit = max_seq_length(config, tokenizer, model.config)
    if config.get("do_lower_case"):
        lowercase_normalizer(tokenizer)
    dense = [Dense(p) for p in stages.dense]
    dimension = dense[-1].out_features if dense else int(model.config.hidden_size) * len(stages.pooling)
    return Assembled(
        module=EmbeddingPipeline(model, stages.pooling, dense, stages.normalize, for_conversion).eval(),
        spec=InputSpec.of(tokenizer, limit),
        tokenizer=tokenizer.backend_tokenizer.to_str(),
        meta={"dimension": dimension, "dense": [d.describe() for d in dense]},
    )


def assemble_reranker(path: Path, settings: dict[str, Any], name: str) -> Assembled:
    """The scoring pipeline of a cross-encoder's transformer folder, in float32 on the CPU;
    ``settings`` as ``reranker.transformer_folder`` reads them."""
    from transformers import AutoModelForSequenceClassification

    tokenizer, model = _pretrained(path, AutoModelForSequenceClassification, "the reranker")
    if int(model.config.num_labels) != 1:
        raise UnsupportedModelError(f"{name} has {model.config.num_labels} labels; a reranker gives one score per pair")
    activation = activation_name(settings, model.config)
    return Assembled(
        module=ScoringPipeline(model, torch_activation(activation)).eval(),
        spec=InputSpec.of(tokenizer, max_length(settings, tokenizer, model.config)),
        tokenizer=tokenizer.backend_tokenizer.to_str(),
        meta={"activation": activation},
        pairs=True,
    )


def _pretrained(path: Path, model_class: Any, what: str) -> tuple[Any, Any]:
    """A folder's fast tokenizer and its model in float32 (``model_class``: an Auto class), loaded
    quietly; ModelLoadError naming ``what`` where transformers cannot load them."""
    from transformers import AutoTokenizer

    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            model = model_class.from_pretrained(str(path), dtype=torch.float32)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ...
        raise ModelLoadError(f"Cannot load {what} in {path}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise UnsupportedModelError(f"{type(tokenizer).__name__} is not a fast (tokenizers) tokenizer")
    return tokenizer, model


def max_length(settings: dict[str, Any], tokenizer: Any, model_config: Any) -> int:
    # CrossEncoder truncates to the tokenizer's model_max_length, capped by the position
    # embeddings unless a max_seq_length was saved
    if settings.get("max_seq_length"):
        return int(settings["max_seq_length"])
    length = int(tokenizer.model_max_length)
    limit = getattr(model_config, "max_position_embeddings", None)
    if limit and limit != -1:
        length = min(length, int(limit))
    return length


def activation_name(settings: dict[str, Any], model_config: Any) -> str:
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


def torch_activation(name: str) -> torch.nn.Module:
    import torch

    module_name, _, class_name = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ModelLoadError(f"Unknown reranker activation {name!r}") from exc
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ModelLoadError(f"Reranker activation {name!r} is not a torch.nn.Module class")
    return cls()

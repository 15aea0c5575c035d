"""The stages after the transformer, each built from its own saved folder.

Mirrors sentence-transformers' ``Pooling``, ``Dense`` and ``Normalize`` modules (see
``sentence_transformers/sentence_transformer/modules/pooling.py`` and ``base/modules/dense.py``):
the config keys are the constructor arguments, and the forward passes compute the same thing.
torch is imported here, so only the encoder imports this module.
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ModelLoadError, UnsupportedModelError
from .folder import read_json


def pool(token_embeddings: Tensor, attention_mask: Tensor, modes: tuple[str, ...]) -> Tensor:
    """Pool token embeddings (batch, seq, hidden) into sentence embeddings, one block per mode."""
    tokens = token_embeddings
    # half-precision sums lose digits; accumulate in fp32 as sentence-transformers does
    acc = torch.float32 if tokens.dtype in (torch.float16, torch.bfloat16) else tokens.dtype
    mask = attention_mask.unsqueeze(-1)
    outputs: list[Tensor] = []
    for mode in modes:
        if mode == "cls":
            first = attention_mask.to(torch.int).argmax(dim=1)
            index = first.view(-1, 1, 1).expand(-1, 1, tokens.shape[-1])
            outputs.append(torch.gather(tokens, 1, index).squeeze(1))
        elif mode == "max":
            padded = mask.expand_as(tokens).to(tokens.dtype) == 0
            outputs.append(tokens.masked_fill(padded, float("-inf")).max(dim=1).values)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            weights = mask.to(tokens.dtype)
            total = (tokens * weights).sum(dim=1, dtype=acc)
            count = torch.clamp(weights.sum(dim=1, dtype=acc), min=1e-9)
            denominator = count if mode == "mean" else torch.sqrt(count)
            outputs.append((total / denominator).to(tokens.dtype))
        elif mode == "weightedmean":
            positions = torch.arange(1, tokens.shape[1] + 1, device=tokens.device, dtype=acc).view(1, -1, 1)
            # weights start at the first real token, so left padding does not shift them
            positions = positions - attention_mask.to(torch.int32).argmax(dim=1).view(-1, 1, 1)
            weights = mask.to(acc) * positions
            total = (tokens * weights).sum(dim=1)
            outputs.append((total / torch.clamp(weights.sum(dim=1), min=1e-9)).to(tokens.dtype))
        elif mode == "lasttoken":
            seq_len = tokens.shape[1]
            values, flipped = attention_mask.flip(1).max(1)
            flipped = torch.where(values == 0, seq_len - 1, flipped)
            index = (seq_len - flipped - 1).view(-1, 1, 1).expand(-1, 1, tokens.shape[-1])
            masked = tokens * mask.expand_as(tokens).to(tokens.dtype)
            outputs.append(torch.gather(masked, 1, index).squeeze(1))
    return torch.cat(outputs, dim=-1)


class Dense(nn.Module):
    """A saved ``Dense`` stage: Linear, then the saved activation, optionally plus a residual."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        config = read_json(folder / "config.json")
        for key in ("module_input_name", "module_output_name"):
            if config.get(key, "sentence_embedding") not in (None, "sentence_embedding"):
                raise UnsupportedModelError(f"{folder}: Dense over {config[key]!r} is not supported")
        try:
            self.in_features = int(config["in_features"])
            self.out_features = int(config["out_features"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"{folder / 'config.json'}: missing or bad in_features/out_features") from exc
        bias = bool(config.get("bias", True))
        self.activation_name = str(config.get("activation_function", "torch.nn.modules.activation.Tanh"))
        self.activation = _activation(self.activation_name)
        self.linear = nn.Linear(self.in_features, self.out_features, bias=bias)
        self.use_residual = bool(config.get("use_residual", False))
        if self.use_residual and self.in_features != self.out_features:
            self.residual = nn.Linear(self.in_features, self.out_features, bias=False)
        state = load_weights(folder)
        try:
            self.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelLoadError(f"{folder}: weights do not fit the config: {exc}") from exc

    def forward(self, x: Tensor) -> Tensor:
        out = self.activation(self.linear(x))
        if self.use_residual:
            out = out + (x if self.in_features == self.out_features else self.residual(x))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "activation": self.activation_name,
        }


def _activation(name: str) -> nn.Module:
    # sentence-transformers only instantiates torch.* classes without trust_remote_code, and
    # otherwise falls back to its constructor default, Tanh; do the same so outputs match.
    if name.startswith("torch."):
        module_name, _, class_name = name.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise ModelLoadError(f"Unknown Dense activation function {name!r}") from exc
        if isinstance(cls, type) and issubclass(cls, nn.Module):
            return cls()
        raise ModelLoadError(f"Dense activation {name!r} is not a torch.nn.Module class")
    warnings.warn(
        f"Dense activation {name!r} is not a torch class; using Tanh as sentence-transformers does",
        stacklevel=2,
    )
    return nn.Tanh()


def load_weights(folder: Path) -> dict[str, Tensor]:
    """A module folder's weights: ``model.safetensors`` first, else ``pytorch_model.bin``."""
    safetensors_file = folder / "model.safetensors"
    bin_file = folder / "pytorch_model.bin"
    try:
        if safetensors_file.exists():
            from safetensors.torch import load_file

            return load_file(str(safetensors_file))
        if bin_file.exists():
            import zipfile

            # memory-mapped where the file allows it: only the zip format (torch >= 1.6) does
            mmap = zipfile.is_zipfile(bin_file)
            return torch.load(bin_file, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # a corrupt file raises many different types
        raise ModelLoadError(f"Cannot load weights in {folder}: {exc}") from exc
    raise ModelLoadError(f"No model.safetensors or pytorch_model.bin in {folder}")

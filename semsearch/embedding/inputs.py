"""What a model takes in, without torch or transformers: how a tokenizer pads and truncates, its
saved backend, and the padded arrays of a batch.

The transformers tokenizer is read once (when the pipeline is assembled or converted) into an
``InputSpec``; a converted model keeps the spec and the backend's JSON beside it, so a process
that only runs the converted model loads neither torch nor transformers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")


@dataclass(frozen=True)
class InputSpec:
    """How inputs are cut and padded, as the model's transformers tokenizer does it."""

    names: tuple[str, ...]  # the model's inputs, of INPUT_NAMES, in that order
    pad_id: int
    pad_type_id: int
    padding_side: str  # "right" or "left" (decoders: Qwen3)
    truncation_side: str
    max_seq_length: int

    @classmethod
    def of(cls, tokenizer: Any, max_seq_length: int) -> InputSpec:
        """The spec of a transformers fast tokenizer."""
        accepted = tokenizer.model_input_names
        return cls(
            names=tuple(n for n in INPUT_NAMES if n in accepted),
            pad_id=int(tokenizer.pad_token_id or 0),
            pad_type_id=int(tokenizer.pad_token_type_id),
            padding_side=str(tokenizer.padding_side),
            truncation_side=str(tokenizer.truncation_side),
            max_seq_length=int(max_seq_length),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        return cls(**{**data, "names": tuple(data["names"])})

    def tokenizers(self, saved: str) -> tuple[Any, Any]:
        """Two private copies of a saved tokenizers backend: one for plain text (no special
        tokens, no truncation) and one for model inputs (truncated longest-first to
        ``max_seq_length``, as sentence-transformers and CrossEncoder truncate). Private copies
        keep the settings fixed, so chunking in one thread and encoding in another never see each
        other's."""
        from tokenizers import Tokenizer

        text, inputs = Tokenizer.from_str(saved), Tokenizer.from_str(saved)
        for backend in (text, inputs):
            backend.no_padding()
            backend.no_truncation()
        inputs.enable_truncation(
            self.max_seq_length, stride=0, strategy="longest_first", direction=self.truncation_side
        )
        return text, inputs

    def arrays(self, encodings: Sequence[Any], width: int) -> dict[str, np.ndarray]:
        """The inputs of ``encodings`` (tokenizers' Encoding) as int64 (rows, width) arrays,
        padded on the tokenizer's side with its pad id and pad type id."""
        ids = np.full((len(encodings), width), self.pad_id, dtype=np.int64)
        types = np.full_like(ids, self.pad_type_id)
        mask = np.zeros_like(ids)
        left = self.padding_side == "left"
        for row, encoding in enumerate(encodings):
            cells = slice(width - len(encoding), width) if left else slice(0, len(encoding))
            ids[row, cells] = encoding.ids
            types[row, cells] = encoding.type_ids
            mask[row, cells] = 1
        arrays = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
        return {name: arrays[name] for name in self.names}


def special_tokens(backend: Any) -> int:
    """How many special tokens ``backend`` adds to one text (its post-processor's count)."""
    processor = backend.post_processor
    return int(processor.num_special_tokens_to_add(False)) if processor is not None else 0

"""The hand-assembled cross-encoder: (query, passage) pairs through the tokenizer and
``AutoModelForSequenceClassification``, then the activation the model's config implies.

The scores equal ``sentence_transformers.CrossEncoder(folder).predict(pairs)`` (see
``sentence_transformers/cross_encoder/model.py``): pairs truncated longest-first to the
tokenizer's limit capped by the model's position embeddings, one logit per pair, and the saved
activation (``config_sentence_transformers.json``'s ``activation_fn``, else ``config.json``'s
``sentence_transformers.activation_fn`` or the older ``sbert_ce_default_activation_function``,
only ``torch.*`` classes), else Sigmoid. BERT (bge-reranker-base/large) and XLM-RoBERTa
(bge-reranker-v2-m3) layouts are verified against the reference on tiny random folders.
The scoring module is built in ``pipeline.py`` and runs in PyTorch or, converted, in OpenVINO
(``converted.py``), as the encoder's does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UnsupportedModelError
from ..query import DEFAULT_RERANKER
from .folder import read_json, read_json_as
from .hub import fingerprint, resolve
from .inputs import InputSpec
from .runtime import MAX_ROWS, load_pipeline, token_batches

if TYPE_CHECKING:
    from .pipeline import Assembled
    from .precision import Choice


class Reranker:
    """Scores how well passages answer a query. Build one with ``Reranker.load``."""

    def __init__(
        self,
        name: str,
        revision: str | None,
        fingerprint: str,
        spec: InputSpec,
        tokenizer: str,
        runner: Any,
        choice: Choice,
        activation: str,
    ) -> None:
        self.name = name
        self.revision = revision
        self.fingerprint = fingerprint
        self.spec = spec
        self.runner = runner  # pipeline.TorchRunner or converted.OpenVINORunner
        self.choice = choice
        self.device = choice.device
        self.max_seq_length = spec.max_seq_length
        self.activation_name = activation
        _, self._pairs = spec.tokenizers(tokenizer)

    @classmethod
    def load(
        cls,
        model: str | os.PathLike[str] = DEFAULT_RERANKER,
        device: str = "auto",
        *,
        revision: str | None = None,
        fp32: bool = False,
        precision: str = "auto",
        runtime: str = "auto",
        threads: int | None = None,
        progress: bool | None = None,
    ) -> Reranker:
        """Assemble the cross-encoder of a hub id or a local folder (the hub cache first, then
        the hub, ``HF_ENDPOINT`` for a mirror). ``device``, ``runtime``, ``precision`` (``fp32``
        for ``precision="fp32"``), ``threads`` and ``progress`` as ``Encoder.load`` takes them."""
        from .precision import choose

        model = os.fspath(model)
        folder = resolve(model, revision, kind="reranker")
        path, settings = transformer_folder(folder.path)
        choice = choose(device, runtime, "fp32" if fp32 else precision)
        stamp = fingerprint(folder.path)
        # the same module in both engines: nothing of a cross-encoder changes for conversion
        loaded = load_pipeline(
            "reranker", folder.path, stamp, choice, lambda _: _assemble(path, settings, model), threads=threads,
            progress=progress,
        )  # fmt: skip
        activation = str(loaded.meta["activation"])
        return cls(
            model, folder.revision, stamp, loaded.spec, loaded.tokenizer, loaded.runner, loaded.choice, activation
        )

    def score(self, query: str, passages: Sequence[str], max_batch_tokens: int | None = None) -> np.ndarray:
        """How well each passage answers ``query``: float32, one score per passage, higher better."""
        return self.predict([(query, passage) for passage in passages], max_batch_tokens)

    def predict(self, pairs: Sequence[tuple[str, str]], max_batch_tokens: int | None = None) -> np.ndarray:
        """The score of each (query, passage) pair, as ``CrossEncoder.predict`` gives it.

        Pairs are sorted by token count and cut into batches of at most ``max_batch_tokens``
        padded tokens (default 32 times the model's limit)."""
        out = np.empty(len(pairs), dtype=np.float32)
        if not pairs:
            return out
        encodings = self._pairs.encode_batch_fast([(str(q), str(p)) for q, p in pairs])
        lengths = np.fromiter(map(len, encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")
        budget = max_batch_tokens or 32 * self.max_seq_length
        for first, last in token_batches(lengths[order], budget, MAX_ROWS):
            rows = order[first:last]
            out[rows] = self.runner.run(self.spec.arrays([encodings[i] for i in rows], int(lengths[rows[0]])))
        return out

    def token_counts(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        """How many tokens the model reads for each pair (special tokens in, truncated)."""
        return [len(e) for e in self._pairs.encode_batch_fast([(str(q), str(p)) for q, p in pairs])] if pairs else []

    def describe(self) -> dict[str, Any]:
        """What identifies this reranker, for reports."""
        return {"model": self.name, "revision": self.revision, "fingerprint": self.fingerprint}


def _assemble(path: Path, settings: dict[str, Any], name: str) -> Assembled:
    from .pipeline import assemble_reranker

    return assemble_reranker(path, settings, name)


def transformer_folder(folder: Path) -> tuple[Path, dict[str, Any]]:
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

"""The hand-assembled sentence-transformers pipeline: tokenizer + AutoModel + Pooling + Dense + Normalize.

``modules.json`` decides the stages, each built from its own folder (see ``pipeline.py``). The
output equals ``SentenceTransformer(folder).encode(texts)``: float32, not normalised unless the
folder lists a Normalize stage. Cosine similarity is the index's business, not the encoder's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import ModelInfo, tqdm_disable
from ..errors import Interrupted, InvalidOptionError, ModelLoadError, UnsupportedModelError
from .hub import fingerprint, resolve

if TYPE_CHECKING:
    import torch

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


@dataclass
class _Stages:
    """What ``modules.json`` lists, resolved to folders and configs."""

    transformer: Path
    transformer_config: dict[str, Any]
    pooling: tuple[str, ...] = ("mean",)
    pooling_config: dict[str, Any] = field(default_factory=dict)
    dense: list[Path] = field(default_factory=list)
    normalize: bool = False
    prompt: str = ""  # config_sentence_transformers.json's default prompt, put before every text


def _read_stages(folder: Path) -> _Stages:
    from .stages import pooling_modes, read_json

    modules_file = folder / "modules.json"
    if not modules_file.exists():
        # a plain transformers folder: sentence-transformers wraps it with mean pooling
        if not (folder / "config.json").exists():
            raise ModelLoadError(f"{folder} has neither modules.json nor config.json: not a model folder")
        return _Stages(transformer=folder, transformer_config=_transformer_config(folder))
    try:
        import json

        modules = json.loads(modules_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Cannot read {modules_file}: {exc}") from exc
    stages: _Stages | None = None
    for module in sorted(modules, key=lambda m: m.get("idx", 0)):
        kind = str(module.get("type", "")).rpartition(".")[2]
        path = folder / module.get("path", "")
        if kind == "Transformer" and stages is None:
            stages = _Stages(transformer=path, transformer_config=_transformer_config(path))
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
    stages.prompt = _default_prompt(folder)
    return stages


def _default_prompt(folder: Path) -> str:
    # SentenceTransformer.encode puts prompts[default_prompt_name] before every input
    from .stages import read_json

    config_file = folder / "config_sentence_transformers.json"
    config = read_json(config_file) if config_file.exists() else {}
    name = config.get("default_prompt_name")
    if not name:
        return ""
    prompts = config.get("prompts") or {}
    if name not in prompts:
        raise ModelLoadError(f"{config_file}: default prompt {name!r} is not among its prompts")
    return str(prompts[name] or "")


def _transformer_config(folder: Path) -> dict[str, Any]:
    from .stages import read_json

    for name in _TRANSFORMER_CONFIGS:
        if (folder / name).exists():
            return read_json(folder / name)
    return {}


def _pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidOptionError(f"Device {device!r} was asked for but CUDA is not available; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise InvalidOptionError(f"Unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    return device


class Encoder:
    """Turns texts into the model's sentence embeddings. Build one with ``Encoder.load``."""

    def __init__(self, stages: _Stages, info: ModelInfo, device: str, fp32: bool) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from .stages import Dense

        self.info = info
        self.device = device
        self.modes = stages.pooling
        self.normalize = stages.normalize
        self.prompt = stages.prompt
        self.last_padding = 0.0  # pad tokens / real tokens in the last encode()
        self.dtype = torch.float32 if fp32 or device == "cpu" else torch.float16
        path = stages.transformer
        config = stages.transformer_config
        try:
            with _quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(str(path))
                self.model = AutoModel.from_pretrained(str(path), dtype=torch.float32)
        except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ...
            raise ModelLoadError(f"Cannot load the transformer in {path}: {exc}") from exc
        self.max_seq_length = _max_seq_length(config, self.tokenizer, self.model.config)
        self.tokenizer.model_max_length = self.max_seq_length
        if config.get("do_lower_case"):
            _lowercase_normalizer(self.tokenizer)
        self._text_tokens, self._input_tokens = _backend_tokenizers(self.tokenizer, self.max_seq_length)
        names = self.tokenizer.model_input_names
        self._input_names = [n for n in ("input_ids", "token_type_ids", "attention_mask") if n in names]
        self.dense: list[Dense] = [Dense(p) for p in stages.dense]
        for module in (self.model, *self.dense):
            module.to(device=device, dtype=self.dtype).eval()

    @classmethod
    def load(cls, model: str, device: str = "auto", *, revision: str | None = None, fp32: bool = False) -> Encoder:
        """Assemble the pipeline of a hub id or a local sentence-transformers folder.

        ``device`` is ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``. On CUDA the
        model runs in float16 unless ``fp32`` is set; on CPU it always runs in float32.
        """
        folder = resolve(model, revision)
        stages = _read_stages(folder.path)
        if stages.prompt and stages.pooling_config.get("include_prompt") is False:
            raise UnsupportedModelError(f"{folder.path}: pooling that excludes the prompt is not supported")
        info = ModelInfo(
            model=model,
            revision=folder.revision,
            fingerprint=fingerprint(folder.path),
            dimension=0,
            pooling=list(stages.pooling),
            dense=[],
            normalize=stages.normalize,
            max_seq_length=0,
        )
        encoder = cls(stages, info, _pick_device(device), fp32)
        encoder.info = replace(
            info,
            dimension=encoder.dimension,
            dense=[d.describe() for d in encoder.dense],
            max_seq_length=encoder.max_seq_length,
        )
        return encoder

    @property
    def dimension(self) -> int:
        """Length of one embedding."""
        if self.dense:
            return self.dense[-1].out_features
        return int(self.model.config.hidden_size) * len(self.modes)

    @property
    def max_text_tokens(self) -> int:
        """How many tokens of text fit in one input, after the special tokens."""
        return self.max_seq_length - self.tokenizer.num_special_tokens_to_add(pair=False)

    def token_spans(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """Character (start, end) of each token of each text, without special tokens."""
        encodings = self._text_tokens.encode_batch(texts, add_special_tokens=False) if texts else []
        return [encoding.offsets for encoding in encodings]

    def token_counts(self, texts: list[str]) -> list[int]:
        """How many tokens each text has, without special tokens or truncation."""
        encodings = self._text_tokens.encode_batch_fast(texts, add_special_tokens=False) if texts else []
        return [len(encoding) for encoding in encodings]

    def tokenize(self, texts: list[str]) -> list[Any]:
        """The model inputs of ``texts`` (prompt added, truncated to the model's limit), as
        ``encode_tokenized`` takes them. Safe to call from another thread; the work is done by
        the tokenizer's Rust backend, in parallel and without holding the GIL."""
        if self.prompt:
            texts = [self.prompt + text for text in texts]
        return self._input_tokens.encode_batch_fast(texts) if texts else []

    def encode(
        self,
        texts: list[str],
        batch_size: int = 32,
        progress: bool | None = False,
        stop: Callable[[], bool] | None = None,
        max_batch_tokens: int | None = None,
    ) -> np.ndarray:
        """Embed ``texts``: a float32 array of shape (len(texts), dimension).

        Texts are tokenized in groups of ``_GROUP``, each while the model embeds the one before.
        Within a group they are sorted by token count and cut into batches of at most
        ``max_batch_tokens`` padded tokens (default ``batch_size`` times the model's limit), so
        long texts go a few at a time and short ones many at a time, with little padding
        (``last_padding`` records pad tokens / real tokens). ``progress`` shows a bar on stderr
        (None: only on a terminal). ``stop`` is asked before each batch; when it answers True,
        ``Interrupted`` is raised.
        """
        from concurrent.futures import ThreadPoolExecutor

        from tqdm.auto import tqdm

        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        budget = max_batch_tokens or batch_size * self.max_seq_length
        padded = real = 0
        bar = tqdm(total=len(texts), desc="Embedding", unit="text", disable=tqdm_disable(progress))
        # the pool starts a thread only when there is a second group: a query or an ingest batch
        # is tokenized here, with no thread
        with bar, ThreadPoolExecutor(1, thread_name_prefix="semsearch-tokenize") as pool:
            encodings = self.tokenize(texts[:_GROUP])
            for first in range(0, len(texts), _GROUP):
                following = texts[first + _GROUP : first + 2 * _GROUP]
                ahead = pool.submit(self.tokenize, following) if following else None
                counts = self._embed(encodings, out[first : first + len(encodings)], budget, batch_size, stop, bar)
                padded, real = padded + counts[0], real + counts[1]
                encodings = ahead.result() if ahead is not None else []
        self.last_padding = (padded - real) / real if real else 0.0
        return out

    def encode_tokenized(
        self,
        encodings: list[Any],
        batch_size: int = 32,
        stop: Callable[[], bool] | None = None,
        max_batch_tokens: int | None = None,
    ) -> np.ndarray:
        """``encode`` for texts already tokenized by ``tokenize`` (in another thread, say)."""
        out = np.empty((len(encodings), self.dimension), dtype=np.float32)
        budget = max_batch_tokens or batch_size * self.max_seq_length
        padded, real = self._embed(encodings, out, budget, batch_size, stop, None)
        self.last_padding = (padded - real) / real if real else 0.0
        return out

    def _embed(
        self,
        encodings: list[Any],
        out: np.ndarray,
        budget: int,
        batch_size: int,
        stop: Callable[[], bool] | None,
        bar: Any,
    ) -> tuple[int, int]:
        """Embed ``encodings`` into the rows of ``out``, longest first, in batches within
        ``budget`` padded tokens; returns (padded tokens, real tokens)."""
        import torch

        if not encodings:
            return 0, 0
        lengths = np.fromiter(map(len, encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")
        padded = 0
        with torch.inference_mode():
            for first, last in _token_batches(lengths[order], budget, max_rows=max(batch_size, _MAX_ROWS)):
                if stop is not None and stop():
                    raise Interrupted("Embedding stopped on request")
                rows = order[first:last]
                width = int(lengths[rows[0]])
                padded += width * len(rows)
                out[rows] = self._forward(self._batch([encodings[i] for i in rows], width)).float().cpu().numpy()
                if bar is not None:
                    bar.update(len(rows))
        return padded, int(lengths.sum())

    def _batch(self, encodings: list[Any], width: int) -> dict[str, torch.Tensor]:
        """The model's inputs for ``encodings`` as (rows, width) tensors on the device, padded as
        the tokenizer pads: on its padding side, with its pad id and pad type id."""

        ids = np.full((len(encodings), width), self.tokenizer.pad_token_id or 0, dtype=np.int64)
        types = np.full_like(ids, self.tokenizer.pad_token_type_id)
        mask = np.zeros_like(ids)
        left = self.tokenizer.padding_side == "left"
        for row, encoding in enumerate(encodings):
            cells = slice(width - len(encoding), width) if left else slice(0, len(encoding))
            ids[row, cells] = encoding.ids
            types[row, cells] = encoding.type_ids
            mask[row, cells] = 1
        arrays = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
        pinned = self.device.startswith("cuda")
        return {name: _to_device(arrays[name], self.device, pinned) for name in self._input_names}

    def _forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        import torch

        from .stages import pool

        hidden = self.model(**batch).last_hidden_state
        embeddings = pool(hidden, batch["attention_mask"], self.modes)
        for stage in self.dense:
            embeddings = stage(embeddings)
        if self.normalize:
            embeddings = torch.nn.functional.normalize(embeddings, p=2, dim=-1)
        return embeddings


_MAX_ROWS = 512  # texts in one batch at most, however short
_GROUP = 4096  # texts tokenized and sorted together; the next group is tokenized meanwhile


def _to_device(array: np.ndarray, device: str, pinned: bool) -> torch.Tensor:
    """A host array as a tensor on ``device``; through pinned memory, without blocking, to a GPU."""
    import torch

    tensor = torch.from_numpy(array)
    return tensor.pin_memory().to(device, non_blocking=True) if pinned else tensor


def _backend_tokenizers(tokenizer: Any, max_seq_length: int) -> tuple[Any, Any]:
    """Two private copies of the fast tokenizer's backend: one for plain text (no special tokens,
    no truncation) and one for model inputs (truncated to ``max_seq_length`` as
    sentence-transformers truncates). Private copies keep the settings fixed, so chunking in one
    thread and encoding in another never see each other's, and skip transformers' per-text
    Python conversion."""
    from tokenizers import Tokenizer

    if not getattr(tokenizer, "is_fast", False):
        raise UnsupportedModelError(f"{type(tokenizer).__name__} is not a fast (tokenizers) tokenizer")
    saved = tokenizer.backend_tokenizer.to_str()
    text, inputs = Tokenizer.from_str(saved), Tokenizer.from_str(saved)
    for backend in (text, inputs):
        backend.no_padding()
        backend.no_truncation()
    inputs.enable_truncation(max_seq_length, stride=0, strategy="longest_first", direction=tokenizer.truncation_side)
    return text, inputs


def _token_batches(lengths: np.ndarray, budget: int, max_rows: int) -> list[tuple[int, int]]:
    """(first, last) ranges over ``lengths`` (sorted longest first) whose padded size, rows times
    the first row's length, stays within ``budget`` (a single row may exceed it)."""
    batches: list[tuple[int, int]] = []
    first = 0
    while first < len(lengths):
        rows = max(1, min(max_rows, budget // max(1, int(lengths[first]))))
        batches.append((first, min(first + rows, len(lengths))))
        first += rows
    return batches


@contextmanager
def _quiet_transformers() -> Iterator[None]:
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


def _max_seq_length(config: dict[str, Any], tokenizer: Any, model_config: Any) -> int:
    # the same rule as sentence-transformers: the saved max_seq_length, else the tokenizer's
    # limit capped by the model's position embeddings
    limit = getattr(model_config, "max_position_embeddings", None)
    if config.get("max_seq_length"):
        return int(config["max_seq_length"])
    length = int(tokenizer.model_max_length)
    if limit and limit > 0:
        length = min(length, int(limit))
    return length


def _lowercase_normalizer(tokenizer: Any) -> None:
    # sentence-transformers lowercases inside the tokenizer, which keeps offsets into the original
    from tokenizers import normalizers

    backend = tokenizer.backend_tokenizer
    current = backend.normalizer
    parts = [normalizers.Lowercase()]
    if current is not None:
        parts.append(current)
    backend.normalizer = normalizers.Sequence(parts)

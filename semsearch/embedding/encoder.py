"""The hand-assembled sentence-transformers pipeline: tokenizer + AutoModel + Pooling + Dense + Normalize.

``modules.json`` decides the stages (read by ``folder.py``), each built from its own folder
(``stages.py``). ``encode`` equals ``SentenceTransformer(folder).encode(texts)``, ``encode_query``
and ``encode_document`` its ``encode_query`` and ``encode_document`` (the model's query and
document prompts): float32, not normalised unless the folder lists a Normalize stage. Cosine
similarity is the index's business, not the encoder's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import ModelInfo, tqdm_disable
from ..errors import Interrupted
from .folder import Prompts, Stages, read_stages
from .hub import fingerprint, resolve
from .inputs import InputSpec, special_tokens
from .runtime import MAX_ROWS, load_pipeline, token_batches

if TYPE_CHECKING:
    from .pipeline import Assembled
    from .precision import Choice

    Runner = Any  # pipeline.TorchRunner or converted.OpenVINORunner: run(arrays) -> float32 array


class Encoder:
    """Turns texts into the model's sentence embeddings. Build one with ``Encoder.load``."""

    def __init__(
        self, info: ModelInfo, prompts: Prompts, spec: InputSpec, tokenizer: str, runner: Runner, choice: Choice
    ) -> None:
        self.info = info
        self.prompts = prompts
        self.spec = spec
        self.runner = runner
        self.choice = choice  # the device, runtime and precision it runs at
        self.device = choice.device
        self.max_seq_length = spec.max_seq_length
        self.last_padding = 0.0  # pad tokens / real tokens in the last encode()
        self.conversion_seconds = 0.0  # converting for OpenVINO in this load; 0.0 when cached
        self._text_tokens, self._input_tokens = spec.tokenizers(tokenizer)
        self._specials = special_tokens(self._input_tokens)

    @classmethod
    def load(
        cls,
        model: str | os.PathLike[str],
        device: str = "auto",
        *,
        revision: str | None = None,
        fp32: bool = False,
        precision: str = "auto",
        runtime: str = "auto",
        threads: int | None = None,
        progress: bool | None = None,
    ) -> Encoder:
        """Assemble the pipeline of a hub id or a local sentence-transformers folder.

        ``device`` is ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``; ``runtime``
        ``auto``, ``torch`` or ``openvino`` (CPU; ``semsearch[cpu]``); ``precision`` ``auto``,
        ``fp32``, ``fp16`` (CUDA), ``bf16`` or ``int8`` (OpenVINO), as ``precision.choose``
        resolves them: ``auto`` is float16 on CUDA, and on the CPU OpenVINO in bfloat16 where the
        CPU computes it natively, else float32. ``fp32`` is ``precision="fp32"``. The first load
        with OpenVINO converts the model and caches it (``progress`` shows it: None, only on a
        terminal); later loads import neither torch nor transformers. ``threads`` caps
        OpenVINO's threads (PyTorch's are torch.set_num_threads').
        """
        from .precision import choose

        model = os.fspath(model)
        folder = resolve(model, revision)
        stages = read_stages(folder.path)
        choice = choose(device, runtime, "fp32" if fp32 else precision)
        info = ModelInfo(
            model=model,
            revision=folder.revision,
            fingerprint=fingerprint(folder.path),
            dimension=0,
            pooling=list(stages.pooling),
            dense=[],
            normalize=stages.normalize,
            max_seq_length=0,
            query_prompt=stages.prompts.query,
            document_prompt=stages.prompts.document,
        )
        loaded = load_pipeline(
            "encoder", folder.path, info.fingerprint, choice, partial(_assemble, stages), threads=threads,
            progress=progress,
        )  # fmt: skip
        choice, spec, meta = loaded.choice, loaded.spec, loaded.meta
        info = replace(
            info,
            dimension=int(meta["dimension"]),
            dense=meta["dense"],
            max_seq_length=spec.max_seq_length,
            runtime=choice.runtime,
            precision=choice.precision,
        )
        encoder = cls(info, stages.prompts, spec, loaded.tokenizer, loaded.runner, choice)
        encoder.conversion_seconds = loaded.conversion_seconds
        return encoder

    @property
    def dimension(self) -> int:
        """Length of one embedding."""
        return self.info.dimension

    @property
    def precision(self) -> str:
        """What the model computes in: fp32, fp16, bf16 or int8."""
        return self.choice.precision

    @property
    def runtime(self) -> str:
        """The engine that runs the model: torch or openvino."""
        return self.choice.runtime

    @property
    def max_text_tokens(self) -> int:
        """How many tokens of a document fit in one input, after the special tokens and the
        document prompt: the most a chunk may hold."""
        return self.text_limit(self.prompts.document)

    @property
    def max_query_tokens(self) -> int:
        """How many tokens of a query fit in one input, after the special tokens and the query prompt."""
        return self.text_limit(self.prompts.query)

    def text_limit(self, prompt: str) -> int:
        """How many tokens of text fit in one input after the special tokens and ``prompt``
        (counted alone: joined to a text, its last token may merge with the text's first)."""
        used = self._specials + (self.token_counts([prompt])[0] if prompt else 0)
        return self.max_seq_length - used

    def token_spans(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """Character (start, end) of each token of each text, without special tokens."""
        encodings = self._text_tokens.encode_batch(texts, add_special_tokens=False) if texts else []
        return [encoding.offsets for encoding in encodings]

    def token_counts(self, texts: list[str]) -> list[int]:
        """How many tokens each text has, without special tokens or truncation."""
        encodings = self._text_tokens.encode_batch_fast(texts, add_special_tokens=False) if texts else []
        return [len(encoding) for encoding in encodings]

    def tokenize(self, texts: list[str], prompt: str | None = None) -> list[Any]:
        """The model inputs of ``texts`` with ``prompt`` before each (None: the default prompt,
        as ``SentenceTransformer.encode`` puts it), truncated to the model's limit, as
        ``encode_tokenized`` takes them. Safe to call from another thread; the work is done by
        the tokenizer's Rust backend, in parallel and without holding the GIL."""
        prompt = self.prompts.default if prompt is None else prompt
        if prompt:
            texts = [prompt + text for text in texts]
        return self._input_tokens.encode_batch_fast(texts) if texts else []

    def tokenize_documents(self, texts: list[str]) -> list[Any]:
        """``tokenize`` with the model's document prompt: the inputs of chunks to index."""
        return self.tokenize(texts, self.prompts.document)

    def encode_query(self, texts: list[str], **options: Any) -> np.ndarray:
        """``encode`` with the model's query prompt, as ``SentenceTransformer.encode_query``."""
        return self.encode(texts, prompt=self.prompts.query, **options)

    def encode_document(self, texts: list[str], **options: Any) -> np.ndarray:
        """``encode`` with the model's document prompt, as ``SentenceTransformer.encode_document``."""
        return self.encode(texts, prompt=self.prompts.document, **options)

    def encode(
        self,
        texts: list[str],
        batch_size: int = 32,
        progress: bool | None = False,
        stop: Callable[[], bool] | None = None,
        max_batch_tokens: int | None = None,
        prompt: str | None = None,
    ) -> np.ndarray:
        """Embed ``texts``: a float32 array of shape (len(texts), dimension), each with ``prompt``
        before it (None: the default prompt, as ``SentenceTransformer.encode``).

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
            encodings = self.tokenize(texts[:_GROUP], prompt)
            for first in range(0, len(texts), _GROUP):
                following = texts[first + _GROUP : first + 2 * _GROUP]
                ahead = pool.submit(self.tokenize, following, prompt) if following else None
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
        if not encodings:
            return 0, 0
        lengths = np.fromiter(map(len, encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")
        padded = 0
        for first, last in token_batches(lengths[order], budget, max_rows=max(batch_size, MAX_ROWS)):
            if stop is not None and stop():
                raise Interrupted("Embedding stopped on request")
            rows = order[first:last]
            width = int(lengths[rows[0]])
            padded += width * len(rows)
            out[rows] = self.runner.run(self.spec.arrays([encodings[i] for i in rows], width))
            if bar is not None:
                bar.update(len(rows))
        return padded, int(lengths.sum())


def _assemble(stages: Stages, for_conversion: bool = False) -> Assembled:
    from .pipeline import assemble_encoder

    return assemble_encoder(stages, for_conversion)


_GROUP = 4096  # texts tokenized and sorted together; the next group is tokenized meanwhile

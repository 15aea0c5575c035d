"""Tiny random folders in the layouts of today's Chinese-capable model families, besides xiaobu's
BERT (``modelfactory.py``):

- bge-m3's dense output: ``XLMRobertaModel`` at the root (position embeddings offset by the pad
  id, as XLM-R's are), a SentencePiece-style Unigram tokenizer with ``<s> $A </s>``,
  ``1_Pooling`` with CLS pooling, ``2_Normalize``.
- Qwen3-Embedding: ``Qwen3Model`` (a decoder, RoPE) at the root, a byte-level BPE tokenizer that
  pads on the left and whose post-processor appends ``<|endoftext|>``, ``1_Pooling`` with
  last-token pooling, ``2_Normalize``, and a query instruction as its only non-empty prompt.

The layouts follow the real repositories' file lists and configs; the weights and vocabularies
are random or tiny, so the compute is the family's and the numbers are not.
"""

from __future__ import annotations

import json
from pathlib import Path

from modelfactory import SHARED_VOCAB, _write, generated_vocab

# Qwen3-Embedding's config_sentence_transformers.json: an instruction before queries, none
# before documents, no default prompt
QWEN3_QUERY_PROMPT = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
_CORPUS = [
    "语义搜索把查询和文档放进同一个向量空间。",
    "我是一个智能助手，可以回答各种问题。",
    "Python 3.12 于2023年10月发布，带来了更好的错误信息。",
    "The quick brown fox jumps over the lazy dog.",
    "Instruct: Given a web search query, retrieve relevant passages that answer the query",
    "Query: 北京大学在哪里？ 上海的天气怎么样？",
    "混合 mixed 文本 with English words 和中文标点！",
]
_MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]


def build_xlm_roberta(folder: Path, *, hidden: int = 64, max_seq_length: int | None = 512, seed: int = 0) -> Path:
    """bge-m3's dense layout: XLM-R, CLS pooling, Normalize. ``max_seq_length`` None leaves it out
    of ``sentence_bert_config.json``, so the limit comes from the tokenizer and the position
    embeddings (514, of which XLM-R can use 512)."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    specials = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces = ["▁"] + [t for t in _vocab() if not t.startswith(("[", "##"))]
    vocab = specials + [(p, -1.0 - len(p) / 10 - i / 1e5) for i, p in enumerate(dict.fromkeys(pieces))]
    vocab.append(("<mask>", 0.0))
    tokenizer = XLMRobertaTokenizer(vocab=vocab, model_max_length=512)
    tokenizer.save_pretrained(str(folder))

    torch.manual_seed(seed)
    config = XLMRobertaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=hidden * 2,
        max_position_embeddings=514,  # 512 positions after XLM-R's offset of pad id + 1
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        type_vocab_size=1,
    )
    XLMRobertaModel(config).eval().save_pretrained(str(folder))
    transformer = {"do_lower_case": False}
    if max_seq_length is not None:
        transformer["max_seq_length"] = max_seq_length
    _write(folder / "sentence_bert_config.json", transformer)
    _write(folder / "1_Pooling" / "config.json", _legacy_pooling(hidden, "pooling_mode_cls_token"))
    _write(folder / "modules.json", _MODULES)
    (folder / "2_Normalize").mkdir(exist_ok=True)
    _write(folder / "config_sentence_transformers.json", {"__version__": {"sentence_transformers": "2.2.2"}})
    return folder


def build_qwen3(folder: Path, *, hidden: int = 64, max_seq_length: int = 512, seed: int = 0) -> Path:
    """Qwen3-Embedding's layout: Qwen3 decoder, left padding, EOS appended by the tokenizer,
    last-token pooling, Normalize, a query instruction."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3Model
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    folder.mkdir(parents=True, exist_ok=True)
    eos = "<|endoftext|>"
    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=[eos, "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS * 4, trainer=trainer)
    eos_id = backend.token_to_id(eos)
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A:0 {eos}:0", pair=f"$A:0 {eos}:0 $B:1 {eos}:1", special_tokens=[(eos, eos_id)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=eos, pad_token=eos, padding_side="left", model_max_length=131072
    )
    tokenizer.save_pretrained(str(folder))
    # as Qwen3-Embedding's tokenizer_config.json names it; the class keeps tokenizer.json's
    # post-processor, which appends the EOS that last-token pooling reads
    settings = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    _write(folder / "tokenizer_config.json", {**settings, "tokenizer_class": "Qwen2Tokenizer"})

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=backend.get_vocab_size(),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        intermediate_size=hidden * 2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    Qwen3Model(config).eval().save_pretrained(str(folder))
    _write(folder / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    pooling = _legacy_pooling(hidden, "pooling_mode_lasttoken")
    _write(folder / "1_Pooling" / "config.json", {**pooling, "include_prompt": True})
    _write(folder / "modules.json", _MODULES)
    (folder / "2_Normalize").mkdir(exist_ok=True)
    _write(
        folder / "config_sentence_transformers.json",
        {
            "prompts": {"query": QWEN3_QUERY_PROMPT, "document": ""},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    return folder


def _legacy_pooling(hidden: int, mode: str) -> dict[str, object]:
    keys = (
        "pooling_mode_cls_token",
        "pooling_mode_mean_tokens",
        "pooling_mode_max_tokens",
        "pooling_mode_mean_sqrt_len_tokens",
        "pooling_mode_weightedmean_tokens",
        "pooling_mode_lasttoken",
    )
    return {"word_embedding_dimension": hidden, **{key: key == mode for key in keys}}


def _vocab() -> list[str]:
    # split on newlines only: the vocabulary holds U+2028, which splitlines would break at
    text = SHARED_VOCAB.read_text(encoding="utf-8") if SHARED_VOCAB.exists() else ""
    return text.removesuffix("\n").split("\n") if text else generated_vocab()

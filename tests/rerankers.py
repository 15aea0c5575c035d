"""Build small cross-encoder folders offline, in the layouts of the bge rerankers.

``build_reranker``: random weights in the layout of bge-reranker-base/large (BERT, WordPiece) or
bge-reranker-v2-m3 (XLM-RoBERTa, a Unigram tokenizer with <s> </s></s> pair template), one
label. ``build_oracle`` is a one-layer BERT whose weights are set by hand so that its score
rises with the share of one marker character in the (query, passage) pair: a reranker that
knows which passage is relevant.
"""

from __future__ import annotations

import json
from pathlib import Path

from modelfactory import SHARED_VOCAB, bert_tokenizer, generated_vocab, read_vocab


def build_reranker(
    folder: Path,
    layout: str = "bert",
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    intermediate: int | None = None,
    max_positions: int = 512,
    activation: str | None = None,
    activation_in: str = "config",
    labels: int = 1,
    seed: int = 0,
) -> Path:
    """A random cross-encoder of ``layout`` ("bert" or "xlmr") in ``folder``. ``activation``
    (a torch class path) is saved in ``config.json``'s ``sentence_transformers`` entry, or with
    ``activation_in="legacy"`` under the key sentence-transformers used before v4."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    shape = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate or hidden * 2,
        "num_labels": labels,
        "max_position_embeddings": max_positions,
        "initializer_range": 0.2,  # scores spread out, so parity tests compare more than 0.5s
    }
    if layout == "bert":
        from transformers import BertConfig, BertForSequenceClassification

        size = _bert_tokenizer(folder)
        model = BertForSequenceClassification(BertConfig(vocab_size=size, **shape))
    elif layout == "xlmr":
        from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

        size = _xlmr_tokenizer(folder, max_positions - 2)
        config = XLMRobertaConfig(vocab_size=size, pad_token_id=1, bos_token_id=0, eos_token_id=2, **shape)
        model = XLMRobertaForSequenceClassification(config)
    else:
        raise ValueError(layout)
    if activation and activation_in == "config":
        model.config.sentence_transformers = {"activation_fn": activation}
    elif activation:
        model.config.sbert_ce_default_activation_function = activation
    model.eval().save_pretrained(str(folder))
    return folder


def build_oracle(folder: Path, marker: str) -> Path:
    """A BERT cross-encoder that scores a pair by the share of ``marker`` among its tokens.

    Hidden size 4. The embedding of ``marker`` is [1, -1, 1, -1], every other token's
    [1, -1, 0, 0] (positions and token types add nothing), so after the embedding LayerNorm the
    third dimension is 1 on the marker, else 0. The one attention layer has zero query and key
    weights, so every token attends evenly to all real tokens, and its values carry the third
    dimension: the [CLS] output holds the marker's share, which LayerNorm, a zero feed-forward,
    the pooler (tanh) and the classifier keep in order. More marker, higher score."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder.mkdir(parents=True, exist_ok=True)
    size = _bert_tokenizer(folder)
    vocab = read_vocab(folder / "vocab.txt")
    config = BertConfig(
        vocab_size=size,
        hidden_size=4,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=4,
        num_labels=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for norm in (model.bert.embeddings.LayerNorm, *_layer_norms(model)):
            norm.weight.fill_(1.0)
        words = model.bert.embeddings.word_embeddings.weight
        words[:, 0], words[:, 1] = 1.0, -1.0
        marked = vocab.index(marker)
        words[marked, 2], words[marked, 3] = 1.0, -1.0
        layer = model.bert.encoder.layer[0]
        value = layer.attention.self.value.weight  # (out, in): dims 2 and 3 carried, scaled
        value[2, 2], value[3, 3] = 4.0, 4.0
        layer.attention.output.dense.weight.copy_(torch.eye(4))
        model.bert.pooler.dense.weight[0, 2] = 2.0
        model.classifier.weight[0, 0] = 4.0
    model.save_pretrained(str(folder))
    return folder


def _layer_norms(model):
    layer = model.bert.encoder.layer[0]
    return layer.attention.output.LayerNorm, layer.output.LayerNorm


def _bert_tokenizer(folder: Path) -> int:
    tokens = read_vocab(SHARED_VOCAB) if SHARED_VOCAB.exists() else generated_vocab()
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    bert_tokenizer(tokens).save_pretrained(str(folder))
    return len(tokens)


def _xlmr_tokenizer(folder: Path, max_length: int) -> int:
    """An XLM-R-style tokenizer (Unigram over Metaspace pieces, <s> A </s></s> B </s>)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import XLMRobertaTokenizerFast

    pieces = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)] + [chr(c) for c in range(33, 127)]
    pieces += list("，。！？；：、“”（）《》") + ["▁the", "▁search", "▁model", "▁python"]
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(piece, -5.0 - len(piece) * 0.1) for piece in pieces] + [("<mask>", 0.0)]
    backend = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tokenizer = XLMRobertaTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=max_length,
    )
    tokenizer.save_pretrained(str(folder))
    return len(vocab)


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")

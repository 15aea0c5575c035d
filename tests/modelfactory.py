"""Build small sentence-transformers folders offline, in the exact layout of xiaobu-embedding-v2.

xiaobu: BertModel at the root, ``1_Pooling/config.json`` in the older boolean form, ``2_Dense``
with ``pytorch_model.bin`` and an Identity activation, no Normalize. Tests and benchmarks use
these with random weights: the compute is the real model's, the numbers are not.
"""

from __future__ import annotations

import json
from pathlib import Path

SHARED_VOCAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "zh-bert-vocab" / "vocab.txt"
ACTIVATIONS = {
    "identity": "torch.nn.modules.linear.Identity",
    "tanh": "torch.nn.modules.activation.Tanh",
    "gelu": "torch.nn.modules.activation.GELU",
}


def read_vocab(path: Path) -> list[str]:
    """The tokens of a vocab.txt, one per line (split on newlines only: bert-base-chinese's
    vocabulary holds U+2028, which ``splitlines`` would take for a line break)."""
    return path.read_text(encoding="utf-8").removesuffix("\n").split("\n")


def generated_vocab() -> list[str]:
    """A small Chinese + ASCII WordPiece vocabulary for when the shared one is absent."""
    specials = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    ascii_chars = [chr(c) for c in range(33, 127)]
    cjk = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    punct = list("，。！？；：、“”‘’（）《》…—")
    words = ["the", "and", "of", "to", "in", "is", "search", "model", "python", "##s", "##ing", "##ed"]
    return specials + ascii_chars + punct + cjk + words


def build_model(
    folder: Path,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    intermediate: int = 128,
    max_positions: int = 512,
    max_seq_length: int = 512,
    pooling: str | list[str] = "legacy-mean",
    dense: list[tuple[int, str]] | None = None,
    dense_format: str = "bin",
    normalize: bool = False,
    do_lower_case: bool = False,
    vocab: Path | None = None,
    prompts: dict[str, str] | None = None,
    default_prompt_name: str | None = None,
    seed: int = 0,
) -> Path:
    """Write a sentence-transformers folder with random weights and return it.

    ``pooling`` is ``"legacy-mean"`` (xiaobu's boolean config), a mode name or a list of modes
    (the newer ``pooling_mode`` form). ``dense`` lists (out_features, activation) stages; the
    default is xiaobu's single Identity Dense to ``hidden * 3 // 2``. ``prompts`` and
    ``default_prompt_name`` go into ``config_sentence_transformers.json``, as bge-zh's query
    instruction or e5's ``query: ``/``passage: `` would.
    """
    import torch
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    if vocab is None and SHARED_VOCAB.exists():
        vocab = SHARED_VOCAB
    tokens = read_vocab(vocab) if vocab else generated_vocab()
    vocab_file.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    bert_tokenizer(tokens, do_lower_case=True).save_pretrained(str(folder))

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokens),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_positions,
    )
    BertModel(config).eval().save_pretrained(str(folder))

    _write(folder / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": do_lower_case})
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    _write(folder / "1_Pooling" / "config.json", _pooling_config(pooling, hidden))
    modules.append({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"})
    width = hidden * (1 if isinstance(pooling, str) else len(pooling))
    stages = [(hidden * 3 // 2, "identity")] if dense is None else dense
    for out_features, activation in stages:
        idx = len(modules)
        path = f"{idx}_Dense"
        _write_dense(folder / path, width, out_features, ACTIVATIONS.get(activation, activation), dense_format)
        modules.append({"idx": idx, "name": str(idx), "path": path, "type": "sentence_transformers.models.Dense"})
        width = out_features
    if normalize:
        idx = len(modules)
        modules.append(
            {"idx": idx, "name": str(idx), "path": f"{idx}_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
    _write(folder / "modules.json", modules)
    settings: dict[str, object] = {"__version__": {"sentence_transformers": "2.2.2"}}
    if prompts is not None:
        settings.update(prompts=prompts, default_prompt_name=default_prompt_name)
    _write(folder / "config_sentence_transformers.json", settings)
    return folder


def bert_tokenizer(tokens: list[str], *, do_lower_case: bool = True, model_max_length: int = 512):
    """A fast BERT WordPiece tokenizer over ``tokens``, built from the tokenizers library as
    bert-base-chinese's tokenizer.json is. (``BertTokenizerFast(vocab_file=...)`` is not used:
    transformers 5 ignores the file there and builds a five-token vocabulary, so every word
    would be [UNK].)"""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    vocab = {token: number for number, token in enumerate(tokens)}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=do_lower_case
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    backend.decoder = decoders.WordPiece(prefix="##")
    return BertTokenizerFast(
        tokenizer_object=backend,
        do_lower_case=do_lower_case,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
    )


def _pooling_config(pooling: str | list[str], hidden: int) -> dict:
    if pooling == "legacy-mean":
        return {
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
        }
    return {"embedding_dimension": hidden, "pooling_mode": pooling}


def _write_dense(folder: Path, in_features: int, out_features: int, activation: str, fmt: str) -> None:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    linear = torch.nn.Linear(in_features, out_features)
    state = {"linear.weight": linear.weight.detach().clone(), "linear.bias": linear.bias.detach().clone()}
    config = {"in_features": in_features, "out_features": out_features, "bias": True}
    config["activation_function"] = activation
    _write(folder / "config.json", config)
    if fmt == "bin":
        torch.save(state, folder / "pytorch_model.bin")
    else:
        from safetensors.torch import save_file

        save_file(state, str(folder / "model.safetensors"))


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


def build_shape(folder: Path, shape: str) -> Path:
    """``tiny`` (the tests' 2-layer model) or ``full``: xiaobu-embedding-v2's exact shape (24 layers,
    hidden 1024, 16 heads, intermediate 4096, Dense 1024 -> 1792) with random weights, for benchmarks."""
    if shape == "full":
        return build_model(
            folder / "xiaobu-shape", layers=24, hidden=1024, heads=16, intermediate=4096, dense=[(1792, "identity")]
        )
    return build_model(folder / "tiny")

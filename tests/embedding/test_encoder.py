"""The hand-assembled pipeline against sentence-transformers itself, to 1e-5 in fp32."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from modelfactory import build_model

from semsearch.embedding.encoder import Encoder
from semsearch.errors import Interrupted, ModelLoadError, UnsupportedModelError

TEXTS = [
    "你是谁？",
    "我是一个智能助手，可以回答各种问题。",
    "Python 3.12 于2023年10月发布，带来了更好的错误信息。",
    "The quick brown fox jumps over the lazy dog.",
    "混合 mixed 文本 with English words 和中文标点！",
    "长" * 700,  # longer than the model's limit: truncated, by both
    "a",
    "",
    "   spaces around   ",
]
TOLERANCE = 1e-5


def reference(folder: Path, texts: list[str]) -> np.ndarray:
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(folder), device="cpu")
    return model.encode(texts, convert_to_numpy=True)


def assert_parity(folder: Path, texts: list[str] = TEXTS) -> Encoder:
    encoder = Encoder.load(str(folder), device="cpu")
    ours = encoder.encode(texts)
    theirs = reference(folder, texts)
    assert ours.dtype == np.float32
    assert ours.shape == theirs.shape == (len(texts), encoder.dimension)
    assert np.abs(ours - theirs).max() <= TOLERANCE
    return encoder


def test_xiaobu_layout_matches_sentence_transformers(tiny_model: Path) -> None:
    pooling = json.loads((tiny_model / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] is True  # the older boolean form
    assert (tiny_model / "2_Dense" / "pytorch_model.bin").exists()
    encoder = assert_parity(tiny_model)
    assert encoder.info.pooling == ["mean"]
    assert encoder.info.dense == [
        {"in_features": 64, "out_features": 96, "activation": "torch.nn.modules.linear.Identity"}
    ]
    assert encoder.info.normalize is False
    assert encoder.dimension == 96


def test_real_minilm_matches_sentence_transformers(minilm_model: Path) -> None:
    encoder = assert_parity(minilm_model)
    assert encoder.info.normalize is True
    assert encoder.dimension == 384
    assert encoder.max_seq_length == 256


@pytest.mark.parametrize(
    "pooling",
    ["cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken", ["cls", "mean", "max"]],
    ids=str,
)
def test_every_pooling_mode(models_dir: Path, pooling: str | list[str]) -> None:
    name = "-".join(pooling) if isinstance(pooling, list) else pooling
    folder = build_model(models_dir / f"pool-{name}", pooling=pooling, dense=[], seed=3)
    encoder = assert_parity(folder)
    assert encoder.info.pooling == ([pooling] if isinstance(pooling, str) else pooling)


def test_legacy_config_with_several_modes(models_dir: Path) -> None:
    folder = build_model(models_dir / "legacy-multi", dense=[])
    config_file = folder / "1_Pooling" / "config.json"
    config = json.loads(config_file.read_text())
    config.update(pooling_mode_cls_token=True, pooling_mode_max_tokens=True)
    config_file.write_text(json.dumps(config))
    encoder = assert_parity(folder)
    assert encoder.info.pooling == ["cls", "max", "mean"]  # sentence-transformers' concatenation order


@pytest.mark.parametrize("activation", ["tanh", "gelu"])
def test_dense_with_activation_and_safetensors(models_dir: Path, activation: str) -> None:
    folder = build_model(
        models_dir / f"dense-{activation}", dense=[(80, activation), (48, "identity")], dense_format="safetensors"
    )
    encoder = assert_parity(folder)
    assert encoder.dimension == 48
    assert encoder.info.dense[0]["activation"].endswith(activation.capitalize() if activation == "tanh" else "GELU")


def test_normalize_lowercase_and_short_limit(models_dir: Path) -> None:
    folder = build_model(models_dir / "norm-lower", normalize=True, do_lower_case=True, max_seq_length=16)
    encoder = assert_parity(folder, TEXTS + ["MiXeD CaSe Python PIP"])
    assert encoder.max_seq_length == 16
    assert np.allclose(np.linalg.norm(encoder.encode(["hello", "你好"]), axis=1), 1.0, atol=1e-6)


def test_default_prompt_is_applied(models_dir: Path) -> None:
    folder = build_model(models_dir / "prompted", seed=5)
    config = {"prompts": {"query": "为这个句子生成表示：", "document": ""}, "default_prompt_name": "query"}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config, ensure_ascii=False))
    encoder = assert_parity(folder)
    plain = Encoder.load(str(build_model(models_dir / "unprompted", seed=5)), device="cpu")
    assert np.abs(encoder.encode(["你好"]) - plain.encode(["你好"])).max() > 1e-3  # the prompt mattered


def test_batching_does_not_change_results(tiny_encoder: Encoder) -> None:
    one = tiny_encoder.encode(TEXTS, batch_size=1)
    many = tiny_encoder.encode(TEXTS, batch_size=4)
    assert np.abs(one - many).max() <= TOLERANCE


def test_empty_input(tiny_encoder: Encoder) -> None:
    assert tiny_encoder.encode([]).shape == (0, tiny_encoder.dimension)


def test_token_spans_point_into_the_text(tiny_encoder: Encoder) -> None:
    text = "semsearch 支持中文，also English."
    (spans,) = tiny_encoder.token_spans([text])
    assert spans and all(0 <= s < e <= len(text) for s, e in spans)
    assert text[spans[1][0] : spans[1][1]] in text


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a folder"):
        Encoder.load(str(tmp_path / "nope"), device="cpu")


def test_a_model_not_cached_while_offline_is_said_to_be_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # HF_HUB_OFFLINE=1, as huggingface_hub reads it; an empty cache
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelLoadError) as raised:
        Encoder.load("semsearch-tests/not-cached", device="cpu")
    message = str(raised.value)
    assert message.startswith("Cannot load model 'semsearch-tests/not-cached': it is not in the local Hugging Face")
    assert "cannot be reached" not in message and "HF_HUB_OFFLINE unset" in message and "--model" in message


def test_folder_without_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a model folder"):
        Encoder.load(str(tmp_path), device="cpu")


def test_unsupported_stage_is_refused(models_dir: Path, tmp_path: Path) -> None:
    folder = build_model(tmp_path / "odd", layers=1, hidden=32, heads=2, intermediate=32)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 9, "name": "9", "path": "9_LSTM", "type": "sentence_transformers.models.LSTM"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(UnsupportedModelError, match="LSTM"):
        Encoder.load(str(folder), device="cpu")


def test_cuda_asked_for_without_cuda(tiny_model: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    from semsearch.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="CUDA is not available"):
        Encoder.load(str(tiny_model), device="cuda")


@pytest.mark.gpu
def test_half_precision_on_cuda_is_close(tiny_model: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    half = Encoder.load(str(tiny_model), device="cuda").encode(TEXTS)
    full = reference(tiny_model, TEXTS)
    cosine = (half * full).sum(1) / (np.linalg.norm(half, axis=1) * np.linalg.norm(full, axis=1))
    assert cosine.min() > 0.999


def test_token_batches_keep_padded_tokens_within_the_budget() -> None:
    import numpy as np

    from semsearch.embedding.runtime import token_batches

    lengths = np.array([512, 300, 300, 120, 40, 40, 40, 10, 10, 3])
    batches = token_batches(lengths, budget=600, max_rows=4)
    assert batches[0] == (0, 1)  # a single row may not fit and still goes alone
    assert [last - first for first, last in batches] == [1, 2, 4, 3]
    assert all(lengths[first] * (last - first) <= 600 for first, last in batches[1:])
    assert batches[-1][1] == len(lengths) and all(a[1] == b[0] for a, b in zip(batches, batches[1:], strict=False))


def test_budget_batching_equals_one_text_at_a_time(tiny_encoder) -> None:
    import numpy as np

    texts = ["短", "一个中等长度的句子，说明批次。" * 3, "很长的文本。" * 80, "", "English words too"]
    together = tiny_encoder.encode(texts, max_batch_tokens=64)
    alone = np.concatenate([tiny_encoder.encode([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)
    assert 0 <= tiny_encoder.last_padding < 1


def test_groups_tokenized_ahead_and_pre_tokenized_inputs_give_the_same_vectors(
    tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import semsearch.embedding.encoder as encoder_module

    texts = [f"第{i}句话。" * (1 + i % 7) for i in range(23)]
    whole = tiny_encoder.encode(texts)
    monkeypatch.setattr(encoder_module, "_GROUP", 5)  # five groups, each tokenized while one embeds
    grouped = tiny_encoder.encode(texts)
    assert np.allclose(grouped, whole, atol=1e-5) and 0 < tiny_encoder.last_padding < 1
    tokenized = tiny_encoder.encode_tokenized(tiny_encoder.tokenize(texts))
    assert np.allclose(tokenized, whole, atol=1e-5)
    assert tiny_encoder.encode_tokenized([]).shape == (0, tiny_encoder.dimension)


def test_stop_is_asked_before_each_batch(tiny_encoder: Encoder) -> None:
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) == 3

    with pytest.raises(Interrupted):
        tiny_encoder.encode(["一句话。"] * 10, batch_size=1, max_batch_tokens=1, stop=stop)
    assert len(asked) == 3

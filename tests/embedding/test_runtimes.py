"""The CPU runtime: the hand-assembled pipelines converted for OpenVINO, at each precision, for
every family, against PyTorch float32 (and sentence-transformers); the conversion cache; and
choosing the runtime and precision."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from children import child_environment
from modelfactory import build_model

from semsearch.embedding import converted
from semsearch.embedding.encoder import Encoder
from semsearch.embedding.precision import Choice, choose
from semsearch.embedding.reranker import Reranker
from semsearch.errors import InvalidOptionError

pytest.importorskip("openvino")

TEXTS = [
    "你好，世界",
    "这是一个比较长的句子，用来看填充和注意力掩码是否处理得当。" * 3,
    "short",
    "The quick brown fox jumps over the lazy dog. " * 6,
    "中",
    "大熊猫主要以竹子为食，每天要花十几个小时进食。",
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def families(models_dir: Path) -> dict[str, Path]:
    from modelfamilies import build_qwen3, build_xlm_roberta

    return {
        "bert-xiaobu-layout": build_model(models_dir / "rt-xiaobu", dense=[(96, "identity")]),
        "bert-pooling-modes": build_model(
            models_dir / "rt-modes", pooling=["max", "cls", "weightedmean", "lasttoken"], normalize=True
        ),
        "xlm-roberta": build_xlm_roberta(models_dir / "rt-xlmr"),
        "qwen3": build_qwen3(models_dir / "rt-qwen3"),
    }


@pytest.mark.parametrize("family", ["bert-xiaobu-layout", "bert-pooling-modes", "xlm-roberta", "qwen3"])
def test_every_family_converts_faithfully(families: dict[str, Path], family: str) -> None:
    folder = families[family]
    reference = Encoder.load(folder, "cpu", runtime="torch").encode(TEXTS)
    fp32 = Encoder.load(folder, "cpu", runtime="openvino", precision="fp32")
    assert (fp32.runtime, fp32.precision) == ("openvino", "fp32")
    assert np.abs(fp32.encode(TEXTS) - reference).max() <= 1e-4
    # in batches of other shapes (left padding for Qwen3): the same
    assert np.abs(fp32.encode(TEXTS[::-1], max_batch_tokens=64)[::-1] - reference).max() <= 1e-4
    auto = Encoder.load(folder, "cpu", runtime="openvino")
    assert auto.precision in ("bf16", "fp32") and auto.conversion_seconds == 0.0  # the fp32 entry, reused
    assert cosines(auto.encode(TEXTS), reference).min() >= 0.9999


def test_fp32_on_openvino_equals_sentence_transformers(families: dict[str, Path]) -> None:
    from sentence_transformers import SentenceTransformer

    folder = families["bert-xiaobu-layout"]
    theirs = SentenceTransformer(str(folder), device="cpu").encode(TEXTS)
    ours = Encoder.load(folder, "cpu", runtime="openvino", precision="fp32").encode(TEXTS)
    assert np.abs(ours - theirs).max() <= 1e-4


def test_real_minilm_weights_in_every_precision(minilm_model: Path) -> None:
    reference = Encoder.load(minilm_model, "cpu", runtime="torch").encode(TEXTS)
    fp32 = Encoder.load(minilm_model, "cpu", runtime="openvino", precision="fp32").encode(TEXTS)
    assert np.abs(fp32 - reference).max() <= 1e-4
    auto = Encoder.load(minilm_model, "cpu", runtime="openvino")
    assert cosines(auto.encode(TEXTS), reference).min() >= 0.9999
    int8 = Encoder.load(minilm_model, "cpu", runtime="openvino", precision="int8")
    assert int8.precision == "int8" and int8.conversion_seconds > 0
    assert cosines(int8.encode(TEXTS), reference).min() >= 0.95  # its retrieval cost: docs/benchmarks.md


def test_auto_is_fp32_where_the_cpu_has_no_native_bf16(
    families: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("semsearch.embedding.precision.native_bf16", lambda: False)
    encoder = Encoder.load(families["bert-xiaobu-layout"], "cpu", runtime="openvino")
    assert encoder.precision == "fp32"
    assert encoder.info.precision == "fp32" and encoder.info.runtime == "openvino"


@pytest.mark.parametrize("threshold", [0.0, 1.01])
def test_auto_is_bf16_only_where_the_conversion_measured_it_faithful(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threshold: float
) -> None:
    from semsearch.embedding.precision import native_bf16

    monkeypatch.setattr(converted, "BF16_MIN_COSINE", threshold)  # 1.01: no model passes
    encoder = Encoder.load(build_model(tmp_path / "model", seed=9), "cpu", runtime="openvino")
    assert encoder.precision == ("bf16" if threshold == 0.0 and native_bf16() else "fp32")


def test_choosing_runtime_and_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEMSEARCH_RUNTIME", raising=False)
    monkeypatch.delenv("SEMSEARCH_PRECISION", raising=False)
    monkeypatch.setattr("semsearch.embedding.precision._gpu_in_sight", lambda: False)
    assert choose("auto") == Choice("cpu", "openvino", "auto")
    assert choose("cpu", "torch") == Choice("cpu", "torch", "fp32")
    assert choose("cpu", "auto", "int8") == Choice("cpu", "openvino", "int8")
    monkeypatch.setenv("SEMSEARCH_RUNTIME", "torch")
    assert choose("auto") == Choice("cpu", "torch", "fp32")
    assert choose("auto", "openvino", "bf16") == Choice("cpu", "openvino", "bf16")  # asked for by name
    for runtime, precision, message in [
        ("torch", "int8", "needs --runtime openvino"),
        ("openvino", "fp16", "fp16 is for CUDA"),
        ("tensorrt", "auto", "Unknown runtime"),
        ("torch", "fp8", "Unknown precision"),
    ]:
        with pytest.raises(InvalidOptionError, match=message):
            choose("cpu", runtime, precision)
    with pytest.raises(InvalidOptionError, match="CUDA is not available"):
        choose("cuda")  # no GPU here; on a GPU machine the CUDA tests cover it


def test_without_openvino_auto_is_torch_and_openvino_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEMSEARCH_RUNTIME", raising=False)
    monkeypatch.setattr("semsearch.embedding.precision.openvino_installed", lambda: False)
    assert choose("cpu") == Choice("cpu", "torch", "fp32")
    with pytest.raises(InvalidOptionError, match=r"pip install 'semsearch\[cpu\]'"):
        choose("cpu", "openvino")


def test_the_cache_converts_once_and_again_only_when_the_folder_changes(tmp_path: Path) -> None:
    folder = build_model(tmp_path / "model", seed=5)
    first = Encoder.load(folder, "cpu", runtime="openvino", precision="fp32")
    assert first.conversion_seconds > 0
    again = Encoder.load(folder, "cpu", runtime="openvino", precision="fp32")
    assert again.conversion_seconds == 0.0
    before = first.encode(TEXTS)
    # new weights, same names and sizes: the fingerprint cannot tell, the cache's stamp does
    build_model(tmp_path / "other", seed=6)
    for name in ("model.safetensors",):
        (folder / name).write_bytes((tmp_path / "other" / name).read_bytes())
    changed = Encoder.load(folder, "cpu", runtime="openvino", precision="fp32")
    assert changed.conversion_seconds > 0
    reference = Encoder.load(folder, "cpu", runtime="torch").encode(TEXTS)
    after = changed.encode(TEXTS)
    assert np.abs(after - reference).max() <= 1e-4 and np.abs(after - before).max() > 1e-3


@pytest.mark.parametrize("damage", ["truncate", "garble", "meta"])
def test_a_damaged_cache_entry_is_converted_again(tmp_path: Path, damage: str) -> None:
    folder = build_model(tmp_path / "model", seed=7)
    reference = Encoder.load(folder, "cpu", runtime="openvino", precision="fp32").encode(TEXTS)
    (entry,) = [p for p in converted.cache_root().glob("encoder-*") if _made_from(p, folder)]
    if damage == "truncate":
        weights = entry / "model.bin"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "garble":  # same size, nonsense inside
        xml = entry / "model.xml"
        xml.write_bytes(b"\0" * xml.stat().st_size)
    else:
        (entry / "meta.json").write_text("{")
    loaded = Encoder.load(folder, "cpu", runtime="openvino", precision="fp32")
    assert loaded.conversion_seconds > 0
    assert np.abs(loaded.encode(TEXTS) - reference).max() <= 1e-6


def test_two_processes_converting_at_once_leave_one_good_entry(tmp_path: Path) -> None:
    folder = build_model(tmp_path / "model", seed=8)
    cache = tmp_path / "cache"
    code = textwrap.dedent(
        f"""
        from semsearch.embedding.encoder import Encoder
        encoder = Encoder.load({str(folder)!r}, "cpu", runtime="openvino", precision="fp32", progress=False)
        print(encoder.conversion_seconds > 0, float(encoder.encode(["你好"])[0, 0]))
        """
    )
    env = child_environment() | {"SEMSEARCH_CACHE_DIR": str(cache)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    converted_flags = sorted(out.split()[0] for out, _ in outputs)
    assert converted_flags == ["False", "True"]  # the second waited for the first and took its entry
    assert len({out.split()[1] for out, _ in outputs}) == 1
    entries = [p.name for p in (cache / "openvino").iterdir() if not p.name.endswith(".lock")]
    assert len(entries) == 1 and not entries[0].startswith(".")  # no half-written folder left


def test_the_reranker_runs_converted(oracle_reranker: Path, models_dir: Path) -> None:
    from rerankers import build_reranker

    pairs = [(q, p) for q in TEXTS[:2] for p in TEXTS]
    for folder in (oracle_reranker, build_reranker(models_dir / "rt-rerank-xlmr", "xlmr")):
        reference = Reranker.load(folder, "cpu", runtime="torch").predict(pairs)
        fp32 = Reranker.load(folder, "cpu", runtime="openvino", precision="fp32")
        assert fp32.choice.runtime == "openvino"
        assert np.abs(fp32.predict(pairs) - reference).max() <= 1e-5
        auto = Reranker.load(folder, "cpu", runtime="openvino")
        scores = auto.predict(pairs)
        assert (
            np.abs(scores - reference).max() <= 0.01 * max(float(np.ptp(reference)), 1e-6)
            or auto.choice.precision == "fp32"
        )


def test_a_cold_query_imports_neither_torch_nor_transformers(tmp_path: Path, tiny_model: Path) -> None:
    index = tmp_path / "index"
    env = child_environment() | {"SEMSEARCH_RUNTIME": "openvino", "HF_HUB_OFFLINE": "1"}
    semsearch = Path(sys.executable).parent / "semsearch"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# 大熊猫\n\n大熊猫主要吃竹子。\n", encoding="utf-8")
    made = subprocess.run(
        [str(semsearch), "ingest", str(docs), "--index", str(index), "--model", str(tiny_model), "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert made.returncode == 0, made.stderr
    code = textwrap.dedent(
        f"""
        import os, sys
        from semsearch.cli import main
        sys.argv = ["semsearch", "query", "大熊猫吃什么", "--index", {str(index)!r}, "--json"]
        exit = os._exit
        def report(code):
            loaded = [name for name in ("torch", "transformers") if name in sys.modules]
            print("LOADED", ",".join(loaded) or "-", "openvino" in sys.modules, file=sys.stderr, flush=True)
            exit(code)
        os._exit = report
        main()
        """
    )
    query = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert query.returncode == 0, query.stderr
    assert "LOADED - True" in query.stderr and "大熊猫" in query.stdout


def _made_from(entry: Path, folder: Path) -> bool:
    import json

    try:
        return bool(json.loads((entry / "meta.json").read_text())["stamp"] == converted._stamp(folder))
    except (OSError, ValueError, KeyError):
        return False


def test_a_model_openvino_cannot_convert_runs_in_pytorch_unless_openvino_was_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openvino

    from semsearch.errors import ConversionError

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("aten::made_up is not supported")

    monkeypatch.setattr(openvino, "convert_model", refuse)
    monkeypatch.delenv("SEMSEARCH_RUNTIME", raising=False)
    monkeypatch.setattr("semsearch.embedding.precision._gpu_in_sight", lambda: False)
    folder = build_model(tmp_path / "model", seed=10)
    with pytest.warns(UserWarning, match="running it in PyTorch float32"):
        encoder = Encoder.load(folder)  # auto: OpenVINO was chosen, not asked for
    assert (encoder.runtime, encoder.precision) == ("torch", "fp32")
    reference = Encoder.load(folder, "cpu", runtime="torch").encode(TEXTS)
    assert np.abs(encoder.encode(TEXTS) - reference).max() == 0
    with pytest.raises(ConversionError, match="aten::made_up"):
        Encoder.load(folder, "cpu", runtime="openvino")

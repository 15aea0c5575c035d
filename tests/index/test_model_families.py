"""Indexes of today's model families end to end, and prompts in the manifest: recorded, a change
refused as a model change, and an index of an earlier semsearch (no prompts recorded) still open."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from modelfactory import build_model
from modelfamilies import QWEN3_QUERY_PROMPT, build_qwen3, build_xlm_roberta

import semsearch
from semsearch.config import Manifest


def set_manifest(idx: semsearch.Index, manifest: Manifest) -> None:
    store = idx.handle.store
    assert store is not None
    store.set_manifest(manifest)


def without_prompts(manifest: Manifest) -> Manifest:
    """The manifest as semsearch wrote it before prompts were recorded."""
    data = json.loads(manifest.to_json())
    del data["model"]["query_prompt"], data["model"]["document_prompt"]
    return Manifest.from_json(json.dumps(data))


@pytest.mark.parametrize("family", ["xlm-roberta", "qwen3"])
def test_ingest_and_search_with_query_and_document_prompts(
    family: str, models_dir: Path, tmp_path: Path, docs: Path
) -> None:
    st = pytest.importorskip("sentence_transformers")
    folder = models_dir / f"e2e-{family}"
    (build_xlm_roberta if family == "xlm-roberta" else build_qwen3)(folder)
    idx = semsearch.open_index(tmp_path / "kb", model=str(folder), device="cpu")
    report = idx.ingest([docs])
    assert report.files_added == 12 and report.chunks_embedded == report.chunks_total > 12
    reference = st.SentenceTransformer(str(folder), device="cpu")
    store = idx.handle.store
    assert store is not None
    stored = {int(i): v for ids, matrix in store.iter_vectors(64) for i, v in zip(ids, matrix, strict=True)}
    for query in ["大熊猫吃什么", "how to bake sourdough bread"]:
        hits = idx.search(query, k=3)
        assert len(hits) == 3
        (q,) = reference.encode_query([query])
        for hit in hits:  # documents embedded as encode_document, queries as encode_query
            (d,) = reference.encode_document([hit.text])
            assert np.abs(stored[hit.chunk_id] - d).max() < 1e-5
            assert abs(hit.score - float(q @ d)) < 1e-5  # both normalised by the model
    prompt = QWEN3_QUERY_PROMPT if family == "qwen3" else ""
    assert (idx.manifest.model.query_prompt, idx.manifest.model.document_prompt) == (prompt, "")
    assert (idx.info().query_prompt, idx.info().document_prompt) == (prompt, "")


def test_an_index_without_recorded_prompts_opens_as_before(tmp_path: Path, tiny_model: Path, docs: Path) -> None:
    idx = semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu")
    idx.ingest([docs])
    assert (idx.manifest.model.query_prompt, idx.manifest.model.document_prompt) == ("", "")
    set_manifest(idx, without_prompts(idx.manifest))
    reopened = semsearch.open_index(tmp_path / "kb", device="cpu")
    assert reopened.manifest.model.query_prompt is None
    assert reopened.search("熊猫", k=3) and reopened.ingest([docs]).files_unchanged == 12
    assert not reopened.notes
    assert reopened.info().query_prompt is None  # not recorded: the model's default prompt


def test_a_default_prompt_index_of_an_earlier_semsearch_is_a_model_change(
    tmp_path: Path, models_dir: Path, docs: Path
) -> None:
    # an earlier semsearch put the default prompt before documents too; encode_document does not
    folder = build_model(
        models_dir / "default-prompted", prompts={"instruct": "指令："}, default_prompt_name="instruct"
    )
    idx = semsearch.open_index(tmp_path / "kb", model=str(folder), device="cpu")
    idx.ingest([docs])
    set_manifest(idx, without_prompts(idx.manifest))
    reopened = semsearch.open_index(tmp_path / "kb", device="cpu")
    with pytest.raises(semsearch.ModelMismatchError, match="embedded with '指令：' and '指令：'"):
        reopened.search("熊猫", k=3)


def test_a_changed_prompt_is_a_model_change(tmp_path: Path, models_dir: Path, docs: Path) -> None:
    folder = build_model(models_dir / "prompt-changes", prompts={"query": "问：", "document": "文档："})
    idx = semsearch.open_index(tmp_path / "kb", model=str(folder), device="cpu")
    idx.ingest([docs])
    built = idx.manifest
    # recorded with other prompts (the same files): the prompts are named in the refusal
    set_manifest(idx, replace(built, model=replace(built.model, query_prompt="query: ")))
    with pytest.raises(semsearch.ModelMismatchError, match="'query: '.*--reindex"):
        semsearch.open_index(tmp_path / "kb", device="cpu").search("熊猫", k=3)
    set_manifest(idx, built)
    # the folder's prompts edited: a model change too
    settings = folder / "config_sentence_transformers.json"
    settings.write_text(json.dumps({"prompts": {"query": "查询：", "document": "文档："}}, ensure_ascii=False))
    with pytest.raises(semsearch.ModelMismatchError, match="--reindex"):
        semsearch.open_index(tmp_path / "kb", device="cpu").search("熊猫", k=3)


def test_migrating_between_old_and_new_manifests() -> None:
    from semsearch.config import ModelInfo
    from semsearch.index.manifest import same_pipeline_info

    model = ModelInfo("m", None, "f", 8, ["mean"], [], False, 16, query_prompt="", document_prompt="")
    new, old = Manifest(model=model), without_prompts(Manifest(model=model))
    assert same_pipeline_info(new, old) and same_pipeline_info(old, old) and same_pipeline_info(new, new)
    prompted = Manifest(model=replace(model, query_prompt="问："))
    assert not same_pipeline_info(prompted, new) and not same_pipeline_info(prompted, old)

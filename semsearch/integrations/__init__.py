"""Retrievers over a semsearch index for LangChain and LlamaIndex; each module is an optional extra."""

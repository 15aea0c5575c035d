"""The Milvus backend's storage: where the index is, its collections, filters as expressions."""

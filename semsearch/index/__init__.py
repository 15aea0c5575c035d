"""The Index: storage kept in step, that ingests and answers.

``facade`` is the public ``Index``, ``open_index`` and ``migrate``; ``backend`` the storage seam
every backend implements; ``handle`` the local backend (SQLite database, manifest, FAISS vector
replica, lock) and ``milvus`` (with ``milvus_data`` and ``milvus_upkeep``) the Milvus one;
``manifest`` what an index was built with; ``replica`` the vector index kept in step with SQLite;
``ingest`` (with ``batch``, ``progress``, ``readahead``), ``reindex`` and ``migration`` the
writers; ``searching`` and ``maintenance`` the rest.
"""

from .facade import Index, migrate, open_index

__all__ = ["Index", "migrate", "open_index"]

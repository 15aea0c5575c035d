"""The Index: a folder of storage, kept in step, that ingests and answers.

``facade`` is the public ``Index`` and ``open_index``; ``handle`` one open index (database,
manifest, vector replica, model, lock); ``manifest`` what an index was built with; ``replica``
the vector index kept in step with SQLite; ``ingest`` (with ``batch``, ``progress``,
``readahead``) and ``reindex`` the writers; ``searching`` and ``maintenance`` the rest.
"""

from .facade import Index, open_index

__all__ = ["Index", "open_index"]

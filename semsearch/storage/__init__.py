"""What an index keeps on disk: SQLite (documents, chunks, vectors, terms), FAISS, the folder layout and its lock."""

"""Files to documents to chunks: walking and reading files, formats, chunking."""

"""The Index: a folder of storage, kept in step, that ingests and answers."""

"""Text to vectors: the hand-assembled sentence-transformers pipeline."""

"""Queries to ranked hits: dense and lexical candidates, fusion, passages."""

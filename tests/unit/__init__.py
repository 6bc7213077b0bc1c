"""Unit tests: fast, offline once the corpus cache is filled."""

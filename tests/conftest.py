"""Fixtures shared by the whole test suite.

Keep each group of fixtures under its own heading; put helpers that are not
fixtures in their own modules (e.g. ``tests/corpus.py``), not here.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.corpus import CorpusEntry, build_corpus, compile_wat, default_cache_dir

# -- Wasm corpus -----------------------------------------------------------------


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[CorpusEntry]:
    """Every corpus file, built once per session; downloads come from the shared cache."""
    return build_corpus(tmp_path_factory.mktemp("corpus"), default_cache_dir())


@pytest.fixture(scope="session")
def corpus_by_name(corpus: list[CorpusEntry]) -> dict[str, CorpusEntry]:
    """The corpus keyed by entry name."""
    return {entry.name: entry for entry in corpus}


@pytest.fixture
def wat(tmp_path: Path) -> Callable[[str], Path]:
    """A function compiling a WAT source string to a ``.wasm`` file in ``tmp_path``."""
    counter = itertools.count()

    def compile_wat_source(source: str) -> Path:
        stem = tmp_path / f"inline-{next(counter)}"
        wat_file = stem.with_suffix(".wat")
        wat_file.write_text(source, encoding="utf-8")
        return compile_wat(wat_file, stem.with_suffix(".wasm"))

    return compile_wat_source

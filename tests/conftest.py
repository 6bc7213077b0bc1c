"""Fixtures shared by the whole test suite.

Keep each group of fixtures under its own heading; put helpers that are not
fixtures in their own modules (e.g. ``tests/corpus.py``), not here.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.corpus import CorpusEntry, build_corpus, compile_wat, default_cache_dir
from tests.fake_registry import FakeRegistry
from tests.faultproxy import FaultProxy
from tests.registry import RegistryServer, TokenIssuer, run_registry, unique_repo
from tests.sigstore_standin import SigstoreStandin, no_proxy_with_loopback

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


# -- Registry (Debian's docker-registry, distribution 2.8.2) --------------------------
# Session-wide processes on loopback ports, started on first use. Tests share them, so each
# test pushes to its own repository (``repo_name`` or ``tests.registry.unique_repo()``).


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A plain-HTTP registry without auth."""
    with run_registry(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """An HTTPS registry without auth; its certificate verifies with ``ca_file`` only."""
    with run_registry(tmp_path_factory.mktemp("tls-registry"), tls=True) as server:
        yield server


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A plain-HTTP registry with htpasswd Basic auth (``username``/``password``)."""
    with run_registry(tmp_path_factory.mktemp("basic-registry"), basic_auth=True) as server:
        yield server


@pytest.fixture(scope="session")
def token_registry_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RegistryServer]:
    """The Bearer-token registry and its issuer, shared by the session; use ``token_registry``."""
    workdir = tmp_path_factory.mktemp("token-registry")
    with TokenIssuer(workdir / "issuer") as issuer, run_registry(
        workdir / "registry", issuer=issuer
    ) as server:  # fmt: skip
        yield server


@pytest.fixture
def token_registry(token_registry_session: RegistryServer) -> RegistryServer:
    """A plain-HTTP registry with Bearer token auth; ``issuer`` is its token service, reset
    for each test (no recorded requests, default knobs)."""
    assert token_registry_session.issuer is not None
    token_registry_session.issuer.reset()
    return token_registry_session


@pytest.fixture
def token_issuer(token_registry: RegistryServer) -> TokenIssuer:
    """The token service of ``token_registry`` (fresh request log and default knobs)."""
    assert token_registry.issuer is not None
    return token_registry.issuer


@pytest.fixture
def repo_name(request: pytest.FixtureRequest) -> str:
    """A repository name no other test uses, derived from the test's name."""
    return unique_repo(request.node.name)


@pytest.fixture
def fault_proxy(registry: RegistryServer) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of ``registry``, new for each test (no faults yet)."""
    with FaultProxy(registry.host) as proxy:
        yield proxy


# -- Sigstore stand-ins (Fulcio, Rekor v1, GitHub Actions' token endpoint) -------------------
# One loopback instance per session (tests.sigstore_standin). Its log is append-only, so tests
# compare entries and request counts before and after rather than expecting them empty.


@pytest.fixture(scope="session")
def sigstore_standin() -> Iterator[SigstoreStandin]:
    """A running stand-in; while it runs, ``NO_PROXY``/``no_proxy`` also cover 127.0.0.1 and
    localhost (sigstore-python talks to it through ``requests``, which honours proxies)."""
    with pytest.MonkeyPatch.context() as env, SigstoreStandin() as standin:
        for name in ("NO_PROXY", "no_proxy"):
            env.setenv(name, no_proxy_with_loopback(os.environ.get(name)))
        yield standin


# -- In-process fake registry (tests.fake_registry) ------------------------------------------


@pytest.fixture
def fake_registry() -> FakeRegistry:
    """A fresh in-memory registry (no auth, no referrers API, no faults): hand it to
    ``httpx.Client(transport=...)``; its ``requests`` log starts empty."""
    return FakeRegistry()

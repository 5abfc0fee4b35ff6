"""Fixtures shared by test modules; the helpers they use are in webtest.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter
from webtest import OPENSSL_CNF, make_ca, make_leaf


@pytest.fixture
def registry() -> CollectorRegistry:
    """A registry with one counter for the web tests to serve."""
    registry = CollectorRegistry()
    Counter("webtest_events", "Events seen by the web test.", registry=registry).inc(3)
    return registry


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TLS material for the web tests, made once."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    directory = tmp_path_factory.mktemp("pki")
    (directory / "openssl.cnf").write_text(OPENSSL_CNF)
    make_ca(directory, "ca")
    make_ca(directory, "rogue-ca")
    make_leaf(directory, "server", "ca", "server", 1001)
    make_leaf(directory, "client", "ca", "client", 1002)
    make_leaf(directory, "rogue-client", "rogue-ca", "client", 1003)
    return directory

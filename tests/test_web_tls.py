"""TLS (exporter/web/tls.py) against the real HTTPS endpoint on 127.0.0.1."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import ssl
import tempfile
import time
from pathlib import Path

import bcrypt
import pytest
from webtest import (
    PASSWORD,
    basic,
    client_context,
    fetch,
    make_leaf,
    running,
    tls_config,
    write_config,
)

from exporter.web.config import load_web_config


def _tls_connection(port: int, pki: Path) -> ssl.SSLSocket:
    """A TLS connection to the server that trusts the test CA, for a `with` block."""
    return client_context(pki).wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                                           server_hostname="127.0.0.1")


def test_https_scrape_verifying_the_ca(registry, pki, tmp_path):
    with running(registry, tls_config(tmp_path, pki)) as server:
        assert server.scheme == "https"
        reply = fetch(server.ports[0], "/metrics", context=client_context(pki))
    assert reply.status == 200 and b"webtest_events_total 3.0" in reply.body


def test_relative_cert_paths_are_read_from_the_config_directory(registry, pki, tmp_path, monkeypatch):
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    shutil.copy(pki / "server.crt", config_dir)
    shutil.copy(pki / "server.key", config_dir)
    path = write_config(config_dir, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    monkeypatch.chdir(tmp_path)
    config = load_web_config(str(path.relative_to(tmp_path)))
    assert config.tls.cert_file == str(config_dir / "server.crt")
    with running(registry, config) as server:
        assert fetch(server.ports[0], "/metrics", context=client_context(pki)).status == 200


def test_plain_http_client_is_told_to_use_https(registry, pki, tmp_path):
    with running(registry, tls_config(tmp_path, pki)) as server:
        plain = fetch(server.ports[0], "/metrics")
        assert (plain.status, plain.body) == (400, b"Client sent an HTTP request to an HTTPS server.\n")
        assert b"webtest" not in plain.body
        assert fetch(server.ports[0], "/metrics", context=client_context(pki)).status == 200


def test_require_and_verify_client_cert(registry, pki, tmp_path):
    config = tls_config(tmp_path, pki, f"  client_auth_type: RequireAndVerifyClientCert\n"
                                       f"  client_ca_file: {pki / 'ca.crt'}\n")
    with running(registry, config) as server:
        port = server.ports[0]
        with pytest.raises(OSError):
            fetch(port, "/metrics", context=client_context(pki))
        with pytest.raises(OSError):
            fetch(port, "/metrics", context=client_context(pki, cert="rogue-client"))
        reply = fetch(port, "/metrics", context=client_context(pki, cert="client"))
        assert reply.status == 200 and b"webtest_events_total" in reply.body


def test_verify_client_cert_if_given(registry, pki, tmp_path):
    config = tls_config(tmp_path, pki, f"  client_auth_type: VerifyClientCertIfGiven\n"
                                       f"  client_ca_file: {pki / 'ca.crt'}\n")
    with running(registry, config) as server:
        port = server.ports[0]
        assert fetch(port, "/metrics", context=client_context(pki)).status == 200
        assert fetch(port, "/metrics", context=client_context(pki, cert="client")).status == 200
        with pytest.raises(OSError):
            fetch(port, "/metrics", context=client_context(pki, cert="rogue-client"))


@pytest.mark.parametrize(("sans", "allowed"), [
    ('["other.example", "scraper.example"]', True),
    ('["spiffe://test/prometheus"]', True),
    ('["other.example", "127.0.0.1"]', False),
])
def test_client_allowed_sans(registry, pki, tmp_path, sans, allowed):
    config = tls_config(tmp_path, pki, f"  client_auth_type: RequireAndVerifyClientCert\n"
                                       f"  client_ca_file: {pki / 'ca.crt'}\n  client_allowed_sans: {sans}\n")
    with running(registry, config) as server:
        ctx = client_context(pki, cert="client")
        if allowed:
            assert fetch(server.ports[0], "/metrics", context=ctx).status == 200
        else:
            with pytest.raises((OSError, http.client.HTTPException)):
                fetch(server.ports[0], "/metrics", context=ctx)


def test_min_version_tls13_refuses_a_tls12_client(registry, pki, tmp_path):
    with running(registry, tls_config(tmp_path, pki, "  min_version: TLS13\n")) as server:
        port = server.ports[0]
        with pytest.raises(ssl.SSLError):
            fetch(port, "/metrics", context=client_context(pki, maximum=ssl.TLSVersion.TLSv1_2))
        assert fetch(port, "/metrics", context=client_context(pki)).status == 200


def test_cipher_suites_are_applied_to_tls12(registry, pki, tmp_path):
    config = tls_config(tmp_path, pki, "  max_version: TLS12\n"
                                       "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n")
    with running(registry, config) as server, _tls_connection(server.ports[0], pki) as conn:
        assert conn.version() == "TLSv1.2"
        assert conn.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"


def test_a_silent_client_does_not_stall_scrapes(registry, pki, tmp_path):
    with running(registry, tls_config(tmp_path, pki)) as server:
        port = server.ports[0]
        silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        try:
            started = time.monotonic()
            assert fetch(port, "/metrics", context=client_context(pki)).status == 200
            assert time.monotonic() - started < 2
        finally:
            for sock in silent:
                sock.close()


def test_basic_auth_over_tls(registry, pki, tmp_path):
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    config = tls_config(tmp_path, pki, f"basic_auth_users:\n  alice: {hashed}\n")
    with running(registry, config) as server:
        ctx = client_context(pki)
        assert fetch(server.ports[0], "/metrics", basic("alice", PASSWORD), ctx).status == 200
        assert fetch(server.ports[0], "/metrics", basic("alice", "nope"), ctx).status == 401


def _served_serial(port: int, pki: Path) -> int:
    with _tls_connection(port, pki) as conn:
        return int(conn.getpeercert()["serialNumber"], 16)


def test_renewed_certificate_is_served_without_a_restart(registry, pki, tmp_path):
    for name in ("server.crt", "server.key", "openssl.cnf", "ca.crt", "ca.key"):
        shutil.copy(pki / name, tmp_path)
    config = load_web_config(str(write_config(
        tmp_path, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")))
    with running(registry, config) as server:
        port = server.ports[0]
        assert _served_serial(port, pki) == 1001
        renewed = tmp_path / "renewed"
        renewed.mkdir()
        for name in ("openssl.cnf", "ca.crt", "ca.key"):
            shutil.copy(tmp_path / name, renewed)
        make_leaf(renewed, "server", "ca", "server", 2002)
        # A half-done renewal (new key, old certificate) keeps the old pair in use.
        os.replace(renewed / "server.key", tmp_path / "server.key")
        assert _served_serial(port, pki) == 1001
        os.replace(renewed / "server.crt", tmp_path / "server.crt")
        assert _served_serial(port, pki) == 2002


def test_inline_cert_and_key(registry, pki, tmp_path):
    def block(name: str, file: str) -> str:
        return f"  {name}: |\n" + "".join(f"    {line}\n" for line in (pki / file).read_text().splitlines())

    text = "tls_server_config:\n" + block("cert", "server.crt") + block("key", "server.key")
    with running(registry, load_web_config(str(write_config(tmp_path, text)))) as server:
        assert fetch(server.ports[0], "/metrics", context=client_context(pki)).status == 200
    assert not list(Path(tempfile.gettempdir()).glob("web-tls-*"))  # the inline PEM copies are gone

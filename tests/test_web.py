"""The web front against its real HTTP(S) endpoint on 127.0.0.1.

TLS material (a CA, a server certificate, client certificates, and a second
CA nobody trusts) is made at test time with the openssl command line.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import bcrypt
import pytest
from prometheus_client import CollectorRegistry, Counter

from exporter import __version__, web
from exporter import config as main_config

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse"


class Response(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def fetch(port: int, path: str = "/", headers: dict | None = None,
          context: ssl.SSLContext | None = None, method: str = "GET") -> Response:
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    try:
        conn.request(method, path, headers=headers or {})
        reply = conn.getresponse()
        return Response(reply.status, reply.headers, reply.read())
    finally:
        conn.close()


def basic(user: str, password: str | bytes) -> dict:
    raw = user.encode() + b":" + (password if isinstance(password, bytes) else password.encode())
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("webtest_events", "Events seen by the web test.", registry=registry).inc(3)
    return registry


@contextmanager
def running(registry: CollectorRegistry, config: web.WebConfig | None = None,
            addresses: tuple[str, ...] = ("127.0.0.1:0",), telemetry_path: str = "/metrics") -> Iterator[web.WebServer]:
    server = web.serve(registry, list(addresses), telemetry_path, config)
    try:
        yield server
    finally:
        server.stop()


def write_config(directory: Path, text: str, name: str = "web.yml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


# --- TLS material ----------------------------------------------------------------

OPENSSL_CNF = """\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:scraper.example, URI:spiffe://test/prometheus
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> None:
    openssl(directory, "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
            "-config", "openssl.cnf", "-extensions", "ca")


def make_leaf(directory: Path, name: str, ca: str, kind: str, serial: int) -> None:
    openssl(directory, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", "-config", "openssl.cnf")
    openssl(directory, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-set_serial", str(serial), "-days", "2", "-out", f"{name}.crt",
            "-extfile", "openssl.cnf", "-extensions", kind)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
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


def client_context(pki: Path, cert: str | None = None, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert:
        ctx.load_cert_chain(str(pki / f"{cert}.crt"), str(pki / f"{cert}.key"))
    if maximum:
        ctx.maximum_version = maximum
    return ctx


def tls_config(directory: Path, pki: Path, extra: str = "") -> web.WebConfig:
    text = f"tls_server_config:\n  cert_file: {pki / 'server.crt'}\n  key_file: {pki / 'server.key'}\n{extra}"
    return web.load_web_config(str(write_config(directory, text)))


# --- plain HTTP ----------------------------------------------------------------------


def test_landing_page_names_the_exporter_and_links_to_the_metrics(registry):
    with running(registry) as server:
        reply = fetch(server.ports[0], "/")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/html")
    page = reply.body.decode()
    assert "<h1>smtp-reply-exporter</h1>" in page
    assert f"Version {__version__}" in page
    assert [part.split('"')[0] for part in page.split('href="')[1:]] == ["/metrics"]


def test_metrics_path_serves_the_registry(registry):
    with running(registry) as server:
        reply = fetch(server.ports[0], "/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"webtest_events_total 3.0" in reply.body


def test_gzip_when_asked(registry):
    with running(registry) as server:
        reply = fetch(server.ports[0], "/metrics", {"Accept-Encoding": "gzip"})
    assert reply.headers["Content-Encoding"] == "gzip"
    assert b"webtest_events_total 3.0" in gzip.decompress(reply.body)


def test_openmetrics_when_asked(registry):
    with running(registry) as server:
        reply = fetch(server.ports[0], "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert reply.headers["Content-Type"].startswith("application/openmetrics-text")
    assert reply.body.endswith(b"# EOF\n")
    assert b"webtest_events_total 3.0" in reply.body


@pytest.mark.parametrize("path", ["/metric", "/metrics/", "/index.html", "/favicon.ico"])
def test_other_paths_are_404(registry, path):
    with running(registry) as server:
        assert fetch(server.ports[0], path).status == 404


def test_custom_telemetry_path(registry):
    with running(registry, telemetry_path="/smtp/metrics") as server:
        assert b"webtest_events_total" in fetch(server.ports[0], "/smtp/metrics").body
        assert fetch(server.ports[0], "/metrics").status == 404
        assert b'href="/smtp/metrics"' in fetch(server.ports[0], "/").body


def test_head_and_wrong_methods_on_the_landing_page(registry):
    with running(registry) as server:
        head = fetch(server.ports[0], "/", method="HEAD")
        post = fetch(server.ports[0], "/", method="POST")
    assert head.status == 200 and head.body == b""
    assert post.status == 405 and post.headers["Allow"] == "GET, HEAD"


def test_several_listen_addresses_and_stop(registry):
    with running(registry, addresses=("127.0.0.1:0", "127.0.0.1:0")) as server:
        ports = server.ports
        assert len(set(ports)) == 2
        assert server.addresses == [f"127.0.0.1:{p}" for p in ports]
        for port in ports:
            assert fetch(port, "/metrics").status == 200
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.parametrize(("address", "parsed"), [
    ("127.0.0.1:9000", ("127.0.0.1", 9000)),
    (":10925", ("", 10925)),
    ("[::1]:9000", ("::1", 9000)),
    ("localhost:0", ("localhost", 0)),
])
def test_parse_listen_address(address, parsed):
    assert web.parse_listen_address(address) == parsed


@pytest.mark.parametrize("address", ["localhost", "::1:9000", "host:http", "host:70000", "[::1]"])
def test_parse_listen_address_rejects(address):
    with pytest.raises(ValueError, match="listen address"):
        web.parse_listen_address(address)


def test_default_port_is_off_the_allocated_ranges():
    assert web.DEFAULT_PORT == 10925
    assert not 9100 <= web.DEFAULT_PORT <= 9999
    assert main_config.DEFAULT_PORT == web.DEFAULT_PORT  # the main config's default listen address


def test_extra_headers_from_the_config(registry, tmp_path):
    path = write_config(tmp_path, "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
                                  "    X-Content-Type-Options: nosniff\n")
    with running(registry, web.load_web_config(str(path))) as server:
        for target in ("/", "/metrics", "/nowhere"):
            reply = fetch(server.ports[0], target)
            assert reply.headers["X-Frame-Options"] == "deny"
            assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_rate_limit_answers_429_past_the_burst(registry, tmp_path):
    path = write_config(tmp_path, "rate_limit:\n  interval: 1h\n  burst: 2\n")
    with running(registry, web.load_web_config(str(path))) as server:
        statuses = [fetch(server.ports[0], "/metrics").status for _ in range(3)]
    assert statuses == [200, 200, 429]


# --- basic auth -------------------------------------------------------------------------


@pytest.fixture
def auth_config(tmp_path) -> web.WebConfig:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    other = bcrypt.hashpw(b"another one", bcrypt.gensalt(4)).decode()
    path = write_config(tmp_path, f"basic_auth_users:\n  alice: {hashed}\n  bob: '{other}'\n")
    return web.load_web_config(str(path))


def test_basic_auth(registry, auth_config):
    with running(registry, auth_config) as server:
        port = server.ports[0]
        good = fetch(port, "/metrics", basic("alice", PASSWORD))
        assert good.status == 200 and b"webtest_events_total" in good.body
        assert fetch(port, "/", basic("alice", PASSWORD)).status == 200
        for headers in (
            basic("alice", "wrong"),
            basic("bob", PASSWORD),  # another user's password
            basic("mallory", PASSWORD),
            basic("alice", "x" * 100),  # over bcrypt's 72 bytes
            basic("alice", PASSWORD + "x" * 80),  # right start, too long
            {},
            {"Authorization": "Bearer abc"},
            {"Authorization": "Basic !!!not-base64"},
            {"Authorization": "Basic " + base64.b64encode(b"no colon").decode()},
            {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:" + PASSWORD.encode()).decode()},
        ):
            reply = fetch(port, "/metrics", headers)
            assert reply.status == 401, headers
            assert reply.headers["WWW-Authenticate"].startswith("Basic ")
            assert b"webtest" not in reply.body
        # Still serving after all of that.
        assert fetch(port, "/metrics", basic("alice", PASSWORD)).status == 200
        assert fetch(port, "/metrics", basic("bob", "another one")).status == 200


def test_basic_auth_scheme_name_is_case_insensitive(registry, auth_config):
    with running(registry, auth_config) as server:
        header = basic("alice", PASSWORD)["Authorization"].replace("Basic", "basic")
        assert fetch(server.ports[0], "/metrics", {"Authorization": header}).status == 200


def _counting_checkpw(monkeypatch) -> list[bytes]:
    hashes_checked: list[bytes] = []
    real = bcrypt.checkpw

    def checkpw(password: bytes, hashed: bytes) -> bool:
        hashes_checked.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(web.bcrypt, "checkpw", checkpw)
    return hashes_checked


def test_unknown_users_cost_one_bcrypt_check_like_known_ones(monkeypatch):
    users = {"alice": bcrypt.hashpw(b"pw", bcrypt.gensalt(5)).decode()}
    auth = web.BasicAuth(users)
    checked = _counting_checkpw(monkeypatch)
    assert not auth.check(basic("alice", "wrong")["Authorization"])
    assert not auth.check(basic("nobody", "wrong")["Authorization"])
    assert len(checked) == 2
    known, unknown = checked
    assert known == users["alice"].encode()
    assert unknown != known and unknown[:7] == b"$2b$05$"  # a decoy of the same cost


def test_successful_checks_are_cached_and_failures_are_not(monkeypatch):
    auth = web.BasicAuth({"alice": bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()})
    checked = _counting_checkpw(monkeypatch)
    for _ in range(3):
        assert auth.check(basic("alice", "pw")["Authorization"])
        assert not auth.check(basic("alice", "pW")["Authorization"])
    assert len(checked) == 1 + 3


def test_cache_entries_expire(monkeypatch):
    auth = web.BasicAuth({"alice": bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()}, cache_seconds=0.05)
    checked = _counting_checkpw(monkeypatch)
    assert auth.check(basic("alice", "pw")["Authorization"])
    assert auth.check(basic("alice", "pw")["Authorization"])
    time.sleep(0.1)
    assert auth.check(basic("alice", "pw")["Authorization"])
    assert len(checked) == 2


def test_long_password_is_refused_without_calling_bcrypt(monkeypatch):
    auth = web.BasicAuth({"alice": bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()})
    checked = _counting_checkpw(monkeypatch)
    assert not auth.check(basic("alice", b"p" * 73)["Authorization"])
    assert checked == []


# --- TLS -----------------------------------------------------------------------------------


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
    config = web.load_web_config(str(path.relative_to(tmp_path)))
    assert config.tls.cert_file == str(config_dir / "server.crt")
    with running(registry, config) as server:
        assert fetch(server.ports[0], "/metrics", context=client_context(pki)).status == 200


def test_plain_http_client_gets_nothing_from_the_tls_port(registry, pki, tmp_path):
    with running(registry, tls_config(tmp_path, pki)) as server:
        with pytest.raises((OSError, http.client.HTTPException)):
            fetch(server.ports[0], "/metrics")
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
    with running(registry, config) as server:
        with socket.create_connection(("127.0.0.1", server.ports[0]), timeout=5) as raw:
            with client_context(pki).wrap_socket(raw, server_hostname="127.0.0.1") as conn:
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
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with client_context(pki).wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            return int(conn.getpeercert()["serialNumber"], 16)


def test_renewed_certificate_is_served_without_a_restart(registry, pki, tmp_path):
    for name in ("server.crt", "server.key", "openssl.cnf", "ca.crt", "ca.key"):
        shutil.copy(pki / name, tmp_path)
    config = web.load_web_config(str(write_config(
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


# --- config errors -----------------------------------------------------------------------

HASH = "$2y$04$" + "a" * 53

CONFIG_ERRORS = [
    # (file text, key named, fix named)
    ("tls_server_confg: {}\n", "tls_server_confg", "did you mean 'tls_server_config'"),
    ("tls_server_config: [a]\n", "tls_server_config", "must be a mapping"),
    ("tls_server_config:\n  cert_file: {crt}\n  key_fil: {key}\n", "tls_server_config.key_fil", "key_file"),
    ("tls_server_config:\n  cert_file: {crt}\n", "tls_server_config.key_file", "is needed with cert_file"),
    ("tls_server_config:\n  cert_file: missing.crt\n  key_file: {key}\n", "tls_server_config.cert_file",
     "config file's directory"),
    ("tls_server_config:\n  cert_file: [a]\n  key_file: {key}\n", "tls_server_config.cert_file", "non-empty text"),
    ("tls_server_config:\n  min_version: TLS13\n", "tls_server_config.cert_file", "add cert_file and key_file"),
    ("tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n  client_auth_type: RequireCert\n",
     "tls_server_config.client_auth_type", "must be one of: NoClientCert, RequestClientCert"),
    ("tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n  client_auth_type: 1\n",
     "tls_server_config.client_auth_type", "RequireAndVerifyClientCert"),
    ("tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n  client_auth_type: RequireAndVerifyClientCert\n",
     "tls_server_config.client_ca_file", "is needed with client_auth_type"),
    ("tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n  client_ca_file: {ca}\n",
     "tls_server_config.client_auth_type", "set it to RequireAndVerifyClientCert"),
    ("tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n  client_ca_file: {ca}\n"
     "  client_auth_type: VerifyClientCertIfGiven\n  client_allowed_sans: [a]\n",
     "tls_server_config.client_allowed_sans", "needs client_auth_type RequireAndVerifyClientCert"),
    ("tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n  client_ca_file: {key}\n"
     "  client_auth_type: RequireAndVerifyClientCert\n", "tls_server_config.client_ca_file", "must be PEM"),
    ("tls_server_config:\n  cert_file: {crt}\n  key_file: {other_key}\n", "tls_server_config.key_file",
     "is not the private key of the certificate"),
    ("tls_server_config:\n  cert_file: {key}\n  key_file: {key}\n", "tls_server_config.cert_file", "must be PEM"),
    ("tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n  min_version: TLS14\n",
     "tls_server_config.min_version", "TLS10, TLS11, TLS12, TLS13"),
    ("tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n  min_version: TLS13\n  max_version: TLS12\n",
     "tls_server_config.min_version", "lower min_version or raise max_version"),
    ("tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
     "tls_server_config.cipher_suites[0]", "use Go's names"),
    ("tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n  prefer_server_cipher_suites: 'yes'\n",
     "tls_server_config.prefer_server_cipher_suites", "true or false"),
    ("basic_auth_users: [alice]\n", "basic_auth_users", "mapping of user name to bcrypt hash"),
    ("basic_auth_users:\n  alice: hunter2\n", "basic_auth_users.alice", "htpasswd -nBC 10"),
    ("basic_auth_users:\n  alice: 12345\n", "basic_auth_users.alice", "bcrypt.hashpw"),
    ("basic_auth_users:\n  alice: '$2y$99$" + "a" * 53 + "'\n", "basic_auth_users.alice", "out of range"),
    ("basic_auth_users:\n  'a:b': '" + HASH + "'\n", "basic_auth_users.a:b", "cannot contain ':'"),
    ("basic_auth_users:\n  123: '" + HASH + "'\n", "basic_auth_users.123", "quote it"),
    ("basic_auth_users:\n  alice: '" + HASH + "'\n  alice: '" + HASH + "'\n", "basic_auth_users.alice",
     "is given twice"),
    ("http_server_config:\n  headers:\n    Server: x\n", "http_server_config.headers.Server",
     "Strict-Transport-Security"),
    ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "http_server_config.headers.X-Frame-Options",
     "deny, sameorigin"),
    ("http_server_config:\n  http2: 'no'\n", "http_server_config.http2", "true or false"),
    ("http_server_config:\n  tls: 1\n", "http_server_config.tls", "headers, http2"),
    ("rate_limit:\n  interval: fast\n  burst: 1\n", "rate_limit.interval", "500ms"),
    ("rate_limit:\n  interval: 1s\n", "rate_limit.burst", "whole number >= 1"),
    ("- just\n- a list\n", "(top level)", "must be a mapping"),
    ("tls_server_config: {cert_file: a\n", "(file)", "not valid YAML"),
]


@pytest.mark.parametrize(("text", "key", "fix"), CONFIG_ERRORS, ids=[c[1] + "/" + c[2] for c in CONFIG_ERRORS])
def test_config_errors_name_the_file_the_key_and_the_fix(tmp_path, pki, text, key, fix):
    other = tmp_path / "other"
    other.mkdir()
    (other / "openssl.cnf").write_text(OPENSSL_CNF)
    shutil.copy(pki / "ca.crt", other)
    shutil.copy(pki / "ca.key", other)
    if "{other_key}" in text:
        make_leaf(other, "server", "ca", "server", 3003)
    for placeholder, file in (("{crt}", pki / "server.crt"), ("{key}", pki / "server.key"),
                              ("{ca}", pki / "ca.crt"), ("{other_key}", other / "server.key")):
        text = text.replace(placeholder, str(file))
    path = write_config(tmp_path, text)
    with pytest.raises(web.WebConfigError) as caught:
        web.load_web_config(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert fix in message, message
    assert caught.value.file == str(path) and caught.value.key == key


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "absent.yml"
    with pytest.raises(web.WebConfigError, match=f"^{path}: \\(file\\): cannot read it"):
        web.load_web_config(str(path))


def test_error_messages_do_not_echo_a_plain_password(tmp_path):
    path = write_config(tmp_path, "basic_auth_users:\n  alice: hunter2\n")
    with pytest.raises(web.WebConfigError) as caught:
        web.load_web_config(str(path))
    assert "hunter2" not in str(caught.value)


def test_empty_and_blank_sections_mean_plain_http(tmp_path):
    for text in ("", "tls_server_config:\nbasic_auth_users:\n", "tls_server_config: {}\n"):
        config = web.load_web_config(str(write_config(tmp_path, text)))
        assert config.tls is None and config.basic_auth_users == {}


def test_full_config_loads(tmp_path, pki):
    text = (
        "tls_server_config:\n"
        f"  cert_file: {pki / 'server.crt'}\n"
        f"  key_file: {pki / 'server.key'}\n"
        "  client_auth_type: RequireClientCert\n"  # exporter-toolkit's old name for RequireAnyClientCert
        f"  client_ca: |\n" + "".join(f"    {line}\n" for line in (pki / "ca.crt").read_text().splitlines()) +
        "  min_version: TLS13\n"
        "  curve_preferences: [X25519, CurveP256]\n"
        "  prefer_server_cipher_suites: false\n"
        "http_server_config:\n  http2: false\n  headers:\n    Content-Security-Policy: default-src 'self'\n"
        f"basic_auth_users:\n  alice: '{HASH}'\n"
        "rate_limit:\n  interval: 1m30s\n  burst: 5\n"
    )
    config = web.load_web_config(str(write_config(tmp_path, text)))
    assert config.tls.client_auth_type == "RequireAnyClientCert"
    assert config.tls.client_ca.startswith("-----BEGIN CERTIFICATE-----")
    assert config.tls.min_version == "TLS13"
    assert config.headers == {"Content-Security-Policy": "default-src 'self'"}
    assert config.basic_auth_users == {"alice": HASH}
    assert config.rate_limit == web.RateLimit(90.0, 5)
    assert HASH not in repr(config)


def test_inline_cert_and_key(registry, pki, tmp_path):
    def block(name: str, file: str) -> str:
        return f"  {name}: |\n" + "".join(f"    {line}\n" for line in (pki / file).read_text().splitlines())

    text = "tls_server_config:\n" + block("cert", "server.crt") + block("key", "server.key")
    with running(registry, web.load_web_config(str(write_config(tmp_path, text)))) as server:
        assert fetch(server.ports[0], "/metrics", context=client_context(pki)).status == 200
    assert not list(Path(tempfile.gettempdir()).glob("web-tls-*"))  # the inline PEM copies are gone


def test_example_file_is_valid(tmp_path, pki):
    shutil.copy(REPO / "config" / "web-config.example.yml", tmp_path / "web.yml")
    shutil.copy(pki / "server.crt", tmp_path)
    shutil.copy(pki / "server.key", tmp_path)
    config = web.load_web_config(str(tmp_path / "web.yml"))
    assert config.tls is not None and config.tls.min_version == "TLS12"
    assert list(config.basic_auth_users) == ["prometheus"]
    assert config.headers["X-Frame-Options"] == "deny"


@pytest.mark.slow
def test_concurrent_scrapes_with_auth(registry, auth_config):
    with running(registry, auth_config) as server:
        results: list[int] = []
        lock = threading.Lock()

        def scrape() -> None:
            status = fetch(server.ports[0], "/metrics", basic("alice", PASSWORD)).status
            with lock:
                results.append(status)

        threads = [threading.Thread(target=scrape) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [200] * 8

"""Shared pieces of the web front's tests (test_web_*.py): a client for the
real HTTP(S) endpoint on 127.0.0.1, a server running for one test, and TLS
material (a CA, a server certificate, client certificates, and a second CA
nobody trusts) made once per session with the openssl command line.

Its fixtures (registry, pki) are in conftest.py.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import subprocess
from pathlib import Path
from typing import NamedTuple

from prometheus_client import CollectorRegistry

from exporter.web.config import WebConfig, load_web_config
from exporter.web.server import WebServer, serve

PASSWORD = "correct horse"


class Response(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def request(conn: http.client.HTTPConnection, path: str = "/", headers: dict | None = None,
            method: str = "GET") -> Response:
    """One request on a connection, which stays open if the server keeps it alive."""
    conn.request(method, path, headers=headers or {})
    reply = conn.getresponse()
    return Response(reply.status, reply.headers, reply.read())


def fetch(port: int, path: str = "/", headers: dict | None = None,
          context: ssl.SSLContext | None = None, method: str = "GET") -> Response:
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    try:
        return request(conn, path, headers, method)
    finally:
        conn.close()


def basic(user: str, password: str | bytes) -> dict:
    raw = user.encode() + b":" + (password if isinstance(password, bytes) else password.encode())
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def running(registry: CollectorRegistry, config: WebConfig | None = None,
            addresses: tuple[str, ...] = ("127.0.0.1:0",), telemetry_path: str = "/metrics") -> WebServer:
    """A server on 127.0.0.1 for a `with` block, which stops it."""
    return serve(registry, list(addresses), telemetry_path, config)


def write_config(directory: Path, text: str, name: str = "web.yml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


# --- TLS material ---------------------------------------------------------------

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


def client_context(pki: Path, cert: str | None = None, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert:
        ctx.load_cert_chain(str(pki / f"{cert}.crt"), str(pki / f"{cert}.key"))
    if maximum:
        ctx.maximum_version = maximum
    return ctx


def tls_config(directory: Path, pki: Path, extra: str = "") -> WebConfig:
    text = f"tls_server_config:\n  cert_file: {pki / 'server.crt'}\n  key_file: {pki / 'server.key'}\n{extra}"
    return load_web_config(str(write_config(directory, text)))

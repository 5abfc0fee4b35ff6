"""TLS: the server's SSLContext from tls_server_config, and its connections.

Where Python's ssl module cannot do what Go's crypto/tls does, this says so:

- RequestClientCert asks for no certificate. Go asks for one and never
  checks it, so the access granted is the same.
- RequireAnyClientCert verifies the client certificate against
  client_ca_file, as RequireAndVerifyClientCert does: Python cannot accept a
  certificate without verifying it. So it needs client_ca_file.
- curve_preferences is checked but not applied (OpenSSL's defaults are used).

As in exporter-toolkit, certificate files are re-read when they change, so a
renewed certificate is served without a restart.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NoReturn

from exporter.configcheck import ConfigError
from exporter.web.contents import file_contents

log = logging.getLogger(__name__)

CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
CLIENT_AUTH_ALIASES = {"RequireClientCert": "RequireAnyClientCert"}  # exporter-toolkit's old name
_VERIFY_MODES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,  # see the module docstring
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
NEEDS_CLIENT_CA = ("RequireAnyClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
ALWAYS_HAS_CLIENT_CERT = ("RequireAnyClientCert", "RequireAndVerifyClientCert")

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# Go's cipher suite names (those of crypto/tls CipherSuites) and OpenSSL's.
CIPHER_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
}
# TLS 1.3 suites cannot be chosen in Go either: accepted, not applied.
TLS13_CIPHER_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
CURVES = ("CurveP256", "CurveP384", "CurveP521", "X25519")


@dataclass
class TLSServerConfig:
    cert_file: str | None = None  # absolute paths, resolved against the config's directory
    key_file: str | None = None
    cert: str | None = None  # inline PEM, instead of cert_file
    key: str | None = field(default=None, repr=False)
    client_ca_file: str | None = None
    client_ca: str | None = None
    client_auth_type: str = "NoClientCert"
    client_allowed_sans: list[str] | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: list[str] = field(default_factory=list)
    prefer_server_cipher_suites: bool = True
    curve_preferences: list[str] = field(default_factory=list)


@contextmanager
def _pem_files(tls: TLSServerConfig) -> Iterator[tuple[str, str]]:
    """The cert and key as file paths; inline PEM goes to private temp files
    because ssl.SSLContext.load_cert_chain reads files only."""
    made = []

    def temp(text: str) -> str:
        fd, name = tempfile.mkstemp(prefix="web-tls-", suffix=".pem")  # mode 0600
        made.append(name)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return name

    try:
        yield (tls.cert_file or temp(tls.cert or "")), (tls.key_file or temp(tls.key or ""))
    finally:
        for name in made:
            os.unlink(name)


def build_ssl_context(tls: TLSServerConfig, path: str = "(web config)") -> ssl.SSLContext:
    """The server's SSLContext for a TLS config; ConfigError if a file is wrong."""

    def fail(name: str, problem: str) -> NoReturn:
        raise ConfigError(path, f"tls_server_config.{name}", problem)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSIONS[tls.min_version]
    ctx.maximum_version = TLS_VERSIONS[tls.max_version]
    openssl_suites = [CIPHER_SUITES[s] for s in tls.cipher_suites if s in CIPHER_SUITES]
    if openssl_suites:
        try:
            ctx.set_ciphers(":".join(openssl_suites))
        except ssl.SSLError:
            fail("cipher_suites", "none of these suites is available in this OpenSSL; "
                 "remove cipher_suites to use the defaults")
    if tls.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE

    cert_key = "cert_file" if tls.cert_file else "cert"
    key_key = "key_file" if tls.key_file else "key"
    try:
        with _pem_files(tls) as (certfile, keyfile):
            # A password callback that gives nothing: without one OpenSSL
            # would prompt on the terminal for an encrypted key and hang.
            ctx.load_cert_chain(certfile, keyfile, password=lambda: b"")
    except ssl.SSLError as err:
        if err.reason == "KEY_VALUES_MISMATCH":
            fail(key_key, f"is not the private key of the certificate in {cert_key}; give the matching pair")
        if _looks_encrypted(tls):
            fail(key_key, "is an encrypted private key; decrypt it (`openssl pkey -in KEY -out KEY.plain`) "
                 "and protect it with file permissions instead")
        fail(cert_key, f"cannot load the certificate and key ({err.reason or err}); "
             f"{cert_key} and {key_key} must be PEM")
    except OSError as err:
        fail(cert_key, f"cannot read the certificate or key: {err.strerror or err}")

    if tls.client_ca_file or tls.client_ca:
        ca_key = "client_ca_file" if tls.client_ca_file else "client_ca"
        try:
            if tls.client_ca_file:
                ctx.load_verify_locations(cafile=tls.client_ca_file)
            else:
                ctx.load_verify_locations(cadata=tls.client_ca)
        except (ssl.SSLError, OSError, ValueError) as err:
            fail(ca_key, f"holds no usable CA certificate ({getattr(err, 'reason', None) or err}); "
                 "it must be PEM certificate(s)")
    ctx.verify_mode = _VERIFY_MODES[tls.client_auth_type]
    return ctx


def _looks_encrypted(tls: TLSServerConfig) -> bool:
    try:
        if tls.key_file:
            with open(tls.key_file, "rb") as f:
                return b"ENCRYPTED" in f.read(4096)
        return "ENCRYPTED" in (tls.key or "")
    except OSError:
        return False


def _normal_san(value: str) -> str:
    # Python prints IPv6 SANs in full upper case; configs use the short form.
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value


def _peer_sans(conn: ssl.SSLSocket) -> set[str]:
    """The subject alternative names of the client's certificate."""
    entries = (conn.getpeercert() or {}).get("subjectAltName", ())
    return {_normal_san(str(entry[1])) for entry in entries if isinstance(entry, tuple) and len(entry) == 2}


def close_quietly(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class PlainHTTPClient(ConnectionError):
    """A client sent plain HTTP to the TLS port (and was told to use https)."""


# What Go's net/http answers there, so that a curl without https:// learns why.
PLAIN_HTTP_MESSAGE = b"Client sent an HTTP request to an HTTPS server.\n"
_PLAIN_HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(PLAIN_HTTP_MESSAGE), PLAIN_HTTP_MESSAGE)
)


def _answered_plain_http(sock: socket.socket) -> bool:
    """If the client's first byte starts an HTTP request line (a method is
    upper-case letters; a TLS handshake record starts with 0x16), answers 400."""
    first = sock.recv(1, socket.MSG_PEEK)
    if not first.isupper():
        return False
    # Read the request before answering: closing a socket with unread data
    # resets the connection, and the client could lose the answer.
    sock.recv(65536)
    sock.sendall(_PLAIN_HTTP_ANSWER)
    return True


class TLSConnections:
    """Makes TLS connections, rebuilding the SSLContext when a certificate
    file changes; a broken new file keeps the previous context in use."""

    def __init__(self, tls: TLSServerConfig, path: str) -> None:
        self._tls, self._path = tls, path
        self._files = [p for p in (tls.cert_file, tls.key_file, tls.client_ca_file) if p]
        self._lock = threading.Lock()
        self._contents = self._file_contents()
        self._context = build_ssl_context(tls, path)
        self._allowed_sans = (
            {_normal_san(s) for s in tls.client_allowed_sans} if tls.client_allowed_sans is not None else None
        )

    def _file_contents(self) -> tuple[bytes | None, ...]:
        return tuple(file_contents(name) for name in self._files)

    def context(self) -> ssl.SSLContext:
        contents = self._file_contents()
        with self._lock:
            if contents != self._contents:
                self._contents = contents
                try:
                    self._context = build_ssl_context(self._tls, self._path)
                    log.info("TLS certificate files changed; loaded them")
                except ConfigError as err:
                    log.warning("TLS certificate files changed but cannot be loaded; still using the previous "
                                "ones: %s", err)
            return self._context

    def accept(self, sock: socket.socket) -> ssl.SSLSocket:
        """Does the handshake (in the caller's thread) and checks client SANs.
        A client speaking plain HTTP gets a 400 saying to use https."""
        if _answered_plain_http(sock):
            raise PlainHTTPClient("the client sent plain HTTP to the TLS port; answered 400")
        conn = self.context().wrap_socket(sock, server_side=True)
        if self._allowed_sans is not None and not _peer_sans(conn) & self._allowed_sans:
            close_quietly(conn)
            raise PermissionError("the client certificate has none of client_allowed_sans")
        return conn

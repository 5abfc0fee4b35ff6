"""The web front: landing page, metrics path, TLS and basic auth.

The web configuration file follows the Prometheus exporter-toolkit format
(`tls_server_config`, `basic_auth_users`, `http_server_config`), so the
same file works for this exporter as for the Go ones. Metrics are served by
prometheus_client's WSGI app, which brings gzip and OpenMetrics negotiation.
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
import os
import socket
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from socketserver import TCPServer, ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import bcrypt
import yaml
from prometheus_client import CollectorRegistry, make_wsgi_app

from exporter import __version__

log = logging.getLogger(__name__)

CLIENT_AUTH_TYPES = {
    # Python verifies any certificate it requests, so the two "any" types of
    # exporter-toolkit are served as their verifying twins (needs client_ca_file).
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
BCRYPT_MAX_PASSWORD = 72  # bcrypt reads no further; longer passwords are refused
HANDSHAKE_TIMEOUT = 10.0


class WebConfigError(Exception):
    def __init__(self, file: str, key: str, problem: str) -> None:
        super().__init__(f"{file}: {key}: {problem}")


@dataclass
class WebConfig:
    cert_file: str | None = None
    key_file: str | None = None
    client_ca_file: str | None = None
    client_auth_type: str = "NoClientCert"
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    basic_auth_users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return self.cert_file is not None


def load_web_config(path: str) -> WebConfig:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except OSError as err:
        raise WebConfigError(path, "(file)", f"cannot read it: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise WebConfigError(path, "(file)", f"not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise WebConfigError(path, "(top level)", "must be a mapping")
    base = os.path.dirname(os.path.abspath(path))
    config = WebConfig()
    sections = {"tls_server_config", "basic_auth_users", "http_server_config"}
    for key in data:
        if key not in sections:
            raise WebConfigError(path, str(key), f"unknown key; known keys are: {', '.join(sorted(sections))}")
    tls = _mapping(path, "tls_server_config", data.get("tls_server_config"))
    tls_keys = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version",
                "max_version", "cipher_suites", "prefer_server_cipher_suites", "curve_preferences"}
    for key, value in tls.items():
        where = f"tls_server_config.{key}"
        if key not in tls_keys:
            raise WebConfigError(path, where, f"unknown key; known keys are: {', '.join(sorted(tls_keys))}")
        if key in ("cert_file", "key_file", "client_ca_file"):
            setattr(config, key, _readable(path, where, base, value))
        elif key == "client_auth_type":
            config.client_auth_type = _choice(path, where, value, CLIENT_AUTH_TYPES)
        elif key in ("min_version", "max_version"):
            setattr(config, key, _choice(path, where, value, TLS_VERSIONS))
        # cipher_suites and friends: Python's defaults are used instead.
    if (config.cert_file is None) != (config.key_file is None):
        raise WebConfigError(path, "tls_server_config", "cert_file and key_file must be given together")
    if CLIENT_AUTH_TYPES[config.client_auth_type] != ssl.CERT_NONE and config.client_ca_file is None:
        raise WebConfigError(path, "tls_server_config.client_ca_file",
                             f"is needed to verify client certificates with {config.client_auth_type}")
    for user, hashed in _mapping(path, "basic_auth_users", data.get("basic_auth_users")).items():
        where = f"basic_auth_users.{user}"
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise WebConfigError(path, where, "must be a bcrypt hash ($2y$...); make one with "
                                 "`htpasswd -nBC 10 \"\"` or python3 -c 'import bcrypt; "
                                 "print(bcrypt.hashpw(b\"secret\", bcrypt.gensalt()).decode())'")
        config.basic_auth_users[str(user)] = hashed.encode()
    server = _mapping(path, "http_server_config", data.get("http_server_config"))
    for key, value in server.items():
        if key == "headers":
            headers = _mapping(path, "http_server_config.headers", value)
            config.headers = {str(k): str(v) for k, v in headers.items()}
        elif key != "http2":  # http2 does not apply to this server
            raise WebConfigError(path, f"http_server_config.{key}", "unknown key; known keys are: headers")
    if config.tls:
        build_ssl_context(config, path)  # fail now, not on the first scrape
    return config


def _mapping(path: str, key: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebConfigError(path, key, "must be a mapping")
    return value


def _readable(path: str, key: str, base: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise WebConfigError(path, key, "must be a file path")
    full = value if os.path.isabs(value) else os.path.join(base, value)
    if not os.access(full, os.R_OK):
        raise WebConfigError(path, key, f"cannot read {full}")
    return full


def _choice(path: str, key: str, value: Any, choices: dict) -> str:
    if value not in choices:
        raise WebConfigError(path, key, f"got {value!r}; must be one of: {', '.join(choices)}")
    return value


def build_ssl_context(config: WebConfig, path: str = "(web config)") -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSIONS[config.min_version]
    ctx.maximum_version = TLS_VERSIONS[config.max_version]
    try:
        ctx.load_cert_chain(config.cert_file, config.key_file)
        if config.client_ca_file:
            ctx.load_verify_locations(config.client_ca_file)
    except (ssl.SSLError, OSError) as err:
        raise WebConfigError(path, "tls_server_config", f"cannot load the certificates: {err}") from err
    ctx.verify_mode = CLIENT_AUTH_TYPES[config.client_auth_type]
    return ctx


class BasicAuth:
    """Checks Basic credentials against bcrypt hashes.

    An unknown user is checked against a dummy hash of the same cost, so a
    wrong name takes as long as a wrong password. Successful checks are
    remembered (by a salted digest, bounded), so a scrape every few seconds
    does not pay bcrypt's cost each time.
    """

    CACHE_SIZE = 64

    def __init__(self, users: dict[str, bytes]) -> None:
        self._users = users
        cost = next(iter(users.values())).split(b"$")[2] if users else b"10"
        self._dummy = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(int(cost)))
        self._salt = os.urandom(16)
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, sep, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        secret = password.encode()
        if not sep or len(secret) > BCRYPT_MAX_PASSWORD:
            return False
        digest = hashlib.sha256(self._salt + user.encode() + b"\0" + secret).digest()
        with self._lock:
            if digest in self._ok:
                self._ok.move_to_end(digest)
                return True
        hashed = self._users.get(user)
        ok = bcrypt.checkpw(secret, hashed if hashed is not None else self._dummy) and hashed is not None
        if ok:
            with self._lock:
                self._ok[digest] = None
                while len(self._ok) > self.CACHE_SIZE:
                    self._ok.popitem(last=False)
        return ok


def landing_page(telemetry_path: str) -> bytes:
    link = html.escape(telemetry_path, quote=True)
    return (
        "<!DOCTYPE html>\n<html><head><title>smtp-reply-exporter</title></head><body>\n"
        "<h1>smtp-reply-exporter</h1>\n"
        f"<p>Version {html.escape(__version__)}. SMTP reply codes and enhanced status codes "
        "from the mail log, for Prometheus.</p>\n"
        f'<p><a href="{link}">Metrics</a></p>\n</body></html>\n'
    ).encode()


def make_app(registry: CollectorRegistry, telemetry_path: str, config: WebConfig | None) -> Callable:
    metrics_app = make_wsgi_app(registry)
    page = landing_page(telemetry_path)
    auth = BasicAuth(config.basic_auth_users) if config and config.basic_auth_users else None
    extra = list(config.headers.items()) if config else []

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        def respond(status: str, headers: list[tuple[str, str]], body: bytes) -> list[bytes]:
            start_response(status, headers + extra + [("Content-Length", str(len(body)))])
            return [body]

        if auth is not None and not auth.check(environ.get("HTTP_AUTHORIZATION")):
            return respond("401 Unauthorized", [("Content-Type", "text/plain"),
                                                ("WWW-Authenticate", 'Basic realm="smtp-reply-exporter"')],
                           b"Unauthorized\n")
        path = environ.get("PATH_INFO") or "/"
        if path == telemetry_path:
            def start_with_extra(status, headers, exc_info=None):  # noqa: ANN001
                return start_response(status, headers + extra, exc_info)

            return metrics_app(environ, start_with_extra)
        if path == "/":
            return respond("200 OK", [("Content-Type", "text/html; charset=utf-8")], page)
        return respond("404 Not Found", [("Content-Type", "text/plain")], b"Not Found\n")

    return app


class _QuietHandler(WSGIRequestHandler):
    def setup(self) -> None:
        # The TLS handshake happens here, in the request's own thread, with a
        # timeout: a slow or silent client cannot stall the accept loop.
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(HANDSHAKE_TIMEOUT)
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        # HTTPServer would look up the host's FQDN here, which can hang for
        # the resolver's timeout on a host without DNS.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
        self.setup_environ()

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        log.debug("request from %s failed", client_address, exc_info=True)


def parse_listen_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    return host, int(port)


class WebServer:
    """The HTTP(S) servers for every listen address; stop() ends them all."""

    def __init__(
        self,
        registry: CollectorRegistry,
        listen_addresses: Iterable[str],
        telemetry_path: str = "/metrics",
        config: WebConfig | None = None,
    ) -> None:
        app = make_app(registry, telemetry_path, config)
        context = build_ssl_context(config) if config and config.tls else None
        self._servers: list[_Server] = []
        try:
            for address in listen_addresses:
                host, port = parse_listen_address(address)
                server = _make_server(host, port)
                server.set_app(app)
                if context is not None:
                    server.socket = context.wrap_socket(
                        server.socket, server_side=True, do_handshake_on_connect=False
                    )
                self._servers.append(server)
        except BaseException:
            self.stop()
            raise
        self.ports = [s.server_address[1] for s in self._servers]
        for server in self._servers:
            threading.Thread(target=server.serve_forever, name="web", daemon=True).start()

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []


def _make_server(host: str, port: int) -> _Server:
    family = socket.AF_INET6 if ":" in host or host == "" and socket.has_ipv6 else socket.AF_INET

    class Server(_Server):
        address_family = family

        def server_bind(self) -> None:
            if family == socket.AF_INET6:
                # ":port" means every interface, IPv4 included.
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

    return Server((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port), _QuietHandler)


def serve(
    registry: CollectorRegistry,
    listen_addresses: Iterable[str],
    telemetry_path: str = "/metrics",
    config: WebConfig | None = None,
) -> WebServer:
    return WebServer(registry, listen_addresses, telemetry_path, config)

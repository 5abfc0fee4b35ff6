"""The web front: landing page, metrics path, TLS, basic auth.

The web configuration file is the Prometheus exporter-toolkit format
(tls_server_config, http_server_config, basic_auth_users, rate_limit), so one
file can serve this exporter and the Go exporters beside it. Where Python's
ssl module cannot do what Go's crypto/tls does, this module says so:

- RequestClientCert asks for no certificate. Go asks for one and never
  checks it, so the access granted is the same.
- RequireAnyClientCert verifies the client certificate against
  client_ca_file, as RequireAndVerifyClientCert does: Python cannot accept a
  certificate without verifying it. So it needs client_ca_file.
- curve_preferences is checked but not applied (OpenSSL's defaults are used).
- http2 is accepted and ignored: this server speaks HTTP/1.x.

As in exporter-toolkit, certificate files are re-read when they change, so a
renewed certificate is served without a restart. The rest of the file is
read once, at start-up.

The metrics come from prometheus_client's WSGI app, which negotiates gzip and
OpenMetrics itself.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import errno
import hashlib
import hmac
import html
import ipaddress
import logging
import os
import re
import socket
import socketserver
import ssl
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import bcrypt
import yaml
from prometheus_client import CollectorRegistry, make_wsgi_app

from exporter import __version__

log = logging.getLogger(__name__)

EXPORTER_NAME = "smtp-reply-exporter"

# The Prometheus wiki's "Default port allocations" list has given out every
# port from 9100 to 9999 and carries on above 10000 (10001-10026, 10080,
# 10100, 10101, 10200, 10201, 10998, 11111, ...). 10925 is on neither part
# ("25" as in SMTP) and clear of the ports mail hosts use themselves, such as
# 10024-10026 for content filters.
DEFAULT_PORT = 10925
DEFAULT_TELEMETRY_PATH = "/metrics"

HANDSHAKE_TIMEOUT = 10.0  # seconds a client gets to finish the TLS handshake
REQUEST_TIMEOUT = 30.0  # seconds a connection may stall while sending its request
BCRYPT_MAX_PASSWORD_BYTES = 72  # bcrypt reads no further; longer ones are refused
AUTH_CACHE_SECONDS = 300.0
AUTH_CACHE_SIZE = 256

CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
_CLIENT_AUTH_ALIASES = {"RequireClientCert": "RequireAnyClientCert"}  # exporter-toolkit's old name
_VERIFY_MODES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,  # see the module docstring
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_NEEDS_CLIENT_CA = ("RequireAnyClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
_ALWAYS_HAS_CLIENT_CERT = ("RequireAnyClientCert", "RequireAndVerifyClientCert")

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# Go's cipher suite names (those of crypto/tls CipherSuites) and OpenSSL's.
_CIPHER_SUITES = {
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
_TLS13_CIPHER_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
_CURVES = ("CurveP256", "CurveP384", "CurveP521", "X25519")

# The response headers exporter-toolkit lets a config set; None: any value.
_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}

_TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
_TLS_KEYS = (
    "cert_file", "key_file", "cert", "key", "client_ca_file", "client_ca", "client_auth_type",
    "client_allowed_sans", "min_version", "max_version", "cipher_suites",
    "prefer_server_cipher_suites", "curve_preferences",
)
_HTTP_KEYS = ("headers", "http2")
_RATE_LIMIT_KEYS = ("interval", "burst")

_BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_HASH_HOWTO = (
    "make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'` or "
    "`python3 -c 'import bcrypt, getpass; "
    "print(bcrypt.hashpw(getpass.getpass().encode(), bcrypt.gensalt(10)).decode())'`"
)


class WebConfigError(Exception):
    """A problem in the web config file: names the file, the key and the fix."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file, self.key, self.problem = file, key, problem
        super().__init__(f"{file}: {key}: {problem}")


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


@dataclass
class RateLimit:
    interval_seconds: float  # one request per interval on average...
    burst: int  # ...with up to this many at once


@dataclass
class WebConfig:
    path: str | None = None
    tls: TLSServerConfig | None = None
    basic_auth_users: dict[str, str] = field(default_factory=dict, repr=False)  # user -> bcrypt hash
    headers: dict[str, str] = field(default_factory=dict)
    http2: bool = True
    rate_limit: RateLimit | None = None


# --- reading the file -------------------------------------------------------


def load_web_config(path: str) -> WebConfig:
    """Reads and checks an exporter-toolkit web config file.

    Certificates and keys are loaded now, so that a mistake stops the
    exporter at start-up rather than failing every scrape.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise WebConfigError(path, "(file)", f"cannot read it: {err.strerror}; check --web.config.file") from err
    except UnicodeDecodeError as err:
        raise WebConfigError(path, "(file)", "is not UTF-8 text; save it as UTF-8 YAML") from err
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise WebConfigError(path, "(file)", f"is not valid YAML: {err}") from err
    twice = _repeated_key(root, "", 0) if root is not None else None
    if twice:
        raise WebConfigError(path, twice, "is given twice; keep one (YAML would silently use the last)")
    return _Reader(path).web_config(data)


def _repeated_key(node: yaml.Node, where: str, depth: int) -> str | None:
    if depth > 32:  # deeper than any sane web config; also stops alias loops
        return None
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            here = f"{where}.{name}" if where else name
            if name in seen:
                return here
            seen.add(name)
            found = _repeated_key(value_node, here, depth + 1)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = _repeated_key(item, f"{where}[{i}]", depth + 1)
            if found:
                return found
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{value!r} (true/false)"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class _Reader:
    """Turns the parsed YAML into a WebConfig, naming the key of any mistake."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.base = os.path.dirname(os.path.abspath(path))

    def fail(self, key: str, problem: str) -> NoReturn:
        raise WebConfigError(self.path, key, problem)

    def web_config(self, data: Any) -> WebConfig:
        if data is None:
            data = {}
        top = self.mapping("(top level)", data, _TOP_KEYS, "")
        config = WebConfig(path=self.path)
        config.tls = self.tls(top.get("tls_server_config"))
        http = self.mapping("http_server_config", top.get("http_server_config"), _HTTP_KEYS)
        config.headers = self.headers(http.get("headers"))
        if http.get("http2") is not None:
            config.http2 = self.boolean("http_server_config.http2", http["http2"])
        config.basic_auth_users = self.users(top.get("basic_auth_users"))
        config.rate_limit = self.rate_limit(top.get("rate_limit"))
        return config

    # Generic checks.

    def mapping(self, key: str, value: Any, known: Iterable[str], prefix: str | None = None) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(key, f"must be a mapping of settings, got {_kind(value)}")
        prefix = key if prefix is None else prefix
        known = tuple(known)
        for name in value:
            if name not in known:
                here = f"{prefix}.{name}" if prefix else str(name)
                close = difflib.get_close_matches(str(name), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.fail(here, f"unknown key{hint}; the keys allowed here are: {', '.join(known)}")
        return value

    def string(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be non-empty text, got {_kind(value)}")
        return value

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {_kind(value)}")
        return value

    def strings(self, key: str, value: Any) -> list[str]:
        if not isinstance(value, list):
            self.fail(key, f"must be a list of text, got {_kind(value)}")
        return [self.string(f"{key}[{i}]", item) for i, item in enumerate(value)]

    def choice(self, key: str, value: Any, choices: Iterable[str], aliases: Mapping[str, str] | None = None) -> str:
        choices = tuple(choices)
        if aliases and value in aliases:
            return aliases[value]
        if value not in choices:
            self.fail(key, f"got {_kind(value)}; must be one of: {', '.join(choices)}")
        return value

    def readable_file(self, key: str, value: Any) -> str:
        name = self.string(key, value)
        full = name if os.path.isabs(name) else os.path.join(self.base, name)
        try:
            with open(full, "rb"):
                pass
        except OSError as err:
            relative = "" if os.path.isabs(name) else " (relative paths are read from the config file's directory)"
            self.fail(key, f"cannot read {full}: {err.strerror}{relative}; fix the path or the file's permissions")
        return full

    # The sections.

    def tls(self, value: Any) -> TLSServerConfig | None:
        where = "tls_server_config"
        raw = self.mapping(where, value, _TLS_KEYS)
        given = {name: v for name, v in raw.items() if v is not None}
        if not given:
            return None

        def key(name: str) -> str:
            return f"{where}.{name}"

        tls = TLSServerConfig()
        for name in ("cert_file", "key_file", "client_ca_file"):
            if name in given:
                setattr(tls, name, self.readable_file(key(name), given[name]))
        for name in ("cert", "key", "client_ca"):
            if name in given:
                setattr(tls, name, self.string(key(name), given[name]))
            if name in given and f"{name}_file" in given:
                self.fail(key(name), f"give it once: either {name}_file or {name} (inline PEM), not both")
        if "client_auth_type" in given:
            tls.client_auth_type = self.choice(
                key("client_auth_type"), given["client_auth_type"], CLIENT_AUTH_TYPES, _CLIENT_AUTH_ALIASES
            )
        for name in ("min_version", "max_version"):
            if name in given:
                setattr(tls, name, self.choice(key(name), given[name], TLS_VERSIONS))
        if "client_allowed_sans" in given:
            tls.client_allowed_sans = self.strings(key("client_allowed_sans"), given["client_allowed_sans"])
        if "cipher_suites" in given:
            tls.cipher_suites = self.strings(key("cipher_suites"), given["cipher_suites"])
            for i, suite in enumerate(tls.cipher_suites):
                if suite not in _CIPHER_SUITES and suite not in _TLS13_CIPHER_SUITES:
                    self.fail(f"{key('cipher_suites')}[{i}]",
                              f"unknown cipher suite {suite!r}; use Go's names, one of: {', '.join(_CIPHER_SUITES)}")
        if "prefer_server_cipher_suites" in given:
            tls.prefer_server_cipher_suites = self.boolean(key("prefer_server_cipher_suites"),
                                                           given["prefer_server_cipher_suites"])
        if "curve_preferences" in given:
            tls.curve_preferences = self.strings(key("curve_preferences"), given["curve_preferences"])
            for i, curve in enumerate(tls.curve_preferences):
                self.choice(f"{key('curve_preferences')}[{i}]", curve, _CURVES)
            log.warning("%s: %s is not applied by this exporter; OpenSSL's default curves are used",
                        self.path, key("curve_preferences"))

        has_cert = tls.cert_file or tls.cert
        has_key = tls.key_file or tls.key
        has_client_ca = tls.client_ca_file or tls.client_ca
        if not has_cert:
            # exporter-toolkit would quietly serve plain HTTP here; settings
            # that ask for TLS without a certificate are surely a mistake.
            self.fail(key("cert_file"), "is needed to serve TLS: add cert_file and key_file "
                      "(or remove tls_server_config to serve plain HTTP)")
        if not has_key:
            self.fail(key("key_file"), "is needed with cert_file: the private key of that certificate "
                      "(or give it inline as key)")
        auth = tls.client_auth_type
        if auth in _NEEDS_CLIENT_CA and not has_client_ca:
            why = (" (this exporter verifies every client certificate it asks for)"
                   if auth == "RequireAnyClientCert" else "")
            self.fail(key("client_ca_file"), f"is needed with client_auth_type {auth}: the CA certificate(s) "
                      f"that signed the clients' certificates{why}")
        if has_client_ca and auth == "NoClientCert":
            self.fail(key("client_auth_type"), "is NoClientCert, so the client CA would never be used; set it to "
                      "RequireAndVerifyClientCert to check client certificates, or remove client_ca_file")
        if tls.client_allowed_sans is not None and auth not in _ALWAYS_HAS_CLIENT_CERT:
            self.fail(key("client_allowed_sans"), f"needs client_auth_type RequireAndVerifyClientCert: with {auth} "
                      "a client may send no certificate, leaving no SAN to match")
        if TLS_VERSIONS[tls.min_version] > TLS_VERSIONS[tls.max_version]:
            self.fail(key("min_version"), f"{tls.min_version} is above max_version {tls.max_version}; "
                      "lower min_version or raise max_version")
        build_ssl_context(tls, self.path)
        return tls

    def headers(self, value: Any) -> dict[str, str]:
        where = "http_server_config.headers"
        raw = self.mapping(where, value, _HEADERS)
        headers = {}
        for name, header_value in raw.items():
            if header_value is None or header_value == "":
                continue  # blank means unset, as in exporter-toolkit
            text = self.string(f"{where}.{name}", header_value)
            allowed = _HEADERS[name]
            if allowed is not None and text not in allowed:
                self.fail(f"{where}.{name}", f"got {text!r}; must be one of: {', '.join(allowed)}")
            if "\r" in text or "\n" in text:
                self.fail(f"{where}.{name}", "must be one line")
            headers[name] = text
        return headers

    def users(self, value: Any) -> dict[str, str]:
        where = "basic_auth_users"
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(where, f"must be a mapping of user name to bcrypt hash, got {_kind(value)}")
        users = {}
        for user, hashed in value.items():
            here = f"{where}.{user}"
            if not isinstance(user, str):
                self.fail(here, f"a user name must be text; quote it: '{user}': ...")
            if ":" in user:
                self.fail(here, "a user name cannot contain ':' (HTTP basic auth splits on it); rename the user")
            match = _BCRYPT_HASH.fullmatch(hashed) if isinstance(hashed, str) else None
            if match is None:
                got = "text that is not one" if isinstance(hashed, str) else _kind(hashed)  # never echo a password
                self.fail(here, f"must be a bcrypt hash such as $2y$10$..., got {got}; {_HASH_HOWTO}")
            if not 4 <= int(match.group(1)) <= 31:
                self.fail(here, f"bcrypt cost {match.group(1)} is out of range 04-31; {_HASH_HOWTO}")
            users[user] = hashed
        return users

    def rate_limit(self, value: Any) -> RateLimit | None:
        where = "rate_limit"
        raw = self.mapping(where, value, _RATE_LIMIT_KEYS)
        if raw.get("interval") is None:
            return None
        interval = _duration_seconds(raw["interval"])
        if interval is None:
            self.fail(f"{where}.interval", f"got {_kind(raw['interval'])}; must be a duration such as 1s, "
                      "500ms or 1m (0 turns the limit off)")
        if interval == 0:
            return None
        burst = raw.get("burst")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            self.fail(f"{where}.burst", f"got {_kind(burst)}; must be a whole number >= 1 when interval is set "
                      "(how many requests may come at once)")
        return RateLimit(interval, burst)


def _duration_seconds(value: Any) -> float | None:
    """A Go duration ("1m30s", "500ms", "0") in seconds; None if it is not one."""
    if value == 0 and not isinstance(value, bool):
        return 0.0
    if not isinstance(value, str) or not value:
        return None
    total, at = 0.0, 0
    for part in _DURATION_PART.finditer(value):
        if part.start() != at:
            return None
        total += float(part.group(1)) * _DURATION_UNITS[part.group(2)]
        at = part.end()
    return total if at == len(value) else None


# --- TLS ---------------------------------------------------------------------


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
    """The server's SSLContext for a TLS config; WebConfigError if a file is wrong."""

    def fail(name: str, problem: str) -> NoReturn:
        raise WebConfigError(path, f"tls_server_config.{name}", problem)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSIONS[tls.min_version]
    ctx.maximum_version = TLS_VERSIONS[tls.max_version]
    openssl_suites = [_CIPHER_SUITES[s] for s in tls.cipher_suites if s in _CIPHER_SUITES]
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


class _TLSConnections:
    """Makes TLS connections, rebuilding the SSLContext when a certificate
    file changes; a broken new file keeps the previous context in use."""

    def __init__(self, tls: TLSServerConfig, path: str) -> None:
        self._tls, self._path = tls, path
        self._files = [p for p in (tls.cert_file, tls.key_file, tls.client_ca_file) if p]
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self._context = build_ssl_context(tls, path)
        self._allowed_sans = (
            {_normal_san(s) for s in tls.client_allowed_sans} if tls.client_allowed_sans is not None else None
        )

    def _file_stamp(self) -> tuple:
        stamp = []
        for name in self._files:
            try:
                st = os.stat(name)
                stamp.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                stamp.append(None)
        return tuple(stamp)

    def context(self) -> ssl.SSLContext:
        stamp = self._file_stamp()
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._context = build_ssl_context(self._tls, self._path)
                    log.info("TLS certificate files changed; loaded them")
                except WebConfigError as err:
                    log.warning("TLS certificate files changed but cannot be loaded; still using the previous "
                                "ones: %s", err)
            return self._context

    def accept(self, sock: socket.socket) -> ssl.SSLSocket:
        """Does the handshake (in the caller's thread) and checks client SANs."""
        conn = self.context().wrap_socket(sock, server_side=True)
        if self._allowed_sans is not None:
            sans = (conn.getpeercert() or {}).get("subjectAltName", ())
            if not any(_normal_san(value) in self._allowed_sans for _, value in sans):
                _close_quietly(conn)
                raise PermissionError("the client certificate has none of client_allowed_sans")
        return conn


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


# --- basic auth ----------------------------------------------------------------


def _basic_credentials(header: str | None) -> tuple[bytes, bytes] | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (ValueError, binascii.Error):
        return None
    user, colon, password = raw.partition(b":")
    return (user, password) if colon else None


class BasicAuth:
    """Checks HTTP basic credentials against bcrypt hashes.

    An unknown user is checked against a decoy hash of the highest cost in
    use, so a wrong name takes as long as a wrong password. A successful
    check is remembered for a while, keyed on an HMAC of user and password
    under a per-process random key, so scrapes do not pay bcrypt's cost each
    time; failures are never remembered, so guessing stays slow. One bcrypt
    check runs at a time, so a flood of guesses takes one core, not all.
    """

    def __init__(self, users: Mapping[str, str], cache_seconds: float = AUTH_CACHE_SECONDS,
                 cache_size: int = AUTH_CACHE_SIZE) -> None:
        if not users:
            raise ValueError("BasicAuth needs at least one user")
        self._users = {name: hashed.encode() for name, hashed in users.items()}
        cost = max(int(hashed.split("$")[2]) for hashed in users.values())
        self._decoy = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(cost))
        self._cache_seconds, self._cache_size = cache_seconds, cache_size
        self._cache_key = os.urandom(32)
        self._passed: OrderedDict[bytes, float] = OrderedDict()  # digest -> when it expires
        self._cache_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()

    def check(self, authorization: str | None) -> bool:
        """True if the Authorization header value names a user and its password."""
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return False
        user, password = credentials
        if len(password) > BCRYPT_MAX_PASSWORD_BYTES:
            return False  # bcrypt >= 4.1 raises on these; no stored hash can match one
        digest = hmac.new(self._cache_key, len(user).to_bytes(4, "big") + user + password, hashlib.sha256).digest()
        now = time.monotonic()
        with self._cache_lock:
            expires = self._passed.get(digest)
            if expires is not None:
                if now < expires:
                    return True
                del self._passed[digest]
        try:
            hashed = self._users.get(user.decode("utf-8"))
        except UnicodeDecodeError:
            hashed = None
        with self._bcrypt_lock:
            try:
                matched = bcrypt.checkpw(password, hashed if hashed is not None else self._decoy)
            except ValueError:
                matched = False
        if not (matched and hashed is not None):
            return False
        if self._cache_seconds > 0:
            with self._cache_lock:
                self._passed[digest] = now + self._cache_seconds
                self._passed.move_to_end(digest)
                while len(self._passed) > self._cache_size:
                    self._passed.popitem(last=False)
        return True


class _TokenBucket:
    """exporter-toolkit's rate_limit: on average one request per interval,
    up to burst at once; the rest get 429."""

    def __init__(self, limit: RateLimit) -> None:
        self._per_second = 1.0 / limit.interval_seconds
        self._capacity = float(limit.burst)
        self._tokens = float(limit.burst)
        self._then = time.monotonic()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._then) * self._per_second)
            self._then = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


# --- the WSGI app --------------------------------------------------------------


def landing_page(telemetry_path: str = DEFAULT_TELEMETRY_PATH) -> bytes:
    href = html.escape(telemetry_path, quote=True)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{EXPORTER_NAME}</title>\n"
        "<style>body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em;line-height:1.5}"
        "</style>\n</head>\n<body>\n"
        f"<h1>{EXPORTER_NAME}</h1>\n"
        "<p>Prometheus exporter for SMTP reply codes and enhanced status codes read from mail server logs.</p>\n"
        f'<ul><li><a href="{href}">Metrics</a></li></ul>\n'
        f"<p>Version {html.escape(__version__)}</p>\n"
        "</body>\n</html>\n"
    ).encode()


def make_app(registry: CollectorRegistry, telemetry_path: str = DEFAULT_TELEMETRY_PATH,
             config: WebConfig | None = None) -> Callable:
    """The WSGI app: rate limit, basic auth, then the metrics or landing page."""
    metrics_app = make_wsgi_app(registry)
    page = landing_page(telemetry_path)
    config = config or WebConfig()
    auth = BasicAuth(config.basic_auth_users) if config.basic_auth_users else None
    limiter = _TokenBucket(config.rate_limit) if config.rate_limit else None
    extra_headers = list(config.headers.items())

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")

        def start(status: str, headers: list, exc_info: Any = None) -> Callable:
            return start_response(status, list(headers) + extra_headers, exc_info)

        def reply(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8",
                  *headers: tuple[str, str]) -> list[bytes]:
            start(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers])
            return [] if method == "HEAD" else [body]

        if limiter is not None and not limiter.allow():
            return reply("429 Too Many Requests", b"Too Many Requests\n")
        if auth is not None and not auth.check(environ.get("HTTP_AUTHORIZATION")):
            return reply("401 Unauthorized", b"Unauthorized\n", "text/plain; charset=utf-8",
                         ("WWW-Authenticate", f'Basic realm="{EXPORTER_NAME}", charset="UTF-8"'))
        path = environ.get("PATH_INFO") or "/"
        if path == telemetry_path:
            return metrics_app(environ, start)
        if path == "/":
            if method not in ("GET", "HEAD"):
                return reply("405 Method Not Allowed", b"Method Not Allowed\n", "text/plain; charset=utf-8",
                             ("Allow", "GET, HEAD"))
            return reply("200 OK", page, "text/html; charset=utf-8")
        return reply("404 Not Found", b"Not Found\n")

    return app


# --- the HTTP servers ----------------------------------------------------------


class _Handler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT  # applied to the connection by StreamRequestHandler.setup

    def setup(self) -> None:
        tls: _TLSConnections | None = self.server.tls
        if tls is not None:
            # The handshake runs here, in this connection's own thread and
            # with a deadline: a slow client cannot stall the accept loop.
            self.request.settimeout(HANDSHAKE_TIMEOUT)
            self.request = tls.accept(self.request)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.server.tls is not None:
                # The server closes only the plain socket it accepted, which
                # the TLS socket has taken over.
                _close_quietly(self.request)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        log.debug("%s %s", self.address_string(), format % args)


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, family: socket.AddressFamily, address: tuple[str, int], tls: _TLSConnections | None) -> None:
        self.address_family = family
        self.tls = tls
        super().__init__(address, _Handler, bind_and_activate=False)
        try:
            if family == socket.AF_INET6 and address[0] == "::":
                # ":port" means every interface, IPv4 ones included.
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise

    def server_bind(self) -> None:
        # Not HTTPServer.server_bind: it looks up the host's FQDN, which can
        # wait for the resolver's timeout on a host without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = self.server_address[1]
        self.setup_environ()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed handshakes and dropped connections are routine (scanners,
        # clients without a certificate): not worth more than a debug line.
        log.debug("connection from %s failed", client_address[0] if client_address else "?", exc_info=True)


def parse_listen_address(address: str) -> tuple[str, int]:
    """ "host:port", ":port" or "[ipv6]:port" -> (host, port); host "" is every interface."""
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"listen address {address!r}: expected host:port, :port or [ipv6]:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host or "[" in host or "]" in host:
        raise ValueError(f"listen address {address!r}: write an IPv6 address in brackets, e.g. [::1]:{port}")
    return host, int(port)


def _bind(host: str, port: int, tls: _TLSConnections | None) -> _ThreadingWSGIServer:
    if host == "":
        if socket.has_ipv6:
            try:
                return _ThreadingWSGIServer(socket.AF_INET6, ("::", port), tls)
            except OSError as err:
                if err.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):  # no IPv6 here
                    raise
        return _ThreadingWSGIServer(socket.AF_INET, ("0.0.0.0", port), tls)
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICSERV
    )[0]
    return _ThreadingWSGIServer(family, sockaddr[:2], tls)


class WebServer:
    """Serves the registry on every listen address, each in its own thread.

    stop() ends them all. Give port 0 to have the system pick a port; the
    ports bound are in .ports, in the order of the addresses.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        listen_addresses: Iterable[str] | str = (f":{DEFAULT_PORT}",),
        telemetry_path: str = DEFAULT_TELEMETRY_PATH,
        config: WebConfig | None = None,
    ) -> None:
        addresses = [listen_addresses] if isinstance(listen_addresses, str) else list(listen_addresses)
        if not addresses:
            raise ValueError("no listen address given")
        if not telemetry_path.startswith("/"):
            raise ValueError(f"telemetry path {telemetry_path!r} must start with /")
        self.telemetry_path = telemetry_path
        self.tls = config is not None and config.tls is not None
        app = make_app(registry, telemetry_path, config)
        connections = _TLSConnections(config.tls, config.path or "(web config)") if self.tls else None
        self._servers: list[_ThreadingWSGIServer] = []
        try:
            for address in addresses:
                server = _bind(*parse_listen_address(address), connections)
                server.set_app(app)
                self._servers.append(server)
        except BaseException:
            for server in self._servers:
                server.server_close()
            raise
        self._threads = [
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                             name=f"web {address}", daemon=True)
            for server, address in zip(self._servers, addresses, strict=True)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def ports(self) -> list[int]:
        return [server.server_address[1] for server in self._servers]

    @property
    def addresses(self) -> list[str]:
        """The bound addresses as host:port ([host]:port for IPv6)."""
        out = []
        for server in self._servers:
            host, port = server.server_address[:2]
            out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return out

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def stop(self) -> None:
        """Stops accepting and closes the listening sockets; requests under way finish on their own."""
        for server in self._servers:
            server.shutdown()
        for server in self._servers:
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    registry: CollectorRegistry,
    listen_addresses: Iterable[str] | str = (f":{DEFAULT_PORT}",),
    telemetry_path: str = DEFAULT_TELEMETRY_PATH,
    config: WebConfig | None = None,
) -> WebServer:
    """Starts serving and returns the running WebServer (call .stop() to end it)."""
    return WebServer(registry, listen_addresses, telemetry_path, config)

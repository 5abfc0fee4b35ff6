"""The exporter-toolkit web configuration file, read and checked.

http2 is accepted and ignored: this server speaks HTTP/1.1. Certificates and
keys are loaded while the file is read, so that a mistake stops the exporter
at start-up (and fails --config.check) rather than failing every scrape. The
running server reads the file again when it changes (exporter/web/site.py).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from exporter.configcheck import Checker, Problems, child, describe, load_yaml
from exporter.web.ratelimit import RateLimit
from exporter.web.contents import file_contents
from exporter.web.tls import (
    ALWAYS_HAS_CLIENT_CERT,
    CIPHER_SUITES,
    CLIENT_AUTH_ALIASES,
    CLIENT_AUTH_TYPES,
    CURVES,
    NEEDS_CLIENT_CA,
    TLS13_CIPHER_SUITES,
    TLS_VERSIONS,
    TLSServerConfig,
    build_ssl_context,
)

log = logging.getLogger(__name__)

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


@dataclass
class WebConfig:
    path: str | None = None
    tls: TLSServerConfig | None = None
    basic_auth_users: dict[str, str] = field(default_factory=dict, repr=False)  # user -> bcrypt hash
    headers: dict[str, str] = field(default_factory=dict)
    http2: bool = True
    rate_limit: RateLimit | None = None
    contents: bytes | None = field(default=None, repr=False, compare=False)  # the file's, read before parsing


def load_web_config(path: str) -> WebConfig:
    """Reads and checks an exporter-toolkit web config file; ConfigError
    names every problem found, each section checked apart."""
    problems = Problems()
    contents = file_contents(path)
    data = load_yaml(path, "--web.config.file or web.config_file", problems)
    config = _WebReader(path).web_config(data, problems)
    problems.raise_any()
    config.contents = contents
    return config


class _WebReader(Checker):
    """Turns the parsed YAML into a WebConfig, naming the key of any mistake."""

    def web_config(self, data: Any, problems: Problems) -> WebConfig:
        """The WebConfig; the problems of each section are added to problems."""
        top = self.mapping("", data, None)
        config = WebConfig(path=self.file)
        with problems.gather():
            self.known_keys("", top, _TOP_KEYS)
        with problems.gather():
            config.tls = self.tls(top.get("tls_server_config"))
        with problems.gather():
            http = self.mapping("http_server_config", top.get("http_server_config"), _HTTP_KEYS)
            config.headers = self.headers(http.get("headers"))
            if http.get("http2") is not None:
                config.http2 = self.boolean("http_server_config.http2", http["http2"])
        with problems.gather():
            config.basic_auth_users = self.users(top.get("basic_auth_users"))
        with problems.gather():
            config.rate_limit = self.rate_limit(top.get("rate_limit"))
        return config

    def tls(self, value: Any) -> TLSServerConfig | None:
        where = "tls_server_config"
        raw = self.mapping(where, value, _TLS_KEYS)
        given = {name: v for name, v in raw.items() if v is not None}
        if not given:
            return None

        def key(name: str) -> str:
            return child(where, name)

        tls = TLSServerConfig()
        unreadable = Problems()  # every file named at once: they are often all wrong together
        for name in ("cert_file", "key_file", "client_ca_file"):
            if name in given:
                with unreadable.gather():
                    setattr(tls, name, self.readable_file(key(name), given[name]))
        unreadable.raise_any()
        for name in ("cert", "key", "client_ca"):
            if name in given:
                setattr(tls, name, self.text(key(name), given[name]))
            if name in given and f"{name}_file" in given:
                self.fail(key(name), f"give it once: either {name}_file or {name} (inline PEM), not both")
        if "client_auth_type" in given:
            tls.client_auth_type = self.choice(
                key("client_auth_type"), given["client_auth_type"], CLIENT_AUTH_TYPES, CLIENT_AUTH_ALIASES
            )
        for name in ("min_version", "max_version"):
            if name in given:
                setattr(tls, name, self.choice(key(name), given[name], TLS_VERSIONS))
        if "client_allowed_sans" in given:
            tls.client_allowed_sans = self.texts(key("client_allowed_sans"), given["client_allowed_sans"])
        if "cipher_suites" in given:
            tls.cipher_suites = self.texts(key("cipher_suites"), given["cipher_suites"])
            for i, suite in enumerate(tls.cipher_suites):
                if suite not in CIPHER_SUITES and suite not in TLS13_CIPHER_SUITES:
                    self.fail(f"{key('cipher_suites')}[{i}]",
                              f"unknown cipher suite {suite!r}; use Go's names, one of: {', '.join(CIPHER_SUITES)}")
        if "prefer_server_cipher_suites" in given:
            tls.prefer_server_cipher_suites = self.boolean(key("prefer_server_cipher_suites"),
                                                           given["prefer_server_cipher_suites"])
        if "curve_preferences" in given:
            tls.curve_preferences = self.texts(key("curve_preferences"), given["curve_preferences"])
            for i, curve in enumerate(tls.curve_preferences):
                self.choice(f"{key('curve_preferences')}[{i}]", curve, CURVES)
            log.warning("%s: %s is not applied by this exporter; OpenSSL's default curves are used",
                        self.file, key("curve_preferences"))

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
        if auth in NEEDS_CLIENT_CA and not has_client_ca:
            why = (" (this exporter verifies every client certificate it asks for)"
                   if auth == "RequireAnyClientCert" else "")
            self.fail(key("client_ca_file"), f"is needed with client_auth_type {auth}: the CA certificate(s) "
                      f"that signed the clients' certificates{why}")
        if has_client_ca and auth == "NoClientCert":
            self.fail(key("client_auth_type"), "is NoClientCert, so the client CA would never be used; set it to "
                      "RequireAndVerifyClientCert to check client certificates, or remove client_ca_file")
        if tls.client_allowed_sans is not None and auth not in ALWAYS_HAS_CLIENT_CERT:
            self.fail(key("client_allowed_sans"), f"needs client_auth_type RequireAndVerifyClientCert: with {auth} "
                      "a client may send no certificate, leaving no SAN to match")
        if TLS_VERSIONS[tls.min_version] > TLS_VERSIONS[tls.max_version]:
            self.fail(key("min_version"), f"{tls.min_version} is above max_version {tls.max_version}; "
                      "lower min_version or raise max_version")
        build_ssl_context(tls, self.file)
        return tls

    def headers(self, value: Any) -> dict[str, str]:
        where = "http_server_config.headers"
        raw = self.mapping(where, value, _HEADERS)
        headers = {}
        for name, header_value in raw.items():
            if header_value is None or header_value == "":
                continue  # blank means unset, as in exporter-toolkit
            here = child(where, name)
            text = self.text(here, header_value)
            allowed = _HEADERS[name]
            if allowed is not None and text not in allowed:
                self.fail(here, f"got {text!r}; must be one of: {', '.join(allowed)}")
            if "\r" in text or "\n" in text:
                self.fail(here, "must be one line")
            headers[name] = text
        return headers

    def users(self, value: Any) -> dict[str, str]:
        where = "basic_auth_users"
        raw = self.mapping(where, value, None, "user name to bcrypt hash")
        users = {}
        for user, hashed in raw.items():
            here = child(where, user)
            if not isinstance(user, str):
                self.fail(here, f"a user name must be text; quote it: '{user}': ...")
            if ":" in user:
                self.fail(here, "a user name cannot contain ':' (HTTP basic auth splits on it); rename the user")
            match = _BCRYPT_HASH.fullmatch(hashed) if isinstance(hashed, str) else None
            if match is None:
                got = "text that is not one" if isinstance(hashed, str) else describe(hashed)  # never echo a password
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
            self.fail(f"{where}.interval", f"got {describe(raw['interval'])}; must be a duration such as 1s, "
                      "500ms or 1m (0 turns the limit off)")
        if interval == 0:
            return None
        burst = raw.get("burst")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            self.fail(f"{where}.burst", f"got {describe(burst)}; must be a whole number >= 1 when interval is set "
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

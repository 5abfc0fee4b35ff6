"""The web config file (exporter/web/config.py): what it accepts, and errors
that name the file, the key and the fix."""

from __future__ import annotations

import shutil

import pytest
from helpers import REPO
from webtest import OPENSSL_CNF, make_leaf, write_config

from exporter.configcheck import ConfigError
from exporter.web.config import load_web_config
from exporter.web.ratelimit import RateLimit

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
    (("tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n  client_ca_file: {ca}\n"
      "  client_auth_type: VerifyClientCertIfGiven\n  client_allowed_sans: [a]\n"),
     "tls_server_config.client_allowed_sans", "needs client_auth_type RequireAndVerifyClientCert"),
    (("tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n  client_ca_file: {key}\n"
      "  client_auth_type: RequireAndVerifyClientCert\n"), "tls_server_config.client_ca_file", "must be PEM"),
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
    with pytest.raises(ConfigError) as caught:
        load_web_config(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert fix in message, message
    assert caught.value.file == str(path) and caught.value.key == key


def test_every_section_is_checked_and_named(tmp_path):
    path = write_config(tmp_path, "tls_server_confg: {}\nhttp_server_config:\n  http2: 'no'\n"
                        "basic_auth_users:\n  alice: hunter2\n  alice: hunter3\nrate_limit:\n  interval: 1s\n")
    with pytest.raises(ConfigError) as caught:
        load_web_config(str(path))
    assert [(e.key, e.problem.split(";")[0]) for e in caught.value.every] == [
        ("basic_auth_users.alice", "is given twice (lines 5 and 6)"),
        ("tls_server_confg", "unknown key (did you mean 'tls_server_config'?)"),
        ("http_server_config.http2", "must be true or false, got the text 'no'"),
        ("basic_auth_users.alice", "must be a bcrypt hash such as $2y$10$..., got text that is not one"),
        ("rate_limit.burst", "got nothing"),
    ]
    assert "hunter" not in str(caught.value)


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "absent.yml"
    with pytest.raises(ConfigError, match=f"^{path}: \\(file\\): cannot read it"):
        load_web_config(str(path))


def test_error_messages_do_not_echo_a_plain_password(tmp_path):
    path = write_config(tmp_path, "basic_auth_users:\n  alice: hunter2\n")
    with pytest.raises(ConfigError) as caught:
        load_web_config(str(path))
    assert "hunter2" not in str(caught.value)


def test_empty_and_blank_sections_mean_plain_http(tmp_path):
    for text in ("", "tls_server_config:\nbasic_auth_users:\n", "tls_server_config: {}\n"):
        config = load_web_config(str(write_config(tmp_path, text)))
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
    config = load_web_config(str(write_config(tmp_path, text)))
    assert config.tls.client_auth_type == "RequireAnyClientCert"
    assert config.tls.client_ca.startswith("-----BEGIN CERTIFICATE-----")
    assert config.tls.min_version == "TLS13"
    assert config.headers == {"Content-Security-Policy": "default-src 'self'"}
    assert config.basic_auth_users == {"alice": HASH}
    assert config.rate_limit == RateLimit(90.0, 5)
    assert HASH not in repr(config)



def test_example_file_is_valid(tmp_path, pki):
    shutil.copy(REPO / "config" / "web-config.example.yml", tmp_path / "web.yml")
    shutil.copy(pki / "server.crt", tmp_path)
    shutil.copy(pki / "server.key", tmp_path)
    config = load_web_config(str(tmp_path / "web.yml"))
    assert config.tls is not None and config.tls.min_version == "TLS12"
    assert list(config.basic_auth_users) == ["prometheus"]
    assert config.headers["X-Frame-Options"] == "deny"

"""Basic auth (exporter/web/auth.py): bcrypt checks, their cache, and the app's 401s."""

from __future__ import annotations

import base64
import threading
import time

import bcrypt
import pytest
from webtest import PASSWORD, basic, fetch, running, write_config

import exporter.web.auth
from exporter.web.auth import BasicAuth
from exporter.web.config import WebConfig, load_web_config


@pytest.fixture
def auth_config(tmp_path) -> WebConfig:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    other = bcrypt.hashpw(b"another one", bcrypt.gensalt(4)).decode()
    path = write_config(tmp_path, f"basic_auth_users:\n  alice: {hashed}\n  bob: '{other}'\n")
    return load_web_config(str(path))


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

    monkeypatch.setattr(exporter.web.auth.bcrypt, "checkpw", checkpw)
    return hashes_checked


def test_unknown_users_cost_one_bcrypt_check_like_known_ones(monkeypatch):
    users = {"alice": bcrypt.hashpw(b"pw", bcrypt.gensalt(5)).decode()}
    auth = BasicAuth(users)
    checked = _counting_checkpw(monkeypatch)
    assert not auth.check(basic("alice", "wrong")["Authorization"])
    assert not auth.check(basic("nobody", "wrong")["Authorization"])
    assert len(checked) == 2
    known, unknown = checked
    assert known == users["alice"].encode()
    assert unknown != known and unknown[:7] == b"$2b$05$"  # a decoy of the same cost


def test_successful_checks_are_cached_and_failures_are_not(monkeypatch):
    auth = BasicAuth({"alice": bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()})
    checked = _counting_checkpw(monkeypatch)
    for _ in range(3):
        assert auth.check(basic("alice", "pw")["Authorization"])
        assert not auth.check(basic("alice", "pW")["Authorization"])
    assert len(checked) == 1 + 3


def test_cache_entries_expire(monkeypatch):
    auth = BasicAuth({"alice": bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()}, cache_seconds=0.05)
    checked = _counting_checkpw(monkeypatch)
    assert auth.check(basic("alice", "pw")["Authorization"])
    assert auth.check(basic("alice", "pw")["Authorization"])
    time.sleep(0.1)
    assert auth.check(basic("alice", "pw")["Authorization"])
    assert len(checked) == 2


def test_long_password_is_refused_without_calling_bcrypt(monkeypatch):
    auth = BasicAuth({"alice": bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()})
    checked = _counting_checkpw(monkeypatch)
    assert not auth.check(basic("alice", b"p" * 73)["Authorization"])
    assert checked == []


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

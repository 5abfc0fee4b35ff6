"""The WSGI app and the servers (exporter/web/app.py, server.py, address.py)
over plain HTTP on 127.0.0.1."""

from __future__ import annotations

import gzip
import http.client
import logging
import re
import socket
import statistics
import threading
import time

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from helpers import wait_for
from mta.namespace import free_port
from webtest import fetch, request, running, write_config

import exporter.web.handler
from exporter import __version__
from exporter.config import Settings
from exporter.web.address import DEFAULT_PORT, parse_listen_address
from exporter.web.config import load_web_config
from exporter.web.server import Listener


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


@pytest.mark.parametrize(("path", "status"), [("/", 200), ("/metrics", 200), ("/nowhere", 404)])
def test_head_is_get_without_the_body(registry, path, status):
    with running(registry) as server:
        head = fetch(server.ports[0], path, method="HEAD")
        get = fetch(server.ports[0], path)
    assert (head.status, get.status) == (status, status)
    assert head.body == b"" and int(head.headers["Content-Length"]) == len(get.body) > 0
    assert head.headers["Content-Type"] == get.headers["Content-Type"]


def test_other_methods_on_the_landing_page(registry):
    with running(registry) as server:
        post = fetch(server.ports[0], "/", method="POST")
    assert post.status == 405 and post.headers["Allow"] == "GET, HEAD"


def test_an_idle_kept_alive_connection_is_closed_after_the_idle_timeout(registry, monkeypatch):
    monkeypatch.setattr(exporter.web.handler, "IDLE_TIMEOUT", 0.5)
    with running(registry) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.ports[0], timeout=5)
        try:
            assert request(conn, "/metrics").status == 200
            sock = conn.sock
            assert sock is not None
            started = time.monotonic()
            assert sock.recv(1) == b""  # the server's end of file
            assert 0.4 < time.monotonic() - started < 3
        finally:
            conn.close()


class _SlowCollector(Collector):
    """A gauge whose value is read when an exposition starts; making it takes a while."""

    def __init__(self) -> None:
        self.value = 0
        self.collections = 0

    def collect(self):  # noqa: ANN201 - prometheus_client's Collector
        self.collections += 1
        value = self.value
        time.sleep(0.3)
        yield GaugeMetricFamily("slow_value", "A value read at the start of an exposition.", value=value)


def test_kept_alive_scrapes_do_not_wait_for_a_delayed_ack(registry):
    """The headers and the body are two writes. With Nagle's algorithm on, the
    body waits for the client's delayed ACK of the headers: every scrape on a
    kept-alive connection then takes 40 ms or more (Linux's least delayed ACK),
    where a scrape of this registry takes about one."""
    with running(registry) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.ports[0], timeout=5)
        took = []
        for _ in range(11):
            started = time.monotonic()
            assert request(conn, "/metrics").status == 200
            took.append(time.monotonic() - started)
        conn.close()
    assert statistics.median(took[1:]) < 0.030, took  # the first opens the connection


def test_scrapes_that_come_together_share_one_exposition_made_after_they_came():
    registry = CollectorRegistry()
    slow = _SlowCollector()
    registry.register(slow)
    with running(registry) as server:
        bodies: list[bytes] = []

        def scrape() -> None:
            bodies.append(fetch(server.ports[0], "/metrics").body)

        first = threading.Thread(target=scrape)
        first.start()
        assert wait_for(lambda: slow.collections == 1)
        slow.value = 1  # changed while the first exposition is being made
        together = [threading.Thread(target=scrape) for _ in range(10)]
        for thread in together:
            thread.start()
        for thread in [first, *together]:
            thread.join()
    assert slow.collections == 2  # the first scrape's, and one for the ten that came during it
    assert sorted(body.count(b"slow_value 1.0") for body in bodies) == [0] + [1] * 10


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


def test_a_failed_reload_that_cannot_listen_again_where_it_did_drops_that_address_and_says_so(
        registry, monkeypatch, caplog):
    lost_port, kept_port = free_port(), free_port()
    in_use = socket.create_server(("127.0.0.1", 0))  # the new address cannot be listened on
    taken = []
    stop = Listener.stop

    def stop_and_lose_the_port(listener):
        stop(listener)
        if listener.port == lost_port and not taken:  # another program takes it meanwhile
            taken.append(socket.create_server(("127.0.0.1", lost_port)))

    monkeypatch.setattr(Listener, "stop", stop_and_lose_the_port)
    try:
        with running(registry, addresses=(f"127.0.0.1:{lost_port}", f"127.0.0.1:{kept_port}")) as server:
            with pytest.raises(OSError):
                server.reconfigure([f"127.0.0.1:{in_use.getsockname()[1]}"], "/metrics", None)
            assert taken, "the reload did not stop the old listeners to try again"
            assert server.addresses == [f"127.0.0.1:{kept_port}"]
            assert fetch(kept_port, "/metrics").status == 200
    finally:
        for sock in [in_use, *taken]:
            sock.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and f"127.0.0.1:{lost_port}" in errors[0] and str(kept_port) not in errors[0], errors


@pytest.mark.parametrize(("address", "parsed"), [
    ("127.0.0.1:9000", ("127.0.0.1", 9000)),
    (":10925", ("", 10925)),
    ("[::1]:9000", ("::1", 9000)),
    ("localhost:0", ("localhost", 0)),
])
def test_parse_listen_address(address, parsed):
    assert parse_listen_address(address) == parsed


@pytest.mark.parametrize("address", ["localhost", "::1:9000", "host:http", "host:70000", "[::1]"])
def test_parse_listen_address_rejects(address):
    with pytest.raises(ValueError, match=re.escape(f"got {address!r}; ")):
        parse_listen_address(address)


def test_default_port_is_off_the_allocated_ranges():
    assert DEFAULT_PORT == 10925
    assert not 9100 <= DEFAULT_PORT <= 9999
    assert Settings().listen_addresses == [f":{DEFAULT_PORT}"]  # the main config's default listen address


def test_extra_headers_from_the_config(registry, tmp_path):
    path = write_config(tmp_path, "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
                                  "    X-Content-Type-Options: nosniff\n")
    with running(registry, load_web_config(str(path))) as server:
        for target in ("/", "/metrics", "/nowhere"):
            reply = fetch(server.ports[0], target)
            assert reply.headers["X-Frame-Options"] == "deny"
            assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_rate_limit_answers_429_past_the_burst(registry, tmp_path):
    path = write_config(tmp_path, "rate_limit:\n  interval: 1h\n  burst: 2\n")
    with running(registry, load_web_config(str(path))) as server:
        statuses = [fetch(server.ports[0], "/metrics").status for _ in range(3)]
    assert statuses == [200, 200, 429]

"""The WSGI app: rate limit and basic auth in front of the metrics and the landing page.

The metrics come from prometheus_client's WSGI app, which negotiates gzip and
OpenMetrics itself. Scrapes that come together share one exposition
(SharedScrapes). HEAD never reaches the app: the server runs it as GET and
leaves the body out (handler.py).
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app

from exporter import __version__
from exporter.web.address import DEFAULT_TELEMETRY_PATH
from exporter.web.auth import BasicAuth
from exporter.web.config import WebConfig
from exporter.web.ratelimit import TokenBucket

EXPORTER_NAME = "smtp-reply-exporter"


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


class _Batch:
    """Scrapes that will share one exposition."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.made: tuple[str, list[tuple[str, str]], bytes] | None = None
        self.error: BaseException | None = None


class SharedScrapes:
    """The metrics app, made once for scrapes that come together.

    Making the exposition takes milliseconds of the one core Python has, so
    20 scrapers arriving at once would each wait for 20 of them. A scrape
    that arrives while an exposition is being made waits for it to end and
    then shares the next one with every scrape that came meanwhile (and asks
    for the same format and encoding): what a scrape gets is never made
    before it arrived. Scrapes with a query (name[] filters) are made alone.
    """

    def __init__(self, metrics_app: Callable) -> None:
        self._app = metrics_app
        self._making = threading.Lock()  # one exposition at a time
        self._lock = threading.Lock()  # guards _next
        self._next: dict[tuple[str, str], _Batch] = {}  # (Accept, Accept-Encoding) -> the batch still open

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("QUERY_STRING") or environ.get("REQUEST_METHOD") != "GET":
            return self._app(environ, start_response)
        key = (environ.get("HTTP_ACCEPT", ""), environ.get("HTTP_ACCEPT_ENCODING", ""))
        with self._lock:
            batch = self._next.get(key)
            leads = batch is None
            if batch is None:
                batch = self._next[key] = _Batch()
        if leads:
            with self._making:
                with self._lock:
                    del self._next[key]  # scrapes from now on wait for the next exposition
                try:
                    batch.made = answer_of(self._app, environ)
                except BaseException as err:
                    batch.error = err
                    raise
                finally:
                    batch.done.set()
        else:
            batch.done.wait()
        if batch.made is None:
            raise RuntimeError("the shared exposition failed") from batch.error
        status, headers, body = batch.made
        start_response(status, headers)
        return [body]


def answer_of(app: Callable, environ: dict) -> tuple[str, list[tuple[str, str]], bytes]:
    """A WSGI app's answer to a request: status, headers and the whole body."""
    started: list = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        started[:] = [status, headers]

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return started[0], started[1], body


def make_app(registry: CollectorRegistry, telemetry_path: str = DEFAULT_TELEMETRY_PATH,
             config: WebConfig | None = None) -> Callable:
    """The WSGI app: rate limit, basic auth, then the metrics or landing page."""
    metrics_app = SharedScrapes(make_wsgi_app(registry))
    page = landing_page(telemetry_path)
    config = config or WebConfig()
    auth = BasicAuth(config.basic_auth_users) if config.basic_auth_users else None
    limiter = TokenBucket(config.rate_limit) if config.rate_limit else None
    extra_headers = list(config.headers.items())

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")

        def start(status: str, headers: list, exc_info: Any = None) -> Callable:
            return start_response(status, list(headers) + extra_headers, exc_info)

        def reply(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8",
                  *headers: tuple[str, str]) -> list[bytes]:
            start(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers])
            return [body]

        if limiter is not None and not limiter.allow():
            return reply("429 Too Many Requests", b"Too Many Requests\n")
        if auth is not None and not auth.check(environ.get("HTTP_AUTHORIZATION")):
            return reply("401 Unauthorized", b"Unauthorized\n", "text/plain; charset=utf-8",
                         ("WWW-Authenticate", f'Basic realm="{EXPORTER_NAME}", charset="UTF-8"'))
        path = environ.get("PATH_INFO") or "/"
        if path == telemetry_path:
            return metrics_app(environ, start)
        if path == "/":
            if method != "GET":
                return reply("405 Method Not Allowed", b"Method Not Allowed\n", "text/plain; charset=utf-8",
                             ("Allow", "GET, HEAD"))
            return reply("200 OK", page, "text/html; charset=utf-8")
        return reply("404 Not Found", b"Not Found\n")

    return app

"""One connection: HTTP/1.1 with keep-alive, each request answered by the WSGI app.

Keep-alive spares a TLS scrape a handshake each time. HEAD is answered as
GET without the body on every path. No Server header is sent (nor does Go's
server send one). The app's response is read whole before it is sent, so it
always goes out with a Content-Length: the metrics are made whole anyway.
"""

from __future__ import annotations

import io
import logging
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from exporter.web.app import answer_of

if TYPE_CHECKING:
    from exporter.web.connections import Slot
    from exporter.web.server import Listener

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0  # seconds a client gets to finish the TLS handshake
REQUEST_TIMEOUT = 30.0  # seconds a connection may stall while it sends a request or reads the response
# Seconds a kept-alive connection may wait for its next request: longer than
# the usual scrape intervals (15 s to 1 min), so each scrape finds it open.
IDLE_TIMEOUT = 120.0
MAX_REQUEST_BODY = 65536  # bytes of request body read (and ignored); past it the connection closes
_NOT_PASSED_ON = ("content-length", "connection", "transfer-encoding", "keep-alive")


class ConnectionHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The headers and the body go out in two writes: with Nagle's algorithm
    # the body waits for the client's delayed ACK of the headers, 40 ms and
    # more on every kept-alive scrape. Go's servers set TCP_NODELAY too.
    disable_nagle_algorithm = True
    timeout = REQUEST_TIMEOUT  # applied to the connection by StreamRequestHandler.setup
    server: Listener

    def __init__(self, request: Any, client_address: Any, server: Listener, slot: Slot) -> None:
        self.slot = slot
        self.answered = 0
        self.url_scheme = "http"
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        tls = self.server.site.current().tls
        if tls is not None:
            # The handshake runs here, in this connection's own thread and
            # with a deadline: a slow client cannot stall the accept loop.
            self.request.settimeout(HANDSHAKE_TIMEOUT)
            self.request = tls.accept(self.request)
            self.server.connections.wrapped(self.slot, self.request)
            self.url_scheme = "https"
        super().setup()

    def handle_one_request(self) -> None:
        self.connection.settimeout(IDLE_TIMEOUT if self.answered else REQUEST_TIMEOUT)
        self.server.connections.idle(self.slot)
        super().handle_one_request()

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        self.server.connections.busy(self.slot)
        self.connection.settimeout(REQUEST_TIMEOUT)
        if self.request_version != "HTTP/1.1":
            self.close_connection = True  # an HTTP/1.0 client expects the end of the response at the close
        return True

    def answer(self) -> None:
        """Any method: the app decides (HEAD is run as GET, its body left out)."""
        self.answered += 1
        head = self.command == "HEAD"
        body_in = self._request_body()
        if body_in is None:
            return
        status, headers, body = self._run_app("GET" if head else self.command, body_in)
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        for name, value in headers:
            if name.lower() not in _NOT_PASSED_ON:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = answer

    def send_response(self, code: int, message: str | None = None) -> None:
        # BaseHTTPRequestHandler's, without the Server header.
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def log_message(self, format: str, *args: Any) -> None:  # the base class names it format
        log.debug("%s %s", self.address_string(), format % args)

    def _request_body(self) -> bytes | None:
        """The request body, read so that the next request starts where it ends.
        None if the request was answered with an error."""
        if "Transfer-Encoding" in self.headers:
            self.close_connection = True  # not read: the connection ends after this answer
            return b""
        length = self.headers.get("Content-Length", "0").strip()
        if not length.isdigit():
            self.send_error(400, "Bad Content-Length")
            return None
        if int(length) > MAX_REQUEST_BODY:
            self.close_connection = True
            return b""
        return self.rfile.read(int(length))

    def _run_app(self, method: str, body_in: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
        try:
            return answer_of(self.server.site.current().app, self._environ(method, body_in))
        except Exception:
            log.exception("error answering %s %s", self.command, self.path)
            self.close_connection = True
            return ("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")],
                    b"Internal Server Error\n")

    def _environ(self, method: str, body_in: bytes) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": urllib.parse.unquote(path, "iso-8859-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": self.server.host,
            "SERVER_PORT": str(self.server.port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body_in)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": self.url_scheme,
            "wsgi.input": io.BytesIO(body_in),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name in set(self.headers.keys()):
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = ",".join(self.headers.get_all(name, []))
        return environ

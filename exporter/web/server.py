"""The HTTP(S) servers: one thread per listen address, one per connection.

Hand-written on wsgiref for what the standard servers do not do: the TLS
handshake runs in the connection's own thread with a deadline (a slow client
cannot stall the accept loop), certificate files are re-read when they change,
and one exporter listens on several addresses.
"""

from __future__ import annotations

import errno
import logging
import socket
import socketserver
import sys
import threading
from collections.abc import Iterable
from typing import Any, final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry

from exporter.web.address import (
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_TELEMETRY_PATH,
    parse_listen_address,
    parse_telemetry_path,
)
from exporter.web.app import make_app
from exporter.web.config import WebConfig
from exporter.web.tls import TLSConnections, close_quietly

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0  # seconds a client gets to finish the TLS handshake
REQUEST_TIMEOUT = 30.0  # seconds a connection may stall while sending its request


class _Handler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT  # applied to the connection by StreamRequestHandler.setup
    server: _ThreadingWSGIServer

    def setup(self) -> None:
        tls = self.server.tls
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
                close_quietly(self.request)

    def log_message(self, format: str, *args: Any) -> None:  # the base class names it format
        log.debug("%s %s", self.address_string(), format % args)


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, family: socket.AddressFamily, address: tuple[str, int], tls: TLSConnections | None) -> None:
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
        # socketserver calls this in its except block, so exc_info is the failure.
        log.debug("connection from %s failed", client_address[0] if client_address else "?", exc_info=sys.exc_info())


def _bind(host: str, port: int, tls: TLSConnections | None) -> _ThreadingWSGIServer:
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
    return _ThreadingWSGIServer(family, (str(sockaddr[0]), int(sockaddr[1])), tls)


@final
class WebServer:
    """Serves the registry on every listen address, each in its own thread.

    stop() ends them all. Give port 0 to have the system pick a port; the
    ports bound are in .ports, in the order of the addresses.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        listen_addresses: Iterable[str] | str = (DEFAULT_LISTEN_ADDRESS,),
        telemetry_path: str = DEFAULT_TELEMETRY_PATH,
        config: WebConfig | None = None,
    ) -> None:
        addresses = [listen_addresses] if isinstance(listen_addresses, str) else list(listen_addresses)
        if not addresses:
            raise ValueError("no listen address given")
        self.telemetry_path = parse_telemetry_path(telemetry_path)
        tls = config.tls if config is not None else None
        self.tls = tls is not None
        app = make_app(registry, telemetry_path, config)
        connections = TLSConnections(tls, (config and config.path) or "(web config)") if tls is not None else None
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
        return [int(server.server_address[1]) for server in self._servers]

    @property
    def addresses(self) -> list[str]:
        """The bound addresses as host:port ([host]:port for IPv6)."""
        out = []
        for server in self._servers:
            host, port = str(server.server_address[0]), int(server.server_address[1])
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
    listen_addresses: Iterable[str] | str = (DEFAULT_LISTEN_ADDRESS,),
    telemetry_path: str = DEFAULT_TELEMETRY_PATH,
    config: WebConfig | None = None,
) -> WebServer:
    """Starts serving and returns the running WebServer (call .stop() to end it)."""
    return WebServer(registry, listen_addresses, telemetry_path, config)

"""The HTTP(S) servers: one listener thread per listen address, one thread per connection.

Hand-written on socketserver and http.server for what the standard servers
do not do: HTTP/1.1 keep-alive with a cap on the connection threads
(connections.py), the TLS handshake in the connection's own thread with a
deadline (a slow client cannot stall the accept loop), certificate and web
config files re-read when they change (site.py), several listen addresses,
sockets passed by systemd, and listen addresses and metrics path changed
while running (reconfigure, on SIGHUP).
"""

from __future__ import annotations

import errno
import logging
import socket
import socketserver
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import Any, final

from prometheus_client import CollectorRegistry

from exporter.web.address import (
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_TELEMETRY_PATH,
    parse_listen_address,
    parse_telemetry_path,
)
from exporter.web.config import WebConfig
from exporter.web.connections import Connections, Slot
from exporter.web.handler import ConnectionHandler
from exporter.web.site import LiveSite
from exporter.web.tls import close_quietly

log = logging.getLogger(__name__)

SOMAXCONN_FILE = "/proc/sys/net/core/somaxconn"


def listen_backlog() -> int:
    """The longest listen queue the kernel allows (net.core.somaxconn), as Go
    asks for. socketserver's 5 makes the kernel drop the SYNs of a sixth
    scraper connecting at once, which then waits a second to try again."""
    try:
        with open(SOMAXCONN_FILE, encoding="ascii") as f:
            return int(f.read())
    except (OSError, ValueError):
        return socket.SOMAXCONN


def listening_socket(address: str) -> socket.socket:
    """A socket listening on a listen address ("" host: every interface, IPv4 ones too)."""
    host, port = parse_listen_address(address)
    if host == "":
        if socket.has_ipv6:
            try:
                return socket.create_server(("::", port), family=socket.AF_INET6, backlog=listen_backlog(),
                                            dualstack_ipv6=True)
            except OSError as err:
                if err.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):  # no IPv6 here
                    raise
        return socket.create_server(("0.0.0.0", port), backlog=listen_backlog())
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICSERV
    )[0]
    return socket.create_server((str(sockaddr[0]), int(sockaddr[1])), family=family, backlog=listen_backlog())


class Listener(socketserver.BaseServer):
    """Accepts on one listening socket; each connection gets a thread and a ConnectionHandler."""

    def __init__(self, sock: socket.socket, site: LiveSite, connections: Connections) -> None:
        # The handlers are made by _serve, each with its connection's slot.
        super().__init__(sock.getsockname(), ConnectionHandler)  # type: ignore[arg-type]
        self.socket = sock
        self.host, self.port = str(sock.getsockname()[0]), int(sock.getsockname()[1])
        self.site = site
        self.connections = connections
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"web {self.address}", daemon=True)

    @property
    def address(self) -> str:
        """host:port ([host]:port for IPv6)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stops accepting; idle connections close now, busy ones after their response."""
        if self._thread.is_alive():
            self.shutdown()
        self.socket.close()
        self.connections.stop_reading(self)
        self._thread.join(timeout=5)

    # -- socketserver's hooks -------------------------------------------------------
    def fileno(self) -> int:
        return self.socket.fileno()

    def get_request(self) -> tuple[socket.socket, Any]:
        return self.socket.accept()

    def process_request(self, request: Any, client_address: Any) -> None:
        slot = self.connections.admit(request, self)
        if slot is None:
            log.warning("refused a connection from %s: every connection is busy", client_address[0])
            close_quietly(request)
            return
        threading.Thread(target=self._serve, args=(request, client_address, slot), daemon=True,
                         name=f"web {client_address[0]}").start()

    def _serve(self, request: socket.socket, client_address: Any, slot: Slot) -> None:
        try:
            ConnectionHandler(request, client_address, self, slot)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            close_quietly(self.connections.release(slot))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed handshakes and dropped connections are routine (scanners,
        # clients without a certificate): not worth more than a debug line.
        # This runs in an except block, so exc_info is the failure.
        log.debug("connection from %s failed", client_address[0] if client_address else "?", exc_info=sys.exc_info())


@final
class WebServer:
    """Serves the registry on every listen address (or on the sockets given,
    such as systemd's), each in its own thread.

    stop() ends them all. Give port 0 to have the system pick a port; the
    ports bound are in .ports, in the order of the addresses.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        listen_addresses: Iterable[str] | str = (DEFAULT_LISTEN_ADDRESS,),
        telemetry_path: str = DEFAULT_TELEMETRY_PATH,
        config: WebConfig | None = None,
        sockets: Sequence[socket.socket] | None = None,
    ) -> None:
        addresses = [listen_addresses] if isinstance(listen_addresses, str) else list(listen_addresses)
        if not addresses and not sockets:
            raise ValueError("no listen address given")
        self.site = LiveSite(registry, parse_telemetry_path(telemetry_path), config)
        self.connections = Connections()
        self._systemd = sockets is not None
        self._given_addresses = addresses
        self._listeners: list[tuple[str, Listener]] = (
            [(f"fd {sock.fileno()}", Listener(sock, self.site, self.connections)) for sock in sockets]
            if sockets is not None else self._listen(addresses)
        )
        for _, listener in self._listeners:
            listener.start()

    def _listen(self, addresses: Iterable[str]) -> list[tuple[str, Listener]]:
        """Listeners bound to these addresses, not yet started; all or none."""
        listeners: list[tuple[str, Listener]] = []
        try:
            for address in addresses:
                listeners.append((address, Listener(listening_socket(address), self.site, self.connections)))
        except BaseException:
            for _, listener in listeners:
                listener.socket.close()
            raise
        return listeners

    def reconfigure(self, listen_addresses: Iterable[str], telemetry_path: str, config: WebConfig | None) -> None:
        """Listens on these addresses (keeping the sockets of those already
        listened on) and serves this path and web config. OSError if an
        address cannot be listened on: then nothing has changed, but for an
        old address given up to try again and taken meanwhile (logged)."""
        wanted = list(listen_addresses)
        if self._systemd:
            if wanted != self._given_addresses:
                log.warning("listen addresses not changed: the sockets come from systemd (--web.systemd-socket); "
                            "change ListenStream= in the .socket unit and restart the socket and the service")
        else:
            self._relisten(wanted)
        self.site.reconfigure(parse_telemetry_path(telemetry_path), config)

    def _relisten(self, wanted: list[str]) -> None:
        gone = list(self._listeners)  # what is left once each wanted address has taken its listener
        kept: dict[int, Listener] = {}  # index in wanted -> the listener it keeps
        for i, address in enumerate(wanted):
            same = next((pair for pair in gone if pair[0] == address and parse_listen_address(address)[1]), None)
            if same is not None:  # (port 0 asks for a new port each time)
                gone.remove(same)
                kept[i] = same[1]
        missing = [address for i, address in enumerate(wanted) if i not in kept]
        try:
            added = self._listen(missing)
        except OSError:
            if not gone:
                raise
            # A new address may need a port an old one holds (":10925" to
            # "127.0.0.1:10925"): free it and try once more, or go back.
            self._stop(gone)
            try:
                added = self._listen(missing)
            except OSError:
                self._listen_again(gone)
                raise
        self._stop(gone)
        new = iter(added)
        self._listeners = [(address, kept[i]) if i in kept else next(new) for i, address in enumerate(wanted)]
        for _, listener in added:
            listener.start()
        if added or gone:
            log.info("listening on %s%s", ", ".join(self.addresses),
                     f" (no longer on {', '.join(address for address, _ in gone)})" if gone else "")

    def _listen_again(self, stopped: list[tuple[str, Listener]]) -> None:
        """After a reconfigure that failed: listen again where the stopped
        listeners did. An address that cannot be listened on again (another
        program took its port meanwhile) is dropped, and said to be lost."""
        listeners: list[tuple[str, Listener]] = []
        lost: list[str] = []
        for pair in self._listeners:
            if pair not in stopped:
                listeners.append(pair)
                continue
            try:
                [again] = self._listen([pair[0]])
            except OSError as err:
                lost.append(f"{pair[0]} ({err.strerror or err})")
                continue
            again[1].start()
            listeners.append(again)
        self._listeners = listeners
        if lost:
            log.error("the new listen addresses failed, and so did listening again on %s: no longer listening "
                      "there%s", ", ".join(lost), "" if listeners else "; nothing is listening now")

    def _stop(self, listeners: Iterable[tuple[str, Listener]]) -> None:
        for _, listener in listeners:
            listener.stop()

    @property
    def ports(self) -> list[int]:
        return [listener.port for _, listener in self._listeners]

    @property
    def addresses(self) -> list[str]:
        """The bound addresses as host:port ([host]:port for IPv6)."""
        return [listener.address for _, listener in self._listeners]

    @property
    def scheme(self) -> str:
        return "https" if self.site.current().tls is not None else "http"

    def stop(self) -> None:
        """Stops accepting and closes the listening sockets; idle connections
        close now, requests under way finish on their own."""
        self._stop(self._listeners)
        self._listeners = []

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    registry: CollectorRegistry,
    listen_addresses: Iterable[str] | str = (DEFAULT_LISTEN_ADDRESS,),
    telemetry_path: str = DEFAULT_TELEMETRY_PATH,
    config: WebConfig | None = None,
    sockets: Sequence[socket.socket] | None = None,
) -> WebServer:
    """Starts serving and returns the running WebServer (call .stop() to end it)."""
    return WebServer(registry, listen_addresses, telemetry_path, config, sockets)

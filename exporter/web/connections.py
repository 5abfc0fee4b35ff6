"""The open connections of every listener, capped.

Each connection has its own thread, and with keep-alive a connection stays
open between scrapes. So that a flood of idle connections cannot use up
threads and file descriptors, at most MAX_CONNECTIONS are open. A new one
past the cap closes the connection that has waited longest for a request
(idle keep-alive connections, and connections that have sent nothing yet);
if every connection is busy answering a request, the new one waits for one
to finish, which is soon.
"""

from __future__ import annotations

import socket
import threading
import time

MAX_CONNECTIONS = 128
ADMIT_WAIT = 5.0  # seconds a connection past the cap waits for a busy one to finish before it is refused


class Slot:
    """One admitted connection: its socket (the TLS one once wrapped), the
    listener that accepted it, and since when it waits for a request (None
    while it answers one)."""

    def __init__(self, sock: socket.socket, listener: object) -> None:
        self.sock = sock
        self.listener = listener
        self.idle_since: float | None = time.monotonic()


def stop_reading(sock: socket.socket) -> None:
    """Ends the connection's reads: a thread blocked waiting for a request (or
    in the TLS handshake) reads end of file and closes the connection, while a
    response being written still goes out. The socket's own shutdown, not
    SSLSocket's, which would drop the TLS state under the thread using it."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RD)
    except OSError:
        pass


class Connections:
    def __init__(self, cap: int = MAX_CONNECTIONS) -> None:
        self._cap = cap
        self._open: list[Slot] = []
        self._changed = threading.Condition()

    def admit(self, sock: socket.socket, listener: object) -> Slot | None:
        """A slot for a new connection; None if all stayed busy for ADMIT_WAIT seconds."""
        deadline = time.monotonic() + ADMIT_WAIT
        with self._changed:
            while len(self._open) >= self._cap:
                idle = [slot for slot in self._open if slot.idle_since is not None]
                if idle:
                    oldest = min(idle, key=lambda slot: slot.idle_since or 0.0)
                    self._open.remove(oldest)
                    stop_reading(oldest.sock)
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)
            slot = Slot(sock, listener)
            self._open.append(slot)
            return slot

    def wrapped(self, slot: Slot, sock: socket.socket) -> None:
        """The connection now speaks TLS over sock."""
        with self._changed:
            slot.sock = sock

    def busy(self, slot: Slot) -> None:
        with self._changed:
            slot.idle_since = None

    def idle(self, slot: Slot) -> None:
        with self._changed:
            slot.idle_since = time.monotonic()
            self._changed.notify()

    def release(self, slot: Slot) -> socket.socket:
        """Forgets a connection about to be closed; returns its socket to close.
        (After this no eviction can touch the socket, so its descriptor
        cannot be reused under one.)"""
        with self._changed:
            if slot in self._open:
                self._open.remove(slot)
                self._changed.notify()
            return slot.sock

    def stop_reading(self, listener: object) -> None:
        """Ends the reads of every connection the listener accepted: idle ones
        close now, busy ones after their response."""
        with self._changed:
            for slot in self._open:
                if slot.listener is listener:
                    stop_reading(slot.sock)

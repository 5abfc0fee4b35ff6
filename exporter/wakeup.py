"""What wakes the daemon's loop, and the requests signals make of it.

Nothing here takes a lock. A Python signal handler runs in the main thread
between two bytecodes, possibly while that thread holds a lock inside
threading.Event.wait() or clear(); a handler that calls Event.set() then
waits for that lock forever, and the exporter ignores SIGTERM until systemd
kills it, its state unsaved. So the handlers only set plain flags and write a
byte to a pipe, which the loop waits on.
"""

from __future__ import annotations

import os
import select
import signal
from types import FrameType


class Waker:
    """A self-pipe: wake() from any thread or signal handler, wait() in the loop."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # poll, not select: the pipe may get a descriptor above select's 1,024.
        self._poll = select.poll()
        self._poll.register(self._read, select.POLLIN)

    def wake(self) -> None:
        try:
            os.write(self._write, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: a wake-up is pending anyway

    def wait(self, timeout: float) -> None:
        """Until a wake-up or timeout seconds; the wake-ups so far are used up."""
        self._poll.poll(timeout * 1000)
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


class Flag:
    """A request (stop, reload) that a signal handler may make: a plain
    attribute, which the loop reads and clears."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set


def handle_signals(waker: Waker) -> tuple[Flag, Flag]:
    """SIGTERM and SIGINT request a stop, SIGHUP a reload; each wakes the
    loop. Returns the (stop, reload) flags."""
    stop, reload = Flag(), Flag()

    def on_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        waker.wake()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        reload.set()
        waker.wake()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    return stop, reload

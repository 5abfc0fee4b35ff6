"""The exporter daemon as a process of its own, for the tests that start it:
on 127.0.0.1, scraped over HTTP(S), stopped by PID."""

from __future__ import annotations

import http.client
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any
from pathlib import Path

from webtest import Response, request

from helpers import REPO, replies_by
from mta.namespace import free_port


class Exporter:
    """One exporter process on 127.0.0.1, stopped by PID at the end.

    Without a port it gets --web.listen-address 127.0.0.1:<a free port>;
    with one, the arguments say where it listens (a config file, a socket
    passed to it). context: scrape over HTTPS. command: the exporter to run,
    this checkout's by default or an installed one. wrapper: a command that
    runs the exporter's (to set up what it inherits). preexec_fn: run in the
    child before the exporter starts (to drop capabilities)."""

    def __init__(self, tmp: Path, *args: str, port: int | None = None, context: ssl.SSLContext | None = None,
                 command: Sequence[str] = (sys.executable, "-m", "exporter"),
                 wrapper: Sequence[str] = (), pass_fds: Sequence[int] = (),
                 preexec_fn: Callable[[], object] | None = None) -> None:
        self.port = port or free_port()
        self.context = context
        listen = () if port else ("--web.listen-address", f"127.0.0.1:{self.port}")
        self.stderr = open(tmp / f"exporter-{self.port}.err", "wb")
        self.proc = subprocess.Popen(
            [*wrapper, *command, *listen, *args],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=self.stderr, pass_fds=pass_fds,
            preexec_fn=preexec_fn,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.fetch("/")  # any answer (a 401 too) means it is up
                return
            except OSError as err:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("exporter did not start: " + self.errors()) from err
                time.sleep(0.05)

    def connection(self, port: int | None = None) -> http.client.HTTPConnection:
        """A connection to it (kept alive across requests)."""
        if self.context is None:
            return http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=5)
        return http.client.HTTPSConnection("127.0.0.1", port or self.port, timeout=5, context=self.context)

    def fetch(self, path: str = "/metrics", headers: dict | None = None, method: str = "GET",
              port: int | None = None) -> Response:
        conn = self.connection(port)
        try:
            return request(conn, path, headers, method)
        finally:
            conn.close()

    def scrape(self, path: str = "/metrics", headers: dict | None = None, port: int | None = None) -> str:
        reply = self.fetch(path, headers, port=port)
        if reply.status != 200:
            raise AssertionError(f"{path}: {reply.status} {reply.body[:200]!r}")
        return reply.body.decode()

    def errors(self) -> str:
        """What it has logged so far (it writes to the file itself: readable after stop() too)."""
        return Path(self.stderr.name).read_text()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Sends sig and waits for the exit; one that does not come within 20 s
        is a failure, and the process is killed so that nothing outlives the test."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the exporter did not stop within 20 s of signal {sig}; "
                                 f"it logged: {self.errors()}") from None
        finally:
            self.stderr.close()


def reply_counts(exporter: Exporter) -> dict:
    """The replies it has counted, by direction, code, class, enhanced code and stage."""
    return dict(replies_by(exporter.scrape(), "direction", "code", "class", "enhanced", "stage"))


def settle(exporter: Exporter, expected: Any, timeout: float = 30,
           measure: Callable[[Exporter], Any] = reply_counts, hold: float = 0) -> Any:
    """Scrape until measure(exporter) equals expected (then hold seconds more,
    and measure again: anything counted twice shows then), or stops changing
    for 5 s."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        got = measure(exporter)
        if got == expected:
            if hold:
                time.sleep(hold)
                return measure(exporter)
            return got
        if got != last:
            last, since = got, time.monotonic()
        elif time.monotonic() - since > 5:
            return got
        time.sleep(0.1)
    return last

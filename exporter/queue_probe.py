"""The queue probe: the MTA's queue listing, run on a timer thread of its own.

A scrape never waits for it: each run sets the smtp_queue_* gauges when it
has read the whole listing, and /metrics serves whatever they hold. The
command runs in a process group of its own and is killed, group and all, at
its timeout, so a hung listing (a busy spool, an NFS stall, a wedged showq)
costs one failed run: smtp_queue_probe_success 0, the last good values kept,
and one log line per episode of failures, not one per run.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Gauge

from exporter.metrics import (
    QUEUE_MESSAGES,
    QUEUE_OLDEST_AGE,
    QUEUE_PROBE_DURATION,
    QUEUE_PROBE_SUCCESS,
    QUEUE_SIZE,
    ExporterMetrics,
    MetricDef,
)
from exporter.queue import FORMATS, Listing, QueueFormat, QueueListingError

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 10.0
_STDERR_SHOWN = 300  # characters of the command's stderr a failure's log line quotes


@dataclass
class QueueConfig:
    """The `queue:` key of the config."""

    mta: str
    command: tuple[str, ...] = ()  # () is the MTA's own listing command
    interval_seconds: float = DEFAULT_INTERVAL
    timeout_seconds: float = DEFAULT_TIMEOUT

    @property
    def format(self) -> QueueFormat:
        return FORMATS[self.mta]

    @property
    def argv(self) -> tuple[str, ...]:
        return self.command or self.format.command


class ProbeFailed(Exception):
    pass


def list_queue(config: QueueConfig, now: Callable[[], float] = time.time,
               started: Callable[[subprocess.Popen], None] = lambda process: None) -> Listing:
    """Run the listing command and read its output as it comes. ProbeFailed
    when it cannot start, exits non-zero, prints what its MTA does not, or
    outlives timeout_seconds (then it is killed with its process group)."""
    timed_out = threading.Event()

    def kill(process: subprocess.Popen) -> None:
        timed_out.set()
        _kill_group(process)

    with tempfile.TemporaryFile() as stderr:  # a file: a chatty stderr cannot fill a pipe and stall the command
        try:
            process = subprocess.Popen(config.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=stderr, start_new_session=True)
        except OSError as err:
            raise ProbeFailed(f"cannot run {config.argv[0]}: {err.strerror}") from err
        started(process)
        timer = threading.Timer(config.timeout_seconds, kill, (process,))
        timer.daemon = True
        timer.start()
        try:
            assert process.stdout is not None
            lines = io.TextIOWrapper(process.stdout, encoding="utf-8", errors="replace")
            try:
                listing = config.format.listing(lines, now())
            except QueueListingError as err:
                if timed_out.is_set():  # a listing cut off by the kill is no listing
                    raise ProbeFailed(f"timed out after {config.timeout_seconds:g}s") from err
                raise ProbeFailed(f"unexpected output: {err}") from err
            status = process.wait()
        finally:
            timer.cancel()
            _kill_group(process)  # whatever it left behind
            process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if timed_out.is_set():
            raise ProbeFailed(f"timed out after {config.timeout_seconds:g}s")
        if status != 0:
            stderr.seek(0)
            said = stderr.read(_STDERR_SHOWN).decode("utf-8", "replace").strip()
            raise ProbeFailed(f"exited with status {status}" + (f": {said}" if said else ""))
    return listing


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class QueueProbe:
    """Runs list_queue every interval_seconds on a thread of its own and
    keeps the gauges at the last good listing."""

    def __init__(self, config: QueueConfig, gauges: dict[MetricDef, Gauge],
                 now: Callable[[], float] = time.time) -> None:
        self.config = config
        self._now = now
        self._messages, self._size, self._oldest = gauges[QUEUE_MESSAGES], gauges[QUEUE_SIZE], gauges[QUEUE_OLDEST_AGE]
        self._success, self._duration = gauges[QUEUE_PROBE_SUCCESS], gauges[QUEUE_PROBE_DURATION]
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: subprocess.Popen | None = None  # the listing command, while it runs

    def run_once(self) -> bool:
        """One probe: list the queue, set the gauges; False when it failed."""
        started = time.monotonic()
        try:
            listing = list_queue(self.config, self._now, self._started)
        except Exception as err:  # ProbeFailed, or a listing no reader foresaw: the thread must go on
            if not isinstance(err, ProbeFailed):
                err = ProbeFailed(f"unexpected {type(err).__name__}: {err}")
            self._duration.set(time.monotonic() - started)
            self._success.set(0)
            if not self._failing:  # once per episode, not every interval
                log.warning("queue probe %s failed: %s (smtp_queue_* keep the last good values; "
                            "retrying every %gs)", " ".join(self.config.argv), err, self.config.interval_seconds)
            self._failing = True
            return False
        finally:
            self._running = None
        now = self._now()
        for queue, totals in listing.items():
            self._messages.labels(queue).set(totals.messages)
            if self.config.format.sizes:
                self._size.labels(queue).set(totals.size_bytes)
            oldest = totals.oldest_arrival
            self._oldest.labels(queue).set(0 if oldest is None else max(0.0, now - oldest))
        self._duration.set(time.monotonic() - started)
        self._success.set(1)
        if self._failing:
            log.info("queue probe %s works again", " ".join(self.config.argv))
        self._failing = False
        return True

    def _started(self, process: subprocess.Popen) -> None:
        self._running = process

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="queue-probe", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.config.interval_seconds)

    def stop(self) -> None:
        """End the thread, killing a listing that is still running."""
        self._stop.set()
        running = self._running
        if running is not None:
            _kill_group(running)
        if self._thread is not None:
            self._thread.join(timeout=5)


def start_queue_probe(config: QueueConfig | None, metrics: ExporterMetrics) -> QueueProbe | None:
    """The daemon's queue probe, running; None when the config has no queue:."""
    if config is None:
        return None
    probe = QueueProbe(config, metrics.queue_gauges())
    probe.start()
    return probe

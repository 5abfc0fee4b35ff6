"""Finding the lines that matter in a block of log lines, and tallying them.

Most mail-log lines carry no reply (connects, queue manager, TLS chatter).
The scanner looks for each parser's trigger substrings with bytes.find, which
runs at memory speed in C, and decodes and parses only the lines that hold
one. Every other line costs nothing beyond being counted as ignored.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

from exporter.labels import DEFAULT_MAX_REPLY_SERIES, Counts, Labeller
from exporter.lines import DEFAULT_MAX_LINE
from exporter.parsers import BlockCountFn, Format, Presence, TakeFn, taking
from exporter.parsers.service import constant
from exporter.replies import Event, looks_like_reply


log = logging.getLogger(__name__)


class UnrecognizedReport:
    """Logs the first few unrecognized lines of each hour at info, cut short,
    so that a user can report a shape no parser knows; the count of them is
    smtp_exporter_lines_total{result="unrecognized"}. Shared by every scanner
    of a process, so a flood of them costs a few log lines an hour."""

    def __init__(self, per_hour: int = 5, max_chars: int = 300,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_hour = per_hour
        self.max_chars = max_chars
        self._clock = clock
        self._hour_start = -3600.0
        self._logged = 0

    def __call__(self, line: str) -> None:
        now = self._clock()
        if now - self._hour_start >= 3600:
            self._hour_start, self._logged = now, 0
        self._logged += 1
        if self._logged <= self.per_hour:
            # repr: the line is the remote side's text as much as the MTA's,
            # and may hold terminal escapes.
            log.info("unrecognized line (it looks like a reply, but no parser knows its shape; "
                     "please report it): %r%s", line[:self.max_chars],
                     " (cut)" if len(line) > self.max_chars else "")
            if self._logged == self.per_hour:
                log.info("no more unrecognized lines are logged for an hour")


REPORT_UNRECOGNIZED = UnrecognizedReport()


class EventSink(Protocol):
    def add(self, counts: Counts, lines: dict[str, int], nbytes: int) -> None: ...


def _first_taker(formats: Sequence[Format], service: str | None) -> TakeFn:
    """The take of the first of formats whose parser takes a line; with a
    configured service, every line's events count under it."""
    takers = tuple(f.take if service is None else taking(f.parse, constant(service)) for f in formats)
    if len(takers) == 1:
        return takers[0]

    def take(line: str) -> tuple[Sequence[Event] | None, str]:
        for take_one in takers:
            taken = take_one(line)
            if taken[0] is not None:
                return taken
        return None, ""

    return take


class LineScanner:
    def __init__(
        self,
        formats: Sequence[Format],
        sink: EventSink,
        max_line: int = DEFAULT_MAX_LINE,
        labeller: Labeller | None = None,
        report_unrecognized: Callable[[str], None] = REPORT_UNRECOGNIZED,
        service: str | None = None,
    ) -> None:
        """service: the source's configured service, which every line counts
        under; None: each line's own (see parsers/service.py)."""
        self._formats = tuple(formats)
        self._service = service
        self._report_unrecognized = report_unrecognized
        self._presence = Presence(self._formats)
        self._sink = sink
        self._max_line = max_line
        self._labeller = labeller if labeller is not None else Labeller()
        # (take, triggers, block counters) for each combination of formats seen present.
        self._plans: dict[tuple[Format, ...], tuple[TakeFn, tuple[bytes, ...], tuple[BlockCountFn, ...]]] = {}

    def _plan(self, block: bytes) -> tuple[TakeFn, tuple[bytes, ...], tuple[BlockCountFn, ...]]:
        active: tuple[Format, ...]
        if len(self._formats) == 1:
            active = self._formats
        else:
            active = self._presence.formats_in(block)
        plan = self._plans.get(active)
        if plan is None:
            triggers = tuple(sorted({t.encode() for f in active for t in f.triggers}))
            # With no format active there are no triggers, and no line reaches take.
            take = _first_taker(active, self._service)
            counters = tuple(f.count_block for f in active if f.count_block is not None)
            plan = self._plans[active] = (take, triggers, counters)
        return plan

    def feed(self, block: bytes, cut: int = 0) -> None:
        """Count the complete lines in block (which ends with b"\\n").

        cut: lines that the LineBuffer already cut at the limit in making
        this block; the scanner cuts (and counts) the lines it parses itself.
        """
        if not block and not cut:
            return
        take, triggers, counters = self._plan(block)
        starts: set[int] = set()
        find, rfind = block.find, block.rfind
        for trigger in triggers:
            at = find(trigger)
            step = len(trigger)
            while at >= 0:
                starts.add(rfind(b"\n", 0, at) + 1)
                at = find(trigger, at + step)
        # Events repeat (the same reply from the same host): counted here
        # first, by service, each distinct one is labelled once per block.
        events: dict[str, dict[Event, int]] = {}
        service_events: dict[Event, int] = {}
        last_service = None
        matched = unrecognized = 0
        max_line = self._max_line
        for start in starts:
            end = find(b"\n", start)
            if end - start > max_line:
                end = start + max_line
            line = block[start:end].decode("utf-8", "replace")
            result, service = take(line)
            if result:
                matched += 1
                if service != last_service:  # most lines of a block share one
                    service_events = events.setdefault(service, {})
                    last_service = service
                for event in result:
                    service_events[event] = service_events.get(event, 0) + 1
            elif result is None and looks_like_reply(line):
                unrecognized += 1
                self._report_unrecognized(line)
        for count_block in counters:
            counted, counted_lines = count_block(block)
            matched += counted_lines
            for (event, service), n in counted.items():
                service_events = events.setdefault(service if self._service is None else self._service, {})
                service_events[event] = service_events.get(event, 0) + n
        total = block.count(b"\n")
        lines = {
            "matched": matched,
            "unrecognized": unrecognized,
            "ignored": total - matched - unrecognized,
            "truncated": cut + long_lines(block, max_line),
            "invalid_utf8": invalid_utf8_lines(block),
        }
        counts = Counts()
        self._labeller.count(events, counts)
        self._sink.add(counts, lines, len(block))


def long_lines(block: bytes, max_line: int) -> int:
    """How many lines of block are longer than max_line (they are cut there).

    Any run of max_line bytes without a newline holds a whole chunk of
    max_line/2 bytes of a grid laid from a line start, so probing the grid's
    chunks finds every long line with a few finds per block.
    """
    half = max(max_line // 2, 1)
    n, found, pos = len(block), 0, 0
    while pos + half <= n:
        if block.find(b"\n", pos, pos + half) >= 0:
            pos += half
            continue
        start = block.rfind(b"\n", 0, pos) + 1
        end = block.find(b"\n", pos)
        end = n if end < 0 else end
        if end - start > max_line:
            found += 1
        pos = end + 1
    return found


def invalid_utf8_lines(block: bytes) -> int:
    """How many lines of block hold bytes that are not UTF-8.

    Mail logs are nearly all ASCII, which isascii() tells at memory speed;
    only the non-ASCII lines of other blocks are decoded.
    """
    if block.isascii():
        return 0
    found = 0
    for line in block.split(b"\n"):
        if not line.isascii():
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                found += 1
    return found


class Tally:
    """An EventSink that just adds up: for tests and for worker processes,
    whose tallies the parent merges into the metrics."""

    def __init__(self, max_reply_series: int = DEFAULT_MAX_REPLY_SERIES) -> None:
        self.counts = Counts()
        self.lines: Counter[str] = Counter()
        self.nbytes = 0
        self.max_reply_series = max_reply_series

    def add(self, counts: Counts, lines: dict[str, int], nbytes: int) -> None:
        self.counts.merge(counts, self.max_reply_series)
        self.lines.update(lines)
        self.nbytes += nbytes

    def merge_into(self, sink: EventSink) -> None:
        sink.add(self.counts, dict(self.lines), self.nbytes)

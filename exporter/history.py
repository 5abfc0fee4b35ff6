"""Counts by time step into counter series (and the delay histogram), written as timestamped OpenMetrics.

The reader hands over one Tally per step (the lines logged in (t - step, t]).
Here they become series of the exporter's counters: the sample at step t of
a series holds everything counted at or before t. A series gets a 0 sample
one step before its first count (so increase() and rate() see that count)
and a sample at every step from then to the end (so no query finds it stale
in the middle). The series the exporter shows at 0 from its start are there
from the first step.

OpenMetrics wants each series' samples together (series may not interleave,
nor may families), while the log comes in time order. Memory must not grow
with the length of the history, so each step's changes go to a temporary
file as fixed-size records (series, step, increment) and only the series'
running totals stay in memory. Writing reads that file back once per group
of series, a group being as many series (the delay histogram's: as many
label sets, each with all its parts) as have at most PASS_RECORDS changes
between them, and writes each series of the group whole.
"""

from __future__ import annotations

import platform
import struct
import tempfile
from array import array
from collections.abc import Callable, Iterator
from itertools import islice
from typing import IO, TypeVar

from exporter import __version__, codes
from exporter.labels import BUCKET_BOUNDS, DEFAULT_MAX_REPLY_SERIES, SUM, Counts, capped_reply_key, zero_counts
from exporter.metrics import (
    BUILD_INFO,
    DELIVERIES,
    DELIVERY_DELAY,
    ENHANCED_STATUS_INFO,
    INVALID_UTF8,
    LABEL_OVERFLOW,
    LINES,
    READ_BYTES,
    REASONS,
    REPLIES,
    REPLY_CODE_INFO,
    TLS_CONNECTIONS,
    TRUNCATED,
    MetricDef,
)
from exporter.scanner import Tally

# Lines whose time could not be read (they take the time of the line before).
UNTIMED = MetricDef(
    "counter",
    "smtp_exporter_backfill_untimed_lines",
    "Lines of backfilled logs without a readable time stamp; each was counted at the time of the line before it.",
    ("source",),
)
# Exposition order: the log's counters, then the gauges the dashboards join.
COUNTERS = (REPLIES, REASONS, DELIVERIES, TLS_CONNECTIONS, LINES, READ_BYTES, TRUNCATED, INVALID_UTF8, LABEL_OVERFLOW,
            UNTIMED)
# The delay histogram's series of one status, in the order a point of it is
# written: its cumulative buckets, then _count and _sum (held in milliseconds,
# exact for the delays logs give: whole seconds or two decimals).
COUNT = "count"
HISTOGRAM_PARTS = (*BUCKET_BOUNDS, COUNT, SUM)
GAUGES = (REPLY_CODE_INFO, ENHANCED_STATUS_INFO, BUILD_INFO)
LINE_RESULTS = ("matched", "ignored", "unrecognized")

_RECORD = struct.Struct("<Iqq")  # series id, step index, increment
PASS_RECORDS = 1 << 18  # changes held in memory at once when writing (16 bytes each)
# The (steps, increments) of each series read back, by series id.
Changes = dict[int, tuple[array, array]]
T = TypeVar("T")
_WRITE_LINES = 4096  # samples formatted before a write
_SPILL_BUFFER = 4096  # records packed before a write to the temporary file


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def label_text(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True))


class History:
    """Running totals of every series, their first step, and their changes
    spilled to a temporary file."""

    def __init__(self, source: str, max_reply_series: int = DEFAULT_MAX_REPLY_SERIES,
                 spill_dir: str | None = None) -> None:
        self.source = source
        self.max_reply_series = max_reply_series
        # Per metric: label values -> series id. The replies' dict is also
        # what the series cap counts, as the metrics' children are.
        self.ids: dict[MetricDef, dict[tuple[str, ...], int]] = {d: {} for d in (*COUNTERS, DELIVERY_DELAY)}
        self.first_step = array("q")  # by series id
        self.changes = array("q")  # by series id: records in the spill file
        self.first: int | None = None  # the first step committed
        self.last: int | None = None  # the last step committed
        self._spill = tempfile.TemporaryFile(dir=spill_dir, prefix="smtp-reply-backfill-")
        self._pending: list[bytes] = []
        self.records = 0
        self._services: set[str] = set()  # the delivering ones, whose zero series are made

    def commit(self, step: int, tally: Tally) -> None:
        """Add one step's tally; steps come in increasing order."""
        assert self.last is None or step > self.last, (step, self.last)
        if self.first is None:
            self.first = step
            self._zero_series(step)
        self.last = step
        counts = tally.counts
        self._zero_new_services(counts, step)
        overflow = counts.overflow
        replies = self.ids[REPLIES]
        for key, n in counts.replies.items():
            key, folded = capped_reply_key(key, replies, self.max_reply_series)
            if folded:
                overflow += n
            self._count(REPLIES, key, step, n)
        for key, n in counts.reasons.items():
            self._count(REASONS, key, step, n)
        for key, n in counts.deliveries.items():
            self._count(DELIVERIES, key, step, n)
        for key, n in counts.tls.items():
            self._count(TLS_CONNECTIONS, key, step, n)
        self._count_delays(counts.delays, step)
        source = (self.source,)
        lines = tally.lines
        for result in LINE_RESULTS:
            self._count(LINES, (self.source, result), step, lines[result])
        self._count(READ_BYTES, source, step, tally.nbytes)
        self._count(TRUNCATED, source, step, lines["truncated"])
        self._count(INVALID_UTF8, source, step, lines["invalid_utf8"])
        self._count(UNTIMED, source, step, lines["untimed"])
        self._count(LABEL_OVERFLOW, (), step, overflow)

    def _count_delays(self, delays: dict[tuple[str, ...], float], step: int) -> None:
        """One step's delays (each bucket alone, and the sum) as the increments
        of the cumulative bucket, _count and _sum series."""
        for labels in {key[:-1] for key in delays}:
            cumulative = 0
            for le in BUCKET_BOUNDS:
                cumulative += int(delays.get((*labels, le), 0))
                self._count(DELIVERY_DELAY, (*labels, le), step, cumulative)
            self._count(DELIVERY_DELAY, (*labels, COUNT), step, cumulative)
            self._count(DELIVERY_DELAY, (*labels, SUM), step, round(delays.get((*labels, SUM), 0) * 1000))

    def _zero_series(self, step: int) -> None:
        """The series the exporter shows at 0 before their first count (its
        line counters, the overflow counter), so rules and dashboards that
        read them find them here too."""
        source = (self.source,)
        keys: list[tuple[MetricDef, tuple[str, ...]]] = [(LINES, (self.source, result)) for result in LINE_RESULTS]
        keys += [(metric, source) for metric in (READ_BYTES, TRUNCATED, INVALID_UTF8, UNTIMED)]
        keys.append((LABEL_OVERFLOW, ()))
        for metric, key in keys:
            self._series(metric, key, step)

    def _zero_new_services(self, counts: Counts, step: int) -> None:
        """A service's zero series (labels.zero_counts) from the step of its
        first delivery, as the exporter shows them."""
        for service in counts.delivering_services() - self._services:
            self._services.add(service)
            zero = zero_counts(service)
            for key in zero.deliveries:
                self._series(DELIVERIES, key, step)
            for labels in {key[:-1] for key in zero.delays}:
                for part in HISTOGRAM_PARTS:
                    self._series(DELIVERY_DELAY, (*labels, part), step)

    def _series(self, metric: MetricDef, key: tuple[str, ...], step: int) -> int:
        ids = self.ids[metric]
        sid = ids.get(key)
        if sid is None:
            sid = ids[key] = len(self.first_step)
            self.first_step.append(step)
            self.changes.append(0)
        return sid

    def _count(self, metric: MetricDef, key: tuple[str, ...], step: int, n: int) -> None:
        if not n:
            return
        sid = self._series(metric, key, step)
        self.changes[sid] += 1
        self._pending.append(_RECORD.pack(sid, step, n))
        if len(self._pending) >= _SPILL_BUFFER:
            self._flush()

    def _flush(self) -> None:
        self._spill.write(b"".join(self._pending))
        self.records += len(self._pending)
        self._pending.clear()

    def close(self) -> None:
        self._spill.close()

    def _changes_of(self, group: list[int]) -> Changes:
        """The (steps, increments) of each series in group, read back from the spill file."""
        wanted: dict[int, tuple[array, array]] = {sid: (array("q"), array("q")) for sid in group}
        self._spill.seek(0)
        read = self._spill.read
        while chunk := read(_RECORD.size * 65536):
            for sid, step, n in _RECORD.iter_unpack(chunk):
                found = wanted.get(sid)
                if found is not None:
                    found[0].append(step)
                    found[1].append(n)
        return wanted

    def _groups(self, units: list[tuple[T, list[int]]]) -> Iterator[tuple[list[tuple[T, list[int]]], Changes]]:
        """units (what to write, its series: a counter's one, a histogram label
        set's every part), in order, a group at a time with the changes of its
        series, read back in one pass over the spill file: as many units as
        hold at most PASS_RECORDS changes, a unit never split."""
        group: list[tuple[T, list[int]]] = []
        held = 0
        for unit in units:
            changes = sum(self.changes[sid] for sid in unit[1])
            if group and held + changes > PASS_RECORDS:
                yield group, self._changes_of([sid for _, sids in group for sid in sids])
                group, held = [], 0
            group.append(unit)
            held += changes
        if group:
            yield group, self._changes_of([sid for _, sids in group for sid in sids])

    def write_openmetrics(self, out: IO[str], step_seconds: int, end_step: int, end_time: float | None,
                          extra_labels: dict[str, str]) -> int:
        """Write every series from its first step to end_step (the last
        sample at end_time instead when given), then the info gauges over
        the whole range, then "# EOF". Returns the number of samples."""
        self._flush()
        extra_names, extra_values = tuple(extra_labels), tuple(extra_labels.values())

        def stamp(step: int) -> str:
            if step == end_step and end_time is not None:
                return f"{end_time:.3f}".rstrip("0").rstrip(".")
            return str(step * step_seconds)

        # Series in output order: by metric, then by label values.
        order = [((metric, key), [sid]) for metric in COUNTERS for key, sid in sorted(self.ids[metric].items())]
        samples = 0
        written: set[MetricDef] = set()
        for group, changes in self._groups(order):
            for (metric, key), [sid] in group:
                if metric not in written:
                    written.add(metric)
                    _header(out, metric)
                steps, increments = changes.pop(sid)
                prefix = (f"{metric.sample_name}{{"
                          f"{label_text(metric.labels + extra_names, key + extra_values)}}} ")
                samples += _write_lines(out, _counter_lines(prefix, steps, increments,
                                                            range(self.first_step[sid] - 1, end_step + 1), stamp))
        if self.first is not None:
            samples += self._write_histogram(out, range(self.first - 1, end_step + 1), stamp, extra_names,
                                             extra_values)
            samples += self._write_gauges(out, range(self.first - 1, end_step + 1), stamp, extra_names, extra_values)
        out.write("# EOF\n")
        return samples

    def _write_histogram(self, out: IO[str], steps: range, stamp: Callable[[int], str],
                         extra_names: tuple[str, ...], extra_values: tuple[str, ...]) -> int:
        """The delay histogram, a label set (status, service) at a time and,
        within it, a point (every bucket, _count, _sum) at each step, as
        OpenMetrics orders a histogram. A label set's series all start at the
        step of its service's first count."""
        _header(out, DELIVERY_DELAY)
        ids = self.ids[DELIVERY_DELAY]
        samples = 0
        label_sets = [(labels, [ids[labels + (part,)] for part in HISTOGRAM_PARTS])
                      for labels in sorted({key[:-1] for key in ids})]
        for group, changes in self._groups(label_sets):
            for labels, sids in group:
                names: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
                    (f"{DELIVERY_DELAY.name}_bucket", (*DELIVERY_DELAY.labels, "le"), (*labels, le))
                    for le in BUCKET_BOUNDS]
                names += [(f"{DELIVERY_DELAY.name}_{part}", DELIVERY_DELAY.labels, labels) for part in (COUNT, SUM)]
                prefixes = [f"{name}{{{label_text(label_names + extra_names, values + extra_values)}}} "
                            for name, label_names, values in names]
                lines = [_counter_lines(prefix, *changes[sid], steps, stamp)
                         for prefix, sid in zip(prefixes, sids, strict=True)]
                lines[-1] = (_in_seconds(line) for line in lines[-1])
                samples += _write_lines(out, (line for point in zip(*lines, strict=True) for line in point))
        return samples

    def _write_gauges(self, out: IO[str], steps: range, stamp: Callable[[int], str],
                      extra_names: tuple[str, ...], extra_values: tuple[str, ...]) -> int:
        """The gauges the dashboards and rules join with, set to 1 at every step:
        smtp_exporter_build_info, and the *_info of every code the log holds."""
        seen_codes = {key[1] for key in self.ids[REPLIES]}
        seen_enhanced = {key[3] for key in self.ids[REPLIES]}
        series: dict[MetricDef, list[tuple[str, ...]]] = {
            REPLY_CODE_INFO: [row for row in codes.iter_reply_codes() if row[0] in seen_codes],
            ENHANCED_STATUS_INFO: [row for row in codes.iter_enhanced_codes() if row[0] in seen_enhanced],
            BUILD_INFO: [(__version__, platform.python_version())],
        }
        samples = 0
        for metric in GAUGES:
            _header(out, metric)
            for values in series[metric]:
                prefix = f"{metric.sample_name}{{{label_text(metric.labels + extra_names, values + extra_values)}}} 1 "
                samples += _write_lines(out, (f"{prefix}{stamp(step)}\n" for step in steps))
        return samples


def _counter_lines(prefix: str, steps: array, increments: array, every: range,
                   stamp: Callable[[int], str]) -> Iterator[str]:
    """A counter's sample at every step of every: its running total of increments up to that step."""
    value, i, n_changes = 0, 0, len(steps)
    for step in every:
        if i < n_changes and steps[i] == step:
            value += increments[i]
            i += 1
        yield f"{prefix}{value} {stamp(step)}\n"


def _in_seconds(line: str) -> str:
    """A _sum sample, held in milliseconds, written in seconds (as exact decimals)."""
    head, value, when = line.rsplit(" ", 2)
    ms = int(value)
    return f"{head} {ms // 1000}.{ms % 1000:03d} {when}"


def _write_lines(out: IO[str], lines: Iterator[str]) -> int:
    """Write lines a few thousand at a time (a long history's series is never held whole); how many."""
    written = 0
    while chunk := list(islice(lines, _WRITE_LINES)):
        out.write("".join(chunk))
        written += len(chunk)
    return written


def _header(out: IO[str], metric: MetricDef) -> None:
    out.write(f"# TYPE {metric.name} {metric.kind}\n# HELP {metric.name} {_escape(metric.documentation)}\n")

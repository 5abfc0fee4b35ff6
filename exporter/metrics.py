"""The exporter's metrics, in a private registry.

Names and labels here are the contract dashboards and alerts are built on.
Label children are cached, and the scanner hands over one batch of counts
per block of lines, so the hot path does a dict lookup and an add per
distinct label set rather than a prometheus_client call per line.
"""

from __future__ import annotations

import platform

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from exporter import __version__, codes
from exporter.labels import (
    DEFAULT_MAX_REPLY_SERIES,
    DELIVERY_LABELS,
    REASON_LABELS,
    REPLY_LABELS,
    Counts,
    capped_reply_key,
)
from exporter.providers import OTHER
from exporter.replies import DELIVERY_STATUSES
from exporter.source_progress import SourceStats

LINE_RESULTS = ("matched", "ignored", "unrecognized")


class ExporterMetrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        max_reply_series: int = DEFAULT_MAX_REPLY_SERIES,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.max_reply_series = max_reply_series
        r = self.registry
        self.replies = Counter(
            "smtp_replies",
            "SMTP replies seen in the mail log, by direction, code, class, "
            "enhanced status code, the SMTP stage they answered and the remote "
            "provider (outbound; \"\" for inbound).",
            REPLY_LABELS,
            registry=r,
        )
        self.reasons = Counter(
            "smtp_reply_reasons",
            "4xx and 5xx replies by the reason their code and text give "
            "(user_unknown, greylisted, blocklisted, ...), direction and remote provider.",
            REASON_LABELS,
            registry=r,
        )
        self.deliveries = Counter(
            "smtp_deliveries",
            "Delivery attempts by our MTA by outcome and remote provider, including "
            "attempts that got no reply at all (connection refused, timeout, DNS).",
            DELIVERY_LABELS,
            registry=r,
        )
        reply_info = Gauge(
            "smtp_reply_code_info",
            "Meaning of each SMTP reply code (RFC 5321 and extensions); value 1.",
            ["code", "class", "meaning"],
            registry=r,
        )
        enhanced_info = Gauge(
            "smtp_enhanced_status_info",
            "Meaning of each RFC 3463 enhanced status code (IANA registry); value 1.",
            ["enhanced", "meaning"],
            registry=r,
        )
        self.lines = Counter(
            "smtp_exporter_lines",
            "Log lines read, by result: matched (counted a reply or delivery), "
            "ignored (carries no reply), unrecognized (looks like a reply but "
            "no parser took it: a coverage gap).",
            ["source", "result"],
            registry=r,
        )
        self.read_bytes = Counter(
            "smtp_exporter_read_bytes", "Bytes of log read.", ["source"], registry=r
        )
        self.truncated = Counter(
            "smtp_exporter_lines_truncated",
            "Lines longer than the line limit, cut at the limit.",
            ["source"],
            registry=r,
        )
        self.invalid_utf8 = Counter(
            "smtp_exporter_invalid_utf8_lines",
            "Lines holding bytes that are not valid UTF-8 (read with replacement characters).",
            ["source"],
            registry=r,
        )
        self.label_overflow = Counter(
            "smtp_exporter_label_overflow",
            "Replies counted in an overflow label set (code and enhanced \"other\") "
            "because smtp_replies_total reached max_reply_series label sets.",
            registry=r,
        )
        build = Gauge(
            "smtp_exporter_build_info",
            "Build information of smtp-reply-exporter; value 1.",
            ["version", "python_version"],
            registry=r,
        )
        build.labels(__version__, platform.python_version()).set(1)
        for code, reply_class, meaning in codes.iter_reply_codes():
            reply_info.labels(code, reply_class, meaning).set(1)
        for enhanced, meaning in codes.iter_enhanced_codes():
            enhanced_info.labels(enhanced, meaning).set(1)

        self._source_stats: dict[str, SourceStats] = {}
        r.register(_SourceStatsCollector(self))

        # Zero series for every label value known in advance, so rates and
        # ratios exist before the first event.
        self._delivery_children = {
            (s, OTHER): self.deliveries.labels(s, OTHER) for s in DELIVERY_STATUSES
        }
        self._reason_children: dict[tuple[str, ...], Counter] = {}
        self._reply_children: dict[tuple[str, ...], Counter] = {}
        self._sinks: dict[str, SourceSink] = {}
        # What a state file keeps across restarts, beside the read positions.
        self._persistent = {
            "smtp_replies_total": self.replies,
            "smtp_reply_reasons_total": self.reasons,
            "smtp_deliveries_total": self.deliveries,
            "smtp_exporter_lines_total": self.lines,
            "smtp_exporter_read_bytes_total": self.read_bytes,
            "smtp_exporter_lines_truncated_total": self.truncated,
            "smtp_exporter_invalid_utf8_lines_total": self.invalid_utf8,
            "smtp_exporter_label_overflow_total": self.label_overflow,
        }

    def sink_for(self, source: str) -> SourceSink:
        """The sink a scanner of one source (a log file path) feeds."""
        sink = self._sinks.get(source)
        if sink is None:
            sink = self._sinks[source] = SourceSink(self, source)
        return sink

    def add_counts(self, counts: Counts) -> None:
        children = self._reply_children
        for key, n in counts.replies.items():
            child = children.get(key)
            if child is None:
                key, folded = capped_reply_key(key, children, self.max_reply_series)
                if folded:
                    self.label_overflow.inc(n)
                child = children.get(key)
                if child is None:
                    child = children[key] = self.replies.labels(*key)
            child.inc(n)
        if counts.overflow:
            self.label_overflow.inc(counts.overflow)
        # Reasons and providers are fixed lists: these two stay bounded.
        for children, counter, batch in (
            (self._reason_children, self.reasons, counts.reasons),
            (self._delivery_children, self.deliveries, counts.deliveries),
        ):
            for key, n in batch.items():
                child = children.get(key)
                if child is None:
                    child = children[key] = counter.labels(*key)
                child.inc(n)

    def update_sources(self, stats: Iterable[tuple[str, SourceStats]]) -> None:
        """The followed files and what their followers saw (read at scrape time)."""
        self._source_stats = dict(stats)

    def snapshot(self) -> list[list]:
        """The persistent counters' values, as [name, labels, value] rows."""
        rows = []
        for name, counter in self._persistent.items():
            for family in counter.collect():
                for sample in family.samples:
                    if sample.name == name and sample.value:
                        rows.append([name, sample.labels, sample.value])
        return rows

    def restore(self, rows: list[list]) -> None:
        """Start the counters from a snapshot (after a restart)."""
        # Replies, reasons and deliveries go in as if counted now, so the
        # series cap knows them and holds across restarts.
        counted = Counts()
        batches = {
            "smtp_replies_total": counted.replies,
            "smtp_reply_reasons_total": counted.reasons,
            "smtp_deliveries_total": counted.deliveries,
        }
        for name, labels, value in rows:
            counter = self._persistent.get(name)
            if counter is None:
                continue
            # A state file written before a label existed lacks it: "".
            names = counter._labelnames  # noqa: SLF001 - prometheus_client has no public accessor
            values = tuple(labels.get(n, "") for n in names)
            if name in batches:
                batches[name][values] = value
            else:
                (counter.labels(*values) if names else counter).inc(value)
        self.add_counts(counted)

    def totals(
        self, name: str, *labels: str, where: dict[str, str] | None = None
    ) -> dict[tuple[str, ...], float]:
        """A metric's samples summed by the labels named (e.g. over sources),
        of the samples whose labels have the values in where."""
        where = where or {}
        totals: dict[tuple[str, ...], float] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in where.items()):
                    key = tuple(sample.labels.get(label, "") for label in labels)
                    totals[key] = totals.get(key, 0.0) + sample.value
        return totals


class SourceSink:
    """Where the scanner of one source puts its batches."""

    def __init__(self, metrics: ExporterMetrics, source: str) -> None:
        self._metrics = metrics
        self._lines = {r: metrics.lines.labels(source, r) for r in LINE_RESULTS}
        self._bytes = metrics.read_bytes.labels(source)
        self._truncated = metrics.truncated.labels(source)
        self._invalid = metrics.invalid_utf8.labels(source)

    def add(self, counts: Counts, lines: dict[str, int], nbytes: int) -> None:
        if counts:
            self._metrics.add_counts(counts)
        for result, child in self._lines.items():
            if lines[result]:
                child.inc(lines[result])
        if lines["truncated"]:
            self._truncated.inc(lines["truncated"])
        if lines["invalid_utf8"]:
            self._invalid.inc(lines["invalid_utf8"])
        self._bytes.inc(nbytes)


class _SourceStatsCollector:
    """Per-file tailing health, read from the followers when scraped."""

    def __init__(self, metrics: ExporterMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list:
        return []

    def collect(self):
        stats = self._metrics._source_stats  # noqa: SLF001 - same module
        families = {
            "rotations": CounterMetricFamily(
                "smtp_exporter_source_rotations",
                "Times a followed file was replaced by another (rename or delete rotation).",
                labels=["source"],
            ),
            "truncations": CounterMetricFamily(
                "smtp_exporter_source_truncations",
                "Times a followed file was truncated (copytruncate or truncation).",
                labels=["source"],
            ),
            "read_errors": CounterMetricFamily(
                "smtp_exporter_source_read_errors",
                "Failed attempts to open or read a followed file (e.g. permission denied); retried.",
                labels=["source"],
            ),
        }
        last_read = GaugeMetricFamily(
            "smtp_exporter_source_last_read_timestamp_seconds",
            "When data was last read from the file (Unix time; 0: never). Alert when it is old.",
            labels=["source"],
        )
        for source, st in sorted(stats.items()):
            for attr, family in families.items():
                family.add_metric([source], getattr(st, attr))
            last_read.add_metric([source], st.last_read_time)
        yield from families.values()
        yield last_read

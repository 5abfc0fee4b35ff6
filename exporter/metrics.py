"""The exporter's metrics, in a private registry.

Names and labels here are the contract dashboards and alerts are built on.
Label children are cached, and the scanner hands over one batch of counts
per block of lines, so the hot path does a dict lookup and an add per
distinct label set rather than a prometheus_client call per line.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from exporter import __version__, codes
from exporter.labels import (
    BUCKET_BOUNDS,
    DEFAULT_MAX_REPLY_SERIES,
    DELAY_LABELS,
    DELIVERY_LABELS,
    REASON_LABELS,
    REPLY_LABELS,
    SUM,
    TLS_LABELS,
    Counts,
    ServiceCap,
    capped_reply_key,
    zero_counts,
)
from exporter.source_progress import SourceStats

LINE_RESULTS = ("matched", "ignored", "unrecognized")


@dataclass(frozen=True)
class MetricDef:
    """One metric of the exporter's registry.

    Counters and histograms are what the state file keeps across restarts,
    beside the read positions; gauges are set once, when the metrics are made,
    except the queue probe's (QUEUE_GAUGES), which are registered only when the
    daemon runs the probe and set by it after each run.
    """

    kind: Literal["counter", "gauge", "histogram"]
    name: str  # as registered; a counter's samples are name + "_total"
    documentation: str
    labels: tuple[str, ...] = ()
    # The batch of Counts a restored value goes into, so that the series cap
    # knows its label set; None: the value goes straight into the counter.
    batch: Callable[[Counts], dict] | None = None

    @property
    def sample_name(self) -> str:
        return self.name + "_total" if self.kind == "counter" else self.name


REPLIES = MetricDef(
    "counter",
    "smtp_replies",
    "SMTP replies seen in the mail log, by direction, code, class, "
    "enhanced status code, the SMTP stage they answered and the remote "
    "provider (outbound; \"\" for inbound).",
    REPLY_LABELS,
    lambda counts: counts.replies,
)
REASONS = MetricDef(
    "counter",
    "smtp_reply_reasons",
    "4xx and 5xx replies by the reason their code and text give "
    "(user_unknown, greylisted, blocklisted, ...), direction and remote provider.",
    REASON_LABELS,
    lambda counts: counts.reasons,
)
DELIVERIES = MetricDef(
    "counter",
    "smtp_deliveries",
    "Delivery attempts by our MTA by outcome and remote provider, including "
    "attempts that got no reply at all (connection refused, timeout, DNS).",
    DELIVERY_LABELS,
    lambda counts: counts.deliveries,
)
TLS_CONNECTIONS = MetricDef(
    "counter",
    "smtp_tls_connections",
    "SMTP connections that used TLS, by direction, protocol version and how far the "
    "peer's certificate was checked (Exim: per message received or delivered).",
    TLS_LABELS,
    lambda counts: counts.tls,
)
DELIVERY_DELAY = MetricDef(
    "histogram",
    "smtp_delivery_delay_seconds",
    "How long messages waited until a delivery attempt by our MTA ended, by its "
    "outcome (Postfix and Sendmail delay=, OpenSMTPD delay=, Exim QT=).",
    DELAY_LABELS,
    lambda counts: counts.delays,
)
REPLY_CODE_INFO = MetricDef(
    "gauge",
    "smtp_reply_code_info",
    "Meaning of each SMTP reply code (RFC 5321 and extensions); value 1.",
    ("code", "class", "meaning"),
)
ENHANCED_STATUS_INFO = MetricDef(
    "gauge",
    "smtp_enhanced_status_info",
    "Meaning of each RFC 3463 enhanced status code (IANA registry); value 1.",
    ("enhanced", "meaning"),
)
LINES = MetricDef(
    "counter",
    "smtp_exporter_lines",
    "Log lines read, by result: matched (counted a reply or delivery), "
    "ignored (carries no reply), unrecognized (looks like a reply but "
    "no parser took it: a coverage gap).",
    ("source", "result"),
)
READ_BYTES = MetricDef("counter", "smtp_exporter_read_bytes", "Bytes of log read.", ("source",))
TRUNCATED = MetricDef(
    "counter",
    "smtp_exporter_lines_truncated",
    "Lines longer than the line limit, cut at the limit.",
    ("source",),
)
INVALID_UTF8 = MetricDef(
    "counter",
    "smtp_exporter_invalid_utf8_lines",
    "Lines holding bytes that are not valid UTF-8 (read with replacement characters).",
    ("source",),
)
LABEL_OVERFLOW = MetricDef(
    "counter",
    "smtp_exporter_label_overflow",
    "Replies counted in an overflow label set (code and enhanced \"other\") "
    "because smtp_replies_total reached max_reply_series label sets.",
)
BUILD_INFO = MetricDef(
    "gauge",
    "smtp_exporter_build_info",
    "Build information of smtp-reply-exporter; value 1.",
    ("version", "python_version"),
)
QUEUE_MESSAGES = MetricDef(
    "gauge",
    "smtp_queue_messages",
    "Messages in the MTA's queue, by the MTA's own queue name, at the last successful queue probe.",
    ("queue",),
)
QUEUE_SIZE = MetricDef(
    "gauge",
    "smtp_queue_size_bytes",
    "Bytes of the messages in the MTA's queue, by queue name, at the last successful queue probe "
    "(as the MTA's listing gives them; OpenSMTPD's gives none).",
    ("queue",),
)
QUEUE_OLDEST_AGE = MetricDef(
    "gauge",
    "smtp_queue_oldest_message_age_seconds",
    "Age of the oldest message in the queue (0: empty), by queue name, at the last successful queue probe.",
    ("queue",),
)
QUEUE_PROBE_SUCCESS = MetricDef(
    "gauge",
    "smtp_queue_probe_success",
    "1 if the last queue probe listed the queue, 0 if it failed or timed out "
    "(the smtp_queue_* values are then those of the last success).",
)
QUEUE_PROBE_DURATION = MetricDef(
    "gauge",
    "smtp_queue_probe_duration_seconds",
    "How long the last queue probe took, listing command and reading included.",
)
QUEUE_GAUGES = (QUEUE_MESSAGES, QUEUE_SIZE, QUEUE_OLDEST_AGE, QUEUE_PROBE_SUCCESS, QUEUE_PROBE_DURATION)
# The registry's metrics, in exposition order. The files' tailing health
# (smtp_exporter_source_*) is read from the followers at scrape time instead.
METRICS = (
    REPLIES, REASONS, DELIVERIES, TLS_CONNECTIONS, DELIVERY_DELAY, REPLY_CODE_INFO, ENHANCED_STATUS_INFO,
    LINES, READ_BYTES, TRUNCATED, INVALID_UTF8, LABEL_OVERFLOW, BUILD_INFO,
    *QUEUE_GAUGES,
)


class ExporterMetrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        max_reply_series: int = DEFAULT_MAX_REPLY_SERIES,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.max_reply_series = max_reply_series
        r = self.registry
        # Every counter is persistent: these are what snapshot() saves.
        self._counters: dict[MetricDef, Counter] = {}
        gauges: dict[MetricDef, Gauge] = {}
        self._histograms = _Histograms([d for d in METRICS if d.kind == "histogram"])
        r.register(self._histograms)
        for d in METRICS:
            if d in QUEUE_GAUGES:
                continue  # registered by queue_gauges(), in the daemon with a queue probe only
            if d.kind == "counter":
                self._counters[d] = Counter(d.name, d.documentation, d.labels, registry=r)
            elif d.kind == "gauge":
                gauges[d] = Gauge(d.name, d.documentation, d.labels, registry=r)
        self.replies = self._counters[REPLIES]
        self.reasons = self._counters[REASONS]
        self.deliveries = self._counters[DELIVERIES]
        self.tls = self._counters[TLS_CONNECTIONS]
        self.lines = self._counters[LINES]
        self.read_bytes = self._counters[READ_BYTES]
        self.truncated = self._counters[TRUNCATED]
        self.invalid_utf8 = self._counters[INVALID_UTF8]
        self.label_overflow = self._counters[LABEL_OVERFLOW]
        gauges[BUILD_INFO].labels(__version__, platform.python_version()).set(1)
        for code, reply_class, meaning in codes.iter_reply_codes():
            gauges[REPLY_CODE_INFO].labels(code, reply_class, meaning).set(1)
        for enhanced, meaning in codes.iter_enhanced_codes():
            gauges[ENHANCED_STATUS_INFO].labels(enhanced, meaning).set(1)

        self._sources = _SourceStatsCollector()
        r.register(self._sources)

        # The labellers feeding these metrics share it: one cap decides which
        # services have names. Here it also holds over --once's worker
        # processes and the rows restored from the state file.
        self.services = ServiceCap()
        self._delivering_services: set[str] = set()  # their zero series made
        self._delivery_children: dict[tuple[str, ...], Counter] = {}
        self._reason_children: dict[tuple[str, ...], Counter] = {}
        self._tls_children: dict[tuple[str, ...], Counter] = {}
        self._reply_children: dict[tuple[str, ...], Counter] = {}
        self._sinks: dict[str, SourceSink] = {}

    def queue_gauges(self) -> dict[MetricDef, Gauge]:
        """The queue probe's gauges, registered now: without a probe there
        are no queue series at all, rather than zeros that look like an
        empty queue."""
        return {d: Gauge(d.name, d.documentation, d.labels, registry=self.registry) for d in QUEUE_GAUGES}

    def sink_for(self, source: str) -> SourceSink:
        """The sink a scanner of one source (a log file path) feeds."""
        sink = self._sinks.get(source)
        if sink is None:
            sink = self._sinks[source] = SourceSink(self, source)
        return sink

    def add_counts(self, counts: Counts) -> None:
        self._add(self._with_capped_services(counts))

    def _with_capped_services(self, counts: Counts) -> Counts:
        """counts, its services past the cap (see ServiceCap) folded into
        `other`. A service's first delivery brings its zero series
        (labels.zero_counts)."""
        labels = {service: self.services.label(service) for service in sorted(counts.services())}
        if any(service != label for service, label in labels.items()):
            counts = counts.with_services(labels)
        for service in sorted(counts.delivering_services() - self._delivering_services):
            self._delivering_services.add(service)
            if service:
                self._add(zero_counts(service))
        return counts

    def _add(self, counts: Counts) -> None:
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
        self._histograms.add(counts)
        # Reasons, providers and TLS versions are fixed lists: these stay bounded.
        for children, counter, batch in (
            (self._reason_children, self.reasons, counts.reasons),
            (self._delivery_children, self.deliveries, counts.deliveries),
            (self._tls_children, self.tls, counts.tls),
        ):
            for key, n in batch.items():
                child = children.get(key)
                if child is None:
                    child = children[key] = counter.labels(*key)
                child.inc(n)

    def update_sources(self, stats: Iterable[tuple[str, SourceStats]]) -> None:
        """The followed files and what their followers saw (read at scrape time)."""
        self._sources.stats = dict(stats)

    def snapshot(self) -> list[list]:
        """The counters' values, as [sample name, labels, value] rows."""
        rows = []
        for d, counter in self._counters.items():
            for family in counter.collect():
                for sample in family.samples:
                    if sample.name == d.sample_name and sample.value:
                        rows.append([d.sample_name, sample.labels, sample.value])
        return rows + self._histograms.snapshot()

    def restore(self, rows: list[list]) -> None:
        """Start the counters from a snapshot (after a restart)."""
        # Replies, reasons and deliveries go in as if counted now, so the
        # series cap knows them and holds across restarts.
        counted = Counts()
        by_name: dict[str, tuple[MetricDef, Counter | None]] = {
            d.sample_name: (d, counter) for d, counter in self._counters.items()}
        by_name.update((d.name, (d, None)) for d in self._histograms.defs)
        for name, labels, value in rows:
            if name not in by_name:
                continue  # a counter this version no longer has
            d, counter = by_name[name]
            # A state file written before a label existed lacks it: "".
            values = tuple(labels.get(label, "") for label in d.labels)
            if counter is None:  # a histogram's row: one bucket alone, or the sum
                assert d.batch is not None
                d.batch(counted)[values + (labels.get("le", ""),)] = value
            elif d.batch is not None:
                d.batch(counted)[values] = value
            else:
                (counter.labels(*values) if d.labels else counter).inc(value)
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


class _Histograms:
    """The histograms, kept as Counts batches are: per label set, the count of
    each bucket alone and the sum; exposed cumulative, as Prometheus wants."""

    def __init__(self, defs: list[MetricDef]) -> None:
        self.defs = defs
        self._values: dict[MetricDef, dict[tuple[str, ...], float]] = {d: {} for d in defs}

    def add(self, counts: Counts) -> None:
        for d, values in self._values.items():
            assert d.batch is not None
            for key, n in d.batch(counts).items():
                values[key] = values.get(key, 0) + n

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        for d, values in self._values.items():
            family = HistogramMetricFamily(d.name, d.documentation, labels=list(d.labels))
            for labels in sorted({key[:-1] for key in values}):
                cumulative, buckets = 0.0, []
                for le in BUCKET_BOUNDS:
                    cumulative += values.get((*labels, le), 0)
                    buckets.append((le, cumulative))
                family.add_metric(list(labels), buckets, values.get((*labels, SUM), 0))
            yield family

    def snapshot(self) -> list[list]:
        """[name, labels with le (a bucket alone, or "sum"), value] rows, for the state file."""
        return [[d.name, {**dict(zip(d.labels, key[:-1], strict=True)), "le": key[-1]}, value]
                for d, values in self._values.items() for key, value in sorted(values.items()) if value]


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

    def __init__(self) -> None:
        self.stats: dict[str, SourceStats] = {}

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
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
        for source, st in sorted(self.stats.items()):
            for attr, family in families.items():
                family.add_metric([source], getattr(st, attr))
            last_read.add_metric([source], st.last_read_time)
        yield from families.values()
        yield last_read

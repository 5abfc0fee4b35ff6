"""The exporter's metrics, in a private registry.

Names and labels here are the contract dashboards and alerts are built on.
Label children are cached, and the scanner hands over one batch of counts
per block of lines, so the hot path does a dict lookup and an add per
distinct label set rather than a prometheus_client call per line.
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Counter, Gauge

from exporter import __version__, codes
from exporter.replies import DELIVERY_STATUSES, Delivery, Reply

LINE_RESULTS = ("matched", "ignored", "unrecognized")


class ExporterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.replies = Counter(
            "smtp_replies",
            "SMTP replies seen in the mail log, by direction, code, class, "
            "enhanced status code and the SMTP stage they answered.",
            ["direction", "code", "class", "enhanced", "stage"],
            registry=r,
        )
        self.deliveries = Counter(
            "smtp_deliveries",
            "Delivery attempts by our MTA by outcome, including attempts "
            "that got no reply at all (connection refused, timeout, DNS).",
            ["status"],
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
            ["result"],
            registry=r,
        )
        self.read_bytes = Counter(
            "smtp_exporter_read_bytes", "Bytes of log read.", registry=r
        )
        self.truncated = Counter(
            "smtp_exporter_lines_truncated",
            "Lines longer than the line limit, cut at the limit.",
            registry=r,
        )
        self.invalid_utf8 = Counter(
            "smtp_exporter_invalid_utf8_lines",
            "Lines holding bytes that are not valid UTF-8 (read with replacement characters).",
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

        # Zero series for every label value known in advance, so rates and
        # ratios exist before the first event.
        self._delivery_children = {s: self.deliveries.labels(s) for s in DELIVERY_STATUSES}
        self._line_children = {r_: self.lines.labels(r_) for r_ in LINE_RESULTS}
        self._reply_children: dict[Reply, Counter] = {}

    def add(self, events: dict[Reply | Delivery, int], lines: dict[str, int], nbytes: int) -> None:
        """Apply one batch from the scanner."""
        for event, n in events.items():
            if type(event) is Reply:
                child = self._reply_children.get(event)
                if child is None:
                    child = self._reply_children[event] = self.replies.labels(*event)
                child.inc(n)
            else:
                child = self._delivery_children.get(event.status)
                if child is None:
                    child = self._delivery_children[event.status] = self.deliveries.labels(
                        event.status
                    )
                child.inc(n)
        for result in LINE_RESULTS:
            if lines[result]:
                self._line_children[result].inc(lines[result])
        if lines["truncated"]:
            self.truncated.inc(lines["truncated"])
        if lines["invalid_utf8"]:
            self.invalid_utf8.inc(lines["invalid_utf8"])
        self.read_bytes.inc(nbytes)

    def reply_counts(self) -> dict[Reply, float]:
        """Current value of every reply series (for the table view and tests)."""
        counts: dict[Reply, float] = {}
        for family in self.replies.collect():
            for sample in family.samples:
                if sample.name == "smtp_replies_total":
                    labels = sample.labels
                    reply = Reply(
                        labels["direction"], labels["code"], labels["class"],
                        labels["enhanced"], labels["stage"],
                    )
                    counts[reply] = sample.value
        return counts

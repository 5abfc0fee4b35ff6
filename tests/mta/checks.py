"""The checks every real-MTA end-to-end module makes: what `python3 -m
exporter --once` counts over the lab's log must be, key by key, what crossed
the wire, each under the service (the syslog tag's, or the format's name)
of the process that logged it.

A module gets them by subclassing AgainstTheWire as a Test* class and giving
a fixture `wire` (a Wire: the logs and the counts expected of them); it
states only what differs between MTAs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pytest
from helpers import metric_by

from .debian import PackagesUnavailable
from .scenario import DELIVERY_LABELS, LABELS, counted, diff, exposition_of


@dataclass(frozen=True)
class Wire:
    logs: tuple[Path, ...]  # read together by one --once
    replies: Counter  # expected smtp_replies_total by scenario.LABELS
    deliveries: Counter  # expected smtp_deliveries_total by scenario.DELIVERY_LABELS
    options: tuple[str, ...] = ()  # for --once, before the logs
    # The delivery statuses whose every attempt the MTA logs with its delay
    # (None: all of them); the others' delay histograms stay empty.
    delayed: tuple[str, ...] | None = None
    # expected smtp_tls_connections_total by TLS_LABELS: the handshakes the
    # lab's clients and peer made, as the MTA logs them
    tls: Counter = field(default_factory=Counter)

    @cached_property  # one --once over the logs serves every check of a module
    def exposition(self) -> str:
        return exposition_of(*self.logs, options=self.options)

    def exported(self) -> tuple[Counter, Counter]:
        return counted(self.exposition)


def only(counter: Counter, direction: str) -> Counter:
    return Counter({k: v for k, v in counter.items() if k[0] == direction})


class AgainstTheWire:
    def test_outbound_replies_match_the_wire(self, wire: Wire):
        got, _ = wire.exported()
        want = only(wire.replies, "outbound")
        assert only(got, "outbound") == want, "\n" + diff(want, only(got, "outbound"))

    def test_inbound_replies_match_the_wire(self, wire: Wire):
        got, _ = wire.exported()
        want = only(wire.replies, "inbound")
        assert only(got, "inbound") == want, "\n" + diff(want, only(got, "inbound"))

    def test_every_reply_counted_once(self, wire: Wire):
        got, _ = wire.exported()
        assert got == wire.replies, "\n" + diff(wire.replies, got)

    def test_deliveries_by_status(self, wire: Wire):
        _, got = wire.exported()
        assert got == wire.deliveries, "\n" + diff(wire.deliveries, got, DELIVERY_LABELS)

    def test_every_refusal_has_a_reason(self, wire: Wire):
        """smtp_reply_reasons_total counts each 4xx and 5xx reply once, under
        the reply's direction, class and service."""
        got = Counter({k: n for k, n in metric_by(wire.exposition, "smtp_reply_reasons_total", *REASON_TOTALS).items()
                       if n})
        want: Counter = Counter()
        for key, n in wire.replies.items():
            labels = dict(zip(LABELS, key, strict=True))
            if labels["class"] != "2xx":
                want[tuple(labels[name] for name in REASON_TOTALS)] += n
        assert got == want, "\n" + diff(want, got, REASON_TOTALS)

    def test_every_delivery_attempt_has_its_delay(self, wire: Wire):
        """One observation per delivery attempt the MTA logs a delay for,
        under its status and service, and none longer than the lab could
        have taken (an hour)."""
        text = wire.exposition
        counts = metric_by(text, "smtp_delivery_delay_seconds_count", *DELIVERY_LABELS)
        delayed = {(status, service): n for (status, service), n in wire.deliveries.items()
                   if n and (wire.delayed is None or status in wire.delayed)}
        assert {key: n for key, n in counts.items() if n} == delayed
        within_hour = metric_by(text, "smtp_delivery_delay_seconds_bucket", *DELIVERY_LABELS, "le")
        assert all(within_hour[status, service, "3600.0"] == n for (status, service), n in counts.items())

    def test_tls_connections_match_the_wire(self, wire: Wire):
        assert wire.tls  # the lab's clients or peer did start TLS
        got = Counter({k: n for k, n in metric_by(wire.exposition, "smtp_tls_connections_total", *TLS_LABELS).items()
                       if n})
        assert got == wire.tls, "\n" + diff(wire.tls, got, TLS_LABELS)


TLS_LABELS = ("direction", "protocol", "trust", "service")
# smtp_reply_reasons_total's labels a reply's key gives (not reason and remote).
REASON_TOTALS = ("direction", "class", "service")


def unrecognized(exposition: str) -> float:
    """smtp_exporter_lines_total{result="unrecognized"} of a --once output."""
    return metric_by(exposition, "smtp_exporter_lines_total", "result")[("unrecognized",)]


def skip_if(why_not: str | None) -> list:
    """A module's pytestmark: skip all of it when the lab cannot run here."""
    return [pytest.mark.skip(reason=why_not)] if why_not else []


def lab_fixture(run, name: str):
    """A module-scoped fixture running `run(out_dir)` (a lab's run) once; it
    skips when the lab's packages cannot be downloaded for lack of network."""

    @pytest.fixture(scope="module")
    def lab(tmp_path_factory):
        try:
            result = run(tmp_path_factory.mktemp(name))
        except PackagesUnavailable as e:
            pytest.skip(str(e))
        print(f"\n{name}: {result.seconds:.1f}s")
        return result

    return lab

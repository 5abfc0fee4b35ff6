"""The checks every real-MTA end-to-end module makes: what `python3 -m
exporter --once` counts over the lab's log must be, key by key, what crossed
the wire.

A module gets them by subclassing AgainstTheWire as a Test* class and giving
a fixture `wire` (a Wire: the logs and the counts expected of them); it
states only what differs between MTAs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import metric_by, run_once

from .debian import PackagesUnavailable
from .scenario import diff, exported


@dataclass(frozen=True)
class Wire:
    logs: tuple[Path, ...]  # read together by one --once
    replies: Counter  # expected smtp_replies_total by scenario.LABELS
    deliveries: Counter  # expected smtp_deliveries_total by status
    options: tuple[str, ...] = ()  # for --once, before the logs
    # The delivery statuses whose every attempt the MTA logs with its delay
    # (None: all of them); the others' delay histograms stay empty.
    delayed: tuple[str, ...] | None = None
    # expected smtp_tls_connections_total by TLS_LABELS: the handshakes the
    # lab's clients and peer made, as the MTA logs them
    tls: Counter = field(default_factory=Counter)

    def exported(self) -> tuple[Counter, Counter]:
        return exported(*self.logs, options=self.options)

    def exposition(self) -> str:
        result = run_once(*self.options, *map(str, self.logs))
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode()


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
        assert got == wire.deliveries

    def test_every_delivery_attempt_has_its_delay(self, wire: Wire):
        """One observation per delivery attempt the MTA logs a delay for, and
        none longer than the lab could have taken (an hour)."""
        text = wire.exposition()
        counts = metric_by(text, "smtp_delivery_delay_seconds_count", "status")
        delayed = wire.deliveries if wire.delayed is None else {s: wire.deliveries[s] for s in wire.delayed}
        assert {status: n for (status,), n in counts.items() if n} == {s: n for s, n in delayed.items() if n}
        within_hour = metric_by(text, "smtp_delivery_delay_seconds_bucket", "status", "le")
        assert all(within_hour[status, "3600.0"] == n for (status,), n in counts.items())

    def test_tls_connections_match_the_wire(self, wire: Wire):
        assert wire.tls  # the lab's clients or peer did start TLS
        got = metric_by(wire.exposition(), "smtp_tls_connections_total", *TLS_LABELS)
        assert {k: n for k, n in got.items() if n} == wire.tls


TLS_LABELS = ("direction", "protocol", "trust")


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

"""The queue probe in the real daemon, scraped over HTTP: a listing that hangs
never holds up /metrics, which keeps the last good values."""

from __future__ import annotations

import time

import pytest
from daemontest import Exporter
from queuedata import POSTQUEUE_J

from helpers import samples, wait_for

pytestmark = pytest.mark.slow  # the daemon runs as a process of its own

# A scrape takes about 5 ms here (15 ms on a loaded machine). While the probe
# hangs, 95 % of them must answer within the budget, and none may come near
# the 1 s timeout a scrape waiting for the probe would take.
SCRAPE_BUDGET = 0.050  # seconds
SCRAPE_CEILING = 0.5


def queue_samples(exposition: str) -> dict:
    return {key: value for key, value in samples(exposition).items() if key[0].startswith("smtp_queue")}


def scrape_for(exporter: Exporter, seconds: float) -> tuple[list[float], list[dict]]:
    """Scrape back to back for a while: each scrape's time (sorted), and its queue samples."""
    took, seen = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        body = exporter.scrape()
        took.append(time.monotonic() - started)
        seen.append(queue_samples(body))
        time.sleep(0.02)
    return sorted(took), seen


def p95(took: list[float]) -> float:
    return took[int(len(took) * 0.95)]


def test_a_hung_probe_never_delays_metrics(tmp_path):
    log, listing, hang = tmp_path / "mail.log", tmp_path / "listing", tmp_path / "hang"
    log.touch()
    listing.write_text(POSTQUEUE_J)
    lister = tmp_path / "postqueue"
    lister.write_text(f"#!/bin/sh\nif [ -e {hang} ]; then sleep 600; fi\ncat {listing}\n")
    lister.chmod(0o755)
    config = tmp_path / "config.yml"
    config.write_text(f"sources: [{{path: {log}}}]\n"
                      f"queue: {{mta: postfix, command: [{lister}], interval_seconds: 0.5, timeout_seconds: 1}}\n")
    exporter = Exporter(tmp_path, "--config", str(config))
    try:
        assert wait_for(lambda: queue_samples(exporter.scrape()).get(("smtp_queue_probe_success", ())) == 1), \
            exporter.errors()
        good = queue_samples(exporter.scrape())
        assert good[("smtp_queue_messages", (("queue", "deferred"),))] == 2
        assert good[("smtp_queue_messages", (("queue", "hold"),))] == 1

        before, _ = scrape_for(exporter, 2)  # the probe still works: this machine's scrape times now
        hang.touch()  # from the next run on, the listing hangs past its timeout
        took, seen = scrape_for(exporter, 4)  # several probe intervals and two timeouts
        failures = [now for now in seen if now[("smtp_queue_probe_success", ())] == 0]
        figures = (f"{len(took)} scrapes while the probe hung: p95 {p95(took) * 1000:.1f} ms, slowest "
                   f"{took[-1] * 1000:.1f} ms; before it hung: p95 {p95(before) * 1000:.1f} ms")
        print("\n" + figures)
        assert failures, "the hung probe never reported failure"
        seen_failure = failures[-1]
        assert p95(took) < SCRAPE_BUDGET and took[-1] < SCRAPE_CEILING, figures
        # The last good listing stays; only success (and duration) changed.
        kept = {k: v for k, v in seen_failure.items() if k[0].startswith(("smtp_queue_messages", "smtp_queue_size"))}
        assert kept == {k: v for k, v in good.items() if k[0].startswith(("smtp_queue_messages", "smtp_queue_size"))}
        assert seen_failure[("smtp_queue_probe_duration_seconds", ())] >= 1
    finally:
        status = exporter.stop()
    assert status == 0
    errors = exporter.errors()
    failures = [line for line in errors.splitlines() if "queue probe" in line and "failed" in line]
    assert len(failures) == 1 and "timed out after 1s" in failures[0], errors

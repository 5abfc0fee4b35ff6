"""A hostile log through the real CLI and the real daemon.

150,000 seeded Postfix-shaped lines whose replies, enhanced codes, relay
host names and reply texts are random and partly invalid (codes 600, 199,
5000; enhanced 5.999.9999, 9.1.1, 5.1.1.1), far more distinct label sets
than the series cap, plus a 4 MB line, lines past the 64 KiB limit, NUL
runs, invalid UTF-8 and binary junk (benchmarks/hostile_log_gen.py). The
generator knows from how it built each line what must be counted; both
`--once` and the daemon must count exactly that by direction and class,
keep the series bounded, and say what they cut and what was not UTF-8.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, metric_by, replies_by, run_once, samples
from daemontest import Exporter

from exporter.metrics import DEFAULT_MAX_REPLY_SERIES

sys.path.insert(0, str(REPO / "benchmarks"))
import hostile_log_gen  # a sibling directory, not a package

pytestmark = pytest.mark.slow

LINES = 150_000
SEED = 1


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, hostile_log_gen.Truth]:
    path = tmp_path_factory.mktemp("hostile") / "mail.log"
    truth = hostile_log_gen.generate(str(path), LINES, SEED)
    # The log must be able to overflow the cap, or the overflow path goes untested.
    assert len(truth.label_floor) > DEFAULT_MAX_REPLY_SERIES
    return path, truth


@pytest.fixture(scope="module")
def once_output(hostile) -> str:
    path, _ = hostile
    result = run_once(str(path))
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return result.stdout.decode()


@pytest.fixture(scope="module")
def daemon_output(hostile, tmp_path_factory) -> str:
    path, truth = hostile
    exporter = Exporter(tmp_path_factory.mktemp("daemon"), "--from-beginning", str(path))
    try:
        deadline = time.monotonic() + 60
        while True:
            exposition = exporter.scrape()
            if lines_read(exposition) >= truth.lines or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # A scrape reads the metrics one after another while the daemon may
        # be adding a block: this one can show a block's lines but not its
        # replies. Nothing is read after the last line, so the next is whole.
        exposition = exporter.scrape()
        assert exporter.proc.poll() is None, "the daemon died: " + exporter.errors()[-2000:]
    finally:
        code = exporter.stop()
    assert code == 0, exporter.errors()[-2000:]
    return exposition


def reply_series(exposition: str) -> list[tuple]:
    """The label sets of smtp_replies_total."""
    return [labels for (name, labels) in samples(exposition) if name == "smtp_replies_total"]


def lines_read(exposition: str) -> float:
    return sum(metric_by(exposition, "smtp_exporter_lines_total").values())


@pytest.fixture(params=["once", "daemon"])
def exposition(request) -> str:
    return request.getfixturevalue(f"{request.param}_output")


def test_every_line_is_read_once(exposition, hostile):
    _, truth = hostile
    assert lines_read(exposition) == truth.lines


def test_replies_by_direction_and_class_are_exact(exposition, hostile):
    _, truth = hostile
    assert dict(replies_by(exposition, "direction", "class")) == dict(truth.replies)


def test_deliveries_by_status_are_exact(exposition, hostile):
    _, truth = hostile
    got = {status: n for (status,), n in metric_by(exposition, "smtp_deliveries_total", "status").items() if n}
    assert got == dict(truth.deliveries)


def test_label_overflow_is_counted_and_the_series_stay_bounded(exposition):
    overflow = metric_by(exposition, "smtp_exporter_label_overflow_total")[()]
    assert overflow > 0
    series = reply_series(exposition)
    overflow_series = [s for s in series if dict(s)["code"] == "other"]
    assert all(dict(s)["enhanced"] == "other" for s in overflow_series)
    # The sets under the cap, plus at most one overflow set per direction,
    # class, stage and remote provider: a bound no log can push up.
    assert len(series) - len(overflow_series) <= DEFAULT_MAX_REPLY_SERIES
    assert len(overflow_series) <= 2 * 4 * 10 * 21


def test_reply_series_stay_under_the_cap(exposition):
    series = reply_series(exposition)
    assert len(series) <= DEFAULT_MAX_REPLY_SERIES


def test_cut_and_invalid_utf8_lines_are_counted(exposition, hostile):
    _, truth = hostile
    truncated = metric_by(exposition, "smtp_exporter_lines_truncated_total")[()]
    invalid = metric_by(exposition, "smtp_exporter_invalid_utf8_lines_total")[()]
    # Every one, whether or not a parser reads the line.
    assert truncated == truth.long_lines
    assert invalid == truth.invalid_utf8_lines

"""`smtp-reply-exporter backfill` without Prometheus: the OpenMetrics it writes
is valid (prometheus_client's strict parser: families and series not
interleaved, each series in time order), its last samples equal --once on
the same files, and every sample holds exactly the lines logged at or
before its time. Files come out of order, twice, as copies, with lines
without a time. The end-to-end test with promtool and Prometheus is
test_backfill_e2e.py."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from itertools import groupby
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from backfill_logs import (
    US,
    Logged,
    counts_by_step,
    counts_of,
    crosses_local_midnight,
    rotated_set,
    timeline,
    write_log,
)
from exporter.labels import REPLY_LABELS
from exporter.metrics import ExporterMetrics
from exporter.once import scan_files
from exporter.parsers import formats_for
from helpers import REPO

ZONE = ZoneInfo("Europe/Berlin")
STEP = 60
START = datetime(2026, 11, 27, 18, 0, tzinfo=ZONE)
# Where the steps play no part, coarse ones keep the output (and its strict parsing) small.
COARSE = ("--step", "10m")
LABELS = {"job": "smtp-reply-exporter", "instance": "mx1.example.net:10925"}
# Each test runs the backfill command on a generated log set: seconds each.
pytestmark = pytest.mark.slow


def backfill(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "exporter", "backfill", "--timezone", "Europe/Berlin",
               *(f"--label={k}={v}" for k, v in LABELS.items()), *map(str, args)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result


Series = dict[tuple[str, tuple], list[tuple[float, float]]]


def strict_families(text: str) -> Iterator:
    """The families, checked strictly by prometheus_client's OpenMetrics parser.
    Its check of a histogram keeps one point per series and group, so a
    histogram with many timestamps loses all but the first bucket of each
    later point: each point (every bucket, _count and _sum at one time) of a
    histogram is checked as a document of its own instead."""
    assert text.endswith("# EOF\n")
    families = re.split(r"(?m)^(?=# TYPE )", text[: -len("# EOF\n")])
    plain = "".join(f for f in families if not f.split("\n", 1)[0].endswith(" histogram"))
    yield from text_string_to_metric_families(plain + "# EOF\n")
    for family in families:
        head, *lines = family.rstrip("\n").split("\n")
        if not head.endswith(" histogram"):
            continue
        meta = [line for line in lines if line.startswith("#")]
        points = [line for line in lines if not line.startswith("#")]
        for _, point in groupby(points, key=lambda line: line.rsplit(" ", 1)[1]):
            yield from text_string_to_metric_families("\n".join([head, *meta, *point, "# EOF", ""]))


def read_series(text: str) -> Series:
    """{(sample name, label items without job/instance): [(time, value)]}, checked strictly by the parser."""
    out: Series = defaultdict(list)
    for family in strict_families(text):
        for s in family.samples:
            assert {k: s.labels[k] for k in LABELS} == LABELS
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k not in LABELS))
            out[s.name, key].append((float(s.timestamp), s.value))
    return out


def last_values(series: Series, name: str) -> dict[tuple, float]:
    return {key: points[-1][1] for (n, key), points in series.items() if n == name}


def once_totals(paths: list[Path], name: str) -> dict[tuple, float]:
    metrics = ExporterMetrics()
    scan_files([(str(p), formats_for("auto"), None) for p in paths], metrics.sink_for, 65536)
    return {tuple(sorted(s.labels.items())): s.value
            for family in metrics.registry.collect() for s in family.samples if s.name == name}


def reply_key(labels: tuple) -> tuple[str, ...]:
    d = dict(labels)
    return tuple(d[label] for label in REPLY_LABELS)


@pytest.fixture(scope="module")
def logged() -> list[Logged]:
    return timeline(START, 3000, mean_gap_seconds=40)


@pytest.fixture(scope="module")
def rotated(tmp_path_factory, logged) -> tuple[list[Path], list[Logged]]:
    """The log set, written once for the module: no test changes it."""
    return rotated_set(tmp_path_factory.mktemp("rotated"), logged, ZONE)


@pytest.fixture(scope="module")
def log_set(rotated) -> list[Path]:
    return rotated[0]


def test_the_log_set_is_what_the_tests_say(logged):
    lines = logged
    third = len(lines) // 3
    assert crosses_local_midnight(lines[:third], ZONE)  # the classic syslog file


def test_end_values_equal_once_key_by_key_whatever_order_the_files_come_in(log_set, tmp_path):
    out = tmp_path / "history.om"
    newest, middle, oldest = log_set[2], log_set[1], log_set[0]
    backfill("--output", out, *COARSE, middle, newest, oldest)
    series = read_series(out.read_text())
    for name in ("smtp_replies_total", "smtp_reply_reasons_total", "smtp_deliveries_total",
                 "smtp_tls_connections_total", "smtp_delivery_delay_seconds_bucket",
                 "smtp_delivery_delay_seconds_count", "smtp_delivery_delay_seconds_sum"):
        assert last_values(series, name) == pytest.approx(once_totals(log_set, name)), name
    assert last_values(series, "smtp_delivery_delay_seconds_count"), "the log set has delays"
    assert last_values(series, "smtp_tls_connections_total"), "the log set has TLS sessions"
    # The line counters, under the newest file's name (the one the live exporter follows).
    lines = last_values(series, "smtp_exporter_lines_total")
    assert sum(lines.values()) == 3000
    assert {dict(key)["source"] for key in lines} == {str(newest)}


def test_a_service_given_takes_every_series_that_has_the_label(log_set, tmp_path):
    out = tmp_path / "history.om"
    backfill("--output", out, *COARSE, "--service", "mx-in", *log_set)
    series = read_series(out.read_text())
    services = {dict(key).get("service") for _, key in series}
    assert services == {"mx-in", None}  # None: the series without the label (lines, info, ...)
    replies = last_values(series, "smtp_replies_total")
    assert sum(replies.values()) == sum(once_totals(log_set, "smtp_replies_total").values()) > 0


def test_every_sample_holds_the_lines_at_or_before_its_time(rotated, tmp_path):
    log_set, written = rotated
    out = tmp_path / "history.om"
    backfill("--output", out, *log_set)
    series = read_series(out.read_text())
    replies = {key: points for (name, key), points in series.items() if name == "smtp_replies_total"}
    assert len(replies) > 5
    expected = counts_by_step(written, STEP)
    last_step = max(expected)
    for key, points in replies.items():
        times = [int(t) for t, _ in points]
        assert times == list(range(times[0], last_step + 1, STEP)), "a sample every step, to the end"
        assert points[0][1] == 0 and points[1][1] > 0, "a 0 one step before the first count"
        values = [value for _, value in points]
        assert values == [expected[t].replies.get(reply_key(key), 0) if t in expected else 0 for t in times], key


def test_a_file_given_twice_or_copied_is_read_once(log_set, tmp_path):
    copy = tmp_path / "copy-of-mail.log.1.gz"
    copy.write_bytes(gzip.compress(log_set[1].read_bytes()))
    alias = tmp_path / "alias.log"
    alias.symlink_to(log_set[2])
    out = tmp_path / "history.om"
    result = backfill("--output", out, *COARSE, *log_set, log_set[0], copy, alias)
    assert "read once" in result.stderr
    assert "repeated lines skipped" in result.stderr
    series = read_series(out.read_text())
    assert last_values(series, "smtp_replies_total") == once_totals(log_set, "smtp_replies_total")


def test_a_file_repeating_the_end_of_the_one_before_is_read_from_after_it(tmp_path, logged):
    # mail.log.1 was copied while mail.log went on: the copy's first lines are mail.log.1's last.
    first = write_log(tmp_path / "mail.log.1", logged[:1000], "rfc3339", ZONE)
    second = write_log(tmp_path / "mail.log", logged[900:2000], "rfc3339", ZONE)
    out = tmp_path / "history.om"
    result = backfill("--output", out, *COARSE, second, first)
    assert "100 repeated lines skipped" in result.stderr
    expected = counts_of(logged[:2000]).replies
    got = last_values(read_series(out.read_text()), "smtp_replies_total")
    assert {reply_key(k): v for k, v in got.items()} == expected


def test_a_line_without_a_time_counts_at_the_time_of_the_line_before(tmp_path, logged):
    reply = next(i for i, line in enumerate(logged) if "status=sent" in line.body and i > 100)
    log = tmp_path / "mail.log"
    write_log(log, logged[:400], "classic", ZONE)
    text = log.read_text().splitlines(keepends=True)
    # The reply line without its stamp, right after a line a few steps later than its own.
    later = next(i for i, line in enumerate(logged) if line.t_us > logged[reply].t_us + 5 * STEP * US)
    text.insert(later + 1, logged[reply].body + "\n")
    log.write_text("".join(text))
    out = tmp_path / "history.om"
    result = backfill("--output", out, log)
    assert "1 lines without a readable time" in result.stderr
    series = read_series(out.read_text())
    untimed = series["smtp_exporter_backfill_untimed_lines_total", (("source", str(log)),)]
    step_of_line_before = -(-logged[later].t_us // (STEP * US)) * STEP
    assert (step_of_line_before - STEP, 0) in untimed and (step_of_line_before, 1) in untimed
    expected = counts_of(logged[:400])
    for key, n in counts_of([logged[reply]]).replies.items():
        expected.replies[key] += n
    got = last_values(series, "smtp_replies_total")
    assert {reply_key(k): v for k, v in got.items()} == expected.replies


def test_since_and_until_leave_out_the_lines_outside_and_the_last_sample_is_at_until(log_set, logged, tmp_path):
    since_us, until_us = logged[500].t_us // US * US, logged[2500].t_us // US * US + 30 * US
    out = tmp_path / "history.om"
    backfill("--output", out, *COARSE, "--since", f"@{since_us // US}", "--until", f"@{until_us // US}", *log_set)
    series = read_series(out.read_text())
    inside = [line for line in logged if since_us <= line.t_us < until_us]
    got = last_values(series, "smtp_replies_total")
    assert {reply_key(k): v for k, v in got.items()} == counts_of(inside).replies
    assert {points[-1][0] for points in series.values()} == {until_us / US}


def test_samples_are_a_step_apart_at_multiples_of_the_step(log_set, tmp_path):
    out = tmp_path / "history.om"
    backfill("--output", out, "--step", "5m", *log_set)
    for points in read_series(out.read_text()).values():
        times = [t for t, _ in points]
        assert all(t % 300 == 0 for t in times)
        assert all(b - a == 300 for a, b in zip(times, times[1:], strict=False))


def test_journal_export_is_read_with_its_own_times(tmp_path, logged):
    import json
    lines = logged[:600]
    journal = tmp_path / "postfix.json"
    with journal.open("w") as f:
        for line in lines:
            host, rest = line.body.split(" ", 1)
            ident, message = rest.split(": ", 1)
            name, pid = ident.rstrip("]").split("[")
            f.write(json.dumps({"__REALTIME_TIMESTAMP": str(line.t_us), "_HOSTNAME": host,
                                "SYSLOG_IDENTIFIER": name, "SYSLOG_PID": pid, "MESSAGE": message}) + "\n")
    out = tmp_path / "history.om"
    backfill("--output", out, *COARSE, journal)
    got = last_values(read_series(out.read_text()), "smtp_replies_total")
    assert {reply_key(k): v for k, v in got.items()} == counts_of(lines).replies


def test_bad_options_are_named(tmp_path, log_set):
    for args, word in ((["--step", "1.5m"], "1.5m"), (["--label", "2x=y"], "2x=y"),
                       (["--timezone", "Mars/Olympus"], "Mars/Olympus"), (["--since", "soon"], "soon"),
                       (["--service", "mx in"], "--service: 'mx in' is not a service name")):
        result = backfill(*args, *log_set, check=False)
        assert result.returncode == 2 and word in result.stderr, result.stderr


def test_tsdb_without_promtool_says_so(tmp_path, log_set, monkeypatch):
    if shutil.which("promtool"):
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = subprocess.run([sys.executable, "-m", "exporter", "backfill", "--tsdb", str(tmp_path / "data"),
                             "--quiet", *map(str, log_set)], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "promtool" in result.stderr


def test_output_is_the_same_read_back_in_many_passes_and_written_in_pieces(monkeypatch, logged):
    # A long history is read back from the spill file in groups of series and
    # each series written in pieces; with tiny groups and pieces, the text is the same.
    import io

    from exporter import history
    from exporter.backfill import _StepSink
    from exporter.scanner import LineScanner, Tally

    def openmetrics() -> str:
        h = history.History("mail.log")
        sink = _StepSink()
        scanner = LineScanner(formats_for("auto"), sink)
        for step, line in enumerate(logged[:600], start=1000):  # a line a step
            sink.tally = Tally()
            scanner.feed(f"{line.body}\n".encode())
            h.commit(step, sink.tally)
        out = io.StringIO()
        h.write_openmetrics(out, STEP, h.last + 5, None, LABELS)
        h.close()
        return out.getvalue()

    whole = openmetrics()
    monkeypatch.setattr(history, "PASS_RECORDS", 7)
    monkeypatch.setattr(history, "_WRITE_LINES", 5)
    assert openmetrics() == whole
    assert len(read_series(whole)) > 10


def test_the_benchmark_runs_and_prints_its_figures(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_backfill.py"), "--lines", "5000",
                             "--tmpdir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("peak RSS") == 2 and "samples of" in result.stdout, result.stdout
    assert "warning" not in result.stdout  # the log read in the zone it was written in

"""Backfill with the real tools: a rotated log set (mail.log.2.gz in classic
syslog crossing midnight, mail.log.1 in RFC 3339, the live mail.log as
Postfix's maillog_file writes it) goes through `smtp-reply-exporter backfill
--tsdb --rules`, which runs promtool for the exporter's series and then for
the shipped recording rules, level by level. A real Prometheus then serves
that data directory, and its HTTP API must show:

- smtp_replies_total (and the reasons and deliveries) at the end of the
  range equal to --once on the same files, key by key;
- hourly increase() of the busiest keys equal to the count per hour worked
  out here from the log lines' own times;
- data for every dashboard query over the range, but those about the
  exporter process itself and of the queue probe, which no log holds (up,
  CPU, memory, last read; the queue);
- every recording rule's backfilled series equal to its expression
  evaluated over the backfilled series.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from backfill_logs import US, Logged, counts_of, crosses_local_midnight, rotated_set, timeline
from dashboards import fill_variables, iter_targets, load_dashboards
from exporter.labels import REPLY_LABELS
from exporter.rule_backfill import rule_levels
from helpers import PROMTOOL, REPO, run_once, samples
from prometheus_server import PROMETHEUS, PrometheusServer

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None,
    reason="prometheus and promtool not found on PATH (Debian package `prometheus`): end-to-end test skipped")]

ZONE = ZoneInfo("Europe/Berlin")
JOB, INSTANCE = "smtp-reply-exporter", "mx1.example.net:10925"
STEP = 60
HOUR = 3600
# Over a day, so that the baselines (over the day before yesterday) have
# values at the end.
START = datetime(2026, 11, 26, 20, 0, tzinfo=ZONE)
LINES, MEAN_GAP_SECONDS = 2500, 45
RULE_FILES = sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))
# Panels about the exporter process, and the queue probe's (the queue as it
# is now, from the MTA, not the log): no log holds them.
NOT_IN_LOGS = {"Exporter up", "Time since last log data", "Exporter CPU", "Exporter memory",
               "Queue by name", "Oldest message age by queue", "Queue probe"}


@dataclass
class Backfilled:
    prom: PrometheusServer
    paths: list[Path]
    written: list[Logged]  # every line, with the time its stamp shows
    start: float  # the first sample
    end: float  # the last sample


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory) -> Backfilled:
    tmp = tmp_path_factory.mktemp("backfill-e2e")
    logs = tmp / "logs"
    logs.mkdir()
    paths, written = rotated_set(logs, timeline(START, LINES, MEAN_GAP_SECONDS), ZONE)
    assert crosses_local_midnight(written[:LINES // 3], ZONE)
    data = tmp / "data"
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "backfill", "--timezone", "Europe/Berlin",
         f"--label=job={JOB}", f"--label=instance={INSTANCE}", "--output", str(tmp / "history.om"),
         "--tsdb", str(data), *(f"--rules={path}" for path in RULE_FILES), *map(str, reversed(paths))],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    step_us = STEP * US
    start = (-(-written[0].t_us // step_us) - 1) * STEP
    end = -(-written[-1].t_us // step_us) * STEP
    prom = PrometheusServer(tmp, job=JOB, targets=[], data_dir=data)
    try:
        yield Backfilled(prom, paths, written, start, end)
    finally:
        prom.stop()


def without_empty(labels: dict[str, str], drop: tuple[str, ...] = ()) -> tuple:
    """Label items as Prometheus stores them: an empty value is no label."""
    return tuple(sorted((k, v) for k, v in labels.items() if v and k not in drop and k != "__name__"))


def by_labels(result: list[dict], drop: tuple[str, ...] = ("job", "instance")) -> dict[tuple, float]:
    return {without_empty(r["metric"], drop): float(r["value"][1]) for r in result}


@pytest.mark.parametrize("name", ["smtp_replies_total", "smtp_reply_reasons_total", "smtp_deliveries_total"])
def test_end_of_range_equals_once_key_by_key(backfilled, name):
    once = run_once(*map(str, backfilled.paths))
    assert once.returncode == 0, once.stderr
    expected = {without_empty(dict(labels)): value
                for (n, labels), value in samples(once.stdout.decode()).items() if n == name}
    got = by_labels(backfilled.prom.query(f'{name}{{job="{JOB}", instance="{INSTANCE}"}}', at=backfilled.end))
    assert got == expected
    assert len(got) >= 3


def test_hourly_increase_equals_the_count_per_hour_of_the_lines_own_times(backfilled):
    written = backfilled.written
    busiest = Counter(counts_of(written).replies).most_common()
    chosen = [key for key, _ in busiest[:3]] + [next(key for key, _ in busiest if key[2] == "5xx")]
    first_hour = -(-backfilled.start // HOUR) * HOUR + HOUR
    hours = range(int(first_hour), int(backfilled.end) + 1, HOUR)
    for key in chosen:
        selector = ", ".join(f'{label}="{value}"' for label, value in zip(REPLY_LABELS, key, strict=True))
        [series] = backfilled.prom.query_range(f"increase(smtp_replies_total{{{selector}}}[1h])",
                                               hours[0], hours[-1], "1h")
        got = {int(t): float(v) for t, v in series["values"]}
        assert set(got) <= set(hours) and len(got) > len(hours) // 2, key
        expected = {
            t: counts_of(line for line in written if (t - HOUR) * US < line.t_us <= t * US).replies.get(key, 0)
            for t in got}
        assert got == pytest.approx(expected), key
        assert sum(expected.values()) > 0


def test_every_dashboard_query_has_data_over_the_range(backfilled):
    span = int(backfilled.end - backfilled.start)
    empty, errors = set(), {}
    for name, dashboard in load_dashboards().items():
        for query in iter_targets(dashboard):
            expr = fill_variables(query.expr, job=[JOB], instance=[INSTANCE], rate_interval="5m",
                                  range_=f"{span}s", interval="5m")
            try:
                if query.instant:
                    values = [r["value"] for r in backfilled.prom.query(expr, at=backfilled.end)]
                else:
                    values = [v for s in backfilled.prom.query_range(expr, backfilled.start, backfilled.end, "5m")
                              for v in s["values"]]
            except Exception as err:  # noqa: BLE001 - every failing query is listed
                errors[name, query.panel_title, query.ref_id] = str(err)
                continue
            if not values:
                empty.add(query.panel_title)
    assert errors == {}
    assert empty == NOT_IN_LOGS


def test_the_dashboards_variables_find_the_backfilled_job_and_instance(backfilled):
    found = backfilled.prom.api("series", **{"match[]": "smtp_exporter_build_info", "start": backfilled.start,
                                             "end": backfilled.end})
    assert {(s["job"], s["instance"]) for s in found} == {(JOB, INSTANCE)}


def recording_rules() -> list[dict]:
    return [rule for level in rule_levels(map(str, RULE_FILES)) for rule in level]


def test_recorded_rules_equal_their_expressions_over_the_backfilled_series(backfilled):
    # Three times in the range; each rule is compared where its last sample
    # before them lies (a group is evaluated at an offset of its own in the step).
    times = [backfilled.start + STEP * k for k in (120, (backfilled.end - backfilled.start) // STEP // 2)]
    times.append(backfilled.end - STEP)
    differ, empty = {}, []
    for rule in recording_rules():
        nonempty = False
        for when in times:
            # A record name may have several rules, told apart by their labels (the thresholds').
            matchers = ", ".join(f'{k}="{v}"' for k, v in rule.get("labels", {}).items())
            selector = f"{rule['record']}{{{matchers}}}"
            stamps = {float(r["value"][1]) for r in backfilled.prom.query(f"timestamp({selector})", at=when)}
            if not stamps:
                continue
            [t] = stamps
            evaluated = {
                tuple(sorted({**dict(labels), **rule.get("labels", {})}.items())): value
                for labels, value in by_labels(backfilled.prom.query(rule["expr"], at=t), drop=()).items()}
            # The selector also matches what other rules record under the same name with
            # more labels (a threshold's per-service values): those are theirs to check.
            label_names = {tuple(name for name, _ in key) for key in evaluated}
            recorded = {key: value for key, value in by_labels(backfilled.prom.query(selector, at=t), drop=()).items()
                        if not evaluated or tuple(name for name, _ in key) in label_names}
            nonempty |= bool(recorded)
            if recorded != pytest.approx(evaluated):
                differ[rule["record"], t] = (recorded, evaluated)
        if not nonempty:
            empty.append(rule["record"])
    assert differ == {}
    assert empty == []


def test_the_rule_files_hold_the_rules_the_test_checks():
    names = {rule["record"] for rule in recording_rules()}
    in_files = {rule["record"] for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
                for rule in group["rules"] if "record" in rule}
    assert names == in_files and len(names) > 40

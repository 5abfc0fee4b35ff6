"""The exporter daemon scraped by a real Prometheus that loads the shipped
rules (a test copy with a short `for:` and short windows) and answers every
query of the provisioned Grafana dashboards.

One run, shared by the tests of this module: the daemon follows an empty
mail log; Prometheus scrapes it every second and evaluates the rules every
second. A feeder appends Postfix lines taken from exporter/demo/postfix.log
(written by a real Postfix; some outbound ones with the lab relay's host
changed to Gmail's, so that there are two remote providers): first a quiet
baseline of delivered mail (2xx),
long enough for SmtpReply5xxRatioHigh to have seen its whole window and its
volume guard met, then a burst of bounces (5xx), deferrals (4xx) and inbound
rejects mixed into the deliveries, until the alert fires.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections import Counter
from itertools import chain, zip_longest
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from dashboards import fill_variables, iter_targets, iter_variable_queries, label_values_selector, load_dashboards
from exporter.labels import Counts
from exporter.parsers import postfix
from exporter.providers import OTHER
from exporter.replies import INBOUND, OUTBOUND, Delivery, Reply
from helpers import REPO, count_postfix_lines
from prometheus_server import PROMETHEUS, PrometheusError, PrometheusServer
from daemontest import Exporter
from queuedata import POSTQUEUE_J

sys.path.insert(0, str(REPO / "deploy" / "prometheus"))
from rules_for_tests import write_test_rules  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus not found on PATH (Debian package `prometheus`): end-to-end test skipped"
)]

DEMO_LOG = REPO / "exporter" / "demo" / "postfix.log"
JOB = "smtp-reply-exporter"  # the job name SmtpReplyExporterDown/Absent select
ALERT = "SmtpReply5xxRatioHigh"
ALERT_FOR_SECONDS = 3
WINDOW_SECONDS = 10
WINDOWS = {"5m": f"{WINDOW_SECONDS}s"}  # the alert's ratio and volume-guard window
SCRAPE_SECONDS = 1
TICK_SECONDS = 0.25
# Lines appended per tick. Baseline: 12 outbound replies a second, all 2xx,
# far above the default volume guard of 4 replies a minute. Burst: 2 of 6
# outbound replies are 5xx (33 %, the default threshold is 10 %), one of
# them from Gmail.
BASELINE_TICK = {"sent": 2, "google_sent": 1, "noise": 3}
BURST_TICK = {"sent": 2, "google_sent": 1, "bounced": 1, "google_bounced": 1, "deferred": 1, "inbound": 1,
              "tls": 1, "noise": 3}
# The demo log's relay (the lab's peer on loopback, remote "other") and the
# host put in its place in the google_* kinds.
LAB_RELAY = "127.0.0.1[127.0.0.1]"
GOOGLE_RELAY = "gmail-smtp-in.l.google.com[142.250.102.27]"
GOOGLE = "google"
# After the alert's inputs first show a full window of baseline traffic, keep
# the baseline going this long: `for:` plus a few evaluations, time enough
# for a wrong alert to become pending and firing.
BASELINE_HOLD_SECONDS = 6
SETTLE_TIMEOUT = 20
FIRE_TIMEOUT = 25

# The overview narrowed to one smtpd service of the demo log, which only
# rejects (Postfix logs no inbound 250): its outbound, TLS and provider
# panels have nothing to show.
STRICT = "postfix/strict"
# A drill-down selection nothing matches: Postfix does not log the 250 its
# smtpd sends to clients (only rejects), so inbound 250 never shows up.
UNSEEN_SELECTION = {"direction": [INBOUND], "code": ["250"]}
# Panels that legitimately show nothing, by (dashboard, selection).
EXPECTED_EMPTY = {
    ("smtp-reply-overview.json", "strict"): {
        title: f"{STRICT} sends no mail out and makes no TLS connections: nothing outbound to show"
        for title in (
            "Outbound 5xx ratio",
            "Outbound 4xx ratio",
            "Outbound failures (4xx and 5xx) by provider",
            "Outbound 5xx ratio by provider",
            "Outbound replies by class",
            "Share of outbound delivery attempts with TLS",
            "TLS connections by direction and protocol",
            # A service's delivery series come with its first delivery attempt.
            "Deliveries by status",
            "Deliveries in range by status",
            "Delivery delay p50 and p95 by status",
        )
    },
    ("smtp-reply-drilldown.json", "unseen"): {
        title: "no reply matches the selection (inbound 250): the panel shows its 'none yet' placeholder or no rows"
        for title in (
            "Selected replies in range by stage",
            "Selected replies by stage",
            "Selected replies by direction",
            "Selected replies by code and enhanced code",
            "Selected replies by remote provider",
            "Selected reply codes",
            "Selected enhanced status codes",
        )
    },
}
PLACEHOLDER = "none yet"  # label value of the dashboards' "no replies yet" series


def classify(line: str) -> str | None:
    """Which kind of feed line this is, by the exporter's own Postfix parser."""
    events = postfix.parse(line)
    if events is None:
        return None
    if not events:
        return "noise"
    replies = [e for e in events if isinstance(e, Reply)]
    deliveries = {e.status for e in events if isinstance(e, Delivery)}
    if len(replies) != 1:
        return None
    reply = replies[0]
    if reply.direction == INBOUND:
        return "inbound"
    kinds = {("2xx", "sent"): "sent", ("4xx", "deferred"): "deferred", ("5xx", "bounced"): "bounced"}
    return kinds.get((reply.reply_class, next(iter(deliveries), "")))


def demo_lines() -> dict[str, list[str]]:
    """The demo log's lines by kind (sent, deferred, bounced, inbound, noise),
    and google_sent and google_bounced: the SMTP ones of sent and bounced
    with the relay host changed to Gmail's."""
    out: dict[str, list[str]] = {}
    for line in DEMO_LOG.read_text().splitlines():
        kind = classify(line)
        if kind:
            out.setdefault(kind, []).append(line)
    # Each smtpd service's rejects early in the cycle (port 25's postfix and
    # postfix/strict alternate), so that the burst feeds every one of them.
    by_service: dict[str, list[str]] = {}
    for line in out["inbound"]:
        by_service.setdefault(postfix.take(line)[1], []).append(line)
    out["inbound"] = [line for line in chain(*zip_longest(*by_service.values())) if line is not None]
    for kind in ("sent", "bounced"):
        out[f"google_{kind}"] = [line.replace(LAB_RELAY, GOOGLE_RELAY) for line in out[kind]
                                 if " postfix/smtp[" in line and LAB_RELAY in line]
    # The lab's Postfix speaks no TLS: its smtp client's line for a TLS
    # connection to the same relay, as Postfix writes it.
    out["tls"] = [line.split(": ", 1)[0] + f": Verified TLS connection established to {GOOGLE_RELAY}:25: "
                  "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" for line in out["google_sent"]]
    return out


class Feeder:
    """Appends demo lines to the followed log, cycling through each kind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = demo_lines()
        self.next = Counter()
        self.fed: list[str] = []

    def tick(self, mix: dict[str, int]) -> None:
        batch = []
        for kind, n in mix.items():
            pool = self.lines[kind]
            for _ in range(n):
                batch.append(pool[self.next[kind] % len(pool)])
                self.next[kind] += 1
        with open(self.path, "a") as f:
            f.write("".join(line + "\n" for line in batch))
        self.fed.extend(batch)


@dataclass
class Run:
    prom: PrometheusServer
    instance: str
    rule_files: list[Path]
    start: float  # first line fed
    burst_start: float = math.nan
    fired_at: float = math.nan  # first seen firing in /api/v1/alerts
    end: float = math.nan
    baseline_alerts: list[dict] = field(default_factory=list)  # ALERT seen in the baseline
    baseline_inputs: dict = field(default_factory=dict)  # the alert's inputs at the baseline's end
    firing: list[dict] = field(default_factory=list)
    fed: Counts = field(default_factory=Counts)  # the label sets of every line fed, as the exporter counts them
    seen_code: tuple[str, str, str] = ("", "", "")  # most fed outbound 5xx not from "other": (remote, code, enhanced)


def scalar(prom: PrometheusServer, expr: str) -> float | None:
    result = prom.query(expr)
    return float(result[0]["value"][1]) if result else None


def alert_now(prom: PrometheusServer) -> list[dict]:
    return [a for a in prom.alerts() if a["labels"].get("alertname") == ALERT]


def alert_inputs(prom: PrometheusServer, instance: str) -> dict[str, float | None]:
    """What SmtpReply5xxRatioHigh compares, for outbound replies: the 5xx
    ratio, the replies a minute and the volume guard (None when absent)."""
    target = f'job="{JOB}", instance="{instance}"'
    return {
        "ratio": scalar(prom, 'instance_direction_service_class:smtp_replies:ratio_rate5m'
                              f'{{{target}, direction="outbound", class="5xx"}}'),
        "per_minute": scalar(prom, 'instance_direction_service:smtp_replies:rate5m'
                                   f'{{{target}, direction="outbound"}} * 60'),
        "guard": scalar(prom, f"instance:smtp_threshold_reply_min_per_minute:effective{{{target}}}"),
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prometheus-e2e")
    rule_files = write_test_rules(tmp / "rules", for_={ALERT: f"{ALERT_FOR_SECONDS}s"}, windows=WINDOWS, interval="1s")
    log = tmp / "mail.log"
    log.touch()
    # The queue probe lists a fixed postqueue -j listing, for the queue panels.
    listing = tmp / "postqueue.json"
    listing.write_text(POSTQUEUE_J)
    config = tmp / "config.yml"
    config.write_text(f"queue: {{mta: postfix, command: [cat, {listing}], interval_seconds: 1}}\n")
    exporter = Exporter(tmp, "--config", str(config), "--state-file", str(tmp / "state.json"), str(log))
    instance = f"127.0.0.1:{exporter.port}"
    prom = None
    try:
        prom = PrometheusServer(tmp, job=JOB, targets=[instance], rule_files=rule_files,
                                scrape_interval=f"{SCRAPE_SECONDS}s", evaluation_interval="1s")
        up = f'up{{job="{JOB}", instance="{instance}"}}'
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while scalar(prom, up) != 1:
            assert time.monotonic() < deadline, "Prometheus never scraped the exporter:\n" + prom.log_text()
            time.sleep(0.2)

        feeder = Feeder(log)
        result = Run(prom=prom, instance=instance, rule_files=rule_files, start=time.time())

        # Quiet baseline: 2xx only, until the alert's window holds nothing but
        # baseline and its inputs are there (ratio present, volume guard met),
        # then for BASELINE_HOLD_SECONDS more.
        settled_at = None
        deadline = time.monotonic() + SETTLE_TIMEOUT + BASELINE_HOLD_SECONDS
        while settled_at is None or time.monotonic() < settled_at + BASELINE_HOLD_SECONDS:
            assert time.monotonic() < deadline, "the baseline never filled the alert's window and volume guard"
            feeder.tick(BASELINE_TICK)
            result.baseline_alerts += alert_now(prom)
            if settled_at is None and time.time() - result.start > WINDOW_SECONDS + SCRAPE_SECONDS:
                inputs = alert_inputs(prom, instance)
                if None not in inputs.values() and inputs["per_minute"] >= inputs["guard"]:
                    settled_at = time.monotonic()
            time.sleep(TICK_SECONDS)
        result.baseline_inputs = alert_inputs(prom, instance)

        # The burst, until the alert fires.
        result.burst_start = time.time()
        deadline = time.monotonic() + FIRE_TIMEOUT
        while time.monotonic() < deadline:
            feeder.tick(BURST_TICK)
            result.firing = [a for a in alert_now(prom) if a["state"] == "firing"]
            # Outbound: a service that only rejects (postfix/strict) may fire inbound first.
            if any(a["labels"]["direction"] == OUTBOUND for a in result.firing):
                result.fired_at = time.time()
                break
            time.sleep(TICK_SECONDS)
        # A little more burst, so the last range-query points are still busy.
        for _ in range(int(2 / TICK_SECONDS)):
            feeder.tick(BURST_TICK)
            time.sleep(TICK_SECONDS)
        time.sleep(2 * SCRAPE_SECONDS)  # the last lines scraped
        result.end = time.time()

        count_postfix_lines(feeder.fed, result.fed)
        bounced = Counter()
        for (direction, code, reply_class, enhanced, _stage, remote, _service), n in result.fed.replies.items():
            if direction == OUTBOUND and reply_class == "5xx" and enhanced and remote != OTHER:
                bounced[remote, code, enhanced] += n
        result.seen_code = bounced.most_common(1)[0][0]
        yield result
    finally:
        if prom is not None:
            prom.stop()
        exporter.stop(signal.SIGTERM)


def test_quiet_baseline_does_not_fire(run):
    inputs = run.baseline_inputs
    # The silence means something only if the alert had its inputs: a 5xx
    # ratio of exactly 0 (not absent) with the volume guard met.
    assert inputs["ratio"] == 0, inputs
    assert inputs["per_minute"] >= inputs["guard"] > 0, inputs
    assert run.baseline_alerts == []
    # Prometheus' own record: no ALERTS sample, pending or firing, before the burst.
    before = run.prom.query_range(f'ALERTS{{alertname="{ALERT}"}}', run.start, run.burst_start, "1s")
    assert before == []


def test_5xx_burst_fires_the_alert_in_bounded_time(run):
    assert run.firing, f"{ALERT} did not fire within {FIRE_TIMEOUT}s of the burst:\n" + run.prom.log_text()[-3000:]
    outbound = [a for a in run.firing if a["labels"]["direction"] == OUTBOUND]
    assert outbound, run.firing
    alert = outbound[0]
    assert alert["labels"]["job"] == JOB and alert["labels"]["instance"] == run.instance
    assert alert["labels"]["severity"] == "critical"
    assert float(alert["value"]) > 0.10  # the shipped outbound default
    assert run.instance in alert["annotations"]["summary"]
    # Per service: the outbound replies are the smtp client's, of service postfix.
    assert alert["labels"]["service"] == "postfix" and "of postfix" in alert["annotations"]["summary"]
    # A 40 % share crosses the 10 % threshold within a few seconds of the
    # burst, long before a whole window of it has passed; then `for:`.
    assert run.fired_at - run.burst_start < WINDOW_SECONDS + ALERT_FOR_SECONDS


def test_every_rule_loads_and_evaluates_without_error(run):
    groups = run.prom.api("rules")["groups"]
    written = {g["name"] for f in run.rule_files for g in yaml.safe_load(f.read_text())["groups"]}
    assert {g["name"] for g in groups} == written
    bad = [(g["name"], r["name"], r["health"], r.get("lastError")) for g in groups for r in g["rules"]
           if r["health"] != "ok"]
    assert bad == []


def selections(run: Run) -> dict[tuple[str, str], dict]:
    """{(dashboard file, selection name): variable values} to run queries with."""
    remote, code, enhanced = run.seen_code
    scrape = {"job": [JOB], "instance": [run.instance]}
    return {
        ("smtp-reply-overview.json", "all"): scrape,
        ("smtp-reply-overview.json", "strict"): {**scrape, "service": [STRICT]},
        ("smtp-reply-drilldown.json", "all"): scrape,
        ("smtp-reply-drilldown.json", "seen"): {
            **scrape, "direction": [OUTBOUND], "remote": [remote], "code": [code], "enhanced": [enhanced]},
        ("smtp-reply-drilldown.json", "unseen"): {**scrape, **UNSEEN_SELECTION},
    }


def run_target(run: Run, query, variables: dict) -> list[tuple[dict, list[float]]]:
    """[(labels, values)] of one panel query, as Grafana would run it over the
    whole test (range queries: the points from the burst on)."""
    step = SCRAPE_SECONDS
    # Grafana's $__rate_interval: max($__interval + scrape interval, 4 * scrape interval).
    rate_interval = f"{max(step + SCRAPE_SECONDS, 4 * SCRAPE_SECONDS)}s"
    expr = fill_variables(query.expr, rate_interval=rate_interval,
                          range_=f"{math.ceil(run.end - run.start)}s", interval=f"{step}s", **variables)
    if query.instant:
        return [(s["metric"], [float(s["value"][1])]) for s in run.prom.query(expr, at=run.end)]
    series = run.prom.query_range(expr, run.start, run.end, f"{step}s")
    return [(s["metric"], [float(v) for t, v in s["values"] if t >= run.burst_start]) for s in series]


def has_data(series: list[tuple[dict, list[float]]]) -> bool:
    return any(values and PLACEHOLDER not in labels.values() for labels, values in series)


class DashboardResults(NamedTuple):
    panels: dict[tuple[str, str], dict[str, list]]  # {(dashboard, selection): {panel title: [(labels, values)]}}
    errors: dict[tuple[str, str, str, str], str]  # {(dashboard, selection, panel title, ref id): error}


@pytest.fixture(scope="module")
def dashboard_results(run) -> DashboardResults:
    """Every panel query of every selection; the targets of a panel merged."""
    dashboards = load_dashboards()
    out = DashboardResults({}, {})
    for (name, selection), variables in selections(run).items():
        panels = out.panels[name, selection] = {}
        for query in iter_targets(dashboards[name]):
            series = panels.setdefault(query.panel_title, [])
            try:
                series.extend(run_target(run, query, variables))
            except PrometheusError as e:
                out.errors[name, selection, query.panel_title, query.ref_id] = str(e)
    return out


def test_selections_cover_every_provisioned_dashboard(run):
    assert {name for name, _ in selections(run)} == set(load_dashboards())


def test_every_dashboard_query_runs(dashboard_results):
    assert dashboard_results.errors == {}


def test_panels_have_data_after_the_burst(dashboard_results):
    empty = {key: {title for title, series in panels.items() if not has_data(series)}
             for key, panels in dashboard_results.panels.items()}
    assert empty == {key: set(EXPECTED_EMPTY.get(key, {})) for key in dashboard_results.panels}


def test_unseen_selection_shows_only_zeros(dashboard_results):
    panels = dashboard_results.panels["smtp-reply-drilldown.json", "unseen"]
    nonzero = {title: series for title, series in panels.items()
               if any(v != 0 for _, values in series for v in values)}
    assert nonzero == {}


def values_by(series, label: str) -> dict[str, float]:
    """{value of label: the series' largest value}."""
    return {labels.get(label, ""): max(values) for labels, values in series if values}


def positive(series, label: str) -> set[str]:
    """Values of label whose series rose above 0."""
    return {value for value, peak in values_by(series, label).items() if peak > 0}


def test_overview_panels_show_the_burst(run, dashboard_results):
    panels = dashboard_results.panels["smtp-reply-overview.json", "all"]
    assert values_by(panels["Exporter up"], "instance") == {run.instance: 1}
    assert values_by(panels["Replies in range"], "")[""] > 0
    assert values_by(panels["5xx ratio in range"], "direction")[OUTBOUND] > 0
    assert values_by(panels["Outbound 5xx ratio"], "instance")[run.instance] > 0.10
    assert {"2xx", "4xx", "5xx"} <= positive(panels["Reply rate by class"], "class")
    assert {"2xx", "4xx", "5xx"} <= positive(panels["Outbound replies by class"], "class")
    assert {"4xx", "5xx"} <= positive(panels["Inbound replies by class"], "class")
    assert {"sent", "deferred", "bounced"} <= positive(panels["Deliveries in range by status"], "status")
    assert {"matched", "ignored"} <= positive(panels["Log lines read by result"], "result")
    # The demo log's deliveries waited a little: a delay is estimated in the
    # buckets, per status; no refused AUTH was fed.
    assert {"sent", "deferred", "bounced"} <= positive(panels["Delivery delay p50 and p95 by status"], "status")
    assert set(values_by(panels["Refused SMTP AUTH attempts a minute"], "instance").values()) == {0}
    assert positive(panels["TLS connections by direction and protocol"], "protocol") == {"TLSv1.3"}
    assert 0 < max(values_by(panels["Share of outbound delivery attempts with TLS"], "instance").values()) <= 1
    # Whole, well-formed lines appended to one file: nothing for these to count.
    for title in ("Unrecognized lines in range", "Read errors in range", "Rotations and truncations in range",
                  "Malformed lines in range", "Series cap overflows in range"):
        assert [values for _, values in panels[title]] == [[0.0]] * len(panels[title]), title
    # Per provider: Gmail's bounces stand out from the lab relay's ("other").
    assert {GOOGLE, OTHER} <= positive(panels["Outbound failures (4xx and 5xx) by provider"], "remote")
    ratios = values_by(panels["Outbound 5xx ratio by provider"], "remote")
    assert set(ratios) == {GOOGLE, OTHER} and ratios[GOOGLE] > 0.10, ratios
    assert {INBOUND, OUTBOUND} <= positive(panels["Failure reasons by direction"], "direction")
    # Port 25 and postfix/strict rejected clients, each under its service.
    inbound_services = {key[-1] for key in run.fed.replies if key[0] == INBOUND}
    assert inbound_services == {"postfix", STRICT}
    assert positive(panels["Inbound replies by service and class"], "service") == inbound_services
    assert set(values_by(panels["Inbound 5xx ratio by service"], "service")) == inbound_services
    # A row for every reason label set fed (0 for one seen once: increase() misses a series' first count).
    rows = {(labels["direction"], labels["class"], labels["reason"], labels.get("remote", ""))
            for labels, _ in panels["Failure reasons in range"]}
    fed = {key[:-1] for key in run.fed.reasons}  # summed over the services
    assert rows == fed, rows ^ fed
    assert any(remote == GOOGLE for _, _, _, remote in rows)
    _, code, _ = run.seen_code
    top = {(labels["direction"], labels.get("code", "")): labels for labels, _ in panels["Top reply codes"]}
    assert (OUTBOUND, code) in top and top[OUTBOUND, code].get("meaning"), top
    assert all(labels.get("version") for labels, _ in panels["Exporter versions"])
    # The queue probe's listing (queuedata.POSTQUEUE_J): 2 deferred messages, 1 held.
    assert values_by(panels["Queue by name"], "queue") == {
        "incoming": 0, "active": 0, "deferred": 2, "hold": 1, "maildrop": 0}
    ages = values_by(panels["Oldest message age by queue"], "queue")
    assert set(ages) == {"incoming", "active", "deferred", "hold", "maildrop"} and ages["deferred"] > ages["hold"] > 0
    assert values_by(panels["Queue probe"], "instance") == {run.instance: 1}


def test_service_selection_shows_only_that_service(run, dashboard_results):
    panels = dashboard_results.panels["smtp-reply-overview.json", "strict"]
    everything = dashboard_results.panels["smtp-reply-overview.json", "all"]
    assert positive(panels["Inbound replies by service and class"], "service") == {STRICT}
    assert set(values_by(panels["Inbound 5xx ratio by service"], "service")) == {STRICT}
    # Its replies, fewer than all of them; the instance-wide panels stay whole.
    strict_total = sum(n for key, n in run.fed.replies.items() if key[-1] == STRICT)
    assert 0 < values_by(panels["Replies in range"], "")[""] < values_by(everything["Replies in range"], "")[""]
    assert strict_total < sum(run.fed.replies.values())
    assert positive(panels["Reply rate by class"], "class") <= {"4xx", "5xx"}
    assert values_by(panels["Queue by name"], "queue") == values_by(everything["Queue by name"], "queue")


def test_drilldown_selection_shows_only_the_selected_code(run, dashboard_results):
    remote, code, enhanced = run.seen_code
    panels = dashboard_results.panels["smtp-reply-drilldown.json", "seen"]
    assert positive(panels["Selected replies by remote provider"], "remote") == {remote}
    assert values_by(panels["Selected replies in range"], "")[""] > 0
    rows = {(labels["direction"], labels["code"], labels["class"]) for labels, _ in panels["Selected reply codes"]}
    assert rows == {(OUTBOUND, code, "5xx")}
    rows = {(labels["direction"], labels["enhanced"]) for labels, _ in panels["Selected enhanced status codes"]}
    assert rows == {(OUTBOUND, enhanced)}
    all_directions = dashboard_results.panels["smtp-reply-drilldown.json", "all"]["Selected replies by direction"]
    assert set(values_by(all_directions, "direction")) == {INBOUND, OUTBOUND}


def test_variable_queries_offer_the_scraped_values(run):
    remote, code, enhanced = run.seen_code
    variables = selections(run)["smtp-reply-drilldown.json", "seen"]
    expected = {"job": {JOB}, "instance": {run.instance}, "service": {key[-1] for key in run.fed.replies},
                "direction": {INBOUND, OUTBOUND},
                "remote": {remote}, "code": {code}, "enhanced": {enhanced}}
    for name, dashboard in load_dashboards().items():
        for variable, query in iter_variable_queries(dashboard):
            selector, label = label_values_selector(query)
            # Grafana's label_values(selector, label) is this call of the label values API.
            values = run.prom.api(f"label/{label}/values", **{
                "match[]": fill_variables(selector, **variables),
                "start": f"{run.start:.3f}", "end": f"{run.end:.3f}"})
            assert expected[variable] <= set(values), (name, variable, values)

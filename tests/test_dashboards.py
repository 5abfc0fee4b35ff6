"""Lint of the Grafana dashboards in grafana/.

Every dashboard, provisioned (grafana/dashboards/) and import copy
(grafana/import/), must be valid JSON with `editable: false`, its fixed uid, the
`datasource`, `job` and `instance` variables, and panels that each have a
title, a description, a unit and a "no value" text, take their data source from
`${datasource}`, and whose every PromQL expression selects by
`job=~"$job", instance=~"$instance"` on every metric, uses `$__rate_interval`
for its ranges (`$__range` in instant queries, for totals over the time range),
names only metrics the exporter (or Prometheus, for `up`) exposes, and parses
(with promtool, where installed). The import copies must be exactly what
grafana/build_import.py makes of the provisioned ones, and the threshold lines
must be the alert rules' default thresholds. With promtool, a few panels are
also evaluated on synthetic series, before and after the first reply.

The helpers that read dashboards are in dashboards.py, the PromQL scanner
and metric names in promql.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dashboards import (
    DASHBOARD_DIR,
    GRAFANA,
    IMPORT_DIR,
    fill_variables,
    iter_panels,
    iter_queries,
    iter_targets,
    iter_variable_queries,
    label_values_selector,
    load_dashboards,
    variables_used,
)
from helpers import PROMTOOL, REPO, needs_promtool
from promql import Selector, known_metric_names, metric_selectors, names_with_label, range_selectors, scan

PROVISIONING_DIR = GRAFANA / "provisioning"

# File name -> uid. Uids are in links and bookmarks: change one only on purpose.
EXPECTED_UIDS = {
    "smtp-reply-overview.json": "smtp-reply-overview",
    "smtp-reply-drilldown.json": "smtp-reply-drilldown",
}
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's own variables that a query may use, besides the dashboard's.
BUILTIN_VARIABLES = {"__rate_interval", "__range", "__interval"}


# --------------------------------------------------------------------------
# Lint


def _json_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json")) + sorted(IMPORT_DIR.glob("*.json"))


@pytest.mark.parametrize("path", _json_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_valid_json(path):
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        pytest.fail(f"{path.relative_to(REPO)}: {err}")


def _load_valid(kind: str) -> dict[str, dict]:
    # Files that are not valid JSON fail test_valid_json and are left out here,
    # so that the other tests still collect.
    try:
        return load_dashboards(kind)
    except ValueError:
        return {}


ALL = _load_valid("all")
PROVISIONED = _load_valid("provisioned")
DASHBOARD_IDS = sorted(ALL)


def _variables(dashboard: dict) -> dict[str, dict]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def test_dashboards_present():
    assert set(PROVISIONED) == set(EXPECTED_UIDS), "grafana/dashboards/ and EXPECTED_UIDS differ"
    assert set(load_dashboards("import")) == set(PROVISIONED), "grafana/import/ needs build_import.py"


@pytest.mark.parametrize("name", DASHBOARD_IDS)
def test_dashboard_settings(name):
    d = ALL[name]
    assert d["editable"] is False
    assert d["uid"] == EXPECTED_UIDS[Path(name).name]
    assert d.get("id") is None
    assert 38 <= d["schemaVersion"] <= 41, "written for Grafana 10/11"
    assert d["title"] and d.get("description")
    assert "smtp-reply-exporter" in d.get("tags", [])
    ids = [p["id"] for p in iter_panels(d)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


@pytest.mark.parametrize("name", DASHBOARD_IDS)
def test_variables(name):
    d = ALL[name]
    variables = _variables(d)
    ds = variables.get("datasource")
    assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus"
    for var in ("job", "instance"):
        assert var in variables and variables[var]["type"] == "query", f"no {var} query variable"
    order = list(variables)
    assert order[:3] == ["datasource", "job", "instance"]
    for var_name, query in iter_variable_queries(d):
        v = variables[var_name]
        assert v["datasource"] == DATASOURCE_REF, var_name
        selector, label = label_values_selector(query)
        assert label == var_name, f"{var_name} lists values of {label}"
        (sel,) = metric_selectors(selector)
        assert sel.metric in known_metric_names(), f"{var_name}: unknown metric {sel.metric}"
        # Each variable narrows by the variables above it (job and instance at least).
        above = {"job", "instance"} & set(order[: order.index(var_name)])
        assert variables_used(selector) >= above, f"{var_name} ignores {above - variables_used(selector)}"
        assert variables_used(selector) <= set(order[: order.index(var_name)]), f"{var_name} uses a later variable"
        if var_name not in ("job", "instance"):
            assert v.get("includeAll") and v.get("allValue") == ".*", (
                f"{var_name}: All must be .* so that it takes empty values too"
            )


@pytest.mark.parametrize("name", DASHBOARD_IDS)
def test_panels_complete(name):
    d = ALL[name]
    problems = []
    for p in iter_panels(d):
        title = p.get("title") or f"panel {p.get('id')}"
        if not p.get("title"):
            problems.append(f"{title}: no title")
        if p.get("type") == "row":
            continue
        if not p.get("description"):
            problems.append(f"{title}: no description")
        defaults = p.get("fieldConfig", {}).get("defaults", {})
        if not defaults.get("unit"):
            problems.append(f"{title}: no fieldConfig.defaults.unit")
        if not defaults.get("noValue"):
            problems.append(f"{title}: no fieldConfig.defaults.noValue (shown instead of 'No data')")
        if p.get("datasource") != DATASOURCE_REF:
            problems.append(f"{title}: datasource is {p.get('datasource')}, not ${{datasource}}")
        targets = p.get("targets", [])
        if not targets:
            problems.append(f"{title}: no query")
        refs = [t.get("refId") for t in targets]
        if len(refs) != len(set(refs)):
            problems.append(f"{title}: duplicate refIds {refs}")
        for t in targets:
            if t.get("datasource") != DATASOURCE_REF:
                problems.append(f"{title} {t.get('refId')}: datasource is {t.get('datasource')}")
            if not t.get("expr", "").strip():
                problems.append(f"{title} {t.get('refId')}: empty expr")
        pos = p.get("gridPos", {})
        if not (pos.get("w", 0) > 0 and pos.get("h", 0) > 0 and pos.get("x", -1) + pos.get("w", 0) <= 24):
            problems.append(f"{title}: bad gridPos {pos}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", DASHBOARD_IDS)
def test_queries_select_job_and_instance(name):
    problems = []
    for q in iter_targets(ALL[name]):
        for sel in metric_selectors(q.expr):
            matchers = set(sel.matchers)
            for var in ("job", "instance"):
                if (var, "=~", f"${var}") not in matchers:
                    problems.append(f"{q.panel_title}: {sel.metric or '{...}'} lacks {var}=~\"${var}\"")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", DASHBOARD_IDS)
def test_queries_select_service(name):
    """Every selector of a metric with a service label, in panels and
    variables, narrows by the service variable."""
    labelled = names_with_label("service")
    assert {"smtp_replies_total", "smtp_tls_connections_total", "smtp_delivery_delay_seconds_bucket"} <= labelled
    selectors = [(q.panel_title, sel) for q in iter_targets(ALL[name]) for sel in metric_selectors(q.expr)]
    selectors += [(f"variable {var}", sel) for var, query in iter_variable_queries(ALL[name]) if var != "service"
                  for sel in metric_selectors(label_values_selector(query)[0])]
    problems = [f"{where}: {sel.metric} lacks service=~\"$service\"" for where, sel in selectors
                if sel.metric in labelled and ("service", "=~", "$service") not in sel.matchers]
    assert not problems, "\n".join(problems)
    variables = _variables(ALL[name])
    assert list(variables)[:4] == ["datasource", "job", "instance", "service"]
    service = variables["service"]
    assert label_values_selector(service["query"]["query"])[0].startswith("smtp_replies_total{")
    assert service["multi"] is True


@pytest.mark.parametrize("name", DASHBOARD_IDS)
def test_queries_use_grafana_intervals(name):
    problems = []
    for q in iter_targets(ALL[name]):
        allowed = {"$__rate_interval", "$__range"} if q.instant else {"$__rate_interval"}
        for r in range_selectors(q.expr):
            if r not in allowed:
                problems.append(f"{q.panel_title}: [{r}] in a {'instant' if q.instant else 'range'} query "
                                f"(allowed: {sorted(allowed)})")
        scanned = scan(q.expr)
        ranged = [c for c in scanned.calls if c in ("rate", "irate", "increase")]
        if len(ranged) > len(scanned.ranges):
            problems.append(f"{q.panel_title}: rate/increase without a range")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", DASHBOARD_IDS)
def test_queries_use_known_metrics_and_variables(name):
    d = ALL[name]
    defined = set(_variables(d)) | BUILTIN_VARIABLES
    known = known_metric_names()
    problems = []
    for q in iter_targets(d):
        for sel in metric_selectors(q.expr):
            if sel.metric not in known:
                problems.append(f"{q.panel_title}: unknown metric {sel.metric!r}")
        for var in variables_used(q.expr) - defined:
            problems.append(f"{q.panel_title}: undefined variable ${var}")
        fill_variables(q.expr)  # raises on a variable it cannot fill
    assert not problems, "\n".join(problems)


# Counters of the exporter with no pre-created series.
COUNTED_ON_FIRST_EVENT = frozenset({"smtp_replies_total", "smtp_reply_reasons_total"})


@pytest.mark.parametrize("name", DASHBOARD_IDS)
def test_reply_queries_survive_absent_series(name):
    """smtp_replies_total and smtp_reply_reasons_total series appear with their
    first event: every query on them needs an `or` fallback (a zero series, or a
    zero numerator for ratios)."""
    problems = [
        f"{q.panel_title}: no `or` fallback for absent {metric} series"
        for q in iter_targets(ALL[name])
        for metric in sorted(COUNTED_ON_FIRST_EVENT & {s.metric for s in metric_selectors(q.expr)})
        if not re.search(r"\bor\b", q.expr)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", DASHBOARD_IDS)
def test_links_point_to_dashboards(name):
    text = json.dumps(ALL[name])
    for uid in re.findall(r"/d/([\w-]+)", text):
        assert uid in EXPECTED_UIDS.values(), f"link to unknown dashboard uid {uid}"


THRESHOLDS_FILE = REPO / "deploy" / "prometheus" / "rules" / "smtp-reply-exporter.thresholds.yml"


def _alert_threshold_defaults() -> dict[tuple[str, str | None], float]:
    """{(record, direction label or None): value} of the alert thresholds' defaults."""
    if not THRESHOLDS_FILE.exists():
        pytest.skip(f"no {THRESHOLDS_FILE.relative_to(REPO)}")
    out = {}
    for group in yaml.safe_load(THRESHOLDS_FILE.read_text()).get("groups", []):
        for rule in group.get("rules", []):
            labels = rule.get("labels") or {}
            m = re.fullmatch(r"\s*vector\(\s*([-+0-9.eE]+)\s*\)\s*", str(rule.get("expr", "")))
            if "record" in rule and m and "instance" not in labels and "service" not in labels:
                out[(rule["record"], labels.get("direction"))] = float(m[1])
    return out


def _threshold_values(thresholds: dict) -> list[float]:
    return [step["value"] for step in thresholds["steps"] if step["value"] is not None]


# Panels drawing one threshold without a direction: title -> its smtp:threshold:NAME.
_SINGLE_THRESHOLDS = {
    "Time since last log data": "log_quiet_seconds",
    "Refused SMTP AUTH attempts a minute": "auth_failures_per_minute",
    "Delivery delay p50 and p95 by status": "delivery_delay_p95_seconds",
}


@pytest.mark.parametrize("name", DASHBOARD_IDS)
def test_thresholds_match_alert_defaults(name):
    """The lines drawn on the ratio and log-age panels are the alerts' default thresholds."""
    defaults = _alert_threshold_defaults()
    fix = "; change the dashboard (then run grafana/build_import.py) or the threshold"
    checked = 0
    for p in iter_panels(ALL[name]):
        title = p.get("title", "")
        field = p.get("fieldConfig", {})
        if m := re.fullmatch(r"(Outbound|Inbound) ([45]xx) ratio(?: by provider| by service)?", title):
            want = defaults[(f"smtp:threshold:reply_{m[2]}_ratio", m[1].lower())]
            assert _threshold_values(field["defaults"]["thresholds"]) == [want], title + fix
            assert field["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off", f"{title}: threshold not drawn"
            checked += 1
        elif m := re.fullmatch(r"([45]xx) ratio in range", title):
            by_direction = {
                o["matcher"]["options"]: prop["value"]
                for o in field["overrides"] for prop in o["properties"] if prop["id"] == "thresholds"
            }
            for direction in ("outbound", "inbound"):
                want = defaults[(f"smtp:threshold:reply_{m[1]}_ratio", direction)]
                assert _threshold_values(by_direction[direction]) == [want], f"{title} {direction}{fix}"
            checked += 1
        elif record := _SINGLE_THRESHOLDS.get(title):
            want = defaults[(f"smtp:threshold:{record}", None)]
            assert _threshold_values(field["defaults"]["thresholds"]) == [want], title + fix
            checked += 1
    if "overview" in name:
        assert checked == 11, ("expected 4 ratio graphs, the 5xx ratios by provider and by service, 2 ratio stats, "
                               "the log age, the refused AUTHs and the delivery delay")


def test_known_metric_names_cover_the_contract():
    known = known_metric_names()
    for name in (
        "smtp_replies_total", "smtp_reply_reasons_total", "smtp_deliveries_total",
        "smtp_reply_code_info", "smtp_enhanced_status_info",
        "smtp_exporter_lines_total", "smtp_exporter_read_bytes_total",
        "smtp_exporter_source_last_read_timestamp_seconds", "smtp_exporter_source_read_errors_total",
        "smtp_exporter_source_rotations_total", "smtp_exporter_source_truncations_total",
        "smtp_exporter_label_overflow_total", "smtp_exporter_build_info", "process_cpu_seconds_total", "up",
    ):
        assert name in known, name


# --------------------------------------------------------------------------
# Import copies and provisioning


def _build_import_module():
    spec = importlib.util.spec_from_file_location("grafana_build_import", GRAFANA / "build_import.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_import_copies_in_sync():
    build = _build_import_module()
    assert build.stale_files() == [], "run: python3 grafana/build_import.py"
    assert set(build.expected_files()) == set(PROVISIONED)


def test_build_import_check_mode():
    proc = subprocess.run([sys.executable, str(GRAFANA / "build_import.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", sorted(PROVISIONED))
def test_import_copy_shape(name):
    copy = load_dashboards("import")[name]
    provisioned = PROVISIONED[name]
    assert [i["name"] for i in copy["__inputs"]] == ["DS_PROMETHEUS"]
    assert copy["__inputs"][0]["pluginId"] == "prometheus"
    requires = {(r["type"], r["id"]) for r in copy["__requires"]}
    panel_types = {p["type"] for p in iter_panels(provisioned) if p["type"] != "row"}
    assert requires == {("grafana", "grafana"), ("datasource", "prometheus")} | {("panel", t) for t in panel_types}
    assert _variables(copy)["datasource"]["current"]["value"] == "${DS_PROMETHEUS}"
    # The provisioned files need no input: nothing in them refers to one.
    assert "${DS_" not in json.dumps(provisioned)
    # Apart from the import header and the data source default, the same dashboard.
    rest = {k: v for k, v in copy.items() if not k.startswith("__")}
    assert iter_queries(rest) == iter_queries(provisioned)
    assert [p["title"] for p in iter_panels(rest)] == [p["title"] for p in iter_panels(provisioned)]


def test_provisioning_files():
    ds = yaml.safe_load((PROVISIONING_DIR / "datasources" / "prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["url"]
    providers = yaml.safe_load((PROVISIONING_DIR / "dashboards" / "smtp-reply-exporter.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["path"]


# --------------------------------------------------------------------------
# The helpers' scanner and fill_variables themselves


def test_scanner_finds_selectors_and_ranges():
    expr = (
        'sum by (code) (rate(a_total{job=~"$job", x="{y}"}[$__rate_interval])) '
        '* on (code) group_left (meaning) max by (code, meaning) (b_info) '
        'or on () label_replace(vector(0), "code", "$1", "", "") / {__name__="c"} offset 5m'
    )
    assert metric_selectors(expr) == [
        Selector("a_total", (("job", "=~", "$job"), ("x", "=", "{y}"))),
        Selector("b_info", ()),
        Selector("", (("__name__", "=", "c"),)),
    ]
    assert range_selectors(expr) == ["$__rate_interval"]
    assert variables_used(expr) == {"job", "__rate_interval"}


def test_fill_variables():
    expr = ('sum(rate(m{job=~"$job", instance=~"${instance}", code=~"$code"}[$__rate_interval]))'
            ' or label_replace(x, "a", "$1", "b", "(.*)")')
    assert fill_variables(expr, "smtp", ["127.0.0.1:10925", "mx2:10925"], code="550", rate_interval="1m") == (
        'sum(rate(m{job=~"smtp", instance=~"(127\\\\.0\\\\.0\\\\.1:10925|mx2:10925)", code=~"550"}[1m]))'
        ' or label_replace(x, "a", "$1", "b", "(.*)")'
    )
    assert fill_variables("increase(m[$__range])", range_="30m") == "increase(m[30m])"
    with pytest.raises(ValueError, match="nosuch"):
        fill_variables("m{a=~\"$nosuch\"}")


# --------------------------------------------------------------------------
# PromQL validity and behaviour, with promtool


def _all_promql() -> list[tuple[str, str]]:
    """[(where, PromQL with the variables filled)] of every query and variable selector."""
    out = []
    for name, d in ALL.items():
        for q in iter_targets(d):
            out.append((f"{name}: {q.panel_title} ({q.ref_id})", fill_variables(q.expr)))
        for var, query in iter_variable_queries(d):
            selector, _ = label_values_selector(query)
            out.append((f"{name}: variable {var}", fill_variables(selector)))
    return out


@needs_promtool
def test_promql_parses(tmp_path):
    queries = _all_promql()
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard_query_{i}", "expr": expr} for i, (_, expr) in enumerate(queries)
    ]}]}
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    proc = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False,
                          timeout=120)
    if proc.returncode != 0:
        failed = sorted({int(n) for n in re.findall(r"dashboard_query_(\d+)", proc.stdout + proc.stderr)})
        where = "\n".join(f"  dashboard_query_{i}: {queries[i][0]}\n    {queries[i][1]}" for i in failed)
        pytest.fail(f"promtool rejects dashboard queries:\n{proc.stdout}{proc.stderr}\n{where}")


def _panel_query(dashboard: str, title: str, ref_id: str = "A", **fill) -> str:
    for q in iter_targets(PROVISIONED[dashboard]):
        if q.panel_title == title and q.ref_id == ref_id:
            return fill_variables(q.expr, "smtp", ".*", **fill)
    raise LookupError(f"{dashboard} has no panel {title!r} (a renamed panel? update this test)")


def _promtool_eval(tmp_path, series: dict[str, str], tests: list[tuple[str, str, list[tuple[str, float]]]]):
    """Evaluates (expr, at, expected [(labels, value)]) over the series (1m apart)."""
    rules = tmp_path / "none.yml"
    rules.write_text("groups: []\n")
    spec = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "promql_expr_test": [
                {"expr": expr, "eval_time": at,
                 "exp_samples": [{"labels": labels, "value": value} for labels, value in expected]}
                for expr, at, expected in tests
            ],
        }],
    }
    path = tmp_path / "dashboard_test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    proc = subprocess.run([PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, check=False,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


T = 'job="smtp", instance="mx1:10925"'


@needs_promtool
def test_queries_before_first_reply(tmp_path):
    """An exporter that has counted nothing yet: zeros and "none yet", not No data.
    It has no delivery series yet either: a service's come with its first count."""
    series = {
        f"smtp_exporter_build_info{{{T}, version=\"0.1.0\", python_version=\"3.11.7\"}}": "1x30",
        f"smtp_reply_code_info{{{T}, code=\"550\", class=\"5xx\", meaning=\"Mailbox unavailable\"}}": "1x30",
    }
    ov = "smtp-reply-overview.json"
    _promtool_eval(tmp_path, series, [
        (_panel_query(ov, "Reply rate by class"), "20m", [('{class="none yet"}', 0)]),
        (_panel_query(ov, "Outbound replies by class"), "20m", [('{class="none yet"}', 0)]),
        (_panel_query(ov, "Replies in range"), "20m", [("{}", 0)]),
        (_panel_query(ov, "Deliveries by status"), "20m", [('{status="none yet"}', 0)]),
        (_panel_query(ov, "Deliveries in range by status"), "20m", [('{status="none yet"}', 0)]),
        (_panel_query(ov, "Outbound failures (4xx and 5xx) by provider"), "20m", [('{remote="none yet"}', 0)]),
        (_panel_query(ov, "Failure reasons by direction"), "20m", [('{reason="none yet"}', 0)]),
        (_panel_query(ov, "Failure reasons in range"), "20m", [('{reason="none yet"}', 0)]),
        # A ratio of no replies at all is no ratio (the panel says "No outbound replies yet").
        (_panel_query(ov, "Outbound 5xx ratio"), "20m", []),
        (_panel_query(ov, "Outbound 5xx ratio by provider"), "20m", []),
    ])


@needs_promtool
def test_ratios_are_zero_before_first_error(tmp_path):
    """Replies but no 5xx yet: the ratio is 0, not absent; then 1 in 4 is 25%."""
    series = {
        f"smtp_exporter_build_info{{{T}, version=\"0.1.0\", python_version=\"3.11.7\"}}": "1x30",
        # 3 outbound 250 replies a minute from the start, 550s (1 a minute) only from minute 15.
        f'smtp_replies_total{{{T}, direction="outbound", code="250", class="2xx", enhanced="2.0.0", '
        f'stage="end_of_data"}}': "0+3x30",
        f'smtp_replies_total{{{T}, direction="outbound", code="550", class="5xx", enhanced="5.1.1", '
        f'stage="rcpt"}}': "_x15 1+1x15",
        # A cleanup reject: only an enhanced code was logged, so code is empty.
        f'smtp_replies_total{{{T}, direction="inbound", code="", class="5xx", enhanced="5.7.1", '
        f'stage="end_of_data"}}': "0+1x30",
        f"smtp_reply_code_info{{{T}, code=\"550\", class=\"5xx\", meaning=\"Mailbox unavailable\"}}": "1x30",
        f"smtp_reply_code_info{{{T}, code=\"250\", class=\"2xx\", meaning=\"Completed\"}}": "1x30",
    }
    ov = "smtp-reply-overview.json"
    ratio = _panel_query(ov, "Outbound 5xx ratio")
    _promtool_eval(tmp_path, series, [
        (ratio, "10m", [('{instance="mx1:10925"}', 0)]),
        (ratio, "25m", [('{instance="mx1:10925"}', 0.25)]),
        (_panel_query(ov, "Outbound 4xx ratio"), "25m", [('{instance="mx1:10925"}', 0)]),
        (_panel_query(ov, "Inbound 5xx ratio"), "25m", [('{instance="mx1:10925"}', 1)]),
        # Meanings joined where the code has one; the empty code keeps its row without.
        (_panel_query(ov, "Top reply codes", range_="10m"), "25m", [
            ('{direction="outbound", code="250", class="2xx", meaning="Completed"}', 30),
            ('{direction="outbound", code="550", class="5xx", meaning="Mailbox unavailable"}', 10),
            ('{direction="inbound", class="5xx"}', 10),
        ]),
        (_panel_query(ov, "5xx ratio in range", range_="10m"), "30m",
         [('{direction="outbound"}', 0.25), ('{direction="inbound"}', 1)]),
        (_panel_query(ov, "Outbound replies by class"), "10m", [('{class="2xx"}', 0.05)]),
    ])


@needs_promtool
def test_provider_and_reason_panels(tmp_path):
    """Per provider: 0 while a provider refuses nothing, then its own share;
    reasons split by direction; inbound replies have no remote."""
    outbound = f'{T}, direction="outbound"'
    series = {
        f"smtp_exporter_build_info{{{T}, version=\"0.1.0\", python_version=\"3.11.7\"}}": "1x30",
        # 3 replies a minute each from google and microsoft; google refuses 3 more a minute from minute 15.
        f'smtp_replies_total{{{outbound}, code="250", class="2xx", enhanced="2.0.0", stage="end_of_data", '
        f'remote="google"}}': "0+3x30",
        f'smtp_replies_total{{{outbound}, code="250", class="2xx", enhanced="2.0.0", stage="end_of_data", '
        f'remote="microsoft"}}': "0+3x30",
        f'smtp_replies_total{{{outbound}, code="550", class="5xx", enhanced="5.7.1", stage="rcpt", '
        f'remote="google"}}': "_x15 3+3x15",
        f'smtp_reply_reasons_total{{{outbound}, class="5xx", reason="blocklisted", remote="google"}}': "_x15 3+3x15",
        # Our MTA refuses unknown users, 3 a minute; inbound has remote="".
        f'smtp_replies_total{{{T}, direction="inbound", code="550", class="5xx", enhanced="5.1.1", stage="rcpt", '
        f'remote=""}}': "0+3x30",
        f'smtp_reply_reasons_total{{{T}, direction="inbound", class="5xx", reason="user_unknown", '
        f'remote=""}}': "0+3x30",
    }
    ov = "smtp-reply-overview.json"
    ratio = _panel_query(ov, "Outbound 5xx ratio by provider")
    failures = _panel_query(ov, "Outbound failures (4xx and 5xx) by provider")
    reasons = _panel_query(ov, "Failure reasons by direction")
    _promtool_eval(tmp_path, series, [
        (ratio, "10m", [('{remote="google"}', 0), ('{remote="microsoft"}', 0)]),
        (ratio, "25m", [('{remote="google"}', 0.5), ('{remote="microsoft"}', 0)]),
        (failures, "10m", [('{remote="none yet"}', 0)]),
        (failures, "25m", [('{remote="google", class="5xx"}', 0.05)]),
        (reasons, "10m", [('{direction="inbound", reason="user_unknown"}', 0.05)]),
        (reasons, "25m", [('{direction="inbound", reason="user_unknown"}', 0.05),
                          ('{direction="outbound", reason="blocklisted"}', 0.05)]),
        (_panel_query(ov, "Failure reasons in range", range_="10m"), "25m", [
            ('{direction="outbound", class="5xx", reason="blocklisted", remote="google"}', 30),
            ('{direction="inbound", class="5xx", reason="user_unknown"}', 30),
        ]),
    ])


@needs_promtool
def test_drilldown_remote_selection(tmp_path):
    """The remote variable narrows the drill-down to one provider's replies;
    its share is of that provider's replies, and inbound shows as ours."""
    outbound = f'{T}, direction="outbound"'
    series = {
        f"smtp_exporter_build_info{{{T}, version=\"0.1.0\", python_version=\"3.11.7\"}}": "1x30",
        f'smtp_replies_total{{{outbound}, code="250", class="2xx", enhanced="2.0.0", stage="end_of_data", '
        f'remote="google"}}': "0+3x30",
        f'smtp_replies_total{{{outbound}, code="550", class="5xx", enhanced="5.7.1", stage="rcpt", '
        f'remote="google"}}': "0+3x30",
        f'smtp_replies_total{{{outbound}, code="550", class="5xx", enhanced="5.1.1", stage="rcpt", '
        f'remote="microsoft"}}': "0+3x30",
        f'smtp_replies_total{{{T}, direction="inbound", code="550", class="5xx", enhanced="5.1.1", stage="rcpt", '
        f'remote=""}}': "0+3x30",
    }
    dd = "smtp-reply-drilldown.json"
    _promtool_eval(tmp_path, series, [
        (_panel_query(dd, "Share of all replies by direction", remote=["google"], code=["550"]), "20m",
         [('{direction="outbound"}', 0.5)]),
        (_panel_query(dd, "Selected replies by remote provider", code=["550"]), "20m", [
            ('{remote="google"}', 0.05), ('{remote="microsoft"}', 0.05), ('{remote="inbound (ours)"}', 0.05)]),
        (_panel_query(dd, "Selected replies by remote provider", remote=["microsoft"]), "20m",
         [('{remote="microsoft"}', 0.05)]),
    ])


@needs_promtool
def test_service_panels_and_selection(tmp_path):
    """Port 25 refusing spam and submission refusing a user, told apart per
    service; the service variable narrows to one; a series restored from an
    older state file (no service) counts under All only and, flat, adds nothing."""
    inbound = f'{T}, direction="inbound", remote=""'
    series = {
        f"smtp_exporter_build_info{{{T}, version=\"0.1.0\", python_version=\"3.11.7\"}}": "1x30",
        f'smtp_replies_total{{{inbound}, code="554", class="5xx", enhanced="5.7.1", stage="rcpt", '
        f'service="postfix"}}': "0+3x30",
        f'smtp_replies_total{{{inbound}, code="250", class="2xx", enhanced="", stage="end_of_data", '
        f'service="postfix"}}': "0+1x30",
        f'smtp_replies_total{{{inbound}, code="250", class="2xx", enhanced="", stage="end_of_data", '
        f'service="postfix/submission"}}': "0+3x30",
        f'smtp_replies_total{{{inbound}, code="535", class="5xx", enhanced="5.7.8", stage="auth", '
        f'service="postfix/submission"}}': "_x15 1+1x15",
        f'smtp_replies_total{{{inbound}, code="550", class="5xx", enhanced="5.1.1", stage="rcpt"}}': "7x30",
    }
    ov = "smtp-reply-overview.json"
    ratio = _panel_query(ov, "Inbound 5xx ratio by service")
    by_class = _panel_query(ov, "Inbound replies by service and class", service=["postfix/submission"])
    _promtool_eval(tmp_path, series, [
        (ratio, "10m", [('{instance="mx1:10925", service="postfix"}', 0.75),
                        ('{instance="mx1:10925", service="postfix/submission"}', 0)]),
        (ratio, "25m", [('{instance="mx1:10925", service="postfix"}', 0.75),
                        ('{instance="mx1:10925", service="postfix/submission"}', 0.25)]),
        (_panel_query(ov, "Inbound 5xx ratio by service", service=["postfix/submission"]), "25m",
         [('{instance="mx1:10925", service="postfix/submission"}', 0.25)]),
        (by_class, "25m", [('{service="postfix/submission", class="2xx"}', 0.05),
                           ('{service="postfix/submission", class="5xx"}', 1 / 60)]),
        (_panel_query(ov, "Inbound 5xx ratio", service=["postfix/submission"]), "25m",
         [('{instance="mx1:10925"}', 0.25)]),
    ])

"""The Prometheus rules in deploy/prometheus: `promtool check` and the promtool
unit tests, and checks that every alert is tested firing and silent,
labelled and documented, and that every threshold is documented."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

from pathlib import Path

import pytest
import yaml
from helpers import REPO, needs_promtool, promtool

PROM = REPO / "deploy" / "prometheus"
RULES_DIR = PROM / "rules"
TESTS_DIR = PROM / "tests"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
TEST_FILES = sorted(TESTS_DIR.glob("*.test.yml"))
THRESHOLDS_FILE = RULES_DIR / "smtp-reply-exporter.thresholds.yml"
ALERTS_FILE = RULES_DIR / "smtp-reply-exporter.rules.yml"
README = PROM / "README.md"
SEVERITIES = {"critical", "warning"}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def rules(kind: str, files=RULE_FILES) -> list[dict]:
    """Every rule with key `kind` ("alert" or "record") in the rule files."""
    return [
        r
        for f in files
        for g in load(f).get("groups") or []
        for r in g.get("rules") or []
        if kind in r
    ]


def alert_rule_tests() -> list[tuple[str, dict]]:
    return [
        (f.name, case)
        for f in TEST_FILES
        for t in load(f).get("tests") or []
        for case in t.get("alert_rule_test") or []
    ]


def thresholds() -> list[tuple[str, dict, str]]:
    """(name, labels, value as written) of every default in the thresholds file."""
    out = []
    for r in rules("record", [THRESHOLDS_FILE]):
        labels = r.get("labels") or {}
        m = re.fullmatch(r"vector\((.+)\)", r["expr"].strip())
        assert r["record"].startswith("smtp:threshold:") and "instance" not in labels and m, r
        out.append((r["record"].removeprefix("smtp:threshold:"), labels, m.group(1)))
    return out


def test_rule_and_test_files_exist():
    names = {p.name for p in RULE_FILES}
    assert {
        "smtp-reply-exporter.thresholds.yml",
        "smtp-reply-exporter.recording.yml",
        "smtp-reply-exporter.rules.yml",
    } <= names
    assert TEST_FILES, f"no *.test.yml in {TESTS_DIR}"


# --- promtool ---------------------------------------------------------------


@needs_promtool
@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(path):
    rc, out = promtool("check", "rules", "--lint=all", "--lint-fatal", str(path))
    assert rc == 0, out
    assert "SUCCESS" in out, out


@needs_promtool
def test_promtool_check_example_config():
    # Also checks the rule files it loads and the file_sd target files.
    rc, out = promtool("check", "config", "--lint=all", "--lint-fatal", "prometheus.example.yml", cwd=PROM)
    assert rc == 0, out
    assert "3 rule files found" in out, out


@needs_promtool
@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests(path):
    rc, out = promtool("test", "rules", path.name, cwd=TESTS_DIR)
    assert rc == 0, out
    assert "SUCCESS" in out, out


# --- what the unit tests cover ---------------------------------------------


def test_every_alert_is_tested_firing_and_silent():
    alerts = {r["alert"] for r in rules("alert")}
    cases = alert_rule_tests()
    firing = {c["alertname"] for _, c in cases if c.get("exp_alerts")}
    silent = {c["alertname"] for _, c in cases if not c.get("exp_alerts")}
    assert not alerts - firing, f"alerts with no test expecting them to fire: {sorted(alerts - firing)}"
    assert not alerts - silent, f"alerts with no test expecting them silent: {sorted(alerts - silent)}"
    # promtool passes a test of an alert that does not exist when it expects
    # nothing: a misspelt name would test nothing.
    unknown = sorted({(f, c["alertname"]) for f, c in cases} - {(f, a) for f, _ in cases for a in alerts})
    assert not unknown, f"tests of alerts that do not exist: {unknown}"


def test_firing_expectations_check_annotations():
    # promtool compares annotations only as given: every firing expectation
    # names all three, so a broken template or link fails a test.
    missing = [
        (f, c["alertname"], c["eval_time"])
        for f, c in alert_rule_tests()
        for a in c.get("exp_alerts") or []
        if set(a.get("exp_annotations") or {}) != {"summary", "description", "runbook_url"}
    ]
    assert not missing, f"firing expectations without summary, description and runbook_url: {missing}"


def test_unit_tests_fix_the_group_evaluation_order():
    # Recording rules feed each other across groups; promtool orders groups
    # at random unless told, which would make results one step late at times.
    for f in TEST_FILES:
        doc = load(f)
        groups = {
            g["name"]
            for rf in doc["rule_files"]
            for g in load(TESTS_DIR / rf).get("groups") or []
        }
        assert set(doc.get("group_eval_order") or []) == groups, f"{f.name}: group_eval_order != {sorted(groups)}"


# --- the rules themselves ---------------------------------------------------


def test_alerts_are_named_labelled_and_annotated():
    for r in rules("alert"):
        name = r["alert"]
        assert re.fullmatch(r"Smtp[A-Z][A-Za-z0-9]+", name), f"{name}: CamelCase, Smtp prefix"
        assert (r.get("labels") or {}).get("severity") in SEVERITIES, f"{name}: severity must be one of {SEVERITIES}"
        ann = r.get("annotations") or {}
        for key in ("summary", "description"):
            assert isinstance(ann.get(key), str) and len(ann[key].strip()) > 20, f"{name}: {key}"
        assert "Look first" in ann["description"], f"{name}: the description says what to look at first"
        assert r.get("for"), f"{name}: no `for:`"


RUNBOOK = PROM / "RUNBOOK.md"
RUNBOOK_PARTS = ("**What it means.**", "**Check first.**", "**Silence it**")


def runbook_sections() -> dict[str, str]:
    """GitHub's anchor of each `## ` heading of the runbook -> its text."""
    sections = RUNBOOK.read_text().split("\n## ")[1:]
    return {s.split("\n", 1)[0].strip().lower(): s for s in sections}


def test_every_alert_links_to_its_runbook_section():
    sections = runbook_sections()
    for r in rules("alert"):
        url = (r.get("annotations") or {}).get("runbook_url", "")
        path, _, anchor = url.partition("#")
        assert path.endswith("/deploy/prometheus/RUNBOOK.md"), f"{r['alert']}: runbook_url {url!r}"
        assert anchor == r["alert"].lower(), f"{r['alert']}: runbook anchor #{anchor}"
        assert anchor in sections, f"{r['alert']}: no section #{anchor} in {RUNBOOK.name}"
        missing = [part for part in RUNBOOK_PARTS if part not in sections[anchor]]
        assert not missing, f"{RUNBOOK.name} #{anchor} does not say {missing}"
    alerts = {r["alert"].lower() for r in rules("alert")}
    assert set(sections) == alerts, "runbook sections for alerts that do not exist"


def test_no_alert_names_a_job():
    # Scrape configurations name their jobs as they like (the Prometheus
    # Operator names them namespace/monitor): an alert must find the
    # exporter by its metrics.
    for r in rules("alert"):
        assert not re.search(r"\bjob\s*!?=~?\s*\"", r["expr"]), f"{r['alert']}: selects a job by name"


def test_alert_names_are_unique():
    names = [r["alert"] for r in rules("alert")]
    assert len(names) == len(set(names))


def test_recording_rule_names_follow_level_metric_operations():
    for r in rules("record"):
        assert re.fullmatch(r"[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*", r["record"]), r["record"]


AGGREGATION = re.compile(
    r"\b(sum|min|max|avg|count|group|stddev|stdvar|topk|bottomk|quantile|count_values)\s*(\(|without\b)"
)


def test_aggregations_name_the_labels_they_keep():
    # `sum by (job, instance, ...)`, never `sum(...)` or `sum without (...)`:
    # a label the exporter adds (as it added remote) must be summed away,
    # not carried into matches that it would break.
    for kind in ("record", "alert"):
        for r in rules(kind):
            bad = AGGREGATION.findall(r["expr"])
            assert not bad, f"{r[kind]}: aggregation without `by (...)`: {bad}"


def test_every_threshold_has_an_effective_rule_and_a_missing_alert():
    records = {r["record"] for r in rules("record")}
    missing_expr = next(r["expr"] for r in rules("alert") if r["alert"] == "SmtpAlertThresholdsMissing")
    per_service = {name for name, labels, _ in thresholds() if "service" in labels}
    for name, labels, _ in thresholds():
        if "service" in labels:
            # A service's value refines the default of its direction: resolved
            # per service, and not required (the default stands in for it).
            assert f"instance_direction_service:smtp_threshold_{name}:effective" in records, (name, labels)
            continue
        level = "instance_direction" if "direction" in labels else "instance"
        assert f"{level}:smtp_threshold_{name}:effective" in records, name
        # The default of a threshold that has service values is the series without one.
        keys = ['instance=""'] + (['service=""'] if name in per_service else [])
        selector = ", ".join(keys + [f'{k}="{v}"' for k, v in labels.items()])
        assert f"absent(smtp:threshold:{name}{{{selector}}})" in missing_expr, (name, labels)
        assert f'"threshold", "{name}"' in missing_expr, name
    # Every effective threshold an alert reads exists.
    for r in rules("alert"):
        for used in re.findall(r"\b[a-z_]+:smtp_threshold_[a-z0-9_]+:effective\b", r["expr"]):
            assert used in records, (r["alert"], used)
    # Alerts read thresholds only through the effective rules.
    for r in rules("alert"):
        if r["alert"] != "SmtpAlertThresholdsMissing":
            assert "smtp:threshold:" not in r["expr"], r["alert"]


def _region(text: str, name: str, names: list[str]) -> str:
    """The text from `name` to the next other threshold name after it."""
    m = re.search(rf"\b{name}\b", text)
    assert m, f"threshold {name} is not documented"
    rest = text[m.end():]
    ends = [mm.start() for other in names if other != name for mm in [re.search(rf"\b{other}\b", rest)] if mm]
    return rest[: min(ends, default=len(rest))]


def _readme_row(name: str) -> str:
    section = README.read_text().split("\n## Thresholds\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"threshold {name}: no row in the table under '## Thresholds' in {README}"
    return rows[0]


def test_thresholds_are_documented_with_their_defaults():
    header = ALERTS_FILE.read_text().split("\ngroups:", 1)[0]
    defaults = thresholds()
    names = sorted({n for n, _, _ in defaults}, key=len, reverse=True)
    for name, labels, value in defaults:
        for where, region in (
            ("the comment at the top of " + ALERTS_FILE.name, _region(header, name, names)),
            (README.name, _readme_row(name)),
        ):
            assert re.search(rf"(?<![\d.]){re.escape(value)}(?![\d.])", region), (
                f"default {value} of smtp:threshold:{name}{labels or ''} not stated in {where}"
            )
            for label in ("direction", "service"):
                if label in labels:
                    assert labels[label] in region, (name, labels, where)


# --- rules_for_tests.py -----------------------------------------------------


def _rules_for_tests():
    spec = importlib.util.spec_from_file_location("rules_for_tests", PROM / "rules_for_tests.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("rules_for_tests", mod)
    spec.loader.exec_module(mod)
    return mod


def test_rewrite_expr_changes_exact_durations_only():
    rft = _rules_for_tests()
    expr = 'rate(x{e=~"[45][.]7[.][0-9]+"}[5m]) offset 5m + rate(y[15m]) + max_over_time(z[1h:5m]) + w[5m:1m]'
    assert rft.rewrite_expr(expr, {"5m": "30s"}) == (
        'rate(x{e=~"[45][.]7[.][0-9]+"}[30s]) offset 30s + rate(y[15m]) + max_over_time(z[1h:30s]) + w[30s:1m]'
    )


def test_write_test_rules_rewrites_a_copy(tmp_path):
    rft = _rules_for_tests()
    before = {p: p.read_text() for p in RULE_FILES}
    paths = rft.write_test_rules(
        tmp_path,
        for_="10s",
        windows={"5m": "30s", "1d": "10m"},
        thresholds={"reply_min_per_minute": 0, "reply_5xx_ratio{direction=outbound}": 0.2},
        interval="1s",
    )
    assert sorted(p.name for p in paths) == sorted(p.name for p in RULE_FILES)
    assert {p: p.read_text() for p in RULE_FILES} == before, "the shipped rules must not change"
    alerts = rules("alert", paths)
    assert alerts and all(a["for"] == "10s" for a in alerts)
    exprs = "\n".join(r["expr"] for r in rules("record", paths) + alerts)
    assert "[5m]" not in exprs and "[1d]" not in exprs and "offset 1d" not in exprs
    assert "[30s]" in exprs and "offset 10m" in exprs
    assert all(g.get("interval") == "1s" for p in paths for g in load(p)["groups"])
    got = {
        (r["record"], tuple(sorted((r.get("labels") or {}).items()))): r["expr"]
        for r in rules("record", [tmp_path / THRESHOLDS_FILE.name])
    }
    assert got[("smtp:threshold:reply_min_per_minute", ())] == "vector(0.0)"
    assert got[("smtp:threshold:reply_5xx_ratio", (("direction", "outbound"),))] == "vector(0.2)"
    assert got[("smtp:threshold:reply_5xx_ratio", (("direction", "inbound"),))] == "vector(0.50)"


def test_write_test_rules_changes_a_services_threshold_only_when_named(tmp_path):
    paths = _rules_for_tests().write_test_rules(
        tmp_path,
        thresholds={"reply_5xx_ratio{direction=inbound}": 0.7,
                    "reply_4xx_ratio{direction=inbound, service=postfix/submission}": 0.3},
    )
    got = {
        (r["record"], tuple(sorted((r.get("labels") or {}).items()))): r["expr"]
        for r in rules("record", [p for p in paths if p.name == THRESHOLDS_FILE.name])
    }
    inbound, submission = ("direction", "inbound"), ("service", "postfix/submission")
    assert got[("smtp:threshold:reply_5xx_ratio", (inbound,))] == "vector(0.7)"
    assert got[("smtp:threshold:reply_5xx_ratio", (inbound, submission))] == "vector(0.10)"
    assert got[("smtp:threshold:reply_4xx_ratio", (inbound,))] == "vector(0.50)"
    assert got[("smtp:threshold:reply_4xx_ratio", (inbound, submission))] == "vector(0.3)"


def test_write_test_rules_for_one_alert(tmp_path):
    rft = _rules_for_tests()
    paths = rft.write_test_rules(tmp_path, for_={"SmtpReply5xxRatioHigh": "1m"})
    fors = {a["alert"]: a["for"] for a in rules("alert", paths)}
    shipped = {a["alert"]: a["for"] for a in rules("alert")}
    assert fors == {**shipped, "SmtpReply5xxRatioHigh": "1m"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"for_": {"NoSuchAlert": "1m"}},
        {"for_": "10"},
        {"thresholds": {"no_such_threshold": 1}},
        {"thresholds": {"reply_5xx_ratio{direction=sideways}": 1}},
        {"thresholds": {"reply_5xx_ratio{direction=inbound, service=exim4}": 1}},
        {"windows": {"5m": "soon"}},
    ],
)
def test_write_test_rules_refuses_names_and_durations_that_do_not_exist(tmp_path, kwargs):
    with pytest.raises(ValueError):
        _rules_for_tests().write_test_rules(tmp_path, **kwargs)


def test_rules_for_tests_command_line(tmp_path):
    p = subprocess.run(
        [sys.executable, str(PROM / "rules_for_tests.py"), "--out", str(tmp_path), "--for", "5s",
         "--window", "5m=20s", "--threshold", "reply_5xx_ratio{direction=outbound}=0.3"],
        capture_output=True, text=True, check=False,
    )
    assert p.returncode == 0, p.stderr
    assert all(a["for"] == "5s" for a in rules("alert", [tmp_path / ALERTS_FILE.name]))


QUIET_SERVER_TEST = """
rule_files: [{rules}]
evaluation_interval: 1m
group_eval_order: {groups}
tests:
  # 2 replies/min, half of them 5xx: under the shipped volume guard.
  - interval: 1m
    input_series:
      - series: 'smtp_exporter_build_info{{{target}, version="0", python_version="3"}}'
        values: '1+0x20'
      - series: 'smtp_replies_total{{{target}, {outbound}, code="250", class="2xx", enhanced="", stage="end_of_data"}}'
        values: '0+1x20'
      - series: 'smtp_replies_total{{{target}, {outbound}, code="550", class="5xx", enhanced="", stage="rcpt"}}'
        values: '0+1x20'
    promql_expr_test:
      - expr: ALERTS{{alertname="SmtpReply5xxRatioHigh", alertstate="firing"}}
        eval_time: 8m
        exp_samples: {expected}
"""


@needs_promtool
def test_rewritten_rules_fire_sooner_under_promtool(tmp_path):
    # The test copy (for: 1m, no volume guard) fires where the shipped rules
    # stay silent: what an end-to-end test against Prometheus relies on.
    paths = _rules_for_tests().write_test_rules(
        tmp_path / "rules", for_="1m", thresholds={"reply_min_per_minute": 0}
    )
    rc, out = promtool("check", "rules", *map(str, paths))
    assert rc == 0, out
    groups = [g["name"] for p in paths for g in load(p)["groups"]]
    firing = (
        "[{labels: 'ALERTS{alertname=\"SmtpReply5xxRatioHigh\", alertstate=\"firing\", class=\"5xx\", "
        "direction=\"outbound\", instance=\"mx:10925\", job=\"smtp-reply-exporter\", "
        "severity=\"critical\"}', value: 1}]"
    )
    for name, rule_dir, expected in (("copy", tmp_path / "rules", firing), ("shipped", RULES_DIR, "[]")):
        test = tmp_path / f"{name}.test.yml"
        test.write_text(QUIET_SERVER_TEST.format(
            rules=", ".join(str(rule_dir / p.name) for p in paths), groups=groups, expected=expected,
            target='job="smtp-reply-exporter", instance="mx:10925"', outbound='direction="outbound"'))
        rc, out = promtool("test", "rules", str(test))
        assert rc == 0, f"{name} rules:\n{out}"


# The queue of mail waiting for its next delivery attempt, per MTA: what
# SmtpQueueDeferredMessageOld watches. Parked mail (hold, frozen,
# quarantine, suspended) is there on purpose and must not fire it.
RETRY_QUEUES = {"postfix": "deferred", "exim": "queue", "sendmail": "mqueue", "opensmtpd": "pending"}


def test_the_old_message_alert_watches_each_mtas_retry_queue():
    from exporter.queue import FORMATS

    expr = next(r["expr"] for r in rules("alert") if r["alert"] == "SmtpQueueDeferredMessageOld")
    selected = re.search(r'smtp_queue_oldest_message_age_seconds\{queue=~"([^"]+)"\}', expr)
    assert selected, expr
    assert set(selected.group(1).split("|")) == set(RETRY_QUEUES.values())
    assert set(RETRY_QUEUES) == set(FORMATS)
    for mta, queue in RETRY_QUEUES.items():
        assert queue in FORMATS[mta].queues, (mta, queue)
    # The parked queues are none of the retry queues.
    parked = {q for f in FORMATS.values() for q in f.queues} - set(RETRY_QUEUES.values())
    assert parked >= {"hold", "frozen", "quarantine", "suspended"}

"""Reading the Grafana dashboards in grafana/ and filling in their variables,
for the tests that lint the dashboards and the ones that run their queries.

- load_dashboards(kind="provisioned") -> {file name: dashboard dict};
  kind is "provisioned", "import" or "all" (keys then "dashboards/NAME", "import/NAME").
- iter_panels(dashboard): every panel, rows and the panels inside rows included.
- iter_targets(dashboard) -> [Query(panel_title, expr, ref_id, instant, legend_format)];
  instant is True for instant queries (stat and table totals over `$__range`).
- iter_queries(dashboard) -> [(panel_title, expr)], the same as pairs.
- iter_variable_queries(dashboard) -> [(variable name, "label_values(selector, label)")].
- label_values_selector(query) -> (selector, label) of a label_values() query.
- variables_used(expr) -> the Grafana variables expr names.
- fill_variables(expr, job=".*", instance=".*", *, rate_interval="5m",
  range_="1h", interval="1m", **variables) -> PromQL that Prometheus accepts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import NamedTuple

from helpers import REPO

GRAFANA = REPO / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
IMPORT_DIR = GRAFANA / "import"
# Values fill_variables gives the variables after job and instance unless told
# otherwise: the dashboards' "All" (their allValue).
DEFAULT_VARIABLE_VALUES = {"service": ".*", "direction": ".*", "remote": ".*", "code": ".*", "enhanced": ".*"}


def load_dashboards(kind: str = "provisioned") -> dict[str, dict]:
    """{file name: dashboard} of grafana/dashboards ("provisioned"),
    grafana/import ("import"), or both ("all": keys "dashboards/NAME", "import/NAME")."""
    dirs = {"provisioned": [DASHBOARD_DIR], "import": [IMPORT_DIR], "all": [DASHBOARD_DIR, IMPORT_DIR]}[kind]
    out = {}
    for directory in dirs:
        for path in sorted(directory.glob("*.json")):
            key = f"{directory.name}/{path.name}" if kind == "all" else path.name
            out[key] = json.loads(path.read_text(encoding="utf-8"))
    return out


def iter_panels(dashboard: dict) -> Iterator[dict]:
    def walk(panels):
        for panel in panels:
            yield panel
            yield from walk(panel.get("panels", []))

    yield from walk(dashboard.get("panels", []))


class Query(NamedTuple):
    panel_title: str
    expr: str
    ref_id: str
    instant: bool
    legend_format: str


def iter_targets(dashboard: dict) -> list[Query]:
    """Every panel query (hidden ones too), in panel order."""
    out = []
    for panel in iter_panels(dashboard):
        for t in panel.get("targets", []):
            if "expr" in t:
                out.append(Query(panel.get("title", ""), t["expr"], t.get("refId", ""),
                                 bool(t.get("instant")) and not t.get("range"), t.get("legendFormat", "")))
    return out


def iter_queries(dashboard: dict) -> list[tuple[str, str]]:
    """[(panel title, PromQL with Grafana variables)] of every panel query."""
    return [(q.panel_title, q.expr) for q in iter_targets(dashboard)]


def _variable_query_text(variable: dict) -> str:
    query = variable.get("query", "")
    return query.get("query", "") if isinstance(query, dict) else query


def iter_variable_queries(dashboard: dict) -> list[tuple[str, str]]:
    """[(variable name, query)] of the dashboard's query variables."""
    return [
        (v["name"], _variable_query_text(v))
        for v in dashboard.get("templating", {}).get("list", [])
        if v.get("type") == "query"
    ]


_LABEL_VALUES_RE = re.compile(
    r"^\s*label_values\(\s*(?P<selector>.+?)\s*,\s*(?P<label>[A-Za-z_]\w*)\s*\)\s*$", re.DOTALL)


def label_values_selector(query: str) -> tuple[str, str]:
    """(selector, label) of `label_values(selector, label)`; ValueError otherwise."""
    m = _LABEL_VALUES_RE.match(query)
    if not m:
        raise ValueError(f"not a label_values(selector, label) query: {query!r}")
    return m["selector"], m["label"]


_VARIABLE_RE = re.compile(r"\$\{(?P<braced>\w+)(?::(?P<fmt>\w+))?\}|\$(?P<plain>\w+)")
_REGEX_SPECIAL = set("$^*{}[]'+?.()|")


def _regex_escape(value: str) -> str:
    """Grafana's escaping of one value of a multi-value variable in PromQL."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\\\\\")
        elif ch in _REGEX_SPECIAL:
            out.append("\\\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _format_value(value) -> str:
    if isinstance(value, str):
        return value
    values = [_regex_escape(v) for v in value]
    return values[0] if len(values) == 1 else "(" + "|".join(values) + ")"


def variables_used(expr: str) -> set[str]:
    """Names of the Grafana variables in expr (not label_replace's $1, $2)."""
    return {
        m["braced"] or m["plain"]
        for m in _VARIABLE_RE.finditer(expr)
        if not (m["braced"] or m["plain"]).isdigit()
    }


def fill_variables(
    expr: str,
    job: str | list[str] = ".*",
    instance: str | list[str] = ".*",
    *,
    rate_interval: str = "5m",
    range_: str = "1h",
    interval: str = "1m",
    **variables: str | list[str],
) -> str:
    """expr with its Grafana variables replaced, as Grafana would send it.

    A str value is put in as it is: it is a regex (".*" is "All"). A list of
    str is a multi-value selection of literal values, escaped and joined as
    Grafana does ("(a|b)"). service and the drill-down's direction, remote,
    code and enhanced default to ".*" (their "All"). rate_interval, range_ and interval stand
    for $__rate_interval, $__range and $__interval: give rate_interval at least
    four scrape intervals. label_replace's "$1" is left alone; any other
    unknown variable raises ValueError.
    """
    values = {
        **DEFAULT_VARIABLE_VALUES,
        **variables,
        "job": job,
        "instance": instance,
        "__rate_interval": rate_interval,
        "__range": range_,
        "__interval": interval,
    }

    def replace(m: re.Match) -> str:
        name = m["braced"] or m["plain"]
        if name.isdigit():
            return m[0]
        if name not in values:
            raise ValueError(f"no value for Grafana variable ${name} in {expr!r}")
        return _format_value(values[name])

    return _VARIABLE_RE.sub(replace, expr)

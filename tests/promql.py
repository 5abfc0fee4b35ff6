"""A small PromQL scanner, enough to find a query's metric selectors and
ranges, and the metric names an exporter's scrape gives a query to use.

- metric_selectors(expr) -> [Selector(metric, matchers)]; metric is "" for `{__name__=...}`.
- range_selectors(expr) -> ["$__rate_interval", "5m", "5m:1m", ...].
- scan(expr) -> Scan(selectors, ranges, calls), calls being the functions
  and aggregations called.
- exposition_names(text) -> every metric and sample name a text exposition offers.
- known_metric_names() -> frozenset of the names a dashboard may use.
- names_with_label(label) -> frozenset of the exporter's sample names whose series carry label.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from helpers import run_once

from exporter.metrics import METRICS, QUEUE_GAUGES
from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.parser import text_string_to_metric_families

# Series that Prometheus itself adds for every target.
PROMETHEUS_SERIES = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
}


_TOKEN_RE = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<var>\$\{[^}]*\}|\$\w+)
    | (?P<duration>(?:\d+(?:ms|[smhdwy]))+(?![\w.]))
    | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<ident>[A-Za-z_:][\w:]*)
    | (?P<punct>[(){}\[\],])
    | (?P<op>=~|!~|==|!=|<=|>=|[-+*/%^<>=@:])
    """,
    re.VERBOSE,
)
# Keywords followed by a list of label names in parentheses.
_LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}


class Selector(NamedTuple):
    metric: str  # "" for a selector without a metric name
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)


class Scan(NamedTuple):
    selectors: list[Selector]
    ranges: list[str]
    calls: list[str]


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        m = _TOKEN_RE.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read PromQL at {expr[pos:pos + 30]!r} in {expr!r}")
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m[0]))
        pos = m.end()
    return out


def _closing(tokens: list[tuple[str, str]], start: int, open_: str, close: str) -> int:
    depth = 0
    for i in range(start, len(tokens)):
        if tokens[i] == ("punct", open_):
            depth += 1
        elif tokens[i] == ("punct", close):
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced {open_!r}")


def _matchers(tokens: list[tuple[str, str]]) -> tuple[tuple[str, str, str], ...]:
    out, i = [], 0
    while i < len(tokens):
        if tokens[i] == ("punct", ","):
            i += 1
            continue
        if i + 3 > len(tokens):
            raise ValueError(f"bad label matcher {tokens[i:]}")
        (k1, label), (k2, op), (k3, value) = tokens[i:i + 3]
        if k1 != "ident" or k2 != "op" or k3 != "string":
            raise ValueError(f"bad label matcher {label}{op}{value}")
        out.append((label, op, value[1:-1]))
        i += 3
    return tuple(out)


def scan(expr: str) -> Scan:
    tokens = _tokens(expr)
    selectors, ranges, calls = [], [], []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if kind == "ident":
            if text in _LABEL_LIST_KEYWORDS:
                i = _closing(tokens, i + 1, "(", ")") + 1 if nxt == ("punct", "(") else i + 1
                continue
            if text.lower() in _KEYWORDS:
                i += 1
                continue
            if text in _AGGREGATIONS or nxt == ("punct", "("):
                calls.append(text)
                i += 1
                continue
            if nxt == ("punct", "{"):
                end = _closing(tokens, i + 1, "{", "}")
                selectors.append(Selector(text, _matchers(tokens[i + 2:end])))
                i = end + 1
            else:
                selectors.append(Selector(text, ()))
                i += 1
            continue
        if (kind, text) == ("punct", "{"):
            end = _closing(tokens, i, "{", "}")
            selectors.append(Selector("", _matchers(tokens[i + 1:end])))
            i = end + 1
            continue
        if (kind, text) == ("punct", "["):
            end = _closing(tokens, i, "[", "]")
            ranges.append("".join(t for _, t in tokens[i + 1:end]))
            i = end + 1
            continue
        i += 1
    return Scan(selectors, ranges, calls)


def metric_selectors(expr: str) -> list[Selector]:
    return scan(expr).selectors


def range_selectors(expr: str) -> list[str]:
    """The text inside every [...] of expr: "$__rate_interval", "5m", "5m:1m"."""
    return scan(expr).ranges


def exposition_names(text: str) -> set[str]:
    """Every name a query may select in a text exposition: each family's
    (a counter's with _total), its histogram or summary series, and each sample's."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name + "_total" if family.type == "counter" else family.name)
        if family.type in ("histogram", "summary"):
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        names.update(sample.name for sample in family.samples)
    return names


def names_with_label(label: str) -> frozenset[str]:
    """Sample names of the exporter's metrics whose series carry label (a
    histogram's _bucket, _sum and _count)."""
    suffixes = {"counter": ("",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    return frozenset(metric.sample_name + suffix for metric in METRICS if label in metric.labels
                     for suffix in suffixes[metric.kind])


@functools.lru_cache(maxsize=1)
def known_metric_names() -> frozenset[str]:
    """Metric names a dashboard may use: what `--once` exposes on tests/data/once.log,
    the process and platform collectors the daemon adds, the daemon's queue probe
    gauges, and Prometheus's `up` & co."""
    proc = run_once("tests/data/once.log")
    assert proc.returncode == 0, proc.stderr.decode()
    names = exposition_names(proc.stdout.decode())
    # The daemon registers these two collectors besides the exporter's metrics.
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    names |= exposition_names(generate_latest(registry).decode())
    names |= {d.sample_name for d in QUEUE_GAUGES}  # registered by the daemon with a queue probe
    return frozenset(names | PROMETHEUS_SERIES)

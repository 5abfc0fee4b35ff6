#!/usr/bin/env python3
"""Write a test copy of the smtp-reply-exporter rule files with short `for:`
durations, short windows and changed thresholds.

The shipped rules keep their production `for:` durations and windows; an
end-to-end test against a real Prometheus cannot wait 15 minutes for an
alert, so it loads a rewritten copy instead:

    from rules_for_tests import write_test_rules   # deploy/prometheus on sys.path
    paths = write_test_rules(
        tmp_path / "rules",
        for_="10s",                      # every alert's `for:` (or {alert: duration})
        windows={"5m": "30s"},           # range selectors and offsets in every expr
        thresholds={"reply_min_per_minute": 0,
                    "reply_5xx_ratio{direction=outbound}": 0.2},
        interval="1s",                   # every group's evaluation interval
    )

or from a shell:

    python3 deploy/prometheus/rules_for_tests.py --out /tmp/rules --for 10s \\
        --window 5m=30s --threshold reply_min_per_minute=0 --interval 1s

Only the copy changes. Recorded series keep their names (a rate5m rule
rewritten to [30s] is still called ...:rate5m). Windows are replaced by exact
duration text: {"5m": "30s"} changes `[5m]` and `offset 5m`, not `[15m]`.
Threshold names are those of smtp:threshold:NAME in
smtp-reply-exporter.thresholds.yml; a `{label=value,...}` suffix picks one of
several defaults (reply_5xx_ratio and reply_4xx_ratio have one per
direction, and some per service: those change only when the key names their
service); only defaults (rules without an `instance` label) change.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys

from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

RULES_DIR = Path(__file__).resolve().parent / "rules"
THRESHOLD_PREFIX = "smtp:threshold:"

_DURATION = r"(?:\d+(?:ms|[smhdwy]))+"
# A range `[5m]`, a subquery `[1h:5m]` (both parts), and `offset 1d`.
_RANGE_RE = re.compile(rf"(\[)({_DURATION})(?=[\]:])|(:)({_DURATION})(?=\])|(\boffset\s+)({_DURATION})")
_DURATION_RE = re.compile(rf"^{_DURATION}$")
_THRESHOLD_KEY_RE = re.compile(r"^([a-z0-9_]+)(?:\{([^}]*)\})?$")


def _check_duration(value: str, what: str) -> str:
    if not isinstance(value, str) or not _DURATION_RE.match(value):
        raise ValueError(f"{what}: {value!r} is not a Prometheus duration such as 30s, 5m or 1h30m")
    return value


def rewrite_expr(expr: str, windows: Mapping[str, str]) -> str:
    """Replace the durations of range selectors, subqueries and offsets in a
    PromQL expression, by exact text: {"5m": "30s"}."""

    def sub(m: re.Match) -> str:
        for prefix_group in (1, 3, 5):
            prefix = m.group(prefix_group)
            if prefix is not None:
                old = m.group(prefix_group + 1)
                return prefix + windows.get(old, old)
        return m.group(0)

    return _RANGE_RE.sub(sub, expr)


def _parse_threshold_key(key: str) -> tuple[str, dict[str, str]]:
    m = _THRESHOLD_KEY_RE.match(key.removeprefix(THRESHOLD_PREFIX))
    if not m:
        raise ValueError(f"threshold {key!r}: expected NAME or NAME{{label=value,...}}")
    labels = {}
    for part in filter(None, (p.strip() for p in (m.group(2) or "").split(","))):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"threshold {key!r}: {part!r} is not label=value")
        labels[name.strip()] = value.strip().strip("\"'")
    return m.group(1), labels


def _threshold_matches(rule_labels: Mapping[str, str], key_labels: Mapping[str, str]) -> bool:
    """Whether a threshold key's labels pick a default with these labels: all
    of the key's labels match, and a per-service value only by its service."""
    return (all(rule_labels.get(k) == v for k, v in key_labels.items())
            and rule_labels.get("service") == key_labels.get("service"))


def rewrite_rules(
    doc: Mapping,
    *,
    for_: str | Mapping[str, str] | None = None,
    windows: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    interval: str | None = None,
) -> dict:
    """Return a rewritten copy of one parsed rule file ({"groups": [...]}).

    for_: a duration for every alert's `for:`, or {alertname: duration}.
    windows: {old duration: new duration} for range selectors and offsets.
    thresholds: {NAME or NAME{label=value}: number} for smtp:threshold:NAME defaults.
    interval: the evaluation interval of every group.
    Raises ValueError for a bad duration. Alert and threshold names that
    match nothing in this one file are ignored here; write_test_rules checks
    them across all the files it rewrites.
    """
    doc = copy.deepcopy(dict(doc))
    windows = {_check_duration(k, "window"): _check_duration(v, "window") for k, v in (windows or {}).items()}
    if isinstance(for_, str):
        _check_duration(for_, "for")
    elif for_ is not None:
        for_ = {k: _check_duration(v, f"for of {k}") for k, v in for_.items()}
    wanted = [(_parse_threshold_key(k), float(v)) for k, v in (thresholds or {}).items()]
    if interval is not None:
        _check_duration(interval, "interval")

    for group in doc.get("groups") or []:
        if interval is not None:
            group["interval"] = interval
        for rule in group.get("rules") or []:
            if windows and isinstance(rule.get("expr"), str):
                rule["expr"] = rewrite_expr(rule["expr"], windows)
            if "alert" in rule and for_ is not None:
                if isinstance(for_, str):
                    rule["for"] = for_
                elif rule["alert"] in for_:
                    rule["for"] = for_[rule["alert"]]
            record = rule.get("record", "")
            if record.startswith(THRESHOLD_PREFIX) and "instance" not in (rule.get("labels") or {}):
                name = record[len(THRESHOLD_PREFIX):]
                labels = rule.get("labels") or {}
                for (want_name, want_labels), value in wanted:
                    if want_name == name and _threshold_matches(labels, want_labels):
                        rule["expr"] = f"vector({value!r})"
    return doc


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(str, _str_presenter)


def dump_rules(doc: Mapping) -> str:
    return yaml.dump(dict(doc), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10_000)


def write_test_rules(
    out_dir: str | Path,
    *,
    rule_files: Iterable[str | Path] | None = None,
    for_: str | Mapping[str, str] | None = None,
    windows: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    interval: str | None = None,
) -> list[Path]:
    """Rewrite rule files (default: every *.yml in deploy/prometheus/rules)
    into out_dir under their own names; return the written paths.

    Every threshold named in `thresholds` and every alert named in a `for_`
    mapping must exist in the files, else ValueError (a typo would leave a
    test silently on production values).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [Path(p) for p in rule_files] if rule_files is not None else sorted(RULES_DIR.glob("*.yml"))
    docs = [(f, yaml.safe_load(f.read_text())) for f in files]

    seen_alerts = {r["alert"] for _, d in docs for g in d.get("groups") or []
                   for r in g.get("rules") or [] if "alert" in r}
    if isinstance(for_, Mapping):
        unknown = sorted(set(for_) - seen_alerts)
        if unknown:
            raise ValueError(f"for_: no alert named {', '.join(unknown)} in {', '.join(map(str, files))}")
    defaults = [
        (r["record"][len(THRESHOLD_PREFIX):], r.get("labels") or {})
        for _, d in docs
        for g in d.get("groups") or []
        for r in g.get("rules") or []
        if r.get("record", "").startswith(THRESHOLD_PREFIX) and "instance" not in (r.get("labels") or {})
    ]
    for key in thresholds or {}:
        name, labels = _parse_threshold_key(key)
        if not any(n == name and _threshold_matches(have, labels) for n, have in defaults):
            raise ValueError(f"thresholds: no default smtp:threshold:{key} in {', '.join(map(str, files))}")

    written = []
    for src, doc in docs:
        new = rewrite_rules(doc, for_=for_, windows=windows, thresholds=thresholds, interval=interval)
        dst = out / src.name
        header = f"# Test copy of {src.name}, rewritten by rules_for_tests.py: not for production.\n"
        dst.write_text(header + dump_rules(new))
        written.append(dst)
    return written


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out = {}
    for v in values:
        k, sep, val = v.partition("=") if "{" not in v else v.rpartition("=")
        if not sep:
            raise SystemExit(f"--{what} {v!r}: expected FROM=TO or NAME=VALUE")
        out[k] = val
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="rule files (default: every *.yml in deploy/prometheus/rules)")
    ap.add_argument("--out", required=True, help="directory to write the test copies to")
    ap.add_argument("--for", dest="for_", action="append", default=[], metavar="DURATION|ALERT=DURATION",
                    help="`for:` of every alert, or of one alert (repeatable)")
    ap.add_argument("--window", action="append", default=[], metavar="FROM=TO",
                    help="replace a range/offset duration in every expr, e.g. 5m=30s (repeatable)")
    ap.add_argument("--threshold", action="append", default=[], metavar="NAME=VALUE",
                    help="set a smtp:threshold:NAME default, e.g. reply_min_per_minute=0 or "
                         "'reply_5xx_ratio{direction=outbound}=0.2' (repeatable)")
    ap.add_argument("--interval", help="evaluation interval of every group, e.g. 1s")
    args = ap.parse_args(argv)

    for_: str | dict[str, str] | None = None
    if len(args.for_) == 1 and "=" not in args.for_[0]:
        for_ = args.for_[0]
    elif args.for_:
        for_ = _pairs(args.for_, "for")
    try:
        written = write_test_rules(
            args.out,
            rule_files=args.files or None,
            for_=for_,
            windows=_pairs(args.window, "window"),
            thresholds={k: float(v) for k, v in _pairs(args.threshold, "threshold").items()},
            interval=args.interval,
        )
    except ValueError as e:
        print(f"rules_for_tests.py: {e}", file=sys.stderr)
        return 2
    for p in written:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())

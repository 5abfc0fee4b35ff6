"""Shared test helpers: run the real CLI and read its exposition."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def run_once(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--once", *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        check=False,
    )


def samples(exposition: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted label items): value} of a text exposition."""
    out = {}
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def replies_by(exposition: str, *labels: str) -> Counter:
    """smtp_replies_total summed over every label but the ones named."""
    totals: Counter = Counter()
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if s.name == "smtp_replies_total":
                totals[tuple(s.labels[name] for name in labels)] += int(s.value)
    return totals


def labels_only(events):
    """A parser's events without the relay host and reply text, which parser
    tables test apart: what is left is what the labels are made of."""
    if events is None:
        return None
    return [e._replace(host="", text="") if len(e) > 2 else e._replace(host="") for e in events]

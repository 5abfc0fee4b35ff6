"""`--once --output table`: a human summary of the replies, pflogsumm style."""

from __future__ import annotations

from collections import defaultdict

from exporter import codes
from exporter.metrics import LINE_RESULTS, ExporterMetrics
from exporter.replies import DELIVERY_STATUSES, INBOUND, OUTBOUND

_TITLES = {
    OUTBOUND: "Outbound: replies from remote servers to us",
    INBOUND: "Inbound: replies from our server to its clients",
}


def _value(metrics: ExporterMetrics, name: str, **labels: str) -> int:
    """A sample's value summed over the labels not named (e.g. over sources)."""
    total = 0.0
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return int(total)


def _meaning(code: str, enhanced: str) -> str:
    parts = []
    for value, lookup in ((code, codes.reply_code_meaning), (enhanced, codes.enhanced_meaning)):
        try:
            parts.append(lookup(value))
        except ValueError:
            pass  # "" (not logged) or "other" (past the series cap)
    return " / ".join(parts)


def render(metrics: ExporterMetrics) -> str:
    out: list[str] = []
    lines = {r: _value(metrics, "smtp_exporter_lines_total", result=r) for r in LINE_RESULTS}
    total = sum(lines.values())
    out.append(
        f"Lines read: {total}  ("
        + ", ".join(f"{r} {lines[r]}" for r in LINE_RESULTS)
        + f"), {_value(metrics, 'smtp_exporter_read_bytes_total')} bytes"
    )
    deliveries = "  ".join(
        f"{s} {_value(metrics, 'smtp_deliveries_total', status=s)}" for s in DELIVERY_STATUSES
    )
    out.append(f"Delivery attempts: {deliveries}")

    by_direction: dict[str, dict[tuple[str, str, str], float]] = defaultdict(lambda: defaultdict(float))
    for reply, n in metrics.reply_counts().items():
        by_direction[reply.direction][(reply.reply_class, reply.code, reply.enhanced)] += n
    for direction in (OUTBOUND, INBOUND):
        rows = by_direction.get(direction, {})
        count = int(sum(rows.values()))
        out.append("")
        out.append(f"{_TITLES[direction]}: {count}")
        if not count:
            continue
        classes: dict[str, float] = defaultdict(float)
        for (reply_class, _, _), n in rows.items():
            classes[reply_class] += n
        out.append(
            "  by class: "
            + "  ".join(f"{c} {int(n)} ({100 * n / count:.1f}%)" for c, n in sorted(classes.items()))
        )
        out.append(f"  {'count':>8}  {'class':5}  {'code':4}  {'enhanced':8}  meaning")
        for (reply_class, code, enhanced), n in sorted(rows.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(
                f"  {int(n):>8}  {reply_class:5}  {code or '-':4}  {enhanced or '-':8}  "
                f"{_meaning(code, enhanced)}"
            )
    return "\n".join(out) + "\n"

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
    lines = metrics.totals("smtp_exporter_lines_total", "result")
    out.append(
        f"Lines read: {int(sum(lines.values()))}  ("
        + ", ".join(f"{r} {int(lines.get((r,), 0))}" for r in LINE_RESULTS)
        + f"), {int(sum(metrics.totals('smtp_exporter_read_bytes_total').values()))} bytes"
    )
    deliveries = metrics.totals("smtp_deliveries_total", "status")
    out.append(
        "Delivery attempts: " + "  ".join(f"{s} {int(deliveries.get((s,), 0))}" for s in DELIVERY_STATUSES)
    )

    by_direction: dict[str, dict[tuple[str, ...], float]] = defaultdict(lambda: defaultdict(float))
    for (direction, *key), n in metrics.totals(
        "smtp_replies_total", "direction", "class", "code", "enhanced"
    ).items():
        if n:
            by_direction[direction][tuple(key)] += n
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
    out.extend(_breakdown(metrics, "Inbound by service", "smtp_replies_total",
                          ("service", "class"), direction=INBOUND))
    out.extend(_breakdown(metrics, "Outbound by remote provider", "smtp_replies_total",
                          ("remote", "class"), direction=OUTBOUND))
    out.extend(_breakdown(metrics, "Why 4xx and 5xx replies failed", "smtp_reply_reasons_total",
                          ("direction", "class", "reason")))
    return "\n".join(out) + "\n"


def _breakdown(metrics: ExporterMetrics, title: str, name: str, labels: tuple[str, ...],
               direction: str | None = None) -> list[str]:
    """A count column and one column per label (as wide as its longest value), largest first."""
    where = {"direction": direction} if direction else None
    rows = {key: n for key, n in metrics.totals(name, *labels, where=where).items() if n}
    if not rows:
        return []
    widths = [max(12, *(len(key[i]) for key in rows)) for i in range(len(labels))]
    out = ["", f"{title}:",
           f"  {'count':>8}  " + "  ".join(f"{label:{w}}" for label, w in zip(labels, widths, strict=True)).rstrip()]
    for key, n in sorted(rows.items(), key=lambda kv: (-kv[1], kv[0])):
        out.append(f"  {int(n):>8}  " + "  ".join(f"{v or '-':{w}}" for v, w in zip(key, widths, strict=True)).rstrip())
    return out

"""ExporterMetrics on a fresh registry, read back with get_sample_value."""

from exporter.labels import Counts
from exporter.metrics import ExporterMetrics

LINES = {"matched": 9, "ignored": 1, "unrecognized": 0, "truncated": 0, "invalid_utf8": 0}


def value(m, name, **labels):
    return m.registry.get_sample_value(name, labels)


def counts(replies=(), reasons=(), deliveries=()):
    c = Counts()
    c.replies.update(replies)
    c.reasons.update(reasons)
    c.deliveries.update(deliveries)
    return c


def test_counts_batch_into_counters():
    m = ExporterMetrics()
    deferred = ("outbound", "451", "4xx", "4.7.1", "rcpt", "google")
    m.add_counts(counts({deferred: 3}, {("outbound", "4xx", "greylisted", "google"): 3},
                        {("deferred", "google"): 2}))
    m.add_counts(counts({deferred: 1}))
    assert value(m, "smtp_replies_total", direction="outbound", code="451", **{"class": "4xx"},
                 enhanced="4.7.1", stage="rcpt", remote="google") == 4
    assert value(m, "smtp_reply_reasons_total", direction="outbound", **{"class": "4xx"},
                 reason="greylisted", remote="google") == 3
    assert value(m, "smtp_deliveries_total", status="deferred", remote="google") == 2
    assert value(m, "smtp_deliveries_total", status="sent", remote="other") == 0  # pre-created


def test_series_cap_keeps_totals_by_direction_and_class_exact():
    m = ExporterMetrics(max_reply_series=3)
    replies = {("outbound", "550", "5xx", f"5.1.{i}", "rcpt", "other"): 1 for i in range(10)}
    replies[("inbound", "450", "4xx", "4.7.1", "rcpt", "")] = 5
    m.add_counts(counts(replies))
    series = [s for f in m.replies.collect() for s in f.samples if s.name == "smtp_replies_total"]
    assert len(series) <= 3 + 2  # the cap, plus one "other" set per direction/class/stage seen
    total_5xx = sum(s.value for s in series if s.labels["class"] == "5xx")
    assert total_5xx == 10
    assert sum(s.value for s in series if s.labels["class"] == "4xx") == 5
    assert value(m, "smtp_exporter_label_overflow_total") == sum(
        s.value for s in series if s.labels["code"] == "other"
    ) > 0


def test_snapshot_restores_into_a_fresh_registry():
    m = ExporterMetrics()
    m.add_counts(counts({("inbound", "554", "5xx", "5.7.1", "rcpt", ""): 7},
                        {("inbound", "5xx", "policy", ""): 7}, {("sent", "yahoo"): 2}))
    m.sink_for("/var/log/mail.log").add(Counts(), LINES, 1234)
    n = ExporterMetrics()
    n.restore(m.snapshot())
    assert n.snapshot() == m.snapshot()
    assert value(n, "smtp_exporter_read_bytes_total", source="/var/log/mail.log") == 1234
    assert value(n, "smtp_reply_reasons_total", direction="inbound", **{"class": "5xx"},
                 reason="policy", remote="") == 7


def test_state_written_before_a_label_existed_restores_with_it_empty():
    n = ExporterMetrics()
    n.restore([["smtp_replies_total", {"direction": "inbound", "code": "550", "class": "5xx",
                                       "enhanced": "5.1.1", "stage": "rcpt"}, 4]])
    assert value(n, "smtp_replies_total", direction="inbound", code="550", **{"class": "5xx"},
                 enhanced="5.1.1", stage="rcpt", remote="") == 4

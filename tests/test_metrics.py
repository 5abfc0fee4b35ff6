"""ExporterMetrics on a fresh registry, read back with get_sample_value."""

from exporter.metrics import ExporterMetrics
from exporter.replies import Delivery, Reply


def value(m, name, **labels):
    return m.registry.get_sample_value(name, labels)


def test_events_batch_into_counters():
    m = ExporterMetrics()
    r = Reply("outbound", "451", "4xx", "4.7.1", "rcpt")
    m.add_events({r: 3, Delivery("deferred"): 2})
    m.add_events({r: 1})
    assert value(m, "smtp_replies_total", direction="outbound", code="451", **{"class": "4xx"},
                 enhanced="4.7.1", stage="rcpt") == 4
    assert value(m, "smtp_deliveries_total", status="deferred") == 2
    assert value(m, "smtp_deliveries_total", status="sent") == 0  # pre-created


def test_series_cap_keeps_totals_by_direction_and_class_exact():
    m = ExporterMetrics(max_reply_series=3)
    events = {Reply("outbound", "550", "5xx", f"5.1.{i}", "rcpt"): 1 for i in range(10)}
    events[Reply("inbound", "450", "4xx", "4.7.1", "rcpt")] = 5
    m.add_events(events)
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
    m.add_events({Reply("inbound", "554", "5xx", "5.7.1", "rcpt"): 7, Delivery("sent"): 2})
    m.sink_for("/var/log/mail.log").add({}, {"matched": 9, "ignored": 1, "unrecognized": 0,
                                              "truncated": 0, "invalid_utf8": 0}, 1234)
    n = ExporterMetrics()
    n.restore(m.snapshot())
    assert n.snapshot() == m.snapshot()
    assert value(n, "smtp_exporter_read_bytes_total", source="/var/log/mail.log") == 1234

"""ExporterMetrics on a fresh registry, read back with get_sample_value."""

from exporter.labels import MAX_SERVICES, SUM, Counts, Labeller
from exporter.metrics import ExporterMetrics
from exporter.parsers import FORMATS
from exporter.replies import Reply
from exporter.scanner import LineScanner

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
    deferred = ("outbound", "451", "4xx", "4.7.1", "rcpt", "google", "postfix")
    m.add_counts(counts({deferred: 3}, {("outbound", "4xx", "greylisted", "google", "postfix"): 3},
                        {("deferred", "google", "postfix"): 2}))
    m.add_counts(counts({deferred: 1}))
    assert value(m, "smtp_replies_total", direction="outbound", code="451", **{"class": "4xx"},
                 enhanced="4.7.1", stage="rcpt", remote="google", service="postfix") == 4
    assert value(m, "smtp_reply_reasons_total", direction="outbound", **{"class": "4xx"},
                 reason="greylisted", remote="google", service="postfix") == 3
    assert value(m, "smtp_deliveries_total", status="deferred", remote="google", service="postfix") == 2
    # Made with the service's first count, so that its rates exist.
    assert value(m, "smtp_deliveries_total", status="sent", remote="other", service="postfix") == 0
    assert value(m, "smtp_delivery_delay_seconds_count", status="bounced", service="postfix") == 0


def reply_series(m):
    return [s for f in m.replies.collect() for s in f.samples if s.name == "smtp_replies_total"]


def test_series_cap_is_strict_and_keeps_totals_by_direction_and_class_exact():
    m = ExporterMetrics(max_reply_series=100)
    stages = ("connect", "helo", "mail", "rcpt", "data", "end_of_data")
    for batch in range(3):  # across batches, as blocks arrive
        replies = {}
        for i in range(400):
            direction = ("outbound", "inbound")[i % 2]
            code = ("451", "550")[i % 3 % 2]
            remote = ("google", "yahoo", "other")[i % 3] if direction == "outbound" else ""
            key = (direction, code, code[0] + "xx", f"{code[0]}.{batch}.{i}", stages[i % 6], remote, "postfix")
            replies[key] = 2
        m.add_counts(counts(replies))
    series = reply_series(m)
    assert len(series) <= 100
    assert sum(s.value for s in series) == 3 * 400 * 2
    for direction in ("outbound", "inbound"):
        for reply_class in ("4xx", "5xx"):
            got = sum(s.value for s in series if (s.labels["direction"], s.labels["class"]) == (direction, reply_class))
            want = 3 * 2 * sum(1 for i in range(400) if ("outbound", "inbound")[i % 2] == direction
                               and ("451", "550")[i % 3 % 2][0] + "xx" == reply_class)
            assert got == want
    folded = [s for s in series if s.labels["code"] == "other"]
    assert {(s.labels["enhanced"], s.labels["stage"]) for s in folded} == {("other", "unknown")}
    assert value(m, "smtp_exporter_label_overflow_total") == sum(s.value for s in folded) > 0


def test_worker_tallies_fold_like_the_metrics_and_overflow_is_counted_once():
    from exporter.scanner import Tally

    tally = Tally(max_reply_series=20)
    tally.add(counts({("outbound", "550", "5xx", f"5.1.{i}", "rcpt", "other", "exim"): 1 for i in range(50)}), {}, 0)
    assert len(tally.counts.replies) <= 20
    m = ExporterMetrics(max_reply_series=20)
    m.add_counts(tally.counts)
    assert len(reply_series(m)) <= 20
    assert value(m, "smtp_exporter_label_overflow_total") == tally.counts.overflow > 0
    assert sum(s.value for s in reply_series(m)) == 50


def test_snapshot_restores_into_a_fresh_registry():
    m = ExporterMetrics()
    m.add_counts(counts({("inbound", "554", "5xx", "5.7.1", "rcpt", "", "postfix/submission"): 7},
                        {("inbound", "5xx", "policy", "", "postfix/submission"): 7},
                        {("sent", "yahoo", "postfix"): 2}))
    m.sink_for("/var/log/mail.log").add(Counts(), LINES, 1234)
    n = ExporterMetrics()
    n.restore(m.snapshot())
    assert n.snapshot() == m.snapshot()
    assert value(n, "smtp_exporter_read_bytes_total", source="/var/log/mail.log") == 1234
    assert value(n, "smtp_reply_reasons_total", direction="inbound", **{"class": "5xx"},
                 reason="policy", remote="", service="postfix/submission") == 7


def test_state_written_before_a_label_existed_restores_with_it_empty():
    n = ExporterMetrics()
    n.restore([["smtp_replies_total", {"direction": "inbound", "code": "550", "class": "5xx",
                                       "enhanced": "5.1.1", "stage": "rcpt"}, 4]])
    assert value(n, "smtp_replies_total", direction="inbound", code="550", **{"class": "5xx"},
                 enhanced="5.1.1", stage="rcpt", remote="", service="") == 4


def test_series_cap_holds_across_restarts():
    m = ExporterMetrics(max_reply_series=100)
    for restart in range(3):
        m.add_counts(counts({("outbound", "550", "5xx", f"5.{restart}.{i}", "rcpt", "other", "postfix"): 1
                             for i in range(500)}))
        assert len(reply_series(m)) <= 100
        snapshot = m.snapshot()
        m = ExporterMetrics(max_reply_series=100)
        m.restore(snapshot)
    assert len(reply_series(m)) <= 100
    assert sum(s.value for s in reply_series(m)) == 1500
    overflow = value(m, "smtp_exporter_label_overflow_total")
    assert overflow == sum(s.value for s in reply_series(m) if s.labels["code"] == "other") > 0


def test_restore_skips_counters_this_version_does_not_have():
    n = ExporterMetrics()
    n.restore([["smtp_retired_total", {"source": "/var/log/mail.log"}, 3],
               ["smtp_exporter_read_bytes_total", {"source": "/var/log/mail.log"}, 99]])
    assert value(n, "smtp_exporter_read_bytes_total", source="/var/log/mail.log") == 99
    assert value(n, "smtp_retired_total", source="/var/log/mail.log") is None


def services_of(m):
    return {s.labels["service"] for s in reply_series(m)}


def test_past_the_service_cap_new_services_count_as_other_and_totals_stay_exact():
    m = ExporterMetrics()
    for i in range(MAX_SERVICES + 5):
        m.add_counts(counts({("inbound", "550", "5xx", "5.1.1", "rcpt", "", f"svc{i}"): 2}))
    assert services_of(m) == {f"svc{i}" for i in range(MAX_SERVICES)} | {"other"}
    assert value(m, "smtp_replies_total", direction="inbound", code="550", **{"class": "5xx"}, enhanced="5.1.1",
                 stage="rcpt", remote="", service="other") == 10
    assert sum(s.value for s in reply_series(m)) == 2 * (MAX_SERVICES + 5)
    # A service known before the cap was reached keeps its own label.
    m.add_counts(counts({("inbound", "550", "5xx", "5.1.1", "rcpt", "", "svc3"): 1}))
    assert value(m, "smtp_replies_total", direction="inbound", code="550", **{"class": "5xx"}, enhanced="5.1.1",
                 stage="rcpt", remote="", service="svc3") == 3


def test_the_service_cap_holds_across_a_restart_and_restored_rows_without_a_service_take_no_place():
    m = ExporterMetrics()
    m.add_counts(counts({("inbound", "550", "5xx", "5.1.1", "rcpt", "", f"svc{i}"): 1 for i in range(MAX_SERVICES)}))
    n = ExporterMetrics()
    n.restore([*m.snapshot(), ["smtp_replies_total", {"direction": "inbound", "code": "451", "class": "4xx",
                                                      "enhanced": "4.7.1", "stage": "rcpt", "remote": ""}, 4]])
    n.add_counts(counts({("inbound", "550", "5xx", "5.1.1", "rcpt", "", "newcomer"): 1}))
    assert services_of(n) == {f"svc{i}" for i in range(MAX_SERVICES)} | {"", "other"}


def test_a_tag_longer_than_any_real_one_counts_as_other():
    m = ExporterMetrics()
    m.add_counts(counts({("inbound", "550", "5xx", "5.1.1", "rcpt", "", "postfix/" + "x" * 5000): 1}))
    assert services_of(m) == {"other"}


def test_the_labeller_caps_services_too_so_a_tally_stays_small():
    events = {f"tag{i}": {Reply("inbound", "550", "5xx", "5.1.1", "rcpt", "", ""): 1} for i in range(100)}
    counted = Counts()
    Labeller().count(events, counted)
    assert len(counted.services()) == MAX_SERVICES + 1
    assert sum(counted.replies.values()) == 100


def reject(tag: str, code: str = "554", enhanced: str = "5.7.1") -> bytes:
    return (f"Jan  1 00:00:00 host {tag}[1]: NOQUEUE: reject: RCPT from h[192.0.2.1]: {code} {enhanced} "
            "<x@y>: no; from=<a@b> to=<x@y> proto=ESMTP helo=<h>\n").encode()


def scanner_into(m, **kw):
    """A Postfix scanner whose labeller shares the metrics' service cap, as the daemon's and --once's do."""
    return LineScanner((FORMATS["postfix"],), m.sink_for("x"), 16384, Labeller(services=m.services), **kw)


def test_other_takes_no_place_among_the_named_services():
    m = ExporterMetrics()
    names = [f"a{i:02d}" for i in range(10)] + [f"z{i:02d}" for i in range(11)]
    scanner_into(m).feed(b"".join(reject(f"{name}/smtpd") for name in names))
    assert len(services_of(m) - {"other"}) == MAX_SERVICES
    assert value(m, "smtp_replies_total", direction="inbound", code="554", **{"class": "5xx"}, enhanced="5.7.1",
                 stage="rcpt", remote="", service="other") == 1


def test_a_service_named_first_keeps_its_place_whatever_the_logs_hold_before_its_lines():
    m = ExporterMetrics()
    m.services.label("submission")  # as the daemon does for a source's configured service
    scanner_into(m).feed(b"".join(reject(f"postfix{i}/smtpd") for i in range(MAX_SERVICES + 3)))
    scanner_into(m, service="submission").feed(reject("postfix/smtpd") * 5)
    assert m.totals("smtp_replies_total", "service")[("submission",)] == 5


def test_max_reply_series_is_strict_with_many_services():
    m = ExporterMetrics(max_reply_series=100)
    scanner_into(m).feed(b"".join(reject(f"postfix{i % 21}/smtpd", f"{c}{i % 50:02d}", f"{c}.7.{i}")
                                  for i in range(400) for c in "45"))
    assert len(reply_series(m)) <= 100
    assert sum(s.value for s in reply_series(m)) == 800
    folded = [s for s in reply_series(m) if s.labels["code"] == "other"]
    assert {s.labels["service"] for s in folded} == {"other"}


def test_a_tag_that_does_not_print_counts_as_other():
    m = ExporterMetrics()
    m.add_counts(counts({("inbound", "550", "5xx", "5.1.1", "rcpt", "", "post\x00fix"): 1}))
    assert services_of(m) == {"other"}


def test_past_the_service_cap_delays_fold_into_other_too():
    m = ExporterMetrics()
    for i in range(MAX_SERVICES + 2):
        c = Counts()
        c.delays.update({("sent", f"s{i}", "0.1"): 1, ("sent", f"s{i}", SUM): 0.1})
        m.add_counts(c)
    assert value(m, "smtp_delivery_delay_seconds_count", status="sent", service="other") == 2
    assert value(m, "smtp_delivery_delay_seconds_count", status="sent", service="s0") == 1

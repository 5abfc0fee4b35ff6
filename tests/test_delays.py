"""Delivery delays: what each MTA logs of how long a message waited, read into
Delay events, and the histogram they fill."""

import pytest

from exporter.labels import BUCKET_BOUNDS, SUM, Counts, Labeller
from exporter.metrics import ExporterMetrics
from exporter.parsers import exim, opensmtpd, postfix, sendmail
from exporter.replies import Delay, duration_seconds
from helpers import metric_by
from prometheus_client import generate_latest

DURATIONS = [
    ("0.52", 0.52),  # Postfix: two significant digits
    ("2017", 2017.0),
    ("00:00:15", 15.0),  # Sendmail
    ("2+03:04:05", 2 * 86400 + 3 * 3600 + 4 * 60 + 5.0),  # Sendmail, days+
    ("0s", 0.0),  # Exim, OpenSMTPD
    ("1d2h3m4s", 93784.0),
    ("1w2d", 9 * 86400.0),  # Exim counts weeks
    ("0.125s", 0.125),  # Exim's log_selector +millisec, under 5 s
    ("", None), ("-3", None), ("1e3", None), ("nan", None), ("inf", None), ("1:2", None), ("5x", None),
    ("1.5.2", None),
]


@pytest.mark.parametrize("text,seconds", DURATIONS, ids=[d[0] or "empty" for d in DURATIONS])
def test_duration_seconds(text, seconds):
    assert duration_seconds(text) == seconds


def delays(events):
    return [e for e in events if isinstance(e, Delay)]


LINES = [
    ("postfix sent: delay= (its delays= split is not read)", postfix.parse,
     "Nov  3 17:44:15 mx1 postfix/smtp[2211]: 4Pc1Xk5tFpz3tG5: to=<ann@example.net>, "
     "relay=aspmx.l.example.com[2001:db8::1a]:25, delay=1.5, delays=0.01/0.01/0.52/0.94, dsn=2.0.0, "
     "status=sent (250 2.0.0 OK)",
     [Delay("sent", 1.5)]),
    ("postfix error transport, a day in the queue", postfix.parse,
     "Nov  3 17:44:15 mx1 postfix/error[2211]: 4Pc1Xk5tFpz3tG5: to=<a@gone.test>, relay=none, delay=86417, "
     "delays=86417/0/0/0.01, dsn=5.1.2, status=bounced (domain gone.test has no mail service)",
     [Delay("bounced", 86417.0)]),
    ("postfix local delivery: no SMTP, no delay", postfix.parse,
     "Nov  3 17:44:15 mx1 postfix/local[2211]: 4Pc1Xk5tFpz3tG5: to=<root@mx1>, relay=local, delay=0.1, "
     "delays=0/0/0/0.1, dsn=2.0.0, status=sent (delivered to mailbox)", []),
    ("postfix reject: no delay", postfix.parse,
     "Nov  3 17:44:15 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[192.0.2.1]: 550 5.1.1 <a@b.c>: "
     "Recipient address rejected: User unknown; from=<> to=<a@b.c> proto=ESMTP helo=<x>", []),
    ("postfix delay= damaged: no delay", postfix.parse,
     "Nov  3 17:44:15 mx1 postfix/smtp[2211]: 4Pc1Xk5tFpz3tG5: to=<ann@example.net>, "
     "relay=mx.example.net[192.0.2.1]:25, delay=3x, delays=0/0/1/2, dsn=2.0.0, status=sent (250 Ok)", []),
    ("sendmail: delay= (since queued), not xdelay=", sendmail.parse,
     "Apr  2 00:15:25 mta001 sendmail[12566]: u31FFPtp032300: to=<deferred1@example.com>, delay=1+00:00:15, "
     "xdelay=00:00:15, mailer=esmtp, pri=34527, relay=[93.184.216.34] [93.184.216.34], dsn=4.3.5, "
     "stat=Deferred: 451 4.3.5 Server configuration problem",
     [Delay("deferred", 86415.0)]),
    ("sendmail local mailer: no delay", sendmail.parse,
     "Oct 25 13:43:06 localhost sm-mta[7087]: v9PDh53r007087: to=root, delay=00:00:00, mailer=local, "
     "pri=30000, dsn=2.0.0, stat=Sent", []),
    ("opensmtpd: delay=1m3s", opensmtpd.parse,
     'Jul  6 06:01:48 ams-1 smtpd[75295]: 5df87c9ffd0e785d mta delivery evpid=f6e94209918f7e7b '
     'from=<g@example.org> to=<g@example.com> rcpt=<-> source="192.0.2.1" relay="192.0.2.2 (mx.example.com)" '
     'delay=1m3s result="TempFail" stat="421 4.7.0 Try again"',
     [Delay("deferred", 63.0)]),
    ("opensmtpd local delivery: no delay", opensmtpd.parse,
     "Jul  6 06:01:40 ams-1 smtpd[75295]: 5df87c9250bba470 mda delivery evpid=c405e39ad6bbc64f "
     "from=<g@example.org> to=<g@example.org> rcpt=<g@example.org> user=g delay=0s result=Ok stat=Delivered",
     []),
    ("exim: QT= on a remote delivery", exim.parse,
     '2026-11-03 17:44:15 1xXMrL-00085u-0m => a@example.com R=dnslookup T=remote_smtp '
     'H=mx.example.com [192.0.2.7] C="250 2.0.0 OK" QT=2m5s DT=1s',
     [Delay("sent", 125.0)]),
    ("exim: no QT= without +queue_time", exim.parse,
     '2026-11-03 17:44:15 1xXMrL-00085u-0m => a@example.com R=dnslookup T=remote_smtp '
     'H=mx.example.com [192.0.2.7] C="250 2.0.0 OK"', []),
]


@pytest.mark.parametrize("parse,line,expected", [case[1:] for case in LINES], ids=[case[0] for case in LINES])
def test_delays_of_a_line(parse, line, expected):
    assert delays(parse(line) or []) == expected


def test_observations_fall_in_their_buckets_and_sum():
    counts = Counts()
    events = {"postfix": {Delay("sent", 0.1): 2, Delay("sent", 0.11): 1, Delay("deferred", 10 ** 6): 1},
              "postfix-out": {Delay("sent", 3.0): 1}}
    Labeller().count(events, counts)
    assert counts.delays == {
        ("sent", "postfix", "0.1"): 2, ("sent", "postfix", "0.25"): 1, ("sent", "postfix", SUM): 0.1 * 2 + 0.11,
        ("deferred", "postfix", "+Inf"): 1, ("deferred", "postfix", SUM): 10 ** 6,
        ("sent", "postfix-out", "5.0"): 1, ("sent", "postfix-out", SUM): 3.0,
    }


def test_histograms_are_exposed_cumulative_and_survive_a_restart():
    counts = Counts()
    Labeller().count({"postfix": {Delay("sent", 0.5): 3, Delay("sent", 1000.0): 1}}, counts)
    metrics = ExporterMetrics()
    metrics.add_counts(counts)
    restored = ExporterMetrics()
    restored.restore(metrics.snapshot())
    for m in (metrics, restored):
        text = generate_latest(m.registry).decode()
        buckets = metric_by(text, "smtp_delivery_delay_seconds_bucket", "status", "le", "service")
        assert {service for _, _, service in buckets} == {"postfix"}
        sent = {le: n for (status, le, _), n in buckets.items() if status == "sent"}
        assert list(sent) == list(BUCKET_BOUNDS)
        assert (sent["0.25"], sent["0.5"], sent["600.0"], sent["1800.0"], sent["+Inf"]) == (0, 3, 3, 4, 4)
        assert metric_by(text, "smtp_delivery_delay_seconds_count", "status")[("sent",)] == 4
        assert metric_by(text, "smtp_delivery_delay_seconds_sum", "status")[("sent",)] == 1001.5
        # Every status of the service is there from its first count, at zero.
        assert {status for status, _, _ in buckets} == {"sent", "deferred", "bounced", "expired"}

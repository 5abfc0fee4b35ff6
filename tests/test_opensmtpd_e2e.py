"""End to end with a real OpenSMTPD 6.8 (Debian 12's opensmtpd): the scripted
peer answers its relaying, smtplib clients provoke its filter, match-rule and
built-in rejections, and `python3 -m exporter --once` over its syslog log must
count, key by key, exactly the replies that crossed the wire, and the
delivery attempts by status. How OpenSMTPD writes those replies down (and so
the stages the log can give) is described in tests/mta/opensmtpd_lab.py.

The lab (tests/mta/opensmtpd_lab.py) runs once per module, in about 20 s
(OpenSMTPD gives up on refused routes after some seconds). It needs root:
smtpd runs inside a private mount namespace whose /etc overlay adds the users
`opensmtpd` and `opensmtpq` that Debian's binary drops privileges to; the
host's /etc is not changed. It downloads the opensmtpd package with apt-get
on first use and skips when that fails for lack of network.
"""

from __future__ import annotations

from collections import Counter

import pytest
from helpers import run_once, samples
from mta import opensmtpd_lab
from mta.scenario import LABELS, diff

_why_not = opensmtpd_lab.unavailable()
pytestmark = [pytest.mark.skip(reason=_why_not)] if _why_not else []


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> opensmtpd_lab.Result:
    try:
        result = opensmtpd_lab.run(tmp_path_factory.mktemp("opensmtpd-e2e"))
    except opensmtpd_lab.PackagesUnavailable as e:
        pytest.skip(str(e))
    print(f"\nOpenSMTPD lab: {result.seconds:.1f}s, log in {result.log}")
    return result


def exported(log, *options: str) -> tuple[Counter, Counter]:
    """(smtp_replies_total by LABELS, smtp_deliveries_total by status) of
    `python3 -m exporter --once [options] LOG`, zero samples left out."""
    result = run_once(*options, str(log))
    assert result.returncode == 0, result.stderr.decode()
    replies: Counter = Counter()
    deliveries: Counter = Counter()
    for (name, label_items), value in samples(result.stdout.decode()).items():
        labels = dict(label_items)
        if name == "smtp_replies_total" and value:
            replies[tuple(labels[k] for k in LABELS)] += int(value)
        elif name == "smtp_deliveries_total" and value:
            deliveries[labels["status"]] += int(value)
    return replies, deliveries


def only(counter: Counter, direction: str) -> Counter:
    return Counter({k: v for k, v in counter.items() if k[0] == direction})


FORMATS = pytest.mark.parametrize("options", [(), ("--format", "opensmtpd")], ids=["auto", "opensmtpd"])


@FORMATS
def test_outbound_replies_match_the_wire(lab, options):
    got, _ = exported(lab.log, *options)
    want = only(lab.expected.replies, "outbound")
    assert only(got, "outbound") == want, "\n" + diff(want, only(got, "outbound"))


@FORMATS
def test_inbound_replies_match_the_wire(lab, options):
    got, _ = exported(lab.log, *options)
    want = only(lab.expected.replies, "inbound")
    assert only(got, "inbound") == want, "\n" + diff(want, only(got, "inbound"))


@FORMATS
def test_every_reply_counted_once(lab, options):
    got, _ = exported(lab.log, *options)
    assert got == lab.expected.replies, "\n" + diff(lab.expected.replies, got)


@FORMATS
def test_deliveries_by_status(lab, options):
    _, got = exported(lab.log, *options)
    assert got == lab.expected.deliveries


def test_no_line_of_the_log_is_left_unrecognized(lab):
    result = run_once(str(lab.log))
    exposition = samples(result.stdout.decode())
    unrecognized = [v for (name, labels), v in exposition.items()
                    if name == "smtp_exporter_lines_total" and ("result", "unrecognized") in labels]
    assert sum(unrecognized) == 0


def test_lab_covers_every_stage_and_class(lab):
    """Guards the lab itself: a filter or peer script that stops working must
    not quietly shrink what the comparison covers."""
    keys = lab.expected.replies
    outbound = {k[4] for k in keys if k[0] == "outbound"}
    inbound = {k[4] for k in keys if k[0] == "inbound"}
    assert outbound == {"connect", "helo", "starttls", "unknown", "end_of_data"}
    assert inbound >= {"connect", "helo", "starttls", "auth", "mail", "rcpt", "data", "other", "unknown"}
    assert {k[2] for k in keys} == {"2xx", "4xx", "5xx"}
    assert any(k[0] == "inbound" and k[1] and not k[3] for k in keys)  # "550 Invalid recipient"
    assert set(lab.expected.deliveries) == {"sent", "deferred", "bounced"}
    log = lab.log.read_text()
    # Each shape the parser reads is in the real log.
    for shape in (" mta delivery evpid=", ' result="Ok" stat="250 ', ' result="TempFail" stat="4',
                  ' result="PermFail" stat="5', 'stat="550-5.7.1 ', "mta error reason=BANNER rejected: ",
                  "mta error reason=HELO rejected: ", "mta error reason=STARTTLS rejected: ",
                  'stat="Network error on destination MXs"', "mta error reason=IO Error: Connection refused",
                  'smtp failed-command command="" result="', 'smtp failed-command command="DATA" result="',
                  "smtp bad-input result="):
        assert shape in log, shape
    assert all(line.split(" ", 5)[4].startswith("smtpd[") for line in log.splitlines())

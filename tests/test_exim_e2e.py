"""End to end with a real Exim 4 (Debian 12's exim4-daemon-light): scripted peers
answer its deliveries, scripted clients provoke its ACL and built-in rejections,
and `python3 -m exporter --once` over its mainlog must count, key by key, exactly
the replies that crossed the wire and show in the log.

The lab (tests/mta/exim_lab.py) runs once per module, in a few seconds once the
packages are downloaded. It needs root; it skips when the packages cannot be
downloaded for lack of network.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
from mta import exim_lab
from mta.checks import AgainstTheWire, Wire, lab_fixture, only, skip_if
from mta.scenario import diff, exported

pytestmark = [pytest.mark.e2e, *skip_if(exim_lab.unavailable())]
lab = lab_fixture(exim_lab.run, "exim-e2e")


@pytest.fixture(scope="module")
def wire(lab) -> Wire:
    # QT= (+queue_time) is logged on deliveries only.
    return Wire((lab.mainlog,), lab.expected.replies, lab.expected.deliveries, delayed=("sent",),
                tls=lab.expected.tls)


class TestAgainstTheWire(AgainstTheWire):
    pass


def test_per_host_error_lines_are_not_counted_again(lab, tmp_path):
    """`H=host [ip]: SMTP error from remote mail server ...` without a delivery
    flag repeats the reply of the recipients' lines that follow it."""
    per_host = [line for line in lab.mainlog.read_text().splitlines(keepends=True)
                if re.match(r"\S+ \S+ \S+ H=\S+ \[[\d.]+\](?::\d+)?: SMTP error from remote", line)]
    assert len(per_host) >= 3  # greeting, MAIL and DATA refusals each wrote one
    only_per_host = tmp_path / "per-host.log"
    only_per_host.write_text("".join(per_host))
    assert exported(only_per_host) == (Counter(), Counter())


def test_lab_covers_every_stage_and_class(lab):
    """Guards the lab itself: an ACL or peer script that stops working must not
    quietly shrink what the comparison covers."""
    keys = lab.expected.replies
    outbound = {k[4] for k in keys if k[0] == "outbound"}
    inbound = {k[4] for k in keys if k[0] == "inbound"}
    assert outbound >= {"connect", "helo", "mail", "rcpt", "data", "end_of_data"}
    assert inbound >= {"connect", "helo", "mail", "rcpt", "data", "end_of_data"}
    assert {k[2] for k in keys} == {"2xx", "4xx", "5xx"}
    inbound_keys = [k for k in keys if k[0] == "inbound"]
    assert any(k[1] and k[3] for k in inbound_keys)  # code in the ACL message
    assert any(not k[1] and k[3] for k in inbound_keys)  # enhanced code only
    assert {k[2] for k in inbound_keys if not k[1] and not k[3]} == {"4xx", "5xx"}  # no code at all
    assert len(lab.expected.uncoded) >= 8  # the wire had those codes; the log cannot show them
    assert lab.expected.unlogged  # a refused STARTTLS: deferred, its reply not logged
    log = lab.mainlog.read_text()
    assert "\\n550 5.7.1 " in log  # a multi-line reply, one count per recipient
    assert "T=peer_lmtp" in log and "LMTP error after DATA" in log
    assert "]*: SMTP error from remote mail server after RCPT" in log  # a 452 retried
    assert {status for status, _ in lab.expected.deliveries} == {"sent", "deferred", "bounced"}
    for dropped in ("too many unrecognized commands", "too many syntax or protocol errors",
                    "too many nonmail commands"):
        assert f"dropped: {dropped}" in log
    assert "SMTP command timeout on connection from" in log
    assert lab.expected.mainlog_only
    # TLS both ways, and the shapes that must not count it again: a further
    # address of a delivery, a refused RCPT over TLS.
    assert {k[0] for k in lab.expected.tls} == {"inbound", "outbound"}
    assert re.search(r" -> \S+ .* X=TLS", log) and re.search(r" X=TLS\S+ CV=no F=<\S+> rejected RCPT", log)


# -- the rejectlog ------------------------------------------------------------------

_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
# What follows a rejection after DATA: the envelope and a header dump, each
# header flagged by one character (or a space) as in the spool file, and the
# tab-indented continuation lines of folded headers.
_DUMP = re.compile(r"Envelope-(?:from|to): |[A-Z* ] [\w-]+: |\t")


def test_rejectlog_repeats_the_mainlog_rejections(lab):
    """Facts any handling of exim_rejectlog relies on: each of its time-stamped
    lines is a mainlog line, word for word; the rest is the header dump of
    rejections after DATA; read alone, it counts exactly the inbound replies
    but for command timeouts, which Exim writes to the mainlog only."""
    mainlog = set(lab.mainlog.read_text().splitlines())
    stamped, dumped = [], []
    for line in lab.rejectlog.read_text().splitlines():
        (stamped if _STAMP.match(line) else dumped).append(line)
    assert stamped and dumped
    assert [line for line in stamped if line not in mainlog] == []
    assert [line for line in dumped if not _DUMP.match(line)] == []
    replies, deliveries = exported(lab.rejectlog)
    want = only(lab.expected.replies, "inbound") - lab.expected.mainlog_only
    assert replies == want, "\n" + diff(want, replies)
    assert not deliveries


def test_mainlog_and_rejectlog_together_count_each_reject_once(lab):
    assert exported(lab.mainlog, lab.rejectlog) == exported(lab.mainlog)

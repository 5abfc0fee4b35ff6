"""Syslog time stamps of every width. Syslog pads a single-digit day with a
space ("Dec  6"), Postfix's own maillog_file with a zero ("Dec 06"), and
Debian 12's rsyslog writes RFC 3339: no reader may find a line's fields by
splitting it at spaces. The labs' syslog receiver is told the date it writes,
so these checks hold on any day the suite runs."""

from __future__ import annotations

import socket
import time

import pytest

from exporter.parsers import FORMATS
from mta.namespace import SyslogReceiver, syslog_tag, wait_settled

STAMPS = {
    "single-digit day": "Dec  6 10:00:00",
    "zero-padded day": "Dec 06 10:00:00",
    "two-digit day": "Dec 16 10:00:00",
    "RFC 3339": "2026-12-06T10:00:00.123456+01:00",
}

# One line of each MTA, from its tag on (real shapes, as in the parser tables).
LINES = {
    "postfix": "postfix/smtpd[2211]: NOQUEUE: reject: RCPT from c.example[192.0.2.1]: 550 5.1.1 "
               "<x@lab.test>: Recipient address rejected: User unknown in local recipient table; "
               "from=<a@b.example> to=<x@lab.test> proto=ESMTP helo=<c.example>",
    "exim": "exim[12105]: 1xXMrL-0008Bq-2c == cy@example.com R=dnslookup T=remote_smtp defer (-44) "
            "H=mx.example.com [192.0.2.7]:25 I=[192.0.2.1]:56822 DT=0s: SMTP error from remote mail server "
            "after RCPT TO:<cy@example.com>: 451 4.7.1 Greylisted, try again in 5 minutes",
    "sendmail": "sm-mta[28764]: 6AT4ECI3028762: to=<bob@example.net>, delay=00:00:00, xdelay=00:00:00, "
                "mailer=esmtp, pri=120015, relay=mx.example.net. [192.0.2.25], dsn=2.0.0, "
                "stat=Sent (250 2.0.0 OK 1700000056 qp 26062 - gsmtp)",
    "opensmtpd": 'smtpd[7617]: a427e8957ba23d6f smtp failed-command command="RCPT TO:<x@other.test>" '
                 'result="550 Invalid recipient: <x@other.test>"',
}


def december(day: int) -> float:
    """10:00:00 local time on December `day`, 2026."""
    return time.mktime((2026, 12, day, 10, 0, 0, 0, 0, -1))


@pytest.mark.parametrize("day", [6, 16])
def test_the_receiver_stamps_lines_with_its_clock_and_their_tag_reads_back(tmp_path, day):
    receiver = SyslogReceiver(tmp_path / "log.sock", tmp_path / "maillog", "mx3", clock=lambda: december(day))
    receiver.start()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            # As glibc's syslog(3) sends it; the receiver writes its own time instead.
            client.sendto(b"<22>Jan  1 00:00:00 smtpd[7617]: a427e8957ba23d6f smtp connected address=127.0.0.1",
                          str(receiver.socket_path))
        wait_settled(receiver.count, lambda: receiver.count() == 1, lambda: "the datagram was not written",
                     timeout=5, settle=0)
    finally:
        receiver.stop()
    [line] = receiver.log_path.read_text().splitlines()
    assert line == f"Dec {day:2d} 10:00:00 mx3 smtpd[7617]: a427e8957ba23d6f smtp connected address=127.0.0.1"
    assert syslog_tag(line) == "smtpd"


@pytest.mark.parametrize("stamp", STAMPS.values(), ids=STAMPS.keys())
def test_the_labs_line_reader_finds_the_tag_after_any_stamp(stamp):
    assert syslog_tag(f"{stamp} mx1 postfix/smtpd[2211]: connect from c.example[192.0.2.1]") == "postfix/smtpd"
    assert syslog_tag(f"{stamp} mx1 kernel: eth0: link up") == "kernel"
    assert syslog_tag(f"{stamp} postfix/smtpd[2211]: no host name") is None


@pytest.mark.parametrize("mta", LINES)
def test_every_parser_reads_a_line_alike_after_any_stamp(mta):
    form = FORMATS[mta]
    lines = {shape: f"{stamp} mx1 {LINES[mta]}" for shape, stamp in STAMPS.items()}
    assert [shape for shape, line in lines.items() if not form.present(line.encode())] == []
    events = {shape: form.parse(line) for shape, line in lines.items()}
    assert events["two-digit day"]  # the line gives events at all
    assert events == {shape: events["two-digit day"] for shape in STAMPS}

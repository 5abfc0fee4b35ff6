"""Formats from the config: a regex with named groups, for MTAs without a parser here."""

import pytest

from exporter.parsers import FORMATS, formats_for, with_custom
from exporter.replies import Reply
from exporter.scanner import LineScanner, Tally

HARAKA = {
    "name": "haraka",
    "match": r"\[(?P<direction>inbound|outbound)\] .*?(?P<stage>rcpt|mail|connect): "
             r"(?P<code>\d{3})(?: (?P<enhanced>\d\.\d{1,3}\.\d{1,3}))?",
    "contains": ["bound] "],
}
QMAIL = {
    "name": "qmail",
    "match": r"delivery \d+: deferral: (?:(?P<host>[\w.-]+) said: )?(?P<code>\d{3})",
    "direction": "outbound",
    "stage": "unknown",
}

CASES = [
    ("2026-11-03T17:44:15Z haraka[12]: [inbound] 1A2B rcpt: 550 5.1.1 no such user",
     [Reply("inbound", "550", "5xx", "5.1.1", "rcpt")]),
    ("2026-11-03T17:44:15Z haraka[12]: [outbound] 1A2B connect: 421 try later",
     [Reply("outbound", "421", "4xx", "", "connect")]),
    # Class of the enhanced code must match the code's: dropped, the code kept.
    ("2026-11-03T17:44:15Z haraka[12]: [inbound] 1A2B mail: 451 5.7.1 odd",
     [Reply("inbound", "451", "4xx", "", "mail")]),
    # Matched, but no valid reply syntax: the pattern cannot invent a code.
    ("2026-11-03T17:44:15Z haraka[12]: [inbound] 1A2B rcpt: 999 9.9.9 junk", []),
    ("2026-11-03T17:44:15Z haraka[12]: [inbound] 1A2B queued", None),
    ("@4000000063b1 delivery 42: deferral: mx.example.com said: 451 greylisted",
     [Reply("outbound", "451", "4xx", "", "unknown", "mx.example.com")]),
]


def parse(line):
    formats = with_custom([HARAKA, QMAIL])
    for f in (formats["haraka"], formats["qmail"]):
        result = f.parse(line)
        if result is not None:
            return [r._replace(text="") for r in result]
    return None


@pytest.mark.parametrize("line,expected", CASES)
def test_line_gives_events(line, expected):
    assert parse(line) == expected


def test_bundled_formats_take_their_lines_first_in_auto():
    formats = with_custom([{"name": "greedy", "match": r"(?P<code>\d{3}) (?P<enhanced>\d\.\d\.\d)"}])
    assert list(formats)[: len(FORMATS)] == list(FORMATS)
    tally = Tally()
    postfix_reject = (
        b"Nov  3 17:44:15 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a.example[192.0.2.1]: "
        b"550 5.1.1 <x@example.com>: User unknown; from=<> to=<x@example.com> proto=ESMTP helo=<a>\n"
    )
    other = b"Nov  3 17:44:15 mx appliance[7]: verdict 554 5.7.1 spam\n"
    LineScanner(formats_for("auto", formats), tally).feed(postfix_reject + other)
    assert tally.counts.replies == {
        ("inbound", "550", "5xx", "5.1.1", "rcpt", "", "postfix"): 1,  # Postfix's, with its stage and tag
        ("inbound", "554", "5xx", "5.7.1", "unknown", "", "greedy"): 1,  # the custom format's, its name
    }
    assert tally.lines["matched"] == 2

"""LineScanner: finds trigger lines in a block, parses them, tallies results."""

import logging

from exporter.parsers import formats_for
from exporter.scanner import LineScanner, Tally, UnrecognizedReport


def scan(text: bytes, max_line=65536):
    sink = Tally()
    LineScanner(formats_for("auto"), sink, max_line).feed(text)
    return sink


REJECT = (
    b"Nov  3 17:44:15 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a.example[192.0.2.1]: "
    b"550 5.1.1 <x@example.com>: Recipient address rejected: User unknown; from=<> to=<x@example.com> "
    b"proto=ESMTP helo=<a>\n"
)
SENT = (
    b"Nov  3 17:44:16 mx postfix/smtp[2]: ABC123: to=<y@example.net>, relay=mx.example.net[192.0.2.2]:25, "
    b"delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok said: 550 5.1.1 fake)\n"
)
REJECTED = ("inbound", "550", "5xx", "5.1.1", "rcpt", "", "postfix")
QUIET = b"Nov  3 17:44:15 mx postfix/smtpd[1]: connect from a.example[192.0.2.1]\n"


def test_counts_each_line_once_even_with_several_triggers():
    sink = scan(QUIET + REJECT + SENT + QUIET)
    assert sink.counts.replies == {
        REJECTED: 1,
        ("outbound", "250", "2xx", "2.0.0", "end_of_data", "other", "postfix"): 1,
    }
    assert sink.counts.deliveries == {("sent", "other", "postfix"): 1}
    assert sink.counts.reasons == {("inbound", "5xx", "user_unknown", "", "postfix"): 1}
    assert sink.lines["matched"] == 2
    assert sink.lines["ignored"] == 2
    assert sink.lines["unrecognized"] == 0
    assert sink.nbytes == len(QUIET + REJECT + SENT + QUIET)


def test_trigger_on_first_and_last_line_of_block():
    sink = scan(REJECT + QUIET + REJECT)
    assert sink.counts.replies[REJECTED] == 2


def test_unrecognized_is_a_reply_shaped_line_no_parser_took():
    odd = b"Nov  3 17:44:15 mx someproxy[9]: upstream said: 550 5.7.1 blocked\n"
    noise = b"Nov  3 17:44:15 mx postfix/smtpd[9]: warning: rate limit said: nothing\n"
    sink = scan(odd + noise)
    assert sink.lines["unrecognized"] == 1
    assert sink.lines["ignored"] == 1
    assert not sink.counts


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_first_unrecognized_lines_of_each_hour_are_logged_cut_short(caplog):
    clock = FakeClock()
    report = UnrecognizedReport(per_hour=2, max_chars=90, clock=clock)
    odd = b"Nov  3 17:44:15 mx someproxy[9]: upstream said: 550 5.7.1 blocked \x1b[31m" + b"x" * 100 + b"\n"
    scanner = LineScanner(formats_for("auto"), Tally(), report_unrecognized=report)
    with caplog.at_level(logging.INFO, logger="exporter.scanner"):
        # QUIET: a Postfix line, so that `auto` looks for Postfix's triggers.
        scanner.feed(QUIET + odd * 3)
        clock.now += 3599
        scanner.feed(QUIET + odd)
        logged_first_hour = [r.getMessage() for r in caplog.records]
        clock.now += 1
        scanner.feed(QUIET + odd)
    assert len(logged_first_hour) == 3  # two lines and the note that no more follow
    line = logged_first_hour[0]
    assert "someproxy[9]: upstream said: 550" in line and line.endswith(" (cut)")
    assert "\\x1b" in line and "\x1b" not in line  # shown escaped
    assert "x" * 30 not in line
    assert "no more unrecognized lines" in logged_first_hour[2]
    assert len(caplog.records) == 4  # the next hour logs again


def test_invalid_utf8_is_survived_and_counted():
    bad = REJECT.replace(b"User unknown", b"User \xff\xfe unknown")
    sink = scan(bad + b"\x00\x01\x02 binary junk status= \xff\n")
    assert sink.counts.replies[REJECTED] == 1
    assert sink.lines["invalid_utf8"] == 2


def test_long_candidate_line_is_cut_and_counted():
    long_line = REJECT[:-1] + b" " + b"x" * 5000 + b"\n"
    sink = scan(long_line, max_line=1000)
    assert sink.lines["truncated"] == 1
    # The reply sits near the start, so the cut line still counts it.
    assert sink.counts.replies[REJECTED] == 1


def test_every_long_line_is_counted_whether_or_not_a_parser_reads_it():
    from exporter.scanner import long_lines

    for size in (999, 1000, 1001, 1500, 1999, 2000, 2001, 5000):
        block = QUIET + b"x" * size + b"\n" + QUIET
        assert long_lines(block, 1000) == (size > 1000), size
    two = b"y" * 1001 + b"\n" + b"z" * 3000 + b"\n"
    assert long_lines(two, 1000) == 2
    assert long_lines(QUIET * 100, 1000) == 0
    sink = scan(QUIET + b"j" * 3000 + b"\n" + REJECT, max_line=1000)
    assert sink.lines["truncated"] == 1


def test_every_line_with_invalid_utf8_is_counted_once():
    from exporter.scanner import invalid_utf8_lines

    assert invalid_utf8_lines(QUIET * 3) == 0
    assert invalid_utf8_lines("ünïcode is fine\n".encode() * 3) == 0
    bad = b"junk \xff\xfe twice \xc0 on one line\n"
    assert invalid_utf8_lines(QUIET + bad + QUIET + bad + bad + b"cut \xe2\x82\n") == 4
    sink = scan(QUIET + bad + REJECT)
    assert sink.lines["invalid_utf8"] == 1  # a line no parser reads

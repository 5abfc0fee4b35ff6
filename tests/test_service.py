"""The service each MTA's lines count under (parsers/service.py): a table of
lines in their real shapes and the service each must give."""

import pytest

from exporter.parsers import FORMATS
from exporter.parsers.service import service_of_tag
from exporter.scanner import LineScanner, Tally

REJECT = ("NOQUEUE: reject: RCPT from a.example[192.0.2.1]: 550 5.1.1 <x@example.com>: Recipient address rejected: "
          "User unknown; from=<> to=<x@example.com> proto=ESMTP helo=<a>")
SENT = ("4ABC: to=<a@example.net>, relay=mx.example.net[192.0.2.2]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, "
        "status=sent (250 2.0.0 Ok)")
EXIM_BOUNCE = ("1avnJx-00039F-Hs ** ann@example.com R=dnslookup T=remote_smtp H=mx.example.com [192.0.2.1]: "
               "SMTP error from remote mail server after RCPT TO:<ann@example.com>: 550 5.1.1 <ann@example.com>: "
               "Recipient address rejected: User unknown")
EXIM_AUTH = ("dovecot_login authenticator failed for (User) [192.0.2.37]: 535 Incorrect authentication data "
             "(set_id=test@domain.com)")
SENDMAIL_REJECT = ("6AT4G6IM030212: ruleset=check_rcpt, arg1=<x@elsewhere.test>, relay=[127.0.0.5], "
                   "reject=550 5.7.1 <x@elsewhere.test>... Relaying denied")
SENDMAIL_DEFERRED = ("6AT4G6IM030213: to=root, ctladdr=root (0/0), delay=00:00:01, xdelay=00:00:01, mailer=relay, "
                     "pri=30040, relay=[127.0.0.1], dsn=4.0.0, stat=Deferred: Connection refused by [127.0.0.1]")
OPENSMTPD_FAILED = ('a427e8957ba23d6f smtp failed-command command="RCPT TO:<x@other.test>" '
                    'result="550 5.1.1 Invalid recipient: <x@other.test>"')

CASES = [
    # (case, format, line, service)
    ("postfix smtpd", "postfix", f"Nov  3 17:44:15 mx postfix/smtpd[1]: {REJECT}", "postfix"),
    ("postfix submission", "postfix", f"Nov  3 17:44:15 mx postfix/submission/smtpd[2]: {REJECT}",
     "postfix/submission"),
    ("postfix second instance, RFC 3339", "postfix",
     f"2026-11-28T20:33:32.689322+01:00 mx postfix-out/smtp[1570097]: {SENT}", "postfix-out"),
    ("postfix maillog_file, no host", "postfix", f"Nov  3 17:44:15 postfix/smtpd[1]: {REJECT}", "postfix"),
    ("postfix from the journal", "postfix", f"mx postfix/submission/smtpd[4]: {REJECT}", "postfix/submission"),
    # A "]: " after a host's [ip] in a mainlog line is no tag.
    ("exim mainlog", "exim", f"2016-04-28 15:53:37 {EXIM_BOUNCE}", "exim"),
    ("exim through syslog", "exim", f"Apr 28 15:53:37 server exim4[12105]: 2016-04-28 15:53:37 [12105] {EXIM_BOUNCE}",
     "exim4"),
    # A syslog stamp that looks like Exim's own.
    ("exim, ISO syslog stamp", "exim", f"2019-10-22 03:39:17 mx1.fqdn.local exim4[29786]: {EXIM_AUTH}", "exim4"),
    ("sendmail sm-mta", "sendmail", f"Nov  3 17:44:15 mx sm-mta[3]: {SENDMAIL_REJECT}", "sm-mta"),
    ("sendmail client queue", "sendmail", f"Nov  3 17:44:15 mx sm-msp-queue[9]: {SENDMAIL_DEFERRED}", "sm-msp-queue"),
    ("opensmtpd", "opensmtpd", f"Nov  3 17:44:15 mx smtpd[4]: {OPENSMTPD_FAILED}", "smtpd"),
    ("opensmtpd -d, no prefix", "opensmtpd", OPENSMTPD_FAILED, "opensmtpd"),
]


@pytest.mark.parametrize("format_name,line,service", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_line_counts_under_its_service(format_name, line, service):
    events, got = FORMATS[format_name].take(line)
    assert events, "the line must count something"
    assert got == service


@pytest.mark.parametrize("format_name,line,service", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_take_gives_what_parse_gives(format_name, line, service):
    assert FORMATS[format_name].take(line)[0] == FORMATS[format_name].parse(line)


@pytest.mark.parametrize("tag,service", [
    ("postfix/submission/smtpd", "postfix/submission"), ("postfix-out/smtp", "postfix-out"),
    ("postfix/smtpd", "postfix"), ("exim4", "exim4"), ("sm-mta", "sm-mta"), ("/smtpd", ""),
])
def test_the_process_name_is_left_off_the_tag(tag, service):
    assert service_of_tag(tag) == service


def test_a_tag_with_no_name_before_the_process_counts_under_the_format_name_on_every_path():
    # "" is what rows restored from an older state file carry (to Prometheus:
    # no label at all); no line may count under it.
    block = (b"Nov 28 20:33:32 mx /smtpd[1]: " + REJECT.encode() + b"\n"
             b"Nov 28 20:33:32 mx /smtpd[1]: Anonymous TLS connection established from a[192.0.2.1]: TLSv1.3 "
             b"with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n")
    tally = Tally()
    LineScanner((FORMATS["postfix"],), tally).feed(block)
    assert tally.counts.services() == {"postfix"}
    assert sum(tally.counts.tls.values()) == 1 and sum(tally.counts.replies.values()) == 1


def test_a_configured_service_takes_every_line_and_block_count_of_its_source():
    tls = (b"Nov 28 20:33:32 mx postfix/submission/smtpd[1]: Anonymous TLS connection established from "
           b"a[192.0.2.1]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n")
    block = "".join(line + "\n" for _, _, line, _ in CASES).encode() + tls
    tally = Tally()
    LineScanner(tuple(FORMATS.values()), tally, service="mx-in").feed(block)
    assert tally.counts.services() == {"mx-in"}
    assert sum(tally.counts.tls.values()) == 1


def test_in_a_mixed_block_each_line_keeps_its_own_service():
    block = "".join(line + "\n" for _, _, line, _ in CASES).encode()
    tally = Tally()
    LineScanner(tuple(FORMATS.values()), tally).feed(block)
    assert tally.counts.services() == {service for *_, service in CASES}

"""journald entries to log lines, and the journal source's cursor handling."""

import json
import sys
import time
from pathlib import Path

import pytest

from exporter.journal import JournalSource, entry_to_line
from exporter.parsers import formats_for
from exporter.scanner import LineScanner, Tally

FAKE = Path(__file__).parent / "data" / "fake_journalctl.py"
REJECT = (
    "NOQUEUE: reject: RCPT from unknown[192.0.2.82]: 554 5.7.1 <v@example.com>: Relay access denied; "
    "from=<t@example.com> to=<v@example.com> proto=ESMTP helo=<example.com>"
)


@pytest.mark.parametrize(
    "entry,line",
    [
        ({"MESSAGE": REJECT, "SYSLOG_IDENTIFIER": "postfix/smtpd", "SYSLOG_PID": "314", "_HOSTNAME": "mx"},
         f"mx postfix/smtpd[314]: {REJECT}\n".encode()),
        # Not valid UTF-8: journald exports MESSAGE as an array of bytes.
        ({"MESSAGE": [104, 105, 255], "SYSLOG_IDENTIFIER": "postfix/smtp", "_PID": "7", "_HOSTNAME": "mx"},
         b"mx postfix/smtp[7]: hi\xff\n"),
        ({"MESSAGE": "a\nb", "_COMM": "smtpd"}, b"localhost smtpd[0]: a b\n"),
        ({"SYSLOG_IDENTIFIER": "postfix/smtpd"}, None),
    ],
)
def test_entry_to_line(entry, line):
    assert entry_to_line(entry) == line


# One journal entry per MTA, as journalctl --output=json shows them, and the
# reply each must count when read in auto mode, under its SYSLOG_IDENTIFIER
# as the service.
MTA_ENTRIES = [
    ("postfix", {"MESSAGE": REJECT, "SYSLOG_IDENTIFIER": "postfix/smtpd", "SYSLOG_PID": "1"},
     ("inbound", "554", "5xx", "5.7.1", "rcpt", "", "postfix")),
    ("exim", {"MESSAGE": "1ZsFHb-0004dK-SM ** ann@example.com R=dnslookup T=remote_smtp "
              "H=mx.example.com [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<ann@example.com>: "
              "550 5.1.1 <ann@example.com>: Recipient address rejected: User unknown",
              "SYSLOG_IDENTIFIER": "exim", "SYSLOG_PID": "2"},
     ("outbound", "550", "5xx", "5.1.1", "rcpt", "other", "exim")),
    ("sendmail", {"MESSAGE": "6AT4G6IM030212: ruleset=check_rcpt, arg1=<x@elsewhere.test>, relay=[127.0.0.5], "
                  "reject=550 5.7.1 <x@elsewhere.test>... Relaying denied", "SYSLOG_IDENTIFIER": "sm-mta",
                  "SYSLOG_PID": "3"},
     ("inbound", "550", "5xx", "5.7.1", "rcpt", "", "sm-mta")),
    ("opensmtpd", {"MESSAGE": 'a427e8957ba23d6f smtp failed-command command="RCPT TO:<x@other.test>" '
                   'result="550 5.1.1 Invalid recipient: <x@other.test>"', "SYSLOG_IDENTIFIER": "smtpd",
                   "SYSLOG_PID": "4"},
     ("inbound", "550", "5xx", "5.1.1", "rcpt", "", "smtpd")),
]


@pytest.mark.parametrize("entry,key", [m[1:] for m in MTA_ENTRIES], ids=[m[0] for m in MTA_ENTRIES])
def test_journal_entries_of_every_mta_parse_like_syslog(entry, key):
    tally = Tally()
    LineScanner(formats_for("auto"), tally).feed(entry_to_line(entry))
    assert tally.counts.replies == {key: 1}
    assert tally.lines["matched"] == 1


def write_journal(path, n):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({
                "__CURSOR": f"s=abc;i={i}", "MESSAGE": REJECT, "SYSLOG_IDENTIFIER": "postfix/smtpd",
                "SYSLOG_PID": str(100 + i), "_HOSTNAME": "mx",
            }) + "\n")


def follow(source, want, blocks):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(b.count(b"\n") for b in blocks) < want:
        source.poll()
        time.sleep(0.02)


def test_cursor_resumes_after_the_last_entry_counted(tmp_path, monkeypatch):
    journal = tmp_path / "journal.jsonl"
    write_journal(journal, 5)
    monkeypatch.setenv("FAKE_JOURNAL", str(journal))
    command = (sys.executable, str(FAKE))
    blocks = []
    first = JournalSource(["postfix@-.service"], lambda b, cut: blocks.append(b), lambda: None, command=command)
    try:
        follow(first, 5, blocks)
    finally:
        first.close()
    assert sum(b.count(b"\n") for b in blocks) == 5
    assert first.cursor == "s=abc;i=4"
    args = json.loads((tmp_path / "journal.jsonl.args").read_text().splitlines()[0])
    assert "--output=json" in args and "--unit=postfix@-.service" in args and "--lines=0" in args

    write_journal(journal, 8)  # three more entries while we were down
    blocks.clear()
    second = JournalSource(["postfix@-.service"], lambda b, cut: blocks.append(b), lambda: None,
                           cursor=first.cursor, command=command)
    try:
        follow(second, 3, blocks)
        time.sleep(0.2)
        second.poll()
    finally:
        second.close()
    assert sum(b.count(b"\n") for b in blocks) == 3
    args = json.loads((tmp_path / "journal.jsonl.args").read_text().splitlines()[1])
    assert "--after-cursor=s=abc;i=4" in args


def test_missing_journalctl_is_a_read_error_not_a_crash(tmp_path):
    source = JournalSource(["postfix.service"], lambda b, cut: None, lambda: None,
                           command=(str(tmp_path / "no-such-journalctl"),))
    source.poll()
    assert source.stats.read_errors == 1

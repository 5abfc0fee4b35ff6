"""OpenSMTPD parser: a table of lines in real OpenSMTPD 5.x-7.x shapes and the
events each gives, the traps among them; and the line between OpenSMTPD's
`smtpd` and Postfix's `postfix/smtpd` in auto-detection."""

import pytest

from exporter.parsers import FORMATS, exim, postfix, sendmail
from exporter.parsers.opensmtpd import TRIGGERS, parse
from exporter.replies import Delivery
from helpers import (EXIM_DEFER, POSTFIX_REJECT, POSTFIX_SENT, assert_left_alone, counted_apart, counts, hosted, inb,
                     interleave, out, replies_in, summed, table_replies, table_tests)

present = FORMATS["opensmtpd"].present

SYSLOG = "Nov 29 04:25:57 mx3 smtpd[7617]: "
SID = "a427e8957ba23d6f "


def delivery(evpid="eb3535dd16f52015", relay="127.0.0.1 (mx3.lab.test)", delay="0s"):
    return (f"mta delivery evpid={evpid} from=<> to=<a@mail553.test> rcpt=<-> source=\"127.0.1.6\" "
            f'relay="{relay}" delay={delay} ')


CASES = [
    # -- outbound: mta delivery
    ("sent: the reply after the message",
     SYSLOG + SID + delivery() + 'result="Ok" stat="250 2.0.0 Ok: queued as 4F2A9C1E07"',
     [Delivery("sent"), out("250", "2.0.0", "end_of_data")]),
    ("6.4 public shape: relay ip (name), epoch and 'z11si6726563wmb.62' in the text",
     "Jul  6 06:01:48 ams-1 smtpd[75295]: 5df87c9ffd0e785d mta delivery evpid=f6e94209918f7e7b "
     "from=<gilles@example.org> to=<gilles.chehade@example.com> rcpt=<-> source=\"212.83.129.132\" "
     'relay="173.194.76.27 (ws-in-f27.1e100.net)" delay=2s result="Ok" '
     'stat="250 2.0.0 OK  1562385708 z11si6726563wmb.62 - gsmtp"',
     [Delivery("sent"), out("250", "2.0.0", "end_of_data")]),
    ("6.0 shape: mta event=delivery, PermFail, [203.0.113.1] in the text",
     "Mar 22 17:56:37 mercury smtpd[45037]: 8f4864084ecc48f4 mta event=delivery evpid=7077717e797a776e "
     "from=<puffy@example.com> to=<bill@example.net> rcpt=<-> source=\"203.0.113.1\" "
     'relay="104.47.38.33 (104.47.38.33)" delay=1s result="PermFail" stat="550 5.7.1 Unfortunately, '
     "messages from [203.0.113.1] weren't sent.\"",
     [Delivery("bounced"), out("550", "5.7.1")]),
    ("TempFail at RCPT: '452 of 500 MB' in the text is not a second reply",
     SYSLOG + SID + delivery() + 'result="TempFail" stat="452 4.2.2 <a@mail553.test>: Recipient address '
     'rejected: The email account that you tried to reach is over quota (452 of 500 MB)"',
     [Delivery("deferred"), out("452", "4.2.2")]),
    ("flattened multi-line reply: its first line decides",
     SYSLOG + SID + delivery() + 'result="PermFail" stat="550-5.7.1 Our system has detected that this '
     'message is likely unsolicited mail. To reduce the amount of spam sent to this domain, ..."',
     [Delivery("bounced"), out("550", "5.7.1")]),
    ("reply without an enhanced code",
     SYSLOG + SID + delivery() + 'result="TempFail" stat="451 Temporary local problem - please try later"',
     [Delivery("deferred"), out("451", "")]),
    ("an evpid and delay made of code-like digits are not codes; a relay without a name",
     SYSLOG + "5504211554043210 " + delivery(evpid="5501554045210421", relay="192.0.2.55", delay="550s")
     + 'result="TempFail" stat="Network error on destination MXs"',
     [Delivery("deferred")]),
    ("routes down: session 0000000000000000, no reply",
     SYSLOG + "0000000000000000 mta delivery evpid=2ef3d2c7cd6e9aea from=<> to=<a@greet421.test> rcpt=<-> "
     'source="-" relay="127.0.0.1" delay=11s result="TempFail" stat="Network error on destination MXs"',
     [Delivery("deferred")]),
    ("a local error that repeats no reply",
     SYSLOG + SID + delivery() + 'result="TempFail" stat="Remote host sent too much data"',
     [Delivery("deferred")]),
    ("loop detected: bounced without a reply",
     SYSLOG + SID + delivery() + 'result="Loop" stat="Loop detected"',
     [Delivery("bounced")]),
    ("local delivery (mda): no SMTP reply",
     "Jul  6 06:01:40 ams-1 smtpd[75295]: 5df87c9250bba470 mda delivery evpid=c405e39ad6bbc64f "
     "from=<gilles@example.org> to=<gilles@example.org> rcpt=<gilles@example.org> user=gilles delay=0s "
     "result=Ok stat=Delivered",
     []),
    # -- outbound: session failures
    ("greeting refused",
     SYSLOG + SID + "mta error reason=BANNER rejected: 421 4.3.2 System not accepting network messages",
     [out("421", "4.3.2", "connect")]),
    ("HELO refused after EHLO",
     SYSLOG + SID + "mta error reason=HELO rejected: 550 5.7.1 HELO from unknown hosts not accepted",
     [out("550", "5.7.1", "helo")]),
    ("LHLO refused",
     SYSLOG + SID + "mta error reason=LHLO rejected: 421 4.3.2 Service shutting down", [out("421", "4.3.2", "helo")]),
    ("STARTTLS refused where TLS is required",
     SYSLOG + SID + "mta error reason=STARTTLS rejected: 454 4.7.0 TLS not available due to local problem",
     [out("454", "4.7.0", "starttls")]),
    ("AUTH refused, after a message on the same session",
     SYSLOG + "smtp-out: Error on session a427e8957ba23d6f after 2 messages sent: AUTH rejected: 535 5.7.8 "
     "Authentication credentials invalid",
     [out("535", "5.7.8", "auth")]),
    ("connection refused: no reply", SYSLOG + SID + "mta error reason=IO Error: Connection refused", []),
    ("bad response: no reply", SYSLOG + SID + "mta error reason=Bad response: invalid code", []),
    ("mta chatter", SYSLOG + SID + "mta connecting address=smtp+notls://127.0.0.1:40271 host=mx3.lab.test", []),
    # -- inbound
    ("RCPT rejected, no enhanced code",
     SYSLOG + SID
     + 'smtp failed-command command="RCPT TO:<x@other.test>" result="550 Invalid recipient: <x@other.test>"',
     [inb("550", "", "rcpt")]),
    ("RCPT with a trailing space, as some clients send it (journald, German month)",
     "Mär 08 20:48:47 webserver smtpd[88171]: 2cd79d8bacbe2c12 smtp failed-command "
     'command="RCPT TO:<info@example.com> " result="550 Invalid recipient: <info@example.com>"',
     [inb("550", "", "rcpt")]),
    ("rejected at connect: empty command; the client's IP octets are not codes",
     SYSLOG + SID + 'smtp failed-command command="" result="554 5.7.1 Access denied: 127.0.0.9 is listed"',
     [inb("554", "5.7.1", "connect")]),
    ("EHLO in lower case, as smtplib sends it",
     SYSLOG + SID + 'smtp failed-command command="ehlo mail.bulk-sender.example" '
     'result="550 5.7.1 HELO name rejected: bulk sender"',
     [inb("550", "5.7.1", "helo")]),
    ("MAIL: a quote and 'result=' inside the command are the client's",
     SYSLOG + SID + 'smtp failed-command command="MAIL FROM:<\\"x\\" result=\\"250\\"@a.example>" '
     'result="553 5.7.1 Sender blocked by policy 2024-11"',
     [inb("553", "5.7.1", "mail")]),
    ("DATA (also after the message: OpenSMTPD logs both as DATA)",
     SYSLOG + SID + 'smtp failed-command command="DATA" result="554 5.3.4 Message too big for system"',
     [inb("554", "5.3.4", "data")]),
    ("public 6.4 shape: DATA greylisted",
     "Aug  2 17:23:37 susie smtpd[48048]: b4a942c181a10c63 smtp failed-command command=\"DATA\" "
     'result="451 Try again later"',
     [inb("451", "", "data")]),
    ("AUTH",
     SYSLOG + SID
     + 'smtp failed-command command="AUTH LOGIN" result="503 5.5.1 Invalid command: Command not supported"',
     [inb("503", "5.5.1", "auth")]),
    ("AUTH PLAIN credentials are not logged",
     SYSLOG + SID + 'smtp failed-command command="AUTH PLAIN (...)" result="535 Authentication failed"',
     [inb("535", "", "auth")]),
    ("AUTH LOGIN password refused (the failed-command line is the reply)",
     SYSLOG + SID + 'smtp failed-command command="AUTH LOGIN (password)" result="535 Authentication failed"',
     [inb("535", "", "auth")]),
    ("the authentication line about the same attempt counts nothing",
     SYSLOG + SID + "smtp authentication user=admin result=permfail", []),
    ("STARTTLS", SYSLOG + SID + 'smtp failed-command command="STARTTLS" result="503 5.5.1 Invalid command: '
     'Command not supported"', [inb("503", "5.5.1", "starttls")]),
    ("VRFY", SYSLOG + SID + 'smtp failed-command command="VRFY root" result="500 5.5.1 Invalid command: '
     'Command unrecognized"', [inb("500", "5.5.1", "other")]),
    ("bad input names no command",
     SYSLOG + SID + 'smtp bad-input result="500 5.5.1 Invalid command: Pipelining not supported"',
     [inb("500", "5.5.1", "unknown")]),
    ("6.0: smtp event=failed-command",
     SYSLOG + SID + 'smtp event=failed-command command="RCPT TO:<a@b.example>" result="450 4.2.0 Greylisted"',
     [inb("450", "4.2.0", "rcpt")]),
    ("5.x: 'Failed command on session', enhanced code followed by ':'",
     "Aug 14 10:15:25 junction.example.com smtpd[28882]: smtp-in: Failed command on session 1f55bdcdf16e28a3: "
     '"MAIL FROM:<root@junction.example.com>  " => 421 4.3.0: Temporary Error',
     [inb("421", "4.3.0", "mail")]),
    ("5.x: RCPT",
     "Feb 06 00:57:29 fedora23-amd64.mydomain smtpd[23613]: smtp-in: Failed command on session "
     'e6ba312568e33059: "RCPT TO:<send-mail@fedora23-amd64.mydomain> " => 550 Invalid recipient',
     [inb("550", "", "rcpt")]),
    ("smtp chatter", SYSLOG + SID + "smtp connected address=127.0.0.5 host=<unknown>", []),
    ("startup", SYSLOG + "info: OpenSMTPD 6.8.0p2 starting", []),
    # -- `smtpd -d` writes the same messages to stderr without any prefix
    ("foreground: failed-command",
     SID + 'smtp failed-command command="RCPT TO:<y@other.test>" result="550 Invalid recipient: <y@other.test>"',
     [inb("550", "", "rcpt")]),
    ("foreground: delivery",
     SID + delivery() + 'result="PermFail" stat="553 5.7.1 Sender address rejected"',
     [Delivery("bounced"), out("553", "5.7.1")]),
    # -- not OpenSMTPD's
    ("Postfix's smtpd", "Nov 29 04:12:51 mx1 postfix/smtpd[9]: NOQUEUE: reject: RCPT from a.example[192.0.2.1]: "
     "550 5.1.1 <x@lab.test>: Recipient address rejected: User unknown; from=<> to=<x@lab.test> proto=ESMTP "
     "helo=<a>", None),
    ("Postfix under another syslog_name", "Nov 29 04:12:51 mx1 postfix-in/smtpd[9]: NOQUEUE: reject: RCPT from "
     "a[192.0.2.1]: 450 4.7.1 Client host rejected; from=<> to=<x@lab.test> proto=ESMTP helo=<a>", None),
    ("another daemon whose name ends in smtpd", "Nov 29 04:12:51 mx1 esmtpd[9]: a427e8957ba23d6f smtp "
     'failed-command command="DATA" result="451 Try again"', None),
    ("an Exim line", "2026-11-03 17:44:15 1xXMrL-00085u-0m ** a@b.c R=dnslookup T=remote_smtp H=mx [192.0.2.7]: "
     "SMTP error from remote mail server after RCPT TO:<a@b.c>: 550 5.1.1 unknown", None),
]


test_line_gives_events, test_every_counting_line_holds_a_trigger = table_tests(CASES, parse, TRIGGERS)


@pytest.mark.parametrize("line,host", [
    (SYSLOG + SID + delivery() + 'result="Ok" stat="250 2.0.0 Ok"', "mx3.lab.test"),
    (SYSLOG + SID + delivery(relay="104.47.38.33 (104.47.38.33)") + 'result="PermFail" stat="550 5.7.1 x"', ""),
    (SYSLOG + SID + delivery(relay="192.0.2.1") + 'result="TempFail" stat="Network error on destination MXs"', ""),

])
def test_relay_host_of_outbound_events(line, host):
    assert {e.host for e in hosted(parse(line))} == {host}


def test_reply_text_is_the_reply_as_logged():
    [reply] = parse(SYSLOG + SID + 'smtp failed-command command="DATA" result="451 Try again later"')
    assert reply.text == "451 Try again later"
    _, reply = hosted(parse(SYSLOG + SID + delivery() + 'result="PermFail" stat="550 5.7.1 "no" thanks"'))
    assert reply.text == '550 5.7.1 "no" thanks'


def test_present_tells_opensmtpd_from_postfix():
    assert present(b"Nov 29 04:25:57 mx3 smtpd[7617]: info: OpenSMTPD 6.8.0p2 starting\n")
    assert present(b"info: OpenSMTPD 6.8.0p2 starting\n" + SID.encode() + b"smtp connected address=local\n")
    assert not present(b"Nov 29 04:12:51 mx1 postfix/smtpd[9]: connect from a[192.0.2.1]\n")
    assert not present(b"2026-11-03 17:44:15 1xXMrL-00085u-0m <= a@b.c H=x [192.0.2.1] P=esmtp S=2297\n")


def test_other_parsers_leave_opensmtpd_lines_alone():
    assert_left_alone(CASES, postfix, exim, sendmail)


@pytest.mark.slow
def test_mixed_log_in_auto_mode_counts_each_line_by_its_own_parser(tmp_path):
    """OpenSMTPD, Postfix and Exim lines interleaved in one file: the auto
    mode counts each line once, by its own parser, exactly as each MTA's
    lines alone with its own format."""
    opensmtpd_lines = [c[1] for c in CASES if c[2]]
    parts = {"opensmtpd": opensmtpd_lines, "postfix": [POSTFIX_REJECT, POSTFIX_SENT], "exim": [EXIM_DEFER]}
    mixed = interleave(opensmtpd_lines, parts["postfix"], parts["exim"])
    (tmp_path / "mixed.log").write_text("\n".join(mixed) + "\n")
    alone = counted_apart(tmp_path, mixed, parts, own_format=True)
    assert counts(tmp_path / "mixed.log") == summed(*alone.values())
    # Each part is what its own table says: OpenSMTPD's inbound replies are
    # the table's, and Postfix's is one reject per pair of lines.
    assert replies_in(alone["opensmtpd"], "inbound") == table_replies(CASES, "inbound")
    assert replies_in(alone["postfix"], "inbound") == mixed.count(POSTFIX_REJECT)
    # And with --format opensmtpd, the Postfix and Exim lines count for nothing.
    assert counts(tmp_path / "mixed.log", "--format", "opensmtpd") == alone["opensmtpd"]

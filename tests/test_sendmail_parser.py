"""Sendmail parser: a table of lines in real Sendmail 8.x shapes (most taken
from this project's Sendmail lab) and the events each gives, traps included;
then auto-detection beside Postfix and Exim lines."""

import pytest

from exporter.parsers import FORMATS, exim, postfix
from exporter.parsers.sendmail import TRIGGERS, parse
from exporter.replies import Delivery
from helpers import (EXIM_DEFER, POSTFIX_REJECT, assert_left_alone, counted_apart, counts, hosted, inb, interleave, out,
                     replies_in, summed, table_replies, table_tests)

present = FORMATS["sendmail"].present

SM = "Nov 29 04:14:12 mx1 sm-mta[28764]: 6AT4ECI3028762: "
TO = "to=<bob@example.net>, delay=00:00:00, xdelay=00:00:00, mailer=esmtp, pri=120015, "
RELAY = "relay=mx.example.net. [192.0.2.25], "


SENT_2XX = out("", "", "end_of_data", "2xx")

CASES = [
    # -- outbound ------------------------------------------------------------
    ("sent: the 2xx text is logged without its code; pri= and delay= are not codes",
     SM + TO + RELAY + "dsn=2.0.0, stat=Sent (Ok: queued as 4F2A9C1E07)",
     [Delivery("sent"), SENT_2XX]),
    ("sent, dsn=2.6.0 is Sendmail's, not a logged reply code",
     SM + TO + RELAY + "dsn=2.6.0, stat=Sent (Message accepted for delivery, id=4F2A9C1E07)",
     [Delivery("sent"), SENT_2XX]),
    ("sent, the text starts with the code: it is the reply's",
     SM + TO + RELAY + "dsn=2.0.0, stat=Sent (250 2.0.0 OK 1700000056 qp 26062 - gsmtp)",
     [Delivery("sent"), out("250", "2.0.0", "end_of_data")]),
    ("sent, a number leading the text that is not a 2xx code is not read",
     SM + TO + RELAY + "dsn=2.0.0, stat=Sent (451 messages queued today)",
     [Delivery("sent"), SENT_2XX]),
    ("sent to several recipients in one attempt: one line, one delivery, one reply",
     SM + "to=<sent1@example.com>,<sent2@example.com>, delay=00:00:00, xdelay=00:00:00, mailer=esmtp, "
     "pri=245938, relay=[93.184.216.34] [93.184.216.34], dsn=2.0.0, stat=Sent (ok:  Message 40279894 accepted)",
     [Delivery("sent"), SENT_2XX]),
    ("RCPT refused: reply= is the remote reply; dsn=5.1.1 and stat=User unknown are Sendmail's",
     SM + TO + RELAY + "dsn=5.1.1, reply=550 5.1.1 <bob@example.net>: Recipient address rejected: "
     "The email account that you tried to reach does not exist, stat=User unknown",
     [Delivery("bounced"), out("550", "5.1.1")]),
    ("reply without enhanced code: dsn=5.1.1 is synthesised and not taken",
     SM + TO + RELAY + "dsn=5.1.1, reply=550 <bob@example.net>: Recipient address rejected: "
     "Requested action not taken: mailbox unavailable, stat=User unknown",
     [Delivery("bounced"), out("550", "")]),
    ("multi-line reply: only the first line is logged, counted once",
     SM + TO + RELAY + "dsn=5.7.1, reply=550-5.7.1 Our system has detected that this message is likely "
     "unsolicited mail. To, stat=User unknown",
     [Delivery("bounced"), out("550", "5.7.1")]),
    ("deferral: the reply is in reply= and again in stat=: one count",
     SM + TO + RELAY + "dsn=4.2.0, reply=450 4.2.0 Greylisted, see https://greylist.example.test/help "
     "and retry in 300 seconds, stat=Deferred: 450 4.2.0 Greylisted, see https://greylist.example.test/help "
     "and retry in 300 seconds",
     [Delivery("deferred"), out("450", "4.2.0")]),
    ("421 greeting: dsn=4.5.0 differs from the reply's 4.3.2",
     SM + TO + RELAY + "dsn=4.5.0, reply=421 4.3.2 System not accepting network messages, try again in 15 min, "
     "stat=Deferred: 421 4.3.2 System not accepting network messages, try again in 15 min",
     [Delivery("deferred"), out("421", "4.3.2")]),
    ("DATA refused for two recipients: dsn=4.0.0 while the reply said 4.3.0",
     SM + "to=<gus@ok.test>,<fay@ok.test>, delay=00:00:00, xdelay=00:00:00, mailer=esmtp, pri=60015, "
     "relay=[127.0.0.1] [127.0.0.1], dsn=4.0.0, reply=451 4.3.0 Temporary local problem, please try again later, "
     "stat=Deferred: 451 4.3.0 Temporary local problem, please try again later",
     [Delivery("deferred"), out("451", "4.3.0")]),
    ("554 at end of data, bounced; a custom mailer name is still SMTP",
     SM + "to=<jo@ok.test>, delay=00:00:00, xdelay=00:00:00, mailer=esmtp_main, pri=60015, "
     "relay=[127.0.0.1] [127.0.0.1], dsn=5.7.1, reply=554 5.7.1 Message rejected under policy, "
     "see https://policy.example.test/554, stat=Service unavailable",
     [Delivery("bounced"), out("554", "5.7.1")]),
    ("no reply= (builds without _FFR_LOGREPLY): the remote reply in stat=Deferred: is read",
     "Apr  2 00:15:25 mta001 sendmail[12566]: u31FFPtp032300: to=<deferred1@example.com>, delay=00:00:15, "
     "xdelay=00:00:15, mailer=esmtp, pri=34527, relay=[93.184.216.34] [93.184.216.34], dsn=4.3.5, "
     "stat=Deferred: 451 4.3.5 Server configuration problem",
     [Delivery("deferred"), out("451", "4.3.5")]),
    ("no reply=, bounced: stat=User unknown and dsn=5.1.1 show no reply; (65534/65534) is a uid/gid",
     "Sep 14 11:59:34 ubuntu-server sm-mta[7425]: l8E3xVpO007423: to=<myemail@whatever.com>, "
     "ctladdr=<nobody@ubuntu-server> (65534/65534), delay=00:00:03, xdelay=00:00:03, mailer=esmtp, "
     "pri=120344, relay=whatever.com. [74.200.79.210], dsn=5.1.1, stat=User unknown",
     [Delivery("bounced")]),
    ("connection refused: a deferred delivery without a reply; the port-like numbers are not codes",
     SM + TO + "relay=[127.0.0.1] [127.0.0.1], dsn=4.4.1, stat=Deferred: Connection refused by [127.0.0.1]",
     [Delivery("deferred")]),
    ("a failed TLS handshake is Sendmail's own 403, not a remote reply",
     SM + TO + RELAY + "dsn=4.7.0, stat=Deferred: 403 4.7.0 TLS handshake failed.",
     [Delivery("deferred")]),
    ("DNS failure: bounced with no reply",
     SM + "to=<a@nx.example>, delay=00:00:00, xdelay=00:00:00, mailer=esmtp, pri=30000, relay=nx.example, "
     "dsn=5.1.2, stat=Host unknown (Name server: nx.example: host not found)",
     [Delivery("bounced")]),
    ("given up after the queue lifetime: expired",
     SM + TO + RELAY + "dsn=4.4.7, stat=Cannot send message for 5 days",
     [Delivery("expired")]),
    ("queued only: no attempt",
     SM + TO + RELAY + "dsn=4.0.0, stat=queued",
     []),
    ("local mailer: not SMTP",
     "Apr  2 00:15:25 mta001 sendmail[32302]: u31FFPtp032300: to=root@localhost.localdomain, "
     "ctladdr=root@localhost.localdomain (0/0), delay=00:00:00, xdelay=00:00:00, mailer=local, pri=245938, "
     "dsn=2.0.0, stat=Sent",
     []),
    ("a bounce delivered to a file: not SMTP",
     SM + "to=/dev/null, ctladdr=<lab@lab.test> (1/0), delay=00:00:00, xdelay=00:00:00, mailer=*file*, "
     "pri=31039, dsn=2.0.0, stat=Sent",
     []),
    ("the DSN a bounce creates: nothing to count",
     SM + "6AT4ECI3028764: DSN: User unknown", []),
    ("arrival line: size=, nrcpts=, proto= are not codes",
     SM + "from=<lab@lab.test>, size=552, class=0, nrcpts=4, msgid=<202611290414.6AT4ECI3028762@mx1.lab.test>, "
     "proto=ESMTP, daemon=MTA, relay=mx1.lab.test [127.0.0.1]",
     []),
    # -- inbound ---------------------------------------------------------------
    ("check_rcpt: relaying denied",
     "Nov 29 04:16:06 mx1 sm-mta[30212]: 6AT4G6IM030212: ruleset=check_rcpt, arg1=<x@elsewhere.test>, "
     "relay=[127.0.0.5], reject=550 5.7.1 <x@elsewhere.test>... Relaying denied. IP name lookup failed [127.0.0.5]",
     [inb("550", "5.7.1", "rcpt")]),
    ("check_rcpt, 4xx, (may be forged) after the client",
     "Jun 18 08:05:17 <mail.notice> myhost sm-mta[17002]: 55IC59VD017002: ruleset=check_rcpt, "
     "arg1=<spameri@tiscali.it>, relay=[45.125.66.67], reject=450 4.4.0 <spameri@tiscali.it>... Relaying "
     "temporarily denied. Cannot resolve PTR record for 45.125.66.67",
     [inb("450", "4.4.0", "rcpt")]),
    ("check_mail with an access map ERROR: text; 2024-11 is not a code",
     "Nov 29 04:16:06 mx1 sm-mta[30215]: 6AT4G6va030215: ruleset=check_mail, arg1=<offers@promo-blast.example>, "
     "relay=[127.0.0.5], reject=550 5.7.1 <offers@promo-blast.example>... Sender blocked by policy 2024-11",
     [inb("550", "5.7.1", "mail")]),
    ("check_relay has no queue id; arg2 is the address",
     "Nov 29 04:16:06 mx1 sm-mta[30214]: ruleset=check_relay, arg1=[127.0.0.10], arg2=127.0.0.10, "
     "relay=[127.0.0.10], reject=421 4.3.2 Connection rate limit exceeded, 25 per 60s",
     [inb("421", "4.3.2", "connect")]),
    ("another daemon label (sm-acceptingconnections)",
     "Feb 25 03:01:10 kismet sm-acceptingconnections[27713]: s1P819mk027713: ruleset=check_rcpt, "
     "arg1=<a@freemailhost.ru>, relay=128-68-136-133.broadband.corbina.ru [128.68.136.133], reject=550 5.7.1 "
     "<a@freemailhost.ru>... Relaying denied. Proper authentication required.",
     [inb("550", "5.7.1", "rcpt")]),
    ("check_compat rejects a delivery, not a client",
     SM + "ruleset=check_compat, arg1=<a@example.org>, arg2=<b@example.net>, relay=mx1.lab.test, "
     "reject=553 5.7.1 Mail to this address not allowed",
     []),
    ("milter reject at end of data",
     SM + "Milter: data, reject=554 5.7.1 Rejected by content filter (score 12.5)",
     [inb("554", "5.7.1", "end_of_data")]),
    ("milter reject at RCPT",
     SM + "Milter: to=<a@lab.test>, reject=451 4.7.1 Greylisted, please try again in 300 seconds",
     [inb("451", "4.7.1", "rcpt")]),
    ("unknown local user: 550 5.1.1 went out, the log keeps only the text",
     "Nov 29 04:16:06 mx1 sm-mta[30212]: 6AT4G6IM030212: <nosuch@lab.test>... User unknown",
     [inb("", "", "rcpt", "5xx")]),
    ("BSD syslogd -v prefix",
     "Jun 17 14:37:39 <mail.notice> robin sm-mta[2794]: 55HIbcGI002794: <baduser@yourhost.com>... User unknown",
     [inb("", "", "rcpt", "5xx")]),
    ("lost input channel: no reply", SM + "lost input channel from [127.0.0.5] to MTA after rcpt", []),
    ("did not issue MAIL: no reply",
     SM + "mx1.lab.test [127.0.0.1] did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA", []),
    ("VRFY refused: its 252 is not logged", SM + "[127.0.0.5]: VRFY lab [rejected]", []),
    ("AUTH refused: logged without the 535 it drew",
     SM + "AUTH failure (LOGIN): authentication failure (-13) SASL(-13): authentication failure: "
     "checkpass failed, user=admin, relay=[192.0.2.77]",
     [inb("", "", "auth", "5xx")]),
    ("AUTH refused before a queue id was assigned",
     "Nov 29 04:14:12 mx1 sendmail[28764]: AUTH failure (PLAIN): user not found (-20) SASL(-20): user not "
     "found: unable to canonify user and get auxprops, relay=host.example.net [192.0.2.78]",
     [inb("", "", "auth", "5xx")]),
    ("daemon start", "Nov 29 04:12:50 mx1 sm-mta[28234]: starting daemon (8.17.1.9): SMTP", []),
    # -- not Sendmail's ----------------------------------------------------------
    ("Postfix's sendmail command is Postfix's",
     "Nov 29 04:12:50 mx1 postfix/sendmail[1234]: fatal: No recipient addresses found in message header", None),
    ("a Postfix delivery",
     "Nov 29 04:12:50 mx1 postfix/smtp[1]: ABC: to=<a@b.c>, relay=mx[192.0.2.1]:25, delay=1, "
     "delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok)", None),
    ("an Exim line", "2026-11-03 17:44:15 1xXMrL-00085u-0m ** a@b.c R=dnslookup T=remote_smtp H=mx [192.0.2.7]: "
     "SMTP error from remote mail server after RCPT TO:<a@b.c>: 550 5.1.1 unknown", None),
]


test_line_gives_events, test_every_counting_line_holds_a_trigger = table_tests(CASES, parse, TRIGGERS)


@pytest.mark.parametrize(
    "line,host",
    [(SM + TO + RELAY + "dsn=2.0.0, stat=Sent (Ok)", "mx.example.net"),
     (SM + TO + "relay=[192.0.2.1] [192.0.2.1], dsn=4.2.0, reply=450 4.2.0 Greylisted, stat=Deferred: 450 4.2.0 "
      "Greylisted", "")],

)
def test_remote_host_of_outbound_events(line, host):
    assert {e.host for e in hosted(parse(line))} == {host}


def test_present_sees_sendmail_tags_only():
    assert present(b"Nov 29 04:12:50 mx1 sm-mta[28234]: starting daemon\n")
    assert present(b"Nov 29 04:12:50 mx1 sendmail[28234]: x\n")
    assert not present(b"Nov 29 04:12:50 mx1 postfix/sendmail[1234]: fatal: x\n")
    assert not present(b"2026-11-03 17:44:15 1xXMrL-00085u-0m <= a@b.c H=x [192.0.2.1] P=esmtp S=2297\n")


def test_other_parsers_leave_sendmail_lines_alone():
    assert_left_alone(CASES, postfix, exim)


@pytest.mark.slow
def test_mixed_log_in_auto_mode_counts_each_line_by_its_own_parser(tmp_path):
    """Sendmail, Postfix and Exim lines in one file: each is counted once, by
    its own parser, exactly as in a file of its own."""
    sendmail_lines = [c[1] for c in CASES if c[2] is not None]
    parts = {"sendmail": sendmail_lines, "postfix": [POSTFIX_REJECT], "exim": [EXIM_DEFER]}
    mixed = interleave(sendmail_lines, parts["postfix"], parts["exim"])
    assert len(mixed) == 3 * len(sendmail_lines)
    (tmp_path / "mixed.log").write_text("\n".join(mixed) + "\n")
    total = summed(*counted_apart(tmp_path, mixed, parts).values())
    assert counts(tmp_path / "mixed.log") == total
    # The Sendmail part is what the table says.
    assert replies_in(total, "outbound") == table_replies(CASES, "outbound") + mixed.count(EXIM_DEFER)

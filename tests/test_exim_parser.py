"""Exim parser: a table of lines in real Exim 4 shapes and the events each gives."""

import pytest

from exporter.parsers.exim import TRIGGERS, parse
from exporter.replies import Delivery
from helpers import hosted, inb, out, table_tests

T = "2026-11-03 17:44:15 "
SYSLOG = "Nov  3 17:44:15 mx1 exim[12105]: "




CASES = [
    (
        "our AUTH refused by the remote server (client side, no 'for')",
        "2026-11-03 17:44:15 10HmaZ-000000005vi-0000 plain authenticator failed H=smtp.example.com "
        "[192.0.2.7] 535 Sorry, authentication failed",
        [out("535", "", "auth")],
    ),
    (
        "cutthrough delivery refused at the end of the data",
        "2026-11-03 17:44:15 10HmbA-000000005vi-0000 U=CALLER usere@example.com F=<a@example.org> "
        'P=<a@example.org> tmp-reject from cutthrough after DATA: R=all T=smtp H=mx.example.com [192.0.2.8] '
        'C="459 content reject"',
        [Delivery("deferred"), out("459", "", "end_of_data")],
    ),
    (
        "ATRN refused",
        "2026-11-03 17:44:15 U=unknown temporarily rejected ATRN example.net: 453 You have no mail",
        [inb("453", "", "other")],
    ),
    (
        "cutthrough delivery: the remote's reply to the end of data",
        '2017-07-30 18:51:05.712 10HmaX-000000005vi-0000 >> dest@example.com R=all T=smtp '
        'H=mx.example.com [192.0.2.1] C="250 OK"',
        [Delivery("sent"), out("250", "", "end_of_data")],
    ),
    ("remote delivery with smtp_confirmation; S=, :128 and epoch digits are not codes",
     T + "1xXMrL-00085u-0m => ann@example.net R=dnslookup T=remote_smtp S=2297 H=mx.example.net "
     "[192.0.2.10]:25 X=TLS1.3:ECDHE_X25519__RSA_PSS_RSAE_SHA256__AES_256_GCM:256 CV=yes "
     'C="250 2.0.0 OK 1700000056 qp 26062 - gsmtp" QT=1s DT=0s',
     [Delivery("sent"), out("250", "2.0.0", "end_of_data")]),
    ("remote delivery, reply without enhanced code, Exim >= 4.97 message id",
     T + '10HmaX-000000005vi-0000 => bo@example.org R=r T=t H=127.0.0.1 [127.0.0.1] C="250 OK id=10HmaY"',
     [Delivery("sent"), out("250", "", "end_of_data")]),
    ("local delivery: no SMTP reply, not an SMTP delivery",
     T + "1xXMrL-00085u-0m => root <root@example.com> F=<a@example.org> R=local_user T=local_delivery S=368",
     []),
    ("deferred at RCPT, current layout with H= before the error; (-44) is Exim's errno",
     T + "1xXMrL-0008Bq-2c == cy@example.com R=dnslookup T=remote_smtp defer (-44) H=mx.example.com "
     "[192.0.2.7]:25 I=[192.0.2.1]:56822 DT=0s: SMTP error from remote mail server after RCPT TO:<cy@example.com>: "
     "451 4.7.1 Greylisted, try again in 5 minutes",
     [Delivery("deferred"), out("451", "4.7.1", "rcpt")]),
    ("deferred, old layout: host after the stage; #451 in a URL",
     SYSLOG + "2016-06-03 11:03:18 [13879] 1b8lwj-0003bo-6W == di@example.com R=dnslookup T=remote_smtp "
     "defer (-44): SMTP error from remote mail server after RCPT TO:<di@example.com>: host "
     "mx.example.com [192.0.2.211]: 451 Internal resource temporarily unavailable - https://example.com/DOC-1369#451",
     [Delivery("deferred"), out("451", "", "rcpt")]),
    ("bounced at end of data, escaped multi-line reply counts once",
     T + "1xXMrL-00085w-0n ** ed@example.com R=r1 T=t1 H=127.0.0.1 [127.0.0.1] : SMTP error from remote mail "
     "server after end of data: 550-5.7.1 This message looks like spam.\\n550 5.7.1 Go away",
     [Delivery("bounced"), out("550", "5.7.1", "end_of_data")]),
    ("greeting refused",
     T + "1xXMrL-00085w-0n == fi@example.com R=sink T=remote_smtp defer (0) H=127.0.0.1 [127.0.0.1]:3526 "
     "I=[127.0.0.1]:59854 DT=0s: SMTP error from remote mail server after initial connection: 421 4.3.2 "
     "Service not available",
     [Delivery("deferred"), out("421", "4.3.2", "connect")]),
    ("pipelined MAIL FROM with null sender",
     T + "10HmaZ-000000005vi-0000 == gu@example.com R=all T=smtp defer (-45) H=127.0.0.1 [127.0.0.1]: SMTP "
     "error from remote mail server after pipelined MAIL FROM:<>: 452 4.3.1 Insufficient storage",
     [Delivery("deferred"), out("452", "4.3.1", "mail")]),
    ("LMTP error after DATA: the recipient's own reply after the message",
     T + "10HmaY-000000005vi-0000 ** ha@example.com F=<c@example.com> R=smartuser T=lmtp H=127.0.0.1 "
     "[127.0.0.1] : LMTP error after DATA: 550 Bad user",
     [Delivery("bounced"), out("550", "", "end_of_data")]),
    ("LMTP, deferred after the message; 452 in the text is not a second reply",
     T + "1xXWGJ-0007FL-0E == d452@lm.test R=peer T=peer_lmtp defer (0) H=127.0.0.1 [127.0.0.1]: LMTP error "
     "after DATA: 452 4.2.2 The account is over quota (452 of 500 MB)",
     [Delivery("deferred"), out("452", "4.2.2", "end_of_data")]),
    ("LMTP: a refused DATA command is an SMTP error",
     T + "1xXWGJ-0007FQ-0s == x@lm.test R=peer T=peer_lmtp defer (-46) H=127.0.0.1 [127.0.0.1]: SMTP error "
     "from remote mail server after pipelined DATA: 451 4.3.0 Temporary local problem",
     [Delivery("deferred"), out("451", "4.3.0", "data")]),
    ("MAIL FROM with SIZE= after the address",
     T + "1xXWGK-0007Fp-0x ** a@mail553.test R=peer T=peer_smtp H=127.0.0.1 [127.0.0.1]: SMTP error from "
     "remote mail server after pipelined MAIL FROM:<> SIZE=1334: 553 5.7.1 Sender address rejected",
     [Delivery("bounced"), out("553", "5.7.1", "mail")]),
    ("MAIL FROM with several parameters, no enhanced code",
     T + "1xXWGK-0007Fu-1c == a@mail451.test R=peer T=peer_smtp defer (-45) H=127.0.0.1 [127.0.0.1]: SMTP "
     "error from remote mail server after MAIL FROM:<s@lab.test> SIZE=1355 BODY=8BITMIME: 451 Temporary "
     "local problem - please try later",
     [Delivery("deferred"), out("451", "", "mail")]),
    ("RCPT TO with DSN parameters",
     T + "1xXWGK-0007Fu-1c ** b@example.com R=r T=remote_smtp H=192.0.2.7 [192.0.2.7]: SMTP error from remote "
     "mail server after RCPT TO:<b@example.com> NOTIFY=FAILURE ORCPT=rfc822;b@example.com: 550 5.1.1 No such user",
     [Delivery("bounced"), out("550", "5.1.1", "rcpt")]),
    ("HELO after a refused EHLO",
     T + "1xXWGJ-0007Ff-2r ** a@helo550.test R=peer T=peer_smtp H=127.0.0.1 [127.0.0.1]: SMTP error from remote "
     "mail server after HELO mx2.lab.test: 550 5.7.1 HELO from unknown hosts not accepted",
     [Delivery("bounced"), out("550", "5.7.1", "helo")]),
    ("STARTTLS required but refused: Exim logs no reply",
     T + "1xXWGK-0007Fk-0I == a@tls454.test R=peer T=peer_tls defer (-38) H=127.0.0.1 [127.0.0.1]: a TLS "
     "session is required, but an attempt to start TLS failed",
     [Delivery("deferred")]),
    ("a 452 RCPT retried on the same connection: * after the address",
     T + "1xXWGy-0007Ja-1e == c452@ok.test R=peer T=peer_smtp defer (-44) H=127.0.0.1 [127.0.0.1]*: SMTP error "
     "from remote mail server after RCPT TO:<c452@ok.test>: 452 4.2.2 <c452@ok.test>: over quota",
     [Delivery("deferred"), out("452", "4.2.2", "rcpt")]),
    ("the per-host line repeats the recipient's reply: not counted",
     T + "1xXMrL-00085w-0n H=127.0.0.1 [127.0.0.1]:3527: SMTP error from remote mail server after initial "
     "connection: 554 5.7.1 You are not welcome here",
     []),
    ("connection refused: a deferred attempt without a reply",
     T + "1xXMrL-00085w-0n == ig@closed.example R=sink T=remote_smtp defer (111): Connection refused DT=0s",
     [Delivery("deferred")]),
    ("retry time not reached: no attempt",
     T + "1xXMrL-00085w-0n == ja@example.com R=dnslookup T=remote_smtp defer (-53): retry time not reached",
     []),
    ("unrouteable: failed locally, no SMTP",
     T + "1b8cs4-0005xz-6g ** ke@example.invalid F=<f@example.net>: Unrouteable address",
     []),
    # inbound
    ("RCPT reject with code and enhanced code",
     T + "H=(client.example.org) [192.0.2.2] I=[192.0.2.1]:25 F=<a@example.org> rejected RCPT "
     "<lu@example.com>: 550 5.1.1 User unknown",
     [inb("550", "5.1.1", "rcpt")]),
    ("temporary RCPT reject",
     T + "H=(client.example.org) [192.0.2.7] F=<a@example.org> temporarily rejected RCPT <mo@example.com>: "
     "450 4.7.1 <mo@example.com>: Recipient address rejected: Greylisted",
     [inb("450", "4.7.1", "rcpt")]),
    ("ACL message starting with an enhanced code only",
     T + "H=(client.example.org) [192.0.2.3] F=<a@example.org> rejected RCPT <no@elsewhere.example>: "
     "5.7.1 relay not permitted",
     [inb("", "5.7.1", "rcpt")]),
    ("built-in reject without a code: 5xx, code empty",
     T + "H=example.net [192.0.2.123] F=<p@example.com> rejected RCPT <q@example.com>: Unrouteable address",
     [inb("", "", "rcpt", "5xx")]),
    ("temporary built-in reject without a code: 4xx",
     T + "H=(test) [192.0.2.57] U=CALLER F=<r@example.com> temporarily rejected RCPT <s@example.com>: "
     'invalid "condition" value "rhubarb"',
     [inb("", "", "rcpt", "4xx")]),
    ("callout: a third party's 550 inside our reject is not our code",
     T + "H=(test) [192.0.2.3] U=root F=<t@example.com> rejected RCPT <z@remote.example>: 127.0.0.1 "
     "[127.0.0.1] : SMTP error from remote mail server after RCPT TO:<z@remote.example>: 550 Recipient not liked",
     [inb("", "", "rcpt", "5xx")]),
    ("HELO reject",
     T + "H=(nofqdn) [192.0.2.4] I=[192.0.2.1]:25 rejected EHLO or HELO nofqdn: 504 5.5.2 <nofqdn>: Helo "
     "command rejected: need fully-qualified hostname",
     [inb("504", "5.5.2", "helo")]),
    ("connect ACL reject",
     T + 'H=[192.0.2.9] I=[192.0.2.1]:25 rejected connection in "connect" ACL: 554 5.7.1 Access denied',
     [inb("554", "5.7.1", "connect")]),
    ("MAIL reject for size",
     T + "H=(client.example.org) [192.0.2.2] rejected MAIL <big@example.org>: 552 5.3.4 Message size exceeds "
     "fixed maximum message size",
     [inb("552", "5.3.4", "mail")]),
    ("message too big: no code logged; size=900000 is not a code",
     T + "rejected MAIL FROM:<big@example.org> H=(client.example.org) [192.0.2.2]: message too big: "
     "size=900000 max=200000",
     [inb("", "", "mail", "5xx")]),
    ("message too big while received (no SIZE= given): 552 went out after the data, no code logged",
     T + "1xXWGL-0007GO-0O rejected from <a@client.test> H=(client.example.test) [127.0.0.5]: message too big: "
     "read=221888 max=200000",
     [inb("", "", "end_of_data", "5xx")]),
    ("first header line without CRLF under CHUNKING: the BDAT got 552",
     T + "10HmaX-000000005vi-0000 rejected from <someone@some.domain> H=(tester) [127.0.0.1]: Non-CRLF-terminated "
     "header, under CHUNKING: message abandoned",
     [inb("", "", "data", "5xx")]),
    ("a local submission too big: no SMTP reply",
     T + "10HmaX-000000005vi-0000 rejected from <> U=CALLER: message too big: read=501 max=500",
     []),
    ("unqualified sender",
     T + "unqualified sender rejected: <bare> H=(client.example.org) [192.0.2.5] I=[192.0.2.1]:25",
     [inb("", "", "mail", "5xx")]),
    ("after DATA, through syslog with Exim's time and pid",
     SYSLOG + "2013-06-15 11:20:36 [2516] 1Unmew-0000ea-SE H=mx.example.gr [192.0.2.148]:32706 "
     "I=[192.0.2.1]:25 F=u@example.com rejected after DATA: This message contains a virus",
     [inb("", "", "end_of_data", "5xx")]),
    ("AUTH failure carries a code; Ci= and the port are not codes",
     T + "dovecot_login authenticator failed for (User) [192.0.2.1]:21298 I=[192.0.2.55]:465 Ci=30416: "
     "535 Incorrect authentication data (set_id=uaf589@example.com)",
     [inb("535", "", "auth")]),
    ("refused by local_scan() after the data (sa-exim): 550, code not logged",
     T + "F=<spam@example.net> H=(helo.example.net) [192.0.2.9] P=esmtp S=2811 rejected by local_scan(): "
     "Rejected: spam score 12.3 over 10",
     [inb("", "", "end_of_data", "5xx")]),
    ("temporarily refused by local_scan(): 451",
     T + "F=<a@example.net> H=mx.example.net [192.0.2.9]:4711 temporarily rejected by local_scan(): "
     "Temporary local problem",
     [inb("", "", "end_of_data", "4xx")]),
    ("local_scan() with an enhanced code in its message",
     T + "F=<a@example.net> H=[192.0.2.9] rejected by local_scan(): 5.7.1 Message content rejected",
     [inb("", "5.7.1", "end_of_data")]),
    ("dropped after too many unrecognized commands: its 500 is not logged",
     T + "SMTP call from [192.0.2.20]:51234 I=[192.0.2.1]:25 dropped: too many unrecognized commands "
     '(last was "FOO")',
     [inb("", "", "other", "5xx")]),
    ("dropped after too many syntax errors; the client's last command says rejected RCPT",
     T + "SMTP call from (rejected RCPT) [192.0.2.20] dropped: too many syntax or protocol errors "
     '(last command was "MAIL FROM:<rejected RCPT <x>: 550 y>", C=EHLO,MAIL)',
     [inb("", "", "other", "5xx")]),
    ("dropped after too many nonmail commands: 554",
     T + 'SMTP call from client.example.net [192.0.2.20] dropped: too many nonmail commands (last was "NOOP")',
     [inb("", "", "other", "5xx")]),
    ("command timeout: Exim sent 421 and closed",
     T + "SMTP command timeout on connection from (client.example.net) [192.0.2.20] D=5m",
     [inb("", "", "unknown", "4xx")]),
    ("command timeout under TLS",
     T + "SMTP command timeout on TLS connection from [192.0.2.20]:40022 I=[192.0.2.1]:587 D=5m1s",
     [inb("", "", "unknown", "4xx")]),
    ("a lost connection is no reply",
     T + "SMTP connection from [192.0.2.20] lost D=0s", None),
    ("arrival and completion: nothing",
     T + "1xXMrL-00085u-0m <= a@example.org H=(client.example.org) [192.0.2.8] P=esmtp S=219 for r@example.com",
     []),
    ("not an Exim line", "Nov  3 17:44:15 mx1 postfix/smtpd[1]: connect from x[192.0.2.1]", None),
]


test_line_gives_events, test_every_counting_line_holds_a_trigger = table_tests(CASES, parse, TRIGGERS)


@pytest.mark.parametrize(
    "line,host",
    [
        ('2026-11-03 17:44:15 1ZsFHb-0004dK-SM => ann@example.com R=dnslookup T=remote_smtp '
         'H=gmail-smtp-in.l.google.com [192.0.2.1] X=TLS1.3 C="250 2.0.0 OK 1700000000 x1si - gsmtp"',
         "gmail-smtp-in.l.google.com"),
        ('2026-11-03 17:44:15 1ZsFHb-0004dK-SM ** bo@example.com R=dnslookup T=remote_smtp '
         'H=mx.example.com [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<bo@example.com>: '
         '550 5.1.1 User unknown', "mx.example.com"),
        ('2026-11-03 17:44:15 1ZsFHb-0004dK-SM == cy@example.com R=dnslookup T=remote_smtp defer (-44): '
         'SMTP error from remote mail server after RCPT TO:<cy@example.com>: host mx2.example.com '
         '[192.0.2.2]: 451 4.7.1 Greylisted', "mx2.example.com"),
        ('2026-11-03 17:44:15 1ZsFHb-0004dK-SM => di@example.com R=smarthost T=remote_smtp '
         'H=[192.0.2.3] C="250 OK"', ""),
    ],
)
def test_remote_host_of_outbound_events(line, host):
    assert {e.host for e in hosted(parse(line))} == {host}


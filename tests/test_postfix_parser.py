"""Postfix parser: a table of lines in real Postfix shapes and the events each gives."""

import pytest

from exporter.parsers.postfix import TRIGGERS, parse
from exporter.replies import Delivery, Reply
from helpers import hosted, inb, out, table_tests

SYSLOG = "Nov  3 17:44:15 mx1 "
RFC3339 = "2026-11-03T17:44:15.123456+01:00 mx1 "
POSTLOG = "Nov 03 17:44:15 mx1 "




CASES = [
    # --- outbound: status lines -------------------------------------------------
    (
        "sent with enhanced code; epoch and id digits in the text",
        SYSLOG + "postfix/smtp[2211]: 4Pc1Xk5tFpz3tG5: to=<ann@example.net>, "
        "relay=aspmx.l.example.com[2001:db8::1a]:25, delay=1.5, delays=0.01/0.01/0.52/0.94, "
        "dsn=2.0.0, status=sent (250 2.0.0 OK  1700000051 a3-2002si616.756 - gsmtp)",
        [Delivery("sent"), out("250", "2.0.0", "end_of_data")],
    ),
    (
        "sent, reply without enhanced code: dsn=2.0.0 is synthesised, not the reply's",
        RFC3339 + "postfix/smtp[3001]: 8F2D1C2A11: to=<bo@example.org>, "
        "relay=mx01.example.org[198.51.100.5]:25, delay=0.51, delays=0.02/0.03/0.32/0.14, "
        "dsn=2.0.0, status=sent (250 Requested mail action okay, completed: id=1MBkYe-1poE)",
        [Delivery("sent"), out("250", "", "end_of_data")],
    ),
    (
        "deferred at RCPT with greylisting reply",
        SYSLOG + "postfix/smtp[7648]: A0E85200BD: to=<cy@lists.example.com>, "
        "relay=mx.example.com[203.0.113.10]:25, delay=2.3, delays=0.25/0.05/2/0.04, dsn=4.2.0, "
        "status=deferred (host mx.example.com[203.0.113.10] said: 450 4.2.0 <cy@lists.example.com>: "
        "Recipient address rejected: Greylisted (in reply to RCPT TO command))",
        [Delivery("deferred"), out("450", "4.2.0", "rcpt")],
    ),
    (
        "4xx without enhanced code; the 163 after the code is not a code",
        SYSLOG + "postfix/smtp[7648]: 732BB407C3: to=<di@example.com>, relay=mx.example.com[192.0.2.1]:25, "
        "delay=6.2, delays=0.1/0/5.2/0.87, dsn=4.0.0, status=deferred (host mx.example.com[192.0.2.1] "
        "said: 451 DT:SPM 163 mx40,WsCow--.20089S3 1514512452, please try again 15min later "
        "(in reply to end of DATA command))",
        [Delivery("deferred"), out("451", "", "end_of_data")],
    ),
    (
        "multi-line reply flattened by Postfix is one reply",
        POSTLOG + "postfix/smtp[411]: 4E74613FE76: to=<ed@example.com>, "
        "relay=smtp-in.example.com[2001:db8:400e:c04::1b]:25, delay=1.9, delays=0.05/0/1.1/0.71, "
        "dsn=5.7.1, status=bounced (host smtp-in.example.com[2001:db8:400e:c04::1b] said: "
        "550-5.7.1 [2001:db8:3:25::2      12] Our system has detected 550-5.7.1 unsolicited mail "
        "550 5.7.1 more information. qc12si84.211 - gsmtp (in reply to end of DATA command))",
        [Delivery("bounced"), out("550", "5.7.1", "end_of_data")],
    ),
    (
        "Gmail's authentication failure, two-digit detail",
        SYSLOG + "postfix/smtp[501]: 6FB9036F13: to=<fi@example.com>, relay=alt1.example.com[192.0.2.26]:25, "
        "delay=0.8, delays=0.01/0/0.4/0.4, dsn=5.7.26, status=bounced (host alt1.example.com[192.0.2.26] "
        "said: 550-5.7.26 Unauthenticated email is not accepted 550 5.7.26 from this domain "
        "(in reply to end of DATA command))",
        [Delivery("bounced"), out("550", "5.7.26", "end_of_data")],
    ),
    (
        "MAIL FROM stage",
        SYSLOG + "postfix/smtp[601]: 96887C0006: to=<gu@example.com>, relay=example.com[192.0.2.7]:25, "
        "delay=354776, delays=354775/0/0.9/0.16, dsn=4.3.1, status=deferred (host example.com[192.0.2.7] "
        "said: 452 4.3.1 Insufficient system storage (in reply to MAIL FROM command))",
        [Delivery("deferred"), out("452", "4.3.1", "mail")],
    ),
    (
        "DATA command stage",
        SYSLOG + "postfix/smtp[602]: 16887C0006: to=<ha@example.com>, relay=example.com[192.0.2.7]:25, "
        "delay=1, delays=0/0/0.5/0.5, dsn=5.5.4, status=bounced (host example.com[192.0.2.7] "
        "said: 554 5.5.4 No valid recipients (in reply to DATA command))",
        [Delivery("bounced"), out("554", "5.5.4", "data")],
    ),
    (
        "greeting refused: stage connect; dsn rewritten to 4.7.1 but the wire said 554 5.7.1",
        SYSLOG + "postfix/smtp[700]: EF6AB16865: to=<ig@example.com>, relay=mx.example.com[192.0.2.9]:25, "
        "delay=0, delays=0/0/0/0, dsn=4.7.1, status=deferred (host mx.example.com[192.0.2.9] "
        "refused to talk to me: 554 5.7.1 You are not welcome here)",
        [Delivery("deferred"), out("554", "5.7.1", "connect")],
    ),
    (
        "4xx greeting salvaged at connect time",
        SYSLOG + "postfix/smtp[701]: 1F6AB16865: to=<ja@example.com>, relay=none, delay=3, "
        "delays=0/0/3/0, dsn=4.3.2, status=deferred (connect to mx.example.com[192.0.2.9]:25: "
        "server refused to talk to me: 421 4.3.2 Service not available)",
        [Delivery("deferred"), out("421", "4.3.2", "connect")],
    ),
    (
        "STARTTLS refused while TLS is required (from the real-Postfix lab)",
        POSTLOG + "postfix/smtp[17387]: 11A4F16A03F: to=<a@tls.example>, relay=mx.example.com[192.0.2.9]:25, "
        "delay=0.01, delays=0/0/0/0, dsn=4.7.0, status=deferred (TLS is required, but host "
        "mx.example.com[192.0.2.9] refused to start TLS: 454 4.7.0 TLS not available due to local problem)",
        [Delivery("deferred"), out("454", "4.7.0", "starttls")],
    ),
    (
        "per-host STARTTLS refusal before trying the next MX",
        SYSLOG + "postfix/smtp[7651]: 21A4F16A03F: TLS is required, but host mx1.example.com[192.0.2.9] "
        "refused to start TLS: 454 4.7.0 TLS not available",
        [out("454", "4.7.0", "starttls")],
    ),
    (
        "LMTP over a unix socket",
        SYSLOG + "postfix/lmtp[26538]: AD6E41CDC0: to=<ke@example.com>, relay=mail.example.com[private/dovecot-lmtp], "
        "delay=0.15, delays=0.04/0/0.02/0.08, dsn=2.0.0, status=sent (250 2.0.0 <ke@example.com> qYyyBMsl9 Saved)",
        [Delivery("sent"), out("250", "2.0.0", "end_of_data")],
    ),
    (
        "LMTP user unknown at RCPT, port 2525 is not a code",
        POSTLOG + "postfix/lmtp[26538]: 81EE0980F1: to=<lu@example.com>, relay=172.19.0.7[172.19.0.7]:2525, "
        "delay=0.72, delays=0.54/0.09/0.05/0.04, dsn=5.1.1, status=bounced (host 172.19.0.7[172.19.0.7] "
        "said: 550 5.1.1 <lu@example.com> User doesn't exist (in reply to RCPT TO command))",
        [Delivery("bounced"), out("550", "5.1.1", "rcpt")],
    ),
    (
        "content filter hop: nested codes count once",
        RFC3339 + "postfix/amavis/smtp[302609]: 4PbC4x469Jz3tBr: to=<mo@example.net>, "
        "relay=127.0.0.1[127.0.0.1]:10024, delay=2.4, delays=0.29/0.02/0.01/2.1, dsn=2.0.0, "
        "status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 4PbC4z6W5Q)",
        [Delivery("sent"), out("250", "2.0.0", "end_of_data")],
    ),
    (
        "syslog_name instance with several path elements",
        SYSLOG + "postfix-out/relay/smtp[88]: C1D2E3F4A5: to=<no@example.com>, relay=mx.example.com[192.0.2.3]:25, "
        "delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 9A8B)",
        [Delivery("sent"), out("250", "2.0.0", "end_of_data")],
    ),
    (
        "connection timed out: a delivery attempt without a reply",
        SYSLOG + "postfix/smtp[4284]: 46F82C0FB4: to=<op@example.com>, orig_to=<op@example.edu>, relay=none, "
        "delay=8831, delays=8764/0.11/67/0, dsn=4.4.1, status=deferred (connect to "
        "alt4.mx.example.com[192.0.2.26]:25: Connection timed out)",
        [Delivery("deferred")],
    ),
    (
        "cached site status repeats an earlier reply: no new reply, trailing 215 is noise",
        SYSLOG + "postfix/smtp[4285]: 2298F5F619: to=<pq@example.com>, relay=none, delay=89758, "
        "delays=89758/0.02/0/0, dsn=4.4.1, status=deferred (delivery temporarily suspended: host "
        "mx.example.com[192.0.2.1] said: 421 4.7.0 Try later (in reply to RCPT TO command)) 215",
        [Delivery("deferred")],
    ),
    (
        "DNS failure, bounced without a reply",
        RFC3339 + "postfix/smtp[505058]: 4PcV4K5FPL: to=<qr@example.com>, relay=none, delay=0.07, "
        "delays=0.01/0.02/0.04/0, dsn=5.4.4, status=bounced (Host or domain name not found. "
        "Name service error for name=example.invalid type=AAAA: Host not found)",
        [Delivery("bounced")],
    ),
    (
        "old Postfix without dsn= or delays=",
        SYSLOG + "postfix/smtp[1681]: 9634B16F7F: to=<rs@example.com>, relay=none, delay=46, "
        "status=deferred (connect to 198.51.100.131[198.51.100.131]: No route to host)",
        [Delivery("deferred")],
    ),
    (
        "per-host reply before trying the next MX: a real reply, no delivery yet",
        SYSLOG + "postfix/smtp[7648]: 732BB407C3: host mx13.example.com[192.0.2.2] said: 451 4.3.0 "
        "please try again 15min later (in reply to end of DATA command)",
        [out("451", "4.3.0", "end_of_data")],
    ),
    (
        "per-host greeting refusal",
        SYSLOG + "postfix/smtp[7649]: 40197AA: host mg2.example.com[192.0.2.86] refused to talk to me: "
        "450 4.3.2 try again later",
        [out("450", "4.3.2", "connect")],
    ),
    (
        "SASL authentication to a relay failed",
        SYSLOG + "postfix/smtp[7650]: D0F29603B4: SASL authentication failed; server relay.example.com[192.0.2.4] "
        "said: 535 5.7.8 Error: authentication failed: authentication failure",
        [out("535", "5.7.8", "auth")],
    ),
    (
        "verification probe answered at RCPT",
        SYSLOG + "postfix/smtp[7651]: 3E29030F86: to=<st@example.com>, relay=mx.example.com[192.0.2.5]:25, "
        "delay=0.3, delays=0/0/0.2/0.1, dsn=2.1.5, status=deliverable (250 2.1.5 Ok)",
        [out("250", "2.1.5", "rcpt")],
    ),
    (
        "lost connection: no code",
        SYSLOG + "postfix/smtp[7652]: 78D6B41: conversation with mx00.example.com[192.0.2.4] timed out "
        "while receiving the initial server greeting",
        [],
    ),
    (
        "connect failure logged without queue id",
        SYSLOG + "postfix/smtp[26408]: connect to 127.0.0.1[127.0.0.1]:2599: Connection refused",
        [],
    ),
    (
        "expired by postsuper -e",
        SYSLOG + "postfix/qmgr[1045]: BACE842E73: from=<noreply@example.com>, status=force-expired, "
        "returned to sender",
        [Delivery("expired")],
    ),
    (
        "a reply that is a code alone",
        SYSLOG + "postfix/smtp[7648]: 8A0E85200B: to=<ab@example.com>, relay=mx.example.com[192.0.2.10]:25, "
        "delay=1, delays=0/0/0.5/0.5, dsn=4.0.0, status=deferred (host mx.example.com[192.0.2.10] said: 428)",
        [Delivery("deferred"), out("428", "", "unknown")],
    ),
    (
        "queue expired",
        SYSLOG + "postfix/qmgr[1045]: 5F1E2D3C4B: from=<tu@example.com>, status=expired, returned to sender",
        [Delivery("expired")],
    ),
    (
        "error transport reports a deferral without a reply",
        SYSLOG + "postfix/error[3001]: 2DC5552A34: to=<uv@example.com>, relay=none, delay=63495, "
        "delays=63350/144/0/0, dsn=4.4.2, status=deferred (delivery temporarily suspended: lost "
        "connection with mx.example.com[192.0.2.22] while sending RCPT TO)",
        [Delivery("deferred")],
    ),
    (
        "local delivery: no SMTP reply, not an SMTP delivery",
        SYSLOG + "postfix/local[25389]: A27A916862: to=<root@example.com>, relay=local, delay=0.01, "
        "delays=0.01/0/0/0, dsn=2.0.0, status=sent (delivered to mailbox)",
        [],
    ),
    # --- inbound: smtpd / postscreen / cleanup -----------------------------------
    (
        "RCPT reject, NOQUEUE",
        RFC3339 + "postfix/smtpd[304356]: NOQUEUE: reject: RCPT from smtp.example.in[198.51.100.50]: "
        "450 4.1.8 <sa@example.invalid>: Sender address rejected: Domain not found; "
        "from=<sa@example.invalid> to=<wx@example.net> proto=ESMTP helo=<galaxy.example.in>",
        [inb("450", "4.1.8", "rcpt")],
    ),
    (
        "RCPT reject with a queue id; numeric labels in the client name",
        SYSLOG + "postfix/smtpd[13844]: 00ADB3C0899: reject: RCPT from 137.22.228.213.example.com[192.0.2.213]: "
        "550 5.1.1 <yz@example.net>: Recipient address rejected: User unknown in local recipient table; "
        "from=<ab@example.com> to=<yz@example.net> proto=ESMTP helo=<mail.example.com>",
        [inb("550", "5.1.1", "rcpt")],
    ),
    (
        "CONNECT reject, two-digit detail",
        SYSLOG + "postfix/smtpd[7749]: NOQUEUE: reject: CONNECT from unknown[192.0.2.114]: 450 4.7.25 "
        "Client host rejected: cannot find your hostname, [192.0.2.114]; proto=SMTP",
        [inb("450", "4.7.25", "connect")],
    ),
    (
        "EHLO reject",
        SYSLOG + "postfix/smtpd[3462]: NOQUEUE: reject: EHLO from client.example.ru[198.51.100.238]: 504 5.5.2 "
        "<User>: Helo command rejected: need fully-qualified hostname; proto=SMTP helo=<User>",
        [inb("504", "5.5.2", "helo")],
    ),
    (
        "MAIL reject for size",
        SYSLOG + "postfix/smtpd[3463]: NOQUEUE: reject: MAIL from unknown[127.0.0.2]: 552 5.3.4 Message size "
        "exceeds fixed limit; from=<big@example.org> proto=ESMTP helo=<client.example.org>",
        [inb("552", "5.3.4", "mail")],
    ),
    (
        "VRFY from an IPv6 client",
        SYSLOG + "postfix/smtpd[3464]: NOQUEUE: reject: VRFY from unknown[2001:db8:9999:20::2bd2]: 550 5.1.1 "
        "<nobody@example.com>: Recipient address rejected: User unknown; to=<nobody@example.com> "
        "proto=SMTP helo=<me>",
        [inb("550", "5.1.1", "other")],
    ),
    (
        "BDAT reject on a submission instance",
        SYSLOG + "postfix-smo/submission/smtpd[22427]: 44JCRG5tYPzCqt2: reject: BDAT from "
        "signer.example.com[192.0.2.109]: 550 5.5.3 <DATA>: Data command rejected: Multi-recipient "
        "bounce; from=<> to=<cd@example.com> proto=ESMTP helo=<example.com>",
        [inb("550", "5.5.3", "data")],
    ),
    (
        "milter reject at DATA",
        SYSLOG + "postfix/smtpd[27246]: 1D8CC1CA0A: milter-reject: DATA from mx.example.com[192.0.2.151]: "
        "550 5.7.1 Command rejected; from=<ef@example.com> to=<gh@example.com> proto=ESMTP helo=<mx.example.com>",
        [inb("550", "5.7.1", "data")],
    ),
    (
        "milter greylisting at RCPT",
        SYSLOG + "postfix/smtpd[27247]: NOQUEUE: milter-reject: RCPT from relay.example.com[192.0.2.8]: "
        "451 4.7.1 Greylisting in action, please come back later; from=<ij@example.com> "
        "to=<kl@example.org> proto=ESMTP helo=<relay.example.com>",
        [inb("451", "4.7.1", "rcpt")],
    ),
    (
        "reject_warning is not a reply",
        SYSLOG + "postfix/smtpd[27248]: NOQUEUE: reject_warning: RCPT from example.com[192.0.2.34]: 553 5.7.1 "
        "<mn@example.com>: Sender address rejected: not owned by user; from=<mn@example.com> "
        "to=<op@example.com> proto=ESMTP helo=<example.com>",
        [],
    ),
    (
        "before-queue filter reject names no client",
        SYSLOG + "postfix/smtpd[21842]: proxy-reject: END-OF-MESSAGE: 554 5.7.1 Rejected for policy reasons "
        "(381C4E5D); from=<qr@example.com> to=<st@example.com> proto=ESMTP helo=<example.com>",
        [inb("554", "5.7.1", "end_of_data")],
    ),
    (
        "before-queue filter accept, nested codes count once",
        SYSLOG + "postfix/smtpd[21843]: 5A6B7C8D: proxy-accept: END-OF-MESSAGE: 250 2.0.0 from "
        "MTA(smtp:[127.0.0.1]:10013): 250 2.0.0 Ok: queued as DF66E94033; from=<uv@example.com> "
        "to=<wx@example.com> proto=ESMTP helo=<[127.0.0.1]>",
        [inb("250", "2.0.0", "end_of_data")],
    ),
    (
        "before-queue filter reject with an empty reply",
        SYSLOG + "postfix/smtpd[21844]: proxy-reject: END-OF-MESSAGE: ; from=<yz@example.com> "
        "to=<ab@example.com> proto=ESMTP helo=<[192.0.2.16]>",
        [],
    ),
    (
        "proxy warning quotes the reply that the following proxy-reject reports",
        SYSLOG + 'postfix/smtpd[7567]: warning: proxy 127.0.0.1:10023 rejected "MAIL FROM:<cd@example.com> '
        'SIZE=722 BODY=8BITMIME": "501 5.5.2 Syntax: MAIL FROM: <address>"',
        [],
    ),
    (
        "postscreen reject: the 5-digit port before the code is not a code",
        RFC3339 + "postfix/postscreen[3163107]: NOQUEUE: reject: RCPT from [198.51.100.193]:62795: 550 5.7.1 "
        "Service unavailable; client [198.51.100.193] blocked using zen.example.org; from=<ef@example.com>, "
        "to=<gh@example.net>, proto=ESMTP, helo=<3BqSwxw>",
        [inb("550", "5.7.1", "rcpt")],
    ),
    (
        "postscreen reject without a code",
        SYSLOG + "postfix/postscreen[311]: NOQUEUE: reject: CONNECT from [192.0.2.4]:1337: too many connections",
        [],
    ),
    (
        "cleanup milter reject: only an enhanced code is logged",
        SYSLOG + "postfix/cleanup[2712]: 4104E3D: milter-reject: END-OF-MESSAGE from "
        "host.example.com[198.51.100.86]: 5.7.1 Blocked by SpamAssassin; from=<ij@example.com> "
        "to=<kl@example.com> proto=ESMTP helo=<example.com>",
        [inb("", "5.7.1", "end_of_data")],
    ),
    (
        "cleanup header reject: the sender's header text holds a fake reply",
        SYSLOG + "postfix/cleanup[2713]: 906F41806: reject: header Subject: 550 5.1.1 helo=<x>: 4.2.2 win "
        "from mail.example.com[192.0.2.174]; from=<mn@example.com> to=<op@example.com> proto=ESMTP "
        "helo=<mail.example.com>: 5.7.1 message content rejected",
        [inb("", "5.7.1", "end_of_data")],
    ),
    (
        "cleanup body reject of locally submitted mail (no proto/helo)",
        SYSLOG + "postfix/cleanup[2714]: 1F2E3D4C: reject: body forbidden words from local; "
        "from=<root@example.com> to=<qr@example.com>: 5.7.1 body rejected",
        [inb("", "5.7.1", "end_of_data")],
    ),
    (
        "cleanup reject whose admin text begins with a code: the code is text",
        SYSLOG + "postfix/cleanup[25080]: 615E522801: reject: header Subject: =?euc-kr?q?Update?= from "
        "smtp5.example.com[192.0.2.233]; from=<st@example.com> to=<uv@example.com> proto=ESMTP "
        "helo=<smtp5.example.com>: 5.7.1 554 Character set prohibited.",
        [inb("", "5.7.1", "end_of_data")],
    ),
    (
        "AUTH refused: smtpd logs its 535 without the code",
        SYSLOG + "postfix/submission/smtpd[1187]: warning: unknown[192.0.2.77]: SASL LOGIN authentication "
        "failed: UGFzc3dvcmQ6",
        [inb("", "", "auth", "5xx")],
    ),
    (
        "AUTH refused, Postfix 3.x with the user name tried",
        RFC3339 + "postfix/smtpd[2290]: warning: mail.example.net[2001:db8::7]: SASL PLAIN authentication "
        "failed: authentication failure, sasl_username=admin@example.org",
        [inb("", "", "auth", "5xx")],
    ),
    (
        "AUTH refused, client port logged (smtpd_client_port_logging)",
        SYSLOG + "postfix/smtpd[31152]: warning: unknown[192.0.2.237]:55729: SASL LOGIN authentication failed: "
        "authentication failure",
        [inb("", "", "auth", "5xx")],
    ),
    (
        "Dovecot SASL server gone: the reply was 454 4.7.0 Temporary authentication failure",
        SYSLOG + "postfix/smtpd[21022]: warning: unknown[192.0.2.9]: SASL LOGIN authentication failed: "
        "Connection lost to authentication server",
        [inb("", "", "auth", "4xx")],
    ),
    (
        "the SASL library's own line about the same attempt counts nothing",
        SYSLOG + "postfix/submission/smtpd[1187]: warning: SASL authentication failure: Password verification "
        "failed",
        [],
    ),
    (
        "the SASL library's problem line counts nothing",
        SYSLOG + "postfix/smtpd[1187]: warning: SASL authentication problem: unable to open Berkeley db "
        "/etc/sasldb2: No such file or directory",
        [],
    ),
    (
        "an AUTH the client aborted (\"*\") is no failed attempt: not counted",
        SYSLOG + "postfix/smtpd[1187]: warning: unknown[192.0.2.77]: SASL LOGIN authentication aborted",
        [],
    ),
    # --- numbers that are not replies -----------------------------------------
    (
        "rate limit counter 334 is not a reply",
        SYSLOG + "postfix/smtpd[14059]: warning: Message delivery request rate limit exceeded: 334 from "
        "spam.example.com[192.0.2.227] for service submission",
        [],
    ),
    (
        "TLS bit counts",
        RFC3339 + "postfix/submission/smtpd[303987]: Anonymous TLS connection established from "
        "unknown[2001:db8:b240::15c8]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) "
        "key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256",
        [],
    ),
    (
        "anvil statistics: 2.3.4 inside an IP is no enhanced code",
        SYSLOG + "postfix/anvil[1161]: statistics: max connection count 10 for (smtp:1.2.3.4) at Sep 11 10:47:30",
        [],
    ),
    (
        "disconnect counters",
        SYSLOG + "postfix/smtpd[304356]: disconnect from smtp.example.in[198.51.100.50] ehlo=1 mail=1 "
        "rcpt=0/1 data=0/1 rset=1 quit=1 commands=4/6",
        [],
    ),
    (
        "delay=2017 and an all-digit queue id",
        SYSLOG + "postfix/smtp[59649]: 5270320179: to=<wx@example.se>, relay=mail.example.se[192.0.2.210]:25, "
        "delay=2017, delays=0.1/2017/0.03/0.05, dsn=2.0.0, status=sent (250 2.0.0 6FVIjIMwUJ mail accepted)",
        [Delivery("sent"), out("250", "2.0.0", "end_of_data")],
    ),
]


test_line_gives_events, test_every_counting_line_holds_a_trigger = table_tests(CASES, parse, TRIGGERS)


HOSTS_AND_TEXTS = [
    (
        "status=sent: the relay's name; a 2xx reply has no reason to read, so no text",
        SYSLOG + "postfix/smtp[2211]: 4Pc1Xk5tFpz3tG5: to=<ann@example.net>, "
        "relay=aspmx.l.example.com[2001:db8::1a]:25, delay=1.5, delays=0.01/0.01/0.52/0.94, "
        "dsn=2.0.0, status=sent (250 2.0.0 OK  1700000051 a3-2002si616.756 - gsmtp)",
        [Delivery("sent", "aspmx.l.example.com"),
         Reply("outbound", "250", "2xx", "2.0.0", "end_of_data", "aspmx.l.example.com", "")],
    ),
    (
        "bounce: the host that said it",
        SYSLOG + "postfix/smtp[501]: 6FB9036F13: to=<fi@example.com>, "
        "relay=alt1.gmr-smtp-in.l.example.com[192.0.2.26]:25, delay=0.8, delays=0.01/0/0.4/0.4, dsn=5.7.26, "
        "status=bounced (host alt1.gmr-smtp-in.l.example.com[192.0.2.26] "
        "said: 550 5.7.26 Unauthenticated email (in reply to end of DATA command))",
        [Delivery("bounced", "alt1.gmr-smtp-in.l.example.com"),
         Reply("outbound", "550", "5xx", "5.7.26", "end_of_data", "alt1.gmr-smtp-in.l.example.com",
               "550 5.7.26 Unauthenticated email (in reply to end of DATA command))")],
    ),
    (
        "relay=none: the host it could not reach, no reply",
        SYSLOG + "postfix/smtp[702]: 2F6AB16865: to=<ja@example.com>, relay=none, delay=30, "
        "delays=0/0/30/0, dsn=4.4.1, status=deferred (connect to mx.example.com[192.0.2.9]:25: Connection timed out)",
        [Delivery("deferred", "mx.example.com")],
    ),
    (
        "greeting salvaged at connect time",
        SYSLOG + "postfix/smtp[701]: 1F6AB16865: to=<ja@example.com>, relay=none, delay=3, "
        "delays=0/0/3/0, dsn=4.3.2, status=deferred (connect to mx2.example.com[192.0.2.9]:25: "
        "server refused to talk to me: 421 4.3.2 Service not available)",
        [Delivery("deferred", "mx2.example.com"),
         Reply("outbound", "421", "4xx", "4.3.2", "connect", "mx2.example.com", "421 4.3.2 Service not available)")],
    ),
    (
        "inbound: the address a reject is about is not why it was rejected",
        SYSLOG + "postfix/smtpd[1234]: NOQUEUE: reject: RCPT from unknown[192.0.2.77]: 550 5.1.1 "
        "<nobody@example.net>: Recipient address rejected: User unknown in local recipient table; "
        "from=<a@example.com> to=<nobody@example.net> proto=ESMTP helo=<mail.example.com>",
        [Reply("inbound", "550", "5xx", "5.1.1", "rcpt", "",
               "Recipient address rejected: User unknown in local recipient table")],
    ),
    (
        "inbound: no remote host; the envelope after the reply is not reply text",
        SYSLOG + "postfix/smtpd[1234]: NOQUEUE: reject: RCPT from unknown[192.0.2.77]: 554 5.7.1 "
        "Service unavailable; Client host [192.0.2.77] blocked using zen.example.org; "
        "from=<a@example.com> to=<b@example.net> proto=ESMTP helo=<spamhaus.example>",
        [Reply("inbound", "554", "5xx", "5.7.1", "rcpt", "",
               "554 5.7.1 Service unavailable; Client host [192.0.2.77] blocked using zen.example.org")],
    ),
]


@pytest.mark.parametrize("line,expected", [c[1:] for c in HOSTS_AND_TEXTS], ids=[c[0] for c in HOSTS_AND_TEXTS])
def test_relay_host_and_reply_text(line, expected):
    assert hosted(parse(line)) == expected



def test_not_postfix_is_none():
    assert parse("Nov  3 17:44:15 mx1 exim[123]: 2016-04-28 15:53:37 1avnJx-00039F-Hs <= a@example.com") is None
    assert parse("garbage without a tag") is None


def test_unknown_postfix_shape_is_none_so_it_can_be_flagged():
    line = SYSLOG + "postfix/smtp[1]: ABCDEF1234: something new said: 550 5.1.1 odd"
    assert parse(line) is None

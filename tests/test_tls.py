"""TLS: what each MTA logs of a connection that used TLS, read into Tls events
(Postfix's over whole blocks, the others' line by line)."""

import tracemalloc

import pytest

from exporter.parsers import FORMATS, exim, opensmtpd, postfix, sendmail
from exporter.replies import Tls, tls_protocol
from exporter.scanner import LineScanner, Tally

IN, OUT = "inbound", "outbound"
PF = "Nov 28 20:33:32 mx postfix/"

POSTFIX_LINES = [
    (PF + "smtpd[146011]: Anonymous TLS connection established from mail1.example.com[192.0.2.155]: TLSv1.3 "
     "with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (4096 bits) "
     "server-digest SHA256", Tls(IN, "TLSv1.3", "anonymous")),
    ("2026-11-28T20:33:32.689322+01:00 mx postfix/smtp[1570097]: Untrusted TLS connection established to "
     "aspmx.example.co.uk[192.0.2.235]:25: TLSv1.2 with cipher ECDHE-ECDSA-AES128-GCM-SHA256 (128/128 bits)",
     Tls(OUT, "TLSv1.2", "untrusted")),
    (PF + "smtp[1]: Trusted TLS connection established to mx.example.net[2001:db8::25]:25: TLSv1.3 with cipher "
     "TLS_AES_128_GCM_SHA256 (128/128 bits)", Tls(OUT, "TLSv1.3", "trusted")),
    (PF + "lmtp[2]: Verified TLS connection established to lmtp.example.net[192.0.2.24]:24: TLSv1.2 with cipher "
     "ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)", Tls(OUT, "TLSv1.2", "verified")),
    (PF + "tlsproxy[3]: Anonymous TLS connection established from unknown[192.0.2.9]: TLSv1 with cipher "
     "ECDHE-RSA-AES256-SHA (256/256 bits)", Tls(IN, "TLSv1", "anonymous")),
    (PF + "submission/smtpd[4]: Untrusted TLS connection established from unknown[192.0.2.9]: SSLv3 with cipher "
     "DES-CBC3-SHA (168/168 bits)", Tls(IN, "other", "untrusted")),
]


def test_postfix_counts_a_block_of_tls_lines():
    noise = PF + "smtpd[5]: connect from unknown[192.0.2.1]\n"
    block = "".join(line + "\n" + noise for line, _ in POSTFIX_LINES * 2).encode()
    events, lines = postfix.count_block(block)
    assert lines == 2 * len(POSTFIX_LINES)
    assert events == {(tls, "postfix/submission" if "submission/smtpd" in line else "postfix"): 2
                      for line, tls in POSTFIX_LINES}


def test_postfix_a_tag_longer_than_any_real_one_costs_no_more_than_its_line():
    # The tag is read within a bounded window: once, a tag without a space in
    # it made each line keep a copy of the block up to it.
    tls = b"Anonymous TLS connection established from h[192.0.2.1]: TLSv1.3 with cipher X\n"
    block = (b"Jan  1 00:00:00 host " + b"p" * 200 + b"/smtpd[1]: " + tls) * 2000
    tracemalloc.start()
    try:
        events, lines = postfix.count_block(block)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * len(block)
    assert lines == 2000  # counted, under a service the labeller folds into `other` (longer than 64)
    assert all(len(service) > 64 for _, service in events)


def test_postfix_tls_phrase_outside_a_postfix_tagged_line_counts_nothing():
    # The phrase in another program's line, or in no tagged line at all.
    block = (b"Nov 28 20:33:32 mx relayd[7]: Anonymous TLS connection established from a[192.0.2.1]: TLSv1.3 x\n"
             b"Anonymous TLS connection established from a[192.0.2.1]: TLSv1.3 with cipher x\n"
             b"Nov 28 20:33:32 mx postfix/smtpd[1]: connect from a[192.0.2.1]\n")
    assert postfix.count_block(block) == ({}, 0)


def test_postfix_tls_lines_are_matched_lines_and_counted_once():
    sink = Tally()
    block = "".join(line + "\n" for line, _ in POSTFIX_LINES).encode()
    LineScanner((FORMATS["postfix"],), sink).feed(block)
    assert sink.lines["matched"] == len(POSTFIX_LINES)
    assert sum(sink.counts.tls.values()) == len(POSTFIX_LINES)
    assert not sink.counts.replies


@pytest.mark.parametrize("tail", [b"", b"\n", b" from\n", b" from host[192.0.2.1]:\n", b" from\nnext line\n"])
def test_postfix_a_cut_tls_line_counts_nothing_and_ends(tail):
    # A line cut after the phrase (or hostile) must not be read past its end,
    # nor looked at again and again.
    line = PF.encode() + b"smtpd[1]: Anonymous TLS connection established" + tail
    assert postfix.count_block(line) == ({}, 0)


def test_postfix_tls_setup_failures_are_not_connections():
    block = (PF + "smtpd[6]: SSL_accept error from unknown[192.0.2.8]: lost connection\n"
             + PF + "smtp[7]: TLS library problem: error:0A000086:SSL routines::certificate verify failed\n").encode()
    assert postfix.count_block(block) == ({}, 0)


LINES = [
    ("exim arrival over TLS 1.3 (GnuTLS), no client certificate", exim.parse,
     "2026-11-03 17:44:15 1xXMrL-00085u-0m <= a@example.org H=(client.example.org) [192.0.2.8] P=esmtps "
     "X=TLS1.3:ECDHE_X25519__RSA_PSS_RSAE_SHA256__AES_256_GCM:256 CV=no S=219 for r@example.com",
     [Tls(IN, "TLSv1.3", "unknown")]),
    ("exim arrival in plain text", exim.parse,
     "2026-11-03 17:44:15 1xXMrL-00085u-0m <= a@example.org H=(client.example.org) [192.0.2.8] P=esmtp "
     "S=219 for r@example.com", []),
    ("exim delivery over TLS 1.2 (OpenSSL), certificate verified", exim.parse,
     '2026-11-03 17:44:15 1xXMrL-00085u-0m => r@example.com R=dnslookup T=remote_smtp H=mx.example.com '
     '[192.0.2.7] X=TLSv1.2:ECDHE-RSA-AES256-GCM-SHA384:256 CV=yes C="250 2.0.0 OK"',
     [Tls(OUT, "TLSv1.2", "verified")]),
    ("exim delivery, certificate not verified", exim.parse,
     '2026-11-03 17:44:15 1xXMrL-00085u-0m => r@example.com R=dnslookup T=remote_smtp H=mx.example.com '
     '[192.0.2.7] X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no C="250 OK"',
     [Tls(OUT, "TLSv1.3", "untrusted")]),
    # Exim 4.96 (GnuTLS) in the lab: a message to three recipients of one host, one refused.
    ("exim further address of a delivery: its connection's TLS was counted on the => line", exim.parse,
     "2026-12-06 14:08:29 1xaCuj-0004y0-18 -> bob@tls.test R=peer T=peer_tls H=127.0.0.1 [127.0.0.1] "
     "X=TLS1.3:ECDHE_SECP256R1__RSA_PSS_RSAE_SHA256__AES_256_GCM:256 CV=no "
     'C="250 2.0.0 Ok: queued as 4F2A9C1E0D" QT=0s', []),
    ("exim refused address of a delivery: counted on the => line, if any", exim.parse,
     "2026-12-06 14:08:29 1xaCuj-0004y0-18 ** c550_5_1_1_a@tls.test R=peer T=peer_tls H=127.0.0.1 [127.0.0.1] "
     "X=TLS1.3:ECDHE_SECP256R1__RSA_PSS_RSAE_SHA256__AES_256_GCM:256 CV=no: SMTP error from remote mail server "
     "after RCPT TO:<c550_5_1_1_a@tls.test>: 550 5.1.1 <c550_5_1_1_a@tls.test>: Recipient address rejected", []),
    ("exim delivery down a connection already open: its TLS was counted", exim.parse,
     '2026-11-03 17:44:15 1xXMrL-00085u-0m => s@example.com R=dnslookup T=remote_smtp H=mx.example.com '
     '[192.0.2.7]* X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes C="250 OK"', []),
    ("sendmail as a client", sendmail.parse,
     "Nov 29 04:14:12 mx1 sm-mta[28764]: STARTTLS=client, relay=mx.example.net., version=TLSv1.3, verify=OK, "
     "cipher=TLS_AES_256_GCM_SHA384, bits=256/256",
     [Tls(OUT, "TLSv1.3", "verified")]),
    ("sendmail as a server, no client certificate", sendmail.parse,
     "Nov 29 04:14:12 mx1 sm-mta[28764]: 6AT4ECI3028762: STARTTLS=server, relay=client.example.org "
     "[192.0.2.8], version=TLSv1.2, verify=NO, cipher=ECDHE-RSA-AES256-GCM-SHA384, bits=256/256",
     [Tls(IN, "TLSv1.2", "anonymous")]),
    ("sendmail: a failed handshake is no connection", sendmail.parse,
     "Nov 29 04:14:12 mx1 sm-mta[28764]: STARTTLS=server, error: accept failed=-1, reason=no shared cipher, "
     "SSL_error=1, errno=0, retry=-1, relay=[192.0.2.8]", []),
    ("opensmtpd inbound", opensmtpd.parse,
     "Nov 29 04:25:57 mx3 smtpd[7617]: a427e8957ba23d6f smtp tls ciphers=TLSv1.3:TLS_AES_256_GCM_SHA384:256",
     [Tls(IN, "TLSv1.3", "unknown")]),
    ("opensmtpd outbound", opensmtpd.parse,
     "Nov 29 04:25:57 mx3 smtpd[7617]: a427e8957ba23d6f mta tls ciphers=TLSv1.2:ECDHE-RSA-AES256-GCM-SHA384:256",
     [Tls(OUT, "TLSv1.2", "unknown")]),
]


@pytest.mark.parametrize("parse,line,expected", [c[1:] for c in LINES], ids=[c[0] for c in LINES])
def test_tls_of_a_line(parse, line, expected):
    assert [e for e in parse(line) or [] if isinstance(e, Tls)] == expected


@pytest.mark.parametrize("module", [exim, sendmail, opensmtpd])
def test_every_tls_line_holds_a_trigger(module):
    for _, parse, line, expected in LINES:
        if parse is module.parse and expected:
            assert any(t in line for t in module.TRIGGERS), line


@pytest.mark.parametrize("version,protocol", [
    ("TLSv1.3", "TLSv1.3"), ("TLS1.3", "TLSv1.3"), ("TLSv1.2", "TLSv1.2"), ("TLS1.2", "TLSv1.2"),
    ("TLSv1.1", "TLSv1.1"), ("TLSv1", "TLSv1"), ("TLS1.0", "TLSv1"), ("SSLv3", "other"), ("", "other"),
    ("TLSv1.4", "other"),
])
def test_tls_protocol(version, protocol):
    assert tls_protocol(version) == protocol

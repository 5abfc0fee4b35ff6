#!/usr/bin/env python3
"""Write a seeded, realistic Postfix syslog for benchmarks (stdlib only).

    python3 benchmarks/postfix_log_gen.py OUT --lines 1000000 --seed 1

The log is made of mail "sessions" (an inbound message accepted and handed to
LMTP, a message relayed out that is sent, deferred or bounced, a botnet client
stopped by postscreen, an smtpd client rejected at RCPT, a SASL guesser, ...).
A few dozen sessions run at once and their lines are interleaved, like on a
busy MX, so queue ids, pids and clients stay consistent within a session.
About a quarter of the lines carry a reply code, an enhanced status code or a
delivery status; the rest is the connect/TLS/qmgr/cleanup chatter around them.

The file is written as it is generated, in small batches: memory stays flat
whatever --lines is. Same --seed and --lines give the same bytes.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Iterator

# A session yields (daemon tag, message, carries_code) tuples; the writer adds
# the syslog prefix with the timestamp of the moment the line is emitted.
Line = tuple[str, str, bool]
Session = Iterator[Line]

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
HEX = "0123456789ABCDEF"
# Postfix long queue ids: base-52 without vowels; 'z' separates time and inode.
LONG_ID_CHARS = "0123456789BCDFGHJKLMNPQRSTVWXYbcdfghjklmnpqrstvwxy"
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

SYLLABLES = (
    "al", "an", "ar", "be", "bo", "ca", "da", "de", "el", "en", "fa", "fe", "ga", "ha", "in",
    "ja", "ka", "ke", "la", "le", "li", "lo", "ma", "me", "mi", "mo", "na", "ne", "ni", "no",
    "or", "pa", "pe", "ra", "re", "ri", "ro", "sa", "se", "si", "ta", "te", "ti", "to", "va",
    "ve", "vi", "xa", "yo", "za",
)
TLDS = ("com", "net", "org", "de", "fr", "nl", "io", "co.uk", "com.br", "ru", "jp", "info", "biz")
FIRST = ("anna", "ben", "carla", "dirk", "eva", "felix", "greta", "hugo", "ines", "jan", "kim",
         "lena", "marc", "nora", "otto", "paula", "quinn", "rosa", "sven", "tina", "uwe", "vera",
         "wim", "xenia", "yusuf", "zoe", "info", "sales", "billing", "support", "admin", "noreply",
         "postmaster", "hr", "jobs", "office")
LAST = ("meyer", "schmidt", "novak", "garcia", "rossi", "dubois", "jansen", "kowalski", "smith",
        "silva", "tanaka", "olsen", "berg", "costa", "weber", "fischer", "moreau", "ivanova")
LOCAL_DOMAINS = ("example.org", "example.net", "lists.example.org", "corp.example.com")
MY_HOST = "mx.example.org"

DNSBLS = ("zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org", "dnsbl.sorbs.net",
          "psbl.surriel.com")
CIPHERS_13 = ("TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256")
CIPHERS_12 = ("ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256",
              "ECDHE-RSA-CHACHA20-POLY1305", "DHE-RSA-AES256-GCM-SHA384")

# Remote servers' replies to our outbound deliveries, by outcome. Each entry:
# (dsn, text after "said: ", the command it answered).
SAID_BOUNCE = (
    ("5.1.1", "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table", "RCPT TO"),
    ("5.1.1", "550 5.1.1 <{rcpt}>: user unknown", "RCPT TO"),
    ("5.1.1", ("550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 "
               "double-checking the recipient's email address for typos or 550-5.1.1 unnecessary spaces. "
               "For more information, go to 550 5.1.1  https://support.example.com/mail/?p=NoSuchUser "
               "{b62} - gsmtp"), "RCPT TO"),
    ("5.2.2", "552 5.2.2 <{rcpt}>: Mailbox full", "RCPT TO"),
    ("5.7.1", ("550-5.7.1 [{ip}] Our system has detected that this message is likely unsolicited 550-5.7.1 "
               "mail. To reduce the amount of spam sent to us, this message has been 550-5.7.1 blocked. "
               "For more information, go to 550 5.7.1  https://support.example.com/mail/?p=UnsolicitedMessageError "
               "{b62} - gsmtp"), "end of DATA"),
    ("5.7.26", "550 5.7.26 This mail has been blocked because the sender is unauthenticated. (DMARC policy)",
     "end of DATA"),
    ("5.7.1", "554 5.7.1 <{rcpt}>: Relay access denied", "RCPT TO"),
    ("5.0.0", "550 Requested action not taken: mailbox unavailable", "RCPT TO"),
    ("5.0.0", "554 Transaction failed: message rejected as spam", "end of DATA"),
    ("5.0.0", "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", "RCPT TO"),
    ("5.3.4", "552 5.3.4 Error: message file too big", "MAIL FROM"),
    ("5.7.1", "550 5.7.1 Message rejected due to content restrictions", "end of DATA"),
)
SAID_DEFER = (
    ("4.7.1", "450 4.7.1 <{rcpt}>: Recipient address rejected: Greylisted, see https://postgrey.example.net/help/{dom}",
     "RCPT TO"),
    ("4.7.1", "451 4.7.1 Greylisting in action, please come back later", "RCPT TO"),
    ("4.2.2", ("452 4.2.2 The email account that you tried to reach is over quota. Please direct the "
               "recipient to https://support.example.com/mail/?p=OverQuotaTemp {b62} - gsmtp"), "RCPT TO"),
    ("4.3.0", "451 4.3.0 Temporary server error. Please try again later. PRX5 ", "end of DATA"),
    ("4.7.0", ("421 4.7.0 [TSS04] Messages from {ip} temporarily deferred due to unexpected volume or user "
               "complaints - 4.16.55.1; see https://postmaster.example.com/error-codes/421"), "MAIL FROM"),
    ("4.0.0", "451 Temporary local problem - please try later", "RCPT TO"),
    ("4.0.0", "450 Requested mail action not taken: mailbox unavailable", "RCPT TO"),
    ("4.4.2", "421 4.4.2 mx.{dom} Error: timeout exceeded", "DATA"),
)
REFUSED = (
    ("4.7.0", "421 4.7.0 Try again later, closing connection. (EHLO) {b62} - gsmtp"),
    ("4.3.2", "421 4.3.2 Service not available, closing transmission channel"),
    ("4.0.0", "421 Service temporarily unavailable"),
    ("5.0.0", "554 mx.{dom} ESMTP not accepting messages"),
    ("4.0.0", "450 too many connections from your IP (rate controlled)"),
)
# Delivery failures without any reply: (dsn, status, text in parentheses).
NO_REPLY = (
    ("4.4.1", "deferred", "connect to {mx}[{mxip}]:25: Connection timed out"),
    ("4.4.1", "deferred", "connect to {mx}[{mxip}]:25: Connection refused"),
    ("4.4.1", "deferred", "connect to {mx}[{mxip}]:25: No route to host"),
    ("4.4.3", "deferred", ("Host or domain name not found. Name service error for name={dom} type=MX: "
                           "Host not found, try again")),
    ("5.4.4", "bounced", ("Host or domain name not found. Name service error for name={dom} type=AAAA: "
                          "Host not found")),
    ("4.4.2", "deferred", "lost connection with {mx}[{mxip}] while receiving the initial server greeting"),
    ("4.4.2", "deferred", "conversation with {mx}[{mxip}] timed out while sending RCPT TO"),
    ("4.7.5", "deferred", "Server certificate not trusted"),
    ("4.7.4", "deferred", "TLS is required, but was not offered by host {mx}[{mxip}]"),
    ("4.3.0", "deferred", "delivery temporarily suspended: connect to {mx}[{mxip}]:25: Connection timed out"),
)
SENT_250 = (
    "250 2.0.0 OK  {epoch} {b62} - gsmtp",
    "250 2.0.0 Ok: queued as {qid2}",
    "250 2.6.0 <{msgid}> [InternalId={num}, Hostname={mxu}] Queued mail for delivery",
    "250 2.0.0 {b62} Message accepted for delivery",
    "250 Ok: queued as {qid2}",
    "250 OK id=1t{b62}",
    "250 ok {epoch} qp {num}",
    "250 2.0.0 Ok: queued as {qid2} (Mode: normal)",
)
# smtpd rejects of our own: (stage, reply, has recipient part).
SMTPD_REJECT = (
    ("RCPT", "554 5.7.1 <{rcpt}>: Relay access denied", 30),
    ("RCPT", "550 5.1.1 <{lrcpt}>: Recipient address rejected: User unknown in virtual mailbox table", 30),
    ("RCPT", "450 4.7.25 Client host rejected: cannot find your hostname, [{cip}]", 12),
    ("RCPT", "450 4.1.8 <{from}>: Sender address rejected: Domain not found", 8),
    ("RCPT", ("554 5.7.1 Service unavailable; Client host [{cip}] blocked using {dnsbl}; "
              "https://www.{dnsbl}/query/ip/{cip}"), 15),
    ("RCPT", "450 4.7.1 <{helo}>: Helo command rejected: Host not found", 5),
    ("RCPT", "504 5.5.2 <{helo}>: Helo command rejected: need fully-qualified hostname", 5),
    ("RCPT", "450 4.2.0 <{lrcpt}>: Recipient address rejected: Greylisted, see http://postgrey.example.org/", 8),
    ("RCPT", "550 5.7.23 <{lrcpt}>: Recipient address rejected: Message rejected due to: SPF fail - not authorized", 4),
    ("RCPT", "452 4.5.3 Error: too many recipients", 1),
    ("MAIL", "553 5.7.1 <{from}>: Sender address rejected: not logged in", 4),
    ("MAIL", "552 5.3.4 Message size exceeds fixed limit", 1),
    ("CONNECT", "554 5.7.1 <{chost}[{cip}]>: Client host rejected: Access denied", 3),
    ("CONNECT", "450 4.7.25 Client host rejected: cannot find your hostname, [{cip}]", 3),
    ("EHLO", "504 5.5.2 <{helo}>: Helo command rejected: need fully-qualified hostname", 2),
    ("DATA", "554 5.5.1 Error: no valid recipients", 2),
    ("VRFY", "550 5.1.1 <{lrcpt}>: Recipient address rejected: User unknown in virtual mailbox table", 1),
    ("BDAT", "550 5.7.1 <{lrcpt}>: Recipient address rejected: Message rejected", 1),
)
HEADER_CHECKS = (
    ("header", "Subject: =?UTF-8?B?{b62}?=", "5.7.1 Message content rejected"),
    ("header", "Subject: Your invoice #{num} is overdue", "5.7.1 Spam subject"),
    ("header", "Content-Type: application/x-msdownload; name=\"invoice{num}.exe\"", "5.7.1 Executable attachments not allowed"),
    ("body", "<a href=\"http://{dom}/{b62}\">unsubscribe</a>", "5.7.1 Blocked URL"),
    ("header", "X-Mailer: MassMailer 3.{num}", "5.7.0 Bulk mail software not accepted"),
)
MILTER_REJECTS = (
    "5.7.1 Rejected by SpamAssassin",
    "5.7.1 Spam message rejected",
    "4.7.1 Try again later",
    "5.7.1 Gtube pattern",
    "4.7.1 Greylisted, please try again later",
    "5.7.1 DMARC policy reject for {dom}",
)


class Clock:
    """Log time: moves forward a random step per line, formats both prefixes."""

    def __init__(self, rng: random.Random, start: float, mean_step: float) -> None:
        self.rng = rng
        self.t = start
        self.mean_step = mean_step
        self._second = -1
        self._classic = ""
        self._rfc = ""

    def advance(self) -> None:
        self.t += self.rng.expovariate(1.0 / self.mean_step)

    def _refresh(self) -> None:
        sec = int(self.t)
        if sec != self._second:
            self._second = sec
            tm = time.gmtime(sec + 3600)  # written as local time at +01:00
            self._classic = f"{MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} {tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"
            self._rfc = (f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T"
                         f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}")

    def classic(self) -> str:
        self._refresh()
        return self._classic

    def rfc3339(self) -> str:
        self._refresh()
        return f"{self._rfc}.{int((self.t % 1) * 1e6):06d}+01:00"


def fmt_delay(x: float) -> str:
    """Postfix style: 0, 0.01, 0.25, 1.4, 12, 3612."""
    if x < 0.005:
        return "0"
    if x < 1:
        return f"{x:.2f}".rstrip("0").rstrip(".")
    if x < 10:
        return f"{x:.1f}".rstrip("0").rstrip(".")
    return str(int(x))


class World:
    """Stable pools (clients, remote MXes, users, pids) and the session scripts."""

    def __init__(self, rng: random.Random, clock: Clock) -> None:
        self.rng = rng
        self.clock = clock
        r = rng
        self.domains = [self._domain() for _ in range(600)]
        self.mxes = []  # (domain, mx host, ip)
        for dom in self.domains[:400]:
            host = r.choice(("mx", "mx1", "mail", "smtp", "aspmx", "mx-in", "inbound")) + "." + dom
            self.mxes.append((dom, host, self._ip()))
        self.clients = []  # (ptr name or "unknown", ip, helo)
        for _ in range(5000):
            ip = self._ip6() if r.random() < 0.07 else self._ip()
            if r.random() < 0.22:
                name = "unknown"
                helo = r.choice(("localhost", "User", "[" + ip + "]", self._word(2), "ylmf-pc", "WIN-" + self._b62(8).upper()))
            else:
                dom = r.choice(self.domains)
                if ":" in ip:
                    name = f"{self._word(1)}{r.randrange(1, 40)}.{dom}"
                else:
                    name = r.choice((f"mail{r.randrange(1, 9)}.{dom}",
                                     f"out-{r.randrange(10, 99)}.smtp.{dom}",
                                     "-".join(reversed(ip.split("."))) + ".dyn." + dom,
                                     f"{self._word(2)}.{dom}"))
                helo = name if r.random() < 0.85 else self._word(2) + "." + dom
            self.clients.append((name, ip, helo))
        self.local_users = [f"{r.choice(FIRST)}.{r.choice(LAST)}{r.choice(('', '', str(r.randrange(2, 99))))}@"
                            f"{r.choice(LOCAL_DOMAINS)}" for _ in range(800)]
        self.smtpd_pids = [r.randrange(1000, 4_000_000) for _ in range(24)]
        self.smtp_pids = [r.randrange(1000, 4_000_000) for _ in range(30)]
        self.lmtp_pids = [r.randrange(1000, 4_000_000) for _ in range(6)]
        self.cleanup_pids = [r.randrange(1000, 4_000_000) for _ in range(8)]
        self.qmgr_pid = r.randrange(900, 60000)
        self.pickup_pid = r.randrange(1000, 4_000_000)
        self.anvil_pid = r.randrange(1000, 4_000_000)
        self.postscreen_pid = r.randrange(900, 60000)
        self.bounce_pid = r.randrange(1000, 4_000_000)

    # --- small random things -------------------------------------------------
    def _word(self, n: int) -> str:
        return "".join(self.rng.choice(SYLLABLES) for _ in range(n))

    def _domain(self) -> str:
        r = self.rng
        return f"{self._word(r.randrange(2, 4))}{r.choice(('', '', '-mail', '-group', str(r.randrange(1, 99))))}.{r.choice(TLDS)}"

    def _ip(self) -> str:
        r = self.rng
        a = r.randrange(1, 224)
        while a in (10, 127, 169, 172, 192):
            a = r.randrange(1, 224)
        return f"{a}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"

    def _ip6(self) -> str:
        r = self.rng
        return f"2001:db8:{r.randrange(65536):x}:{r.randrange(65536):x}::{r.randrange(1, 65536):x}"

    def _b62(self, n: int) -> str:
        return "".join(self.rng.choices(B62, k=n))

    def qid(self) -> str:
        r = self.rng
        if r.random() < 0.2:
            return "".join(r.choices(LONG_ID_CHARS, k=10)) + "z" + "".join(r.choices(LONG_ID_CHARS, k=r.randrange(2, 6)))
        return "".join(r.choices(HEX, k=10 if r.random() < 0.7 else 11))

    def pid(self, pool: list[int]) -> int:
        """A process from the pool; now and then one exits and a new pid replaces it."""
        r = self.rng
        i = r.randrange(len(pool))
        if r.random() < 0.01:
            pool[i] = r.randrange(1000, 4_000_000)
        return pool[i]

    def client(self) -> tuple[str, str, str]:
        # Skewed: a few clients connect a lot (big senders, persistent bots).
        return self.clients[int(len(self.clients) * self.rng.random() ** 2.5)]

    def mx(self) -> tuple[str, str, str]:
        return self.mxes[int(len(self.mxes) * self.rng.random() ** 2)]

    def remote_addr(self, dom: str | None = None) -> str:
        r = self.rng
        return f"{r.choice(FIRST)}{r.choice(('', '.' + r.choice(LAST), str(r.randrange(1, 999))))}@{dom or r.choice(self.domains)}"

    def local_addr(self) -> str:
        return self.local_users[int(len(self.local_users) * self.rng.random() ** 1.5)]

    def msgid(self, dom: str) -> str:
        r = self.rng
        return r.choice((f"{self._b62(20)}@{dom}",
                         f"{int(self.clock.t)}.{r.randrange(10**5, 10**6)}.{self._b62(6)}@mail.{dom}",
                         f"CA+{self._b62(30)}@mail.{dom}",
                         f"{time.strftime('%Y%m%d%H%M%S', time.gmtime(self.clock.t))}.{self._b62(10)}@{MY_HOST}"))

    def tls(self, direction: str, peer: str, port: str) -> str:
        """An smtpd ("from") or smtp ("to") TLS line with its bit counts."""
        r = self.rng
        trust = "Anonymous" if direction == "from" else r.choice(("Trusted", "Untrusted", "Verified", "Trusted"))
        if r.random() < 0.75:
            cipher = r.choice(CIPHERS_13)
            bits = "128/128" if "128" in cipher else "256/256"
            tail = f" key-exchange X25519 server-signature {r.choice(('RSA-PSS (2048 bits)', 'RSA-PSS (4096 bits)', 'ECDSA (P-256)'))} server-digest SHA256"
            proto = "TLSv1.3"
        else:
            cipher = r.choice(CIPHERS_12)
            bits = "128/128" if "128" in cipher else "256/256"
            tail = ""
            proto = "TLSv1.2"
        return f"{trust} TLS connection established {direction} {peer}{port}: {proto} with cipher {cipher} ({bits} bits){tail}"

    def delays(self, transmit: float) -> tuple[str, str]:
        r = self.rng
        a, b, c = r.expovariate(20), r.expovariate(100), r.expovariate(8)
        return fmt_delay(a + b + c + transmit), f"{fmt_delay(a)}/{fmt_delay(b)}/{fmt_delay(c)}/{fmt_delay(transmit)}"

    def fill(self, template: str, **kw: str) -> str:
        if "{" not in template:
            return template
        r = self.rng
        values = {"b62": self._b62(r.randrange(8, 14)), "num": str(r.randrange(1, 10**7)),
                  "epoch": str(int(self.clock.t)), "qid2": self.qid(), "dnsbl": r.choice(DNSBLS)}
        values.update(kw)
        return template.format(**values)

    def smtpd_tag(self) -> str:
        x = self.rng.random()
        if x < 0.06:
            return "postfix/submission/smtpd"
        if x < 0.08:
            return "postfix/smtps/smtpd"
        return "postfix/smtpd"

    # --- sessions ------------------------------------------------------------
    def inbound_accept(self) -> Session:
        """postscreen passes a client, smtpd takes a message, LMTP stores it."""
        r = self.rng
        name, ip, helo = self.client()
        port = r.randrange(1024, 65535)
        ps = f"postfix/postscreen[{self.postscreen_pid}]"
        yield ps, f"CONNECT from [{ip}]:{port} to [203.0.113.25]:25", False
        if r.random() < 0.15:
            yield ps, f"PASS NEW [{ip}]:{port}", False
        else:
            yield ps, f"PASS OLD [{ip}]:{port}", False
        tag = f"postfix/smtpd[{self.pid(self.smtpd_pids)}]"
        yield tag, f"connect from {name}[{ip}]", False
        if r.random() < 0.65:
            yield tag, self.tls("from", f"{name}[{ip}]", ""), False
        qid = self.qid()
        yield tag, f"{qid}: client={name}[{ip}]", False
        dom = r.choice(self.domains)
        sender = self.remote_addr(dom)
        yield f"postfix/cleanup[{self.pid(self.cleanup_pids)}]", f"{qid}: message-id=<{self.msgid(dom)}>", False
        rcpts = [self.local_addr() for _ in range(1 if r.random() < 0.8 else r.randrange(2, 5))]
        if r.random() < 0.15:
            bad = self.local_addr().replace(".", "", 1)
            yield tag, (f"{qid}: reject: RCPT from {name}[{ip}]: 550 5.1.1 <{bad}>: Recipient address rejected: "
                        f"User unknown in virtual mailbox table; from=<{sender}> to=<{bad}> proto=ESMTP helo=<{helo}>"), True
        size = int(r.lognormvariate(9.5, 1.2)) + 400
        yield f"postfix/qmgr[{self.qmgr_pid}]", f"{qid}: from=<{sender}>, size={size}, nrcpt={len(rcpts)} (queue active)", False
        yield tag, (f"disconnect from {name}[{ip}] ehlo=1 {'starttls=1 ' if r.random() < 0.6 else ''}"
                    f"mail=1 rcpt={len(rcpts)} data=1 quit=1 commands={4 + len(rcpts)}"), False
        kind = r.random()
        for rcpt in rcpts:
            delay, delays = self.delays(r.expovariate(30))
            if kind < 0.7:
                lm = f"postfix/lmtp[{self.pid(self.lmtp_pids)}]"
                yield lm, (f"{qid}: to=<{rcpt}>, relay={MY_HOST}[private/dovecot-lmtp], delay={delay}, "
                           f"delays={delays}, dsn=2.0.0, status=sent (250 2.0.0 <{rcpt}> {self._b62(22)} Saved)"), True
            elif kind < 0.85:
                yield f"postfix/virtual[{r.randrange(1000, 4_000_000)}]", (
                    f"{qid}: to=<{rcpt}>, relay=virtual, delay={delay}, delays={delays}, dsn=2.0.0, "
                    f"status=sent (delivered to maildir)"), True
            elif kind < 0.93:
                yield f"postfix/pipe[{r.randrange(1000, 4_000_000)}]", (
                    f"{qid}: to=<{rcpt}>, relay=spamassassin, delay={delay}, delays={delays}, dsn=2.0.0, "
                    f"status=sent (delivered via spamassassin service)"), True
            else:
                yield f"postfix/local[{r.randrange(1000, 4_000_000)}]", (
                    f"{qid}: to=<{rcpt}>, orig_to=<postmaster@{rcpt.split('@')[1]}>, relay=local, delay={delay}, "
                    f"delays={delays}, dsn=2.0.0, status=sent (delivered to mailbox)"), True
        yield f"postfix/qmgr[{self.qmgr_pid}]", f"{qid}: removed", False

    def outbound(self, submitted: bool) -> Session:
        """A message from a user (submission or pickup) relayed to a remote MX."""
        r = self.rng
        qid = self.qid()
        sender = self.local_addr()
        if submitted:
            name, ip, _helo = self.client()
            tag = f"postfix/submission/smtpd[{self.pid(self.smtpd_pids)}]"
            yield tag, f"connect from {name}[{ip}]", False
            yield tag, self.tls("from", f"{name}[{ip}]", ""), False
            yield tag, f"{qid}: client={name}[{ip}], sasl_method=PLAIN, sasl_username={sender}", False
        else:
            yield f"postfix/pickup[{self.pickup_pid}]", f"{qid}: uid={r.choice((0, 33, 1000, 1001, 998))} from=<{sender.split('@')[0]}>", False
        yield f"postfix/cleanup[{self.pid(self.cleanup_pids)}]", f"{qid}: message-id=<{self.msgid(sender.split('@')[1])}>", False
        dom, mx, mxip = self.mx()
        rcpt = self.remote_addr(dom)
        size = int(r.lognormvariate(9, 1.4)) + 500
        yield f"postfix/qmgr[{self.qmgr_pid}]", f"{qid}: from=<{sender}>, size={size}, nrcpt=1 (queue active)", False
        if submitted:
            yield tag, f"disconnect from {name}[{ip}] ehlo=2 starttls=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=8", False
        yield from self.delivery(qid, sender, rcpt, dom, mx, mxip)

    def delivery(self, qid: str, sender: str, rcpt: str, dom: str, mx: str, mxip: str) -> Session:
        """One smtp delivery attempt and what follows it (removed, bounce)."""
        r = self.rng
        tag = f"postfix/smtp[{self.pid(self.smtp_pids)}]"
        qmgr = f"postfix/qmgr[{self.qmgr_pid}]"
        relay = f"relay={mx}[{mxip}]:25"
        x = r.random()
        if x < 0.78:  # sent
            if r.random() < 0.7:
                yield tag, self.tls("to", f"{mx}[{mxip}]", ":25"), False
            delay, delays = self.delays(r.expovariate(3))
            conn = f", conn_use={r.randrange(2, 30)}" if r.random() < 0.1 else ""
            reply = self.fill(r.choice(SENT_250), msgid=f"{qid}@{MY_HOST}", mxu=mx.upper(), dom=dom)
            yield tag, (f"{qid}: to=<{rcpt}>, {relay}{conn}, delay={delay}, delays={delays}, dsn=2.0.0, "
                        f"status=sent ({reply})"), True
            yield qmgr, f"{qid}: removed", False
            return
        if x < 0.84:  # deferred by a reply
            dsn, text, cmd = r.choice(SAID_DEFER)
            if r.random() < 0.3:  # the first MX refused, the second one deferred
                _dsn, refusal = r.choice(REFUSED)
                yield tag, f"{qid}: host mx2.{dom}[{self._ip()}] refused to talk to me: {self.fill(refusal, dom=dom)}", True
            delay, delays = self.delays(r.expovariate(2))
            said = self.fill(text, rcpt=rcpt, ip=mxip, dom=dom)
            yield tag, (f"{qid}: to=<{rcpt}>, {relay}, delay={delay}, delays={delays}, dsn={dsn}, "
                        f"status=deferred (host {mx}[{mxip}] said: {said} (in reply to {cmd} command))"), True
            return
        if x < 0.87:  # greeting refused
            dsn, refusal = r.choice(REFUSED)
            delay, delays = self.delays(0)
            status = "bounced" if dsn.startswith("5") else "deferred"
            yield tag, (f"{qid}: to=<{rcpt}>, {relay}, delay={delay}, delays={delays}, dsn={dsn}, "
                        f"status={status} (host {mx}[{mxip}] refused to talk to me: {self.fill(refusal, dom=dom)})"), True
            if status == "bounced":
                yield from self.bounce(qid, sender)
            return
        if x < 0.93:  # no reply at all
            dsn, status, text = r.choice(NO_REPLY)
            if "connect to" in text and r.random() < 0.5:
                yield tag, f"connect to {mx}[{mxip}]:25: {text.rsplit(': ', 1)[1]}", False
            delay, delays = self.delays(0)
            relay_none = "relay=none" if "connect" in text or "name" in text else relay
            daemon_tag = f"postfix/error[{r.randrange(1000, 4_000_000)}]" if text.startswith("delivery temporarily") else tag
            yield daemon_tag, (f"{qid}: to=<{rcpt}>, {relay_none}, delay={delay}, delays={delays}, dsn={dsn}, "
                               f"status={status} ({self.fill(text, mx=mx, mxip=mxip, dom=dom)})"), True
            if status == "bounced":
                yield from self.bounce(qid, sender)
            return
        # bounced by a reply
        dsn, text, cmd = r.choice(SAID_BOUNCE)
        delay, delays = self.delays(r.expovariate(5))
        said = self.fill(text, rcpt=rcpt, ip=self._ip(), dom=dom)
        yield tag, (f"{qid}: to=<{rcpt}>, {relay}, delay={delay}, delays={delays}, dsn={dsn}, "
                    f"status=bounced (host {mx}[{mxip}] said: {said} (in reply to {cmd} command))"), True
        yield from self.bounce(qid, sender)

    def bounce(self, qid: str, sender: str) -> Session:
        nqid = self.qid()
        yield f"postfix/cleanup[{self.pid(self.cleanup_pids)}]", f"{nqid}: message-id=<{self.msgid('example.org')}>", False
        yield f"postfix/bounce[{self.bounce_pid}]", f"{qid}: sender non-delivery notification: {nqid}", False
        yield f"postfix/qmgr[{self.qmgr_pid}]", f"{nqid}: from=<>, size={self.rng.randrange(2500, 9000)}, nrcpt=1 (queue active)", False
        yield f"postfix/qmgr[{self.qmgr_pid}]", f"{qid}: removed", False
        delay, delays = self.delays(0.01)
        yield f"postfix/lmtp[{self.pid(self.lmtp_pids)}]", (
            f"{nqid}: to=<{sender}>, relay={MY_HOST}[private/dovecot-lmtp], delay={delay}, delays={delays}, "
            f"dsn=2.0.0, status=sent (250 2.0.0 <{sender}> {self._b62(22)} Saved)"), True
        yield f"postfix/qmgr[{self.qmgr_pid}]", f"{nqid}: removed", False

    def queue_retry(self) -> Session:
        """qmgr retries a deferred message from the queue."""
        r = self.rng
        qid = self.qid()
        sender = self.local_addr()
        dom, mx, mxip = self.mx()
        if r.random() < 0.08:
            yield f"postfix/qmgr[{self.qmgr_pid}]", f"{qid}: from=<{sender}>, status=expired, returned to sender", True
            yield from self.bounce(qid, sender)
            return
        yield f"postfix/qmgr[{self.qmgr_pid}]", f"{qid}: from=<{sender}>, size={r.randrange(900, 90000)}, nrcpt=1 (queue active)", False
        yield from self.delivery(qid, sender, self.remote_addr(dom), dom, mx, mxip)

    def postscreen_bot(self) -> Session:
        """A listed or impatient client that postscreen deals with itself."""
        r = self.rng
        _name, ip, helo = self.client()
        port = r.randrange(1024, 65535)
        ps = f"postfix/postscreen[{self.postscreen_pid}]"
        yield ps, f"CONNECT from [{ip}]:{port} to [203.0.113.25]:25", False
        x = r.random()
        if x < 0.5:
            yield f"postfix/dnsblog[{r.randrange(1000, 4_000_000)}]", f"addr {ip} listed by domain {r.choice(DNSBLS)} as 127.0.0.{r.randrange(2, 12)}", False
            yield ps, f"DNSBL rank {r.randrange(2, 9)} for [{ip}]:{port}", False
            if r.random() < 0.3:
                yield ps, f"PREGREET {r.randrange(6, 40)} after {fmt_delay(r.random())} from [{ip}]:{port}: EHLO {helo}\\r\\n", False
            dnsbl = r.choice(DNSBLS)
            rcpt = self.local_addr()
            yield ps, (f"NOQUEUE: reject: RCPT from [{ip}]:{port}: 550 5.7.1 Service unavailable; client [{ip}] "
                       f"blocked using {dnsbl}; from=<{self.remote_addr()}>, to=<{rcpt}>, proto=ESMTP, helo=<{helo}>"), True
            yield ps, f"DISCONNECT [{ip}]:{port}", False
        elif x < 0.75:
            yield ps, f"HANGUP after {fmt_delay(r.uniform(0.1, 5))} from [{ip}]:{port} in tests after SMTP handshake", False
            yield ps, f"DISCONNECT [{ip}]:{port}", False
        elif x < 0.85:
            yield ps, f"COMMAND PIPELINING from [{ip}]:{port} after EHLO: MAIL FROM:<{self.remote_addr()}>\\r\\n", False
            yield ps, (f"NOQUEUE: reject: RCPT from [{ip}]:{port}: 450 4.3.2 Service currently unavailable; "
                       f"from=<{self.remote_addr()}>, to=<{self.local_addr()}>, proto=ESMTP, helo=<{helo}>"), True
            yield ps, f"DISCONNECT [{ip}]:{port}", False
        elif x < 0.9:
            yield ps, f"NOQUEUE: reject: CONNECT from [{ip}]:{port}: too many connections", True
        else:
            yield ps, f"ALLOWLISTED [{ip}]:{port}", False

    def smtpd_reject(self) -> Session:
        """smtpd talks to a client and rejects it (or only warns)."""
        r = self.rng
        name, ip, helo = self.client()
        tag = f"{self.smtpd_tag()}[{self.pid(self.smtpd_pids)}]"
        yield tag, f"connect from {name}[{ip}]", False
        if name == "unknown" and r.random() < 0.3:
            yield tag, f"warning: hostname {self._word(3)}.{r.choice(self.domains)} does not resolve to address {ip}: Name or service not known", False
        if r.random() < 0.35:
            yield tag, self.tls("from", f"{name}[{ip}]", ""), False
        sender = self.remote_addr()
        stage, text, _w = r.choices(SMTPD_REJECT, weights=[w for _s, _t, w in SMTPD_REJECT])[0]
        lrcpt = self.local_addr()
        rcpt = self.remote_addr()
        reply = self.fill(text, rcpt=rcpt, lrcpt=lrcpt, cip=ip, helo=helo, chost=name, **{"from": sender})
        action = "reject_warning" if r.random() < 0.06 else "reject"
        if stage == "CONNECT":
            tail = "proto=SMTP"
        elif stage == "EHLO":
            tail = f"proto=SMTP helo=<{helo}>"
        elif stage == "MAIL":
            tail = f"from=<{sender}> proto=ESMTP helo=<{helo}>"
        else:
            to = rcpt if "Relay" in text else lrcpt
            tail = f"from=<{sender}> to=<{to}> proto=ESMTP helo=<{helo}>"
        count = 1 if r.random() < 0.55 else r.randrange(2, 7)  # bots try several recipients
        for _ in range(count):
            yield tag, f"NOQUEUE: {action}: {stage} from {name}[{ip}]: {reply}; {tail}", True
        if r.random() < 0.3:
            yield tag, f"lost connection after {r.choice(('RCPT', 'DATA', 'RSET', 'EHLO'))} from {name}[{ip}]", False
        yield tag, (f"disconnect from {name}[{ip}] ehlo=1 mail={min(count, 1)} rcpt=0/{count} "
                    f"{'data=0/1 ' if r.random() < 0.2 else ''}quit=1 commands=3/{3 + count}"), False

    def sasl_guess(self) -> Session:
        r = self.rng
        name, ip, _helo = self.client()
        tag = f"postfix/{r.choice(('submission/smtpd', 'smtps/smtpd', 'smtpd'))}[{self.pid(self.smtpd_pids)}]"
        yield tag, f"connect from {name}[{ip}]", False
        for _ in range(r.randrange(1, 3)):
            yield tag, f"warning: {name}[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", False
        if r.random() < 0.5:
            yield tag, f"lost connection after AUTH from {name}[{ip}]", False
        yield tag, f"disconnect from {name}[{ip}] ehlo=1 auth=0/1 rset=1 quit=1 commands=3/4", False

    def smtpd_misc(self) -> Session:
        """Probes and broken clients: no message, no reply logged."""
        r = self.rng
        name, ip, _helo = self.client()
        tag = f"postfix/smtpd[{self.pid(self.smtpd_pids)}]"
        yield tag, f"connect from {name}[{ip}]", False
        x = r.random()
        if x < 0.3:
            yield tag, f"lost connection after EHLO from {name}[{ip}]", False
            yield tag, f"disconnect from {name}[{ip}] ehlo=1 commands=1", False
        elif x < 0.5:
            yield tag, f"warning: non-SMTP command from {name}[{ip}]: GET / HTTP/1.1", False
            yield tag, f"disconnect from {name}[{ip}] unknown=0/1 commands=0/1", False
        elif x < 0.7:
            yield tag, f"timeout after {r.choice(('CONNECT', 'EHLO', 'STARTTLS', 'DATA'))} from {name}[{ip}]", False
            yield tag, f"disconnect from {name}[{ip}] ehlo=1 starttls=0/1 commands=1/2", False
        elif x < 0.85:
            yield tag, f"improper command pipelining after CONNECT from {name}[{ip}]: QUIT\\r\\n", False
            yield tag, f"disconnect from {name}[{ip}] quit=1 commands=1", False
        else:
            yield tag, f"SSL_accept error from {name}[{ip}]: lost connection", False
            yield tag, f"lost connection after STARTTLS from {name}[{ip}]", False
            yield tag, f"disconnect from {name}[{ip}] ehlo=1 starttls=0/1 commands=1/2", False

    def content_reject(self) -> Session:
        """cleanup rejects a message by header/body checks or a milter."""
        r = self.rng
        name, ip, helo = self.client()
        tag = f"postfix/smtpd[{self.pid(self.smtpd_pids)}]"
        qid = self.qid()
        yield tag, f"connect from {name}[{ip}]", False
        yield tag, f"{qid}: client={name}[{ip}]", False
        cl = f"postfix/cleanup[{self.pid(self.cleanup_pids)}]"
        sender, rcpt = self.remote_addr(), self.local_addr()
        dom = r.choice(self.domains)
        if r.random() < 0.5:
            where, what, reply = r.choice(HEADER_CHECKS)
            what = self.fill(what, dom=dom)
            yield cl, (f"{qid}: reject: {where} {what} from {name}[{ip}]; from=<{sender}> to=<{rcpt}> "
                       f"proto=ESMTP helo=<{helo}>: {reply}"), True
        else:
            yield cl, f"{qid}: message-id=<{self.msgid(dom)}>", False
            reply = self.fill(r.choice(MILTER_REJECTS), dom=dom)
            yield cl, (f"{qid}: milter-reject: END-OF-MESSAGE from {name}[{ip}]: {reply}; from=<{sender}> "
                       f"to=<{rcpt}> proto=ESMTP helo=<{helo}>"), True
        yield tag, f"disconnect from {name}[{ip}] ehlo=1 mail=1 rcpt=1 data=0/1 quit=1 commands=4/5", False

    def anvil(self) -> Session:
        r = self.rng
        _n, ip, _h = self.client()
        at = self.clock.classic()
        tag = f"postfix/anvil[{self.anvil_pid}]"
        yield tag, f"statistics: max connection rate {r.randrange(1, 40)}/60s for (smtp:{ip}) at {at}", False
        yield tag, f"statistics: max connection count {r.randrange(1, 12)} for (smtp:{ip}) at {at}", False
        if r.random() < 0.5:
            yield tag, f"statistics: max message rate {r.randrange(1, 20)}/60s for (submission:{ip}) at {at}", False
        yield tag, f"statistics: max cache size {r.randrange(1, 300)} at {at}", False
        self.anvil_pid = r.randrange(1000, 4_000_000)  # anvil exits after its statistics

    def sessions(self) -> tuple[list[Callable[[], Session]], list[float]]:
        table = (
            (self.inbound_accept, 25),
            (lambda: self.outbound(True), 12),
            (lambda: self.outbound(False), 5),
            (self.queue_retry, 15),
            (self.postscreen_bot, 25),
            (self.smtpd_reject, 45),
            (self.sasl_guess, 5),
            (self.smtpd_misc, 5),
            (self.content_reject, 4),
            (self.anvil, 0.6),
        )
        return [f for f, _w in table], [w for _f, w in table]


def generate(out_path: str, lines: int, seed: int = 1, rfc3339_share: float = 0.12,
             concurrency: int = 40) -> dict[str, int]:
    """Write `lines` lines to out_path; return counts (lines, bytes, coded lines)."""
    rng = random.Random(seed)
    clock = Clock(rng, start=1795876800.0 + rng.randrange(86400), mean_step=0.05)
    world = World(rng, clock)
    makers, weights = world.sessions()

    def new_session() -> Session:
        return rng.choices(makers, weights)[0]()

    pool = [new_session() for _ in range(concurrency)]
    written = coded = nbytes = 0
    batch: list[str] = []
    with open(out_path, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
        while written < lines:
            i = rng.randrange(concurrency)
            try:
                tag, message, has_code = next(pool[i])
            except StopIteration:
                pool[i] = new_session()
                continue
            clock.advance()
            if rng.random() < rfc3339_share:
                prefix = f"{clock.rfc3339()} mx "
            else:
                prefix = f"{clock.classic()} mx "
            batch.append(f"{prefix}{tag}: {message}\n")
            written += 1
            coded += has_code
            if len(batch) >= 8192:
                chunk = "".join(batch)
                nbytes += len(chunk.encode())
                out.write(chunk)
                batch.clear()
        chunk = "".join(batch)
        nbytes += len(chunk.encode())
        out.write(chunk)
    return {"lines": written, "bytes": nbytes, "coded": coded}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write a seeded, realistic Postfix syslog for benchmarks.")
    p.add_argument("out", metavar="OUT", help="file to write (overwritten)")
    p.add_argument("--lines", type=int, default=1_000_000, help="lines to write (default 1,000,000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--rfc3339-share", type=float, default=0.12, metavar="F",
                   help="share of lines with an RFC 3339 timestamp instead of the classic "
                        "syslog one (default 0.12; 0 for classic only)")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    args = p.parse_args(argv)
    if args.lines < 0:
        p.error("--lines must be >= 0")
    t0 = time.perf_counter()
    if not 0 <= args.rfc3339_share <= 1:
        p.error("--rfc3339-share must be between 0 and 1")
    stats = generate(args.out, args.lines, args.seed, args.rfc3339_share)
    if not args.quiet:
        share = 100.0 * stats["coded"] / stats["lines"] if stats["lines"] else 0.0
        print(f"{args.out}: {stats['lines']:,} lines, {stats['bytes'] / 1e6:.1f} MB, "
              f"{share:.1f}% with a reply code or delivery status, "
              f"written in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

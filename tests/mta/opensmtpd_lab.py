"""A real OpenSMTPD 6.8 (Debian 12's opensmtpd) beside the installed Postfix.

The opensmtpd package conflicts with postfix, so it is not installed: it is
fetched and unpacked into a private root (tests/mta/debian.py). Every library
it links against is already on the machine; the lab says so when one is not.

Debian's smtpd has its paths compiled in (/var/spool/smtpd for the queue,
/run/smtpd.sock, the chroot /var/lib/opensmtpd/empty) and drops privileges
to the users `opensmtpd` and `opensmtpq`. The daemon therefore runs in a
private mount namespace (tests/mta/namespace.py), where overlays lay this lab's own files over /etc (those
two users, /etc/hosts, /etc/mailname, and a resolv.conf that sends DNS to
127.0.0.1, where nothing answers, so no lookup leaves the machine),
/var/spool and /var/lib, a fresh tmpfs covers /run, and /dev/log is this
lab's datagram socket. The host's files and users are never touched.

`smtpd -F` stays in the foreground and logs through syslog(3), so the log is
what a syslog daemon writes: the receiver (namespace.SyslogReceiver)
adds the host name to each datagram, "Nov 29 03:46:09 mx3 smtpd[1234]: ...".
(With -d smtpd writes the same message texts to stderr without any prefix.)

The configuration relays each test domain to a listener of the scripted peer
(tests/mta/smtp_peer.py) and rejects the inbound probes at every SMTP step
with builtin filters, reject match rules and its own checks.
"""

from __future__ import annotations

import re
import shutil
import smtplib
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from . import debian, scenario
from .debian import Packages
from .namespace import SyslogLab, add_users, answers_smtp, free_port, overlay, private_dev_log, read_text, wait_settled
from .scenario import ClientProbe, Seen
from .smtp_peer import SmtpPeer

PACKAGES = Packages(Path("/var/tmp/smtp-reply-opensmtpd"), "opensmtpd")
USERS = ("opensmtpd", "opensmtpq")  # compiled into Debian's binary

MYHOSTNAME = "mx3.lab.test"
SYSLOG_HOST = "mx3"
# syslog(3)'s tag: the program's name. Every count is under it.
SYSLOG_TAG = "smtpd"
# `smtpd -d` writes the same messages without a prefix: lines without a tag
# count under the format's name.
FOREGROUND_SERVICE = "opensmtpd"
LOCAL_DOMAIN = "lab.test"
MAILBOXES = ("fine", "postmaster")  # accepted at lab.test and relayed to the peer
CLOSED_USER = "closed"  # a `match ... reject` rule
GREYLISTED_USER = "sales"  # rcpt-to filter: "450 4.2.0 ..."

CLIENT_TRUSTED = "127.0.0.1"  # "local": may relay
CLIENT_OUTSIDE = "127.0.0.5"  # relaying denied
CLIENT_BLOCKED = "127.0.0.9"  # connect filter: "554 5.7.1 ..."
CLIENT_SLOW = "127.0.0.10"  # connect filter: "421 4.7.0 ..."
CLIENT_NO_DATA = "127.0.0.11"  # data filter: "554 5.7.1 ..."

HELO_BULK = "mail.bulk-sender.example"  # ehlo/helo filters: "550 5.7.1 ..."
SENDER_BLOCKED = "offers@promo-blast.example"  # mail-from filter: "553 5.7.1 ..."
SENDER_TEMP = "billing@slow-dns.example"  # mail-from filter: "451 4.7.1 ..."
SENDER_SPAM = "news@bulk.example"  # commit filter: "550 5.7.1 ..." after the message
MESSAGE_SIZE_LIMIT = 200_000

FILTERS = {
    "conn-blocked": f'phase connect match src <blocked> disconnect '
                    f'"554 5.7.1 Access denied: {CLIENT_BLOCKED} is listed at bl.lab.test"',
    "conn-slow": f'phase connect match src <slow> disconnect '
                 f'"421 4.7.0 Too many connections from {CLIENT_SLOW}, try again in 60 seconds"',
    "ehlo-bulk": 'phase ehlo match helo <bulk> reject "550 5.7.1 HELO name rejected: bulk sender"',
    "helo-bulk": 'phase helo match helo <bulk> reject "550 5.7.1 HELO name rejected: bulk sender"',
    "mail-blocked": 'phase mail-from match mail-from <senders_blocked> reject '
                    '"553 5.7.1 Sender blocked by policy 2024-11"',
    "mail-temp": 'phase mail-from match mail-from <senders_temp> reject '
                 '"451 4.7.1 Sender domain does not resolve, try again in 300 seconds"',
    "rcpt-grey": 'phase rcpt-to match rcpt-to <greylisted> reject "450 4.2.0 Greylisted for 300 seconds"',
    "data-blocked": f'phase data match src <nodata> reject "554 5.7.1 No DATA from {CLIENT_NO_DATA}"',
    "commit-spam": 'phase commit match mail-from <senders_spam> reject '
                   '"550 5.7.1 Message content rejected, id=4F2A9C1E07"',
}



class OpenSmtpdLabError(RuntimeError):
    pass


def unavailable() -> str | None:
    """Why this machine cannot run the lab, or None when it can."""
    return debian.unavailable("the OpenSMTPD lab needs root (mount namespace, overlays on /etc, /var, /dev)", "ldd")


class OpenSmtpdLab(SyslogLab):
    """One private OpenSMTPD daemon. Use as a context manager or start()/cleanup().

    routes maps a test domain to (scheme, port): scheme "smtp+notls", "lmtp"
    or "smtp+tls" (TLS required), and the port of a scripted peer's listener
    (or of nothing, for refused connections)."""

    def __init__(self, name: str = "smtp-reply-opensmtpd-lab",
                 routes: dict[str, tuple[str, int]] | None = None,
                 inbound_port: int = 0) -> None:
        super().__init__(name, "OpenSMTPD", SYSLOG_HOST)
        self.conf = self.base / "smtpd.conf"
        self.routes = dict(routes or {})
        self.inbound_port = inbound_port  # where mail accepted for lab.test goes

    @property
    def log(self) -> Path:
        return self.syslog.log_path

    @property
    def smtpd(self) -> Path:
        return PACKAGES.root / "usr" / "sbin" / "smtpd"

    # -- configuration -------------------------------------------------------

    def _config(self) -> str:
        def table(name: str, *values: str) -> str:
            return f"table {name} {{ {', '.join(values)} }}\n"

        lines = [
            table("blocked", CLIENT_BLOCKED), table("slow", CLIENT_SLOW), table("nodata", CLIENT_NO_DATA),
            table("bulk", HELO_BULK),
            table("senders_blocked", SENDER_BLOCKED), table("senders_temp", SENDER_TEMP),
            table("senders_spam", SENDER_SPAM),
            table("greylisted", f"{GREYLISTED_USER}@{LOCAL_DOMAIN}"),
            table("closed", f"{CLOSED_USER}@{LOCAL_DOMAIN}"),
            table("mailboxes", *(f"{m}@{LOCAL_DOMAIN}" for m in MAILBOXES)),
            f"smtp max-message-size {MESSAGE_SIZE_LIMIT}\n",
        ]
        lines += [f'filter "{name}" {rule}\n' for name, rule in FILTERS.items()]
        lines.append(f'filter "checks" chain {{ {", ".join(f"{chr(34)}{n}{chr(34)}" for n in FILTERS)} }}\n')
        # No STARTTLS inbound: Debian 12's smtpd (6.8.0p2 on OpenSSL 3) fails
        # every server-side handshake, "io-error: ...:SSL routines::EVP lib"
        # (OpenSMTPD issues 1171, 1239). As a client it does TLS.
        lines.append(f'listen on 127.0.0.1 port {self.port} hostname {MYHOSTNAME} filter "checks"\n')
        lines.append(f'action "inbound" relay host smtp+notls://127.0.0.1:{self.inbound_port}\n')
        # OpenSMTPD spaces connections on one route (source and destination
        # address) 5 s apart: each destination gets its own source address.
        for i, (domain, (scheme, port)) in enumerate(sorted(self.routes.items()), start=1):
            # The peer's certificate is self-signed: not checked ("SSL
            # certificate check failed" would end the session after the handshake).
            verify = " tls no-verify" if scheme == "smtp+tls" else ""
            lines.append(f'action "route{i}" relay host {scheme}://127.0.0.1:{port}{verify} src 127.0.1.{i}\n')
            lines.append(f'match from local for domain "{domain}" action "route{i}"\n')
        lines += [
            f'match from any for domain "{LOCAL_DOMAIN}" rcpt-to <closed> reject\n',
            f'match from any for domain "{LOCAL_DOMAIN}" rcpt-to <mailboxes> action "inbound"\n',
            f'match from any for domain "{LOCAL_DOMAIN}" rcpt-to <greylisted> action "inbound"\n',
        ]
        return "".join(lines)

    def _prepare_etc(self) -> None:
        """The files the overlay lays over /etc inside the namespace."""
        up = self.base / "etc"
        add_users(up, {user: "/var/lib/opensmtpd/empty" for user in USERS}, "OpenSMTPD lab", range(990, 60000))
        (up / "hosts").write_text(f"127.0.0.1\t{MYHOSTNAME} {SYSLOG_HOST} localhost\n")
        (up / "mailname").write_text(f"{MYHOSTNAME}\n")
        (up / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")


    # -- lifecycle -----------------------------------------------------------

    def start(self) -> OpenSmtpdLab:
        PACKAGES.unpacked()
        missing = [line.split()[0] for line in subprocess.run(
            ["ldd", str(self.smtpd)], capture_output=True, text=True, check=False).stdout.splitlines()
            if "not found" in line]
        if missing:
            raise OpenSmtpdLabError(f"smtpd needs libraries this machine lacks: {', '.join(missing)}")
        self.port = free_port()
        self.conf.write_text(self._config())
        self._prepare_etc()
        self.syslog.start()
        b = self.base
        setup = (overlay("/etc", b / "etc") + overlay("/var/spool", b / "spool") + overlay("/var/lib", b / "lib")
                 + private_dev_log(self.syslog.socket_path, b / "dev")
                 + "mount -t tmpfs smtp-reply-lab /run\n"
                 + "mkdir -p /var/lib/opensmtpd/empty /var/spool/smtpd\nchmod 711 /var/spool/smtpd\n")
        self.daemon.start(setup, [str(self.smtpd), "-F", "-f", str(self.conf)])
        self.daemon.wait_ready(lambda: answers_smtp(self.port), details=lambda: self.log_text()[-2000:])
        return self


    # -- traffic and state ---------------------------------------------------

    def smtpctl(self, *args: str) -> list[str]:
        """The command line of `smtpctl ARGS` for this daemon: in its mount
        namespace (its private /run holds the control socket), as root with
        the effective group smtpctl insists on (Debian installs it setgid
        opensmtpq; the unpacked copy is not)."""
        return self.daemon.entered(["setpriv", "--egid", USERS[1], "--keep-groups",
                                    str(self.smtpd.with_name("smtpctl")), *args])

    def log_text(self) -> str:
        return read_text(self.log)

    def outcomes(self) -> Counter:
        """Envelopes with a delivery line, by recipient."""
        return Counter(_DELIVERY.findall(self.log_text()))

    def wait_outcomes(self, recipients: list[str], timeout: float = 60, settle: float = 1.0) -> None:
        """Wait until every recipient has a delivery line and the log is quiet."""
        def missing() -> Counter:
            return Counter(recipients) - self.outcomes()

        wait_settled(self.syslog.count, lambda: not missing(),
                     lambda: f"no delivery line yet for {sorted(missing())}:\n{self.log_text()[-4000:]}",
                     timeout, settle)


_DELIVERY = re.compile(r" mta delivery evpid=\S+ from=<[^>]*> to=<([^>]*)>")


# -- the traffic of the end-to-end test, and what it must count ------------------
#
# Expected counts come from what crossed the wire: the replies the scripted
# peer recorded sending to OpenSMTPD (outbound), and the replies the smtplib
# probes received from it (inbound). What this adds is how OpenSMTPD logs them:
#   - one `mta delivery` line per envelope: a refused RCPT once, a refused MAIL
#     or DATA and the reply after the message once per envelope of the message
#     (OpenSMTPD sends MAIL alone, so the peer never sees those recipients: the
#     submissions say how many there were); the line does not name the
#     command, so a failure counts with stage unknown, a success end_of_data;
#   - a session refused at the greeting, HELO (after a refused EHLO, which is
#     not logged) or STARTTLS (TLS required) logs the reply once, in `mta
#     error`; its envelopes are deferred later with "Network error on
#     destination MXs", like those of a refused connection: no reply;
#   - Ok is sent, TempFail deferred, PermFail bounced;
#   - inbound, every rejection is logged with its code and the command it
#     answered; a rejection after the message is logged with command="DATA";
#   - a session that did STARTTLS logs `mta tls ciphers=VERSION:...` once,
#     whatever it carried; the check of the certificate comes on a line of
#     its own (`mta server-cert-check result=...`), so trust is unknown.

# The scripted peer's main domain and the one routed nowhere: the Postfix scenario's
# (its listeners: greeting, EHLO, STARTTLS and MAIL refusals, LMTP).
OK = scenario.OK
REFUSED = scenario.REFUSED_DOMAIN


def e2e_outbound() -> list[list[str]]:
    """Recipients of each relayed message; one message per listener that
    refuses whole sessions (OpenSMTPD would not try that route again soon)."""
    return [
        *scenario.to_main_listener(),
        # LMTP: one accepted recipient per message. OpenSMTPD 6.8 reads the
        # per-recipient replies after the message one at a time and gives up
        # ("Remote host sent too much data", no reply logged) when the next
        # one has already arrived, as it does when the server sends them together.
        ["alice@lm.test", "c550_5_1_1_g@lm.test"],
        ["d452_4_2_2_g@lm.test", "n450_g@lm.test"],
        ["d552_5_2_2_g@lm.test"],
        ["x451_4_3_0_h@lm.test", "carol@lm.test"],
        *scenario.to_refusing_listeners(),
        *scenario.to_tls_listener(),
    ]


@dataclass(frozen=True)
class Ask:
    """One probe command. verb: as scenario.send_step knows them, or
    pipelined (two NOOPs in one write, which OpenSMTPD does not offer)."""

    verb: str
    arg: str = ""
    refused: bool = False
    body: str = ""


_session = partial(scenario.session, make=Ask)


def e2e_probes() -> list[ClientProbe]:
    """Inbound: a client per rejection point."""
    fine = f"fine@{LOCAL_DOMAIN}"
    out = CLIENT_OUTSIDE
    mail_ok = Ask("mail", "a@client.test")
    return [
        ClientProbe("connect-blocked", CLIENT_BLOCKED, (Ask("connect", refused=True),)),
        ClientProbe("connect-slow", CLIENT_SLOW, (Ask("connect", refused=True),)),
        ClientProbe("helo", out, (
            Ask("connect"), Ask("ehlo", HELO_BULK, True), Ask("helo", HELO_BULK, True),
            Ask("ehlo", "client.example.test"), mail_ok, Ask("rcpt", fine),
            Ask("data", body=scenario.message("after a bad HELO")))),
        ClientProbe("sender", out, _session(
            Ask("mail", SENDER_BLOCKED, True), Ask("mail", SENDER_TEMP, True))),
        ClientProbe("recipients", out, _session(
            mail_ok, Ask("mail", "b@client.test", True),  # a second MAIL: 503
            Ask("rcpt", f"no-such-user@{LOCAL_DOMAIN}", True), Ask("rcpt", f"{CLOSED_USER}@{LOCAL_DOMAIN}", True),
            Ask("rcpt", f"{GREYLISTED_USER}@{LOCAL_DOMAIN}", True), Ask("rcpt", "x@elsewhere.test", True),
            Ask("rcpt", fine), Ask("rcpt", f"postmaster@{LOCAL_DOMAIN}"),
            Ask("data", body=scenario.message("several recipients")))),
        ClientProbe("out-of-order", out, (
            Ask("connect"), Ask("mail", "a@client.test", True), Ask("ehlo", "client.example.test"),
            Ask("rcpt", fine, True), Ask("data", refused=True), Ask("vrfy", "postmaster", True),
            Ask("auth", "LOGIN", True), Ask("starttls", refused=True), Ask("pipelined", refused=True))),
        ClientProbe("data", CLIENT_NO_DATA, _session(mail_ok, Ask("rcpt", fine),
                                               Ask("data", refused=True, body=scenario.message("x")))),
        ClientProbe("content", out, _session(Ask("mail", SENDER_SPAM), Ask("rcpt", fine),
                                       Ask("data", refused=True, body=scenario.message("Buy now")))),
        ClientProbe("too-big", out, _session(mail_ok, Ask("rcpt", fine),
                                       Ask("data", refused=True,
                                           body=scenario.message("big", scenario.oversized(MESSAGE_SIZE_LIMIT))))),
    ]


def _send(client: smtplib.SMTP, port: int, source: str, ask: Ask) -> tuple[str, int, str]:
    """Send one probe command; returns (stage, code, reply text)."""
    if ask.verb == "pipelined":
        client.send(b"NOOP\r\nNOOP\r\n")
        code, msg = client.getreply()
        return "unknown", code, msg.decode()  # OpenSMTPD logs it as bad input
    return scenario.send_step(client, port, source, ask)


@dataclass
class Expected:
    replies: Counter = field(default_factory=Counter)  # scenario.ReplyKey -> count
    deliveries: Counter = field(default_factory=Counter)  # (status, service) -> count
    tls: Counter = field(default_factory=Counter)  # (direction, protocol, trust, service) -> TLS sessions


def expected_counts(peer: SmtpPeer, submitted: list[list[str]], heard: list[Seen], service: str) -> Expected:
    """What the traffic must count, every line under service."""
    exp = Expected()
    messages_to = scenario.messages_to_peer(peer, submitted)
    refused_sessions = set()  # listeners that refused a whole session
    for s in peer.sessions:
        refusal = scenario.session_refusal(s)  # at HELO: the HELO after a refused EHLO
        if refusal is not None:
            refused_sessions.add(s.listener)
            reply, stage = refusal
            exp.replies[scenario.reply_key("outbound", str(reply.code), reply.enhanced, stage, service)] += 1
            continue
        for t in s.txns:
            for stage, reply, n in scenario.transaction_replies(t):
                if stage == "mail":
                    messages = messages_to[s.listener]
                    if len(messages) != 1:
                        raise AssertionError(f"{s.listener}: send one message to a listener that refuses MAIL")
                    n = messages[0]
                logged = "end_of_data" if stage == "end_of_data" and reply.code // 100 == 2 else "unknown"
                scenario.add_outbound(exp, reply, logged, n, service)
    # Envelopes of refused sessions and refused connections: deferred, no reply.
    for listener, messages in messages_to.items():
        if listener == REFUSED or listener in refused_sessions:
            exp.deliveries["deferred", service] += sum(messages)
    for h in heard:
        if not h.step.refused:
            continue
        # OpenSMTPD logs a rejection after the message with command="DATA".
        stage = "data" if h.stage == "end_of_data" else h.stage
        exp.replies[scenario.reply_key("inbound", str(h.code), h.enhanced, stage, service)] += 1
    # One `mta tls ciphers=` line per session that did the handshake; whether
    # the certificate was checked is not on it.
    exp.tls = scenario.outbound_tls(peer, "unknown", service)
    return exp


@dataclass
class Result:
    log: Path
    expected: Expected
    foreground_log: Path  # the log's messages as `smtpd -d` writes them
    foreground: Expected  # what they must count
    seconds: float


def as_foreground(syslog_text: str) -> str:
    """The lines of smtpd's syslog log as `smtpd -d` writes them to stderr:
    the message alone, without stamp, host and tag."""
    return "".join(line.split("]: ", 1)[1] for line in syslog_text.splitlines(keepends=True))


def run(out_dir: Path, name: str = "smtp-reply-opensmtpd-e2e") -> Result:
    """Run the test traffic through a fresh OpenSMTPD; copy its log into out_dir."""
    started = time.monotonic()
    with SmtpPeer() as peer:
        routes = scenario.peer_routes(peer, "smtp+notls", "lmtp", "smtp+tls")
        with OpenSmtpdLab(name, routes, routes[OK][1]) as lab:
            submitted = e2e_outbound()
            heard = scenario.submit_and_probe(lab, submitted, e2e_probes(), _send)
            lab.wait_outcomes([r for rcpts in submitted for r in rcpts] + scenario.accepted_recipients(heard))
            lab.stop()
            log = out_dir / "maillog"
            shutil.copyfile(lab.log, log)
        foreground_log = out_dir / "smtpd-d.log"
        foreground_log.write_text(as_foreground(log.read_text()))
        expected = expected_counts(peer, submitted, heard, SYSLOG_TAG)
        foreground = expected_counts(peer, submitted, heard, FOREGROUND_SERVICE)
    return Result(log, expected, foreground_log, foreground, time.monotonic() - started)

"""A real Exim 4 (Debian 12's exim4-daemon-light) beside the installed Postfix.

The exim4 packages conflict with postfix, so they are not installed: they are
fetched and unpacked into a private root (tests/mta/debian.py), and that
binary runs as a foreground daemon (`-bdf`) on 127.0.0.1 with its own
configuration, spool and logs in a private directory under /var/tmp.

Debian's binary is setuid root, looks up the user Debian-exim before it reads
any configuration, and keeps root with `-C FILE` only when FILE is listed in
/etc/exim4/trusted_configs; it also needs libidn12, which is not on the
machine. So the daemon runs in a private mount namespace
(tests/mta/namespace.py) with an overlay on /etc that adds that user, an
ld.so.conf entry for the private library directory, and trusted_configs.
The host's /etc is never written.

The configuration routes each test domain to a listener of the scripted peer
(tests/mta/smtp_peer.py) over SMTP or LMTP, and its ACLs reject the inbound
probes at every SMTP step, some with a code in the ACL message and some
without: Exim logs the ACL message, not the reply it sent, so the log shows a
code only where the message starts with one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from . import debian, scenario
from .certs import self_signed
from .debian import Packages
from .namespace import PrivateLab, add_users, free_port, in_namespace, overlay, read_text, wait_settled
from .scenario import ClientProbe, Seen
from .smtp_peer import Reply, SmtpPeer

PACKAGES = Packages(Path("/var/tmp/smtp-reply-exim"), "exim4-daemon-light", "exim4-base", "exim4-config",
                    "libidn12")
EXIM_USER = "Debian-exim"  # compiled into Debian's binary

MYHOSTNAME = "mx2.lab.test"
LOCAL_DOMAIN = "lab.test"  # unknown users: the ACL answers "550 5.1.1 ... User unknown"
PLAIN_DOMAIN = "old.lab.test"  # unknown users: Exim's own "550 Unrouteable address"
MAILBOXES = ("fine", "postmaster")  # accepted in both local domains and thrown away

# Client addresses (all on loopback; only 127.0.0.1 may relay).
CLIENT_TRUSTED = "127.0.0.1"
CLIENT_OUTSIDE = "127.0.0.5"
CLIENT_BLOCKED = "127.0.0.9"  # connect ACL: "554 5.7.1 Access denied: ..."
CLIENT_BANNED = "127.0.0.19"  # connect ACL: a message without a code
CLIENT_NO_DATA = "127.0.0.11"  # DATA ACL: "554 5.7.1 ..."

HELO_BULK = "mail.bulk-sender.example"  # HELO ACL: a message without a code
SENDER_BLOCKED = "offers@promo-blast.example"  # MAIL ACL: "553 5.7.1 ..."
SENDER_TEMP = "billing@slow-dns.example"  # MAIL ACL defer: "451 4.7.1 ..."
SENDER_DOMAIN_SPOOFED = "spoofed.example"  # MAIL ACL: "5.7.1 ..." (enhanced code only)
GREYLISTED_USER = "sales"  # RCPT defer: "450 4.7.1 ..."
WAIT_USER = "later"  # RCPT defer, a message without a code
RELAY_ENHANCED_ONLY = "other.test"  # relaying there: "5.7.1 relay not permitted"
SUBJECT_REJECTED = "CHEAP-PILLS"  # DATA ACL: "550 5.7.1 Message content rejected"
SUBJECT_VIRUS = "EICAR-LAB-SIGNATURE"  # DATA ACL: a message without a code
MESSAGE_SIZE_LIMIT = 200_000
RECEIVE_TIMEOUT = 4


def unavailable() -> str | None:
    """Why this machine cannot run the lab, or None when it can."""
    return debian.unavailable("the Exim lab needs root (setuid exim binary, mount namespace, overlay on /etc)",
                              "ldconfig")


# "2026-11-28 18:09:15 1xXMrL-00085u-0m => ..." and ->, ==, **.
_OUTCOME = re.compile(r"^\S+ \S+ \S+ (?:=>|->|==|\*\*) ", re.MULTILINE)


class EximLab(PrivateLab):
    """One private Exim daemon. Use as a context manager or start()/cleanup().

    routes maps a test domain to (kind, port): kind "smtp", "lmtp" or "tls"
    (SMTP that must start TLS), the port of a scripted peer's listener (or
    of nothing, for refused connections)."""

    def __init__(self, name: str = "smtp-reply-exim-lab",
                 routes: dict[str, tuple[str, int]] | None = None) -> None:
        super().__init__(name, "Exim")
        self.root = PACKAGES.root
        self.etc = self.base / "etc"  # what the overlay adds to /etc
        self.spool = self.base / "spool"
        self.logs = self.base / "log"
        self.conf = self.base / "exim.conf"
        self.routes = dict(routes or {})
        self.uid = 0

    @property
    def mainlog(self) -> Path:
        return self.logs / "mainlog"

    @property
    def rejectlog(self) -> Path:
        return self.logs / "rejectlog"

    @property
    def exim(self) -> Path:
        return self.root / "usr" / "sbin" / "exim4"

    # -- configuration -------------------------------------------------------

    def _config(self) -> str:
        routes_file = self.base / "routes"
        return f"""\
exim_path = {self.exim}
spool_directory = {self.spool}
log_file_path = {self.logs}/%slog
pid_file_path = {self.base}/exim.pid
primary_hostname = {MYHOSTNAME}
qualify_domain = {LOCAL_DOMAIN}
local_interfaces = 127.0.0.1
daemon_smtp_ports = {self.port}
disable_ipv6 = true
keep_environment =
# The daemon's notifier is an abstract socket, shared with any other Exim on the machine.
notifier_socket =
host_lookup =
rfc1413_hosts =
# STARTTLS for every client, with the certificate made at start.
tls_advertise_hosts = *
tls_certificate = {self.base}/tls.crt
tls_privatekey = {self.base}/tls.key
# smtp_syntax_error: without it "unqualified sender rejected" reaches only the rejectlog.
log_selector = +smtp_confirmation +smtp_connection +smtp_syntax_error +queue_time
message_size_limit = {MESSAGE_SIZE_LIMIT}
# Deliver every message at once, however many come down one connection.
smtp_accept_queue_per_connection = 0
smtp_accept_max = 100
remote_max_parallel = 4
# A deferred host is tried again by the next message, not "retry time not reached".
retry_interval_max = 1s
smtp_enforce_sync = false
# Short, so that a client that says nothing is timed out (421) within a probe.
smtp_receive_timeout = {RECEIVE_TIMEOUT}s
domainlist local_domains = {LOCAL_DOMAIN} : {PLAIN_DOMAIN}
hostlist relay_from_hosts = {CLIENT_TRUSTED}
acl_smtp_connect = acl_connect
acl_smtp_helo = acl_helo
acl_smtp_mail = acl_mail
acl_smtp_rcpt = acl_rcpt
acl_smtp_predata = acl_predata
acl_smtp_data = acl_data

begin acl

acl_connect:
  deny    hosts = {CLIENT_BLOCKED}
          message = 554 5.7.1 Access denied: $sender_host_address is listed as a spam source
  deny    hosts = {CLIENT_BANNED}
          message = Connections from $sender_host_address are not accepted
  accept

acl_helo:
  deny    condition = ${{if match{{$sender_helo_name}}{{\\N\\.\\N}}{{no}}{{yes}}}}
          message = 504 5.5.2 <$sender_helo_name>: Helo command rejected: need fully-qualified hostname
  deny    condition = ${{if eq{{$sender_helo_name}}{{{HELO_BULK}}}}}
          message = You are not welcome here
  accept

acl_mail:
  deny    senders = {SENDER_BLOCKED}
          message = 553 5.7.1 <$sender_address>: Sender address rejected: not permitted
  defer   senders = {SENDER_TEMP}
          message = 451 4.7.1 Sender verification in progress, come back later
  deny    senders = *@{SENDER_DOMAIN_SPOOFED}
          message = 5.7.1 Sender not permitted from your network
  accept

acl_rcpt:
  defer   domains = +local_domains
          local_parts = {GREYLISTED_USER}
          message = 450 4.7.1 <$local_part@$domain>: Recipient address rejected: Greylisted, retry in 300 seconds
  defer   local_parts = {WAIT_USER}
          message = Please try again later
  accept  hosts = +relay_from_hosts
  deny    domains = {LOCAL_DOMAIN}
          !verify = recipient
          message = 550 5.1.1 <$local_part@$domain>: User unknown
  deny    domains = {RELAY_ENHANCED_ONLY}
          message = 5.7.1 relay not permitted
  deny    !domains = +local_domains
          message = 550 5.7.1 <$local_part@$domain>: Relay access denied
  require verify = recipient
  accept

acl_predata:
  deny    hosts = {CLIENT_NO_DATA}
          message = 554 5.7.1 No mail from your network today
  accept

acl_data:
  deny    condition = ${{if match{{$h_subject:}}{{{SUBJECT_REJECTED}}}}}
          message = 550 5.7.1 Message content rejected
  deny    condition = ${{if match{{$h_subject:}}{{{SUBJECT_VIRUS}}}}}
          message = This message contains a virus
  accept

begin routers

peer:
  driver = manualroute
  domains = lsearch;{routes_file}
  route_list = * 127.0.0.1
  transport = peer_${{extract{{kind}}{{$domain_data}}}}
  self = send

mailbox:
  driver = redirect
  domains = +local_domains
  local_parts = {' : '.join(MAILBOXES)}
  data = :blackhole:

begin transports

peer_smtp:
  driver = smtp
  port = ${{extract{{port}}{{$domain_data}}}}
  allow_localhost
  hosts_avoid_tls = *

peer_tls:
  driver = smtp
  port = ${{extract{{port}}{{$domain_data}}}}
  allow_localhost
  hosts_require_tls = *

peer_lmtp:
  driver = smtp
  protocol = lmtp
  port = ${{extract{{port}}{{$domain_data}}}}
  allow_localhost
  hosts_avoid_tls = *

begin retry

*  *  F,1h,1s
"""

    def _routes_file(self) -> str:
        return "".join(f"{domain}: kind={kind} port={port}\n"
                       for domain, (kind, port) in self.routes.items())

    def _prepare_etc(self) -> None:
        """The files the overlay lays over /etc inside the namespace, beside
        passwd and group (written when the lab's user got its id)."""
        up = self.etc
        (up / "exim4").mkdir(parents=True)
        trusted = up / "exim4" / "trusted_configs"
        trusted.write_text(f"{self.conf}\n")
        trusted.chmod(0o644)

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> EximLab:
        PACKAGES.unpacked()
        self.uid = add_users(self.etc, {EXIM_USER: str(self.spool)}, "Exim lab", range(64_990, 60_000, -1))[EXIM_USER]
        for d in (self.spool, self.logs):
            d.mkdir(mode=0o750)
            os.chown(d, self.uid, self.uid)
        self.port = free_port()
        _, key = self_signed(self.base, MYHOSTNAME)
        os.chown(key, self.uid, self.uid)  # read by the receiving process, which runs as the Exim user
        (self.base / "routes").write_text(self._routes_file())
        self.conf.write_text(self._config())
        self.conf.chmod(0o644)
        self._prepare_etc()
        self.daemon.start(overlay("/etc", self.etc) + PACKAGES.linker_setup(self.etc),
                          [str(self.exim), "-C", str(self.conf), "-bdf"])
        # Exim logs "daemon started ... listening" once its socket is bound.
        self.daemon.wait_ready(lambda: "daemon started" in self.log_text(),
                               details=lambda: self.log_text()[-2000:] + read_text(self.logs / "paniclog"))
        return self

    # -- traffic and state ---------------------------------------------------

    def command(self, *args: str, wrapper: tuple[str, ...] = ()) -> list[str]:
        """The command line of `exim -C <this lab's config> ARGS` (after
        `wrapper`, e.g. setpriv), run as the daemon runs: in a mount namespace
        of its own whose /etc knows the Exim user and the private libraries.
        Its /etc overlay has an upper directory of its own: the daemon's
        stays mounted meanwhile."""
        etc = self.base / "etc-commands"
        if not etc.exists():
            shutil.copytree(self.etc, etc, symlinks=True)
        return in_namespace(overlay("/etc", etc) + PACKAGES.linker_setup(etc),
                            [*wrapper, str(self.exim), "-C", str(self.conf), *args])

    def run(self, *args: str) -> str:
        """Run an exim command (-Mf, -bpc, ...); its output."""
        result = subprocess.run(self.command(*args), capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"exim {' '.join(args)} failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result.stdout

    def queued_ids(self) -> list[str]:
        """The ids of the messages in the spool (their -H files)."""
        return sorted(p.name.removesuffix("-H") for p in (self.spool / "input").rglob("*-H"))

    def log_text(self) -> str:
        return read_text(self.mainlog)

    def outcomes(self) -> int:
        """Recipient outcomes logged so far: =>, ->, == and ** lines."""
        return len(_OUTCOME.findall(self.log_text()))

    def wait_outcomes(self, count: int, timeout: float = 40, settle: float = 0.3) -> None:
        """Wait until `count` recipient outcomes are logged and the log is quiet."""
        wait_settled(lambda: self.mainlog.stat().st_size if self.mainlog.exists() else 0,
                     lambda: self.outcomes() >= count,
                     lambda: f"{self.outcomes()} of {count} recipient outcomes logged:\n{self.log_text()[-3000:]}",
                     timeout, settle)


# -- the traffic of the end-to-end test, and what it must count ------------------
#
# Expected counts come from what crossed the wire: the replies the scripted
# peer recorded sending to Exim (outbound), and the replies the smtplib probes
# received from Exim (inbound). What this adds is how Exim logs them:
#   - one line per recipient: an RCPT reply and each LMTP reply after the data
#     once, a MAIL or DATA reply, an end-of-data reply or a refused greeting or
#     EHLO/HELO once per recipient the transaction carried;
#   - the per-host "H=...: SMTP error from remote mail server" line repeats
#     the recipients' reply and counts for nothing;
#   - a refused EHLO is followed by HELO, and only the HELO reply is logged;
#   - a recipient refused with 452 is offered again in a further transaction
#     on the same connection, and only its last RCPT reply is logged;
#   - a refused STARTTLS where TLS is required defers without logging the reply;
#   - TLS shows as X= on the lines of a message received (<=) or delivered
#     (=>, and again on the delivery's -> and ** lines): a session that
#     carries no message logs none;
#   - 5xx fails (bounced), 4xx defers, a refused connection defers with no reply;
#   - inbound, Exim logs the ACL message, not the reply it sent: see Ask.logged.


@dataclass(frozen=True)
class Ask:
    """One probe command, and what Exim's log can show of the reply it draws.

    logged:
      accepted  a 2xx/3xx reply, not counted;
      code      rejected, the ACL message starts with the code: counted as sent;
      enhanced  rejected, the ACL message starts with an enhanced code only: the
                wire had Exim's default code in front of it, the log cannot show
                it, so it counts with code "" and the enhanced code;
      bare      rejected, logged without any code: Exim's built-in rejections, ACL
                messages without one, and failed verifications (Exim logs the
                reason, "Unrouteable address", not the ACL message). Code "", the
                class of the wire's code (the log says "temporarily rejected" for
                4xx), enhanced "".
      quiet     rejected, and not logged as a reply at all (the unrecognized
                commands and protocol errors before Exim drops the session):
                counts nothing.
    """

    verb: str  # connect ehlo helo mail rcpt data (as scenario.send_step knows them)
    arg: str = ""
    logged: str = "accepted"
    body: str = ""

    @property
    def refused(self) -> bool:
        return self.logged != "accepted"


# The domain routed nowhere: the Postfix scenario's.
REFUSED = scenario.REFUSED_DOMAIN
# Exim writes its own mainlog, lines without a syslog tag: they count under
# the format's name.
SERVICE = "exim"


def e2e_outbound() -> list[list[str]]:
    """Recipients of each relayed message. A listener that refuses the whole
    session gets exactly one message: Exim would not try that host again for
    the next one ("retry time not reached", no reply on the wire)."""
    return [
        *scenario.to_main_listener(),
        ["alice@lm.test", "c550_5_1_1_g@lm.test", "d452_4_2_2_g@lm.test",
         "d552_5_2_2_g@lm.test", "bob@lm.test", "n450_g@lm.test"],
        ["x451_4_3_0_h@lm.test", "carol@lm.test"],
        *scenario.to_refusing_listeners(),
        *scenario.to_tls_listener(),
    ]


_session = partial(scenario.session, make=Ask)


def e2e_probes() -> list[ClientProbe]:
    """Inbound: a client per rejection point; the ACLs pick them by address,
    HELO name, sender, recipient or subject."""
    fine = f"fine@{LOCAL_DOMAIN}"
    out = CLIENT_OUTSIDE
    mail_ok = Ask("mail", "a@client.test")

    def delivered(*asks: Ask) -> tuple[Ask, ...]:
        return _session(mail_ok, *asks)

    def refused_data(logged: str, subject: str, body: str = "Hello from the lab.\n") -> Ask:
        return Ask("data", logged=logged, body=scenario.message(subject, body))

    return [
        ClientProbe("connect-blocked", CLIENT_BLOCKED, (Ask("connect", logged="code"),)),
        ClientProbe("connect-banned", CLIENT_BANNED, (Ask("connect", logged="bare"),)),
        ClientProbe("helo", out, (
            Ask("connect"), Ask("ehlo", "nofqdn", "code"), Ask("helo", "nofqdn", "code"),
            Ask("ehlo", HELO_BULK, "bare"), Ask("ehlo", "client.example.test"),
            mail_ok, Ask("rcpt", fine), Ask("data", body=scenario.message("after a bad HELO")))),
        ClientProbe("sender", out, _session(
            Ask("mail", SENDER_BLOCKED, "code"), Ask("mail", SENDER_TEMP, "code"),
            Ask("mail", f"a@{SENDER_DOMAIN_SPOOFED}", "enhanced"))),
        ClientProbe("unqualified", out, _session(
            Ask("mail", "bare-sender", "bare"), mail_ok, Ask("rcpt", "bare-recipient", "bare"))),
        ClientProbe("size-declared", out, _session(
            Ask("mail", f"a@client.test SIZE={MESSAGE_SIZE_LIMIT * 5}", "bare"))),
        ClientProbe("recipients", out, delivered(
            Ask("rcpt", f"no-such-user@{LOCAL_DOMAIN}", "bare"),
            Ask("rcpt", f"no-such-user@{PLAIN_DOMAIN}", "bare"),
            Ask("rcpt", "x@elsewhere.test", "code"),
            Ask("rcpt", f"y@{RELAY_ENHANCED_ONLY}", "enhanced"),
            Ask("rcpt", f"{GREYLISTED_USER}@{LOCAL_DOMAIN}", "code"),
            Ask("rcpt", f"{WAIT_USER}@{LOCAL_DOMAIN}", "bare"),
            Ask("rcpt", fine), Ask("rcpt", f"postmaster@{PLAIN_DOMAIN}"),
            Ask("data", body=scenario.message("several recipients")))),
        ClientProbe("data", CLIENT_NO_DATA, delivered(Ask("rcpt", fine), refused_data("code", "x"))),
        ClientProbe("content", out, delivered(Ask("rcpt", fine), refused_data("code", f"Buy {SUBJECT_REJECTED}"))),
        ClientProbe("virus", out, delivered(Ask("rcpt", fine), refused_data("bare", f"See {SUBJECT_VIRUS}"))),
        # STARTTLS, then a message; and a session over TLS that sends none.
        ClientProbe("tls", out, _session(Ask("tls"), Ask("ehlo", "client.example.test"), mail_ok,
                                         Ask("rcpt", fine), Ask("data", body=scenario.message("over TLS")))),
        ClientProbe("tls-refused", out, _session(Ask("tls"), Ask("ehlo", "client.example.test"), mail_ok,
                                                 Ask("rcpt", "x@elsewhere.test", "code"))),
        ClientProbe("too-big", out, delivered(Ask("rcpt", fine),
                                        refused_data("bare", "big", scenario.oversized(MESSAGE_SIZE_LIMIT)))),
        # Sessions Exim drops: the reply before the drop is logged without its
        # code ("SMTP call from ... dropped: too many ..."). Defaults:
        # smtp_max_unknown_commands 3, smtp_max_synprot_errors 3,
        # smtp_accept_max_nonmail 10.
        ClientProbe("unrecognized", out, _session(
            *[Ask("raw", "XYZZY", "quiet")] * 3, Ask("raw", "XYZZY", "bare"))),
        ClientProbe("protocol-errors", out, _session(
            *[Ask("raw", "RCPT TO:<fine@lab.test>", "quiet")] * 3, Ask("raw", "RCPT TO:<fine@lab.test>", "bare"))),
        ClientProbe("nonmail", out, _session(*[Ask("raw", "NOOP")] * 10, Ask("raw", "NOOP", "bare"))),
        ClientProbe("silent", out, _session(Ask("idle", str(RECEIVE_TIMEOUT + 2), "bare"))),
    ]


@dataclass
class Expected:
    replies: Counter = field(default_factory=Counter)  # scenario.ReplyKey -> count
    deliveries: Counter = field(default_factory=Counter)  # (status, service) -> count
    uncoded: list[str] = field(default_factory=list)  # inbound rejections logged without their code
    unlogged: list[str] = field(default_factory=list)  # outbound replies the log does not show
    mainlog_only: Counter = field(default_factory=Counter)  # inbound replies the rejectlog does not repeat
    tls: Counter = field(default_factory=Counter)  # (direction, protocol, trust, service) -> TLS sessions logged


def expected_counts(peer: SmtpPeer, submitted: list[list[str]], heard: list[Seen]) -> Expected:
    exp = Expected()
    messages_to = scenario.messages_to_peer(peer, submitted)

    refused: dict[str, list[tuple[Reply, str]]] = {}
    for s in peer.sessions:
        refusal = scenario.session_refusal(s)  # at HELO: the HELO after a refused EHLO
        if refusal is not None:
            refused.setdefault(s.listener, []).append(refusal)
            continue
        # Exim takes a 452 to RCPT for "too many recipients" and offers that
        # recipient again in a further transaction on the same connection:
        # the log shows each recipient's last RCPT reply only.
        last_rcpt: dict[str, Reply] = {}
        for t in s.txns:
            # A refused MAIL: the RCPTs were pipelined after it, the peer saw every recipient.
            for stage, reply, n in scenario.transaction_replies(t):
                if stage != "rcpt":
                    scenario.add_outbound(exp, reply, stage, n, SERVICE)
            if t.mail.code // 100 == 2:
                last_rcpt.update(t.rcpts)
        for reply in last_rcpt.values():
            if reply.code // 100 != 2:
                scenario.add_outbound(exp, reply, "rcpt", 1, SERVICE)
    for listener, refusals in refused.items():
        messages = messages_to.get(listener, [])
        if len(refusals) != len(messages):
            raise AssertionError(f"{listener}: {len(refusals)} refused sessions for {len(messages)} messages")
        for (reply, stage), n in zip(refusals, messages, strict=True):
            if stage == "starttls":
                # "a TLS session is required, but an attempt to start TLS failed":
                # a deferral whose log line holds no reply.
                exp.deliveries["deferred", SERVICE] += n
                exp.unlogged.append(f"{listener}: STARTTLS {reply}")
            else:
                scenario.add_outbound(exp, reply, stage, n, SERVICE)
    # Refused connections: an attempt without a reply.
    exp.deliveries["deferred", SERVICE] += sum(messages_to.get(REFUSED, []))

    for h in heard:
        if h.step.logged in ("accepted", "quiet"):
            continue
        code = str(h.code) if h.step.logged == "code" else ""
        enhanced = h.enhanced if h.step.logged in ("code", "enhanced") else ""
        if h.step.logged == "enhanced" and not enhanced:
            raise AssertionError(f"{h.probe}: expected an enhanced code in {h.code} {h.text!r}")
        if not code:
            # The wire had a code; Exim's log cannot show it.
            exp.uncoded.append(f"{h.probe}: {h.code} {h.text}")
        key = scenario.reply_key("inbound", code, enhanced, h.stage, SERVICE, f"{h.code // 100}xx")
        exp.replies[key] += 1
        if h.step.verb == "idle":
            exp.mainlog_only[key] += 1  # a command timeout is no rejection: mainlog only
    # Exim logs TLS as X= on the message's <= and => lines only, with CV=no
    # for a certificate not verified: outbound the peer's self-signed one,
    # inbound also when the client sent none (so trust is unknown there).
    exp.tls = (scenario.inbound_tls(heard, "unknown", lambda _: SERVICE, per_message=True)
               + scenario.outbound_tls(peer, "untrusted", SERVICE, delivering=True))
    return exp


@dataclass
class Result:
    mainlog: Path
    rejectlog: Path
    expected: Expected
    seconds: float


def run(out_dir: Path, name: str = "smtp-reply-exim-e2e") -> Result:
    """Run the test traffic through a fresh Exim; copy its logs into out_dir."""
    started = time.monotonic()
    with SmtpPeer() as peer:
        routes = scenario.peer_routes(peer, "smtp", "lmtp", "tls")
        with EximLab(name, routes) as lab:
            submitted = e2e_outbound()
            heard = scenario.submit_and_probe(lab, submitted, e2e_probes())
            lab.wait_outcomes(sum(map(len, submitted)) + len(scenario.accepted_recipients(heard)))
            lab.stop()
            mainlog, rejectlog = out_dir / "exim_mainlog", out_dir / "exim_rejectlog"
            shutil.copyfile(lab.mainlog, mainlog)
            shutil.copyfile(lab.rejectlog, rejectlog)
        expected = expected_counts(peer, submitted, heard)
    return Result(mainlog, rejectlog, expected, time.monotonic() - started)

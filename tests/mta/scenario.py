"""The traffic the Postfix lab sends, and the counts the exporter must report.

Nothing here is a hard-coded total. The expected counts are built from what
crossed the wire:
  outbound  the replies the scripted peer recorded sending to our Postfix;
  inbound   the replies our Postfix sent to the smtplib clients, as received
            (code, and the enhanced code leading the text).
What the lab adds is how Postfix writes those replies to its log, which the
exporter's counting rule follows (one count per log line):
  - Postfix logs an outbound reply once per recipient it applied to: RCPT
    replies and LMTP's per-recipient replies once, a MAIL, DATA or end-of-data
    reply (or a refused greeting) once per recipient of the transaction;
  - a refused EHLO/HELO/LHLO is logged as "refused to talk to me", like a refused
    greeting, so the log can only say stage=connect (the peer saw it at HELO);
  - STARTTLS refused where TLS is required: "refused to start TLS", stage starttls;
  - a 5xx greeting is deferred, not bounced (smtp_skip_5xx_greeting = yes);
  - cleanup's header/body_checks rejects log only the enhanced code (code "");
  - a refused AUTH is logged with neither code ("bare": code and enhanced ""),
    its class that of the reply the client got;
  - some rejections reach the client but are not logged with a code at all
    (503 "send HELO/EHLO first", ETRN's 459, "message file too big"): the probe
    marks them "quiet" and they count for nothing;
  - reject_warning (warn_if_reject) is not a reply: the client got 250;
  - each TLS session is logged once, "Anonymous|Untrusted|... TLS connection
    established from|to ...: TLSv1.3 ...", by smtpd and smtp alike;
  - each line counts under the service of the daemon that wrote it (its
    syslog_name): an inbound reply under that of the smtpd behind the port
    the client connected to, or of postscreen where it answered the client
    itself, or of cleanup for a header/body_checks reject; the outbound
    replies and the deliveries under that of smtp, lmtp and error.
Every probe checks that it got the kind of answer it aimed for, so a lab that
drifts (a restriction that stops matching) fails loudly instead of shrinking
the expected counts.
"""

from __future__ import annotations

import base64
import concurrent.futures
import re
import smtplib
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from helpers import metric_by, run_once

from . import postfix_lab as pl
from .namespace import free_port
from .postfix_lab import PostfixLab
from .smtp_peer import Reply, SmtpPeer

# smtp_replies_total's labels but remote (the peer's provider), which the lab cannot vary.
LABELS = ("direction", "code", "class", "enhanced", "stage", "service")
DELIVERY_LABELS = ("status", "service")

R = Reply.make

# Per-port behaviour of the peer (see smtp_peer.Listener).
LISTENERS: dict[str, dict] = {
    "main": {},
    "lmtp": {"lmtp": True},
    "greet421": {"greeting": R(421, "4.3.2")},
    "greet554": {"greeting": R(554, "5.7.1", "No SMTP service here, 127.0.0.1 is listed at bl.example.test")},
    "helo550": {"ehlo": R(550, "5.7.1", "EHLO from unknown hosts not accepted"),
                "helo": R(550, "5.7.1", "HELO from unknown hosts not accepted")},
    "tls454": {"starttls": R(454, "4.7.0")},
    "tls": {"starttls": R(220, "2.0.0", "Ready to start TLS")},  # then the handshake, and mail over TLS
    "mail553": {"mail": R(553, "5.7.1", "Sender address rejected: not permitted for 127.0.0.1")},
    "mail451": {"mail": R(451, "", "Temporary local problem - please try later")},
}
REFUSED = "<connection refused>"  # a port nobody listens on
GONE = "<error transport>"  # error:5.1.2 ..., logged by postfix/error
DISCARD = "<discard>"  # where bounces to our test senders go

OK = "ok.test"  # the test's main relay domain

# Test domains routed to the peer: domain -> listener.
PEER_DOMAINS = {OK: "main", "lm.test": "lmtp",
                **{f"{name}.test": name for name in LISTENERS if name not in ("main", "lmtp")}}
REFUSED_DOMAIN = "refused.test"  # routed to a port nobody listens on
# Routing of the Postfix lab's traffic: domain -> listener (or one of the specials).
TEST_DOMAINS = {**PEER_DOMAINS, REFUSED_DOMAIN: REFUSED, "gone.test": GONE, "client.test": DISCARD}



# -- the lab ---------------------------------------------------------------------


class Lab:
    """The peer, a private Postfix routed to it, and what the traffic did."""

    def __init__(self, name: str, domains: dict[str, str]) -> None:
        self.domains = dict(domains)
        self.peer = SmtpPeer()
        ports = {n: self.peer.add(n, **kw) for n, kw in LISTENERS.items()}
        routes = {}
        for domain, target in self.domains.items():
            if target in ports:
                kind = "lmtp" if LISTENERS[target].get("lmtp") else "smtp"
                routes[domain] = f"{kind}:[127.0.0.1]:{ports[target]}"
            elif target == REFUSED:
                routes[domain] = f"smtp:[127.0.0.1]:{free_port()}"
            elif target == GONE:
                routes[domain] = f"error:5.1.2 domain {domain} has no mail service"
            elif target == DISCARD:
                routes[domain] = "discard:"
            else:
                raise ValueError(f"{domain}: unknown target {target}")
        tls = [f"[127.0.0.1]:{ports[n]}" for n, kw in LISTENERS.items() if kw.get("starttls")]
        self.postfix = PostfixLab(name, routes, tls)
        self.submitted: list[list[str]] = []  # recipients of each outbound submission
        self.seen: list[Seen] = []  # inbound replies received by the probes

    def __enter__(self) -> Lab:
        try:
            self.postfix.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.postfix.cleanup()
        finally:
            self.peer.close()

    def target(self, address: str) -> str:
        return self.domains.get(address.rsplit("@", 1)[1].lower(), "")

    # -- outbound: local submissions (the null sender by default: no bounces)

    def send(self, recipients: list[str], subject: str = "Lab message", body: str = "Hello.\n",
             sender: str = "", raw: str | None = None) -> None:
        message = raw if raw is not None else (
            f"From: Lab Robot <noreply@{pl.LOCAL_DOMAIN}>\nTo: {', '.join(recipients)}\n"
            f"Subject: {subject}\n\n{body}")
        self.postfix.sendmail(recipients, message, sender=sender)
        self.submitted.append(list(recipients))

    # -- inbound: SMTP clients from chosen loopback addresses

    def run_probes(self, probes: list[Probe], workers: int = 8) -> None:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for seen in pool.map(self._run_probe, probes):
                self.seen.extend(seen)

    def _run_probe(self, probe: Probe) -> list[Seen]:
        port = {"main": self.postfix.port, "strict": self.postfix.strict_port,
                "screen": self.postfix.screen_port, "submission": self.postfix.submission_port}[probe.service]
        return run_probe(port, probe.name, probe.client, probe.steps)

    def inbound_service(self, seen: Seen) -> str:
        """The service an inbound reply counts under: that of the daemon that
        logs it (see the module's docstring)."""
        if seen.step.expect == "cleanup":
            return pl.SYSLOG_NAME  # cleanup's line, whichever smtpd passed it the message
        return self.postfix.answering(seen.port, seen.client)

    # -- waiting

    def settle(self, timeout: float = 60) -> None:
        """Wait until Postfix has made every delivery attempt it will make,
        then stop it so that the log is complete."""
        self.postfix.wait_idle(timeout)
        self.postfix.stop()
        deadline = time.monotonic() + 10
        while self.peer.open_sessions() and time.monotonic() < deadline:
            time.sleep(0.05)


@dataclass(frozen=True)
class Step:
    verb: str  # connect ehlo helo mail rcpt data bdat vrfy etrn auth tls raw idle
    arg: str = ""
    expect: str = "ok"  # ok | reject | cleanup | bare | quiet | warn
    body: str = ""

    @property
    def refused(self) -> bool:
        return self.expect in ("reject", "cleanup", "bare", "quiet")


@dataclass(frozen=True)
class Probe:
    name: str
    service: str  # main | strict | screen | submission
    client: str  # source address
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class ClientProbe:
    """A scripted client for submit_and_probe: steps of a lab's own kind
    (the Exim and OpenSMTPD labs' Ask), played from the source address client."""

    name: str
    client: str
    steps: tuple


@dataclass
class Seen:
    probe: str
    step: Step
    stage: str
    code: int
    text: str
    port: int  # the server's port the client connected to
    client: str  # the client's source address

    @property
    def enhanced(self) -> str:
        m = re.match(r"([245]\.\d{1,3}\.\d{1,3})(?![\d.])", self.text)
        return m.group(1) if m else ""

    def check(self) -> None:
        """The reply must be the kind the step aims for (step.refused)."""
        if (self.code >= 400 or self.code < 0) != self.step.refused:
            raise AssertionError(
                f"probe {self.probe}: {self.step.verb} {self.step.arg!r} should be "
                f"{'refused' if self.step.refused else 'accepted'}, got {self.code} {self.text!r}")


def run_probe(port: int, name: str, source: str, steps, send=None) -> list[Seen]:
    """Play one client session from `source` against 127.0.0.1:port, each step
    through send (send_step by default) and checked (Seen.check), until a
    421, a lost connection or a refused connect; then QUIT."""
    send = send or send_step
    client = smtplib.SMTP(timeout=30)
    seen: list[Seen] = []
    try:
        for step in steps:
            stage, code, text = send(client, port, source, step)
            got = Seen(name, step, stage, code, text, port, source)
            got.check()
            seen.append(got)
            if code in (421, -1) or (step.verb == "connect" and code >= 400):
                break
        try:
            client.docmd("QUIT")
        except (smtplib.SMTPException, OSError):
            pass
    finally:
        client.close()
    return seen


def accepted_recipients(seen: list[Seen]) -> list[str]:
    """Recipients of the probes' messages that the MTA accepted (and delivers)."""
    delivered, pending = [], []
    for s in seen:
        if s.stage == "mail":
            pending = []
        elif s.stage == "rcpt" and s.code // 100 == 2:
            pending.append(s.step.arg)
        elif s.stage == "end_of_data":
            if s.code // 100 == 2:
                delivered += pending
            pending = []
    return delivered


def send_step(client: smtplib.SMTP, port: int, source: str, step) -> tuple[str, int, str]:
    """Send one step (any object with verb, arg and body); returns (stage,
    code, reply text)."""
    verb, arg = step.verb, step.arg
    if verb == "connect":
        code, msg = client.connect("127.0.0.1", port, source_address=(source, 0))
        return "connect", code, msg.decode()
    if verb in ("ehlo", "helo"):
        code, msg = (client.ehlo if verb == "ehlo" else client.helo)(arg or "client.example.test")
        return "helo", code, msg.decode()
    if verb == "mail":
        address, _, params = arg.partition(" ")
        code, msg = client.docmd("MAIL", f"FROM:<{address}>" + (f" {params}" if params else ""))
        return "mail", code, msg.decode()
    if verb == "rcpt":
        code, msg = client.docmd("RCPT", f"TO:<{arg}>")
        return "rcpt", code, msg.decode()
    if verb == "data":
        code, msg = client.docmd("DATA")
        if code != 354:
            return "data", code, msg.decode()
        data = smtplib.quotedata(step.body)
        if not data.endswith("\r\n"):
            data += "\r\n"
        client.send(data.encode() + b".\r\n")
        code, msg = client.getreply()
        return "end_of_data", code, msg.decode()
    if verb == "bdat":  # one chunk, LAST; the command and the chunk go together
        chunk = step.body.replace("\n", "\r\n").encode()
        client.send(f"BDAT {len(chunk)} LAST\r\n".encode() + chunk)
        code, msg = client.getreply()
        return "data", code, msg.decode()
    if verb == "raw":  # any command line, as is (unknown verbs, commands out of order)
        code, msg = client.docmd(arg)
        return "other", code, msg.decode()
    if verb == "idle":  # say nothing for arg seconds, then read what the server sent
        time.sleep(float(arg))
        code, msg = client.getreply()
        return "unknown", code, msg.decode()
    if verb == "tls":  # STARTTLS and the handshake; the text is the TLS version negotiated
        # The lab's certificate is self-signed: not checked. smtplib sends SNI
        # for the host given to SMTP(), and this client was made without one.
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        client._host = "127.0.0.1"
        code, msg = client.starttls(context=context)
        return "starttls", code, client.sock.version() if code == 220 else msg.decode()
    if verb in ("vrfy", "etrn", "auth", "starttls"):
        code, msg = client.docmd(verb.upper(), arg)
        return {"auth": "auth", "starttls": "starttls"}.get(verb, "other"), code, msg.decode()
    raise ValueError(verb)


def message(subject: str, body: str = "Hello from the lab.\n", sender: str = "a@client.test") -> str:
    return (f"From: <{sender}>\nTo: <undisclosed-recipients:;>\nSubject: {subject}\n"
            f"Message-ID: <{abs(hash((subject, body))):x}@client.test>\n\n{body}")


def oversized(limit: int) -> str:
    """A message body past limit bytes, in lines of 999 bytes (SMTP allows 1000)."""
    return ("x" * 998 + "\n") * (limit // 900)


def session(*steps, helo: str = "client.example.test", make=Step) -> tuple:
    """Connect, EHLO, then steps; make builds a step (Step, or a lab's Ask)."""
    return (make("connect"), make("ehlo", helo), *steps)


def ok(verb: str, arg: str = "", body: str = "") -> Step:
    return Step(verb, arg, "ok", body)


def rej(verb: str, arg: str = "", body: str = "") -> Step:
    return Step(verb, arg, "reject", body)


# -- expected counts -------------------------------------------------------------


ReplyKey = tuple[str, str, str, str, str, str]  # by LABELS


def reply_key(direction: str, code: str, enhanced: str, stage: str, service: str, klass: str = "") -> ReplyKey:
    """The key of a reply; klass is needed when neither code is logged."""
    return (direction, code, klass or f"{(code or enhanced)[0]}xx", enhanced, stage, service)


@dataclass
class Expected:
    replies: Counter = field(default_factory=Counter)  # ReplyKey -> count
    deliveries: Counter = field(default_factory=Counter)  # (status, service) -> count
    warned: int = 0  # RCPTs that drew a reject_warning (accepted, not a reply)
    tls: Counter = field(default_factory=Counter)  # (direction, protocol, trust, service) -> TLS sessions
    unlogged: list[str] = field(default_factory=list)  # rejections Postfix does not log with a code


def expected_counts(lab: Lab) -> Expected:
    exp = Expected()
    if lab.peer.errors:
        raise AssertionError(f"the scripted peer failed: {lab.peer.errors}")

    # Outbound: walk the peer's record of every session.
    site: dict[str, list[tuple[Reply, str]]] = {}
    for s in lab.peer.sessions:
        failure = session_refusal(s, hello_stage="connect")  # logged as "refused to talk to me"
        if failure is not None:
            site.setdefault(s.listener, []).append(failure)
            continue
        for t in s.txns:
            for stage, reply, n in transaction_replies(t):
                # Postfix pipelines the RCPTs after MAIL: they are the recipients a
                # refused MAIL applies to (the peer answered them 503).
                if stage == "mail" and not n:
                    raise AssertionError(f"{s.listener}: MAIL refused but no recipients seen")
                _outbound(exp, reply, stage, n)

    # Replies before any transaction: one log line per recipient of the message.
    # The peer cannot see those recipients, the submissions can: every message
    # to such a listener is refused the same way.
    per_listener = messages_per_listener(lab.submitted, lab.target)
    for listener, failures in site.items():
        messages = per_listener.get(listener, [])
        if len(failures) != len(messages) or len(set(failures)) != 1:
            raise AssertionError(
                f"{listener}: {len(failures)} refused sessions for {len(messages)} messages "
                "(did Postfix suspend the destination? send one message per such listener)")
        reply, stage = failures[0]
        _outbound(exp, reply, stage, sum(messages))

    # Deliveries with no reply at all: connection refused, error transport.
    for target, status in ((REFUSED, "deferred"), (GONE, "bounced")):
        exp.deliveries[status, pl.SYSLOG_NAME] += sum(per_listener.get(target, []))

    # Inbound: what the clients received.
    for seen in lab.seen:
        if seen.step.expect == "warn":
            exp.warned += 1
        elif seen.step.expect == "quiet":
            exp.unlogged.append(f"{seen.probe}: {seen.code} {seen.text}")
        elif seen.step.expect == "bare":
            service = lab.inbound_service(seen)
            exp.replies[reply_key("inbound", "", "", seen.stage, service, f"{seen.code // 100}xx")] += 1
        elif seen.step.expect in ("reject", "cleanup"):
            code = "" if seen.step.expect == "cleanup" else str(seen.code)
            exp.replies[reply_key("inbound", code, seen.enhanced, seen.stage, lab.inbound_service(seen))] += 1
    # The clients present no certificate: "Anonymous TLS connection"; the
    # peer's is self-signed, not checked where TLS is merely required: "Untrusted".
    exp.tls = (inbound_tls(lab.seen, "anonymous", lab.inbound_service)
               + outbound_tls(lab.peer, "untrusted", pl.SYSLOG_NAME))
    return exp


def inbound_tls(seen: list[Seen], trust: str, service_of: Callable[[Seen], str],
                per_message: bool = False) -> Counter:
    """(inbound, protocol, trust, service) -> how often the MTA logs the
    probes' TLS: once per STARTTLS handshake (a "tls" step; its Seen.text is
    the version negotiated), or, per_message, once per message accepted
    after it; under the service service_of gives that step."""
    counts: Counter = Counter()
    versions: dict[str, str] = {}  # probe -> the TLS version of its session
    for s in seen:
        if s.step.verb == "tls" and s.code == 220:
            versions[s.probe] = s.text
            if not per_message:
                counts["inbound", s.text, trust, service_of(s)] += 1
        elif per_message and s.probe in versions and s.stage == "end_of_data" and s.code // 100 == 2:
            counts["inbound", versions[s.probe], trust, service_of(s)] += 1
    return counts


def outbound_tls(peer: SmtpPeer, trust: str, service: str, delivering: bool = False) -> Counter:
    """(outbound, protocol, trust, service) -> the peer's sessions that did
    the TLS handshake, by the version negotiated; `delivering`: only those
    whose first transaction was accepted for a recipient (the MTA logs TLS on
    that delivery's line)."""
    return Counter(("outbound", s.tls, trust, service) for s in peer.sessions
                   if s.tls and (not delivering or (s.txns and any(r.code // 100 == 2 for _, r in s.txns[0].eod))))


def session_refusal(session, hello_stage: str = "helo") -> tuple[Reply, str] | None:
    """The reply that ended a peer session before any mail transaction, and
    the stage the MTA logs it at (a refused EHLO/HELO: hello_stage)."""
    if session.greeting.code // 100 != 2:
        return session.greeting, "connect"
    if session.hello and session.hello[-1][1].code // 100 != 2:
        return session.hello[-1][1], hello_stage
    if session.starttls is not None and session.starttls.code // 100 != 2:
        return session.starttls, "starttls"
    return None


def transaction_replies(t) -> list[tuple[str, Reply, int]]:
    """The replies of one peer transaction that decide deliveries, as (stage,
    reply, recipients it applies to): a refused MAIL (to the RCPTs the peer
    saw after it), each refused RCPT, a refused DATA (to every accepted
    recipient), and each reply after the message (one per recipient)."""
    if t.mail.code // 100 != 2:
        return [("mail", t.mail, len(t.rcpts))]
    replies = [("rcpt", reply, 1) for _, reply in t.rcpts if reply.code // 100 != 2]
    if not t.accepted:
        return replies
    if t.data is not None and t.data.code != 354:
        return replies + [("data", t.data, len(t.accepted))]
    if len(t.eod) != len(t.accepted):
        raise AssertionError("a transaction ended without its end-of-data replies")
    return replies + [("end_of_data", reply, 1) for _, reply in t.eod]


def messages_per_listener(submitted: list[list[str]], listener_of) -> dict[str, list[int]]:
    """listener -> how many recipients each submitted message had there."""
    per_listener: dict[str, list[int]] = {}
    for rcpts in submitted:
        for listener, n in Counter(listener_of(r) for r in rcpts).items():
            per_listener.setdefault(listener, []).append(n)
    return per_listener


def messages_to_peer(peer: SmtpPeer, submitted: list[list[str]]) -> dict[str, list[int]]:
    """After a run through peer_routes: listener -> how many recipients each
    submitted message had there (REFUSED_DOMAIN's recipients under that
    name). The peer must not have failed."""
    if peer.errors:
        raise AssertionError(f"the scripted peer failed: {peer.errors}")
    return messages_per_listener(submitted, lambda r: PEER_DOMAINS.get(r.rsplit("@", 1)[1], REFUSED_DOMAIN))


def delivery_status(reply: Reply) -> str:
    return {2: "sent", 4: "deferred"}.get(reply.code // 100, "bounced")


def _outbound(exp: Expected, reply: Reply, stage: str, n: int) -> None:
    status = delivery_status(reply)
    if status == "bounced" and stage == "connect" and any(kw.get("greeting") == reply for kw in LISTENERS.values()):
        status = "deferred"  # smtp_skip_5xx_greeting: a 5xx greeting defers
    add_outbound(exp, reply, stage, n, pl.SYSLOG_NAME, status)


def add_outbound(exp, reply: Reply, stage: str, n: int, service: str, status: str | None = None) -> None:
    """Count n outbound replies into exp.replies, and n deliveries of
    `status` (the reply's own by default) into exp.deliveries, all under
    service."""
    exp.replies[reply_key("outbound", str(reply.code), reply.enhanced, stage, service)] += n
    exp.deliveries[status or delivery_status(reply), service] += n


# -- the traffic of the end-to-end test ------------------------------------------


def to_main_listener() -> list[list[str]]:
    """Messages to the main listener, several recipients each, that draw every
    reply it scripts at RCPT, DATA and after the message."""
    o = OK
    return [
        [f"ann@{o}", f"c550_5_1_1_a@{o}", f"n550_a@{o}", f"m550_5_7_1_a@{o}",
         f"c450_4_2_0_a@{o}", f"c452_4_2_2_a@{o}"],
        [f"bob@{o}", f"d554_5_7_1_b@{o}", f"cid@{o}"],
        [f"x451_4_3_0_c@{o}", f"dee@{o}", f"c550_5_1_1_c@{o}"],
        [f"d451_d@{o}", f"eve@{o}"],
        [f"fay@{o}", f"gus@{o}"],
        [f"c551_5_1_6_e@{o}", f"c553_5_1_3_e@{o}", f"c550_5_7_26_e@{o}", f"n554_e@{o}"],
        [f"m451_4_7_28_f@{o}", f"hal@{o}"],
    ]


def to_refusing_listeners() -> list[list[str]]:
    """One message to each listener that refuses whole sessions (greeting,
    EHLO/HELO, STARTTLS, MAIL) and one to a port nobody listens on: one each,
    for an MTA would not try that host again soon for a second."""
    return [
        ["a@greet421.test", "b@greet421.test", "c@greet421.test"],
        ["a@greet554.test", "b@greet554.test"],
        ["a@helo550.test", "b@helo550.test"],
        ["a@tls454.test"],
        ["a@mail553.test", "b@mail553.test"],
        ["a@mail451.test"],
        [f"a@{REFUSED_DOMAIN}", f"b@{REFUSED_DOMAIN}"],
    ]


def to_tls_listener() -> list[list[str]]:
    """Messages to the listener that does TLS: one with several recipients,
    one refused, and one with a single recipient."""
    return [["ann@tls.test", "bob@tls.test", "c550_5_1_1_a@tls.test"], ["cid@tls.test"]]


def peer_routes(peer: SmtpPeer, smtp: str, lmtp: str, tls: str) -> dict[str, tuple[str, int]]:
    """Open every LISTENERS listener on the peer; returns domain -> (scheme,
    port) for each of PEER_DOMAINS, by its listener's kind (plain SMTP,
    LMTP, TLS required), and REFUSED_DOMAIN -> (smtp, a port nobody listens on)."""
    ports = {name: peer.add(name, **kw) for name, kw in LISTENERS.items()}
    routes = {}
    for domain, listener in PEER_DOMAINS.items():
        kw = LISTENERS[listener]
        routes[domain] = (lmtp if kw.get("lmtp") else tls if kw.get("starttls") else smtp, ports[listener])
    routes[REFUSED_DOMAIN] = (smtp, free_port())
    return routes


def submit_and_probe(lab, submitted: list[list[str]], probes, send=None) -> list[Seen]:
    """Relay each message of `submitted` through the lab (its submit()), then
    play the probes against lab.port, several at a time (see run_probe)."""
    for rcpts in submitted:
        lab.submit(rcpts, message(f"Lab message to {len(rcpts)} recipients"))
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        played = pool.map(lambda p: run_probe(lab.port, p.name, p.client, p.steps, send), probes)
        return [seen for probe_seen in played for seen in probe_seen]


def e2e_outbound() -> list[list[str]]:
    """Outbound submissions: several recipients per message, every reply kind."""
    ok_ = OK
    return [
        [f"ann@{ok_}", f"c550_5_1_1_a@{ok_}", f"n550_a@{ok_}", f"m550_5_7_1_a@{ok_}",
         f"c450_4_2_0_a@{ok_}", f"c452_4_2_2_a@{ok_}"],
        [f"bob@{ok_}", f"d554_5_7_1_b@{ok_}", f"cid@{ok_}"],
        [f"d451_c@{ok_}", f"dee@{ok_}"],
        [f"x451_4_3_0_d@{ok_}", f"eve@{ok_}", f"c550_5_1_1_d@{ok_}"],
        [f"x554_e@{ok_}"],
        [f"fay@{ok_}", f"gus@{ok_}"],
        [f"d250_f@{ok_}"],
        [f"c551_5_1_6_g@{ok_}", f"c553_5_1_3_g@{ok_}", f"c550_5_7_26_g@{ok_}",
         f"c550_5_7_606_g@{ok_}", f"n554_g@{ok_}"],
        [f"m451_4_7_28_h@{ok_}", f"m550_h@{ok_}", f"hal@{ok_}"],
        ["alice@lm.test", "c550_5_1_1_h@lm.test", "d452_4_2_2_h@lm.test",
         "d552_5_2_2_h@lm.test", "bob@lm.test", "n450_h@lm.test"],
        ["x451_4_3_0_i@lm.test", "carol@lm.test"],
        *to_refusing_listeners(),
        *to_tls_listener(),
        [f"ivy@{ok_}", "dave@lm.test", "z@gone.test", f"c550_5_1_1_j@{ok_}"],
    ]


def e2e_probes() -> list[Probe]:
    """Inbound: a client per rejection point, each from its own loopback address."""
    fine = f"fine@{OK}"
    o, c = pl.CLIENT_OUTSIDE, pl.CLIENT_TRUSTED
    return [
        Probe("connect-blocked", "strict", pl.CLIENT_BLOCKED, (Step("connect", expect="reject"),)),
        Probe("connect-slow", "strict", pl.CLIENT_SLOW, (Step("connect", expect="reject"),)),
        Probe("client-at-rcpt", "main", pl.CLIENT_BLOCKED,
              session(ok("mail", "a@client.test"), rej("rcpt", fine))),
        Probe("helo", "strict", o,
              (Step("connect"), rej("ehlo", pl.HELO_BLOCKED), rej("helo", pl.HELO_INVALID),
               ok("ehlo", "client.example.test"), ok("mail", "a@client.test"), ok("rcpt", fine),
               ok("data", body=message("after a bad HELO")))),
        Probe("helo-at-rcpt", "main", o,
              session(ok("mail", "a@client.test"), rej("rcpt", fine), helo=pl.HELO_INVALID)),
        Probe("sender", "strict", o,
              session(rej("mail", pl.SENDER_BLOCKED), rej("mail", pl.SENDER_TEMP))),
        Probe("sender-at-rcpt", "main", o, session(ok("mail", pl.SENDER_BLOCKED), rej("rcpt", fine))),
        Probe("size", "main", o, session(rej("mail", f"a@client.test SIZE={pl.MESSAGE_SIZE_LIMIT * 5}"))),
        Probe("no-helo", "main", o, (Step("connect"), Step("mail", "a@client.test", "quiet"))),
        Probe("recipients", "main", o,
              session(ok("mail", "a@client.test"), rej("rcpt", f"no-such-user@{pl.LOCAL_DOMAIN}"),
                      rej("rcpt", "x@elsewhere.test"), rej("rcpt", f"{pl.GREYLISTED_USER}@{OK}"),
                      rej("rcpt", f"{pl.MOVED_USER}@{OK}"), Step("rcpt", f"{pl.WARNED_USER}@{OK}", "warn"),
                      ok("rcpt", fine), ok("data", body=message("several recipients")))),
        Probe("trusted-relay", "main", c,
              session(ok("mail", ""), rej("rcpt", f"no-such-user@{pl.LOCAL_DOMAIN}"),
                      ok("rcpt", f"relayed@{OK}"), ok("data", body=message("relay")))),
        Probe("vrfy-etrn", "main", o,
              session(rej("vrfy", f"no-such-user@{pl.LOCAL_DOMAIN}"),
                      Step("etrn", "elsewhere.test", "quiet"), Step("auth", "PLAIN", "quiet"))),
        # AUTH PLAIN with the initial response: "\0user\0password".
        Probe("auth-refused", "submission", o,
              session(*(Step("auth", "PLAIN " + base64.b64encode(f"\0{user}\0guess".encode()).decode(), "bare")
                        for user in ("admin", "info", "postmaster")))),
        Probe("auth-refused-over-tls", "submission", o,
              session(Step("tls"), Step("ehlo", "client.example.test"),
                      Step("auth", "PLAIN " + base64.b64encode(b"\0sales\0guess").decode(), "bare"))),
        Probe("data", "main", pl.CLIENT_NO_DATA,
              session(ok("mail", "a@client.test"), ok("rcpt", fine), rej("data", body=message("x")))),
        Probe("bdat", "main", pl.CLIENT_NO_DATA,
              session(ok("mail", "a@client.test"), ok("rcpt", fine), rej("bdat", body=message("x")))),
        Probe("multi-recipient-bounce", "main", o,
              session(ok("mail", ""), ok("rcpt", f"one@{OK}"),
                      ok("rcpt", f"two@{OK}"), rej("data", body=message("bounce")))),
        Probe("end-of-data", "main", pl.CLIENT_NO_EOD,
              session(ok("mail", "a@client.test"), ok("rcpt", fine), rej("data", body=message("x")))),
        Probe("end-of-data-temp", "main", pl.CLIENT_TEMP_EOD,
              session(ok("mail", "a@client.test"), ok("rcpt", fine), rej("data", body=message("x")))),
        Probe("header-checks", "main", o,
              session(ok("mail", "a@client.test"), ok("rcpt", fine),
                      Step("data", expect="cleanup", body=message(f"Buy {pl.SUBJECT_REJECTED} now")))),
        Probe("header-checks-temp", "main", o,
              session(ok("mail", "a@client.test"), ok("rcpt", fine),
                      Step("data", expect="cleanup", body=message(f"{pl.SUBJECT_DEFERRED} 550 5.7.1")))),
        Probe("body-checks", "main", o,
              session(ok("mail", "a@client.test"), ok("rcpt", fine),
                      Step("data", expect="cleanup",
                           body=message("invoice", f"See attached: {pl.BODY_REJECTED}\n")))),
        Probe("too-big", "main", o,
              session(ok("mail", "a@client.test"), ok("rcpt", fine),
                      Step("data", expect="quiet",
                           body=message("big", oversized(pl.MESSAGE_SIZE_LIMIT))))),
        Probe("postscreen", "screen", pl.CLIENT_DENYLISTED,
              session(ok("mail", "a@client.test"), rej("rcpt", fine))),
        Probe("screened", "screen", o,
              session(ok("mail", "a@client.test"), rej("rcpt", "x@elsewhere.test"),
                      ok("rcpt", fine), ok("data", body=message("passed postscreen")))),
        Probe("bounce-back", "main", o,
              session(ok("mail", "a@client.test"), ok("rcpt", f"c550_5_1_1_k@{OK}"),
                      ok("data", body=message("will bounce")))),
    ]


@dataclass
class Result:
    log: Path
    expected: Expected
    seconds: float


def run(log_copy: Path, name: str = "smtp-reply-lab-e2e") -> Result:
    """Run the test traffic through a fresh lab; copy its log to log_copy."""
    started = time.monotonic()
    with Lab(name, TEST_DOMAINS) as lab:
        for rcpts in e2e_outbound():
            lab.send(rcpts, subject=f"Lab message to {len(rcpts)} recipients")
        lab.run_probes(e2e_probes())
        lab.settle()
        log_copy.write_text(lab.postfix.log_text())
        expected = expected_counts(lab)
    return Result(log_copy, expected, time.monotonic() - started)


# -- what the exporter says ------------------------------------------------------


def exposition_of(*logs: Path, options: tuple[str, ...] = ()) -> str:
    """What `python3 -m exporter --once [OPTIONS] LOG...` writes."""
    result = run_once(*options, *map(str, logs))
    if result.returncode != 0:
        raise RuntimeError(f"exporter --once failed: {result.stderr.decode()}")
    return result.stdout.decode()


def exported(*logs: Path, options: tuple[str, ...] = ()) -> tuple[Counter, Counter]:
    """(smtp_replies_total by LABELS, smtp_deliveries_total by DELIVERY_LABELS)
    of `python3 -m exporter --once [OPTIONS] LOG...`, zero samples left out."""
    return counted(exposition_of(*logs, options=options))


def counted(out: str) -> tuple[Counter, Counter]:
    """(replies, deliveries) of an exposition, as exported() gives them."""
    replies = Counter({key: int(n) for key, n in metric_by(out, "smtp_replies_total", *LABELS).items() if n})
    deliveries = Counter({key: int(n) for key, n in metric_by(out, "smtp_deliveries_total", *DELIVERY_LABELS).items()
                          if n})
    return replies, deliveries


def diff(expected: Counter, got: Counter, labels: tuple[str, ...] = LABELS) -> str:
    """One row per key (by labels) whose counts differ."""
    rows = []
    for key in sorted(set(expected) | set(got)):
        if expected[key] != got[key]:
            label = dict(zip(labels, key, strict=True))
            rows.append(f"  {label}: expected {expected[key]}, got {got[key]}")
    return "\n".join(rows)

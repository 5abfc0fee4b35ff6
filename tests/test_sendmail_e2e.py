"""End to end with a real Sendmail 8.17: the scripted peer answers its
deliveries, smtplib clients provoke its rejections, and `python3 -m exporter
--once` (format auto-detected) must count, key by key, the replies that
crossed the wire as Sendmail logs them.

Expected counts come from the wire, not from the log:
  outbound  the peer's record of every session (smtp_peer.SmtpPeer.sessions);
  inbound   the replies the smtplib clients received.
What this module adds is how Sendmail writes them down, learnt from its logs:
  - one line per delivery attempt: each refused RCPT on its own line, and one
    line for the rest of the transaction (a refused greeting, HELO, MAIL,
    DATA or end of data applies to all its recipients at once);
  - a failing reply shows in `reply=` (first line only) and, for a deferral,
    again in `stat=Deferred: ...` on the same line: one count; the log does
    not name the SMTP step, so its stage is `unknown`;
  - after a refused EHLO Sendmail tries HELO: only the last reply is logged;
  - a successful delivery logs the 2xx reply's text without its code
    (`stat=Sent (Ok: queued as ...)`): code "", class 2xx, end_of_data;
  - a refused connection is a deferred delivery with no reply;
  - inbound ruleset rejects log the reply after `reject=`, staged by the
    ruleset: check_relay's reject is logged once, at connect, whatever
    command the client saw it at; an unknown local user is logged as
    `<r>... User unknown` without the 550 5.1.1 that was sent: code "",
    class 5xx; 503 sequence errors, 500 unknown commands and VRFY's 252 are
    not logged at all;
  - a refused AUTH is logged `AUTH failure (MECH): ...` without the 535
    5.7.0 that was sent: code "", class 5xx, stage auth;
  - each TLS session is logged once, `STARTTLS=server|client, ...,
    version=TLSv1.x, verify=...`: NO where the client sent no certificate
    (anonymous), FAIL for the peer's self-signed one (untrusted);
  - the daemon logs all of it, inbound and outbound, under its syslog tag
    (sm-mta): the service every count is under.

Needs root (a private mount namespace); fetches the Debian sendmail packages
with apt-get on first use. Without root or network the module skips.
"""

from __future__ import annotations

import base64
import smtplib
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import replies_by, run_once
from mta import scenario
from mta import sendmail_lab as sl
from mta.checks import AgainstTheWire, Wire, lab_fixture, skip_if, unrecognized
from mta.namespace import free_port
from mta.smtp_peer import Reply, SmtpPeer

from exporter.labels import REPLY_LABELS

pytestmark = [pytest.mark.e2e, *skip_if(sl.unavailable())]

R = Reply.make
SERVICE = sl.SYSLOG_TAG
SENDER = "lab@lab.test"  # an alias of /dev/null: bounces are delivered there

# Peer listeners (smtp_peer.Listener settings) and the domain routed to each:
# the shared ones but LMTP, which this Sendmail does not speak, and the one
# refusing STARTTLS, which this lab does not cover.
LISTENERS: dict[str, dict] = {name: kw for name, kw in scenario.LISTENERS.items() if name not in ("lmtp", "tls454")}
CLOSED = "closed.test"  # routed to a port nobody listens on

# Outbound messages; the peer's reply per recipient is in its local part.
MESSAGES: list[list[str]] = [
    ["alice@ok.test", "c550_5_1_1_bob@ok.test", "n550_carl@ok.test", "m550_5_7_1_dan@ok.test",
     "c450_4_2_0_ed@ok.test", "c452_4_2_2_fay@ok.test"],
    ["x451_4_3_0_gus@ok.test", "hal@ok.test"],
    ["x554_ian@ok.test"],
    ["d554_5_7_1_jo@ok.test", "kim@ok.test"],
    ["d452_lee@ok.test"],
    ["d250_max@ok.test"],
    ["d250_2_6_0_ned@ok.test", "ola@ok.test"],
    *([f"u1@{name}.test", f"u2@{name}.test"] for name in LISTENERS if name != "main"),
    [f"pat@{CLOSED}", f"quinn@{CLOSED}"],
]


@dataclass(frozen=True)
class Step:
    verb: str  # connect, mail, rcpt, data, tls (STARTTLS and the handshake), drop (close the socket), or any SMTP verb
    arg: str = ""
    want: int = 250  # the reply code the step must get
    # The stage it is logged at; "bare:<stage>": logged without its codes; None: not logged.
    logged: str | None = None


@dataclass(frozen=True)
class Probe:
    client: str
    steps: tuple[Step, ...]


OUTSIDE, OK_FROM = sl.CLIENT_OUTSIDE, "FROM:<a@client.test>"


def _plain(user: str) -> str:
    """AUTH PLAIN's argument with the initial response "\\0user\\0password"."""
    return "PLAIN " + base64.b64encode(f"\0{user}\0guess".encode()).decode()

PROBES = [
    Probe(OUTSIDE, (Step("mail", OK_FROM), Step("rcpt", "TO:<x@elsewhere.test>", 550, "rcpt"),
                    Step("rcpt", "TO:<lab@lab.test>"), Step("rcpt", "TO:<nosuch@lab.test>", 550, "bare:rcpt"),
                    Step("data", "", 250))),
    Probe(sl.CLIENT_BLOCKED, (Step("mail", OK_FROM, 550, "connect"),)),
    Probe(sl.CLIENT_TEMP, (Step("connect", "", 421, "connect"),)),
    Probe(OUTSIDE, (Step("mail", f"FROM:<{sl.SENDER_BLOCKED}>", 550, "mail"),
                    Step("rcpt", "TO:<lab@lab.test>", 503))),
    Probe(OUTSIDE, (Step("mail", f"FROM:<{sl.SENDER_TEMP}>", 451, "mail"),)),
    Probe(OUTSIDE, (Step("mail", f"FROM:<{sl.SENDER_REJECTED}>", 550, "mail"),)),
    Probe(OUTSIDE, (Step("mail", OK_FROM), Step("rcpt", f"TO:<{sl.RCPT_BLOCKED}>", 550, "rcpt"),
                    Step("rcpt", f"TO:<{sl.RCPT_GREYLISTED}>", 450, "rcpt"), Step("data", "", 503))),
    Probe(OUTSIDE, (Step("mail", OK_FROM), Step("rcpt", "TO:<lab@lab.test>"), Step("drop"))),
    Probe(OUTSIDE, (Step("mail", OK_FROM), Step("mail", "FROM:<b@client.test>", 503),
                    Step("rcpt", "TO:<>", 553, "rcpt"), Step("FOO", "", 500), Step("VRFY", "lab", 252))),
    # Password guessing: AUTH is refused "535 5.7.0 authentication failed" and
    # logged "AUTH failure (PLAIN): ..." without it. Then the same over TLS,
    # and a message.
    Probe(OUTSIDE, tuple(Step("AUTH", _plain(user), 535, "bare:auth") for user in ("admin", "info"))),
    Probe(OUTSIDE, (Step("tls", want=220), Step("EHLO", "client.example.test"),
                    Step("AUTH", _plain("sales"), 535, "bare:auth"), Step("mail", OK_FROM),
                    Step("rcpt", "TO:<lab@lab.test>"), Step("data"))),
]


@dataclass
class Lab:
    log: Path
    peer: SmtpPeer
    inbound: Counter  # reply keys the clients received, as Sendmail logs them
    unlogged: list[tuple[int, str]]
    inbound_tls: Counter  # (direction, protocol, trust, service) of the clients' TLS handshakes
    seconds: float


def _run_probe(port: int, probe: Probe) -> list[tuple[Step, int, str]]:
    seen = []
    client = smtplib.SMTP(timeout=20, source_address=(probe.client, 0))
    try:
        code, text = client.connect("127.0.0.1", port)
        steps = list(probe.steps)
        if steps and steps[0].verb == "connect":
            seen.append((steps.pop(0), code, text.decode()))
            return seen
        assert code == 220, (probe, code, text)
        client.ehlo("client.example.test")
        for step in steps:
            if step.verb == "drop":
                client.sock.close()
                client.sock = None
                return seen
            if step.verb == "tls":
                _, code, text = scenario.send_step(client, port, probe.client, step)
                seen.append((step, code, text))  # text: the TLS version negotiated
                continue
            if step.verb == "data":
                code, text = client.docmd("DATA")
                if code == 354:
                    client.send(scenario.message("Sendmail lab").replace("\n", "\r\n").encode() + b".\r\n")
                    code, text = client.getreply()
            else:
                code, text = client.docmd(step.verb.upper(), step.arg)
            seen.append((step, code, text.decode()))
        client.docmd("QUIT")
    finally:
        client.close()
    return seen


def _inbound_key(step: Step, code: int, text: str) -> scenario.ReplyKey | None:
    assert code == step.want, f"{step}: got {code} {text}"
    if step.logged is None:
        return None
    if step.logged.startswith("bare:"):
        return scenario.reply_key("inbound", "", "", step.logged[5:], SERVICE, f"{code // 100}xx")
    first = text.split("\n", 1)[0]
    enhanced = first.split(" ", 1)[0] if first[:1] == str(code)[0] and first[1:2] == "." else ""
    return scenario.reply_key("inbound", str(code), enhanced, step.logged, SERVICE)


def run(out_dir: Path) -> Lab:
    started = time.monotonic()
    log = out_dir / "maillog"
    with SmtpPeer() as peer:
        routes = {("ok.test" if name == "main" else f"{name}.test"): (f"esmtp_{name}", peer.add(name, **kw))
                  for name, kw in LISTENERS.items()}
        routes["ok.test"] = ("esmtp", routes["ok.test"][1])  # the stock mailer name, as most sites log it
        routes[CLOSED] = ("esmtp_closed", free_port())
        with sl.SendmailLab(log, routes=routes) as mta:
            for rcpts in MESSAGES:
                mta.submit(rcpts, scenario.message("Outbound", sender=SENDER), sender=SENDER)
            inbound, unlogged, tls = Counter(), [], Counter()
            for probe in PROBES:
                for step, code, text in _run_probe(mta.port, probe):
                    key = _inbound_key(step, code, text)
                    if step.verb == "tls":
                        tls["inbound", text, "anonymous", SERVICE] += 1  # no client certificate: verify=NO
                    elif key is None:
                        if code != 250:
                            unlogged.append((code, text))
                    else:
                        inbound[key] += 1
            to_peer = sum(1 for rcpts in MESSAGES if not rcpts[0].endswith(CLOSED))
            mta.settle(lambda: len(peer.sessions) < to_peer or peer.open_sessions() > 0)
        assert not peer.errors, peer.errors
        return Lab(log, peer, inbound, unlogged, tls, time.monotonic() - started)


lab = lab_fixture(run, "sendmail-e2e")


def expected_outbound(peer: SmtpPeer) -> tuple[Counter, Counter]:
    """(reply keys, deliveries by status) the peer's sessions must show as,
    one per Sendmail delivery line; plus the deliveries to the closed port."""
    exp = scenario.Expected()
    for s in peer.sessions:
        refusal = scenario.session_refusal(s)
        if refusal is not None:
            scenario.add_outbound(exp, refusal[0], "unknown", 1, SERVICE)
            continue
        for txn in s.txns:
            # One line per refused RCPT, and one for the rest of the
            # transaction, whatever the recipients it applies to.
            for stage, reply, _ in scenario.transaction_replies(txn):
                if stage == "end_of_data" and reply.code // 100 == 2:
                    exp.replies[scenario.reply_key("outbound", "", "", "end_of_data", SERVICE, "2xx")] += 1
                    exp.deliveries["sent", SERVICE] += 1
                else:
                    scenario.add_outbound(exp, reply, "unknown", 1, SERVICE)
                if stage != "rcpt":
                    break
    exp.deliveries["deferred", SERVICE] += sum(1 for rcpts in MESSAGES if rcpts[0].endswith(CLOSED))
    return exp.replies, exp.deliveries


@pytest.fixture(scope="module")
def wire(lab) -> Wire:
    outbound, deliveries = expected_outbound(lab.peer)
    # Sendmail checks the peer's self-signed certificate and logs verify=FAIL.
    tls = lab.inbound_tls + scenario.outbound_tls(lab.peer, "untrusted", SERVICE)
    return Wire((lab.log,), outbound + lab.inbound, deliveries, tls=tls)


class TestAgainstTheWire(AgainstTheWire):
    pass


def test_lab_covers_what_it_means_to(lab):
    """Guards the lab itself: a map entry or peer script that stops working must
    not quietly shrink what the comparison covers."""
    want, deliveries = expected_outbound(lab.peer)
    assert {k[2] for k in want} == {"2xx", "4xx", "5xx"}
    assert any(k[1] and not k[3] for k in want)  # a reply without an enhanced code
    assert {status for status, _ in deliveries} == {"sent", "deferred", "bounced"}
    assert {k[4] for k in lab.inbound} == {"connect", "auth", "mail", "rcpt"}
    assert lab.inbound_tls and any(s.tls for s in lab.peer.sessions)  # TLS both ways
    assert ("inbound", "", "5xx", "", "rcpt", SERVICE) in lab.inbound
    assert {code for code, _ in lab.unlogged} == {503, 500, 252}
    text = lab.log.read_text()
    # The traps are in the log: synthesised dsn= values that differ from the
    # reply, the reply repeated in stat=, bounces to a file, a dropped client.
    assert "dsn=4.5.0, reply=421 4.3.2" in text
    assert "stat=Deferred: 451 4.3.0" in text
    assert "mailer=*file*" in text
    assert "lost input channel" in text
    assert "stat=Deferred: Connection refused by" in text
    assert "AUTH failure (PLAIN): " in text
    assert "STARTTLS=server, " in text and "STARTTLS=client, " in text and "verify=FAIL" in text


def test_every_line_is_understood(lab, tmp_path):
    """No Sendmail line is left 'unrecognized', and the block is detected as
    Sendmail's: the same counts come out with format: sendmail."""
    result = run_once(str(lab.log))
    assert result.returncode == 0, result.stderr
    assert b'result="unrecognized"' in result.stdout
    assert unrecognized(result.stdout.decode()) == 0
    config = tmp_path / "config.yml"
    config.write_text(f"sources:\n  - path: {lab.log}\n    format: sendmail\n")
    forced = run_once("--config", str(config))
    assert forced.returncode == 0, forced.stderr
    assert replies_by(forced.stdout.decode(), *REPLY_LABELS) == replies_by(result.stdout.decode(), *REPLY_LABELS)

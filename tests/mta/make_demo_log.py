"""Make exporter/demo/postfix.log: a real Postfix log from the lab, with a
realistic-looking mix of traffic (a few hundred messages out, a hundred-odd
SMTP sessions in), for the README demo.

    sudo python3 tests/mta/make_demo_log.py [--seed N] [--out PATH]

Needs root and the postfix package, like the end-to-end test. Every line in
the result was written by Postfix 3.7 itself (its own maillog_file logger);
the script only chooses the traffic and what the scripted peers answer.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `mta` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "mta"

from . import postfix_lab as pl
from .scenario import (
    DELIVERY_LABELS,
    DISCARD,
    GONE,
    REFUSED,
    Lab,
    Probe,
    Step,
    diff,
    expected_counts,
    exported,
    message,
    ok,
    rej,
    session,
)
from .smtp_peer import Reply, reply_for

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "exporter" / "demo" / "postfix.log"

DEMO_DOMAINS = {
    "example.com": "main",
    "example.net": "main",
    "example.org": "main",
    "hosted.example": "lmtp",  # our own mailboxes, behind LMTP
    "busy.example": "greet421",
    "blocklisted.example": "greet554",
    "legacy.example": "helo550",
    "secure.example": "tls454",
    "picky.example": "mail553",
    "flaky.example": "mail451",
    "unreachable.example": REFUSED,
    "defunct.example": GONE,
    "bounces.lab.test": DISCARD,  # where non-delivery reports to our senders end
}
TROUBLED = ["busy.example", "blocklisted.example", "legacy.example", "secure.example",
            "picky.example", "flaky.example", "unreachable.example", "defunct.example"]

FIRST = ["maria", "james", "anna", "david", "laura", "peter", "sofia", "daniel", "emma", "lucas", "olivia", "noah",
         "mia", "liam", "eva", "jonas", "clara", "felix", "nina", "oscar", "ines", "paul", "rosa", "samuel", "tara",
         "victor"]
LAST = ["garcia", "smith", "muller", "rossi", "novak", "silva", "jensen", "kowalski", "dubois", "brown", "martin",
        "nielsen", "costa", "weber", "lopez", "berg", "moreau", "fischer", "santos", "walker"]
MAILBOXES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj",
             "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter"]
SENDERS = ("newsletter@bounces.lab.test", "alerts@bounces.lab.test",
           "billing@bounces.lab.test", "")

# What example.com/.org recipients answer, by weight (None: accepted, 250).
OUTCOMES = [
    (62, None),
    (7, ("c", 550, "5.1.1")),
    (4, ("c", 450, "4.2.0")),
    (3, ("c", 452, "4.2.2")),
    (3, ("m", 550, "5.7.1")),
    (2, ("m", 451, "4.7.28")),
    (3, ("n", 550, "")),
    (2, ("c", 550, "5.7.26")),
    (2, ("c", 553, "5.1.3")),
    (1, ("c", 551, "5.1.6")),
    (1, ("c", 550, "5.7.606")),
    (2, ("d", 554, "5.7.1")),
    (1, ("d", 451, "")),
    (2, ("x", 451, "4.3.0")),
    (1, ("c", 552, "5.2.2")),
]


def person(rng: random.Random, domain: str) -> str:
    return f"{rng.choice(FIRST)}.{rng.choice(LAST)}@{domain}"


def script_peer(lab: Lab, rng: random.Random) -> list[str]:
    """Give every address we will use its answer; returns the outbound address pool."""
    pool = []
    weights = [w for w, _ in OUTCOMES]
    for domain in ("example.com", "example.net", "example.org"):
        for _ in range(60):
            address = person(rng, domain)
            if address in pool:
                continue
            pool.append(address)
            outcome = rng.choices([o for _, o in OUTCOMES], weights)[0]
            if outcome is not None:
                lab.peer.script[address] = reply_for(outcome[0], outcome[1], outcome[2], address)
            elif domain == "example.net":  # a server whose final 250 has no enhanced code
                lab.peer.script[address] = ("d", Reply.make(250, "", None))
    for name in MAILBOXES:
        address = f"{name}@hosted.example"
        if name in ("mallory", "niaj"):
            lab.peer.script[address] = ("d", Reply.make(452, "4.2.2", None))
        elif name == "rupert":
            lab.peer.script[address] = ("d", Reply.make(552, "5.2.2", None))
    lab.peer.script["sybil@hosted.example"] = reply_for("c", 550, "5.1.1", "sybil@hosted.example")
    return pool


def outbound(lab: Lab, rng: random.Random, pool: list[str], messages: int) -> None:
    subjects = ["Your invoice {n}", "Weekly digest #{n}", "Password reset", "Order {n} shipped",
                "Meeting notes", "Re: question about ticket {n}", "Security alert"]
    for n in range(messages):
        count = rng.choices([1, 2, 3, 4], [60, 20, 12, 8])[0]
        rcpts: list[str] = []
        while len(rcpts) < count:
            r = rng.random()
            if r < 0.80:
                address = rng.choice(pool)
            elif r < 0.88:
                address = f"{rng.choice(MAILBOXES)}@hosted.example"
            else:
                address = f"{rng.choice(FIRST)}@{rng.choice(TROUBLED)}"
            if address not in rcpts:
                rcpts.append(address)
        subject = rng.choice(subjects).format(n=10000 + n)
        body = f"Hello,\n\nthis is message {n} of the demo.\n"
        sender = rng.choice(SENDERS)
        msg = (f"From: <{sender or 'mailer-daemon@' + pl.MYHOSTNAME}>\nTo: {', '.join(rcpts)}\n"
               f"Subject: {subject}\n\n{body}")
        lab.send(rcpts, sender=sender, raw=msg)


def inbound_probes(rng: random.Random, sessions: int) -> list[Probe]:
    outside = [f"127.0.0.{n}" for n in (5, 6, 7, 8, 21, 22, 23, 24, 25, 31, 32, 33)]
    helos = ["mail.example.org", "smtp.example.com", "mx2.example.net", "out.example.org"]

    def mailbox() -> str:
        return f"{rng.choice(MAILBOXES[:14])}@hosted.example"

    def external() -> str:
        return person(rng, rng.choice(["example.com", "example.org"]))

    kinds = [
        (40, "deliver"), (10, "relay-trusted"), (8, "relay-denied"), (6, "unknown-user"),
        (4, "greylisted"), (2, "moved"), (3, "warned"), (3, "blocked-connect"),
        (3, "blocked-rcpt"), (2, "slow-connect"), (2, "bad-helo"), (2, "blocked-helo"),
        (2, "blocked-sender"), (2, "temp-sender"), (2, "too-large"), (2, "no-data"),
        (1, "multi-bounce"), (2, "end-of-data"), (2, "header"), (1, "body"),
        (3, "postscreen"), (3, "screened"), (1, "vrfy"),
    ]
    probes = []
    for n in range(sessions):
        kind = rng.choices([k for _, k in kinds], [w for w, _ in kinds])[0]
        client, helo, sender = rng.choice(outside), rng.choice(helos), external()
        body = message(rng.choice(["Hello", "Invoice", "Lunch?", "Report", "Re: your order"]),
                       sender=sender)
        steps: tuple[Step, ...]
        service = "main"
        if kind == "deliver":
            rcpts = [mailbox() for _ in range(rng.choice([1, 1, 1, 2]))]
            steps = session(ok("mail", sender), *[ok("rcpt", r) for r in dict.fromkeys(rcpts)],
                            ok("data", body=body), helo=helo)
        elif kind == "relay-trusted":
            client = pl.CLIENT_TRUSTED
            steps = session(ok("mail", "webapp@bounces.lab.test"), ok("rcpt", external()),
                            ok("data", body=body), helo="app1.lab.test")
        elif kind == "relay-denied":
            steps = session(ok("mail", sender), rej("rcpt", person(rng, "elsewhere.example")), helo=helo)
        elif kind == "unknown-user":
            steps = session(ok("mail", sender), rej("rcpt", f"{rng.choice(FIRST)}x@{pl.LOCAL_DOMAIN}"),
                            helo=helo)
        elif kind == "greylisted":
            steps = session(ok("mail", sender), rej("rcpt", f"{pl.GREYLISTED_USER}@hosted.example"),
                            helo=helo)
        elif kind == "moved":
            steps = session(ok("mail", sender), rej("rcpt", f"{pl.MOVED_USER}@hosted.example"), helo=helo)
        elif kind == "warned":
            steps = session(ok("mail", sender), Step("rcpt", f"{pl.WARNED_USER}@hosted.example", "warn"),
                            ok("data", body=body), helo=helo)
        elif kind == "blocked-connect":
            client, service = pl.CLIENT_BLOCKED, "strict"
            steps = (Step("connect", expect="reject"),)
        elif kind == "blocked-rcpt":
            client = pl.CLIENT_BLOCKED
            steps = session(ok("mail", sender), rej("rcpt", mailbox()), helo=helo)
        elif kind == "slow-connect":
            client, service = pl.CLIENT_SLOW, "strict"
            steps = (Step("connect", expect="reject"),)
        elif kind == "bad-helo":
            steps = session(ok("mail", sender), rej("rcpt", mailbox()), helo=pl.HELO_INVALID)
        elif kind == "blocked-helo":
            service = "strict"
            steps = (Step("connect"), rej("ehlo", pl.HELO_BLOCKED))
        elif kind == "blocked-sender":
            steps = session(ok("mail", pl.SENDER_BLOCKED), rej("rcpt", mailbox()), helo=helo)
        elif kind == "temp-sender":
            service = "strict"
            steps = session(rej("mail", pl.SENDER_TEMP), helo=helo)
        elif kind == "too-large":
            steps = session(rej("mail", f"{sender} SIZE={pl.MESSAGE_SIZE_LIMIT * 3}"), helo=helo)
        elif kind == "no-data":
            client = pl.CLIENT_NO_DATA
            steps = session(ok("mail", sender), ok("rcpt", mailbox()), rej("data", body=body), helo=helo)
        elif kind == "multi-bounce":
            steps = session(ok("mail", ""), ok("rcpt", "alice@hosted.example"),
                            ok("rcpt", "bob@hosted.example"), rej("data", body=body), helo=helo)
        elif kind == "end-of-data":
            client = rng.choice([pl.CLIENT_NO_EOD, pl.CLIENT_TEMP_EOD])
            steps = session(ok("mail", sender), ok("rcpt", mailbox()), rej("data", body=body), helo=helo)
        elif kind == "header":
            subject = rng.choice([f"Buy {pl.SUBJECT_REJECTED} today", f"{pl.SUBJECT_DEFERRED} notice"])
            steps = session(ok("mail", sender), ok("rcpt", mailbox()),
                            Step("data", expect="cleanup", body=message(subject, sender=sender)), helo=helo)
        elif kind == "body":
            steps = session(ok("mail", sender), ok("rcpt", mailbox()),
                            Step("data", expect="cleanup",
                                 body=message("Scan", f"attachment: {pl.BODY_REJECTED}\n", sender)),
                            helo=helo)
        elif kind == "postscreen":
            client, service = pl.CLIENT_DENYLISTED, "screen"
            steps = session(ok("mail", sender), rej("rcpt", mailbox()), helo=helo)
        elif kind == "screened":
            service = "screen"
            steps = session(ok("mail", sender), ok("rcpt", mailbox()), ok("data", body=body), helo=helo)
        else:  # vrfy
            steps = session(rej("vrfy", f"{rng.choice(FIRST)}x@{pl.LOCAL_DOMAIN}"), helo=helo)
        probes.append(Probe(f"{kind}-{n}", service, client, steps))
    return probes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=3463)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=120)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    why = pl.unavailable()
    if why:
        print(f"make_demo_log: {why}", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    started = time.monotonic()
    with Lab("smtp-reply-lab-demo", DEMO_DOMAINS) as lab:
        pool = script_peer(lab, rng)
        probes = inbound_probes(rng, args.sessions)
        half = args.messages // 2
        outbound(lab, rng, pool, half)
        lab.run_probes(probes)
        outbound(lab, rng, pool, args.messages - half)
        lab.settle(timeout=120)
        text = lab.postfix.log_text()
        try:
            expected = expected_counts(lab)
        except AssertionError as e:  # e.g. Postfix suspended a refusing destination
            expected = None
            print(f"cannot derive the expected counts: {e}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"{args.out}: {len(text.splitlines())} lines, {len(text.encode()) // 1024} KiB, "
          f"{time.monotonic() - started:.1f}s")
    subprocess.run([sys.executable, "-m", "exporter", "--once", "--output", "table", str(args.out)],
                   cwd=REPO, check=False)
    if expected is None:
        return 0
    # The demo is checked like the test: the exporter against the wire.
    replies, deliveries = exported(args.out)
    problems = diff(expected.replies, replies) + diff(expected.deliveries, deliveries, DELIVERY_LABELS)
    print("exporter vs wire: " + ("identical" if not problems else "DIFFERENT\n" + problems))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())

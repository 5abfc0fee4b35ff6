#!/usr/bin/env python3
"""Write a seeded hostile Postfix log and the counts the exporter must give for it.

    python3 benchmarks/hostile_log_gen.py OUT --lines 150000 --seed 1

Remote servers and clients choose the replies, host names and texts a mail
log holds; this log is what an adversary could make of them. Postfix-shaped
lines (outbound `status=` and `said:` lines, inbound `NOQUEUE: reject:`
lines) carry random reply codes, valid (`[2-5][0-5][0-9]`) and not (600,
199, 5000, 55O), random enhanced codes, valid and junk (5.999.9999, 9.1.1,
5.1.1.1), random relay host names and random reply text, so that the
distinct label sets far outnumber the exporter's series cap. Among them:
one 4 MB line, long lines past the 64 KiB line limit, NUL runs, invalid
UTF-8 and binary junk.

The generator is its own oracle: it knows, from how it built each line and
from the reply syntax in the README (not from the exporter's code), which
replies and deliveries each line holds. `generate` returns that Truth.
Same --seed and --lines give the same bytes and the same Truth.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from postfix_log_gen import Clock, fmt_delay  # sibling module, stdlib only

DEFAULT_MAX_LINE = 64 * 1024  # the exporter's default --max-line-bytes
HUGE_LINE_BYTES = 4 << 20

INVALID_CODES = ("600", "199", "5000", "55O", "099", "2500", "6xx", "")
JUNK_ENHANCED = ("5.999.9999", "9.1.1", "5.1.1.1", "4.4", "2.0.0.0", "5.7.1234", "x.y.z", "1.2.3")
# The SMTP client's "(in reply to X command)" words, and the stage each means.
COMMANDS = (("MAIL FROM", "mail"), ("RCPT TO", "rcpt"), ("DATA", "data"),
            ("end of DATA", "end_of_data"), ("EHLO", "helo"))
# smtpd's reject stage words, and the stage each means.
REJECT_STAGES = (("CONNECT", "connect"), ("EHLO", "helo"), ("MAIL", "mail"), ("RCPT", "rcpt"),
                 ("DATA", "data"), ("BDAT", "data"), ("END-OF-MESSAGE", "end_of_data"), ("VRFY", "other"))
# Relay names of real providers, so that the `remote` label takes many values.
PROVIDER_HOSTS = ("gmail-smtp-in.l.google.com", "mx1.hotmail.com", "example-com.mail.protection.outlook.com",
                  "mta5.am0.yahoodns.net", "mx01.mail.icloud.com", "mail.protonmail.ch", "mx.zoho.eu",
                  "in1-smtp.messagingengine.com", "mx00.emig.gmx.net", "mx.kundenserver.de",
                  "mx.yandex.ru", "mxs.mail.ru", "mx1.qq.com", "mx1.comcast.net", "al-ip4-mx-vip1.prodigy.net",
                  "eu-smtp-inbound-1.mimecast.com", "mx0a-001.pphosted.com", "d1234.ess.barracudanetworks.com",
                  "inbound-smtp.us-east-1.amazonaws.com")
# Reply text words: no "(in reply to", "; from=<", no other MTA's name, and
# no word a parser reads as the start of a host clause ("host ", "connect to ").
WORDS = ("mailbox", "unavailable", "try", "again", "later", "user", "unknown", "rejected", "Greylisted",
         "quota", "policy", "spam", "blocked", "über", "naïve", "日本語", "🙂", "0.0.0.0", "[127.0.0.1]",
         "550", "5.7.1", "4.2.0", "250-OK", "id=", "#5.1.1", "<a@b>", "(x)", "::1", "-", "1.2.3.4",
         "http://x.invalid/?q=1", "a\tb", "%s", "%n", "\\x00", "'", '"', "{}", "AAAA", "ÿ", "z" * 40)
# No "x": random labels must not spell "exim", which would switch on the Exim parser.
LABEL_CHARS = "abcdefghijklmnopqrstuvwyz0123456789-"


@dataclass
class Truth:
    """What the exporter must count, from how each line was built."""

    lines: int = 0
    replies: Counter = field(default_factory=Counter)  # (direction, class) -> count
    deliveries: Counter = field(default_factory=Counter)  # status -> count
    # (direction, code, stage) of counted replies: each is at least one label
    # set of its own, so their number is a floor for the distinct label sets.
    label_floor: set = field(default_factory=set)
    # Lines over the line limit / with invalid UTF-8: all of them, and those
    # holding a Postfix trigger, which the scanner reads in any case.
    long_lines: int = 0
    invalid_utf8_lines: int = 0

    def to_json(self) -> dict:
        return {
            "lines": self.lines,
            "replies": {f"{d}/{c}": n for (d, c), n in sorted(self.replies.items())},
            "deliveries": dict(sorted(self.deliveries.items())),
            "label_floor": len(self.label_floor),
            "long_lines": self.long_lines, "invalid_utf8_lines": self.invalid_utf8_lines,
        }


class HostileLog:
    def __init__(self, rng: random.Random, truth: Truth, max_line: int) -> None:
        self.rng = rng
        self.truth = truth
        self.max_line = max_line
        self.clock = Clock(rng, start=1795876800.0 + rng.randrange(86400), mean_step=0.01)

    # --- pieces ----------------------------------------------------------------
    def prefix(self, daemon: str) -> str:
        self.clock.advance()
        stamp = self.clock.rfc3339() if self.rng.random() < 0.2 else self.clock.classic()
        return f"{stamp} mx postfix/{daemon}[{self.rng.randrange(100, 4_000_000)}]: "

    def qid(self) -> str:
        return "".join(self.rng.choices("0123456789ABCDEF", k=10))

    def ip(self) -> str:
        r = self.rng
        if r.random() < 0.1:
            return f"2001:db8:{r.randrange(65536):x}::{r.randrange(1, 65536):x}"
        return f"{r.randrange(1, 224)}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"

    def host(self) -> str:
        """A relay host name as a remote side could choose it: no space, comma or bracket."""
        r = self.rng
        roll = r.random()
        if roll < 0.15:
            return r.choice(PROVIDER_HOSTS)
        if roll < 0.2:
            return "unknown"
        if roll < 0.25:  # very long
            return ".".join("".join(r.choices(LABEL_CHARS, k=63)) for _ in range(3)) + ".example"
        if roll < 0.3:
            return r.choice(("mx.müller.de", "xn--mller-kva.de", "mx_1.ex%41mple.net", "-.-", "localhost"))
        labels = ["".join(r.choices(LABEL_CHARS, k=r.randrange(1, 12))) for _ in range(r.randrange(1, 4))]
        return ".".join(labels) + "." + r.choice(("com", "net", "org", "de", "io", "example"))

    def text(self) -> str:
        # Never empty: Postfix writes "status=sent (428)" for a bare "428",
        # which the parser does not read as a reply (see the test's notes).
        return " ".join(self.rng.choices(WORDS, k=self.rng.randrange(1, 12)))

    def code(self) -> tuple[str, bool]:
        r = self.rng
        if r.random() < 0.85:
            return f"{r.randrange(2, 6)}{r.randrange(0, 6)}{r.randrange(0, 10)}", True
        return r.choice(INVALID_CODES), False

    def enhanced(self, code: str) -> str:
        r = self.rng
        roll = r.random()
        if roll < 0.5 and code[:1] in ("2", "4", "5"):
            return f"{code[0]}.{r.randrange(0, 8)}.{r.randrange(0, 30)}"
        if roll < 0.6:
            return f"{r.choice('245')}.{r.randrange(0, 1000)}.{r.randrange(0, 1000)}"
        if roll < 0.85:
            return r.choice(JUNK_ENHANCED)
        return ""

    def reply(self) -> tuple[str, str | None, str]:
        """A reply as a server could send it, the class it is counted with
        (None: not a reply by the README's syntax) and its code label."""
        r = self.rng
        code, valid = self.code()
        enhanced = self.enhanced(code)
        head = f"{code} {enhanced}" if code and enhanced else code or enhanced
        if valid and r.random() < 0.1:  # a flattened multi-line reply: its first line decides
            head = f"{code}-{enhanced} {self.text()} {code}-{enhanced} {self.text()} {head}"
        text = f"{head} {self.text()}"
        if valid:
            return text, code[0] + "xx", code
        if not code and enhanced and enhanced not in JUNK_ENHANCED:
            return text, enhanced[0] + "xx", ""  # only an enhanced code was logged
        return text, None, code

    def count_reply(self, direction: str, reply_class: str | None, code: str, stage: str) -> None:
        if reply_class is not None:
            self.truth.replies[direction, reply_class] += 1
            self.truth.label_floor.add((direction, code, stage))

    # --- lines -------------------------------------------------------------------
    def status_line(self) -> str:
        r = self.rng
        status = r.choice(("sent", "sent", "deferred", "bounced"))
        host = self.host()
        reply, reply_class, code = self.reply()
        if status == "sent":
            text, stage = reply, "end_of_data"
        else:
            command, stage = r.choice(COMMANDS)
            text = f"host {host}[{self.ip()}] said: {reply} (in reply to {command} command)"
        self.truth.deliveries[status] += 1
        self.count_reply("outbound", reply_class, code, stage)
        delay = r.expovariate(1)
        return (f"{self.prefix('smtp')}{self.qid()}: to=<{r.choice(WORDS[:6])}@{self.host()}>, "
                f"relay={host}[{self.ip()}]:25, delay={fmt_delay(delay)}, delays=0.1/0/0.2/{fmt_delay(delay)}, "
                f"dsn=5.0.0, status={status} ({text})")

    def mx_said_line(self) -> str:
        """A reply from one MX before Postfix tries the next: a reply, no delivery."""
        reply, reply_class, code = self.reply()
        command, stage = self.rng.choice(COMMANDS)
        self.count_reply("outbound", reply_class, code, stage)
        return (f"{self.prefix('smtp')}{self.qid()}: host {self.host()}[{self.ip()}] said: {reply} "
                f"(in reply to {command} command)")

    def reject_line(self, mangle: bytes = b"") -> bytes:
        """An smtpd or postscreen reject; `mangle` bytes go into the reply text."""
        r = self.rng
        reply, reply_class, code = self.reply()
        if mangle:
            reply += " \x01"
        word, stage = r.choice(REJECT_STAGES)
        self.count_reply("inbound", reply_class, code, stage)
        client = f"{self.host()}[{self.ip()}]"
        return (f"{self.prefix(r.choice(('smtpd', 'smtpd', 'postscreen')))}NOQUEUE: reject: {word} from {client}: "
                f"{reply}; from=<{r.choice(WORDS[:6])}@{self.host()}> to=<x@example.org> proto=ESMTP "
                f"helo=<{self.host()}>").encode().replace(b"\x01", mangle)

    def chatter_line(self) -> str:
        r = self.rng
        client = f"{self.host()}[{self.ip()}]"
        return r.choice((
            f"{self.prefix('smtpd')}connect from {client}",
            f"{self.prefix('smtpd')}disconnect from {client} ehlo=1 mail=1 rcpt=0/1 data=0/1 commands=2/4",
            f"{self.prefix('qmgr')}{self.qid()}: removed",
            f"{self.prefix('smtpd')}{self.qid()}: client={client}",
            f"{self.prefix('qmgr')}{self.qid()}: from=<a@{self.host()}>, size={r.randrange(99999)}, "
            "nrcpt=1 (queue active)",
        ))

    def junk_line(self) -> bytes:
        """Binary junk, NUL runs, invalid UTF-8 (with and without a trigger), long lines."""
        r = self.rng
        t = self.truth
        kind = r.choices(range(6), (10, 10, 10, 10, 10, 1))[0]  # few long lines: they are big
        if kind == 0:  # binary junk, no newline in it
            junk = bytes(b for b in r.randbytes(r.randrange(1, 2048)) if b != 0x0A)
            t.invalid_utf8_lines += not is_utf8(junk)
            return junk
        if kind == 1:  # a run of NULs, as a crash leaves in a syslog file
            return b"\0" * r.randrange(1, 8192)
        if kind == 2:  # a counted reject whose text holds NULs
            return self.reject_line(b"\0\0 nul")
        bad = r.choice((b"\xff\xfe", b"\xc0\xaf", b"\x80", b"\xe2\x82", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"))
        if kind == 3:  # invalid UTF-8 inside a reply: read and counted all the same
            t.invalid_utf8_lines += 1
            return self.reject_line(bad)
        if kind == 4:  # invalid UTF-8 in a line no parser wants
            t.invalid_utf8_lines += 1
            return self.chatter_line().encode() + b" " + bad
        # A long line: a reply whose text runs past the limit, or junk.
        t.long_lines += 1
        if r.random() < 0.5:
            return self.chatter_line().encode() + b" " + b"J" * (self.max_line + r.randrange(1, 100_000))
        return self.long_reply_line(self.max_line + r.randrange(1, 100_000))

    def long_reply_line(self, size: int) -> bytes:
        """A bounce whose reply text runs to `size` bytes: its head, up to the
        limit, still holds the reply (its "(in reply to" is cut off)."""
        code = f"5{self.rng.randrange(0, 6)}{self.rng.randrange(0, 10)}"
        self.truth.deliveries["bounced"] += 1
        self.count_reply("outbound", "5xx", code, "unknown")
        head = (f"{self.prefix('smtp')}{self.qid()}: to=<a@b.example>, relay={self.host()}[{self.ip()}]:25, "
                f"delay=1, delays=0/0/0/1, dsn=5.0.0, status=bounced (host {self.host()}[{self.ip()}] said: "
                f"{code} 5.7.1 ").encode()
        return head + b"A" * max(0, size - len(head) - 40) + b" (in reply to RCPT TO command))"

    def line(self) -> bytes:
        roll = self.rng.random()
        if roll < 0.3:
            return self.status_line().encode()
        if roll < 0.4:
            return self.mx_said_line().encode()
        if roll < 0.75:
            return self.reject_line()
        if roll < 0.97:
            return self.chatter_line().encode()
        return self.junk_line()


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def generate(out_path: str, lines: int, seed: int = 1, max_line: int = DEFAULT_MAX_LINE,
             huge_line_bytes: int = HUGE_LINE_BYTES) -> Truth:
    """Write `lines` lines (one of them `huge_line_bytes` long, in the middle);
    return what the exporter must count in them. Streams: memory stays flat."""
    rng = random.Random(seed)
    truth = Truth(lines=lines)
    log = HostileLog(rng, truth, max_line)
    batch: list[bytes] = []
    with open(out_path, "wb") as out:
        for i in range(lines):
            if i == lines // 2:
                truth.long_lines += 1
                batch.append(log.long_reply_line(huge_line_bytes))
            else:
                batch.append(log.line())
            if len(batch) >= 4096:
                out.write(b"\n".join(batch) + b"\n")
                batch.clear()
        if batch:
            out.write(b"\n".join(batch) + b"\n")
    return truth


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write a seeded hostile Postfix log and print its expected counts.")
    p.add_argument("out", metavar="OUT", help="file to write (overwritten)")
    p.add_argument("--lines", type=int, default=150_000, help="lines to write (default 150,000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--truth", metavar="FILE", help="also write the expected counts as JSON here")
    args = p.parse_args(argv)
    if args.lines < 1:
        p.error("--lines must be >= 1")
    t0 = time.perf_counter()
    truth = generate(args.out, args.lines, args.seed)
    summary = json.dumps(truth.to_json(), indent=1)
    if args.truth:
        Path(args.truth).write_text(summary + "\n")
    print(f"{args.out}: {args.lines:,} lines in {time.perf_counter() - t0:.1f} s\n{summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

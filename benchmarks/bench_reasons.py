#!/usr/bin/env python3
"""Cost of naming a reply's reason (exporter.reasons), in microseconds per call.

The mix is the replies of a seeded, realistic Postfix log (postfix_log_gen.py:
smtpd rejects, postscreen, remote deferrals and bounces, sent mail), read the
way a parser reads them, plus long flattened multi-line replies in the shape
of Gmail's. Prints µs per call for all replies, for failed replies (4xx/5xx)
by text length, and for the long replies. The target is well under 2 µs per
call for typical 60-200 character texts; figures are printed, not asserted.

    python3 benchmarks/bench_reasons.py
    python3 benchmarks/bench_reasons.py --lines 400000 --repeat 5

Each pass starts with new rules, hence an empty reply cache, as the exporter
does; the figure in parentheses is the cost without the cache.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
import postfix_log_gen  # noqa: E402 - a sibling module, stdlib only

from exporter.reasons import ReasonRules  # noqa: E402
from exporter.replies import split_reply  # noqa: E402

# Where a Postfix line carries a reply: after "said: " (remote) or after the
# client part of a reject (ours). The tail Postfix adds is not reply text.
_REPLY = re.compile(r"(?:said|refused to talk to me|reject: [A-Z-]+ from \S+?(?::\d+)?): (.*)|status=sent \((.*)")
_TAIL = re.compile(r" \(in reply to [^)]*\)\)?$|; from=<.*$|\)$")

# Gmail-style flattened multi-line replies: several hundred characters each.
_LONG = (
    "550-5.7.26 This mail is unauthenticated, which poses a security risk to the 550-5.7.26 sender and "
    "Gmail users, and has been blocked. The sender must 550-5.7.26 authenticate with at least one of SPF "
    "or DKIM. For this message, 550-5.7.26 DKIM checks did not pass and SPF check for [example.com] did "
    "not 550-5.7.26 pass with ip: [192.0.2.{n}]. To best protect our users from spam, the 550-5.7.26 "
    "message has been blocked. Please visit 550-5.7.26 https://support.google.com/mail/answer/81126#"
    "authentication for more 550 5.7.26 information. {n}a1b2c3d4e5f6si{n}.{n} - gsmtp",
    "421-4.7.0 [192.0.2.{n}      15] Our system has detected an unusual rate of 421-4.7.0 unsolicited "
    "mail originating from your IP address. To protect our 421-4.7.0 users from spam, mail sent from your "
    "IP address has been temporarily 421-4.7.0 rate limited. Please visit 421-4.7.0 https://support.google"
    ".com/mail/?p=UnsolicitedRateLimitError to 421-4.7.0 review our Bulk Email Senders Guidelines. "
    "{n}f9e8d7c6b5si{n}.{n} - gsmtp",
)


def replies_from_log(path: Path) -> list[tuple[str, str, str]]:
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = _REPLY.search(line)
            if m is None:
                continue
            text = _TAIL.sub("", (m.group(1) or m.group(2)).rstrip("\n"))
            parts = split_reply(text)
            if parts is not None:
                out.append((parts[0], parts[1], text))
    return out


def per_call_us(replies: list[tuple[str, str, str]], repeat: int, cached: bool = True) -> float:
    """Best of `repeat` passes, each with new rules, so a pass starts with an
    empty cache like the exporter does; cached=False times the work itself."""
    best = float("inf")
    for _ in range(repeat):
        rules = ReasonRules.default()
        reason = rules.reason if cached else rules._uncached
        start = time.perf_counter()
        for code, enhanced, text in replies:
            reason(code, enhanced, text)
        best = min(best, time.perf_counter() - start)
    return best / len(replies) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=200_000, help="lines of generated log (default 200000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="passes per figure; the best is printed")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "mail.log"
        postfix_log_gen.generate(str(log), args.lines, args.seed)
        replies = replies_from_log(log)
    failed = [r for r in replies if (r[0] or r[1])[:1] in ("4", "5")]
    long = [(t[:3], t[4:10].rstrip(), t.format(n=n)) for n in range(200) for t in _LONG]

    print(f"replies: {len(replies)} from {args.lines} log lines, {len(failed)} of them 4xx/5xx, "
          f"{len(set(failed))} distinct")
    print(f"{'':<30}µs/call  (without the cache)")
    rows = [("all replies", replies), ("4xx/5xx replies", failed)]
    for low, high in ((0, 60), (60, 120), (120, 200), (200, 10_000)):
        bucket = [r for r in failed if low <= len(r[2]) < high]
        if bucket:
            rows.append((f"  {low:>3}-{high - 1:<4} chars ({len(bucket)})", bucket))
    rows.append((f"long multi-line ({len(long)})", long))
    for name, sample in rows:
        print(f"{name:<30}{per_call_us(sample, args.repeat):6.2f}  "
              f"({per_call_us(sample, args.repeat, cached=False):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Daemon benchmark: freshness (write -> visible on /metrics) and CPU cost.

Starts the real exporter on 127.0.0.1 following a fresh log, then prints:
  * freshness: for N single lines, the time from the write to the first
    scrape of /metrics that counts it (p50, p95, max); target p95 < 250 ms;
  * idle CPU: share of one core while the log is quiet; target < 1 %;
  * CPU at 1,000 lines/s of a realistic Postfix mix; target < 5 %.
Figures are printed, not asserted.

    python3 benchmarks/bench_daemon.py [--samples 200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")

REJECT = (
    "Nov  3 17:44:15 mx postfix/smtpd[{n}]: NOQUEUE: reject: RCPT from c.example[192.0.2.1]: "
    "550 5.1.1 <u{n}@example.net>: Recipient address rejected: User unknown in local recipient table; "
    "from=<a@example.org> to=<u{n}@example.net> proto=ESMTP helo=<c.example>\n"
)
# A second-by-second mix like a busy relay's: most lines carry no reply.
MIX = [
    "Nov  3 17:44:15 mx postfix/smtpd[{n}]: connect from c{n}.example[192.0.2.{o}]\n",
    "Nov  3 17:44:15 mx postfix/smtpd[{n}]: 1A2B{n:06X}: client=c{n}.example[192.0.2.{o}]\n",
    "Nov  3 17:44:15 mx postfix/cleanup[{n}]: 1A2B{n:06X}: message-id=<{n}@example.org>\n",
    "Nov  3 17:44:15 mx postfix/qmgr[99]: 1A2B{n:06X}: from=<a@example.org>, size=2{n:03d}, nrcpt=1 (queue active)\n",
    "Nov  3 17:44:15 mx postfix/smtp[{n}]: 1A2B{n:06X}: to=<b{n}@example.com>, relay=mx.example.com[203.0.113.5]:25, "
    "delay=0.4, delays=0.01/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 OK {n} - gsmtp)\n",
    "Nov  3 17:44:15 mx postfix/qmgr[99]: 1A2B{n:06X}: removed\n",
    REJECT,
    "Nov  3 17:44:15 mx postfix/smtpd[{n}]: disconnect from c{n}.example[192.0.2.{o}] "
    "ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5\n",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape_rejects(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("smtp_replies_total{") and 'direction="inbound"' in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    log = tmp / "mail.log"
    log.touch()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--web.listen-address", f"127.0.0.1:{port}", str(log)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                scrape_rejects(port)
                break
            except OSError:
                time.sleep(0.05)
        else:
            print("exporter did not start", file=sys.stderr)
            return 1

        # Freshness: one line at a time, scrape until it shows.
        latencies = []
        with open(log, "a", buffering=1) as f:
            count = scrape_rejects(port)
            for n in range(args.samples):
                t0 = time.perf_counter()
                f.write(REJECT.format(n=n))
                f.flush()
                while scrape_rejects(port) <= count:
                    time.sleep(0.002)
                latencies.append(time.perf_counter() - t0)
                count += 1
                time.sleep(0.02)
        p50, p95 = percentile(latencies, 0.50), percentile(latencies, 0.95)
        print(f"freshness over {len(latencies)} lines: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms  (target p95 < 250 ms: {'PASS' if p95 < 0.25 else 'MISS'})")

        # Idle: the log is quiet.
        time.sleep(1.0)
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(args.seconds)
        idle = (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0) * 100
        print(f"idle CPU over {args.seconds:.0f} s: {idle:.2f} % of one core  "
              f"(target < 1 %: {'PASS' if idle < 1 else 'MISS'})")

        # 1,000 lines/s, written line by line as syslog does.
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        n = 0
        with open(log, "a", buffering=1) as f:
            while time.monotonic() - t0 < args.seconds:
                due = int((time.monotonic() - t0) * 1000)
                while n < due:
                    f.write(MIX[n % len(MIX)].format(n=n, o=n % 250))
                    n += 1
                time.sleep(0.001)
        elapsed = time.monotonic() - t0
        busy = (cpu_seconds(proc.pid) - c0) / elapsed * 100
        print(f"CPU at {n / elapsed:.0f} lines/s over {elapsed:.0f} s: {busy:.2f} % of one core  "
              f"(target < 5 %: {'PASS' if busy < 5 else 'MISS'})")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

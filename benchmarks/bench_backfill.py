#!/usr/bin/env python3
"""`smtp-reply-exporter backfill` time, peak memory and output size on a long log.

Generates a seeded Postfix log (benchmarks/postfix_log_gen.py; a busy
server: about 20 lines a second, so 30,000,000 lines span about 17 days)
and runs the backfill on it at the default 1m step, then on a fifth of it,
so that the two peaks show whether memory grows with the history:

    python3 benchmarks/bench_backfill.py                      # 3,000,000 lines
    python3 benchmarks/bench_backfill.py --lines 30000000     # the full month-scale run
    python3 benchmarks/bench_backfill.py --promtool           # also time promtool on the output

Prints wall time, lines per second, peak RSS (ru_maxrss of the process),
samples and series written and the output size. Figures are printed, not
judged; the exit status is non-zero only when a run failed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time

# Sibling modules: a script's own directory is first on sys.path.
import bench_once
import postfix_log_gen

REPO = bench_once.REPO
MB = 1024 * 1024


def backfill(log: str, out: str, workdir: str, name: str, timeout: float) -> bench_once.Run:
    # The generator writes local time at +01:00 (classic stamps) beside RFC 3339 ones: Europe/Berlin in winter.
    cmd = [sys.executable, "-m", "exporter", "backfill", "--timezone", "Europe/Berlin",
           "--label", "job=smtp-reply-exporter", "--label", "instance=bench:10925", "--output", out, log]
    return bench_once.measure(name, cmd, str(REPO), workdir, 0, timeout)


def report(run: bench_once.Run, lines: int, out: str) -> None:
    if not run.ok:
        print(f"  FAILED ({'timed out' if run.timed_out else run.returncode}): {run.stderr_tail[-2000:]}")
        return
    written = re.search(r"wrote ([\d,]+) samples of ([\d,]+) series \(([\d,]+) changes\)", run.stderr_tail)
    print(f"  time           : {run.wall:.1f} s wall, {run.cpu:.1f} s CPU, {lines / run.wall:,.0f} lines/s")
    print(f"  memory         : peak RSS {run.maxrss_kb / 1024:.1f} MB")
    print(f"  output         : {os.path.getsize(out) / MB:,.1f} MB"
          + (f", {written[1]} samples of {written[2]} series ({written[3]} changes spilled)" if written else ""))
    for line in run.stderr_tail.splitlines():
        if "warning:" in line:
            print(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=3_000_000, help="lines of log (default 3,000,000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--promtool", action="store_true", help="also time promtool create-blocks-from openmetrics")
    p.add_argument("--tmpdir", help="where the log and outputs go (default: a new temporary directory)")
    p.add_argument("--timeout", type=float, default=7200)
    args = p.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="bench-backfill-", dir=args.tmpdir)
    try:
        ok = True
        small = max(1, args.lines // 5)
        for lines in (args.lines, small):
            log = os.path.join(workdir, f"mail-{lines}.log")
            t0 = time.perf_counter()
            stats = postfix_log_gen.generate(log, lines, args.seed, 0.12)
            span_days = _span_days(log)
            print(f"{lines:,} lines ({stats['bytes'] / MB:,.0f} MB, {span_days:.1f} days of log), "
                  f"generated in {time.perf_counter() - t0:.0f} s")
            out = os.path.join(workdir, f"history-{lines}.om")
            run = backfill(log, out, workdir, f"backfill-{lines}", args.timeout)
            report(run, lines, out)
            ok &= run.ok
            if run.ok and args.promtool and lines == args.lines and shutil.which("promtool"):
                promtool = ["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", out,
                            os.path.join(workdir, "data")]
                blocks = bench_once.measure("promtool", promtool, workdir, workdir, 0, args.timeout)
                print(f"  promtool       : {blocks.wall:.1f} s wall, peak RSS {blocks.maxrss_kb / 1024:,.0f} MB"
                      + ("" if blocks.ok else " FAILED"))
            os.unlink(log)
            if os.path.exists(out):
                os.unlink(out)
        return 0 if ok else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _span_days(log: str) -> float:
    """Days between the first and last line (classic stamps: whole seconds, the generator's year)."""
    from datetime import timezone

    from exporter.timestamps import LineClock  # the exporter's own reader

    clock = LineClock(timezone.utc, os.stat(log).st_mtime)
    with open(log, "rb") as f:
        first = clock.time_us(f.readline())
        f.seek(max(0, os.path.getsize(log) - 4096))
        last_line = f.read().splitlines()[-1]
    last = clock.time_us(last_line)  # the same clock: the year carries on from the first line
    return ((last or 0) - (first or 0)) / 86400e6


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())

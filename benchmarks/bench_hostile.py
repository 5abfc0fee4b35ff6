#!/usr/bin/env python3
"""Memory and speed of the exporter on a hostile log, `--once` and daemon.

Writes the hostile Postfix log of hostile_log_gen.py (random valid and
invalid codes, junk enhanced codes, hostile host names, a 4 MB line, long
lines, NULs, invalid UTF-8, binary junk; by default 1,000,000 lines), then

* runs `python3 -m exporter --once FILE` and
* starts `python3 -m exporter --from-beginning --web.listen-address
  127.0.0.1:PORT FILE` and scrapes /metrics until every line is read,

and prints for each: peak memory, lines per second, the number of
smtp_replies_total series and the label overflow count, and whether the
totals by direction and class match the generator's. Target: peak memory
under 150 MB. Figures are printed, not asserted: the exit status is 0 even
on a MISS, 1 when a run failed or a total was wrong.

    python3 benchmarks/bench_hostile.py                # 1M lines
    python3 benchmarks/bench_hostile.py --lines 300000 --keep
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# Sibling modules: a script's own directory is first on sys.path.
import hostile_log_gen  # stdlib only
from bench_daemon import free_port
from bench_once import MB, TreeSampler, measure

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

TARGET_MEMORY_MB = 150.0


@dataclass
class Result:
    name: str
    seconds: float
    peak_mb: float
    memory_detail: str  # where the peak figure comes from
    exposition: str


# One sample of a text exposition: name, labels, value.
_SAMPLE = re.compile(r'^(\w+)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def summary(exposition: str) -> tuple[int, float, Counter, float]:
    """(smtp_replies_total series, label overflow, replies by (direction, class), lines read)."""
    series = 0
    overflow = lines = 0.0
    by_class: Counter = Counter()
    for line in exposition.splitlines():
        m = _SAMPLE.match(line)
        if not m:
            continue
        name, value = m.group(1), float(m.group(3))
        if name == "smtp_replies_total":
            labels = dict(_LABEL.findall(m.group(2)))
            series += 1
            by_class[labels["direction"], labels["class"]] += int(value)
        elif name == "smtp_exporter_label_overflow_total":
            overflow += value
        elif name == "smtp_exporter_lines_total":
            lines += value
    return series, overflow, by_class, lines


def run_once(log: str, workdir: str, timeout: float) -> Result | None:
    run = measure("once", [sys.executable, "-m", "exporter", "--once", log], str(REPO), workdir, 25.0, timeout)
    if not run.ok:
        print(f"  FAILED: exit status {run.returncode}{' (timed out)' if run.timed_out else ''}\n{run.stderr_tail}")
        return None
    detail = (f"largest process {run.maxrss_kb / 1024:.1f} MB, {run.max_procs} processes' "
              f"PSS {run.tree_pss_kb / 1024:.1f} MB")
    return Result("--once", run.wall, run.peak_mb(), detail, Path(run.stdout_path).read_text())


def vm_hwm_kb(pid: int) -> int:
    """The process's own peak RSS so far (VmHWM), exact."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run_daemon(log: str, lines: int, workdir: str, timeout: float) -> Result | None:
    port = free_port()
    err_path = os.path.join(workdir, "daemon.err")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--from-beginning", "--web.listen-address", f"127.0.0.1:{port}", log],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
        )
    sampler = TreeSampler(proc.pid, 0.025)
    sampler.start()
    t0 = time.perf_counter()
    exposition, read, hwm = "", 0.0, 0
    try:
        while time.perf_counter() - t0 < timeout and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                    exposition = r.read().decode()
            except OSError:
                time.sleep(0.05)  # not listening yet
                continue
            read = summary(exposition)[3]
            if read >= lines:
                break
            time.sleep(0.1)
        seconds = time.perf_counter() - t0
        if proc.poll() is None:
            hwm = vm_hwm_kb(proc.pid)
    finally:
        sampler.stop_event.set()
        sampler.join()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    if read < lines or code != 0:
        tail = Path(err_path).read_text(errors="replace")[-2000:]
        print(f"  FAILED: read {read:,.0f} of {lines:,} lines; exit status {code}\n{tail}")
        return None
    # VmHWM is exact for the one daemon process; the sampled PSS is the
    # figure bench_once judges too. The larger counts.
    detail = f"VmHWM {hwm / 1024:.1f} MB, PSS {sampler.peak_pss / 1024:.1f} MB"
    return Result("daemon", seconds, max(hwm, sampler.peak_pss) / 1024, detail, exposition)


def report(result: Result, lines: int, truth: hostile_log_gen.Truth) -> bool:
    series, overflow, by_class, read = summary(result.exposition)
    exact = dict(by_class) == dict(truth.replies) and read == lines
    verdict = "PASS" if result.peak_mb < TARGET_MEMORY_MB else "MISS"
    print(f"{result.name:<8}: {lines / result.seconds:>10,.0f} lines/s  {result.seconds:6.2f} s  "
          f"peak {result.peak_mb:6.1f} MB (target < {TARGET_MEMORY_MB:.0f} MB: {verdict})  "
          f"series {series:,}  overflow {overflow:,.0f}  totals {'exact' if exact else 'WRONG'}\n"
          f"{'':10}memory: {result.memory_detail}")
    return exact


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Peak memory and lines/s of the exporter on a hostile log.")
    p.add_argument("--lines", type=int, default=1_000_000, help="lines to generate (default 1,000,000)")
    p.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before a run counts as failed")
    p.add_argument("--tmpdir", metavar="DIR", help="where to put the log (default: system temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = p.parse_args(argv)
    if args.lines < 1:
        p.error("--lines must be >= 1")
    workdir = tempfile.mkdtemp(prefix="bench-hostile-", dir=args.tmpdir)
    try:
        print(f"== smtp-reply-exporter on a hostile log ({os.cpu_count()} CPUs, Python {sys.version.split()[0]}) ==")
        log = os.path.join(workdir, "hostile.log")
        t0 = time.perf_counter()
        truth = hostile_log_gen.generate(log, args.lines, args.seed)
        print(f"log: {args.lines:,} lines, {os.path.getsize(log) / MB:.1f} MiB, seed {args.seed}, "
              f"written in {time.perf_counter() - t0:.1f} s; at least {len(truth.label_floor):,} distinct "
              f"label sets, {truth.long_lines:,} lines over 64 KiB, {truth.invalid_utf8_lines:,} not UTF-8")
        results = [run_once(log, workdir, args.timeout), run_daemon(log, args.lines, workdir, args.timeout)]
        exact = [report(r, args.lines, truth) for r in results if r is not None]
        return 0 if len(exact) == len(results) and all(exact) else 1
    finally:
        if args.keep:
            print(f"(kept {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""`--once` throughput and memory benchmark, with mtail as the yardstick.

Replays a Postfix log (by default 1,000,000 generated lines) through
`python3 -m exporter --once FILE` and prints wall time, lines per second, CPU
time and peak memory. When `mtail` is on PATH and its Postfix example program
is installed (Debian: /usr/share/doc/mtail/examples/postfix.mtail[.gz]), it
runs `mtail --one_shot` on the same file in the same run and prints the ratio.

Targets: hold at least 12x mtail's lines per second (far beyond what one
mail server writes: exact counts matter more than more speed), and peak
memory under 60 MB at any log size. Figures are printed, not asserted: the
exit status is 0 even on a MISS, and non-zero only when a run failed.

    python3 benchmarks/bench_once.py                   # 1M lines, exporter + mtail
    python3 benchmarks/bench_once.py --memory-scaling  # also 200k vs 1M peak memory
    python3 benchmarks/bench_once.py --log /var/log/mail.log --repeat 3
    python3 benchmarks/bench_once.py --floor           # also: how fast it could be at best

Memory is measured two ways: the exact peak RSS of the largest single process
(ru_maxrss from wait4, which covers reaped worker processes too), and the peak
of the whole process tree, sampled from /proc every few milliseconds (sum of
RSS, which counts pages shared by forked workers once per process, and sum of
PSS, which shares them out). The memory target is judged on the larger of the
exact single-process peak and the sampled tree PSS.
"""

from __future__ import annotations

import argparse
import compileall
import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# Sibling modules: a script's own directory is first on sys.path.
import once_floor
import postfix_log_gen  # stdlib only

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

TARGET_RATIO = 12.0
TARGET_MEMORY_MB = 60.0
MTAIL_PROG_CANDIDATES = (
    "/usr/share/doc/mtail/examples/postfix.mtail",
    "/usr/share/doc/mtail/examples/postfix.mtail.gz",
)
MB = 1024 * 1024


# --- measuring one child -------------------------------------------------------

@dataclass
class Run:
    name: str
    cmd: list[str]
    returncode: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    maxrss_kb: int = 0  # largest single process (ru_maxrss)
    tree_rss_kb: int = 0  # sampled peak of the sum over the process tree
    tree_pss_kb: int = 0
    max_procs: int = 1
    samples: int = 0
    stdout_path: str = ""
    stderr_tail: str = ""
    timed_out: bool = False
    sampled: bool = False  # its memory was sampled, which slows it: not a timing run

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def peak_mb(self) -> float:
        """The figure the memory target is judged on."""
        return max(self.maxrss_kb, self.tree_pss_kb) / 1024


def _descendants(root: int) -> list[int]:
    """root and every process below it (one scan of /proc/*/stat)."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        parent_of[int(entry)] = int(fields[1])
    tree = [root]
    found = {root}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parent_of.items():
            if ppid in found and pid not in found:
                found.add(pid)
                tree.append(pid)
                changed = True
    return tree


def _rss_pss_kb(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith(b"Pss:"):
                    pss = int(line.split()[1])
                    break
    except (OSError, ValueError):
        pass
    return rss, pss


class TreeSampler(threading.Thread):
    """Polls the memory of a process tree until stopped; keeps the peaks."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.stop_event = threading.Event()
        self.peak_rss = self.peak_pss = self.samples = 0
        self.max_procs = 1

    def run(self) -> None:
        tree = [self.pid]
        tick = 0
        while not self.stop_event.is_set():
            if tick % 4 == 0:  # finding new workers costs a /proc scan: do it less often
                tree = _descendants(self.pid)
                self.max_procs = max(self.max_procs, len(tree))
            tick += 1
            rss = pss = 0
            for pid in tree:
                r, p = _rss_pss_kb(pid)
                rss += r
                pss += p
            if rss:
                self.peak_rss = max(self.peak_rss, rss)
                self.peak_pss = max(self.peak_pss, pss)
                self.samples += 1
            self.stop_event.wait(self.interval)


def measure(name: str, cmd: list[str], cwd: str, workdir: str, sample_ms: float,
            timeout: float, env: dict[str, str] | None = None) -> Run:
    """Run cmd once; wall clock, CPU, and peak memory of the child and its tree."""
    run = Run(name, cmd, sampled=sample_ms > 0)
    tag = re.sub(r"\W+", "-", name)
    run.stdout_path = os.path.join(workdir, f"{tag}.out")
    err_path = os.path.join(workdir, f"{tag}.err")
    with open(run.stdout_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        try:
            # Own session: on a timeout the child's whole group (its workers)
            # is stopped by the child's pid, nothing else.
            proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    env=env, start_new_session=True)
        except OSError as e:
            run.returncode = 127
            run.stderr_tail = f"cannot start {cmd[0]}: {e}"
            return run
        sampler = TreeSampler(proc.pid, sample_ms / 1000) if sample_ms > 0 else None
        if sampler:
            sampler.start()
        timer = threading.Timer(timeout, _stop_group, (proc.pid, run))
        timer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            _stop_group(proc.pid, run)
            os.waitpid(proc.pid, 0)
            raise
        finally:
            run.wall = time.perf_counter() - t0
            timer.cancel()
            if sampler:
                sampler.stop_event.set()
                sampler.join()
        proc.returncode = run.returncode = os.waitstatus_to_exitcode(status)
    run.cpu = usage.ru_utime + usage.ru_stime
    run.maxrss_kb = usage.ru_maxrss
    if sampler:
        run.tree_rss_kb, run.tree_pss_kb = sampler.peak_rss, sampler.peak_pss
        run.max_procs, run.samples = sampler.max_procs, sampler.samples
    with open(err_path, "rb") as f:
        f.seek(max(0, os.path.getsize(err_path) - 2000))
        run.stderr_tail = f.read().decode("utf-8", "replace").strip()
    return run


def _stop_group(pid: int, run: Run) -> None:
    run.timed_out = True
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def best_of(runs: list[Run]) -> Run:
    """Fastest timing run for the time figures; highest peaks of all for the memory figures."""
    ok = [r for r in runs if r.ok] or runs
    best = min([r for r in ok if not r.sampled] or ok, key=lambda r: r.wall)
    best.maxrss_kb = max(r.maxrss_kb for r in ok)
    best.tree_rss_kb = max(r.tree_rss_kb for r in ok)
    best.tree_pss_kb = max(r.tree_pss_kb for r in ok)
    best.max_procs = max(r.max_procs for r in ok)
    best.samples = max(r.samples for r in ok)
    return best


# --- the log -------------------------------------------------------------------

def count_lines(path: str) -> tuple[int, int]:
    """(lines, bytes); reading it also puts the file in the page cache for both tools."""
    lines = size = 0
    last = b"\n"
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            lines += block.count(b"\n")
            size += len(block)
            last = block[-1:]
    if last != b"\n":
        lines += 1
    return lines, size


def make_log(path: str, lines: int, seed: int, rfc3339_share: float, indent: str = "  ") -> None:
    t0 = time.perf_counter()
    stats = postfix_log_gen.generate(path, lines, seed, rfc3339_share)
    print(f"{indent}generated {stats['lines']:,} lines ({stats['bytes'] / 1e6:.1f} MB, "
          f"{100 * stats['coded'] / max(1, stats['lines']):.0f}% with a reply code or delivery status, "
          f"seed {seed}) in {time.perf_counter() - t0:.1f} s")


# --- the exporter ----------------------------------------------------------------

def exporter_cmd(args: argparse.Namespace, log: str) -> list[str] | None:
    if args.installed:
        exe = shutil.which("smtp-reply-exporter")
        if exe is None:
            return None
        cmd = [exe]
    else:
        cmd = [sys.executable, "-m", "exporter"]
    cmd += ["--once", log]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    return cmd


def exporter_line_results(prom_path: str) -> dict[str, float]:
    """smtp_exporter_lines_total by result, from the exporter's --once output."""
    results: dict[str, float] = {}
    pattern = re.compile(r'^smtp_exporter_lines_total\{.*?result="(\w+)".*?\} (\S+)$')
    try:
        with open(prom_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = pattern.match(line)
                if m:
                    results[m.group(1)] = results.get(m.group(1), 0.0) + float(m.group(2))
    except OSError:
        pass
    return results


def run_exporter(args: argparse.Namespace, log: str, lines: int, workdir: str, label: str) -> Run | None:
    cmd = exporter_cmd(args, log)
    if cmd is None:
        print("  FAILED: --installed given but smtp-reply-exporter is not on PATH")
        return None
    cwd = workdir if args.installed else str(REPO)
    if not args.installed:
        # As pip does on install: otherwise, where PYTHONDONTWRITEBYTECODE is
        # set, every run would compile the package's sources first.
        compileall.compile_dir(str(REPO / "exporter"), quiet=1)
    runs = []
    for i in range(args.repeat):
        # Timed without the memory sampler, whose reads of /proc take CPU
        # from the workers; one more run samples the memory of the tree.
        run = measure(f"exporter-{label}-{i}", cmd, cwd, workdir, 0, args.timeout)
        runs.append(run)
        if not run.ok:
            break
    if runs[-1].ok and args.sample_ms > 0:
        runs.append(measure(f"exporter-{label}-memory", cmd, cwd, workdir, args.sample_ms, args.timeout))
    run = best_of(runs)
    if not run.ok:
        why = "timed out" if run.timed_out else f"exit status {run.returncode}"
        print(f"  FAILED: exporter run {why}: {' '.join(cmd)}")
        for line in run.stderr_tail.splitlines()[-12:]:
            print(f"    | {line}")
        print("  (does the command above work by hand, from the repo root?)")
        return run
    print_run(run, lines)
    seen = exporter_line_results(run.stdout_path)
    if seen:
        total = sum(seen.values())
        parts = ", ".join(f"{k} {int(v):,}" for k, v in sorted(seen.items()))
        note = "" if int(total) == lines else f"  <- the log has {lines:,} lines"
        print(f"  exporter read {int(total):,} lines: {parts}{note}")
    else:
        print("  note: no smtp_exporter_lines_total in the exporter's output; line count not cross-checked")
    return run


def print_run(run: Run, lines: int) -> None:
    rate = lines / run.wall if run.wall > 0 else 0.0
    mem = f"peak RSS {run.maxrss_kb / 1024:.1f} MB (largest process)"
    if run.samples:
        mem += (f"; process tree (sampled, up to {run.max_procs} processes): "
                f"RSS {run.tree_rss_kb / 1024:.1f} MB, PSS {run.tree_pss_kb / 1024:.1f} MB")
    print(f"  {lines:,} lines in {run.wall:.2f} s = {rate:,.0f} lines/s; CPU {run.cpu:.2f} s "
          f"({lines / run.cpu if run.cpu else 0:,.0f} lines per CPU second)")
    print(f"  {mem}")


# --- mtail -----------------------------------------------------------------------

def find_mtail_prog(explicit: str | None) -> str | None:
    if explicit:
        return explicit if os.path.exists(explicit) else None
    for candidate in MTAIL_PROG_CANDIDATES:
        if os.path.exists(candidate):
            return candidate
    return None


def stage_mtail_progs(prog: str, workdir: str) -> str:
    """A temp directory holding the postfix program (decompressed if .gz)."""
    progs = os.path.join(workdir, "mtail-progs")
    os.makedirs(progs, exist_ok=True)
    if os.path.isdir(prog):
        sources = [os.path.join(prog, n) for n in os.listdir(prog) if n.endswith((".mtail", ".mtail.gz"))]
    else:
        sources = [prog]
    for src in sources:
        name = os.path.basename(src)
        if name.endswith(".gz"):
            with gzip.open(src, "rb") as fin, open(os.path.join(progs, name[:-3]), "wb") as fout:
                shutil.copyfileobj(fin, fout)
        else:
            shutil.copyfile(src, os.path.join(progs, name))
    return progs


def count_mtail_runtime_errors(log_dir: str) -> int:
    """Lines mtail's program failed on (it logs one error per such log line)."""
    n = 0
    for name in os.listdir(log_dir):
        path = os.path.join(log_dir, name)
        if not name.startswith("mtail.") or os.path.islink(path) or ".INFO." not in name:
            continue
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(b"E") and b"Error occurred at instruction" in line:
                    n += 1
    return n


def run_mtail(args: argparse.Namespace, mtail: str, prog: str, log: str, lines: int, workdir: str) -> Run:
    progs = stage_mtail_progs(prog, workdir)
    log_dir = os.path.join(workdir, "mtail-logs")
    runs = []
    for i in range(args.repeat):
        shutil.rmtree(log_dir, ignore_errors=True)
        os.makedirs(log_dir)
        cmd = [mtail, "--one_shot", "--one_shot_format=prometheus", "--progs", progs, "--logs", log,
               "--log_dir", log_dir]
        # One process: its ru_maxrss is its exact peak, and no sampler slows it.
        run = measure(f"mtail-{i}", cmd, workdir, workdir, 0, args.timeout)
        runs.append(run)
        if not run.ok:
            break
    run = best_of(runs)
    if not run.ok:
        why = "timed out" if run.timed_out else f"exit status {run.returncode}"
        print(f"  FAILED: mtail run {why}: {' '.join(run.cmd)}")
        for line in run.stderr_tail.splitlines()[-12:]:
            print(f"    | {line}")
        return run
    print_run(run, lines)
    errors = count_mtail_runtime_errors(log_dir)
    if errors:
        print(f"  note: postfix.mtail raised a runtime error on {errors:,} lines and skipped them (its strptime "
              f"does not take RFC 3339 timestamps with fractions of a second); mtail wrote a log line for each. "
              f"For a log it reads whole: --rfc3339-share 0")
    return run


def mtail_version(mtail: str) -> str:
    try:
        out = subprocess.run([mtail, "--version"], check=False, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "version unknown"


# --- main ------------------------------------------------------------------------

def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s.replace("_", "")) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of line counts: {text!r}") from None
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError("line counts must be positive")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Time `smtp-reply-exporter --once` on a large Postfix log and compare with mtail.")
    p.add_argument("--lines", type=int, default=1_000_000, help="lines to generate (default 1,000,000)")
    p.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    p.add_argument("--rfc3339-share", type=float, default=0.12, metavar="F",
                   help="share of generated lines with RFC 3339 timestamps (default 0.12)")
    p.add_argument("--log", metavar="FILE", help="use this log instead of generating one")
    p.add_argument("--installed", action="store_true",
                   help="run the installed smtp-reply-exporter instead of python3 -m exporter from the repo")
    p.add_argument("--workers", type=int, help="pass --workers N to the exporter (default: its own default)")
    p.add_argument("--repeat", type=int, default=1, help="runs per tool; the fastest counts (default 1)")
    p.add_argument("--no-mtail", action="store_true", help="skip the mtail comparison")
    p.add_argument("--mtail", metavar="PATH", help="mtail binary (default: mtail on PATH)")
    p.add_argument("--mtail-prog", metavar="PATH",
                   help="mtail program file (.mtail or .mtail.gz) or directory "
                        "(default: the Debian example postfix.mtail)")
    p.add_argument("--floor", action="store_true",
                   help="also measure what --once could reach at best: start-up plus the scan with parsing "
                        "free (see once_floor.py)")
    p.add_argument("--memory-scaling", action="store_true",
                   help="also run the exporter on logs of --scaling-sizes lines and compare peak memory")
    p.add_argument("--scaling-sizes", type=parse_sizes, default=[200_000, 1_000_000], metavar="N,N",
                   help="line counts for --memory-scaling (default 200000,1000000)")
    p.add_argument("--sample-ms", type=float, default=25.0,
                   help="process-tree memory sampling interval; 0 turns sampling off (default 25)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before a run is stopped (default 900)")
    p.add_argument("--tmpdir", metavar="DIR", help="where to put generated logs (default: system temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the temp directory (logs, outputs)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.repeat < 1 or args.lines < 1:
        print("bench_once: --repeat and --lines must be >= 1", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="bench-once-", dir=args.tmpdir)
    try:
        return bench(args, workdir)
    finally:
        if args.keep:
            print(f"(kept {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def bench(args: argparse.Namespace, workdir: str) -> int:
    failed = False
    print(f"== smtp-reply-exporter --once benchmark ({os.cpu_count()} CPUs, Python {sys.version.split()[0]}) ==")
    if args.log:
        log = args.log
        if not os.path.isfile(log):
            print(f"bench_once: no such file: {log}", file=sys.stderr)
            return 1
        print(f"log: {log}")
    else:
        log = os.path.join(workdir, f"postfix-{args.lines}.log")
        print("log:")
        make_log(log, args.lines, args.seed, args.rfc3339_share)
    lines, size = count_lines(log)
    print(f"  {lines:,} lines, {size / 1e6:.1f} MB")

    print("\n-- exporter: " + ("smtp-reply-exporter" if args.installed else "python3 -m exporter")
          + " --once " + ("" if args.workers is None else f"--workers {args.workers} ") + "FILE")
    exp = run_exporter(args, log, lines, workdir, "main")
    if exp is None or not exp.ok:
        failed = True
        exp = None

    mt = None
    mtail_note = ""
    if args.no_mtail:
        mtail_note = "skipped (--no-mtail)"
    else:
        mtail = args.mtail or shutil.which("mtail")
        prog = find_mtail_prog(args.mtail_prog)
        if not mtail:
            mtail_note = "not installed (no mtail on PATH): no comparison"
        elif not prog:
            mtail_note = ("postfix.mtail not found ("
                          + (args.mtail_prog or " or ".join(MTAIL_PROG_CANDIDATES)) + "): no comparison")
        else:
            print(f"\n-- mtail: {mtail_version(mtail)}")
            print(f"  program: {prog} (staged in a temp dir)")
            mt = run_mtail(args, mtail, prog, log, lines, workdir)
            if not mt.ok:
                failed = True
                mt = None
                mtail_note = "run failed"
        if mtail_note and mt is None and mtail_note != "run failed":
            print(f"\n-- mtail: {mtail_note}")

    scaling: list[tuple[int, Run | None]] = []
    if args.memory_scaling:
        print("\n-- memory scaling: exporter peak memory by log size")
        for n in args.scaling_sizes:
            if not args.log and n == args.lines and exp is not None:
                print(f"  {n:,} lines: the main run above")
                scaling.append((n, exp))
                continue
            path = os.path.join(workdir, f"postfix-{n}.log")
            print(f"  {n:,} lines:")
            make_log(path, n, args.seed, args.rfc3339_share, "    ")
            n_lines, _ = count_lines(path)
            run = run_exporter(args, path, n_lines, workdir, f"scale-{n}")
            ok = run is not None and run.ok
            failed |= not ok
            scaling.append((n, run if ok else None))
            if path != log:
                os.unlink(path)

    if args.floor:
        print("\n-- floor: the work every reading of the log must do (once_floor.py)")
        floor = once_floor.measure(log, args.workers or os.cpu_count() or 1)
        once_floor.report(floor, lines, lines / mt.wall if mt else None, TARGET_RATIO)

    # --- summary ---
    print("\n== summary ==")
    origin = "" if args.log else f" (generated, seed {args.seed})"
    print(f"log            : {lines:,} lines, {size / 1e6:.1f} MB{origin}")
    if exp:
        print(f"exporter --once: {lines / exp.wall:>12,.0f} lines/s  {exp.wall:7.2f} s  CPU {exp.cpu:6.2f} s  "
              f"peak {exp.peak_mb():.1f} MB")
    else:
        print("exporter --once: FAILED to run")
    if mt:
        print(f"mtail one-shot : {lines / mt.wall:>12,.0f} lines/s  {mt.wall:7.2f} s  CPU {mt.cpu:6.2f} s  "
              f"peak {mt.peak_mb():.1f} MB")
    else:
        print(f"mtail one-shot : {mtail_note}")
    if exp and mt:
        ratio = mt.wall / exp.wall
        cpu_ratio = mt.cpu / exp.cpu if exp.cpu else float("inf")
        verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
        print(f"speed          : {ratio:.1f}x mtail's lines/s (target >= {TARGET_RATIO:.0f}x: {verdict}); "
              f"{cpu_ratio:.1f}x per CPU second")
    if exp:
        peaks = [(lines, exp)] + [(n, r) for n, r in scaling if r is not None and r is not exp]
        worst = max(r.peak_mb() for _n, r in peaks)
        verdict = "PASS" if worst < TARGET_MEMORY_MB else "MISS"
        detail = ", ".join(f"{n:,} lines: {r.peak_mb():.1f} MB" for n, r in sorted(peaks, key=lambda x: x[0]))
        print(f"memory         : peak {worst:.1f} MB (target < {TARGET_MEMORY_MB:.0f} MB: {verdict}) [{detail}]")
        good = sorted(((n, r) for n, r in scaling if r is not None), key=lambda x: x[0])
        if len(good) >= 2:
            (n0, r0), (n1, r1) = good[0], good[-1]
            print(f"memory scaling : {n0:,} -> {n1:,} lines ({n1 / n0:.0f}x): peak {r0.peak_mb():.1f} -> "
                  f"{r1.peak_mb():.1f} MB ({r1.peak_mb() - r0.peak_mb():+.1f} MB)")
    if failed:
        print("result         : something FAILED to run (see above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

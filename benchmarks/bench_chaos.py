#!/usr/bin/env python3
"""Chaos benchmark: is each reply counted exactly once while the files are abused?

Runs the real exporter (on 127.0.0.1) through rotation storms (rename and
copytruncate, on a single path and on a glob, with inotify and with --poll),
restarts with a state file over a glob of 500 files, and kill -9 at random
moments, while a writer appends realistic Postfix lines (postfix_log_gen.py)
at 2,000 lines/s. For each scenario it prints the replies written (expected),
lost and counted twice, and for copytruncate the replies written between the
copy and the truncation: the one loss copytruncate cannot avoid, since those
lines are in neither file. Expected counts are `--once` over every line
written; lost and twice are compared by label set, so a loss and a double of
the same label set would cancel (each is at least what is printed).

    python3 benchmarks/bench_chaos.py [--rate 2000] [--seconds 6] [--only NAME]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

import postfix_log_gen
from bench_daemon import free_port

REPO = Path(__file__).resolve().parents[1]
LABELS = ("direction", "code", "class", "enhanced", "stage", "remote")


def replies(exposition: str) -> Counter:
    out: Counter = Counter()
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if s.name == "smtp_replies_total" and s.value:
                out[tuple(s.labels[k] for k in LABELS)] += int(s.value)
    return out


class Exporter:
    def __init__(self, work: Path, *args: str) -> None:
        self.port = free_port()
        self.err = open(work / f"exporter-{self.port}.err", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--web.listen-address", f"127.0.0.1:{self.port}", *args],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=self.err,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.scrape()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"exporter did not start (see {self.err.name})") from None
                time.sleep(0.05)

    def scrape(self) -> Counter:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            return replies(r.read().decode())

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
        self.err.close()


def settled(exporter: Exporter, expected: Counter, timeout: float = 30) -> Counter:
    """Scrape until the counts equal expected, or stop changing for 3 s."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        got = exporter.scrape()
        if got == expected:
            time.sleep(1)  # anything counted twice would show now
            return exporter.scrape()
        if got != last:
            last, since = got, time.monotonic()
        elif time.monotonic() - since > 3:
            break
        time.sleep(0.1)
    return last or Counter()


def once(work: Path, lines: list[bytes]) -> Counter:
    truth = work / "truth.log"
    truth.write_bytes(b"".join(lines))
    out = subprocess.run([sys.executable, "-m", "exporter", "--once", str(truth)], cwd=REPO,
                         capture_output=True, check=True)
    return replies(out.stdout.decode())


class Writer:
    """Appends the generated log's lines at `rate` lines/s to one or more files, round-robin."""

    def __init__(self, work: Path, paths: list[Path], rate: int, seconds: float, seed: int) -> None:
        source = work / "generated.log"
        postfix_log_gen.generate(str(source), int(rate * seconds) + rate, seed=seed)
        self.pool = source.read_bytes().splitlines(keepends=True)
        self.paths = paths
        self.rate = rate
        self.files = {p: open(p, "ab", buffering=0) for p in paths}
        self.written: list[bytes] = []
        self.window: list[bytes] = []  # written between a copy and its truncation
        self.t0 = time.monotonic()

    def write_due(self, into: list[bytes] | None = None) -> None:
        due = min(int((time.monotonic() - self.t0) * self.rate), len(self.pool))
        for line in self.pool[len(self.written) : due]:
            self.files[self.paths[len(self.written) % len(self.paths)]].write(line)
            self.written.append(line)
            if into is not None:
                into.append(line)

    def run_until(self, end: float) -> None:
        while time.monotonic() < end:
            self.write_due()
            time.sleep(0.005)

    def reopen(self, path: Path) -> None:
        self.files[path].close()
        self.files[path] = open(path, "ab", buffering=0)

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def shift(log: Path, keep: int = 4) -> None:
    """mail.log.3 -> mail.log.4, ..., mail.log.1 -> mail.log.2, as logrotate numbers them."""
    for k in range(keep - 1, 0, -1):
        older = log.with_name(f"{log.name}.{k}")
        if older.exists():
            os.rename(older, log.with_name(f"{log.name}.{k + 1}"))


@dataclass(frozen=True)
class Rotation:
    """A way logrotate replaces the log (apply(writer, log, glob)), and how often."""

    period: float
    apply: Callable[[Writer, Path, bool], None]


def rename_storm(period: float, still_writing: float) -> Rotation:
    def rotate(w: Writer, log: Path, glob: bool) -> None:
        shift(log) if glob else None
        os.rename(log, log.with_name(log.name + ".1"))
        w.run_until(time.monotonic() + still_writing)  # syslog writes to the old file until its HUP
        w.reopen(log)
    return Rotation(period, rotate)


def copytruncate_storm(period: float) -> Rotation:
    def rotate(w: Writer, log: Path, glob: bool) -> None:
        shift(log) if glob else None
        shutil.copyfile(log, log.with_name(log.name + ".1"))
        w.write_due(into=w.window)  # what the writer wrote while the copy was made: lost with the truncation
        os.truncate(log, 0)
    return Rotation(period, rotate)


def storm(work: Path, args: argparse.Namespace, rotate: Rotation, glob: bool, poll: bool, seed: int) -> tuple:
    log = work / "mail.log"
    log.touch()
    pattern = str(work / "mail.log*") if glob else str(log)
    exporter = Exporter(work, *(["--poll"] if poll else []), pattern)
    writer = Writer(work, [log], args.rate, args.seconds, seed)
    try:
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            writer.run_until(min(end, time.monotonic() + rotate.period))
            rotate.apply(writer, log, glob)
        writer.close()
        expected = once(work, writer.written)
        return expected, settled(exporter, expected), once(work, writer.window) if writer.window else Counter()
    finally:
        exporter.stop()


def restarts(work: Path, args: argparse.Namespace, seed: int, paths: list[Path], glob: str,
             stop_signal: Callable[[random.Random], int], rotate: Rotation | None = None) -> tuple:
    """Write for a random while, stop the exporter (rotating the log at most
    every 1.5 s), write while it is down, start it again with its state file."""
    for p in paths:
        p.touch()
    cmd = ("--state-file", str(work / "state.json"), glob)
    exporter = Exporter(work, *cmd)
    writer = Writer(work, paths, args.rate, 2 * args.seconds, seed)
    rng = random.Random(seed)
    try:
        end = time.monotonic() + 2 * args.seconds
        next_rotation = time.monotonic() + 1.5
        while time.monotonic() < end:
            writer.run_until(min(end, time.monotonic() + rng.uniform(0.5, 2.5)))
            if rotate is not None and time.monotonic() >= next_rotation:
                rotate.apply(writer, paths[0], False)
                next_rotation = time.monotonic() + 1.5
            exporter.stop(stop_signal(rng))
            writer.run_until(time.monotonic() + rng.uniform(0, 0.5))  # written while down
            exporter = Exporter(work, *cmd)
        writer.close()
        expected = once(work, writer.written)
        return expected, settled(exporter, expected), Counter()
    finally:
        exporter.stop()


def restarts_over_500_files(work: Path, args: argparse.Namespace, seed: int) -> tuple:
    logs = work / "logs"
    logs.mkdir()
    paths = [logs / f"mx{i:03d}.log" for i in range(500)]
    return restarts(work, args, seed, paths, str(logs / "*.log"),
                    lambda rng: signal.SIGKILL if rng.random() < 0.5 else signal.SIGTERM)


def kill_9_with_rotations(work: Path, args: argparse.Namespace, seed: int) -> tuple:
    log = work / "mail.log"
    return restarts(work, args, seed, [log], str(log), lambda rng: signal.SIGKILL, rename_storm(0, 0.2))


def storm_of(args: argparse.Namespace, rotate: Rotation, glob: bool, poll: bool) -> Callable[[Path, int], tuple]:
    """A storm scenario: (its work directory, its seed) -> its figures."""
    return lambda work, seed: storm(work, args, rotate, glob, poll, seed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=2000, help="lines per second (default 2000)")
    ap.add_argument("--seconds", type=float, default=6.0, help="length of each storm (default 6)")
    ap.add_argument("--only", help="run the scenarios whose name holds this")
    args = ap.parse_args()
    scenarios: list[tuple[str, Callable[[Path, int], tuple]]] = []
    for glob in (False, True):
        for poll in (False, True):
            where = f"{'glob' if glob else 'single path'}, {'--poll' if poll else 'inotify'}"
            renames = rename_storm(0.1, 0.02) if not glob else rename_storm(0.5, 0.2)
            scenarios.append((f"rename every {renames.period}s, {where}", storm_of(args, renames, glob, poll)))
            copies = copytruncate_storm(0.5)
            scenarios.append((f"copytruncate every {copies.period}s, {where}", storm_of(args, copies, glob, poll)))
    scenarios.append(("restarts (TERM or KILL) over a glob of 500 files",
                      lambda w, s: restarts_over_500_files(w, args, s)))
    scenarios.append(("kill -9 at random, rename rotations", lambda w, s: kill_9_with_rotations(w, args, s)))

    print(f"{'scenario':58} {'expected':>9} {'lost':>6} {'twice':>6} {'copy window':>12}")
    failed = False
    t0 = time.monotonic()
    for seed, (name, run) in enumerate(scenarios, 1):
        if args.only and args.only not in name:
            continue
        work = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
        try:
            expected, got, window = run(work, seed)
        except Exception as err:  # noqa: BLE001 - report and go on with the next scenario
            print(f"{name:58} failed: {err}")
            failed = True
            continue
        finally:
            shutil.rmtree(work, ignore_errors=True)
        lost = sum((expected - got).values())
        twice = sum((got - expected).values())
        print(f"{name:58} {sum(expected.values()):>9,} {lost:>6,} {twice:>6,} {sum(window.values()):>12,}",
              flush=True)
    print(f"total {time.monotonic() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

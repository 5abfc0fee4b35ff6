"""`smtp-reply-exporter backfill`: old logs into Prometheus history.

    smtp-reply-exporter backfill --label job=smtp-reply-exporter --label instance=mx1:10925 \\
        --until @1795876800 --output history.om /var/log/mail.log*
    promtool tsdb create-blocks-from openmetrics history.om /var/lib/prometheus/metrics2

The lines go through the same scanner, parsers and labeller as --once and
the daemon. What differs is time: each line's own time (exporter/timestamps.py)
puts it in a step (the sample at t holds every line logged at or before t),
consecutive lines of one step go to the scanner as one block, and the
scanner's sink collects one Tally per step. Steps stay open for a few
minutes of log (REORDER_SECONDS) so that lines logged slightly out of order
still land in their own step; older ones are committed to the History
(exporter/history.py), which writes the OpenMetrics text at the end.

Files are read in the order of their first line's time, whatever order they
are given in. A file that starts before the end of what was read repeats
lines when it holds the last lines read (a file given twice, mail.log.1
beside mail.log.1.gz, a copy): it is read from after them, or not at all.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import tzinfo

from exporter.config import COMMAND_LINE, Settings, check_format, check_service, load_config
from exporter.configcheck import Checker, ConfigError, Problems
from exporter.history import History
from exporter.journal import entry_to_line
from exporter.lines import LineBuffer
from exporter.once import UnreadableLog, _named_errors, open_log, read_blocks
from exporter.parsers import Format, formats_for
from exporter.rule_backfill import backfill_rules
from exporter.scanner import LineScanner, Tally
from exporter.timestamps import US, LineClock, bucket_of, local_zone, parse_duration, parse_when, zone_named

PROG = "smtp-reply-exporter backfill"
DEFAULT_STEP = "1m"
# How far back in log time a line may come after later ones and still be
# counted in its own step; later than that it counts in the oldest open step.
REORDER_SECONDS = 300
PROBE_BYTES = 1 << 20  # read at most this much of a file to find its first time
TAIL_LINES = 4  # the last lines read, looked for in a file that overlaps them
SKIP = None  # the step of a line outside --since/--until
_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)


@dataclass
class LogFile:
    path: str
    mtime: float
    journal: bool  # journalctl --output=json lines
    first_us: int | None  # the first readable time; None: none found near the start


def probe(path: str, zone: tzinfo) -> LogFile:
    """What a file is and when it starts, from its first PROBE_BYTES."""
    with _named_errors(path):
        mtime = os.stat(path).st_mtime
        stream = open_log(path)
        try:
            head = stream.read(PROBE_BYTES)
        finally:
            stream.close()
    lines = head.split(b"\n")
    if len(head) == PROBE_BYTES:
        lines.pop()  # cut mid-line
    journal = head.lstrip()[:1] == b"{"
    clock = LineClock(zone, mtime)
    for line in lines:
        t = _journal_entry(line)[0] if journal else clock.time_us(line)
        if t is not None:
            return LogFile(path, mtime, journal, t)
    return LogFile(path, mtime, journal, None)


def _journal_entry(raw: bytes) -> tuple[int | None, bytes | None]:
    """(__REALTIME_TIMESTAMP, the line the exporter reads) of one journal JSON line."""
    try:
        entry = json.loads(raw)
    except ValueError:
        return None, None
    if not isinstance(entry, dict):
        return None, None
    stamp = entry.get("__REALTIME_TIMESTAMP")
    try:
        t = int(stamp) if isinstance(stamp, str | int) else None
    except ValueError:
        t = None
    return t, entry_to_line(entry)


class Steps:
    """Cuts the blocks of one file into runs of consecutive lines of the
    same step: (step or SKIP, the lines, how many of them had no time)."""

    def __init__(self, file: LogFile, zone: tzinfo, step_us: int, since_us: int, until_us: int) -> None:
        self._clock = LineClock(zone, file.mtime)
        self._step_us = step_us
        self._step_s = step_us // US
        self._since, self._until = since_us, until_us
        assert file.first_us is not None
        self._last_step = self._step_for(file.first_us)  # untimed lines at the start take the first time
        # Lines of one second share their first 19 bytes ("Dec  6 10:00:00 mx1",
        # "2026-12-06T10:00:00"): one slot for stamps starting with a digit,
        # one for the others, each [key, step, exact]; exact: the second is a
        # step boundary, where a fraction of a second decides the step.
        self._slots: list[list] = [[None, None, False], [None, None, False]]
        self.last_us = file.first_us

    def _step_for(self, t: int) -> int | None:
        return bucket_of(t, self._step_us) if self._since <= t < self._until else SKIP

    def text_runs(self, block: bytes) -> list[tuple[int | None, bytes, int]]:
        runs: list[tuple[int | None, bytes, int]] = []
        slots, time_us, step_s = self._slots, self._clock.time_us, self._step_s
        step = run_step = self._last_step
        run_start = pos = run_untimed = 0
        for line in block.split(b"\n")[:-1]:
            key = line[:19]
            slot = slots[key[:1] < b":"]
            untimed = 0
            if key == slot[0] and not slot[2]:
                step = slot[1]
            else:
                t = time_us(line)
                if t is None:
                    untimed = 1
                else:
                    step = self._step_for(t)
                    slot[0], slot[1], slot[2] = key, step, (t // US) % step_s == 0
                    if t > self.last_us:
                        self.last_us = t
            if step != run_step:
                if pos > run_start:
                    runs.append((run_step, block[run_start:pos], run_untimed))
                run_step, run_start, run_untimed = step, pos, 0
            run_untimed += untimed
            pos += len(line) + 1
        if pos > run_start:
            runs.append((run_step, block[run_start:pos], run_untimed))
        self._last_step = step
        return runs

    def journal_runs(self, block: bytes) -> list[tuple[int | None, bytes, int]]:
        runs: list[tuple[int | None, bytes, int]] = []
        step = self._last_step
        lines: list[bytes] = []
        untimed = 0
        for raw in block.split(b"\n")[:-1]:
            t, line = _journal_entry(raw)
            if line is None:
                continue  # not an entry with a message: nothing the exporter reads
            if t is None:
                new_step = step
                untimed_line = 1
            else:
                new_step, untimed_line = self._step_for(t), 0
                self.last_us = max(self.last_us, t)
            if new_step != step and lines:
                runs.append((step, b"".join(lines), untimed))
                lines, untimed = [], 0
            step = new_step
            lines.append(line)
            untimed += untimed_line
        if lines:
            runs.append((step, b"".join(lines), untimed))
        self._last_step = step
        return runs


class _StepSink:
    """The scanner's sink: the Tally of the step being fed."""

    def __init__(self) -> None:
        self.tally = Tally()

    def add(self, counts, lines: dict[str, int], nbytes: int) -> None:  # noqa: ANN001 - scanner.EventSink
        self.tally.add(counts, lines, nbytes)


@dataclass
class FileReport:
    path: str
    lines: int = 0
    untimed: int = 0
    late: int = 0  # counted in a later step than their own
    skipped_lines: int = 0  # repeated from a file read before
    seconds: float = 0.0


class Backfill:
    """Reads log files in time order into a History, step by step."""

    def __init__(self, settings: Settings, formats: tuple[Format, ...], history: History, zone: tzinfo,
                 step_seconds: int, since_us: int, until_us: int, service: str | None = None) -> None:
        self.settings = settings
        self.history = history
        self.zone = zone
        self.step_us = step_seconds * US
        self.since_us, self.until_us = since_us, until_us
        self._sink = _StepSink()
        self._scanner = LineScanner(formats, self._sink, settings.max_line_bytes, settings.labeller(),
                                    service=service)
        self._reorder = max(1, -(-REORDER_SECONDS // step_seconds))
        self._open: dict[int, Tally] = {}
        self._newest: int | None = None
        self.last_us: int | None = None  # the latest time read so far
        self._tail: deque[bytes] = deque(maxlen=TAIL_LINES)

    def read(self, file: LogFile, report: FileReport) -> None:
        skip = 0
        if self.last_us is not None and file.first_us is not None and file.first_us <= self.last_us:
            skip = self._repeated_lines(file.path)
            report.skipped_lines = skip
        steps = Steps(file, self.zone, self.step_us, self.since_us, self.until_us)
        runs_of = steps.journal_runs if file.journal else steps.text_runs
        started = time.perf_counter()
        buffer = LineBuffer(self.settings.max_line_bytes)
        with _named_errors(file.path):
            stream = open_log(file.path)
            try:
                cut = 0
                for block, block_cut in read_blocks(stream, buffer):
                    cut += block_cut  # counted with the next block that has lines
                    if skip:
                        block, skip = _drop_lines(block, skip)
                    if not block:
                        continue
                    report.lines += block.count(b"\n")
                    self._remember_tail(block)
                    for step, lines, untimed in runs_of(block):
                        report.untimed += untimed
                        if step is not SKIP:
                            report.late += self._feed(step, lines, cut, untimed)
                            cut = 0
                    cut = 0  # a block all outside --since/--until counts none
            finally:
                stream.close()
        self.last_us = steps.last_us if self.last_us is None else max(self.last_us, steps.last_us)
        report.seconds = time.perf_counter() - started

    def _feed(self, step: int, lines: bytes, cut: int, untimed: int) -> int:
        """Count lines into their step; return how many came too late for it."""
        late = 0
        committed = self.history.last
        if committed is not None and step <= committed:
            late, step = lines.count(b"\n"), committed + 1
        tally = self._open.get(step)
        if tally is None:
            tally = self._open[step] = Tally(self.settings.max_reply_series)
        self._sink.tally = tally
        self._scanner.feed(lines, cut)
        if untimed:
            tally.lines["untimed"] += untimed
        if self._newest is None or step > self._newest:
            self._newest = step
            self._commit_before(step - self._reorder)
        return late

    def _commit_before(self, limit: int | None) -> None:
        for step in sorted(s for s in self._open if limit is None or s < limit):
            self.history.commit(step, self._open.pop(step))

    def finish(self) -> None:
        self._commit_before(None)

    def _remember_tail(self, block: bytes) -> None:
        self._tail.extend(block[:-1].rsplit(b"\n", TAIL_LINES)[-TAIL_LINES:])

    def _repeated_lines(self, path: str) -> int:
        """How many of the file's first lines were read already: up to and
        including the last TAIL_LINES lines read, when the file holds them."""
        tail = list(self._tail)
        if not tail:
            return 0
        recent: deque[bytes] = deque(maxlen=len(tail))
        n = 0
        with _named_errors(path):
            stream = open_log(path)
            try:
                for block, _ in read_blocks(stream, LineBuffer(self.settings.max_line_bytes)):
                    for line in block.split(b"\n")[:-1]:
                        n += 1
                        recent.append(line)
                        if line == tail[-1] and list(recent) == tail:
                            return n
            finally:
                stream.close()
        return 0


def _drop_lines(block: bytes, n: int) -> tuple[bytes, int]:
    """block without its first n lines, and how many are still to drop."""
    pos = 0
    while n:
        nl = block.find(b"\n", pos)
        if nl < 0:
            return b"", n
        pos, n = nl + 1, n - 1
    return block[pos:], 0


def order_files(paths: Sequence[str], zone: tzinfo, warn: Callable[[str], None]) -> list[LogFile]:
    """The files in the order of their first time; a path given twice, or
    two names of one file, read once; files without a time left out."""
    seen: dict[tuple[int, int], str] = {}
    files = []
    for path in paths:
        st = os.stat(path)
        identity = (st.st_dev, st.st_ino)
        if identity in seen:
            warn(f"{path}: the same file as {seen[identity]}; read once")
            continue
        seen[identity] = path
        file = probe(path, zone)
        if file.first_us is None:
            if st.st_size:
                warn(f"{path}: no line with a readable time in its first {PROBE_BYTES >> 20} MB; not read")
            continue
        files.append(file)
    files.sort(key=lambda f: (f.first_us, f.path))
    return files


def _labels(values: list[str]) -> dict[str, str]:
    labels = {}
    for text in values:
        m = _LABEL.fullmatch(text)
        if m is None or m[1].startswith("__"):
            raise ValueError(f"--label {text!r}: give NAME=VALUE, NAME a Prometheus label name "
                             "(job=smtp-reply-exporter)")
        labels[m[1]] = m[2]
    return labels


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Read old mail logs and write their reply counts as timestamped OpenMetrics text, "
        "for `promtool tsdb create-blocks-from openmetrics FILE DATA_DIR`.",
    )
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="log files in any order: plain, gzip, or journalctl --output=json exports")
    p.add_argument("--step", default=DEFAULT_STEP,
                   help="spacing of the samples, whole seconds (default 1m; e.g. 30s, 5m)")
    p.add_argument("--since", metavar="WHEN",
                   help="leave out lines before this: 2026-11-01, '2026-11-01 06:00', "
                   "2026-11-01T06:00:00+01:00, @UNIXTIME, or a duration before now (30d)")
    p.add_argument("--until", metavar="WHEN",
                   help="leave out lines at or after this (the live exporter's start: its "
                   "process_start_time_seconds as @UNIXTIME); same forms as --since")
    p.add_argument("--label", action="append", default=[], metavar="NAME=VALUE",
                   help="a label for every series, repeatable: the job and instance Prometheus gives the "
                   "live exporter's series (--label job=smtp-reply-exporter --label instance=mx1:10925)")
    p.add_argument("--timezone", metavar="ZONE",
                   help="zone of times logged without one (classic syslog, Exim): an IANA name "
                   "(default: this host's)")
    p.add_argument("--source", metavar="NAME",
                   help="`source` label of the line counters (default: the newest file, the one the "
                   "live exporter follows)")
    p.add_argument("--output", metavar="FILE", help="where to write the OpenMetrics text (default: stdout)")
    p.add_argument("--tsdb", metavar="DIR",
                   help="also make TSDB blocks in DIR (a new directory, not a running Prometheus's) with "
                   "`promtool tsdb create-blocks-from openmetrics`; move them into Prometheus's data directory")
    p.add_argument("--rules", action="append", default=[], metavar="FILE",
                   help="with --tsdb: also backfill the recording rules of FILE (repeatable) over the same "
                   "range, level by level, through a private `prometheus` on DIR")
    p.add_argument("--config", metavar="FILE", help="the exporter's YAML config (formats, providers, reasons)")
    p.add_argument("--format", metavar="NAME", help="log format: auto (default), postfix, exim, ...")
    p.add_argument("--service", metavar="NAME",
                   help="`service` label of everything counted, as a source's service: in the live "
                   "exporter's config (default: each line's syslog tag without the process name)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (warnings still)")
    return p


@dataclass
class Options:
    files: list[str]
    step_seconds: int
    since_us: int
    until_us: int
    until_given: bool
    labels: dict[str, str]
    zone: tzinfo
    settings: Settings
    formats: tuple[Format, ...]
    service: str | None = None


def options_from(args: argparse.Namespace, now: float) -> Options:
    """The checked options; ValueError or ConfigError names what is wrong."""
    problems = Problems()
    settings = load_config(args.config, problems) if args.config else Settings()
    problems.raise_any()
    name = args.format or "auto"
    if args.format:
        check_format(Checker(COMMAND_LINE), "--format", args.format, settings.formats)
    service = check_service(Checker(COMMAND_LINE), "--service", args.service) if args.service else None
    zone = zone_named(args.timezone) if args.timezone else local_zone()
    step = parse_duration(args.step)
    since = parse_when(args.since, now, zone) if args.since else -(1 << 62)
    until = parse_when(args.until, now, zone) if args.until else 1 << 62
    if since >= until:
        raise ValueError("--since must be before --until")
    return Options(args.files, step, since, until, bool(args.until), _labels(args.label), zone, settings,
                   formats_for(name, settings.formats), service)


def run(opts: Options, out_path: str | None, source: str | None,
        warn: Callable[[str], None], progress: Callable[[str], None]) -> tuple[float, float]:
    """Read the files, write the OpenMetrics text; the times of its first and last samples."""
    files = order_files(opts.files, opts.zone, warn)
    if not files:
        raise ValueError("no file with readable times to backfill")
    history = History(source or files[-1].path, opts.settings.max_reply_series)
    try:
        backfill = Backfill(opts.settings, opts.formats, history, opts.zone, opts.step_seconds,
                            opts.since_us, opts.until_us, opts.service)
        for file in files:
            report = FileReport(file.path)
            backfill.read(file, report)
            _report(report, warn, progress)
        backfill.finish()
        if history.last is None:
            raise ValueError("no line in the files lies between --since and --until")
        end_step, end_time = history.last, None
        if opts.until_given:
            end_step = bucket_of(opts.until_us, opts.step_seconds * US)
            if end_step * opts.step_seconds * US != opts.until_us:
                end_time = opts.until_us / US  # the last sample at --until, not past it
        with _output(out_path) as out:
            samples = history.write_openmetrics(out, opts.step_seconds, end_step, end_time, opts.labels)
        progress(f"wrote {samples:,} samples of {len(history.first_step):,} series "
                 f"({history.records:,} changes) to {out_path or 'stdout'}")
        assert history.first is not None
        first = (history.first - 1) * opts.step_seconds
        return first, end_step * opts.step_seconds if end_time is None else end_time
    finally:
        history.close()


def _report(report: FileReport, warn: Callable[[str], None], progress: Callable[[str], None]) -> None:
    rate = report.lines / report.seconds if report.seconds > 0 else 0.0
    note = f", {report.skipped_lines:,} repeated lines skipped" if report.skipped_lines else ""
    progress(f"{report.path}: {report.lines:,} lines in {report.seconds:.1f} s ({rate:,.0f} lines/s){note}")
    if report.untimed:
        warn(f"{report.path}: {report.untimed:,} lines without a readable time, counted at the time of the "
             f"line before (smtp_exporter_backfill_untimed_lines_total)")
    if report.late:
        warn(f"{report.path}: {report.late:,} lines logged more than {REORDER_SECONDS} s out of order, "
             f"counted in a later step than their own")


class _output:
    """A text file to write, or stdout."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def __enter__(self):  # noqa: ANN204
        self.file = open(self.path, "w", encoding="utf-8", buffering=1 << 20) if self.path else sys.stdout
        return self.file

    def __exit__(self, *exc: object) -> None:
        if self.path:
            self.file.close()
        else:
            self.file.flush()


def main(argv: list[str], now: float | None = None) -> int:
    args = build_parser().parse_args(argv)

    def warn(text: str) -> None:
        print(f"{PROG}: warning: {text}", file=sys.stderr)

    def progress(text: str) -> None:
        if not args.quiet:
            print(f"{PROG}: {text}", file=sys.stderr)

    try:
        opts = options_from(args, time.time() if now is None else now)
    except ConfigError as err:
        for problem in err.every:
            print(f"{PROG}: configuration error: {problem}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    if args.rules and not args.tsdb:
        print(f"{PROG}: --rules needs --tsdb", file=sys.stderr)
        return 2
    out_path = args.output
    scratch = None
    if args.tsdb and not out_path:
        scratch = tempfile.NamedTemporaryFile(suffix=".om", delete=False)
        scratch.close()
        out_path = scratch.name
    try:
        first, last = run(opts, out_path, args.source, warn, progress)
        if args.tsdb:
            status = _create_blocks(out_path, args.tsdb, progress)
            if status == 0 and args.rules:
                backfill_rules(args.rules, args.tsdb, first, last, opts.step_seconds, progress)
            return status
    except (UnreadableLog, OSError, subprocess.CalledProcessError, RuntimeError) as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    finally:
        if scratch is not None:
            os.unlink(scratch.name)
    return 0


def _create_blocks(openmetrics: str, data_dir: str, progress: Callable[[str], None]) -> int:
    promtool = shutil.which("promtool")
    if promtool is None:
        print(f"{PROG}: --tsdb needs promtool (Debian package prometheus)", file=sys.stderr)
        return 1
    command = [promtool, "tsdb", "create-blocks-from", "openmetrics", openmetrics, data_dir]
    progress(" ".join(command))
    return subprocess.run(command, check=False).returncode

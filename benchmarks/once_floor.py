"""How fast `--once` could be at best: the cost of the work every reading of
a log must do, whatever the parsers cost (bench_once.py --floor).

Measured in this process, as one `--once` worker, on the log the benchmark
reads:

* start-up: `python3 -m exporter --once /dev/null`, best of five;
* the scan without parsing: reading the file and scanning it as `--once`
  does, with every line the scanner would parse handed to a parser that
  returns nothing. This is reading and cutting blocks, finding the lines
  that may carry a reply (one bytes.find pass per trigger), cutting and
  decoding them, counting lines, long lines and invalid UTF-8;
* telling which MTAs a block holds, for `auto`;
* the whole scan, as `--once` runs it (parsers, labels, reasons).

The floor is start-up plus the first two spread over the workers: the wall
time of a `--once` whose parsers and labels cost nothing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Floor:
    startup: float  # wall seconds
    scan_unparsed: float  # CPU seconds, one worker
    presence: float
    scan_full: float
    parsed_lines: int  # lines the scanner handed to a parser
    workers: int

    def wall(self, scan: float) -> float:
        return self.startup + scan / self.workers

    @property
    def floor_wall(self) -> float:
        return self.wall(self.scan_unparsed + self.presence)

    @property
    def full_wall(self) -> float:
        return self.wall(self.scan_full)


def _startup(python: str) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([python, "-m", "exporter", "--once", "/dev/null"], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t0)
    return best


def measure(log: str, workers: int, python: str = sys.executable) -> Floor:
    sys.path.insert(0, str(REPO))
    from exporter.lines import LineBuffer
    from exporter.once import BLOCK_SIZE, scan_stream
    from exporter.parsers import Format, Presence, formats_for, taking
    from exporter.parsers.service import constant
    from exporter.scanner import LineScanner, Tally

    def scan(formats: tuple[Format, ...]) -> float:
        t0 = time.process_time()
        with open(log, "rb") as f:
            scan_stream(f, LineScanner(formats, Tally()), LineBuffer())
        return time.process_time() - t0

    def presence(formats: tuple[Format, ...]) -> float:
        blocks, buffer = [], LineBuffer()
        with open(log, "rb") as f:
            while data := f.read(BLOCK_SIZE):
                blocks.append(buffer.push(data))
        formats_in = Presence(formats).formats_in
        t0 = time.process_time()
        for block in blocks:
            formats_in(block)
        return time.process_time() - t0

    handed = [0]

    def parse_nothing(line: str) -> list:
        handed[0] += 1
        return []

    auto = formats_for("auto")
    postfix = next(f for f in auto if f.name == "postfix")

    def count_nothing(block: bytes) -> tuple[dict, int]:
        # The lines Postfix counts over a whole block (TLS) are handed to it
        # too; finding them is part of the floor.
        assert postfix.count_block is not None
        _, lines = postfix.count_block(block)
        handed[0] += lines
        return {}, lines

    # Postfix's triggers: the log is a Postfix log, so auto searches for them alone.
    unparsed = Format("unparsed", parse_nothing, postfix.triggers, (), lambda block: True,
                      taking(parse_nothing, constant("unparsed")), count_nothing)
    return Floor(
        startup=_startup(python),
        scan_unparsed=scan((unparsed,)),
        presence=presence(auto),
        scan_full=scan(auto),
        parsed_lines=handed[0],
        workers=workers,
    )


def report(floor: Floor, lines: int, mtail_rate: float | None, target_ratio: float) -> None:
    print(f"  start-up (python3 -m exporter --once /dev/null): {floor.startup:.3f} s wall")
    print(f"  scan without parsing, one worker: {floor.scan_unparsed:.3f} s CPU "
          f"({floor.parsed_lines:,} lines handed to a parser)")
    print(f"  telling which MTAs each block holds (auto): {floor.presence:.3f} s CPU")
    print(f"  whole scan as --once runs it, one worker: {floor.scan_full:.3f} s CPU")
    parsing = floor.scan_full - floor.scan_unparsed - floor.presence
    print(f"  so parsing, labels and reasons: {parsing:.3f} s CPU = "
          f"{parsing / max(floor.parsed_lines, 1) * 1e6:.2f} us per line handed to a parser")
    print(f"  floor with {floor.workers} worker(s), parsing free: {floor.floor_wall:.3f} s = "
          f"{lines / floor.floor_wall:,.0f} lines/s; with parsing: {floor.full_wall:.3f} s = "
          f"{lines / floor.full_wall:,.0f} lines/s")
    if mtail_rate:
        print(f"  against mtail: floor {lines / floor.floor_wall / mtail_rate:.1f}x, "
              f"with parsing {lines / floor.full_wall / mtail_rate:.1f}x")
        target_wall = lines / (mtail_rate * target_ratio)
        budget = (target_wall - floor.floor_wall) * floor.workers / max(floor.parsed_lines, 1)
        if budget > 0:
            print(f"  {target_ratio:.0f}x mtail leaves {budget * 1e6:.2f} us per parsed line for parsing, "
                  f"labels and reasons")
        else:
            print(f"  {target_ratio:.0f}x mtail is out of reach even with parsing free")

"""Rotated log sets with known times, for the backfill tests.

The lines are the demo log's (written by a real Postfix), each given a time
on a seeded timeline and written in the stamp shape of the file it lands in:
classic syslog (as rsyslog pads the day), RFC 3339 with an offset, or
Postfix's own maillog_file (zero-padded day). Each file's modification time
is its last line's, as logrotate leaves it. What the exporter should count
at any time is worked out here from each line's own time, through the
parser and labeller alone.
"""

from __future__ import annotations

import gzip
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path

from exporter.labels import Counts
from helpers import REPO, count_postfix_lines

DEMO_LOG = REPO / "exporter" / "demo" / "postfix.log"
US = 1_000_000
_STAMP_WIDTH = len("Nov 28 23:25:29 ")


@dataclass(frozen=True)
class Logged:
    t_us: int
    body: str  # the line after its time stamp: "mx1 postfix/smtp[12154]: ..."


# The demo's Postfix logged no TLS sessions (its TLS log level was 0); these
# two, of the shapes a TLS log level of 1 writes, join them so the history
# holds TLS connections too.
TLS_BODIES = [
    "mx1 postfix/smtpd[3002]: Anonymous TLS connection established from client.example.org[192.0.2.10]: "
    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
    "mx1 postfix/smtp[4002]: Verified TLS connection established to mx.example.com[203.0.113.25]:25: "
    "TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
]


def demo_bodies() -> list[str]:
    return [line[_STAMP_WIDTH:] for line in DEMO_LOG.read_text().splitlines()] + TLS_BODIES


def timeline(start: datetime, count: int, mean_gap_seconds: float, seed: int = 1) -> list[Logged]:
    """count demo lines (cycling) from start on, in time order, with random gaps and microseconds."""
    rng = random.Random(seed)
    bodies = demo_bodies()
    t = int(start.timestamp() * US)
    out = []
    for i in range(count):
        t += int(rng.expovariate(1 / mean_gap_seconds) * US) + 1
        out.append(Logged(t, bodies[i % len(bodies)]))
    return out


def classic(t_us: int, zone: tzinfo, zero_padded: bool = False) -> str:
    local = datetime.fromtimestamp(t_us / US, zone)
    day = f"{local.day:02d}" if zero_padded else f"{local.day:2d}"
    return f"{local:%b} {day} {local:%H:%M:%S}"


def rfc3339(t_us: int, zone: tzinfo) -> str:
    seconds, micro = divmod(t_us, US)
    return datetime.fromtimestamp(seconds, zone).replace(microsecond=micro).isoformat()


SHAPES = {
    "classic": lambda t, zone: classic(t, zone),
    "maillog_file": lambda t, zone: classic(t, zone, zero_padded=True),
    "rfc3339": rfc3339,
}


def write_log(path: Path, lines: Iterable[Logged], shape: str, zone: tzinfo) -> Path:
    """The lines in one stamp shape; gzip when the name ends in .gz; mtime the last line's."""
    lines = list(lines)
    text = "".join(f"{SHAPES[shape](line.t_us, zone)} {line.body}\n" for line in lines).encode()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text, mtime=0))
    else:
        path.write_bytes(text)
    last = lines[-1].t_us / US
    os.utime(path, (last, last))
    return path


def as_written(lines: Iterable[Logged], shape: str) -> list[Logged]:
    """The lines with the time their stamp shows: classic stamps have whole seconds."""
    if shape == "rfc3339":
        return list(lines)
    return [Logged(line.t_us // US * US, line.body) for line in lines]


# The rotated set: (name, stamp shape) from the oldest to the live file.
ROTATED = (("mail.log.2.gz", "classic"), ("mail.log.1", "rfc3339"), ("mail.log", "maillog_file"))


def rotated_set(directory: Path, lines: list[Logged], zone: tzinfo) -> tuple[list[Path], list[Logged]]:
    """mail.log.2.gz (classic syslog), mail.log.1 (RFC 3339), mail.log (maillog_file), a third of the
    lines each; and the lines with the times their stamps show."""
    third = len(lines) // 3
    parts = (lines[:third], lines[third:2 * third], lines[2 * third:])
    paths, written = [], []
    for (name, shape), part in zip(ROTATED, parts, strict=True):
        paths.append(write_log(directory / name, part, shape, zone))
        written += as_written(part, shape)
    return paths, written


def counts_by_step(lines: list[Logged], step_seconds: int) -> dict[int, Counts]:
    """{t: what the exporter counts for the lines logged at or before t} at every multiple of the step
    from the first line's to the last line's."""
    step_us = step_seconds * US
    per_line = [(line.t_us, counts_of([line])) for line in sorted(lines, key=lambda line: line.t_us)]
    total, out, i = Counts(), {}, 0
    first, last = -(-per_line[0][0] // step_us), -(-per_line[-1][0] // step_us)
    for step in range(first, last + 1):
        while i < len(per_line) and per_line[i][0] <= step * step_us:
            total.merge(per_line[i][1])
            i += 1
        snapshot = Counts()
        snapshot.merge(total)
        out[step * step_seconds] = snapshot
    return out


def counts_of(lines: Iterable[Logged]) -> Counts:
    """What the exporter counts for these lines, by the parser and labeller alone."""
    return count_postfix_lines(line.body for line in lines)


def crosses_local_midnight(lines: list[Logged], zone: tzinfo) -> bool:
    days = {datetime.fromtimestamp(line.t_us / US, zone).date() for line in lines}
    return len(days) > 1

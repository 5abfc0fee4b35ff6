"""`--once`: read whole log files (plain, gzip, or stdin) and count them.

Files are streamed block by block, so memory does not grow with their size.
A large plain file is cut at line boundaries into one range per CPU, each
range counted by a worker process; the parent adds up their tallies. Counting
is order-free, so the result is the same as reading the file in one piece.
"""

from __future__ import annotations

import gzip
import io
import multiprocessing
import os
import stat
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from exporter.labels import DEFAULT_MAX_REPLY_SERIES, Labeller, ServiceCap
from exporter.lines import LineBuffer
from exporter.parsers import Format
from exporter.scanner import EventSink, LineScanner, Tally


class UnreadableLog(Exception):
    """A log that cannot be read to its end: "path: what is wrong"."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


BLOCK_SIZE = 1 << 20
# Below this a worker costs more to start than it saves.
PARALLEL_MIN_BYTES = 16 << 20


GZIP_MAGIC = b"\x1f\x8b"


def open_log(path: str) -> BinaryIO:
    """A log to read: plain or gzip, told by its first bytes, stdin too
    (`zcat` is not needed)."""
    if path == "-":
        stdin = sys.stdin.buffer
        # peek() leaves the bytes it shows to be read.
        if isinstance(stdin, io.BufferedReader) and stdin.peek(2)[:2] == GZIP_MAGIC:
            return gzip.GzipFile(fileobj=stdin, mode="rb")  # type: ignore[return-value]
        return stdin
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")  # type: ignore[return-value]


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as probe:
        return probe.read(2) == GZIP_MAGIC


def read_blocks(stream: BinaryIO, buffer: LineBuffer, limit: int = -1) -> Iterator[tuple[bytes, int]]:
    """A stream's complete lines a block at a time (b"" when a read ended
    none), each with how many lines the buffer cut at its limit in making it,
    up to limit bytes (-1: to the end, its last line too)."""
    read = stream.read
    while limit:
        data = read(BLOCK_SIZE if limit < 0 else min(BLOCK_SIZE, limit))
        if not data:
            break
        if limit > 0:
            limit -= len(data)
        yield buffer.push(data), buffer.take_cut()
    yield buffer.finish(), 0


def scan_stream(stream: BinaryIO, scanner: LineScanner, buffer: LineBuffer, limit: int = -1) -> None:
    """Feed a stream to the scanner block by block, up to limit bytes (-1: to the end)."""
    for block, cut in read_blocks(stream, buffer, limit):
        scanner.feed(block, cut)
        del block  # not held while the next one is read: a block is up to 1 MiB per worker


def scan_files(
    paths: Iterable[tuple[str, tuple[Format, ...], str | None]],
    sink_for: Callable[[str], EventSink],
    max_line: int,
    workers: int = 1,
    labeller: Labeller | None = None,
    max_reply_series: int = DEFAULT_MAX_REPLY_SERIES,
) -> None:
    """Count each (path, the formats it may hold, its configured service or
    None) into the sink for its path (its `source`)."""
    labeller = labeller if labeller is not None else Labeller()
    for path, formats, service in paths:
        with _named_errors(path):
            sink = sink_for(path)
            if workers > 1 and path != "-" and _worth_splitting(path):
                _scan_parallel(path, formats, service, sink, max_line, workers, labeller, max_reply_series)
                continue
            stream = open_log(path)
            try:
                scanner = LineScanner(formats, sink, max_line, labeller, service=service)
                scan_stream(stream, scanner, LineBuffer(max_line))
            finally:
                if stream is not sys.stdin.buffer:
                    stream.close()


@contextmanager
def _named_errors(path: str) -> Iterator[None]:
    """Read errors of one log as UnreadableLog, which names it."""
    try:
        yield
    except OSError as err:
        raise UnreadableLog(path, err.strerror or str(err)) from err
    except (EOFError, zlib.error) as err:  # e.g. a .gz still being written by logrotate
        raise UnreadableLog(path, f"damaged or incomplete gzip data: {err}") from err


def _worth_splitting(path: str) -> bool:
    st = os.stat(path)
    return stat.S_ISREG(st.st_mode) and st.st_size >= PARALLEL_MIN_BYTES and not _is_gzip(path)


def line_aligned_ranges(path: str, parts: int) -> list[tuple[int, int]]:
    """Cut a file into up to `parts` byte ranges that each start at a line start."""
    size = os.path.getsize(path)
    bounds = [0]
    with open(path, "rb") as f:
        for i in range(1, parts):
            pos = max(size * i // parts, bounds[-1])
            f.seek(pos)
            while True:  # find the next newline without reading a long line whole
                piece = f.read(1 << 16)
                if not piece:
                    pos = size
                    break
                nl = piece.find(b"\n")
                if nl >= 0:
                    pos += nl + 1
                    break
                pos += len(piece)
            bounds.append(pos)
    bounds.append(size)
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


# The labeller of a --once worker process, inherited through fork (its
# caches are not picklable, and need not be).
_worker_labeller: Labeller | None = None
# A worker names every service its range holds, up to this guard against a
# flood of tags, and the parent's metrics apply the cap of MAX_SERVICES: so a
# service never counts under its name in one range and as `other` in another.
WORKER_MAX_SERVICES = 1000


def _init_worker(labeller: Labeller) -> None:
    global _worker_labeller  # noqa: PLW0603 - one per worker process, set once
    labeller.services = ServiceCap(WORKER_MAX_SERVICES)
    _worker_labeller = labeller


def _scan_range(
    path: str, start: int, end: int, formats: tuple[Format, ...], service: str | None, max_line: int,
    max_reply_series: int,
) -> Tally:
    tally = Tally(max_reply_series)
    with open(path, "rb") as f:
        f.seek(start)
        scanner = LineScanner(formats, tally, max_line, _worker_labeller, service=service)
        scan_stream(f, scanner, LineBuffer(max_line), end - start)
    return tally


def _scan_parallel(
    path: str,
    formats: tuple[Format, ...],
    service: str | None,
    sink: EventSink,
    max_line: int,
    workers: int,
    labeller: Labeller,
    max_reply_series: int,
) -> None:
    ranges = line_aligned_ranges(path, workers)
    # fork: the workers inherit the loaded parsers and tables (initargs are
    # not pickled with fork) instead of re-importing and rebuilding them.
    context = multiprocessing.get_context("fork")
    with context.Pool(len(ranges), initializer=_init_worker, initargs=(labeller,)) as pool:
        tallies = pool.starmap(
            _scan_range, [(path, a, b, formats, service, max_line, max_reply_series) for a, b in ranges]
        )
    for tally in tallies:
        tally.merge_into(sink)

"""`--once`: read whole log files (plain, gzip, or stdin) and count them."""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterable
from typing import BinaryIO

from exporter.lines import LineBuffer
from exporter.scanner import LineScanner

BLOCK_SIZE = 1 << 20


def open_log(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")  # type: ignore[return-value]


def scan_stream(stream: BinaryIO, scanner: LineScanner, buffer: LineBuffer) -> None:
    """Feed a stream to the scanner block by block; memory stays bounded."""
    read = stream.read
    while True:
        data = read(BLOCK_SIZE)
        if not data:
            break
        scanner.feed(buffer.push(data), buffer.take_cut())
    scanner.feed(buffer.finish())


def scan_files(paths: Iterable[str], scanner: LineScanner, max_line: int) -> None:
    for path in paths:
        stream = open_log(path)
        try:
            scan_stream(stream, scanner, LineBuffer(max_line))
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()

#!/usr/bin/env python3
"""Time and memory of one queue probe over a large Postfix queue.

The probe's command is this script itself in --emit mode, a stand-in for
`postqueue -j` that prints N messages in its JSON lines (real field names
and shapes, a few recipients each, spread over the five queues); the real
probe (exporter.queue_probe.list_queue) runs it and reads its output. Prints
the listing's size, the probe's wall time, and its peak memory: Python's
allocations during the probe (tracemalloc) and the process's peak RSS. The
listing is read line by line, so the peak stays flat as N grows, far below
the listing's size; the totals are checked against what was emitted.

    python3 benchmarks/bench_queue.py                    # 100,000 messages
    python3 benchmarks/bench_queue.py --messages 10000 --messages 100000 --messages 300000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from exporter.queue import FORMATS  # noqa: E402
from exporter.queue_probe import QueueConfig, list_queue  # noqa: E402

QUEUES = FORMATS["postfix"].queues
START = 1_760_000_000  # arrival of the oldest emitted message
SIZE = 2_000  # bytes of message i: SIZE + i % 1000


def emit(messages: int) -> None:
    """Print a postqueue -j listing of `messages` messages to stdout."""
    out = sys.stdout
    for i in range(messages):
        recipients = [{"address": f"user{i}-{r}@example{r}.net",
                       "delay_reason": "connect to mx.example.net[192.0.2.7]:25: Connection timed out"}
                      for r in range(1 + i % 3)]
        out.write(json.dumps({
            "queue_name": QUEUES[i % len(QUEUES)], "queue_id": f"4Z{i:09X}", "arrival_time": START + i,
            "message_size": SIZE + i % 1000, "forced_expire": False, "sender": f"sender{i % 97}@example.org",
            "recipients": recipients,
        }) + "\n")


def expected(messages: int) -> dict[str, tuple[int, int, int]]:
    """(messages, bytes, oldest arrival) per queue of an emitted listing."""
    totals = {}
    for n, queue in enumerate(QUEUES):
        ids = range(n, messages, len(QUEUES))
        totals[queue] = (len(ids), sum(SIZE + i % 1000 for i in ids), START + n)
    return totals


def measure(messages: int) -> None:
    command = (sys.executable, str(Path(__file__).resolve()), "--emit", str(messages))
    listing_bytes = sum(len(line) for line in _emitted(command))
    config = QueueConfig("postfix", command, timeout_seconds=600)
    started, cpu = time.perf_counter(), time.process_time()
    listing = list_queue(config)
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    got = {q: (t.messages, t.size_bytes, int(t.oldest_arrival or 0)) for q, t in listing.items()}
    check = "totals as emitted" if got == expected(messages) else f"WRONG TOTALS {got}"
    tracemalloc.start()  # a second run: tracing slows Python down too much to time the first
    list_queue(config)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{messages:>9,} messages, listing {listing_bytes / 2**20:.1f} MB: probe {took:.2f} s wall "
          f"({messages / took:,.0f} messages/s), reading it {cpu:.2f} s CPU (the emitter runs beside it); "
          f"Python peak during the probe {peak / 2**20:.2f} MB, process peak RSS {rss:.0f} MB; {check}")


def _emitted(command: tuple[str, ...]):  # noqa: ANN202 - an iterator of lines
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        yield from process.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, action="append", help="queue size (repeatable; default 100000)")
    parser.add_argument("--emit", type=int, metavar="N", help=argparse.SUPPRESS)  # the stand-in postqueue -j
    args = parser.parse_args()
    if args.emit is not None:
        emit(args.emit)
        return 0
    for messages in args.messages or [100_000]:
        measure(messages)
    return 0


if __name__ == "__main__":
    sys.exit(main())

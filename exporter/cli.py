"""Command line entry point: argument parsing and wiring, nothing more."""

from __future__ import annotations

import argparse
import os
import sys

from prometheus_client import disable_created_metrics, generate_latest

from exporter import __version__, table
from exporter.lines import DEFAULT_MAX_LINE
from exporter.metrics import ExporterMetrics
from exporter.once import scan_files
from exporter.parsers import postfix


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="smtp-reply-exporter",
        description="Count SMTP reply codes and enhanced status codes in mail logs "
        "and expose them as Prometheus metrics.",
    )
    p.add_argument("logfiles", nargs="*", metavar="LOGFILE", help="log files; '-' is stdin")
    p.add_argument(
        "--once",
        action="store_true",
        help="read the files from start to end (plain or gzip), print the metrics, exit",
    )
    p.add_argument(
        "--output",
        choices=("prometheus", "table"),
        default="prometheus",
        help="with --once: Prometheus text exposition (default) or a human summary",
    )
    p.add_argument(
        "--max-line-bytes",
        type=int,
        default=DEFAULT_MAX_LINE,
        help="cut longer lines at this many bytes (default %(default)s)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="with --once: processes that count a large plain file in parallel "
        "(default: the number of CPUs, %(default)s here)",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.once:
        build_parser().error("only --once is available in this version")
    if not args.logfiles:
        build_parser().error("--once needs at least one LOGFILE (or '-' for stdin)")
    disable_created_metrics()
    metrics = ExporterMetrics()
    try:
        scan_files(
            args.logfiles, postfix.parse, postfix.TRIGGERS, metrics, args.max_line_bytes, args.workers
        )
    except OSError as err:
        print(f"smtp-reply-exporter: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 1
    if args.output == "table":
        sys.stdout.write(table.render(metrics))
    else:
        sys.stdout.buffer.write(generate_latest(metrics.registry))
    return 0

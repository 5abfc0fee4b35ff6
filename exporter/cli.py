"""Command line entry point: argument parsing and wiring, nothing more."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

from prometheus_client import disable_created_metrics, generate_latest

from exporter import __version__, table
from exporter.config import (
    COMMAND_LINE,
    Settings,
    SourceConfig,
    check_format,
    check_listen_address,
    check_scalar,
    check_state_file,
    check_telemetry_path,
    load_config,
    repeated_rejectlogs,
)
from exporter.configcheck import Checker, ConfigError, Problems
from exporter.logformat import FORMATS as LOG_FORMATS
from exporter.logformat import LEVELS as LOG_LEVELS
from exporter.logformat import setup_logging
from exporter.metrics import ExporterMetrics
from exporter.once import UnreadableLog, scan_files
from exporter.parsers import formats_for

if TYPE_CHECKING:
    from exporter.web.config import WebConfig

EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="smtp-reply-exporter",
        description="Count SMTP reply codes and enhanced status codes in mail logs "
        "and expose them as Prometheus metrics. Without --once it runs as a daemon: "
        "it follows the log files and serves the metrics over HTTP.",
    )
    p.add_argument(
        "logfiles", nargs="*", metavar="LOGFILE",
        help="log files or glob patterns to follow (with --once: files to read; '-' is stdin)",
    )
    p.add_argument("--config.file", "--config", dest="config", metavar="FILE",
                   help="YAML configuration file; flags override it")
    p.add_argument("--format", metavar="NAME",
                   help="log format of the LOGFILE arguments: auto (default), postfix, exim, ... "
                   "or a format the config defines")
    p.add_argument("--config.check", "--check-config", dest="check_config", action="store_true",
                   help="make every check the start makes (config, flags, web config, state file) and exit")
    once = p.add_argument_group("batch mode")
    once.add_argument(
        "--once", action="store_true",
        help="read the files from start to end (plain or gzip), print the metrics, exit",
    )
    once.add_argument(
        "--output", choices=("prometheus", "table"), default="prometheus",
        help="with --once: Prometheus text exposition (default) or a human summary",
    )
    once.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1,
        help="with --once: processes that count a large plain file in parallel (default: CPUs)",
    )
    web = p.add_argument_group("web")
    web.add_argument(
        "--web.listen-address", dest="listen_addresses", action="append", metavar="ADDR",
        help="address to listen on, repeatable (default :10925)",
    )
    web.add_argument("--web.telemetry-path", dest="telemetry_path", metavar="PATH",
                     help="path of the metrics (default /metrics)")
    web.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                     help="exporter-toolkit web config: TLS and basic auth; read again when it changes")
    web.add_argument("--web.systemd-socket", dest="systemd_socket", action="store_true",
                     help="listen on the sockets systemd passes (socket activation) instead of "
                     "--web.listen-address")
    tail = p.add_argument_group("tailing")
    tail.add_argument("--from-beginning", action="store_true", default=None,
                      help="read files present at start-up from their first byte, not their end")
    tail.add_argument("--state-file", metavar="FILE",
                      help="where read positions and counts are kept across restarts")
    tail.add_argument("--poll", action="store_true", default=None,
                      help="poll files instead of inotify (NFS, CIFS)")
    tail.add_argument("--max-line-bytes", type=int, metavar="N",
                      help="cut longer lines at this many bytes (default 65536)")
    p.add_argument("--log.level", dest="log_level", default="info", choices=(*LOG_LEVELS, "warning"),
                   help="log verbosity (default info; warning is taken for warn)")
    p.add_argument("--log.format", dest="log_format", default="logfmt", choices=LOG_FORMATS,
                   help="log lines as logfmt (default) or JSON, each with time, level, source and msg")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def settings_from(args: argparse.Namespace, problems: Problems | None = None) -> Settings:
    """The configuration file (if any) with the flags laid over it. ConfigError
    names every problem; given problems, they are added there instead."""
    found = Problems() if problems is None else problems
    settings = load_config(args.config, found) if args.config else Settings()
    flags = Checker(COMMAND_LINE)
    if args.logfiles:
        settings.sources = [SourceConfig(path=path) for path in args.logfiles]
    if args.format is not None:
        with found.gather():
            check_format(flags, "--format", args.format, settings.formats)
        for source in settings.sources:
            source.format = args.format
    if args.listen_addresses is not None:
        with found.gather():
            settings.listen_addresses = [check_listen_address(flags, "--web.listen-address", address)
                                         for address in args.listen_addresses]
    if args.telemetry_path is not None:
        with found.gather():
            settings.telemetry_path = check_telemetry_path(flags, "--web.telemetry-path", args.telemetry_path)
    if args.max_line_bytes is not None:
        with found.gather():
            settings.max_line_bytes = check_scalar(flags, "--max-line-bytes", "max_line_bytes", args.max_line_bytes)
    for attr in ("web_config_file", "state_file", "from_beginning", "poll"):
        value = getattr(args, attr)
        if value is not None:
            setattr(settings, attr, value)
    if problems is None:
        found.raise_any()
    for source in repeated_rejectlogs(settings.sources):
        logging.getLogger("smtp-reply-exporter").warning(
            "not reading %s: Exim's rejectlog repeats the rejections of the mainlog read beside it",
            source.path,
        )
        settings.sources.remove(source)
    return settings


def daemon_config(args: argparse.Namespace) -> tuple[Settings, WebConfig | None]:
    """What the daemon starts with, after every check of its start: the config
    file and flags, the web config file (its certificates loaded), the state
    file's directory. ConfigError names every problem found."""
    from exporter.web.config import load_web_config  # here: --once needs no web front

    problems = Problems()
    settings = settings_from(args, problems)
    web_config = None
    if settings.web_config_file:
        with problems.gather():
            web_config = load_web_config(settings.web_config_file)
    if settings.state_file:
        given_as = (COMMAND_LINE, "--state-file") if args.state_file else (args.config, "state_file")
        with problems.gather():
            check_state_file(Checker(given_as[0]), given_as[1], settings.state_file)
    problems.raise_any()
    return settings, web_config


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["backfill"]:
        from exporter import backfill  # a subcommand of its own, with its own flags

        return backfill.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    disable_created_metrics()
    try:
        settings, web_config = (settings_from(args), None) if args.once else daemon_config(args)
    except ConfigError as err:
        for problem in err.every:
            print(f"smtp-reply-exporter: configuration error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check_config:
        print(f"configuration OK: {len(settings.sources)} source(s)")
        return 0
    if not settings.sources:
        parser.error("no logs to read: give LOGFILE arguments or sources in --config")
    if args.once:
        return run_once(settings, args.output, args.workers)
    return run_daemon(settings, web_config, args)


def run_once(settings: Settings, output: str, workers: int) -> int:
    metrics = ExporterMetrics(max_reply_series=settings.max_reply_series)
    paths = [(s.path, formats_for(s.format, settings.formats), s.service) for s in settings.sources if s.path]
    try:
        scan_files(paths, metrics.sink_for, settings.max_line_bytes, workers, settings.labeller(metrics.services),
                   settings.max_reply_series)
    except UnreadableLog as err:
        print(f"smtp-reply-exporter: {err}", file=sys.stderr)
        return 1
    if output == "table":
        sys.stdout.write(table.render(metrics))
    else:
        sys.stdout.buffer.write(generate_latest(metrics.registry))
    return 0


def run_daemon(settings: Settings, web_config: WebConfig | None, args: argparse.Namespace) -> int:
    # Imported here: --once needs neither watchdog nor the web server.
    from prometheus_client import PlatformCollector, ProcessCollector

    from exporter.daemon import Daemon
    from exporter.queue_probe import start_queue_probe
    from exporter.web.server import serve
    from exporter.web.systemd import systemd_sockets
    from exporter.wakeup import Waker, handle_signals

    log = logging.getLogger("smtp-reply-exporter")
    try:
        # Before anything starts a child (journalctl), which must not inherit them.
        sockets = systemd_sockets() if args.systemd_socket else None
    except ValueError as err:
        print(f"smtp-reply-exporter: cannot listen: {err}", file=sys.stderr)
        return 1
    metrics = ExporterMetrics(max_reply_series=settings.max_reply_series)
    ProcessCollector(registry=metrics.registry)
    PlatformCollector(registry=metrics.registry)
    waker = Waker()
    stop, reload_requested = handle_signals(waker)
    daemon = Daemon(settings, metrics, wake=waker.wake)
    # Fix the start positions ("the end of each file present at start-up")
    # before the metrics are served, so that a client that sees the exporter
    # up knows every line written from then on will be counted.
    daemon.poll(stop.is_set)
    try:
        server = serve(metrics.registry, settings.listen_addresses, settings.telemetry_path, web_config, sockets)
    except OSError as err:
        print(f"smtp-reply-exporter: cannot listen: {err}", file=sys.stderr)
        return 1
    queue_probe = start_queue_probe(settings.queue, metrics)  # its own thread; a reload does not change it
    log.info(
        "smtp-reply-exporter %s: following %s; metrics on %s%s",
        __version__, ", ".join(s.name for s in settings.sources),
        ", ".join(server.addresses), settings.telemetry_path,
    )

    def reload() -> Settings:
        """SIGHUP: the start's checks again; the web front takes its part
        first, so that an address it cannot listen on fails the whole reload."""
        new_settings, new_web_config = daemon_config(args)
        server.reconfigure(new_settings.listen_addresses, new_settings.telemetry_path, new_web_config)
        return new_settings

    try:
        daemon.run(stop, waker, reload_requested, reload)
    finally:
        server.stop()
        if queue_probe is not None:
            queue_probe.stop()
    state_file = daemon.settings.state_file
    if not state_file:
        log.info("stopped; no --state-file, so counting starts afresh at the next start")
    elif daemon.state_saved:
        log.info("stopped; state saved to %s", state_file)
    else:
        log.error("stopped; the state could NOT be saved to %s (see the warning above): the next start "
                  "resumes from the last state written there, if any", state_file)
    return 0

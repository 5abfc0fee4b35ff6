"""The YAML configuration file, read into dataclasses and validated.

Every problem is a ConfigError (exporter/configcheck.py) naming the file, the
key path and what to do about it; the file is read to its end, so one run
names every problem, and the CLI exits with status 2 before anything starts.
"""

from __future__ import annotations

import math
import re
import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exporter.configcheck import Checker, Problems, load_yaml
from exporter.labels import DEFAULT_MAX_REPLY_SERIES, MAX_SERVICE_CHARS, OVERFLOW, Labeller, ServiceCap
from exporter.lines import DEFAULT_MAX_LINE
from exporter.parsers import AUTO, FORMATS, Format, with_custom
from exporter.providers import ProviderTable
from exporter.queue import FORMATS as QUEUE_FORMATS
from exporter.queue_probe import QueueConfig
from exporter.reasons import ReasonRules
from exporter.web.address import (
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_PORT,
    DEFAULT_TELEMETRY_PATH,
    parse_listen_address,
    parse_telemetry_path,
)

COMMAND_LINE = "(command line)"  # the "file" of problems in flags


@dataclass
class SourceConfig:
    """One log to follow: a file path or glob, or journald units."""

    path: str | None = None
    journal_units: list[str] = field(default_factory=list)
    format: str = AUTO
    # The service label of everything counted from it; None: each line's
    # syslog tag without the process name (see parsers/service.py).
    service: str | None = None

    @property
    def name(self) -> str:
        return self.path if self.path else "journal:" + ",".join(self.journal_units)


@dataclass
class Settings:
    sources: list[SourceConfig] = field(default_factory=list)
    listen_addresses: list[str] = field(default_factory=lambda: [DEFAULT_LISTEN_ADDRESS])
    telemetry_path: str = DEFAULT_TELEMETRY_PATH
    web_config_file: str | None = None
    state_file: str | None = None
    from_beginning: bool = False
    poll: bool = False
    poll_interval_seconds: float = 1.0
    rotation_grace_seconds: float = 5.0
    max_line_bytes: int = DEFAULT_MAX_LINE
    max_reply_series: int = DEFAULT_MAX_REPLY_SERIES
    formats: dict[str, Format] = field(default_factory=lambda: dict(FORMATS))
    providers: ProviderTable = field(default_factory=ProviderTable.bundled)
    reasons: ReasonRules = field(default_factory=ReasonRules.default)
    queue: QueueConfig | None = None  # no queue probe unless configured

    def labeller(self, services: ServiceCap | None = None) -> Labeller:
        """A labeller with the config's tables; services: the cap of the metrics it feeds."""
        return Labeller(self.providers, self.reasons, services)


@dataclass(frozen=True)
class _Scalar:
    """A top-level key holding one value: its type, the hint, and the rule it must meet."""

    read: Callable[[Checker, str, Any, str], Any]
    hint: str
    valid: Callable[[Any], bool] = lambda value: True

    def checked(self, checker: Checker, key: str, value: Any) -> Any:
        value = self.read(checker, key, value, self.hint)
        if not self.valid(value):
            checker.fail(key, f"got {value!r}; must be {self.hint}")
        return value


def _text(checker: Checker, key: str, value: Any, hint: str) -> str:
    return checker.text(key, value, hint)


def _boolean(checker: Checker, key: str, value: Any, hint: str) -> bool:
    return checker.boolean(key, value)


_SCALARS = {
    "state_file": _Scalar(_text, "a file path, e.g. /var/lib/smtp-reply-exporter/state.json"),
    "from_beginning": _Scalar(_boolean, "true or false"),
    "poll": _Scalar(_boolean, "true or false"),
    "poll_interval_seconds": _Scalar(Checker.number, "a number of seconds > 0, e.g. 1",
                                     lambda value: 0 < value < math.inf),
    "rotation_grace_seconds": _Scalar(Checker.number, "a number of seconds >= 0, e.g. 5",
                                      lambda value: 0 <= value < math.inf),
    "max_line_bytes": _Scalar(Checker.whole, "a whole number of bytes >= 1024, e.g. 65536",
                              lambda value: value >= 1024),
    "max_reply_series": _Scalar(Checker.whole, "a whole number of label sets >= 100, e.g. 2000",
                                lambda value: value >= 100),
}
_TOP_KEYS = ("sources", "web", *_SCALARS, "formats", "providers", "reasons", "queue")
_SOURCE_KEYS = ("path", "journal", "format", "service")
# A service label a source's config sets: a name, as a syslog tag is one.
_SERVICE_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_./-]{{0,{MAX_SERVICE_CHARS - 1}}}")
_WEB_KEYS = ("listen_addresses", "telemetry_path", "config_file")
_QUEUE_KEYS = ("mta", "command", "interval_seconds", "timeout_seconds")


def load_config(path: str, problems: Problems | None = None) -> Settings:
    """The settings of a config file. ConfigError names every problem in it;
    given problems, they are added there instead, and the settings read
    around them returned, so that a check can go on."""
    found = Problems() if problems is None else problems
    settings = Settings()
    with found.gather():
        _read(Checker(path), load_yaml(path, "--config", found), settings, found)
    if problems is None:
        found.raise_any()
    return settings


def _read(checker: Checker, data: Any, settings: Settings, found: Problems) -> None:
    top = checker.mapping("", data, None, "keys such as sources:, web:")
    with found.gather():
        checker.known_keys("", top, _TOP_KEYS)
    for key, value in top.items():
        with found.gather():
            if key == "sources":
                settings.sources = _sources(checker, value)
            elif key == "web":
                _web(checker, value, settings, found)
            elif key in _SCALARS:
                setattr(settings, key, _SCALARS[key].checked(checker, key, value))
            elif key == "formats":
                settings.formats = with_custom(checker.items("formats", value, "[{name: ..., match: ...}]"),
                                               checker, "formats")
            elif key == "providers":
                settings.providers = ProviderTable.from_config(value, checker, "providers")
            elif key == "reasons":
                settings.reasons = ReasonRules.from_config(value, checker, "reasons")
            elif key == "queue":
                settings.queue = _queue(checker, value, found)
    # A source may name a format defined in formats:, which is read by now;
    # if formats: itself is wrong, its problem is the one to report.
    if not any(problem.key.startswith("formats") for problem in found.found):
        for i, source in enumerate(settings.sources):
            with found.gather():
                check_format(checker, f"sources[{i}].format", source.format, settings.formats)


def _sources(checker: Checker, value: Any) -> list[SourceConfig]:
    items = checker.items("sources", value, "[{path: /var/log/mail.log}]")
    if not items:
        checker.fail("sources", "is empty; give at least one, e.g. [{path: /var/log/mail.log}]")
    out = []
    for i, item in enumerate(items):
        key = f"sources[{i}]"
        raw = checker.mapping(key, item, _SOURCE_KEYS, "path: or journal:, and format:")
        if ("path" in raw) == ("journal" in raw):
            checker.fail(key, "give exactly one of path: (a file or glob) or journal:")
        source = SourceConfig()
        if "path" in raw:
            source.path = checker.text(f"{key}.path", raw["path"], "a file path or glob, e.g. /var/log/mail.log")
        else:
            journal = checker.mapping(f"{key}.journal", raw["journal"], ("units",))
            units = journal.get("units")
            if not isinstance(units, list) or not units:
                checker.fail(f"{key}.journal.units", "must be a list of systemd unit names, e.g. [postfix.service]")
            source.journal_units = checker.texts(f"{key}.journal.units", units)
        if "format" in raw:
            source.format = checker.text(f"{key}.format", raw["format"], "a log format name, e.g. postfix")
        if "service" in raw:
            source.service = check_service(checker, f"{key}.service", raw["service"])
        out.append(source)
    return out


def _web(checker: Checker, value: Any, settings: Settings, found: Problems) -> None:
    web = checker.mapping("web", value, _WEB_KEYS)
    if "listen_addresses" in web:
        with found.gather():
            key = "web.listen_addresses"
            addresses = web["listen_addresses"]
            items = checker.items(key, [addresses] if isinstance(addresses, str) else addresses,
                                  f'["127.0.0.1:{DEFAULT_PORT}"]')
            if not items:
                checker.fail(key, f'is empty; give at least one, e.g. ["127.0.0.1:{DEFAULT_PORT}"]')
            settings.listen_addresses = [check_listen_address(checker, f"{key}[{i}]", address)
                                         for i, address in enumerate(items)]
    if "telemetry_path" in web:
        with found.gather():
            settings.telemetry_path = check_telemetry_path(checker, "web.telemetry_path", web["telemetry_path"])
    if "config_file" in web:
        with found.gather():
            settings.web_config_file = checker.text("web.config_file", web["config_file"],
                                                    "the path of an exporter-toolkit web config file")


def _queue(checker: Checker, value: Any, found: Problems) -> QueueConfig | None:
    raw = checker.mapping("queue", value, None, "mta:, and optionally command:, interval_seconds:, timeout_seconds:")
    with found.gather():
        checker.known_keys("queue", raw, _QUEUE_KEYS)
    if "mta" not in raw:
        checker.fail("queue.mta", f"is missing; give the MTA whose queue to list: {', '.join(QUEUE_FORMATS)}")
    queue = QueueConfig(checker.choice("queue.mta", raw["mta"], QUEUE_FORMATS))
    for key in ("interval_seconds", "timeout_seconds"):
        if key in raw:
            with found.gather():
                setattr(queue, key, _SECONDS.checked(checker, f"queue.{key}", raw[key]))
    with found.gather():
        if "command" in raw:
            command = raw["command"]
            if isinstance(command, str):
                try:
                    command = shlex.split(command)
                except ValueError as err:
                    checker.fail("queue.command", f"cannot be split into words like a shell would: {err}")
                if not command:
                    checker.fail("queue.command", "is empty; give a command, e.g. postqueue -j")
            queue.command = tuple(checker.texts("queue.command", command))
        program = queue.argv[0]
        if shutil.which(program) is None:
            given = "the command given" if queue.command else f"{queue.mta}'s listing command"
            checker.fail("queue.command", f"{program}, {given}, is not an executable file or on PATH; "
                         "install it or give its full path in queue.command")
    return queue


_SECONDS = _Scalar(Checker.number, "a number of seconds > 0, e.g. 30", lambda value: 0 < value < math.inf)


# Checks of values that come from the file or from a flag, named by either.


def check_listen_address(checker: Checker, key: str, address: Any) -> str:
    """An address the server can listen on: the server's own parser decides."""
    try:
        parse_listen_address(checker.text(key, address, "host:port"))
    except ValueError as err:
        checker.fail(key, str(err))
    return address


def check_telemetry_path(checker: Checker, key: str, path: Any) -> str:
    """A path the server can serve the metrics on: the server's own check decides."""
    try:
        parse_telemetry_path(checker.text(key, path, f"a path such as {DEFAULT_TELEMETRY_PATH}"))
    except ValueError as err:
        checker.fail(key, str(err))
    return path


def check_service(checker: Checker, key: str, value: Any) -> str:
    """A service label given in the config (or backfill's --service)."""
    service = checker.text(key, value, "a service name, e.g. submission")
    if not _SERVICE_NAME.fullmatch(service) or service == OVERFLOW:
        checker.fail(key, f"{service!r} is not a service name: up to {MAX_SERVICE_CHARS} letters, digits and _ . / -, "
                          f"starting with a letter or digit, and not {OVERFLOW!r}")
    return service


def check_format(checker: Checker, key: str, name: str, formats: dict[str, Format]) -> None:
    if name != AUTO and name not in formats:
        checker.fail(key, f"{name!r} is not one of: {', '.join((AUTO, *formats))}")


def check_scalar(checker: Checker, key: str, config_key: str, value: Any) -> Any:
    """A value of the top-level config_key, however it was given."""
    return _SCALARS[config_key].checked(checker, key, value)


def check_state_file(checker: Checker, key: str, state_file: str) -> None:
    """That the daemon can write its state file there."""
    directory = os.path.dirname(state_file) or "."
    if not os.path.isdir(directory):
        checker.fail(key, f"directory {directory} does not exist; create it (writable by this user) first")
    if not os.access(directory, os.W_OK):
        checker.fail(key, f"directory {directory} is not writable by this user")


def repeated_rejectlogs(sources: list[SourceConfig]) -> list[SourceConfig]:
    """Sources that only repeat another source's lines, so must not be counted.

    Exim writes every rejection to its mainlog and again, word for word, to
    its rejectlog (adding header dumps, which carry no reply). When a mainlog
    is read, a rejectlog beside it would count each rejection twice; read
    alone, it is the only record of them and counts.
    """
    def named(source: SourceConfig, word: str) -> bool:
        return source.path is not None and word in os.path.basename(source.path)

    if not any(named(s, "mainlog") for s in sources):
        return []
    return [s for s in sources if named(s, "rejectlog")]

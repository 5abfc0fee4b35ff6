"""The YAML configuration file, read into dataclasses and validated.

Every error names the file, the key (as a dotted path) and what to do about
it, and the CLI exits with status 2 on one, before anything starts.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

from exporter.labels import DEFAULT_MAX_REPLY_SERIES, Labeller
from exporter.lines import DEFAULT_MAX_LINE
from exporter.parsers import AUTO, FORMATS, Format, with_custom
from exporter.providers import ProviderTable
from exporter.reasons import ReasonRuleError, ReasonRules

# The Prometheus default port list has allocated all of 9100-9999; 10925 lies
# above it ("25" for SMTP) and clear of the ports mail hosts use themselves,
# such as 10024-10026 for content filters.
DEFAULT_PORT = 10925


class ConfigError(Exception):
    def __init__(self, file: str, key: str, problem: str) -> None:
        super().__init__(f"{file}: {key}: {problem}")


@dataclass
class SourceConfig:
    """One log to follow: a file path or glob, or journald units."""

    path: str | None = None
    journal_units: list[str] = field(default_factory=list)
    format: str = AUTO

    @property
    def name(self) -> str:
        return self.path if self.path else "journal:" + ",".join(self.journal_units)


@dataclass
class Settings:
    sources: list[SourceConfig] = field(default_factory=list)
    listen_addresses: list[str] = field(default_factory=lambda: [f":{DEFAULT_PORT}"])
    telemetry_path: str = "/metrics"
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

    def labeller(self) -> Labeller:
        return Labeller(self.providers, self.reasons)


# Top-level keys of the file: key -> (Settings field, expected type, hint).
_SCALARS: dict[str, tuple[str, type | tuple[type, ...], str]] = {
    "state_file": ("state_file", str, "a file path, e.g. /var/lib/smtp-reply-exporter/state.json"),
    "from_beginning": ("from_beginning", bool, "true or false"),
    "poll": ("poll", bool, "true or false"),
    "poll_interval_seconds": ("poll_interval_seconds", (int, float), "a number of seconds > 0"),
    "rotation_grace_seconds": ("rotation_grace_seconds", (int, float), "a number of seconds >= 0"),
    "max_line_bytes": ("max_line_bytes", int, "a whole number of bytes >= 1024"),
    "max_reply_series": ("max_reply_series", int, "a whole number of label sets >= 100"),
}
# Keys whose value its own module compiles and checks.
_TABLES = ("formats", "providers", "reasons")
_WEB = {
    "listen_addresses": f"a list of host:port strings, e.g. [\":{DEFAULT_PORT}\"]",
    "telemetry_path": "a path starting with /, e.g. /metrics",
    "config_file": "the path of an exporter-toolkit web config file",
}


def load_config(path: str) -> Settings:
    import yaml  # here: a run without --config (the --once one-liner) need not load it

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as err:
        raise ConfigError(path, "(file)", f"cannot read it: {err.strerror}") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(path, "(file)", f"not valid YAML{where}: {getattr(err, 'problem', err)}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, "(top level)", "must be a mapping of keys such as sources:, web:")
    settings = Settings()
    for key, value in data.items():
        if key == "sources":
            settings.sources = _sources(path, value)
        elif key == "web":
            _web(path, value, settings)
        elif key in _SCALARS:
            attr, kind, hint = _SCALARS[key]
            setattr(settings, attr, _typed(path, key, value, kind, hint))
        elif key == "formats":
            settings.formats = _formats(path, value)
        elif key == "providers":
            settings.providers = _providers(path, value)
        elif key == "reasons":
            settings.reasons = _reasons(path, value)
        else:
            known = ", ".join(["sources", "web", *_SCALARS, *_TABLES])
            raise ConfigError(path, str(key), f"unknown key; known keys are: {known}")
    check(settings, path)
    return settings


def _typed(path: str, key: str, value: Any, kind: type | tuple[type, ...], hint: str) -> Any:
    # bool is an int in Python; a number where a bool is wanted (or the
    # reverse) is a mistake worth reporting.
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise ConfigError(path, key, f"got {value!r}; expected {hint}")
    return value


def _formats(path: str, value: Any) -> dict[str, Format]:
    if not isinstance(value, list):
        raise ConfigError(path, "formats", "must be a list of {name:, match:} entries")
    try:
        return with_custom(value)
    except ValueError as err:
        # with_custom names the entry at fault: "[2].match: problem".
        where, _, problem = str(err).partition(": ")
        raise ConfigError(path, "formats" + where, problem) from None


def _providers(path: str, value: Any) -> ProviderTable:
    try:
        return ProviderTable.from_config(value)
    except ValueError as err:
        raise ConfigError(path, "providers", str(err)) from None


def _reasons(path: str, value: Any) -> ReasonRules:
    try:
        return ReasonRules.from_config(value, "reasons")
    except ReasonRuleError as err:
        raise ConfigError(path, err.key, err.problem) from None


def _sources(path: str, value: Any) -> list[SourceConfig]:
    if not isinstance(value, list) or not value:
        raise ConfigError(path, "sources", "must be a non-empty list, e.g. [{path: /var/log/mail.log}]")
    out = []
    for i, item in enumerate(value):
        key = f"sources[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(path, key, "must be a mapping with path: or journal:")
        unknown = set(item) - {"path", "journal", "format"}
        if unknown:
            raise ConfigError(path, f"{key}.{sorted(unknown)[0]}", "unknown key; use path, journal or format")
        if ("path" in item) == ("journal" in item):
            raise ConfigError(path, key, "give exactly one of path: (a file or glob) or journal:")
        source = SourceConfig()
        if "path" in item:
            source.path = _typed(path, f"{key}.path", item["path"], str, "a file path or glob")
            if not source.path:
                raise ConfigError(path, f"{key}.path", "is empty; give a file path or glob, e.g. /var/log/mail.log")
        else:
            journal = item["journal"]
            units = journal.get("units") if isinstance(journal, dict) else None
            if not isinstance(units, list) or not units or not all(isinstance(u, str) for u in units):
                raise ConfigError(path, f"{key}.journal.units", "must be a list of systemd unit names, e.g. [postfix.service]")
            source.journal_units = units
        if "format" in item:
            source.format = _typed(path, f"{key}.format", item["format"], str, "a log format name")
        out.append(source)
    return out


def _web(path: str, value: Any, settings: Settings) -> None:
    if not isinstance(value, dict):
        raise ConfigError(path, "web", "must be a mapping with listen_addresses, telemetry_path, config_file")
    for key, item in value.items():
        if key not in _WEB:
            raise ConfigError(path, f"web.{key}", f"unknown key; known keys are: {', '.join(_WEB)}")
        if key == "listen_addresses":
            if isinstance(item, str):
                item = [item]
            if not isinstance(item, list) or not item or not all(isinstance(a, str) for a in item):
                raise ConfigError(path, "web.listen_addresses", f"got {item!r}; expected {_WEB[key]}")
            settings.listen_addresses = item
        elif key == "telemetry_path":
            settings.telemetry_path = _typed(path, "web.telemetry_path", item, str, _WEB[key])
        else:
            settings.web_config_file = _typed(path, "web.config_file", item, str, _WEB[key])


def check(settings: Settings, path: str = "(command line)") -> None:
    """Checks that hold whether a value came from the file or from a flag."""
    for source in settings.sources:
        if source.format != AUTO and source.format not in settings.formats:
            names = ", ".join((AUTO, *settings.formats))
            raise ConfigError(path, "sources.format", f"{source.format!r} is not one of: {names}")
    if not settings.telemetry_path.startswith("/") or settings.telemetry_path == "/":
        raise ConfigError(path, "web.telemetry_path", f"got {settings.telemetry_path!r}; expected a path such as /metrics")
    for address in settings.listen_addresses:
        _, sep, port = address.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(path, "web.listen_addresses", f"got {address!r}; expected host:port, e.g. 127.0.0.1:{DEFAULT_PORT} or :{DEFAULT_PORT}")
    if not 0 < settings.poll_interval_seconds < math.inf:
        raise ConfigError(path, "poll_interval_seconds", "must be a number of seconds > 0, e.g. 1")
    if not 0 <= settings.rotation_grace_seconds < math.inf:
        raise ConfigError(path, "rotation_grace_seconds", "must be a number of seconds >= 0, e.g. 5")
    if settings.max_line_bytes < 1024:
        raise ConfigError(path, "max_line_bytes", "must be at least 1024")
    if settings.max_reply_series < 100:
        raise ConfigError(path, "max_reply_series", "must be at least 100")


def state_file_problem(state_file: str) -> str | None:
    """Why the daemon could not write its state file there, or None."""
    directory = os.path.dirname(state_file) or "."
    if not os.path.isdir(directory):
        return f"directory {directory} does not exist; create it (writable by this user) first"
    if not os.access(directory, os.W_OK):
        return f"directory {directory} is not writable by this user"
    return None


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


def replace(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)

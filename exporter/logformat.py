"""The log lines Prometheus' own programs write (promslog): logfmt or JSON,
each with time, level, source and msg.

    time=2025-03-05T10:07:33.592Z level=INFO source=cli.py:230 msg="following /var/log/mail.log"
"""

from __future__ import annotations

import datetime
import json
import logging
import sys

LEVELS = ("debug", "info", "warn", "error")  # --log.level, as promslog names them
FORMATS = ("logfmt", "json")
_LEVEL_NAMES = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARN", logging.ERROR: "ERROR",
                logging.CRITICAL: "ERROR"}


def _logfmt_value(text: str) -> str:
    """A value as is, or quoted when it holds a space, '=', '"' or anything unprintable."""
    if text and all(c.isprintable() and not c.isspace() and c not in '="' for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


class PromslogFormatter(logging.Formatter):
    def __init__(self, log_format: str = "logfmt") -> None:
        super().__init__()
        if log_format not in FORMATS:
            raise ValueError(f"log format {log_format!r}; expected one of {', '.join(FORMATS)}")
        self._json = log_format == "json"

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        fields = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": _LEVEL_NAMES.get(record.levelno, record.levelname),
            "source": f"{record.filename}:{record.lineno}",
            "msg": record.getMessage(),
        }
        if record.exc_info:
            fields["err"] = self.formatException(record.exc_info)
        if self._json:
            return json.dumps(fields, ensure_ascii=False)
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items())


def setup_logging(level: str, log_format: str) -> None:
    """Log to stderr at this level ("warning" is taken for "warn") in this format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PromslogFormatter(log_format))
    logging.basicConfig(level="WARNING" if level in ("warn", "warning") else level.upper(), handlers=[handler])

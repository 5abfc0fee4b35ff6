"""The time of a log line, in every shape of log the exporter reads.

- RFC 3339 with an offset (Debian 12's rsyslog): "2026-12-06T10:00:00.123456+01:00 host ..."
- classic syslog, without year or zone: "Dec  6 10:00:00 host ..." (Postfix's own
  maillog_file pads the day with a zero, "Dec 06", and may add ".123456")
- Exim's own mainlog: "2026-11-03 17:44:15 ...", optionally with ".123" and a " +0100" offset
- journald's JSON export: __REALTIME_TIMESTAMP, microseconds since the epoch

Times are whole microseconds since the epoch (ints: a float cannot hold them
exactly). A time without a zone is read in the zone given (the host's, or
--timezone), through zoneinfo, so it is right on both sides of a DST change:
in the hour that repeats when clocks go back, a line is taken as the second
pass of that hour when the line before it was already past it in the first.
A classic stamp has no year: the first line's is the file's modification
year (or the year before, when its date lies after the modification date),
and it moves on by one where December turns into January inside the file.
"""

from __future__ import annotations

import calendar
import os
import re
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

US = 1_000_000
# In the hour that repeats when clocks go back, a time read as its first pass
# that lies this much before the line before it is read as its second pass.
FOLD_SLACK_US = 300 * US

MONTHS = {name.encode(): n for n, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}

_RFC3339 = re.compile(
    rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(Z|z|[+-]\d\d:?\d\d)? ")
_EXIM = re.compile(rb"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?: ([+-]\d\d\d\d))? ")
_CLASSIC = re.compile(rb"([A-Z][a-z]{2}) ([ \d]?\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))? ")


def local_zone() -> tzinfo:
    """The host's zone with its DST rules (TZ, else /etc/localtime), UTC if neither is readable."""
    key = os.environ.get("TZ", "").lstrip(":")
    try:
        if key:
            return ZoneInfo(key)
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError, ZoneInfoNotFoundError):
        return timezone.utc


def zone_named(name: str) -> tzinfo:
    """--timezone: an IANA name ("Europe/Berlin") or "UTC"; ValueError if unknown."""
    try:
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError) as err:
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin, or UTC)") from err


def _fraction_us(digits: bytes | None) -> int:
    return int(digits[:6].ljust(6, b"0")) if digits else 0


def _offset_seconds(text: bytes) -> int:
    if text in (b"Z", b"z"):
        return 0
    digits = text[1:].replace(b":", b"")
    seconds = int(digits[:2]) * 3600 + int(digits[2:]) * 60
    return -seconds if text[:1] == b"-" else seconds


class LineClock:
    """Reads the time of each line of one file, in order (the classic year
    and the DST fold depend on the lines before)."""

    def __init__(self, zone: tzinfo, mtime: float) -> None:
        self.zone = zone
        modified = datetime.fromtimestamp(mtime, zone)
        self._modified = (modified.year, modified.month, modified.day)
        self._year = 0  # of the last classic line; 0: none yet
        self._month = 0
        self._last_us: int | None = None  # the last local (zone-less) time read

    def time_us(self, line: bytes) -> int | None:
        """The line's time in microseconds since the epoch, None if it shows none."""
        first = line[:1]
        if first.isdigit():
            m = _RFC3339.match(line) or _EXIM.match(line)
            return self._stamp(m) if m is not None else None
        m = _CLASSIC.match(line)
        if m is None:
            return None
        month = MONTHS.get(m[1])
        if month is None:
            return None
        year = self._classic_year(month, int(m[2]))
        return self._local(year, month, int(m[2]), int(m[3]), int(m[4]), int(m[5]), _fraction_us(m[6]))

    def _stamp(self, m: re.Match[bytes]) -> int | None:
        """The time of an RFC 3339 or Exim stamp; its zone offset (group 8), if any, or the local zone's."""
        offset: bytes | None = m[8]
        fields = int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6])
        fraction = _fraction_us(m[7])
        if offset is None:
            return self._local(*fields, fraction)
        try:
            datetime(*fields)  # timegm would take Feb 30 for Mar 2
        except ValueError:
            return None
        seconds = calendar.timegm((*fields, 0, 0, 0))
        return (seconds - _offset_seconds(offset)) * US + fraction

    def _classic_year(self, month: int, day: int) -> int:
        if not self._year:
            year, m_month, m_day = self._modified
            self._year = year if (month, day) <= (m_month, m_day) else year - 1
        elif month == 1 and self._month == 12:
            self._year += 1
        elif month == 12 and self._month == 1:
            return self._year - 1  # a late December line just after the turn of the year
        self._month = month
        return self._year

    def _local(self, year: int, month: int, day: int, hour: int, minute: int, second: int,
               fraction: int) -> int | None:
        try:
            first = datetime(year, month, day, hour, minute, second, tzinfo=self.zone)
        except ValueError:  # Feb 30, hour 25: not a time
            return None
        t = int(first.timestamp()) * US + fraction
        second_pass = int(first.replace(fold=1).timestamp()) * US + fraction
        if second_pass != t and self._last_us is not None and t < self._last_us - FOLD_SLACK_US:
            t = second_pass  # the repeated hour, and the line before was already past this in its first pass
        self._last_us = t
        return t


def bucket_of(t_us: int, step_us: int) -> int:
    """The index of the first sample at or after t: the sample at i * step
    holds every line logged at or before it."""
    return -(-t_us // step_us)


_DURATION = re.compile(r"(\d+)(ms|[smhdwy])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_duration(text: str) -> int:
    """A Prometheus-style duration ("1m", "90s", "1h30m", "30d") in whole seconds; ValueError otherwise."""
    pos, total = 0, 0
    for m in _DURATION.finditer(text):
        if m.start() != pos or m[2] == "ms":
            break
        total += int(m[1]) * _UNIT_SECONDS[m[2]]
        pos = m.end()
    if pos != len(text) or not text or total <= 0:
        raise ValueError(f"{text!r} is not a duration in whole seconds such as 1m, 90s or 1h30m")
    return total


_WHEN = re.compile(r"(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,6}))?)?)?(Z|[+-]\d\d:?\d\d)?")


def parse_when(text: str, now: float, zone: tzinfo) -> int:
    """--since/--until: a duration before now ("7d", "12h"), a Unix time
    ("@1795876800"), or a date and time ("2026-11-28", "2026-11-28 10:00",
    "2026-11-28T10:00:00+01:00"; without an offset in zone). Microseconds
    since the epoch; ValueError otherwise."""
    text = text.strip()
    if text.startswith("@"):
        try:
            return round(float(text[1:]) * US)
        except ValueError as err:
            raise ValueError(f"{text!r} is not a Unix time such as @1795876800") from err
    m = _WHEN.fullmatch(text)
    if m is None:
        try:
            return round(now * US) - parse_duration(text) * US
        except ValueError:
            raise ValueError(f"{text!r} is neither a time (2026-11-28, 2026-11-28T10:00:00+01:00, "
                             f"@UNIXTIME) nor a duration before now (7d, 12h)") from None
    fields = [int(g) if g else 0 for g in m.groups()[:6]]
    local = datetime(*fields)  # type: ignore[arg-type] # six ints
    fraction = _fraction_us(m[7].encode() if m[7] else None)
    if m[8]:
        aware = local.replace(tzinfo=timezone(timedelta(seconds=_offset_seconds(m[8].encode()))))
    else:
        aware = local.replace(tzinfo=zone)
    return int(aware.timestamp()) * US + fraction

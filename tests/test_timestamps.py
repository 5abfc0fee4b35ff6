"""Reading the time of a log line in every shape the exporter reads, for backfill.

Every expected time is written as the UTC wall clock it stands for, so each
case says what the stamp means; none depends on the day the suite runs or on
the machine's zone (the zone is given).
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from exporter.backfill import _journal_entry
from exporter.timestamps import LineClock, bucket_of, parse_duration, parse_when

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
US = 1_000_000
REST = b" mx1 postfix/smtpd[2211]: connect from c.example[192.0.2.1]"


def utc_us(*fields: int, micro: int = 0) -> int:
    return int(datetime(*fields, tzinfo=timezone.utc).timestamp()) * US + micro


def mtime(*fields: int, zone=BERLIN) -> float:  # noqa: ANN001
    return datetime(*fields, tzinfo=zone).timestamp()


@pytest.mark.parametrize(("stamp", "expected"), [
    (b"2026-12-06T10:00:00.123456+01:00", utc_us(2026, 12, 6, 9, 0, 0, micro=123456)),
    (b"2026-12-06T10:00:00+01:00", utc_us(2026, 12, 6, 9, 0, 0)),
    (b"2026-12-06T10:00:00.5Z", utc_us(2026, 12, 6, 10, 0, 0, micro=500000)),
    (b"2026-07-06T10:00:00.000001-04:00", utc_us(2026, 7, 6, 14, 0, 0, micro=1)),
    # Classic syslog in the zone given: CET in December, CEST in July.
    (b"Dec  6 10:00:00", utc_us(2026, 12, 6, 9, 0, 0)),
    (b"Jul 16 10:00:00", utc_us(2026, 7, 16, 8, 0, 0)),
    # Postfix's own maillog_file: a zero-padded day, and microseconds on newer versions.
    (b"Dec 06 10:00:00", utc_us(2026, 12, 6, 9, 0, 0)),
    (b"Dec 06 10:00:00.250000", utc_us(2026, 12, 6, 9, 0, 0, micro=250000)),
    # Exim's mainlog: local time, or with the offset it logged (log_timezone), or milliseconds.
    (b"2026-11-03 17:44:15", utc_us(2026, 11, 3, 16, 44, 15)),
    (b"2026-11-03 17:44:15 +0000", utc_us(2026, 11, 3, 17, 44, 15)),
    (b"2026-11-03 17:44:15.123 -0500", utc_us(2026, 11, 3, 22, 44, 15, micro=123000)),
], ids=lambda v: v.decode() if isinstance(v, bytes) else None)
def test_each_stamp_shape(stamp, expected):
    clock = LineClock(BERLIN, mtime(2026, 12, 31))
    assert clock.time_us(stamp + REST) == expected


def test_exim_mainlog_line_with_its_message_id():
    line = b"2026-11-03 17:44:15 1xXMrL-0008Bq-2c ** cy@example.com R=dnslookup T=remote_smtp: SMTP error"
    assert LineClock(NEW_YORK, mtime(2026, 12, 1)).time_us(line) == utc_us(2026, 11, 3, 22, 44, 15)


@pytest.mark.parametrize("line", [
    b"",
    b"    continued text of the line before",
    b"postfix/smtpd[2211]: connect from c.example[192.0.2.1]",
    b"Foo  6 10:00:00 mx1 not a month",
    b"2026-02-30T10:00:00+01:00 mx1 no such day",
    b"2026-12-06 mx1 a date without a time",
])
def test_a_line_without_a_readable_time_has_none(line):
    assert LineClock(BERLIN, mtime(2026, 12, 31)).time_us(line) is None


def test_classic_year_comes_from_the_modification_time():
    clock = LineClock(BERLIN, mtime(2025, 8, 1))
    assert clock.time_us(b"Jul 31 23:00:00" + REST) == utc_us(2025, 7, 31, 21, 0, 0)


def test_classic_year_is_the_one_before_when_the_date_lies_after_the_modification_date():
    # Written from November to January, rotated on January 2nd.
    clock = LineClock(BERLIN, mtime(2027, 1, 2, 6, 25))
    assert clock.time_us(b"Nov 28 10:00:00" + REST) == utc_us(2026, 11, 28, 9, 0, 0)


def test_classic_year_rolls_over_from_december_to_january_inside_a_file():
    clock = LineClock(BERLIN, mtime(2027, 1, 2, 6, 25))
    times = [clock.time_us(stamp + REST) for stamp in (
        b"Dec 31 23:59:58", b"Dec 31 23:59:59", b"Jan  1 00:00:00", b"Dec 31 23:59:59", b"Jan  1 00:00:01")]
    assert times == [
        utc_us(2026, 12, 31, 22, 59, 58),
        utc_us(2026, 12, 31, 22, 59, 59),
        utc_us(2026, 12, 31, 23, 0, 0),
        utc_us(2026, 12, 31, 22, 59, 59),  # logged late, still last year's
        utc_us(2026, 12, 31, 23, 0, 1),
    ]


def test_clocks_going_back_the_repeated_hour_is_read_twice_in_order():
    # Europe/Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:00-02:59 happen twice.
    clock = LineClock(BERLIN, mtime(2026, 10, 26))
    stamps = (b"Oct 25 01:59:59", b"Oct 25 02:00:00", b"Oct 25 02:59:59", b"Oct 25 02:00:00", b"Oct 25 02:30:00",
              b"Oct 25 02:59:59", b"Oct 25 03:00:00")
    assert [clock.time_us(s + REST) for s in stamps] == [
        utc_us(2026, 10, 24, 23, 59, 59),
        utc_us(2026, 10, 25, 0, 0, 0),  # CEST, first pass
        utc_us(2026, 10, 25, 0, 59, 59),
        utc_us(2026, 10, 25, 1, 0, 0),  # CET, second pass
        utc_us(2026, 10, 25, 1, 30, 0),
        utc_us(2026, 10, 25, 1, 59, 59),
        utc_us(2026, 10, 25, 2, 0, 0),
    ]


def test_clocks_going_forward_the_skipped_hour_leaves_no_gap_in_time():
    clock = LineClock(BERLIN, mtime(2026, 3, 30))
    before, after = (clock.time_us(s + REST) for s in (b"Mar 29 01:59:59", b"Mar 29 03:00:00"))
    assert (before, after) == (utc_us(2026, 3, 29, 0, 59, 59), utc_us(2026, 3, 29, 1, 0, 0))


def test_rfc3339_offsets_across_a_dst_change_need_no_zone():
    clock = LineClock(ZoneInfo("Asia/Tokyo"), mtime(2026, 10, 26))  # the zone given plays no part
    assert [clock.time_us(s + REST) for s in (b"2026-10-25T02:59:59+02:00", b"2026-10-25T02:00:00+01:00")] == [
        utc_us(2026, 10, 25, 0, 59, 59), utc_us(2026, 10, 25, 1, 0, 0)]


def test_journal_export_time_is_its_realtime_timestamp_and_the_line_is_the_syslog_one():
    raw = (b'{"__REALTIME_TIMESTAMP":"1795904729123456","_HOSTNAME":"mx1","SYSLOG_IDENTIFIER":"postfix/smtp",'
           b'"SYSLOG_PID":"12154","MESSAGE":"C0E4016A252: to=<a@example.org>, status=sent (250 2.0.0 Ok)"}')
    t, line = _journal_entry(raw)
    assert t == 1795904729123456
    assert line == b"mx1 postfix/smtp[12154]: C0E4016A252: to=<a@example.org>, status=sent (250 2.0.0 Ok)\n"
    assert _journal_entry(b'{"MESSAGE":"no time"}')[0] is None
    assert _journal_entry(b"not json") == (None, None)


@pytest.mark.parametrize(("t", "step", "expected"), [
    (60 * US, 60 * US, 1),  # exactly at a sample: in it
    (60 * US + 1, 60 * US, 2),  # a microsecond after: in the next
    (119 * US, 60 * US, 2),
    (1, 60 * US, 1),
])
def test_a_line_counts_in_the_first_sample_at_or_after_it(t, step, expected):
    assert bucket_of(t, step) == expected


def test_durations():
    assert [parse_duration(d) for d in ("1m", "90s", "1h30m", "30d", "1w")] == [60, 90, 5400, 30 * 86400, 7 * 86400]
    for bad in ("", "0s", "1.5m", "500ms", "m", "1m 2s"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_since_and_until_forms():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc).timestamp()
    assert parse_when("7d", now, BERLIN) == utc_us(2026, 11, 24, 12, 0, 0)
    assert parse_when("@1795876800", now, BERLIN) == 1795876800 * US
    assert parse_when("@1795876800.5", now, BERLIN) == 1795876800 * US + 500000
    assert parse_when("2026-11-28", now, BERLIN) == utc_us(2026, 11, 27, 23, 0, 0)
    assert parse_when("2026-11-28 10:00", now, BERLIN) == utc_us(2026, 11, 28, 9, 0, 0)
    assert parse_when("2026-11-28T10:00:00+00:00", now, BERLIN) == utc_us(2026, 11, 28, 10, 0, 0)
    assert parse_when("2026-11-28T10:00:00Z", now, BERLIN) == utc_us(2026, 11, 28, 10, 0, 0)
    for bad in ("yesterday", "2026-11", "@soon"):
        with pytest.raises(ValueError):
            parse_when(bad, now, BERLIN)

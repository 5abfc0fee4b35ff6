"""What a reply is: the events parsers emit, and the syntax of reply codes.

Every MTA parser reduces a log line to these events, so the metrics, the
table output and the tests speak one language whatever the MTA.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

OUTBOUND = "outbound"  # a remote server's reply to our MTA
INBOUND = "inbound"  # our MTA's reply to its client

STAGES = (
    "connect",
    "helo",
    "starttls",
    "auth",
    "mail",
    "rcpt",
    "data",
    "end_of_data",
    "other",
    "unknown",
)

DELIVERY_STATUSES = ("sent", "deferred", "bounced", "expired")

# The stage each SMTP command verb answers. Parsers extend this with the
# words their MTA logs in its place ("end of DATA", "check_rcpt", ...).
COMMAND_STAGES = {
    "HELO": "helo",
    "EHLO": "helo",
    "LHLO": "helo",
    "STARTTLS": "starttls",
    "AUTH": "auth",
    "MAIL": "mail",
    "RCPT": "rcpt",
    "DATA": "data",
    "BDAT": "data",
    "VRFY": "other",
    "EXPN": "other",
    "ETRN": "other",
    "RSET": "other",
    "NOOP": "other",
    "QUIT": "other",
}


class Reply(NamedTuple):
    """One SMTP reply, as a parser read it from one log line."""

    direction: str
    code: str  # "550", or "" when the log shows only an enhanced code
    reply_class: str  # "2xx" .. "5xx"
    enhanced: str  # "5.1.1" as carried by the reply itself, or ""
    stage: str
    host: str = ""  # the remote server's host name as logged (outbound), or ""
    text: str = ""  # what a 4xx or 5xx reply says, as logged, for its reason


class Delivery(NamedTuple):
    """One delivery attempt by our MTA, whether or not it got a reply."""

    status: str
    host: str = ""  # the relay host name as logged, or "" when there was none


class Delay(NamedTuple):
    """How long a message waited until a delivery attempt ended (Postfix and
    Sendmail delay=, OpenSMTPD delay=, Exim QT=): beside that attempt's
    Delivery, with the same status."""

    status: str
    seconds: float


TLS_PROTOCOLS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", "other")
# How far the peer's certificate was checked: anonymous (none presented or
# asked for), untrusted (presented, not verified), trusted (its chain
# verified), verified (chain and name matched, or DANE), unknown (not logged).
TLS_TRUSTS = ("anonymous", "untrusted", "trusted", "verified", "unknown")


class Tls(NamedTuple):
    """One connection, or one message on it where the MTA logs TLS per
    message, that used TLS."""

    direction: str
    protocol: str  # one of TLS_PROTOCOLS
    trust: str  # one of TLS_TRUSTS


def tls_protocol(version: str) -> str:
    """TLS_PROTOCOLS' name of a logged version: "TLSv1.3" (OpenSSL), "TLS1.3"
    (Exim with GnuTLS), "TLSv1.0"; "other" for SSLv3 and anything else."""
    number = version.removeprefix("TLSv").removeprefix("TLS")
    name = "TLSv1" if number in ("1", "1.0") else f"TLSv{number}"
    return name if name in TLS_PROTOCOLS else "other"


# What a parser gives for one line.
Event = Reply | Delivery | Delay | Tls


# A reply code is [2-5][0-5][0-9] (RFC 5321 4.2), standing alone (also as the
# whole of a logged "(428)") or followed by the space or hyphen of a
# (possibly flattened multi-line) reply.
REPLY_CODE = re.compile(r"[2-5][0-5][0-9](?=[ )-]|$)")
# An enhanced code must not be part of a longer dotted number such as an IP
# address or a version: no digit or dot-digit may follow it.
ENHANCED_CODE = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}(?![0-9]|\.[0-9])")


def split_reply(text: str) -> tuple[str, str] | None:
    """Read (code, enhanced) from the start of a logged reply.

    Accepts "550 5.1.1 text", "550-5.7.1 text" (a flattened multi-line reply:
    its first line decides), "550 text" (no enhanced code) and "5.7.1 text"
    (only an enhanced code was logged). An enhanced code whose class differs
    from the code's is not a valid RFC 3463 code for that reply and is dropped.
    Returns None when the text does not start with a reply.
    """
    m = REPLY_CODE.match(text)
    if m:
        code = m.group()
        e = ENHANCED_CODE.match(text, 4)
        if e and e.group()[0] == code[0]:
            return code, e.group()
        return code, ""
    e = ENHANCED_CODE.match(text)
    if e:
        return "", e.group()
    return None


def make_reply(
    direction: str, code: str, enhanced: str, stage: str, host: str = "", text: str = ""
) -> Reply:
    """Build a Reply, deriving its class from the code or else the enhanced code."""
    return _reply(direction, code, _class_of(code, enhanced), enhanced, stage, host, text)


def reply_from_text(
    direction: str, text: str, stage: str, host: str = "", why: str | None = None
) -> Reply | None:
    """A Reply for a logged reply text, or None when the text carries no code.

    why: the part of the text that says why, when the parser knows it (the
    reply's `text`, which reasons read; default: all of it).
    """
    parts = _head_parts(text[:_HEAD])
    if parts is None:
        return None
    return _reply(direction, *parts, stage, host, text if why is None else why)


def _class_of(code: str, enhanced: str) -> str:
    return (code or enhanced)[0] + "xx"


def _reply(
    direction: str, code: str, reply_class: str, enhanced: str, stage: str, host: str, text: str
) -> Reply:
    # Only a failure has a reason to read: without the text, a block's many
    # identical 2xx replies are one event. tuple.__new__ skips the
    # NamedTuple's Python-level __new__: this runs for every reply in the log.
    if reply_class < "4xx":
        text = ""
    return _new_tuple(Reply, (direction, code, reply_class, enhanced, stage, host, text))


_new_tuple = tuple.__new__


# split_reply reads at most this many characters: "550-5.7.123" plus the two
# characters that prove the enhanced code ends there.
_HEAD = 15


# Replies repeat endlessly in a mail log; caching on the few characters that
# decide the result skips the regex work for nearly every line. Bounded, so a
# hostile log cannot grow it.
@lru_cache(maxsize=4096)
def _head_parts(head: str) -> tuple[str, str, str] | None:
    """(code, class, enhanced) of a reply's first characters, or None."""
    parts = split_reply(head)
    if parts is None:
        return None
    code, enhanced = parts
    return code, _class_of(code, enhanced), enhanced


# Used to tell a coverage gap from noise: a line that no parser took but that
# holds a code followed by an enhanced code or by reply text.
_LOOKS_LIKE_REPLY = re.compile(
    r"(?<![\w.:/=\[#-])[2-5][0-5][0-9][ -](?:[245]\.[0-9]{1,3}\.[0-9]{1,3}(?![0-9])|[A-Za-z<])"
)


def looks_like_reply(line: str) -> bool:
    return _LOOKS_LIKE_REPLY.search(line) is not None


_DURATION_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_CLOCK = re.compile(r"(?:([0-9]+)\+)?([0-9]+):([0-9]{2}):([0-9]{2})")
_UNITS = re.compile(r"(?:[0-9]+[wdhm])*(?:[0-9]+(?:\.[0-9]+)?s)?")
_UNIT_PART = re.compile(r"([0-9.]+)([wdhms])")


# Cached: a log repeats its delays (two significant digits), so most lines
# reuse the event of an earlier one.
@lru_cache(maxsize=4096)
def delay_event(status: str, text: str) -> Delay | None:
    """The Delay of a delivery attempt with this status whose logged delay is text, None when text is no duration."""
    seconds = duration_seconds(text)
    return None if seconds is None else Delay(status, seconds)


def duration_seconds(text: str) -> float | None:
    """Seconds of a logged duration: Postfix's "0.52", Sendmail's "00:01:02"
    and "2+03:04:05" (days+), Exim's and OpenSMTPD's "1d2h3m4s", "0s",
    "0.125s"; None when text is none of those."""
    if _NUMBER.fullmatch(text):
        return float(text)
    m = _CLOCK.fullmatch(text)
    if m:
        days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
        return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
    if text and _UNITS.fullmatch(text):
        return sum(float(n) * _DURATION_UNITS[unit] for n, unit in _UNIT_PART.findall(text))
    return None

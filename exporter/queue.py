"""Mail queue listings of the four MTAs, read line by line into totals per queue.

Each MTA's listing command prints one message (or, for OpenSMTPD, one
envelope) at a time; a reader here takes the lines as they come and keeps
only the running totals of each queue, so a queue of 100,000 messages costs
no more memory than one of ten. The queue names are the MTA's own and fixed
per MTA, so the `queue` label has a known, short list of values.

  postfix    `postqueue -j`: one JSON object per message (Postfix >= 3.1),
             with queue_name, arrival_time and message_size.
  exim       `exim -bp`: "AGE SIZE ID <sender> [*** frozen ***]" per message,
             its recipients on the lines below. Exim rounds what it prints:
             the age to minutes (up to 90), hours (up to 72) or days, the
             size to K or M with one decimal (below 10) or none.
  sendmail   `mailq` (the MTA queue), `mailq -qQ` (quarantined messages) and
             `mailq -Ac` (the MSP's clientmqueue): "ID[flag] SIZE Q-TIME
             <sender>" per message, Q-Time to the minute and without a year.
  opensmtpd  `smtpctl show queue`: one "|"-separated line per envelope (one
             per recipient), with the creation time and run state; no size.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


class QueueListingError(ValueError):
    """The command's output is not the listing its MTA prints."""


@dataclass
class QueueTotals:
    """What one queue holds: messages, their bytes and the oldest arrival."""

    messages: int = 0
    size_bytes: int = 0
    oldest_arrival: float | None = None  # Unix time; None while empty

    def add(self, size_bytes: int, arrival: float) -> None:
        self.messages += 1
        self.size_bytes += size_bytes
        if self.oldest_arrival is None or arrival < self.oldest_arrival:
            self.oldest_arrival = arrival


Listing = dict[str, QueueTotals]  # queue name -> totals, every queue of the MTA


@dataclass(frozen=True)
class QueueFormat:
    """One MTA's queues, the command that lists them and the reader of its output."""

    mta: str
    queues: tuple[str, ...]
    command: tuple[str, ...]
    read: Callable[[Iterable[str], float, tuple[str, ...]], Listing] = field(repr=False)
    sizes: bool = True  # whether the listing says how big messages are

    def listing(self, lines: Iterable[str], now: float) -> Listing:
        return self.read(lines, now, self.queues)


def _empty(queues: tuple[str, ...]) -> Listing:
    return {name: QueueTotals() for name in queues}


# -- Postfix --------------------------------------------------------------------


def read_postqueue_json(lines: Iterable[str], now: float, queues: tuple[str, ...]) -> Listing:
    totals = _empty(queues)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            message = json.loads(line)
            queue, arrival, size = message["queue_name"], float(message["arrival_time"]), int(message["message_size"])
        except (ValueError, KeyError, TypeError, OverflowError) as err:  # OverflowError: a size of 1e999
            raise QueueListingError(f"line {number} is not a postqueue -j message: {err}") from err
        if not math.isfinite(arrival):
            raise QueueListingError(f"line {number} is not a postqueue -j message: arrival_time {arrival}")
        if queue in totals:  # showq lists no other queue; a future one would not be a label value
            totals[queue].add(size, arrival)
    return totals


# -- Exim -------------------------------------------------------------------------

_EXIM_MESSAGE = re.compile(
    r" ?(?P<age>\d+)(?P<unit>[mhd]) +(?P<size>\d+(?:\.\d)?[KM]?)? +"
    r"(?P<id>[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}) <.*?>(?P<frozen> \*\*\* frozen \*\*\*)?$"
)
_AGE_UNIT = {"m": 60, "h": 3600, "d": 86400}
_SIZE_UNIT = {"": 1, "K": 1024, "M": 1024 * 1024}


def exim_size(text: str | None) -> int:
    """Bytes of a size as exim -bp prints it ("812", "2.9K", "14K", "1.2M";
    blank for 0)."""
    if not text:
        return 0
    unit = text[-1] if text[-1] in "KM" else ""
    return round(float(text.removesuffix(unit)) * _SIZE_UNIT[unit])


def read_exim_bp(lines: Iterable[str], now: float, queues: tuple[str, ...]) -> Listing:
    queue, frozen = queues
    totals = _empty(queues)
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        m = _EXIM_MESSAGE.match(line)
        if m:
            age = int(m["age"]) * _AGE_UNIT[m["unit"]]
            totals[frozen if m["frozen"] else queue].add(exim_size(m["size"]), now - age)
        elif line and not line[0].isspace():  # recipients are indented
            raise QueueListingError(f"line {number} is not an exim -bp message line: {line[:120]!r}")
    return totals


# -- Sendmail -----------------------------------------------------------------------

_SENDMAIL_SECTION = re.compile(r"\s*(?P<dir>/\S+) (?:\(\d+ requests?|is empty)")
# The queue id, then a flag: * being delivered, X load too high, - too young, ? lost.
_SENDMAIL_MESSAGE = re.compile(
    r"(?P<id>[0-9A-Za-z]{8,20})[*X?-]? +(?P<size>-?\d+) (?P<qtime>[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d) ")
_SENDMAIL_QUARANTINE = "     QUARANTINE: "
_SENDMAIL_OTHER = re.compile(r"\s|-----Q-ID-----|Mail queue is empty|\s*Total requests: ")


def sendmail_qtime(text: str, now: float) -> float:
    """The Unix time of a mailq Q-Time ("Mon Nov 30 12:00", local time, no
    year): the latest such minute that is not after now (a day's slack for
    clocks)."""
    this_year = time.localtime(now).tm_year
    for year in (this_year + 1, this_year, this_year - 1):
        try:
            when = time.mktime(time.strptime(f"{year} {text[4:]}", "%Y %b %d %H:%M"))
        except ValueError:  # Feb 29 in another year
            continue
        if when <= now + 86400:
            return when
    raise QueueListingError(f"Q-Time {text!r} is not a date")


def read_mailq(lines: Iterable[str], now: float, queues: tuple[str, ...]) -> Listing:
    mqueue, quarantine, clientmqueue = queues
    totals = _empty(queues)
    section = mqueue
    held: tuple[str, int, float] | None = None  # the last message, until its next line says whether it is quarantined

    def flush() -> None:
        if held is not None:
            totals[held[0]].add(held[1], held[2])

    for number, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        m = _SENDMAIL_MESSAGE.match(line)
        if m:
            flush()
            held = (section, max(0, int(m["size"])), sendmail_qtime(m["qtime"], now))
            continue
        if line.startswith(_SENDMAIL_QUARANTINE) and held is not None:
            held = (quarantine, held[1], held[2])
            continue
        s = _SENDMAIL_SECTION.match(line)
        if s:
            flush()
            held = None
            section = clientmqueue if os.path.basename(s["dir"].rstrip("/")) == clientmqueue else mqueue
        elif line and not _SENDMAIL_OTHER.match(line):
            raise QueueListingError(f"line {number} is not a mailq line: {line[:120]!r}")
    flush()
    return totals


# -- OpenSMTPD ----------------------------------------------------------------------


def read_smtpctl_queue(lines: Iterable[str], now: float, queues: tuple[str, ...]) -> Listing:
    """Envelopes into messages: smtpctl lists a message's envelopes one after
    another, and the message id is the envelope id's first 8 hex digits. A
    message is inflight while any of its envelopes is, suspended only when
    all are (smtpctl pause envelope), else pending."""
    inflight, pending, suspended = queues
    totals = _empty(queues)
    message: list = []  # [msgid, states, oldest creation] of the message being read

    def flush() -> None:
        if message:
            states = message[1]
            queue = inflight if inflight in states else pending if pending in states else suspended
            totals[queue].add(0, message[2])

    for number, line in enumerate(lines, 1):
        fields = line.rstrip("\n").split("|", 13)
        if len(fields) < 13 or not re.fullmatch(r"[0-9a-f]{16}", fields[0]) or not fields[7].isdigit():
            if line.strip():
                raise QueueListingError(f"line {number} is not a smtpctl show queue envelope: {line[:120]!r}")
            continue
        msgid, creation = fields[0][:8], float(fields[7])
        state = (suspended if "suspend" in fields[3].split(",")
                 else inflight if fields[11] == "inflight" else pending)
        if message and message[0] == msgid:
            message[1].add(state)
            message[2] = min(message[2], creation)
        else:
            flush()
            message = [msgid, {state}, creation]
    flush()
    return totals


FORMATS = {
    f.mta: f
    for f in (
        QueueFormat("postfix", ("incoming", "active", "deferred", "hold", "maildrop"), ("postqueue", "-j"),
                    read_postqueue_json),
        QueueFormat("exim", ("queue", "frozen"), ("exim", "-bp"), read_exim_bp),
        QueueFormat("sendmail", ("mqueue", "quarantine", "clientmqueue"),
                    ("sh", "-ec", "mailq; mailq -qQ; mailq -Ac"), read_mailq),
        QueueFormat("opensmtpd", ("inflight", "pending", "suspended"), ("smtpctl", "show", "queue"),
                    read_smtpctl_queue, sizes=False),
    )
}

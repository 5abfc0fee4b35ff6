"""OpenSMTPD log lines to reply events. Pure: a line in, events out, no I/O.

OpenSMTPD's daemon is called `smtpd`, like Postfix's `postfix/smtpd`: a
line is OpenSMTPD's only when the syslog tag is exactly `smtpd[pid]: `, or
when it has no prefix at all and starts with a session id ("891d8088d5677a12
smtp ..."), as `smtpd -d` writes to stderr (and so container logs).

Outbound (6.x, 7.x): one line per envelope (recipient) and attempt,

    <session> mta delivery evpid=<hex> from=<a> to=<b> rcpt=<c> source="ip"
        relay="ip (name)" delay=2s result="Ok|TempFail|PermFail|Loop" stat="..."

(6.0: `mta event=delivery`). result gives the delivery status; stat is the
remote reply (a flattened multi-line reply keeps its first "550-5.7.1") or
a local error without a code ("Network error on destination MXs"): then
the attempt counts with no reply. The line does not say which command the
reply answered: a refused MAIL or DATA is logged for every envelope, a
refused RCPT for its own, so a failure counts with stage `unknown`; a
success can only be the reply after the message (`end_of_data`).
A session that fails before any transaction logs the reply once, in
`mta error reason=BANNER rejected: 421 ...` (also EHLO, HELO, LHLO, STARTTLS
and AUTH; "smtp-out: Error on session <id> after N messages sent: ..." when
the session had already delivered). Its envelopes are later logged with a
local error ("Network error on destination MXs"), which repeats no reply.

Inbound: every 4xx/5xx reply our server sends is logged with the command it
answered: `smtp failed-command command="RCPT TO:<x>" result="550 ..."`
(6.0: `smtp event=failed-command`; 5.x: `smtp-in: Failed command on session
<id>: "RCPT TO:<x> " => 550 ...`). The stage comes from the command's verb
in any case; an empty command is a rejection at connect. OpenSMTPD logs a
rejection after the message with command="DATA" too, so both count as
`data`. `smtp bad-input result="500 ..."` answers input that was no command
(pipelining when not offered, a line too long): stage `unknown`.

Session ids and evpids are hex (they can hold "550" or "4.2.1"); codes are
read only at the start of stat=, result=, "=> " and after "rejected: ".
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from exporter.parsers.presence import LineStart
from exporter.replies import (
    COMMAND_STAGES,
    INBOUND,
    OUTBOUND,
    Delivery,
    Event,
    Reply,
    Tls,
    delay_event,
    reply_from_text,
    tls_protocol,
)

TRIGGERS = (
    " mta delivery ",
    " mta event=delivery ",
    "failed-command ",
    "bad-input ",
    "Failed command on session ",
    " mta error reason=",
    "smtp-out: Error on session ",
    " tls ciphers=",
)

# Postfix tags its lines "postfix/smtpd[": a tag is a whole name, so
# "smtpd" is OpenSMTPD's alone.
TAGS = ("smtpd",)

# A prefixless line from `smtpd -d` (run in the foreground): a 16-hex-digit
# session id, then the process that logs it.
present_untagged = LineStart(rb"[0-9a-f]{16} (?:smtp|mta|mda) ")


_SESSION = re.compile(r"[0-9a-f]{16} ")

_RESULTS = {"Ok": "sent", "TempFail": "deferred", "PermFail": "bounced", "Loop": "bounced"}

# The word before " rejected: " in an mta error, and the stage it names.
_SESSION_FAILURES = {
    "BANNER": "connect", "EHLO": "helo", "HELO": "helo", "LHLO": "helo", "STARTTLS": "starttls", "AUTH": "auth",
}

# The verb of a failed command, as the client sent it (any case).
_COMMAND_STAGES = {**COMMAND_STAGES, "": "connect", ".": "end_of_data"}


def parse(line: str) -> Sequence[Event] | None:
    """Events for one OpenSMTPD log line; None when the line is not OpenSMTPD's."""
    body = _body(line)
    if body is None:
        return None
    if body.startswith("smtp-in: Failed command on session "):
        return _old_failed_command(body)
    if body.startswith("smtp-out: Error on session "):
        at = body.find(" sent: ")
        return _session_failure(body[at + 7 :]) if at >= 0 else []
    if not _SESSION.match(body):
        return []  # "info: ...", "warn: ...", "smtp-in: New session ...", ...
    event = body[17:]
    if event.startswith("mta "):
        event = event[4:]
        if event.startswith("delivery ") or event.startswith("event=delivery "):
            return _delivery(event)
        if event.startswith("error reason="):
            return _session_failure(event[13:])
        if event.startswith("tls ciphers="):
            return _tls(event[12:], OUTBOUND)
        return []
    if event.startswith("smtp "):
        event = event[5:]
        if event.startswith("event="):  # 6.0: "smtp event=failed-command ..."
            event = event[6:]
        if event.startswith("failed-command "):
            return _failed_command(event[15:])
        if event.startswith("bad-input "):
            return _result(event[10:], "unknown")
        if event.startswith("tls ciphers="):
            return _tls(event[12:], INBOUND)
        return []
    return []  # mda (local delivery), and others that carry no SMTP reply


def service(line: str) -> str:
    """opensmtpd for a prefixless `smtpd -d` line; else smtpd, the only tag
    _body takes."""
    return "opensmtpd" if _prefixless(line) else "smtpd"


def _prefixless(line: str) -> bool:
    return bool(_SESSION.match(line)) or line.startswith("smtp-in: ") or line.startswith("smtp-out: ")


def _body(line: str) -> str | None:
    """The message after an "smtpd[pid]: " tag, or a prefixless line as is."""
    at = line.find("]: ")
    if at >= 0:
        bracket = line.rfind("[", 0, at)
        start = line.rfind(" ", 0, bracket) + 1
        if bracket > 0 and line[start:bracket] == "smtpd":
            return line[at + 3 :]
    if _prefixless(line):
        return line
    return None


def _field(text: str, name: str) -> str | None:
    """The value of name="..." (or name=value) in text; a quoted value that
    ends the line runs to its last quote, as stat= may hold quotes itself."""
    at = text.find(f" {name}=")
    if at < 0:
        return None
    value = text[at + len(name) + 2 :]
    if value.startswith('"'):
        end = value.find('" ', 1) if name != "stat" else -1
        if end < 0:
            return value[1:-1] if value.endswith('"') else value[1:]
        return value[1:end]
    space = value.find(" ")
    return value if space < 0 else value[:space]


def _delivery(event: str) -> list[Event]:
    status = _RESULTS.get(_field(event, "result") or "")
    if status is None:
        return []
    host = _relay_host(_field(event, "relay") or "")
    events: list[Event] = [Delivery(status, host)]
    delay = delay_event(status, _field(event, "delay") or "")  # "delay=1h2m3s": since the envelope was queued
    if delay is not None:
        events.append(delay)
    stat = _field(event, "stat")
    if stat:
        reply = reply_from_text(OUTBOUND, stat, "end_of_data" if status == "sent" else "unknown", host)
        if reply is not None:
            events.append(reply)
    return events


def _tls(ciphers: str, direction: str) -> list[Event]:
    """"smtp|mta tls ciphers=TLSv1.3:TLS_AES_256_GCM_SHA384:256": a session
    that started TLS. Whether the peer's certificate was verified is logged
    apart (cert-check), if at all: trust unknown."""
    return [Tls(direction, tls_protocol(ciphers.partition(":")[0]), "unknown")]


def _relay_host(relay: str) -> str:
    """The name in relay="192.0.2.7 (mx.example.com)"; "" when the relay has
    no name ("192.0.2.7", or the address again in the parentheses)."""
    address, _, name = relay.partition(" (")
    name = name.rstrip(")")
    return "" if name == address else name


def _session_failure(reason: str) -> list[Reply]:
    """"BANNER rejected: 421 ..." and kin; IO errors and timeouts carry no reply."""
    word, sep, reply_text = reason.partition(" rejected: ")
    stage = _SESSION_FAILURES.get(word)
    if not sep or stage is None:
        return []
    reply = reply_from_text(OUTBOUND, reply_text, stage)
    return [reply] if reply is not None else []


def _command_stage(command: str) -> str:
    verb = command.split(" ", 1)[0].split(":", 1)[0].upper()
    return _COMMAND_STAGES.get(verb, "other")


def _failed_command(event: str) -> list[Reply]:
    """'command="RCPT TO:<x> " result="550 ..."' (the command as the client sent it)."""
    if not event.startswith('command="'):
        return []
    at = event.rfind('" result="')
    if at < 0:
        return []
    return _result(event[at + 2 :], _command_stage(event[9:at]))


def _result(text: str, stage: str) -> list[Reply]:
    if not text.startswith('result="'):
        return []
    reply = reply_from_text(INBOUND, text[8:].removesuffix('"'), stage)
    return [reply] if reply is not None else []


def _old_failed_command(body: str) -> list[Reply]:
    """'smtp-in: Failed command on session <id>: "MAIL FROM:<x> " => 421 4.3.0: ...'."""
    start = body.find(': "')
    at = body.rfind('" => ')
    if start < 0 or at < start:
        return []
    reply = reply_from_text(INBOUND, body[at + 5 :], _command_stage(body[start + 3 : at]))
    return [reply] if reply is not None else []

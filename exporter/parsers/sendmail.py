"""Sendmail log lines to reply events. Pure: a line in, events out, no I/O.

Sendmail logs only through syslog, tagged `sendmail[pid]` or `sm-mta[pid]`
(Debian), or another `sm-*` label (`-L`). The parser reads the message after
that tag and an optional queue id.

Outbound, one line per delivery attempt (which may carry several recipients:
`to=<a>,<b>`), written when the attempt ends:

    to=<r>, delay=.., xdelay=.., mailer=esmtp, pri=.., relay=host. [ip], dsn=D, [reply=R, ]stat=S

- `reply=` (builds with _FFR_LOGREPLY, such as Debian's) is the remote
  server's reply, first line only, logged when the attempt did not succeed.
- `stat=Sent (text)`: a 2xx reply to the end of the data crossed the wire,
  but Sendmail logs its text without the code: counted with code "" and
  class 2xx, or with the code when the text starts with one.
- `stat=Deferred: 451 4.3.0 ...` repeats the remote reply; it is read only
  when no `reply=` was logged. `stat=Deferred: Connection refused by ...`
  and `stat=User unknown` (without `reply=`) show no reply at all.
- `dsn=` is Sendmail's own status and never taken for the reply's enhanced
  code: a `421 4.3.2` greeting is logged with `dsn=4.5.0`.
- The log does not say at which SMTP step a failing reply came (greeting,
  HELO, MAIL, RCPT, DATA or end of data all read alike): stage `unknown`.
- Local mailers (local, prog, *file*, *include*) are not SMTP.

Inbound: ruleset rejects (`ruleset=check_rcpt, arg1=.., relay=.., reject=550
5.7.1 ...`, the stage from the ruleset), milter rejects (`Milter: to=<r>,
reject=...`), and unknown local recipients, which Sendmail logs without the
code it sent (`<r>... User unknown` for `550 5.1.1`): counted with code ""
and class 5xx. `lost input channel`, `did not issue MAIL/EXPN/VRFY/ETRN` and
`VRFY x [rejected]` carry no reply. A refused AUTH is logged as `AUTH failure
(MECH): ...` without the `535` it drew: a code-less 5xx at stage `auth`.

Numbers elsewhere on these lines (pids, queue ids, `delay=00:00:15`,
`pri=120015`, `nrcpts=2`, `size=`, IP octets, `(1/0)` uid/gid) are never
read: codes are taken only at the start of `reply=`, `reject=` and the
`stat=` texts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from exporter.replies import (
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

TRIGGERS = ("stat=", "reject=", "... User unknown", "AUTH failure (", "STARTTLS=")

# Postfix's own "postfix/sendmail[pid]" is not one: a tag is a whole name.
# Another name needs `format: sendmail`.
TAGS = ("sendmail", "sm-mta", "sm-msp-queue")


def present_untagged(block: bytes) -> bool:
    return False  # Sendmail logs through syslog only


# Sendmail's queue ids: 12 (8.11) to 14+ (8.12+) letters and digits.
_QUEUE_ID = re.compile(r"[0-9A-Za-z]{8,20}: ")

_LOCAL_MAILERS = frozenset(("local", "prog", "*file*", "*include*"))

_RULESET_STAGES = {
    "check_relay": "connect",
    "check_mail": "mail",
    "check_rcpt": "rcpt",
    "check_data": "data",
    "check_eoh": "end_of_data",
    "check_eom": "end_of_data",
    "check_vrfy": "other",
    "check_expn": "other",
    "check_etrn": "other",
    "trust_auth": "auth",
}
# check_compat runs when a message is delivered: its reject becomes a bounce,
# not a reply to an SMTP client.
_RULESETS_WITHOUT_REPLY = frozenset(("check_compat",))

# "Milter: <what>, reject=...": the step the milter answered.
_MILTER_STAGES = {
    "connect": "connect",
    "helo": "helo",
    "from": "mail",
    "to": "rcpt",
    "data": "end_of_data",
}

# Sendmail's own status for a failed STARTTLS handshake, not a remote reply.
_SYNTHESISED_DEFERRALS = ("403 4.7.0 TLS handshake failed",)


def parse(line: str) -> Sequence[Event] | None:
    """Events for one Sendmail log line; None when the line is not Sendmail's
    or has no shape this parser knows."""
    return take(line)[0]


def take(line: str) -> tuple[Sequence[Event] | None, str]:
    """parse()'s events, and the service they count under: the tag (sm-mta,
    sendmail, sm-msp-queue), read where parse finds it."""
    end = line.find("]: ")
    if end < 0:
        return None, ""
    start = line.rfind(" ", 0, end) + 1
    bracket = line.find("[", start, end)
    if bracket < 0:
        return None, ""
    tag = line[start:bracket]
    if tag != "sendmail" and not tag.startswith("sm-"):
        return None, ""
    return _events(line[end + 3 :]), tag


def _events(message: str) -> Sequence[Event] | None:
    m = _QUEUE_ID.match(message)
    if m:
        message = message[m.end() :]
    if message.startswith("to="):
        return _delivery(message)
    if message.startswith("ruleset="):
        return _ruleset_reject(message)
    if message.startswith("Milter"):
        return _milter_reject(message)
    if message.startswith("STARTTLS="):
        return _starttls(message)
    if message.startswith("AUTH failure ("):
        return [_AUTH_FAILURE]
    if message.startswith("<") and message.endswith(">... User unknown"):
        # "550 5.1.1 <r>... User unknown" went to the client; the log
        # keeps only the text.
        return [Reply(INBOUND, "", "5xx", "", "rcpt", "", message)]
    if "reject=" in message or "stat=" in message:
        return None
    return []


# "AUTH failure (LOGIN): authentication failure (-13) SASL(-13): ..., relay=..."
# (LogLevel 9, the default, and up) logs the "535 5.7.0 authentication
# failed" Sendmail sent, without the code.
_AUTH_FAILURE = Reply(INBOUND, "", "5xx", "", "auth", "", "authentication failed")


# verify= of "STARTTLS=client|server, relay=..., version=TLSv1.3, verify=OK, ...":
# OK (TRUSTED from 8.16): the peer's certificate verified; NO: none presented;
# FAIL: presented, not verified. NONE, NOT, SOFTWARE, TEMP, PROTOCOL: unknown.
_SENDMAIL_TRUSTS = {"OK": "verified", "TRUSTED": "verified", "NO": "anonymous", "FAIL": "untrusted"}


def _starttls(message: str) -> list[Event]:
    """A TLS session: STARTTLS=client (we connected out) or =server."""
    side = message[9 : message.find(",")]
    if side not in ("client", "server"):
        return []  # "STARTTLS=server, error: ...", "STARTTLS: ..." and kin
    version = _field(message, "version")
    if version is None:
        return []
    verify = _field(message, "verify")
    trust = _SENDMAIL_TRUSTS.get(verify[0] if verify else "", "unknown")
    return [Tls(OUTBOUND if side == "client" else INBOUND, tls_protocol(version[0]), trust)]


def _field(message: str, name: str, after: int = 0) -> tuple[str, int] | None:
    """(value, start) of ", name=value" (up to the next ", "), or None."""
    at = message.find(f", {name}=", after)
    if at < 0:
        return None
    begin = at + len(name) + 3
    stop = message.find(", ", begin)
    return message[begin : stop if stop >= 0 else len(message)], begin


def _delivery(message: str) -> list[Event] | None:
    mailer = _field(message, "mailer")
    if mailer is not None and mailer[0] in _LOCAL_MAILERS:
        return []
    relay = _field(message, "relay")
    if relay is None:
        return []  # no remote host: a local or queue-only line
    host = _host(relay[0])
    reply = message.find(", reply=")
    stat_at = message.find(", stat=", reply if reply >= 0 else 0)
    if stat_at < 0:
        return []  # "to=<a>,<b>,[more]": the status comes on a later line
    stat = message[stat_at + 7 :]
    dsn_field = _field(message, "dsn")
    dsn = dsn_field[0] if dsn_field else ""
    status = _status(stat, dsn)
    if status is None:
        return []  # "stat=queued": no attempt was made
    events: list[Event] = [Delivery(status, host)]
    logged = _field(message, "delay")
    delay = delay_event(status, logged[0]) if logged else None
    if delay is not None:
        events.append(delay)  # since the message was queued; xdelay= is this attempt's
    found = None
    if reply >= 0:
        found = reply_from_text(OUTBOUND, message[reply + 8 : stat_at], "unknown", host)
    elif status == "sent":
        found = _sent_reply(stat, host)
    elif stat.startswith("Deferred: ") and not stat.startswith(_SYNTHESISED_DEFERRALS, 10):
        found = reply_from_text(OUTBOUND, stat[10:], "unknown", host)
    if found is not None:
        events.append(found)
    return events


def _status(stat: str, dsn: str) -> str | None:
    if stat.startswith("Sent"):
        return "sent"
    if stat.startswith("Deferred"):
        return "deferred"
    if stat.startswith("queued"):
        return None
    if dsn == "4.4.7":
        return "expired"  # "Cannot send message for 5 days"
    return "deferred" if dsn.startswith("4") else "bounced"


def _host(relay: str) -> str:
    """The host name in "relay=mx.example.com. [192.0.2.1]", "" for "[ip] [ip]"."""
    name = relay.split(" ", 1)[0]
    return "" if name.startswith("[") else name.rstrip(".")


def _sent_reply(stat: str, host: str) -> Reply:
    """The reply to the end of the data behind "stat=Sent (text)"."""
    if stat.startswith("Sent ("):
        reply = reply_from_text(OUTBOUND, stat[6:].removesuffix(")"), "end_of_data", host)
        if reply is not None and reply.code.startswith("2"):
            return reply
    return Reply(OUTBOUND, "", "2xx", "", "end_of_data", host)


def _ruleset_reject(message: str) -> list[Reply] | None:
    comma = message.find(", ")
    ruleset = message[8:comma] if comma > 0 else message[8:]
    at = message.find(", reject=")
    if at < 0:
        return []  # "ruleset=..., quarantine=...", discard and kin
    if ruleset in _RULESETS_WITHOUT_REPLY:
        return []
    stage = _RULESET_STAGES.get(ruleset, "unknown")
    reply = reply_from_text(INBOUND, message[at + 9 :], stage)
    return [reply] if reply is not None else None


def _milter_reject(message: str) -> list[Reply] | None:
    # "Milter: to=<r>, reject=550 5.7.1 ...", "Milter: data, reject=...",
    # "Milter: connect: host=h, addr=a, reject=...", "Milter: helo=h, reject=..."
    at = message.find(", reject=")
    if at < 0 or not message.startswith("Milter: "):
        return []
    word = re.match(r"[a-z]+", message[8:])
    stage = _MILTER_STAGES.get(word.group() if word else "", "unknown")
    reply = reply_from_text(INBOUND, message[at + 9 :], stage)
    return [reply] if reply is not None else None

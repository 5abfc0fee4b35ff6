"""Exim 4 mainlog lines to reply events. Pure: a line in, events out, no I/O.

Lines may come straight from Exim's mainlog ("2026-11-03 17:44:15 ...") or
through syslog ("... exim[123]: 2026-11-03 ..." or without Exim's own
time); the parser reads the body after those prefixes.

Outbound: `=>`/`->` deliveries carry the remote reply in C="250 ..." (log
selector +smtp_confirmation); `==` (deferred) and `**` (failed) lines carry
"SMTP error from remote mail server after <stage>: <reply>", one line per
recipient; "LMTP error after DATA" is an LMTP recipient's own reply after the
message (stage end_of_data). The per-host line Exim writes before them
("H=host [ip]: SMTP error ...", no flag) repeats the same reply and is not
counted. "defer (-44)" style numbers are Exim's own errno, never codes.

Inbound: ACL rejections ("rejected RCPT <x>: ...", "rejected EHLO or HELO",
"rejected connection in "connect" ACL", ...) and messages refused while
received ("rejected from <s> H=...: message too big", "rejected by
local_scan(): ..."). When the logged text starts with a code and/or enhanced
code, those are the reply's; when it does not, Exim logged no code: the reply
counts with code "" and class 5xx (4xx for "temporarily rejected").

Sessions Exim ends itself log the reply they got without its code: "SMTP
call from H dropped: too many unrecognized commands" (500), "... too many
syntax or protocol errors" (the last error's 5xx), "... too many nonmail
commands" (554), all stage `other`; "SMTP command timeout on connection from
H" (421, stage `unknown`: no command was answered).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from exporter.parsers.presence import LineStart
from exporter.parsers.service import tagged
from exporter.replies import (
    COMMAND_STAGES,
    INBOUND,
    OUTBOUND,
    Delivery,
    Event,
    Reply,
    Tls,
    delay_event,
    make_reply,
    reply_from_text,
    split_reply,
    tls_protocol,
)

TRIGGERS = (
    " => ",
    " -> ",
    " >> ",
    " == ",
    " ** ",
    "rejected ",
    "rejected: ",
    "authenticator failed ",
    "from cutthrough after DATA: ",
    "synchronization error",
    "SMTP call from ",
    "SMTP command timeout on ",
    " <= ",
)

# Exim's syslog names (its syslog_processname, "exim" by default); another
# name needs `format: exim`.
TAGS = ("exim", "exim4")


# Lines of Exim's own mainlog start with its time stamp.
present_untagged = LineStart(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")

# Exim's own time stamp, optionally with .ms, a zone, and a [pid].
_EXIM_TIME = re.compile(
    r"(?:^|(?<=: )|(?<= ))\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})?(?: [-+]\d{4})?(?: \[\d+\])? "
)
_syslog_service = tagged("exim")


def service(line: str) -> str:
    """The syslog tag (exim4) of a line that came through syslog, exim for
    one of Exim's own mainlog. Only an exim* name is a tag: a mainlog line's
    first "]: " can follow a host's [ip]."""
    tag = _syslog_service(line)
    return tag if tag.startswith("exim") else "exim"


_MESSAGE_ID = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4} ")

# "after MAIL FROM:<> SIZE=1216: 451 ...": the command as sent, with its
# parameters (SIZE=, BODY=, NOTIFY=, ORCPT=...) after the address.
_REMOTE_ERROR = re.compile(
    r"(?P<lmtp>LMTP error|SMTP error from remote mail server) after (?:pipelined )?"
    r"(?P<stage>initial connection|end of data|[A-Za-z]+)[^:<]*"
    r"(?::<[^>]*>(?: [A-Za-z0-9-]+(?:=\S*)?)*)?: "
    r"(?:host (?P<host>\S+) \[[^\]]*\](?::\d+)?: )?"
)

_REMOTE_STAGES = {**COMMAND_STAGES, "initial connection": "connect", "end of data": "end_of_data"}

# "rejected <what>" in inbound ACL lines, and the stage each names.
_REJECTED = re.compile(
    r"(?P<temp>temporarily )?rejected (?P<what>RCPT|MAIL|EHLO or HELO|connection in \"[a-z_]+\" ACL"
    r"|after DATA|DATA|VRFY|EXPN|ETRN|ATRN|AUTH|STARTTLS|non-SMTP ACL|\"\w+\")"
)
_REJECT_STAGES = {**COMMAND_STAGES, "EHLO or HELO": "helo", "after DATA": "end_of_data"}


def parse(line: str) -> Sequence[Event] | None:
    body = _body(line)
    if body is None:
        return None
    flag = body[:3]
    if flag in ("=> ", "-> ", ">> "):  # ">>": a cutthrough delivery
        return _delivered(body, flag != "-> ")
    if flag in ("== ", "** "):
        return _not_delivered(body, "deferred" if flag == "== " else "bounced")
    if flag == "<= ":
        return _tls(body, INBOUND)  # an arrival: its TLS, if any
    if flag in ("*> ", "Com"):
        return []  # suppressed, Completed
    outbound = _client_failure(body)
    if outbound is not None:
        return outbound
    inbound = _inbound(body)
    if inbound is None and body.startswith("H=") and "SMTP error from remote" in body:
        return []  # the per-host line: a repeat of the recipients' reply
    return inbound


def _body(line: str) -> str | None:
    """The log body after any syslog prefix, Exim time stamp and message id."""
    m = _EXIM_TIME.search(line, 0, 120)
    if m:
        body = line[m.end():]
    else:
        # Through syslog without Exim's time stamp: "... exim[123]: body".
        at = line.find("]: ")
        tag_start = line.rfind(" ", 0, at) + 1
        if at < 0 or not line.startswith("exim", tag_start):
            return None
        body = line[at + 3:]
    m = _MESSAGE_ID.match(body)
    return body[m.end():] if m else body


def _tls(body: str, direction: str) -> list[Event]:
    """The Tls of a message received (<=) or delivered (=>) over TLS:
    X=TLS1.3:cipher:bits, and CV=yes|no|dane (log_selector
    +tls_certificate_verified, on by default). A delivery down a connection
    already open (H=host [ip]*) used that connection's TLS: not counted again,
    nor are the further addresses of a delivery (->), which repeat the X= of
    its first (=>) on the same connection."""
    at = body.find(" X=")
    if at < 0 or "]* " in body:
        return []
    end = body.find(":", at + 3)
    version = body[at + 3 : end] if end > 0 else ""
    cv = body.find(" CV=")
    verified = body[cv + 4 : cv + 7] if cv >= 0 else ""
    return [_tls_event(direction, version, verified)]


# CV= of an outbound connection: the server's certificate was verified
# (yes, or by DANE) or not; inbound, "no" may as well mean no client
# certificate at all.
_EXIM_TRUSTS = {("outbound", "yes"): "verified", ("outbound", "dan"): "verified", ("outbound", "no"): "untrusted",
                ("inbound", "yes"): "verified"}


@lru_cache(maxsize=64)
def _tls_event(direction: str, version: str, verified: str) -> Tls:
    return Tls(direction, tls_protocol(version), _EXIM_TRUSTS.get((direction, verified.rstrip(" ")), "unknown"))


def _is_remote(body: str) -> bool:
    # Exim names no direction; a remote host, an SMTP/LMTP error or an SMTP
    # transport marks a delivery attempt over the network.
    if " H=" in body or "SMTP error" in body or "LMTP error" in body:
        return True
    t = body.find(" T=")
    if t < 0:
        return False
    transport = body[t + 3 : body.find(" ", t + 3)]
    return "smtp" in transport or "lmtp" in transport


def _host(body: str) -> str:
    """The remote host's name in "H=mx.example.com [192.0.2.1]" ("" for "H=[ip]")."""
    at = body.find(" H=")
    if at < 0 or body.startswith("[", at + 3):
        return ""
    end = body.find(" ", at + 3)
    return body[at + 3 : end] if end > 0 else ""


def _delivered(body: str, first: bool) -> list[Event]:
    """A delivered address; `first` of its delivery (=> or >>, not ->)."""
    events: list[Event] = []
    host = _host(body)
    if _is_remote(body):
        events.append(Delivery("sent", host))
        if first:
            events += _tls(body, OUTBOUND)
        # QT= (log_selector +queue_time): time on the queue until this delivery.
        qt = body.find(" QT=")
        if qt >= 0:
            end = body.find(" ", qt + 4)
            delay = delay_event("sent", body[qt + 4 : end if end >= 0 else len(body)])
            if delay is not None:
                events.append(delay)
    at = body.find(' C="')
    if at >= 0:
        reply = reply_from_text(OUTBOUND, body[at + 4 :], "end_of_data", host)
        if reply is not None:
            events.append(reply)
    return events


def _remote_error(body: str) -> re.Match[str] | None:
    """_REMOTE_ERROR at the first place the error is named, not searched
    for: a search retries at every repeat of the phrase, each time scanning
    to the end of the line, which a hostile reply can make quadratic."""
    starts = [at for at in (body.find("SMTP error from remote mail server after "), body.find("LMTP error after "))
              if at >= 0]
    return _REMOTE_ERROR.match(body, min(starts)) if starts else None


def _not_delivered(body: str, status: str) -> list[Event]:
    if "retry time not reached" in body:
        return []  # no attempt was made
    events: list[Event] = []
    m = _remote_error(body)
    host = (m and m.group("host")) or _host(body)
    if _is_remote(body):
        events.append(Delivery(status, host))
    if m:
        if m.group("lmtp") == "LMTP error":
            # "LMTP error after DATA" (or BDAT) is a recipient's own reply
            # after the message; a refused DATA command is an "SMTP error".
            stage = "end_of_data"
        else:
            stage = _REMOTE_STAGES.get(m.group("stage"), "unknown")
        reply = reply_from_text(OUTBOUND, body[m.end():], stage, host)
        if reply is not None:
            events.append(reply)
    return events


def _client_failure(body: str) -> list[Event] | None:
    """Replies to us logged outside the delivery lines, or None.

    "plain authenticator failed H=mx.example.com [192.0.2.1] 535 ...": the
    remote server refused our AUTH (a server-side failure names the client's
    HELO in parentheses, "H=(helo) [ip]", and has "failed for").
    "... tmp-reject from cutthrough after DATA: R=r T=smtp H=h [ip] C="459 ..."":
    the remote refused a cutthrough delivery at the end of the data.
    """
    at = body.find(" authenticator failed H=")
    if at >= 0 and not body.startswith("(", at + 24):
        close = body.find("] ", at)
        reply = reply_from_text(OUTBOUND, body[close + 2 :], "auth", _host(body)) if close > 0 else None
        return [reply] if reply is not None else []
    if "from cutthrough after DATA: " in body:
        c = body.find(' C="')
        reply = reply_from_text(OUTBOUND, body[c + 4 :], "end_of_data", _host(body)) if c > 0 else None
        if reply is None:
            return []
        return [Delivery("deferred" if reply.reply_class == "4xx" else "bounced", reply.host), reply]
    return None


def _inbound(body: str) -> list[Reply] | None:
    # First: these lines name the client (its HELO, its last command), which
    # may hold "rejected RCPT" and the like.
    local_scan = body.find("rejected by local_scan(): ")
    if local_scan >= 0:
        # The message was refused after its data by local_scan() (sa-exim
        # and kin): 550, or 451 when "temporarily rejected".
        return [_acl_reply(body[local_scan + 26 :], body.startswith("temporarily ", local_scan - 12),
                           "end_of_data")]
    if body.startswith("SMTP call from "):
        dropped = body.find(" dropped: too many ")
        if dropped < 0:
            return None
        why = body[dropped + 19 :]
        return [_DROPPED] if why.startswith(_DROP_REASONS) else None
    if body.startswith("SMTP command timeout on "):
        return [_TIMED_OUT]
    m = _REJECTED.search(body)
    if m:
        what = m.group("what")
        stage = _REJECT_STAGES.get(what, "connect" if what.startswith("connection") else "other")
        # The logged text after "rejected X <arg>: " or "... ACL: ".
        colon = body.find(": ", m.end())
        text = body[colon + 2 :] if colon >= 0 else ""
        return [_acl_reply(text, bool(m.group("temp")), stage)]
    if body.startswith("rejected from <"):
        # The message itself was refused while it was received: too big (552
        # after its end), or under CHUNKING a first header line without CRLF
        # (552 to the BDAT). Without H= it was a local submission: no SMTP reply.
        if " H=" not in body:
            return []
        return [_acl_reply("", False, "data" if "under CHUNKING" in body else "end_of_data")]
    if body.startswith("unqualified sender rejected") or body.startswith("unqualified recipient rejected"):
        return [_acl_reply("", False, "mail" if "sender" in body[:25] else "rcpt")]
    at = body.find("authenticator failed for ")
    if at >= 0:
        colon = body.find(": ", at)
        reply = reply_from_text(INBOUND, body[colon + 2 :], "auth") if colon >= 0 else None
        return [reply] if reply is not None else []
    if "synchronization error" in body:
        return [_acl_reply("", False, "other")]
    return None


# The reasons Exim gives in "SMTP call from H dropped: too many ...", each
# after a 5xx reply it sent (smtp_in.c: smtp_notquit_exit with 500, the
# last syntax error's code, 554).
_DROP_REASONS = ("unrecognized commands", "syntax or protocol errors", "nonmail commands")
_DROPPED = Reply(INBOUND, "", "5xx", "", "other")
# "421 <host>: SMTP command timeout - closing connection".
_TIMED_OUT = Reply(INBOUND, "", "4xx", "", "unknown")


def _acl_reply(text: str, temporary: bool, stage: str) -> Reply:
    """Our reply to an ACL reject: the logged code if any, else its class alone."""
    parts = split_reply(text)
    if parts is not None:
        return make_reply(INBOUND, parts[0], parts[1], stage, text=text)
    return Reply(INBOUND, "", "4xx" if temporary else "5xx", "", stage)

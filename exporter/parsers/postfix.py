"""Postfix log lines to reply events. Pure: a line in, events out, no I/O.

The parser finds the `name/daemon[pid]: ` tag wherever the prefix puts it, so
classic syslog, RFC 3339 (rsyslog on Debian 12) and Postfix's own
`maillog_file` lines all read the same. The daemon decides the direction:
smtp and lmtp talk to remote servers (outbound); smtpd, postscreen and
cleanup answer our clients (inbound).

Codes are read only at the places where Postfix writes a reply (after
`said: `, `refused to talk to me: `, the client's `]: ` in a reject, inside
`status=sent (`), never by scanning free text, so IP octets, ports, sizes,
delays, queue ids and numbers inside reply text are never taken for codes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from exporter.parsers.service import service_of_tag
from exporter.replies import (
    COMMAND_STAGES,
    DELIVERY_STATUSES,
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

# The verbs after a remote host's name in the replies _host_reply reads.
_HOST_VERBS = (" said: ", "refused to talk to me: ", "refused to start TLS: ")
# Substrings present in every line that can yield an event. The scanner only
# hands lines holding one of them to parse(), which keeps the common lines
# (connect, qmgr, cleanup message-id, TLS chatter) off the Python path.
# smtpd's "warning: H[ip]: SASL LOGIN authentication failed: ..." logs the
# reply it sent to a client whose AUTH it refused.
_SASL_FAILED = " authentication failed: "
# Each trigger costs a pass over every block, and a longer one a faster pass:
# ", status=" rather than the "status=" the parser reads.
TRIGGERS = (", status=", *_HOST_VERBS, "reject: ", "proxy-accept: ", _SASL_FAILED)



# Postfix tags every line "postfix.../daemon[pid]"; finding "postfix" costs
# nothing in a Postfix block (it is in the first line), so no tag is given.
# A custom syslog_name needs `format: postfix`.
TAGS: tuple[str, ...] = ()


def present_untagged(block: bytes) -> bool:
    return b"postfix" in block


_OUTBOUND_DAEMONS = frozenset(("smtp", "lmtp"))
_INBOUND_DAEMONS = frozenset(("smtpd", "postscreen"))
# Daemons whose lines carry no SMTP reply; known, so never "unrecognized".
_QUIET_DAEMONS = frozenset(
    (
        "anvil", "bounce", "discard", "dnsblog", "flush", "local", "master",
        "pickup", "pipe", "postdrop", "postfix-script", "postlog", "postmap",
        "postqueue", "postsuper", "proxymap", "scache", "sendmail", "showq",
        "tlsmgr", "tlsproxy", "trivial-rewrite", "verify", "virtual",
    )
)

# "(in reply to X command)" as written by the Postfix SMTP/LMTP client.
_CLIENT_STAGES = {**COMMAND_STAGES, "MAIL FROM": "mail", "RCPT TO": "rcpt", "end of DATA": "end_of_data"}

# The stage word of an smtpd/postscreen/cleanup reject.
_REJECT_STAGES = {
    **COMMAND_STAGES,
    "CONNECT": "connect",
    "END-OF-MESSAGE": "end_of_data",
    "UNKNOWN": "unknown",
}

# Actions whose text is the reply our server sent. Others (reject_warning,
# discard, hold, filter, redirect, ...) sent no reply of their own.
_REPLY_ACTIONS = frozenset(("reject", "milter-reject", "proxy-reject", "proxy-accept"))

_DELIVERY_STATUSES = frozenset(DELIVERY_STATUSES)

# "550 5.7.123 <": where an address right after a reply's codes can start.
_HEAD_WITH_SPACE = 13


def parse(line: str) -> Sequence[Event] | None:
    """Events for one Postfix log line.

    Returns a list (possibly empty: a Postfix line with nothing to count), or
    None when the line is not Postfix's or has no shape this parser knows.
    """
    return take(line)[0]


def take(line: str) -> tuple[Sequence[Event] | None, str]:
    """parse()'s events, and the service they count under: the tag without
    the daemon's name (postfix/submission/smtpd -> postfix/submission), read
    where parse finds the daemon, at no extra cost."""
    end = line.find("]: ")
    if end < 0:
        return None, ""
    start = line.rfind(" ", 0, end) + 1
    bracket = line.find("[", start, end)
    slash = line.rfind("/", start, bracket)
    if bracket < 0 or slash < 0:
        return None, ""  # Postfix always logs name/daemon[pid]
    service = line[start:slash] or "postfix"  # "/smtpd[1]": no name before the daemon's
    daemon = line[slash + 1 : bracket]
    message = line[end + 3 :]
    if daemon in _OUTBOUND_DAEMONS:
        return _outbound(message), service
    if daemon in _INBOUND_DAEMONS:
        if message.startswith("warning: "):
            failure = _sasl_failure(message)
            if failure is not None:
                return failure, service
        return _inbound_reject(message, cleanup=False), service
    if daemon == "cleanup":
        return _inbound_reject(message, cleanup=True), service
    if daemon == "error":
        return _delivery_only(message), service
    if daemon == "qmgr":
        return _qmgr(message), service
    if daemon in _QUIET_DAEMONS:
        return [], service
    return None, ""


def _strip_queue_id(message: str) -> str:
    """Drop a leading "QUEUEID: " or "NOQUEUE: "."""
    colon = message.find(": ")
    if colon > 0 and message[:colon].isalnum():
        return message[colon + 2 :]
    return message


def _stage_of_command(reply: str) -> str:
    at = reply.rfind("(in reply to ")
    if at < 0:
        return "unknown"
    end = reply.find(" command)", at)
    if end < 0:
        return "unknown"
    return _CLIENT_STAGES.get(reply[at + 13 : end], "other")


def _host_reply(text: str) -> Reply | None:
    """The reply in "host H[ip] said: R" / "host H[ip] refused to talk to me: R".

    Also reads "connect to H[ip]:port: server refused to talk to me: R" (a
    4xx greeting salvaged at connect time), "SASL authentication failed;
    server H[ip] said: R" and "TLS is required, but host H[ip] refused to
    start TLS: R". The host name holds no space, so the verb right after it
    is read exactly and never searched for in remote-chosen text.
    """
    for lead in _HOST_LEADS:
        if text.startswith(lead):
            break
    else:
        return None
    start = len(lead)
    after = text.find(" ", start) + 1
    if after == 0:
        return None
    host = _host_name(text[start : after - 1])
    if lead == "connect to ":
        if not text.startswith("server refused to talk to me: ", after):
            return None
        return reply_from_text(OUTBOUND, text[after + 30 :], "connect", host)
    if text.startswith("said: ", after):
        reply = text[after + 6 :]
        stage = "auth" if lead.startswith("SASL") else _stage_of_command(reply)
        return reply_from_text(OUTBOUND, reply, stage, host)
    if lead == "TLS is required, but host ":
        verb, stage = "refused to start TLS: ", "starttls"
    else:
        verb, stage = "refused to talk to me: ", "connect"
    if text.startswith(verb, after):
        return reply_from_text(OUTBOUND, text[after + len(verb) :], stage, host)
    return None


# What precedes the remote host's name in the texts _host_reply reads.
_HOST_LEADS = ("host ", "connect to ", "SASL authentication failed; server ", "TLS is required, but host ")


def _host_name(named: str) -> str:
    """"mx.example.com[192.0.2.1]" or "mx.example.com[192.0.2.1]:25" -> the name."""
    bracket = named.find("[")
    return named[:bracket] if bracket >= 0 else ""


def _relay(message: str) -> str:
    """The host name in a status line's "relay=H[ip]:port" ("" for relay=none)."""
    at = message.find(", relay=")
    if at < 0:
        return ""
    end = message.find(",", at + 8)
    return _host_name(message[at + 8 : end])


def _status(message: str) -> tuple[str, str] | None:
    """(status, text in parentheses) of a "..., status=X (text)" line."""
    at = message.find(", status=")
    if at < 0:
        return None
    rest = message[at + 9 :]
    space = rest.find(" ")
    if space < 0:
        return rest, ""
    status = rest[:space]
    text = rest[space + 1 :]
    if text.startswith("("):
        text = text[1:]
    return status, text


def _outbound(message: str) -> list[Event] | None:
    found = _status(message)
    if found is None:
        body = _strip_queue_id(message)
        # A per-host line: a reply from one MX before trying the next one.
        # Postfix logs it only for hosts that are not the last, so the
        # recipient's status line never repeats it.
        reply = _host_reply(body)
        if reply is not None:
            return [reply]
        return None if any(verb in body for verb in _HOST_VERBS) else []
    status, text = found
    relay = _relay(message)
    if text[:1].isdigit():
        # "status=sent (250 ...)": the reply to the end of the message data.
        # A verification probe ("deliverable (250 ...)") stops after RCPT.
        stage = "end_of_data" if status == "sent" else "rcpt"
        reply = reply_from_text(OUTBOUND, text, stage, relay)
    else:
        # "delivery temporarily suspended: ..." repeats a cached earlier
        # reply; no new reply crossed the wire, so _host_reply ignores it.
        reply = _host_reply(text)
    events: list[Event] = []
    if status in _DELIVERY_STATUSES:
        # With relay=none, the host it failed to reach may be in the text.
        events.append(Delivery(status, relay or (reply.host if reply else _tried_host(text))))
        events += _delays(message, status)
    if reply is not None:
        events.append(reply)
    return events


def _tried_host(text: str) -> str:
    """The host in "connect to H[ip]:25: Connection refused" and kin."""
    if text.startswith("connect to "):
        end = text.find(" ", 11)
        return _host_name(text[11:end]) if end > 0 else ""
    return ""


def _delivery_only(message: str) -> list[Event] | None:
    found = _status(message)
    if found is None or found[0] not in _DELIVERY_STATUSES:
        return []
    return [Delivery(found[0]), *_delays(message, found[0])]


def _delays(message: str, status: str) -> list[Event]:
    """The Delay of a status line's ", delay=1.5, ..." (its "delays=a/b/c/d"
    split is not read: see README, Metrics)."""
    at = message.find(", delay=")
    if at < 0:
        return []
    delay = delay_event(status, message[at + 8 : message.find(",", at + 8)])
    return [delay] if delay is not None else []


def _qmgr(message: str) -> list[Delivery]:
    # "QID: from=<x>, status=expired, returned to sender" ("force-expired"
    # after postsuper -e)
    if ", status=expired" in message or ", status=force-expired" in message:
        return [Delivery("expired")]
    return []


# The reply smtpd sent for a refused AUTH ("535 5.7.8 Error: authentication
# failed: WHY") is logged without its code. A temporary failure ("454 4.7.0
# Temporary authentication failure: WHY") is logged alike; the one WHY that
# marks it is Postfix's own when its Dovecot SASL server went away.
_SASL_FAILURE = Reply(INBOUND, "", "5xx", "", "auth", "", "SASL authentication failed")
_SASL_TEMPORARY = _SASL_FAILURE._replace(reply_class="4xx")
_SASL_SERVER_LOST = "Connection lost to authentication server"


def _sasl_failure(message: str) -> list[Reply] | None:
    """"warning: H[ip]: SASL LOGIN authentication failed: WHY[, sasl_username=u]"
    (also "H[ip]:port: " with smtpd_client_port_logging), or None.

    The SASL library's own warnings about the same attempt ("warning: SASL
    authentication failure: ...", "warning: SASL authentication problem: ...")
    name no client and count nothing, so an attempt counts once.
    """
    sasl = message.find(": SASL ", 9)
    if sasl < 0:
        return None
    close = message.rfind("]", 9, sasl)
    if close < 0 or (sasl > close + 1 and not (message[close + 1] == ":" and message[close + 2 : sasl].isdigit())):
        return None
    mechanism_end = message.find(" ", sasl + 7)
    if mechanism_end < 0 or not message.startswith(_SASL_FAILED, mechanism_end):
        return None
    why = message[mechanism_end + len(_SASL_FAILED) :]
    return [_SASL_TEMPORARY if why.startswith(_SASL_SERVER_LOST) else _SASL_FAILURE]


def _inbound_reject(message: str, cleanup: bool) -> list[Reply] | None:
    """Rejects our server sent: "QID|NOQUEUE: ACTION: STAGE from H[ip]: R; ...".

    cleanup also logs header/body check rejects, where the reply comes last:
    "QID: reject: header ... from H[ip]; from=<> to=<> ...: 5.7.1 text".
    """
    body = _strip_queue_id(message)
    colon = body.find(": ")
    if colon < 0:
        return []
    action = body[:colon]
    if action not in _REPLY_ACTIONS:
        if action.startswith("reject") or action.endswith("-reject"):
            return []  # reject_warning and kin: logged, not replied
        return None if " said: " in body else []
    rest = body[colon + 2 :]
    if cleanup and (rest.startswith("header ") or rest.startswith("body ")):
        # The header text is the sender's; the reply follows the last ">: ".
        at = rest.rfind(">: ")
        if at < 0:
            return None
        reply = reply_from_text(INBOUND, rest[at + 3 :], "end_of_data")
        return [reply] if reply is not None else []
    space = rest.find(" ")
    word = rest[:space] if space > 0 else rest
    if word.endswith(":"):
        # "proxy-reject: END-OF-MESSAGE: 554 5.7.1 ..." names no client.
        word = word[:-1]
        reply_at = space + 1
    else:
        if not rest.startswith("from ", space + 1):
            return None
        # The client is "name[addr]" or "[addr]:port"; the reply follows the
        # ": " after its closing bracket (IPv6 addresses hold ':' but no ']').
        close = rest.find("]", space)
        reply_at = rest.find(": ", close) + 2
        if close < 0 or reply_at < 2:
            return None
    stage = _REJECT_STAGES.get(word)
    if stage is None:
        return None
    text = rest[reply_at:]
    # The envelope Postfix appends ("; from=<..> to=<..> proto=.. helo=<..>")
    # is the client's, not part of our reply.
    envelope = text.find("; from=<")
    if envelope > 0:
        text = text[:envelope]
    # "550 5.1.1 <a@example.net>: Recipient address rejected: ...": the
    # address is not why, and without it the same rejections read the same,
    # so their reasons come from a cache.
    why = None
    address = text.find(" <", 0, _HEAD_WITH_SPACE)
    if address > 0:
        end = text.find(">: ", address)
        if end > 0:
            why = text[end + 3 :]
    reply = reply_from_text(INBOUND, text, stage, why=why)
    # No code logged (postscreen "too many connections"): nothing to count.
    return [reply] if reply is not None else []



# "Anonymous TLS connection established from H[ip]: TLSv1.3 with cipher ..."
# (smtpd, tlsproxy) and "Verified TLS connection established to H[ip]:25:
# TLSv1.2 with cipher ..." (smtp, lmtp): one line per TLS connection, a few
# per cent of a busy log, so counted over a block: parsing each line costs
# three times as much.
_TLS_ESTABLISHED = b" TLS connection established "
# The word that starts the message, before _TLS_ESTABLISHED.
_TLS_TRUSTS = {b"Anonymous": "anonymous", b"Untrusted": "untrusted", b"Trusted": "trusted", b"Verified": "verified"}
_TLS_DIRECTIONS = {b"from": INBOUND, b"to": OUTBOUND}
# Longer than any syslog tag Postfix writes: a longer one is not read.
_MAX_TAG = 128


def count_block(block: bytes) -> tuple[dict[tuple[Event, str], int], int]:
    """The Tls of every "TRUST TLS connection established from|to H[ip][:port]:
    VERSION with cipher ..." line of block that has a Postfix tag
    (name/daemon[pid]: ), each with its service, and how many there were."""
    keys: list[tuple[bytes, bytes, bytes, bytes]] = []
    append, find, rfind = keys.append, block.find, block.rfind
    length = len(_TLS_ESTABLISHED)
    at = find(_TLS_ESTABLISHED)
    while at >= 0:
        after = at + length
        end = find(b"\n", after)
        if end < 0:
            end = len(block)
        host = find(b" ", after, end) + 1  # the host name holds no space
        start = find(b" ", host, end) + 1 if host else 0
        # The message starts with the trust word, right after the tag's "]: ":
        # in a line without a tag this "]: " is an earlier line's, and the
        # "word" between holds a newline.
        tag_end = rfind(b"]: ", max(at - 16, 0), at)
        bracket = rfind(b"[", max(tag_end - _MAX_TAG, 0), tag_end) if tag_end >= 0 else -1
        if start and bracket >= 0:
            stop = find(b" ", start, end)
            # A tag is read within _MAX_TAG bytes: a longer one is cut there
            # (and counts as `other`), never a slice of the block.
            farthest = max(bracket - _MAX_TAG, 0)
            append((block[tag_end + 3 : at], block[after : host - 1], block[start : stop if stop > 0 else end],
                    block[(rfind(b" ", farthest, bracket) + 1 or farthest) : bracket]))
        at = find(_TLS_ESTABLISHED, end)  # one per line, and always onwards
    events: dict[tuple[Event, str], int] = {}
    lines = 0
    for (word, direction, version, tag), n in Counter(keys).items():
        trust = _TLS_TRUSTS.get(word)
        if trust is None or direction not in _TLS_DIRECTIONS or b"/" not in tag or b"\n" in tag:
            continue
        event = Tls(_TLS_DIRECTIONS[direction], tls_protocol(version.decode("ascii", "replace")), trust)
        key = (event, service_of_tag(tag.decode("utf-8", "replace")) or "postfix")
        events[key] = events.get(key, 0) + n
        lines += n
    return events, lines

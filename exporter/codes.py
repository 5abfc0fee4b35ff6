"""What SMTP reply codes and enhanced status codes mean.

Sources: RFC 5321 section 4.2 (reply codes and the meaning of their digits),
RFC 3207 (STARTTLS), RFC 4954 (AUTH), RFC 7504 (521, 556), and the IANA
"SMTP Enhanced Status Codes" registry, built on RFC 3463 and the documents
that added to it (RFC 3886, 4468, 4954, 5248, 6531, 6710, 7293, 7372, 7505,
8617, 8689). The meanings are short phrases for dashboards and the table
output, not the full text of those documents.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

REPLY_CODES: dict[str, str] = {
    "211": "System status, or system help reply",
    "214": "Help message",
    "220": "Service ready (or ready to start TLS)",
    "221": "Service closing transmission channel",
    "235": "Authentication succeeded",
    "250": "Requested mail action okay, completed",
    "251": "User not local; will forward",
    "252": "Cannot verify the user, but will accept the message and attempt delivery",
    "334": "Authentication challenge, waiting for the client's response",
    "354": "Start mail input; end with <CRLF>.<CRLF>",
    "421": "Service not available, closing transmission channel",
    "432": "A password transition is needed",
    "450": "Requested mail action not taken: mailbox unavailable (busy or temporarily blocked)",
    "451": "Requested action aborted: local error in processing",
    "452": "Requested action not taken: insufficient system storage",
    "454": "Temporary authentication failure, or TLS not available",
    "455": "Server unable to accommodate parameters",
    "500": "Syntax error, command unrecognized",
    "501": "Syntax error in parameters or arguments",
    "502": "Command not implemented",
    "503": "Bad sequence of commands",
    "504": "Command parameter not implemented",
    "521": "Host does not accept mail",
    "530": "Authentication required (or STARTTLS must come first)",
    "534": "Authentication mechanism is too weak",
    "535": "Authentication credentials invalid",
    "538": "Encryption required for requested authentication mechanism",
    "550": "Requested action not taken: mailbox unavailable",
    "551": "User not local; please try the forward path",
    "552": "Requested mail action aborted: exceeded storage allocation",
    "553": "Requested action not taken: mailbox name not allowed",
    "554": "Transaction failed (or no SMTP service here)",
    "555": "MAIL FROM/RCPT TO parameters not recognized or not implemented",
    "556": "Domain does not accept mail",
}

# RFC 5321 4.2.1: the first digit says how it went, the second what it is
# about. These name codes the table lacks, so a new or private code still
# reads sensibly. 1yz is defined there although SMTP does not use it.
_REPLY_CLASSES = {
    "1": "Positive preliminary",
    "2": "Positive completion",
    "3": "Positive intermediate",
    "4": "Transient negative completion",
    "5": "Permanent negative completion",
}
_REPLY_CATEGORIES = {
    "0": "syntax",
    "1": "information",
    "2": "connections",
    "3": "unassigned category",
    "4": "unassigned category",
    "5": "mail system",
}

ENHANCED_CLASSES: dict[str, str] = {
    "2": "Success",
    "4": "Persistent transient failure",
    "5": "Permanent failure",
}

ENHANCED_SUBJECTS: dict[str, str] = {
    "0": "Other or undefined status",
    "1": "Addressing status",
    "2": "Mailbox status",
    "3": "Mail system status",
    "4": "Network and routing status",
    "5": "Mail delivery protocol status",
    "6": "Message content or media status",
    "7": "Security or policy status",
}

# "subject.detail" -> meaning, for every entry of the IANA registry. The
# registry lists each as X.s.d, valid with any class.
ENHANCED_SUBJECT_DETAIL: dict[str, str] = {
    "0.0": "Other undefined status",
    "1.0": "Other address status",
    "1.1": "Bad destination mailbox address",
    "1.2": "Bad destination system address",
    "1.3": "Bad destination mailbox address syntax",
    "1.4": "Destination mailbox address ambiguous",
    "1.5": "Destination address valid",
    "1.6": "Destination mailbox has moved, no forwarding address",
    "1.7": "Bad sender's mailbox address syntax",
    "1.8": "Bad sender's system address",
    "1.9": "Message relayed to non-compliant mailer",
    "1.10": "Recipient address has null MX",
    "2.0": "Other or undefined mailbox status",
    "2.1": "Mailbox disabled, not accepting messages",
    "2.2": "Mailbox full",
    "2.3": "Message length exceeds administrative limit",
    "2.4": "Mailing list expansion problem",
    "3.0": "Other or undefined mail system status",
    "3.1": "Mail system full",
    "3.2": "System not accepting network messages",
    "3.3": "System not capable of selected features",
    "3.4": "Message too big for system",
    "3.5": "System incorrectly configured",
    "3.6": "Requested priority was changed",
    "4.0": "Other or undefined network or routing status",
    "4.1": "No answer from host",
    "4.2": "Bad connection",
    "4.3": "Directory server failure",
    "4.4": "Unable to route",
    "4.5": "Mail system congestion",
    "4.6": "Routing loop detected",
    "4.7": "Delivery time expired",
    "5.0": "Other or undefined protocol status",
    "5.1": "Invalid command",
    "5.2": "Syntax error",
    "5.3": "Too many recipients",
    "5.4": "Invalid command arguments",
    "5.5": "Wrong protocol version",
    "5.6": "Authentication exchange line is too long",
    "6.0": "Other or undefined media error",
    "6.1": "Media not supported",
    "6.2": "Conversion required and prohibited",
    "6.3": "Conversion required but not supported",
    "6.4": "Conversion with loss performed",
    "6.5": "Conversion failed",
    "6.6": "Message content not available",
    "6.7": "Non-ASCII addresses not permitted for that sender or recipient",
    "6.8": "UTF-8 string reply is required, but not permitted by the SMTP client",
    "6.9": "UTF-8 header message cannot be transferred to one or more recipients",
    # The registry keeps 6.10 only as a deprecated duplicate of 6.8.
    "6.10": "UTF-8 string reply is required, but not permitted by the SMTP client (deprecated)",
    "7.0": "Other or undefined security status",
    "7.1": "Delivery not authorized, message refused",
    "7.2": "Mailing list expansion prohibited",
    "7.3": "Security conversion required but not possible",
    "7.4": "Security features not supported",
    "7.5": "Cryptographic failure",
    "7.6": "Cryptographic algorithm not supported",
    "7.7": "Message integrity failure",
    "7.8": "Authentication credentials invalid",
    "7.9": "Authentication mechanism is too weak",
    "7.10": "Encryption needed",
    "7.11": "Encryption required for requested authentication mechanism",
    "7.12": "A password transition is needed",
    "7.13": "User account disabled",
    "7.14": "Trust relationship required",
    "7.15": "Priority level is too low",
    "7.16": "Message is too big for the specified priority",
    "7.17": "Mailbox owner has changed",
    "7.18": "Domain owner has changed",
    "7.19": "RRVS test cannot be completed",
    "7.20": "No passing DKIM signature found",
    "7.21": "No acceptable DKIM signature found",
    "7.22": "No valid author-matched DKIM signature found",
    "7.23": "SPF validation failed",
    "7.24": "SPF validation error",
    "7.25": "Reverse DNS validation failed",
    "7.26": "Multiple authentication checks failed",
    "7.27": "Sender address has null MX",
    "7.28": "Mail flood detected",
    "7.29": "ARC validation failure",
    "7.30": "REQUIRETLS support required",
}

_REPLY_SYNTAX = re.compile(r"[0-9]{3}")
# RFC 3463 allows up to three digits for subject and detail; the class is one.
_ENHANCED_SYNTAX = re.compile(r"([0-9])\.([0-9]{1,3})\.([0-9]{1,3})")


def _check_reply(code: str) -> None:
    if not _REPLY_SYNTAX.fullmatch(code):
        raise ValueError(f"not a 3-digit SMTP reply code: {code!r}")


def reply_class(code: str) -> str:
    """'550' -> '5xx'. Raises ValueError unless code is three digits."""
    _check_reply(code)
    return code[0] + "xx"


def reply_code_meaning(code: str) -> str:
    """The meaning of a reply code; for one not in REPLY_CODES, what its digits say.

    Any three digits get an answer; anything else raises ValueError.
    """
    _check_reply(code)
    meaning = REPLY_CODES.get(code)
    if meaning is not None:
        return meaning
    how = _REPLY_CLASSES.get(code[0], f"Unknown class {code[0]}xx")
    about = _REPLY_CATEGORIES.get(code[1], "unknown category")
    return f"{how} ({about})"


def enhanced_meaning(enhanced: str) -> str:
    """'5.1.1' -> 'Permanent failure: Bad destination mailbox address'.

    A detail the registry lacks falls back to its subject ('5.1.99' ->
    'Permanent failure: Addressing status (other)'), so codes registered
    after this table still read sensibly. Any digit.digits.digits gets an
    answer (leading zeros, which RFC 3463 forbids, are read past); anything
    else raises ValueError.
    """
    m = _ENHANCED_SYNTAX.fullmatch(enhanced)
    if m is None:
        raise ValueError(f"not an enhanced status code: {enhanced!r}")
    klass, subject, detail = m.group(1), str(int(m.group(2))), str(int(m.group(3)))
    how = ENHANCED_CLASSES.get(klass, f"Unknown class {klass}")
    what = ENHANCED_SUBJECT_DETAIL.get(f"{subject}.{detail}")
    if what is None:
        if subject in ENHANCED_SUBJECTS:
            what = f"{ENHANCED_SUBJECTS[subject]} (other)"
        else:
            what = f"Unknown subject {subject}"
    return f"{how}: {what}"


def iter_reply_codes() -> Iterator[tuple[str, str, str]]:
    """(code, class, meaning) for every code in REPLY_CODES, in numeric order."""
    for code in sorted(REPLY_CODES):  # three digits each: text order is numeric order
        yield code, reply_class(code), REPLY_CODES[code]


def _numeric(dotted: str) -> tuple[int, ...]:
    return tuple(int(part) for part in dotted.split("."))


def iter_enhanced_codes() -> Iterator[tuple[str, str]]:
    """(enhanced, meaning) for every class x registry entry, in numeric order.

    Numeric, so 5.7.9 comes before 5.7.10.
    """
    details = sorted(ENHANCED_SUBJECT_DETAIL, key=_numeric)
    for klass in sorted(ENHANCED_CLASSES):
        for subject_detail in details:
            code = f"{klass}.{subject_detail}"
            yield code, enhanced_meaning(code)

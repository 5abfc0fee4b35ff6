"""Why a reply failed: one of a small fixed set of reasons, from its code,
enhanced code and text.

`ReasonRules.reason(code, enhanced, text)` names the reason of one reply, for
the label `reason` of smtp_reply_reasons_total. The values (REASONS):

- user_unknown: the recipient does not exist or its account is disabled
- mailbox_full: the recipient's mailbox is over quota
- greylisted: a greylisting deferral (retrying later will pass)
- rate_limited: too much mail, too many connections or recipients, throttling
  (also a deferral because of the sender's reputation, such as Yahoo TSS04)
- blocklisted: the sending IP or domain is on a DNS blocklist, banned, or has
  a bad reputation
- spam_content: the message itself was judged spam, virus or phishing
- sender_auth: the sender's domain failed SPF, DKIM, DMARC or ARC
- smtp_auth: SMTP AUTH was refused (wrong credentials, a weak mechanism) or
  is required first (530, 534, 535, 538, X.7.8, X.7.9, "authentication
  required")
- tls_required: the server demands STARTTLS or stronger encryption
- relay_denied: the server refuses to relay for us
- message_too_big: the message exceeds a size limit
- dns_error: a DNS problem: a domain or host not found, no reverse DNS
  ("Client host rejected: cannot find your hostname" is dns_error, not
  policy: the fix is the client's DNS), a null MX
- policy: any other refusal by local policy (X.7.x codes, "access denied")
- other: none of the above, or a reply that is not a failure

Precedence, first that decides wins:

1. A reply of class 2 or 3 is not a failure: always "other".
2. User rules, in the order written (see below).
3. Text evidence: phrases in the reply text such as "greylisted", "Spamhaus",
   "[TSS04]", "SPF", "Relay access denied", "over quota". When several are
   present, the reason that comes first in this order wins: greylisted,
   tls_required, relay_denied, sender_auth, smtp_auth, rate_limited, blocklisted,
   mailbox_full, message_too_big, dns_error, user_unknown, spam_content.
   So Gmail's 421 4.7.0 "unusual rate of unsolicited mail ... protect our
   users from spam" is rate_limited, not spam_content, and its 550 5.7.26
   "unauthenticated ... SPF or DKIM ... protect our users from spam" is
   sender_auth.
4. The enhanced code: first an entry for the exact code (Microsoft's 5.7.606
   "banned sending IP"), then its subject and detail in any class (X.1.1
   user_unknown, X.2.2 mailbox_full, X.7.26 sender_auth, ...), then its subject
   (X.7.x policy).
   Yahoo's DMARC reject "554 5.7.9 ... policy reasons" is told from X.7.9
   (mechanism too weak) by its code: sender_auth.
5. The reply code, for the few that say enough alone (530, 534, 535, 538
   smtp_auth, 556 dns_error).
6. Weak text evidence: "policy", "access denied", "not authorized",
   "blocked", ... give policy.
7. other.

Text evidence is read from the lower-cased text, with the continuation
prefixes of a flattened multi-line reply ("... this 550-5.7.1 message is ...")
taken out so that a phrase split across lines is still found. Phrases match at
the start of a word.

User rules, the `reasons:` list of the configuration file. Each rule is a
mapping with a `reason` (one of REASONS) and at least one matcher:

    reasons:
      - reason: blocklisted
        text: "spamhaus|blocked using"   # a regex, searched anywhere, any case
      - reason: rate_limited
        enhanced: "4.7.*"                # * stands for any subject or detail
        code: "421"                      # 421, or a class such as 4xx, 42x
      - reason: policy
        enhanced: "*.7.1"                # any class

A rule matches when all its matchers do; the first rule that matches decides,
before the bundled table, so a user rule overrides any bundled decision. The
bundled table cannot be switched off: what no rule matches gets the bundled
reason or "other". `code` is [2-5][0-5][0-9] with x for any digit in the last
two places; `enhanced` is class.subject.detail, [245] or * for the class, 1-3
digits or * for the others; code and enhanced of one rule must agree on the
class. A rule cannot target class 2 or 3 (see 1. above). `text` is a Python
regex searched in the reply text as logged, ignoring case. Each user rule with
`text` costs one regex search per failed reply: keep them few.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, NamedTuple

from exporter.configcheck import Checker

REASONS: tuple[str, ...] = (
    "user_unknown",
    "mailbox_full",
    "greylisted",
    "rate_limited",
    "blocklisted",
    "spam_content",
    "sender_auth",
    "smtp_auth",
    "tls_required",
    "relay_denied",
    "message_too_big",
    "dns_error",
    "policy",
    "other",
)

# Text evidence, strongest first (precedence step 3). Each phrase is a regex
# over lower-cased text, tried at the start of a word; a space stands for any
# run of whitespace. A phrase starts with a plain letter or digit: the phrases
# are grouped by that character into one regex (see _compile_phrases).
_STRONG_PHRASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("greylisted", (
        r"gr[ae]y-?list",
    )),
    ("tls_required", (
        r"must issue a starttls",
        r"starttls (?:is )?required",
        r"tls (?:is )?required",
        r"requires? (?:a )?(?:tls|secure|encrypted) (?:connection|transport|channel)",
        r"encryption (?:is )?(?:required|needed)",
    )),
    ("relay_denied", (
        r"relay(?:ing)? (?:access )?(?:denied|not permitted|not allowed|prohibited)",
        r"unable to relay",
        r"not permitted to relay",
        r"we do not relay",
        r"no relaying",
        r"allowed rcpthosts",  # qmail
    )),
    ("sender_auth", (
        r"dmarc",
        r"spf\b",
        r"sender policy framework",
        # Gmail's rate-limit texts name "your DKIM domain": not a DKIM failure.
        r"dkim\b(?! domain)",
        r"domainkeys",
        r"unauthenticated",
        r"arc (?:validation|check)",
    )),
    ("smtp_auth", (
        r"authentication (?:failed|failure|unsuccessful|credentials invalid|is required|required)",
        r"auth(?:entication)? (?:is )?required",
        r"must (?:issue an auth|authenticate)",
        r"authenticate first",
        r"incorrect authentication",
        r"invalid credentials",
        r"username and password not accepted",
    )),
    ("rate_limited", (
        r"rate[ -]?limit",
        r"unusual rate",
        r"unexpected volume",
        r"tss04\b",
        r"ts0[12]\b",
        r"throttl",
        r"flood",
        r"too (?:many|much) (?:connections?|concurrent|simultaneous|sessions?|messages?|mails?|e-?mails?"
        r"|recipients?|rcpts?|requests?|deliveries|mail)\b",
        r"(?:sending|message|connection|recipient|daily|hourly) (?:rate|limit|quota)",
    )),
    ("blocklisted", (
        r"spamhaus",
        r"spamcop",
        r"sorbs",
        r"barracudacentral",
        r"uceprotect",
        r"mailspike",
        r"blocked using",
        r"listed (?:at|in|on|by) ",
        r"(?:black|block|deny|ban)[ -]?list",
        r"rbl\b",
        r"dnsbl",
        r"banned sending ip",
        r"banned sender",
        r"(?:low|poor|bad|negative) reputation",
        r"reputation (?:is )?too low",
        r"tss09\b",
        r"ts03\b",
        r"ipcheck\.proofpoint",
        r"delist",
    )),
    ("mailbox_full", (
        r"(?:mail|in)?box (?:is )?full",
        r"over (?:the )?(?:storage )?quota",
        r"quota exceeded",
        r"exceeded (?:the |its |their )?(?:storage|quota)",
        r"(?:mailbox|storage|disk) (?:size |quota )?(?:limit )?exceeded",
        r"out of storage",
        r"insufficient (?:mailbox )?storage",
    )),
    ("message_too_big", (
        r"message size",
        r"(?:message|mail|email|e-mail|message file) (?:is )?too (?:big|large)",
        r"(?:maximum|max|fixed) (?:message )?size",
        r"size limit",
        r"size exceeds",
    )),
    ("dns_error", (
        r"(?:domain|host) (?:name )?not found",
        r"host or domain name not found",
        r"domain (?:name )?(?:does not|doesn't) exist",
        r"name service error",
        r"cannot find your (?:reverse )?hostname",
        r"ptr record",
        r"reverse dns",
        r"rdns\b",
        r"null mx",
        r"unresolvable",
        r"(?:could not|cannot|can't|unable to) (?:be )?resolve",
        r"dns (?:lookup|error|failure|timeout|problem|temporary)",
        r"temporary (?:dns|lookup) failure",
        r"nxdomain",
    )),
    ("user_unknown", (
        r"user unknown",
        r"unknown (?:user|recipient|mailbox)",
        r"(?:user|recipient|mailbox|address) (?:is )?(?:unknown|invalid)",
        r"no such (?:user|mailbox|recipient|address|account)",
        r"(?:user|recipient|mailbox|address|account) not found",
        r"recipnotfound",
        r"invalid (?:recipient|mailbox|address|user)",
        r"mailbox (?:is )?unavailable",
        r"(?:does not|doesn't) exist",
        r"no mailbox here",
        r"unrouteable address",
        r"(?:account|mailbox|user) (?:has been |is )?(?:disabled|discontinued|inactive|deactivated)",
        r"user doesn't have",
    )),
    ("spam_content", (
        # Not the local part of an address such as <spam@example.org>.
        r"spam\b(?![^\s]*@)",
        r"junk\b",
        r"unsolicited",
        r"virus",
        r"malware",
        r"phishing",
        r"infected",
        r"security issue",
        r"message content",
        r"content (?:rejected|filter|restriction)",
        r"(?:banned|prohibited|dangerous|executable) (?:attachment|file|content)",
        r"suspicious",
    )),
)

# Weak text evidence (precedence step 6): read only when no code decided.
_WEAK_PHRASES = (
    r"polic(?:y|ies)",
    r"access denied",
    r"denied",
    r"not (?:authorized|authorised|allowed|permitted)",
    r"prohibit",
    r"blocked",
    r"refused",
    r"fully-qualified",  # Postfix reject_non_fqdn_* restrictions
)

# Enhanced codes (precedence step 4), in the syntax of a user rule's
# `enhanced`. The exact codes are Microsoft's, outside the IANA registry.
_BUNDLED_ENHANCED: tuple[tuple[str, str], ...] = (
    # Exchange Online directory-based edge blocking: "550 5.4.1 Recipient
    # address rejected: Access denied" means the recipient does not exist.
    ("5.4.1", "user_unknown"),
    ("5.7.509", "sender_auth"),  # does not pass DMARC
    ("5.7.511", "blocklisted"),  # banned sender
    *((f"5.7.{detail}", "blocklisted") for detail in range(606, 650)),  # banned sending IP
    ("5.7.708", "blocklisted"),  # traffic not accepted from this IP
    *((f"4.7.{detail}", "rate_limited") for detail in range(500, 700)),  # throttling new or poor IPs
    ("5.7.54", "relay_denied"),  # unable to relay recipient in non-accepted domain
    ("5.7.64", "relay_denied"),  # TenantAttribution; Relay Access Denied
    ("*.1.1", "user_unknown"),
    ("*.1.2", "dns_error"),
    ("*.1.6", "user_unknown"),
    ("*.1.8", "dns_error"),
    ("*.1.10", "dns_error"),
    ("*.2.1", "user_unknown"),
    ("*.2.2", "mailbox_full"),
    ("*.2.3", "message_too_big"),
    ("*.3.4", "message_too_big"),
    ("*.4.3", "dns_error"),
    ("*.4.4", "dns_error"),
    ("*.5.3", "rate_limited"),
    ("*.7.8", "smtp_auth"),  # authentication credentials invalid
    ("*.7.9", "smtp_auth"),  # mechanism too weak (but see _BUNDLED_PAIRS)
    ("*.7.10", "tls_required"),
    ("*.7.11", "tls_required"),
    ("*.7.12", "smtp_auth"),  # a password transition is needed
    ("*.7.20", "sender_auth"),
    ("*.7.21", "sender_auth"),
    ("*.7.22", "sender_auth"),
    ("*.7.23", "sender_auth"),
    ("*.7.24", "sender_auth"),
    ("*.7.25", "dns_error"),  # reverse DNS validation failed
    ("*.7.26", "sender_auth"),
    ("*.7.27", "dns_error"),  # sender address has null MX
    ("*.7.28", "rate_limited"),  # mail flood
    ("*.7.29", "sender_auth"),
    ("*.7.30", "tls_required"),
    ("*.7.*", "policy"),
)

# (code, enhanced) pairs that mean something else than the enhanced code
# alone (precedence step 4, first).
_BUNDLED_PAIRS: dict[tuple[str, str], str] = {
    ("554", "5.7.9"): "sender_auth",  # Yahoo's DMARC reject, "... policy reasons"
}

# Reply codes that say enough alone (precedence step 5), RFC 4954's.
_BUNDLED_CODES: dict[str, str] = {
    "530": "smtp_auth",  # authentication required
    "534": "smtp_auth",  # authentication mechanism is too weak
    "535": "smtp_auth",  # authentication credentials invalid
    "538": "smtp_auth",  # encryption required for the requested mechanism
    "556": "dns_error",  # domain does not accept mail (null MX, RFC 7504)
}

_CODE_PATTERN = re.compile(r"[2-5][0-5xX][0-9xX]")
_ENHANCED_PATTERN = re.compile(r"([245*])\.([0-9]{1,3}|\*)\.([0-9]{1,3}|\*)")
_ENHANCED_CODE = re.compile(r"[245]\.([0-9]{1,3})\.([0-9]{1,3})")
# Continuation prefix inside a flattened multi-line reply: " 550-5.7.1" or
# the last line's " 550 5.7.1".
_CONTINUATION = re.compile(r"\s[2-5][0-5][0-9][ -](?:[245]\.[0-9]{1,3}\.[0-9]{1,3}(?=\s))?")

# Longer texts (flattened multi-line replies) are rarely repeated exactly.
_CACHED_TEXT = 256

# The reason that sender_auth and smtp_auth replaced, named in the error a
# rule still using it gets.
_SPLIT_REASON = "auth_failed"
_RULE_KEYS = ("reason", "code", "enhanced", "text")
_RULE_EXAMPLE = '{reason: blocklisted, text: "spamhaus|blocked using"}'


class Rule(NamedTuple):
    """A user rule; "" for a matcher means "any"."""

    reason: str
    code: str = ""
    enhanced: str = ""
    text: str = ""


class _Compiled(NamedTuple):
    reason: str
    code: re.Pattern[str] | None
    enhanced: re.Pattern[str] | None
    text: re.Pattern[str] | None


def _code_regex(code: str) -> re.Pattern[str]:
    return re.compile(code.lower().replace("x", "[0-9]"))


def _enhanced_regex(enhanced: str) -> re.Pattern[str]:
    klass, subject, detail = enhanced.split(".")
    parts = ("[245]" if klass == "*" else klass,
             "[0-9]{1,3}" if subject == "*" else subject,
             "[0-9]{1,3}" if detail == "*" else detail)
    return re.compile(r"\.".join(parts))


class ReasonRules:
    """User rules in front of the bundled table; see the module docstring."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules = tuple(rules)
        self._compiled = tuple(
            _Compiled(
                rule.reason,
                _code_regex(rule.code) if rule.code else None,
                _enhanced_regex(rule.enhanced) if rule.enhanced else None,
                re.compile(rule.text, re.IGNORECASE) if rule.text else None,
            )
            for rule in self.rules
        )
        # Mail logs repeat the same replies (postscreen, greylisting, size and
        # HELO rejects, ...): a third of a busy MX's failed replies are new.
        # Bounded in entries and, by _CACHED_TEXT, in bytes.
        self._cached = lru_cache(maxsize=4096)(self._uncached)

    @classmethod
    def default(cls) -> ReasonRules:
        """The bundled table alone."""
        return cls()

    @classmethod
    def from_config(cls, rules: Any, checker: Checker | None = None, key: str = "reasons") -> ReasonRules:
        """User rules as read from YAML under key, checked.

        Raises ConfigError naming the rule and key, the problem and the fix:
        "reasons[2].text: bad regex: ...; fix the pattern".
        """
        checker = checker or Checker()
        items = checker.items(key, rules, f"[{_RULE_EXAMPLE}]")
        return cls(_check_rule(checker, f"{key}[{i}]", item) for i, item in enumerate(items))

    def reason(self, code: str, enhanced: str, text: str) -> str:
        """The reason of one reply; never raises, whatever the input."""
        if len(text) <= _CACHED_TEXT:
            return self._cached(code, enhanced, text)
        return self._uncached(code, enhanced, text)

    def _uncached(self, code: str, enhanced: str, text: str) -> str:
        first = code[:1] or enhanced[:1]
        if first == "2" or first == "3":
            return "other"
        for rule in self._compiled:
            if rule.code is not None and not rule.code.fullmatch(code):
                continue
            if rule.enhanced is not None and not rule.enhanced.fullmatch(enhanced):
                continue
            if rule.text is not None and not rule.text.search(text):
                continue
            return rule.reason
        return _bundled_reason(code, enhanced, text)


def _check_rule(checker: Checker, key: str, value: Any) -> Rule:
    item = checker.mapping(key, value, _RULE_KEYS, f"a reason and matchers, such as {_RULE_EXAMPLE}")
    valid = ", ".join(REASONS)
    if "reason" not in item:
        checker.fail(f"{key}.reason", f"missing; give one of: {valid}")
    reason = item["reason"]
    if reason == _SPLIT_REASON:
        checker.fail(f"{key}.reason", "auth_failed was split in two; use sender_auth (SPF, DKIM, DMARC, "
                     "ARC) or smtp_auth (SMTP AUTH refused or required)")
    if reason not in REASONS:
        checker.fail(f"{key}.reason", f"{reason!r} is not a reason; use one of: {valid}")
    if not any(name in item for name in ("code", "enhanced", "text")):
        checker.fail(key, "has no matcher; give at least one of code, enhanced or text")
    code = item.get("code", "")
    # YAML reads an unquoted 550 as a number.
    if isinstance(code, int) and not isinstance(code, bool):
        code = str(code)
    if "code" in item and (not isinstance(code, str) or not _CODE_PATTERN.fullmatch(code) or code[0] in "23"):
        checker.fail(f"{key}.code", f"{item['code']!r} is not the code of a failed reply; "
                     "use 4xx or 5xx with x for any digit, e.g. 550, 55x or 5xx")
    enhanced = item.get("enhanced", "")
    if "enhanced" in item:
        m = _ENHANCED_PATTERN.fullmatch(enhanced) if isinstance(enhanced, str) else None
        if m is None or m.group(1) == "2":
            checker.fail(f"{key}.enhanced", f"{enhanced!r} is not the enhanced code of a failed "
                         "reply; use class.subject.detail with class 4, 5 or *, and * for any "
                         "subject or detail, e.g. 5.7.1, 5.7.* or *.7.26 (quote it in YAML)")
        if code and m.group(1) != "*" and m.group(1) != code[0]:
            checker.fail(f"{key}.enhanced", f"class {m.group(1)} never comes with code {code}; "
                         "make the classes agree or drop one of them")
    text = item.get("text", "")
    if "text" in item:
        if not isinstance(text, str) or not text:
            checker.fail(f"{key}.text", f"got {text!r}; give a regex such as \"spamhaus|blocked using\"")
        try:
            re.compile(text, re.IGNORECASE)
        except re.error as err:
            checker.fail(f"{key}.text", f"bad regex: {err}; fix the pattern")
    return Rule(reason, code, enhanced, text)


_LEADING_CHOICE = re.compile(r"\(\?:([a-z0-9' |-]+)\)(\??)")


def _expand(phrase: str) -> list[str]:
    """'(?:black|block)list' -> ['blacklist', 'blocklist'], so that every
    phrase starts with a plain character (an optional choice also yields the
    phrase without it)."""
    m = _LEADING_CHOICE.match(phrase)
    if m is None:
        return [phrase]
    rest = phrase[m.end():]
    choices = [choice + rest for choice in m.group(1).split("|")]
    if m.group(2):
        choices.append(rest)
    return [alone for choice in choices for alone in _expand(choice)]


# Ranks: a strong phrase ranks by its reason's place in _STRONG_PHRASES.
_WEAK_RANK = len(_STRONG_PHRASES)
_NO_PHRASE = _WEAK_RANK + 1


def _compile_phrases() -> tuple[re.Pattern[str], tuple[int, ...]]:
    """One regex for all phrases, and the rank of each of its groups.

    Every phrase ends in an empty group, so the match's lastindex names it.
    The alternatives sit in a lookahead after one non-word character: a match
    consumes only that character, so finditer finds a phrase at every word
    start, even inside another phrase's match. Phrases are grouped by their
    first character because the regex engine tests a branch's first literal
    cheaply: a word start then costs one test per distinct first letter
    instead of one per phrase. Within a group phrases keep their rank order,
    so where two match at the same place the stronger is reported.
    """
    ranked = [(rank, phrase) for rank, (_, phrases) in enumerate(_STRONG_PHRASES) for phrase in phrases]
    ranked += [(_WEAK_RANK, phrase) for phrase in _WEAK_PHRASES]
    by_first: dict[str, list[tuple[int, str]]] = {}
    for rank, phrase in ((rank, alone) for rank, written in ranked for alone in _expand(written)):
        if not re.match(r"[a-z0-9][^?*+{]", phrase):
            raise ValueError(f"bundled phrase must start with a plain letter or digit: {phrase!r}")
        by_first.setdefault(phrase[0], []).append((rank, phrase[1:].replace(" ", r"\s+") + "()"))
    # Groups are numbered by their place in the regex; group 0 is the whole match.
    group_ranks = [_NO_PHRASE]
    branches = []
    for first, tails in by_first.items():
        group_ranks.extend(rank for rank, _ in tails)
        branches.append(f"{first}(?:{'|'.join(tail for _, tail in tails)})")
    regex = re.compile(rf"[^a-z0-9](?=(?:{'|'.join(branches)}))")
    if regex.groups != len(group_ranks) - 1:
        raise ValueError("a bundled phrase has a capturing group; use (?:...)")
    return regex, tuple(group_ranks)


_PHRASES, _GROUP_RANKS = _compile_phrases()


def _enhanced_tables() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    exact: dict[str, str] = {}
    any_class: dict[str, str] = {}  # "7.26" -> reason
    subject: dict[str, str] = {}  # "7" -> reason
    for pattern, reason in _BUNDLED_ENHANCED:
        klass, subj, detail = pattern.split(".")
        if klass != "*":
            exact[pattern] = reason
        elif detail != "*":
            any_class[f"{subj}.{detail}"] = reason
        else:
            subject[subj] = reason
    return exact, any_class, subject


_BY_ENHANCED, _BY_SUBJECT_DETAIL, _BY_SUBJECT = _enhanced_tables()


@lru_cache(maxsize=1024)
def _code_reason(code: str, enhanced: str) -> str | None:
    """Precedence steps 4 and 5. Cached: there are few distinct pairs."""
    m = _ENHANCED_CODE.fullmatch(enhanced)
    if m is not None:
        paired = _BUNDLED_PAIRS.get((code, enhanced))
        if paired:
            return paired
        subject, detail = str(int(m.group(1))), str(int(m.group(2)))
        found = (_BY_ENHANCED.get(enhanced) or _BY_SUBJECT_DETAIL.get(f"{subject}.{detail}")
                 or _BY_SUBJECT.get(subject))
        if found:
            return found
    return _BUNDLED_CODES.get(code)


def _bundled_reason(code: str, enhanced: str, text: str) -> str:
    lowered = text.lower()
    if text[3:4] == "-":
        lowered = _CONTINUATION.sub("", lowered)
    best = _NO_PHRASE
    for m in _PHRASES.finditer(" " + lowered):
        rank = _GROUP_RANKS[m.lastindex or 0]  # every branch ends in a group: never 0
        if rank < best:
            best = rank
    if best < _WEAK_RANK:
        return _STRONG_PHRASES[best][0]
    by_code = _code_reason(code, enhanced)
    if by_code is not None:
        return by_code
    if best == _WEAK_RANK:
        return "policy"
    return "other"

"""Formats defined in the config file, for the MTAs without a parser here
(qmail, Haraka, Courier, appliances): a regex with named groups.

    formats:
      - name: haraka
        match: '(?P<direction>inbound|outbound).*?code=(?P<code>\\d{3}) (?P<enhanced>\\d\\.\\d+\\.\\d+)?'
        contains: ["haraka["]    # optional: lines without one are never matched
        direction: inbound       # used when the pattern has no direction group
        stage: unknown           # used when the pattern has no stage group

Groups: `code` and/or `enhanced` (at least one must be in the pattern),
optionally `direction` (inbound|outbound), `stage` (one of the stage label
values) and `host` (the remote host, for the provider label). A line the
pattern matches whose code and enhanced code are both empty or not valid
reply syntax counts nothing: the pattern cannot invent codes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from exporter.configcheck import Checker
from exporter.replies import (
    ENHANCED_CODE,
    INBOUND,
    OUTBOUND,
    REPLY_CODE,
    STAGES,
    Reply,
    make_reply,
)

_ALLOWED_KEYS = ("name", "match", "contains", "direction", "stage")
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def compile_format(checker: Checker, key: str, value: Any,
                   taken: Callable[[str], bool]) -> tuple[str, Callable, tuple[str, ...]]:
    """(name, parse, triggers) of the `formats:` entry at key; ConfigError
    names the problem. taken(name) says whether a format of that name already exists."""
    item = checker.mapping(key, value, _ALLOWED_KEYS, "name:, match: and options")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        checker.fail(f"{key}.name", "give a name of lowercase letters, digits, - and _, e.g. haraka")
    if taken(name):
        checker.fail(f"{key}.name", f"{name!r} is already a format; choose another name")
    pattern = item.get("match")
    if not isinstance(pattern, str) or not pattern:
        checker.fail(f"{key}.match", "give a regex with named groups code and/or enhanced")
    try:
        regex = re.compile(pattern)
    except re.error as err:
        checker.fail(f"{key}.match", f"not a valid regex: {err}; fix the pattern")
    groups = regex.groupindex
    if "code" not in groups and "enhanced" not in groups:
        checker.fail(f"{key}.match", "the pattern needs a named group (?P<code>...) or (?P<enhanced>...)")
    unknown_groups = sorted(set(groups) - {"code", "enhanced", "direction", "stage", "host"})
    if unknown_groups:
        checker.fail(f"{key}.match",
                     f"unknown group {unknown_groups[0]!r}; groups are code, enhanced, direction, stage, host")
    direction = item.get("direction", INBOUND)
    if direction not in (INBOUND, OUTBOUND):
        checker.fail(f"{key}.direction", f"got {direction!r}; expected inbound or outbound")
    stage = item.get("stage", "unknown")
    if stage not in STAGES:
        checker.fail(f"{key}.stage", f"got {stage!r}; expected one of {', '.join(STAGES)}")
    contains = item.get("contains", [])
    if isinstance(contains, str):
        contains = [contains]
    if not isinstance(contains, list) or not all(isinstance(c, str) and c and "\n" not in c for c in contains):
        checker.fail(f"{key}.contains", 'give a list of non-empty strings, e.g. ["code="]')
    # Without `contains`, every line is a candidate: the newline ends each one.
    triggers = tuple(contains) or ("\n",)
    return name, _Parser(regex, direction, stage), triggers


class _Parser:
    """parse() of one custom format; a class, not a closure, so --once can
    hand it to its worker processes."""

    def __init__(self, regex: re.Pattern, direction: str, stage: str) -> None:
        self.regex = regex
        self.direction = direction
        self.stage = stage

    def __call__(self, line: str) -> list[Reply] | None:
        m = self.regex.search(line)
        if m is None:
            return None
        found = m.groupdict("")
        code = found.get("code", "")
        enhanced = found.get("enhanced", "")
        if code and not REPLY_CODE.fullmatch(code):
            code = ""
        if enhanced and (not ENHANCED_CODE.fullmatch(enhanced) or (code and enhanced[0] != code[0])):
            enhanced = ""
        if not code and not enhanced:
            return []
        direction = found.get("direction") or self.direction
        stage = found.get("stage") or self.stage
        if direction not in (INBOUND, OUTBOUND) or stage not in STAGES:
            return []
        return [make_reply(direction, code, enhanced, stage, found.get("host", ""), line[m.start():])]


class ContainsAny:
    """present() of a custom format: does the block hold any of its triggers?"""

    def __init__(self, triggers: tuple[str, ...]) -> None:
        self.needles = tuple(t.encode() for t in triggers)

    def __call__(self, block: bytes) -> bool:
        return any(n in block for n in self.needles)

"""Which MTAs write a block of log lines, told by their syslog tags in one pass.

In `auto`, a block is searched for an MTA's triggers only when that MTA's
lines are in it. Looking for each MTA's tag ("exim4[1234]: ") with a pass of
its own would cost a pass per MTA over every block; one regex finds them all.
It starts at the tag's "[", a literal the regex engine searches for quickly,
and looks behind it for the names. Formats whose lines carry no tag (Exim's
own mainlog) are told by how their lines start (LineStart).
"""

from __future__ import annotations

import re
from collections.abc import Iterable


class TagFinder:
    """Finds which of several MTAs' syslog tags occur in a block.

    tags: MTA name -> its tag names. A tag counts where a line shows
    "NAME[PID]: " with a space or a "]" before NAME.
    """

    def __init__(self, tags: dict[str, Iterable[str]]) -> None:
        self._tags = {mta: tuple(names) for mta, names in tags.items() if names}
        self._regexes: dict[frozenset[str], tuple[re.Pattern[bytes], tuple[str, ...]]] = {}

    def _regex(self, mtas: frozenset[str]) -> tuple[re.Pattern[bytes], tuple[str, ...]]:
        """One regex for the tags of mtas, and the MTA of each of its groups."""
        found = self._regexes.get(mtas)
        if found is None:
            order = tuple(sorted(mtas))
            branches = b"|".join(
                b"(?:" + b"|".join(_behind(name) for name in self._tags[mta]) + b")()" for mta in order
            )
            regex = re.compile(rb"\[(?:" + branches + rb")[0-9]+\]: ")
            found = self._regexes[mtas] = (regex, order)
        return found

    def found(self, block: bytes) -> set[str]:
        """The MTAs whose tags the block holds."""
        wanted = frozenset(self._tags)
        found: set[str] = set()
        at = 0
        while wanted:
            regex, order = self._regex(wanted)
            m = regex.search(block, at)
            if m is None:
                break
            assert m.lastindex is not None  # every branch ends in a group
            mta = order[m.lastindex - 1]
            found.add(mta)
            wanted = wanted - {mta}
            at = m.end()
        return found


def _behind(name: str) -> bytes:
    """Is " name[" (or "]name[") right before this place?"""
    return b"(?<=[ \\]]" + re.escape(name.encode() + b"[") + b")"


class LineStart:
    """present_untagged() of a format whose lines carry no syslog tag: does a
    line near the block's start begin with pattern? Near the start only: a
    file may open with a note, and one regex search over a whole block costs
    more than its parsing. (A class, not a closure: --once hands formats to
    its worker processes.)"""

    def __init__(self, pattern: bytes, within: int = 65536) -> None:
        self._first = re.compile(pattern)
        # After a newline: the regex engine then tries line starts only.
        self._later = re.compile(b"\n" + pattern)
        self._within = within

    def __call__(self, block: bytes) -> bool:
        return self._first.match(block) is not None or self._later.search(block, 0, self._within) is not None

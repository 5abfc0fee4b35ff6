"""Which MTAs write a block of log lines, told by their syslog tags in one pass.

In `auto`, a block is searched for an MTA's triggers only when that MTA's
lines are in it. Looking for each MTA's tag ("exim4[1234]: ") with a pass of
its own would cost a pass per MTA over every block; one regex finds them all.
It starts at the tag's "[", a literal the regex engine searches for quickly,
and looks behind it for the names.
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
            mta = order[m.lastindex - 1]
            found.add(mta)
            wanted = wanted - {mta}
            at = m.end()
        return found


def _behind(name: str) -> bytes:
    """Is " name[" (or "]name[") right before this place?"""
    return b"(?<=[ \\]]" + re.escape(name.encode() + b"[") + b")"

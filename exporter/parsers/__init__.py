"""One pure line parser per MTA: a log line in, reply events out, no I/O.

Each parser module gives parse(line) (None: not my line), TRIGGERS (the
substrings every line it counts holds) and present(block) (does a block of
lines look like this MTA's at all). `auto` enables, block by block, the
parsers whose MTA is present, and lets each line go to the first that takes
it: mixed logs work, and a Postfix-only log pays for no other MTA's triggers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exporter.parsers import exim, postfix, sendmail
from exporter.replies import Delivery, Reply

ParseFn = Callable[[str], "list[Reply | Delivery] | None"]


@dataclass(frozen=True)
class Format:
    name: str
    parse: ParseFn
    triggers: tuple[str, ...]
    present: Callable[[bytes], bool]


FORMATS = {
    "postfix": Format("postfix", postfix.parse, postfix.TRIGGERS, postfix.present),
    "exim": Format("exim", exim.parse, exim.TRIGGERS, exim.present),
    "sendmail": Format("sendmail", sendmail.parse, sendmail.TRIGGERS, sendmail.present),
}
AUTO = "auto"
FORMAT_NAMES = (AUTO, *FORMATS)


def formats_for(name: str) -> tuple[Format, ...]:
    """The parsers a source's `format` setting enables."""
    return tuple(FORMATS.values()) if name == AUTO else (FORMATS[name],)

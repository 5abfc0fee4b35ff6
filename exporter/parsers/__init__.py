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

from exporter.parsers import custom, exim, opensmtpd, postfix, sendmail
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
    "opensmtpd": Format("opensmtpd", opensmtpd.parse, opensmtpd.TRIGGERS, opensmtpd.present),
}
AUTO = "auto"


def formats_for(name: str, formats: dict[str, Format] = FORMATS) -> tuple[Format, ...]:
    """The parsers a source's `format` setting enables. `formats` is the
    bundled ones plus any the config defines (after them, so that in `auto`
    a bundled parser takes its MTA's lines first)."""
    return tuple(formats.values()) if name == AUTO else (formats[name],)


def with_custom(items: list) -> dict[str, Format]:
    """FORMATS plus the config's `formats:` entries (see parsers/custom.py).
    Raises ValueError("[i].key: problem") naming the entry at fault."""
    formats = dict(FORMATS)
    for i, item in enumerate(items):
        try:
            name, parse, triggers = custom.compile_format(item, lambda n: n in formats or n == AUTO)
        except ValueError as err:
            raise ValueError(f"[{i}]{err}") from None
        formats[name] = Format(name, parse, triggers, custom.ContainsAny(triggers))
    return formats

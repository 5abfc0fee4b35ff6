"""One pure line parser per MTA: a log line in, reply events out, no I/O.

Each parser module gives parse(line) (None: not my line), TRIGGERS (the
substrings every line it counts holds), TAGS (its syslog tags) and
present_untagged(block) (other signs that a block holds its lines), and may
give count_block(block): the events of lines common and simple enough to be
counted over a whole block, without the cost of parse() on each, with the
service each counts under. take(line) is parse's events with the service
they count under (see parsers/service.py): a module's own, where it reads
the service as it parses, or parse with its service(line). `auto`
enables, block by block, the parsers whose MTA is present, and lets each line
go to the first that takes it: mixed logs work, and a Postfix-only log pays
for no other MTA's triggers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from exporter.configcheck import Checker
from exporter.parsers import custom, exim, opensmtpd, postfix, sendmail
from exporter.parsers.presence import TagFinder
from exporter.parsers.service import ServiceFn, constant
from exporter.replies import Event

# A parser: a line in; its events, [] for a line it knows but that counts nothing, or None: not its line.
ParseFn = Callable[[str], "Sequence[Event] | None"]
# A parser's events and the service they count under ("" when there are none).
TakeFn = Callable[[str], "tuple[Sequence[Event] | None, str]"]
# A block of lines in; the events of the lines it counts, each with the
# service it counts under, and how many lines those were.
BlockCountFn = Callable[[bytes], "tuple[dict[tuple[Event, str], int], int]"]


@dataclass(frozen=True)
class Format:
    name: str
    parse: ParseFn
    triggers: tuple[str, ...]
    tags: tuple[str, ...]  # syslog tag names: "sendmail", "sm-mta"
    present_untagged: Callable[[bytes], bool]
    take: TakeFn
    count_block: BlockCountFn | None = None

    def present(self, block: bytes) -> bool:
        """Could block hold this format's lines?"""
        return bool(Presence((self,)).formats_in(block))


class Presence:
    """Which of some formats a block may hold, with one pass for all their tags."""

    def __init__(self, formats: Sequence[Format]) -> None:
        self.formats = tuple(formats)
        self._tags = TagFinder({f.name: f.tags for f in self.formats})

    def formats_in(self, block: bytes) -> tuple[Format, ...]:
        tagged = self._tags.found(block)
        return tuple(f for f in self.formats if f.name in tagged or f.present_untagged(block))


def taking(parse: ParseFn, service: ServiceFn) -> TakeFn:
    """A take from a parse and a service, which only the lines that count something need."""
    # partial, not a closure: --once's workers get the formats pickled.
    return partial(_take, parse, service)


def _take(parse: ParseFn, service: ServiceFn, line: str) -> tuple[Sequence[Event] | None, str]:
    result = parse(line)
    return result, service(line) if result else ""


def _module_format(name: str, module) -> Format:  # noqa: ANN001 - a parser module
    take = getattr(module, "take", None) or taking(module.parse, module.service)
    return Format(name, module.parse, module.TRIGGERS, module.TAGS, module.present_untagged, take,
                  getattr(module, "count_block", None))


FORMATS = {name: _module_format(name, m) for name, m in
           (("postfix", postfix), ("exim", exim), ("sendmail", sendmail), ("opensmtpd", opensmtpd))}
AUTO = "auto"


def formats_for(name: str, formats: dict[str, Format] = FORMATS) -> tuple[Format, ...]:
    """The parsers a source's `format` setting enables. `formats` is the
    bundled ones plus any the config defines (after them, so that in `auto`
    a bundled parser takes its MTA's lines first)."""
    return tuple(formats.values()) if name == AUTO else (formats[name],)


def with_custom(items: list, checker: Checker | None = None, key: str = "formats") -> dict[str, Format]:
    """FORMATS plus the config's `formats:` entries under key (see
    parsers/custom.py). ConfigError names the entry at fault."""
    checker = checker or Checker()
    formats = dict(FORMATS)
    for i, item in enumerate(items):
        name, parse, triggers = custom.compile_format(checker, f"{key}[{i}]", item,
                                                      lambda n: n in formats or n == AUTO)
        formats[name] = Format(name, parse, triggers, (), custom.ContainsAny(triggers), taking(parse, constant(name)))
    return formats

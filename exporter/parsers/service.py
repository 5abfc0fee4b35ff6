"""The `service` a line counts under: which part of the mail system logged it.

It is the syslog tag without the process name: postfix/submission/smtpd ->
postfix/submission (a master.cf service with a syslog_name of its own, such
as submission), postfix-out/smtp -> postfix-out (a second Postfix instance),
postfix/smtpd -> postfix, exim4 -> exim4, sm-mta -> sm-mta. So inbound 5xx
on port 25 (spam refused) and on submission (your own users failing) are told
apart. A line without a tag counts under its format's name (Exim's mainlog:
exim), and a source's `service:` in the config overrides both.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

# A line a format took in, the service its events count under.
ServiceFn = Callable[[str], str]


def service_of_tag(tag: str) -> str:
    """A syslog tag (without [pid]) without its last, process-name part
    ("" when that is all of it: the caller names the service then)."""
    slash = tag.rfind("/")
    return tag[:slash] if slash >= 0 else tag


def tagged(untagged: str) -> ServiceFn:
    """The service of a line from the tag before its first "[pid]: ",
    `untagged` for a line without one."""
    # partial, not a closure: --once's workers get the formats pickled.
    return partial(_service_of_line, untagged)


def _service_of_line(untagged: str, line: str) -> str:
    end = line.find("]: ")
    bracket = line.rfind("[", 0, end) if end > 0 else -1
    if bracket <= 0:
        return untagged
    return service_of_tag(line[line.rfind(" ", 0, bracket) + 1 : bracket]) or untagged


def constant(name: str) -> ServiceFn:
    """Every line counts under name (a custom format's, or a source's configured one)."""
    return partial(_named, name)


def _named(name: str, line: str) -> str:
    return name

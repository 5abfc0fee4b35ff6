"""Shared test helpers: run the real CLI and read its exposition; the
pieces every parser's table test uses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.labels import Counts, Labeller
from exporter.parsers import postfix
from exporter.replies import Delivery, Reply

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

PROMTOOL = shutil.which("promtool")


def count_postfix_lines(lines: Iterable[str], counts: Counts | None = None) -> Counts:
    """What the exporter counts for Postfix lines, by the parser and labeller
    alone (each line's events under its service), added to counts."""
    labeller, counts = Labeller(), counts if counts is not None else Counts()
    for line in lines:
        events, service = postfix.take(line)
        labeller.count({service: Counter(events or [])}, counts)
    return counts


def needs_promtool(test):  # noqa: ANN001, ANN201 - a test function
    """Marks a test that runs promtool: e2e, and skipped where promtool is missing."""
    missing = pytest.mark.skipif(PROMTOOL is None, reason="promtool not found on PATH (Debian package `prometheus`)")
    return pytest.mark.e2e(missing(test))


def promtool(*args: str, cwd: Path | None = None) -> tuple[int, str]:
    p = subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    return p.returncode, f"$ promtool {' '.join(args)}\n{p.stdout}{p.stderr}"


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether condition() comes true within timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def run_once(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--once", *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        check=False,
    )


def samples(exposition: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted label items): value} of a text exposition."""
    out = {}
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric_by(exposition: str, name: str, *labels: str) -> Counter:
    """A metric's samples summed over every label but the ones named."""
    totals: Counter = Counter()
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if s.name == name:
                totals[tuple(s.labels[label] for label in labels)] += s.value
    return totals


def replies_by(exposition: str, *labels: str) -> Counter:
    """smtp_replies_total summed over every label but the ones named."""
    return Counter({key: int(n) for key, n in metric_by(exposition, "smtp_replies_total", *labels).items()})


def hosted(events):
    """The events of a parser that name a host: replies and deliveries."""
    return [e for e in events if isinstance(e, (Reply, Delivery))]


def labels_only(events):
    """A parser's replies and deliveries without the relay host and reply
    text, which parser tables test apart (as the delays are: see
    test_delays.py): what is left is what the labels are made of."""
    if events is None:
        return None
    return [e._replace(host="", text="") if isinstance(e, Reply) else e._replace(host="") for e in hosted(events)]


# -- parser tables ----------------------------------------------------------------
#
# Each parser's tests are a table CASES of (id, line, events): events is what
# parse(line) gives once relay host and reply text are set aside (labels_only),
# None for a line the parser must leave to another.


def out(code, enhanced, stage="unknown", reply_class=None):
    """An outbound reply as a table lists it: the class follows the code (or
    the enhanced code) unless given."""
    return Reply("outbound", code, reply_class or (code or enhanced)[0] + "xx", enhanced, stage)


def inb(code, enhanced, stage, reply_class=None):
    """An inbound reply as a table lists it."""
    return Reply("inbound", code, reply_class or (code or enhanced)[0] + "xx", enhanced, stage)


def table_tests(cases, parse, triggers):
    """The two tests every parser table gets, for a module to bind as
    test_line_gives_events and test_every_counting_line_holds_a_trigger."""

    @pytest.mark.parametrize("line,expected", [c[1:] for c in cases], ids=[c[0] for c in cases])
    def test_line_gives_events(line, expected):
        assert labels_only(parse(line)) == expected

    counting = [c for c in cases if c[2]]

    @pytest.mark.parametrize("line,expected", [c[1:] for c in counting], ids=[c[0] for c in counting])
    def test_every_counting_line_holds_a_trigger(line, expected):
        # The scanner hands parse() only lines holding a trigger: a counting line
        # without one would be lost.
        assert any(t in line for t in triggers)

    return test_line_gives_events, test_every_counting_line_holds_a_trigger


def assert_left_alone(cases, *parsers) -> None:
    """The lines a table says are its parser's are None to every other parser."""
    for _, line, expected in cases:
        if expected is not None:
            for other in parsers:
                assert other.parse(line) is None, (other.__name__, line)


# -- mixed logs in auto mode ---------------------------------------------------------

# A Postfix reject numbered n: its own second, pid, client and recipient, so
# that no two lines (and no two files starting with one) are alike.
NUMBERED_REJECT = (
    "Nov  3 17:44:{s:02d} mx postfix/smtpd[{n}]: NOQUEUE: reject: RCPT from c.example[192.0.2.{o}]: "
    "550 5.1.1 <u{n}@example.net>: Recipient address rejected: User unknown; from=<a@example.org> "
    "to=<u{n}@example.net> proto=ESMTP helo=<c.example>\n"
)


def numbered_rejects(first: int, count: int) -> str:
    """Rejects numbered first to first + count - 1 (see NUMBERED_REJECT)."""
    return "".join(NUMBERED_REJECT.format(s=n % 60, n=n, o=n % 250) for n in range(first, first + count))


def append_rejects(path: Path, first: int, count: int) -> int:
    """Append numbered rejects to path; the number of the next one."""
    with open(path, "a") as f:
        f.write(numbered_rejects(first, count))
    return first + count


def copytruncate(log: Path, copy: Path) -> None:
    """What logrotate's copytruncate does: copy the log, then empty it."""
    shutil.copyfile(log, copy)
    os.truncate(log, 0)


POSTFIX_REJECT = ("Nov 29 04:12:51 mx1 postfix/smtpd[9]: NOQUEUE: reject: RCPT from a.example[192.0.2.1]: "
                  "550 5.1.1 <x@lab.test>: Recipient address rejected: User unknown; from=<> to=<x@lab.test> "
                  "proto=ESMTP helo=<a>")
POSTFIX_SENT = ("Nov 29 04:12:52 mx1 postfix/smtp[10]: 4F2A9C1E07: to=<a@b.example>, "
                "relay=mx.b.example[192.0.2.2]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, "
                "status=sent (250 2.0.0 Ok: queued as 4BC1)")
EXIM_DEFER = ("Nov 29 04:12:52 mx1 exim[77]: 2026-11-29 04:12:52 1xXMrL-0008Bq-2c == cy@example.com R=dnslookup "
              "T=remote_smtp defer (-44) H=mx.example.com [192.0.2.7]:25: SMTP error from remote mail server "
              "after RCPT TO:<cy@example.com>: 451 4.7.1 Greylisted")


def interleave(lines: list[str], *others: list[str]) -> list[str]:
    """Each of `lines` followed by the next line of each of `others` in turn."""
    return [mixed for i, line in enumerate(lines) for mixed in (line, *(o[i % len(o)] for o in others))]


def counts(path: Path, *options: str) -> dict:
    """The non-zero smtp_replies_total and smtp_deliveries_total samples of
    `--once [options] path`."""
    result = run_once(*options, str(path))
    assert result.returncode == 0, result.stderr
    return {k: v for k, v in samples(result.stdout.decode()).items()
            if k[0] in ("smtp_replies_total", "smtp_deliveries_total") and v}


def counted_apart(directory: Path, mixed: list[str], parts: dict[str, list[str]],
                  own_format: bool = False) -> dict[str, dict]:
    """name -> counts of the lines of `mixed` that are that part's, in a file
    of their own (read with --format NAME when own_format)."""
    apart = {}
    for name, lines in parts.items():
        path = directory / f"{name}.log"
        path.write_text("\n".join(line for line in mixed if line in lines) + "\n")
        apart[name] = counts(path, *(("--format", name) if own_format else ()))
    return apart


def summed(*parts: dict) -> dict:
    total: dict = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
    return total


def replies_in(counted: dict, direction: str) -> float:
    """The smtp_replies_total of one direction among counts()."""
    return sum(v for k, v in counted.items() if k[0] == "smtp_replies_total" and ("direction", direction) in k[1])


def table_replies(cases, direction: str) -> int:
    """How many replies of one direction a parser table's events hold."""
    return sum(1 for c in cases if c[2] for e in c[2] if isinstance(e, Reply) and e.direction == direction)

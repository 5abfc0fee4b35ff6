"""End to end with a real Postfix: scripted peers answer its deliveries, scripted
clients provoke its rejections, and `python3 -m exporter --once` must count, key by
key, exactly the replies that crossed the wire and show in the log.

The lab (tests/mta/) runs once per module, in a few seconds. It needs root and
the postfix package; without them the module skips.
"""

from __future__ import annotations

import re
import time

import pytest
from mta import postfix_lab, scenario
from mta.checks import AgainstTheWire, Wire, skip_if
from mta.namespace import CLASSIC_STAMP

pytestmark = [pytest.mark.e2e, *skip_if(postfix_lab.unavailable())]


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> scenario.Result:
    result = scenario.run(tmp_path_factory.mktemp("postfix-e2e") / "postfix.log")
    print(f"\nPostfix lab: {result.seconds:.1f}s, log {result.log}")
    return result


exported = scenario.exported


@pytest.fixture(scope="module")
def wire(lab) -> Wire:
    return Wire((lab.log,), lab.expected.replies, lab.expected.deliveries, tls=lab.expected.tls)


class TestAgainstTheWire(AgainstTheWire):
    pass


def test_lab_covers_every_stage_and_class(lab):
    """Guards the lab itself: a restriction or peer script that stops working
    must not quietly shrink what the comparison covers."""
    keys = lab.expected.replies
    outbound = {k[4] for k in keys if k[0] == "outbound"}
    inbound = {k[4] for k in keys if k[0] == "inbound"}
    assert outbound >= {"connect", "starttls", "mail", "rcpt", "data", "end_of_data"}
    assert inbound >= {"connect", "helo", "auth", "mail", "rcpt", "data", "end_of_data", "other"}
    assert {k[2] for k in keys} == {"2xx", "4xx", "5xx"}
    assert any(k[1] == "" for k in keys if k[0] == "inbound")  # cleanup: enhanced code only
    assert any(k[3] == "" and k[1] for k in keys if k[0] == "outbound")  # reply without enhanced
    assert lab.expected.unlogged  # rejections Postfix logs without a code were sent too
    assert {status for status, _ in lab.expected.deliveries} == {"sent", "deferred", "bounced"}
    assert {k[0] for k in lab.expected.tls} == {"inbound", "outbound"}
    # Every smtpd service refused something, and postscreen and cleanup
    # (under the instance's name) did too.
    assert {k[5] for k in keys if k[0] == "inbound"} == {
        postfix_lab.SYSLOG_NAME, postfix_lab.STRICT_NAME, postfix_lab.SCREENED_NAME, postfix_lab.SUBMISSION_NAME}
    assert {k[5] for k in keys if k[0] == "outbound"} == {postfix_lab.SYSLOG_NAME}


_CLASSIC = re.compile(CLASSIC_STAMP + " ")
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def rfc3339(text: str, year: int) -> str:
    """Postfix's own "Mmm dd HH:MM:SS host ..." prefix as Debian 12's rsyslog
    writes it: "2026-11-28T17:49:49.123456+01:00 host ..."."""
    out = []
    for n, line in enumerate(text.splitlines(keepends=True)):
        m = _CLASSIC.match(line)
        assert m, f"not a Postfix maillog_file line: {line!r}"
        month = _MONTHS.index(m["month"]) + 1
        stamp = f"{year:04d}-{month:02d}-{int(m['day']):02d}T{m['time']}.{(n * 7919) % 10**6:06d}+01:00 "
        out.append(stamp + line[m.end():])
    return "".join(out)


def test_rfc3339_prefix_counts_the_same(lab, tmp_path):
    year = time.localtime(lab.log.stat().st_mtime).tm_year
    rewritten = tmp_path / "postfix-rfc3339.log"
    rewritten.write_text(rfc3339(lab.log.read_text(), year))
    assert rewritten.read_text().splitlines()[0][:4] == str(year)
    assert exported(rewritten) == exported(lab.log)


def test_reject_warning_is_not_a_reply(lab, tmp_path):
    warnings = [line for line in lab.log.read_text().splitlines(keepends=True)
                if "reject_warning: " in line]
    # The lab sent what it meant to: every warned RCPT shows as reject_warning.
    assert len(warnings) == lab.expected.warned > 0
    only_warnings = tmp_path / "warnings.log"
    only_warnings.write_text("".join(warnings))
    replies, deliveries = exported(only_warnings)
    assert not replies and not deliveries


def test_refused_auth_counts_once(lab):
    """Each refused AUTH is logged by smtpd and, about the same attempt, by the
    SASL library; only smtpd's line is the reply, counted code-less at auth."""
    text = lab.log.read_text()
    failed = text.count(": SASL PLAIN authentication failed: ")
    assert failed == 4
    assert "warning: SASL authentication " in text  # the library's own lines are there too
    replies, _ = exported(lab.log)
    assert {k: n for k, n in replies.items() if k[4] == "auth"} == {
        ("inbound", "", "5xx", "", "auth", postfix_lab.SUBMISSION_NAME): failed}


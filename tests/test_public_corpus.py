"""Every public sample log in ../shared/corpus/public through the real CLI.

The question each file answers: does a line that carries a reply code go
uncounted? A line "carries a code" when `looks_like_reply` says so (a code
followed by an enhanced code or reply text). Such a line is a gap when no
parser took it: either the CLI counts it as `unrecognized` (a parser's
trigger was there, but no parser took the line), or no parser even looked
at it (its MTA was not detected, or no trigger matched) and it hides among
the `ignored` lines. A parser answering [] ("my line, nothing to count",
e.g. Exim's per-host repeat of a per-recipient reply) is a decision, not
a gap.

Every gap must match a row of EXCUSES, which says why it is acceptable;
every row must still match a line, so a row goes stale (and the test says
so) when a parser learns the shape. Then a few files read by hand are
checked for their exact counts.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import SHARED, counts, run_once, samples

from exporter.once import BLOCK_SIZE
from exporter.parsers import formats_for
from exporter.replies import looks_like_reply
from exporter.scanner import LineScanner, Tally

PUBLIC = SHARED / "corpus" / "public"

pytestmark = pytest.mark.skipif(not PUBLIC.is_dir(), reason="../shared/corpus is not present")


@dataclass(frozen=True)
class Excuse:
    files: str  # fnmatch pattern over the path below public/
    shape: str  # regex searched in the line
    why: str


EXIM_TESTS = "Exim test suite"
EXCUSES = (
    # Not MTA logs, or MTAs without a parser.
    Excuse("fail2ban/*/logs/assp", r"\b535 5\.7\.8 ", "MTA not supported: ASSP (anti-spam SMTP proxy)"),
    Excuse("fail2ban/*/logs/courier-smtp", r"courieresmtpd(\[\d+\])?: error,", "MTA not supported: Courier"),
    Excuse("fail2ban/*/logs/oracleims", r'^<co ts="', "MTA not supported: Oracle Messaging Server XML log"),
    Excuse("fail2ban/*/logs/qmail", r" qmail: \d+\.\d+ (rblsmtpd|qmail-smtpd): ", "MTA not supported: qmail"),
    Excuse("fail2ban/*/logs/postfix", r"^# failJSON: ", "fail2ban test annotation, not a log line"),
    Excuse("wazuh/wazuh/ruleset/testing/tests/exim.ini", r"^log \d+ pass = ",
               "rule test input: Exim mainlog lines behind an .ini key, so no line starts with Exim's "
               "time stamp and no syslog tag names Exim"),
    Excuse("whyscream/postfix-grok-patterns/test/*.yaml", r'^data: "',
               "grok test input: a Postfix message without its syslog prefix, so the daemon "
               "(smtp or smtpd) that decides the direction is unknown"),
    Excuse("whyscream/postfix-grok-patterns/DERIVED_test_yaml_data.tsv", r"^test/\S+\.yaml\t",
               "grok test input: a Postfix message without its syslog prefix (as above)"),
    Excuse("whyscream/postfix-grok-patterns/test/*.yaml", r"^    postfix_(smtp_response|proxy_message): ",
               "grok test expectation: a reply cut out of a line, not a log line"),
    # Exim's test suite: logs of scripted runs, with more than Exim writes.
    Excuse("Exim/exim/test/log/*", r"^\d{3}[ -]", f"{EXIM_TESTS}: the scripted server's transcript"),
    Excuse("Exim/exim/test/log/*",
               r"-0000 (event \S+ data |\. |smtp:ehlo |TLS1\.x:\S+ smtp:ehlo |Authentication-Results: )"
               r"|^[\d: -]+\. \"auth fail\" event_data ",
               f"{EXIM_TESTS}: output of the test config's event actions and logwrite"),
    Excuse("Exim/exim/test/*", r"sender verify (fail|defer) for <|Warning: Sender verify failed: ",
               "callout: a remote server's reply to an address-verification probe, not a delivery; "
               "the reply to our client is logged on its own `rejected` line"),
    Excuse("Exim/exim/test/log/*", r"\]:? (Malformed SMTP reply|Remote host closed connection) in response to ",
               "Exim per-host detail; the delivery line (==, **) carries the outcome"),
    Excuse("Exim/exim/test/log/*", r"configured error code starts with incorrect digit"
               r"|EHLO/HELO response must not contain newlines|Warning: ACL 'warn' statement skipped",
               "configuration error message quoting a configured reply, not a reply sent"),
    Excuse("Exim/exim/test/log/*", r"malware acl condition: .* : \d{3} ", "not a reply: a virus scanner's status"),
    Excuse("Exim/exim/test/log/*", r"dkim_acl: signer: .* bits: \d+ ", "not a reply: a DKIM key size"),
    Excuse("Exim/exim/test/log/*", r"authenticator cancelled authentication .* server response \"334 ",
               "not a final reply: an AUTH challenge quoted in an error"),
    Excuse("Exim/exim/test/*", r"custom-message: \S+ authenticator failed ",
               f"{EXIM_TESTS}: authenticator failure under a test-configured log prefix"),
    # Parser gaps, reported: each row goes when the Exim parser learns the shape.
)


def corpus_files() -> list[Path]:
    return sorted(p for p in PUBLIC.rglob("*") if p.is_file() and p.name != "MANIFEST.tsv")


def relative(path: Path) -> str:
    return path.relative_to(PUBLIC).as_posix()


@dataclass
class FileReport:
    matched: int  # lines a parser counted something from
    unrecognized: int  # gaps the CLI reports as such
    gaps: list[str]  # every line that carries a code and that no parser took


def classify(path: Path) -> FileReport:
    """Sort a file's lines the way the scanner does, one line at a time, so
    that the lines behind each count can be named."""
    data = path.read_bytes()
    # The CLI decides which MTAs a block holds per block of BLOCK_SIZE
    # bytes; a smaller file is one block, so one decision per file here.
    assert len(data) < BLOCK_SIZE, path
    active = [f for f in formats_for("auto") if f.present(data)]
    report = FileReport(0, 0, [])
    for line in data.decode("utf-8", "replace").splitlines():
        handed = any(t in line for f in active for t in f.triggers)
        # What the parsers make of the line, whether or not the scanner
        # hands it to them: a line they would count but never see is a gap
        # in their triggers.
        verdict = next((r for f in active if (r := f.parse(line)) is not None), None)
        # Lines a format counts over whole blocks (Postfix's TLS sessions) never reach parse.
        block_counted = any(f.count_block((line + "\n").encode())[1] for f in active if f.count_block)
        if handed and verdict or block_counted:
            report.matched += 1
        elif verdict is None and looks_like_reply(line) or verdict and not handed:
            report.gaps.append(line)
            report.unrecognized += handed
    return report


def scanner_tally(path: Path) -> Counter:
    """The real scanner's line counts for a whole file, in process."""
    tally = Tally()
    LineScanner(formats_for("auto"), tally).feed(path.read_bytes().rstrip(b"\n") + b"\n")
    return tally.lines


@pytest.fixture(scope="module")
def reports() -> dict[str, FileReport]:
    return {relative(p): classify(p) for p in corpus_files()}


@pytest.fixture(scope="module")
def cli_lines() -> dict[tuple[str, str], float]:
    """smtp_exporter_lines_total by (file below public/, result), from one
    CLI run over every file (each file is its own source)."""
    files = corpus_files()
    result = run_once("--workers", "1", *map(str, files))
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    out = {}
    for (name, labels), value in samples(result.stdout.decode()).items():
        if name == "smtp_exporter_lines_total":
            labels = dict(labels)
            out[relative(Path(labels["source"])), labels["result"]] = value
    assert {f for f, _ in out} == {relative(p) for p in files}
    return out


def excuses_for(file: str, line: str) -> list[Excuse]:
    return [e for e in EXCUSES if fnmatch.fnmatch(file, e.files) and re.search(e.shape, line)]


def test_manifest_lists_every_file():
    rows = [line.split("\t") for line in (PUBLIC / "MANIFEST.tsv").read_text().splitlines()[1:]]
    # A derived file's path column goes on with a note on where its lines came from.
    listed = {f"{repo}/{path.split(' ')[0]}" for repo, _commit, path, *_ in rows}
    assert {relative(p) for p in corpus_files()} == listed


@pytest.mark.slow
def test_line_by_line_sorting_agrees_with_the_scanner_and_the_cli(reports, cli_lines):
    """The per-line view the gap check relies on counts what the real
    scanner and the CLI count, file by file."""
    for file, report in reports.items():
        tally = scanner_tally(PUBLIC / file)
        assert (report.matched, report.unrecognized) == (tally["matched"], tally["unrecognized"]), file
        assert cli_lines[file, "matched"] == report.matched, file
        assert cli_lines[file, "unrecognized"] == report.unrecognized, file


def test_every_line_with_a_code_is_counted_or_excepted(reports):
    unexplained = [
        f"{file}: {line[:200]}"
        for file, report in reports.items()
        for line in report.gaps
        if not excuses_for(file, line)
    ]
    assert not unexplained, "lines with a reply code that no parser took:\n" + "\n".join(unexplained)


def test_every_exception_still_matches_a_gap(reports):
    used = {
        id(e)
        for file, report in reports.items()
        for line in report.gaps
        for e in excuses_for(file, line)
    }
    stale = [f"{e.files} {e.shape!r}: {e.why}" for e in EXCUSES if id(e) not in used]
    assert not stale, "exceptions no gap needs any more (remove them):\n" + "\n".join(stale)


# --- files read by hand ------------------------------------------------------

def replies_and_deliveries(file: str) -> tuple[list, list]:
    """(smtp_replies_total, smtp_deliveries_total) rows of one --once run: (labels, value)."""
    rows: dict[str, list] = {"smtp_replies_total": [], "smtp_deliveries_total": []}
    for (name, labels), value in counts(PUBLIC / file).items():
        rows[name].append((dict(labels), value))
    return rows["smtp_replies_total"], rows["smtp_deliveries_total"]


def total(rows: list, **want: str) -> float:
    return sum(v for labels, v in rows if all(labels[k] == w for k, w in want.items()))


def test_msimerson_one_sent_message():
    # One postfix/smtp line: status=sent (250 2.0.0 Ok: queued as ...).
    rows, deliveries = replies_and_deliveries("msimerson/log-ship-elastic-postfix/test/mail.log")
    assert total(rows, direction="outbound", code="250", enhanced="2.0.0", stage="end_of_data") == 1
    assert total(rows) == 1
    assert total(deliveries, status="sent") == 1


def test_kumina_outbound_replies_and_deliveries():
    # By hand: status=sent (250 2.0.0 ...) from smtp; "said: 451 DT:SPM ..."
    # as an MX reply and again in status=deferred; status=bounced (... said:
    # 554 DT:SPM ...); qmgr status=expired. No smtpd reject lines, but one
    # refused AUTH ("SASL PLAIN authentication failed"), after two lines of
    # the SASL library about the same attempt, which count nothing. The
    # virtual delivery (status=sent (delivered to maildir)) is no SMTP reply.
    rows, deliveries = replies_and_deliveries("kumina/postfix_exporter/DERIVED_postfix_exporter_test_lines.log")
    assert total(rows, direction="outbound", code="250", enhanced="2.0.0") == 1
    assert total(rows, direction="outbound", code="451", enhanced="", stage="end_of_data") == 2
    assert total(rows, direction="outbound", code="554", enhanced="") == 1
    assert total(rows, direction="outbound") == 4
    assert total(rows, direction="inbound") == 1
    assert total(rows, direction="inbound", code="", enhanced="", stage="auth", **{"class": "5xx"}) == 1
    assert [total(deliveries, status=s) for s in ("sent", "deferred", "bounced")] == [1, 1, 1]
    assert total(deliveries, status="expired") >= 1


def test_fail2ban_postfix_rejects():
    # 26 reject lines (smtpd, postscreen, milter-reject, reject with a queue
    # id, postfix-*/smtpd multi-instance names): 10 answer 4xx, 16 answer 5xx.
    # EHLO rejects: 3; CONNECT: 1; VRFY: 1; DATA and BDAT: 2. And 12 refused
    # AUTHs ("SASL ... authentication failed"), one with the client's port,
    # one a 454 (Dovecot's SASL server lost), all code-less. The failJSON
    # comments quote codes but are no log lines.
    rows, _ = replies_and_deliveries("fail2ban/fail2ban/fail2ban/tests/files/logs/postfix")
    assert total(rows, direction="inbound", **{"class": "4xx"}) == 10 + 1
    assert total(rows, direction="inbound", **{"class": "5xx"}) == 16 + 11
    assert total(rows, direction="outbound") == 0
    stages = {s: total(rows, direction="inbound", stage=s) for s in ("helo", "connect", "other", "data", "auth")}
    assert stages == {"helo": 3, "connect": 1, "other": 1, "data": 2, "auth": 12}
    assert total(rows, direction="inbound", stage="auth", code="", enhanced="") == 12


def test_fail2ban_exim_authentication_failures():
    # 12 "authenticator failed for ...: 535 Incorrect authentication data"
    # lines, in mainlog and syslog form.
    rows, _ = replies_and_deliveries("fail2ban/fail2ban/fail2ban/tests/files/logs/exim")
    assert total(rows, direction="inbound", code="535", stage="auth") == 12


def test_wazuh_postfix_reject_and_a_non_code():
    # "...: 9999 text ..." is not a reply; "...: 550 5.7.1 Service unavailable" is.
    rows, _ = replies_and_deliveries("wazuh/wazuh/ruleset/testing/tests/postfix.ini")
    assert total(rows, direction="inbound", code="550", enhanced="5.7.1", stage="rcpt") == 1
    assert total(rows) == 1


def test_sendmail_deferrals():
    # Two "stat=Deferred: 451 4.3.5 Server configuration problem" lines, one
    # recipient each.
    rows, deliveries = replies_and_deliveries("yudai09/fluent-plugin-sendmail/test/data/data")
    assert total(rows, direction="outbound", code="451", enhanced="4.3.5") == 2
    assert total(deliveries, status="deferred") == 2


def test_opensmtpd_failed_command():
    # One `smtp-in: Failed command ... "MAIL FROM:<...>" => 421 4.3.0: Temporary Error`.
    rows, _ = replies_and_deliveries("wazuh/wazuh/ruleset/testing/tests/opensmtpd.ini")
    assert total(rows, direction="inbound", code="421", enhanced="4.3.0", stage="mail") == 1
    assert total(rows) == 1

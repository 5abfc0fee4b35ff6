"""`--once` end to end: the real CLI on real files, its exposition and its table."""

import gzip
import os
from pathlib import Path

import pytest
from helpers import REPO, replies_by, run_once, samples

from exporter.labels import MAX_SERVICES

DATA = Path(__file__).parent / "data"
LOG = DATA / "once.log"
LOG_ARG = str(LOG.relative_to(REPO))  # the source label in the golden file is this path
# Shapes counted since state-v1.json was written from once.log (which must
# keep matching it): read beside it for the golden file.
ADDED_ARG = str((DATA / "once-added.log").relative_to(REPO))
GOLDEN = DATA / "once.golden"
CONTRACT = ("smtp_replies_total", "smtp_reply_reasons_total", "smtp_deliveries_total", "smtp_exporter_lines_total",
            "smtp_delivery_delay_seconds", "smtp_tls_connections_total")


def contract_lines(exposition: str) -> str:
    return "".join(
        line + "\n" for line in sorted(exposition.splitlines()) if line.startswith(CONTRACT)
    )


def test_exposition_matches_golden():
    result = run_once(LOG_ARG, ADDED_ARG)
    assert result.returncode == 0, result.stderr.decode()
    got = contract_lines(result.stdout.decode())
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(got)
    assert got == GOLDEN.read_text()


def counted(exposition: bytes) -> dict:
    """Replies and deliveries: what must not depend on how the log was read."""
    return {k: v for k, v in samples(exposition.decode()).items()
            if k[0] in ("smtp_replies_total", "smtp_deliveries_total")}


def test_gzip_and_stdin_read_the_same(tmp_path):
    plain = counted(run_once(str(LOG)).stdout)
    gz = tmp_path / "once.log.gz"
    gz.write_bytes(gzip.compress(LOG.read_bytes()))
    assert counted(run_once(str(gz)).stdout) == plain
    assert counted(run_once("-", stdin=LOG.read_bytes()).stdout) == plain
    # gzip on stdin is told by its first bytes, as in a file.
    piped = run_once("-", stdin=gz.read_bytes())
    assert piped.returncode == 0 and counted(piped.stdout) == plain
    assert b'smtp_exporter_invalid_utf8_lines_total{source="-"} 0.0' in piped.stdout


@pytest.mark.slow
def test_parallel_workers_count_the_same_as_one(tmp_path):
    big = tmp_path / "big.log"
    with open(big, "wb") as f:
        for _ in range(40_000):  # past the size where --once splits the file
            f.write(LOG.read_bytes())
    one, two = run_once("--workers", "1", str(big)), run_once("--workers", "2", str(big))
    assert one.returncode == two.returncode == 0, two.stderr.decode()[-2000:]
    one, two = counted(one.stdout), counted(two.stdout)
    assert one == two
    key = ("smtp_replies_total", tuple(sorted({
        "direction": "inbound", "code": "550", "class": "5xx", "enhanced": "5.1.1", "stage": "rcpt",
        "remote": "", "service": "postfix",
    }.items())))
    assert two[key] == 40_000


@pytest.mark.slow
def test_past_the_service_cap_workers_keep_each_named_service_whole(tmp_path):
    # Which services keep a name past the cap depends on the order they are
    # read in; what one is counted under its name must be all of it.
    big = tmp_path / "instances.log"
    text = LOG.read_text()
    with open(big, "w") as f:
        for i in range(12_000):  # past the size where --once splits the file
            f.write(text.replace("postfix/", f"postfix-{i % 30}/"))
    one, two = run_once("--workers", "1", str(big)), run_once("--workers", "2", str(big))
    assert one.returncode == two.returncode == 0, two.stderr.decode()[-2000:]
    by_one, by_two = (replies_by(r.stdout.decode(), "service", "direction", "class") for r in (one, two))
    named = {key for key in by_one.keys() & by_two.keys() if key[0] != "other"}
    assert len({service for service, *_ in named}) >= 10
    assert all(by_one[key] == by_two[key] for key in named)
    for counted in (by_one, by_two):
        assert len({service for service, *_ in counted} - {"other"}) == MAX_SERVICES
    total = lambda counted: sum(counted.values())  # noqa: E731
    assert total(by_one) == total(by_two) > 0


def test_two_files_add_up():
    one = samples(run_once(str(LOG)).stdout.decode())
    two = samples(run_once(str(LOG), str(LOG)).stdout.decode())
    key = ("smtp_replies_total", tuple(sorted({
        "direction": "inbound", "code": "550", "class": "5xx", "enhanced": "5.1.1", "stage": "rcpt",
        "remote": "", "service": "postfix",
    }.items())))
    assert two[key] == 2 * one[key] == 2


def test_metric_conventions():
    text = run_once(str(LOG)).stdout.decode()
    s = samples(text)
    names = {name for name, _ in s}
    assert "smtp_exporter_build_info" in names
    assert not any(name.endswith("_created") for name in names)
    # Zero series exist from a service's first event, so its rates and ratios never vanish.
    assert s[("smtp_deliveries_total", (("remote", "other"), ("service", "postfix"), ("status", "expired")))] == 0
    # Meanings for dashboards, joined on the code labels.
    info = [dict(labels) for name, labels in s if name == "smtp_reply_code_info"]
    assert any(i["code"] == "550" and i["class"] == "5xx" and i["meaning"] for i in info)
    enhanced = [dict(labels) for name, labels in s if name == "smtp_enhanced_status_info"]
    assert any(i["enhanced"] == "5.7.26" and i["meaning"] for i in enhanced)
    assert s[("smtp_exporter_read_bytes_total", (("source", str(LOG)),))] == LOG.stat().st_size


def test_table_output_names_codes_and_meanings():
    result = run_once("--output", "table", str(LOG))
    assert result.returncode == 0
    table = result.stdout.decode()
    assert "Outbound" in table and "Inbound" in table
    row = next(line for line in table.splitlines() if " 550 " in line and "5.1.1" in line)
    assert "mailbox" in row.lower()


def test_table_output_splits_inbound_replies_by_service():
    result = run_once("--output", "table", LOG_ARG, ADDED_ARG)
    assert result.returncode == 0
    table = result.stdout.decode()
    section = table[table.index("Inbound by service:"):].split("\n\n")[0].splitlines()
    assert [row.split() for row in section[2:]] == [["3", "postfix", "5xx"], ["1", "postfix/submission", "5xx"]]


def test_missing_file_is_a_clear_error():
    result = run_once(str(REPO / "no-such.log"))
    assert result.returncode == 1
    assert b"no-such.log" in result.stderr


def test_incomplete_gzip_is_a_clear_error(tmp_path):
    partial = tmp_path / "mail.log.2.gz"
    whole = gzip.compress((REPO / "exporter" / "demo" / "postfix.log").read_bytes())
    partial.write_bytes(whole[: len(whole) // 2])  # as logrotate leaves it while compressing
    result = run_once(str(partial))
    assert result.returncode == 1
    assert result.stderr.decode().startswith(f"smtp-reply-exporter: {partial}: damaged or incomplete gzip")
    assert b"Traceback" not in result.stderr

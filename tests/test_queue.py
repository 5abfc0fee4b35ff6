"""The queue listings' readers, and the probe running real commands: shell
scripts that print a listing, fail, or hang past their timeout."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import wait_for
from prometheus_client import CollectorRegistry
from queuedata import POSTQUEUE_J

from exporter.config import load_config
from exporter.configcheck import ConfigError
from exporter.metrics import ExporterMetrics
from exporter.queue import FORMATS, QueueListingError, QueueTotals, exim_size, sendmail_qtime
from exporter.queue_probe import ProbeFailed, QueueConfig, QueueProbe, list_queue

NOW = time.mktime((2026, 3, 10, 12, 0, 0, 0, 0, -1))


def listing(mta: str, text: str, now: float = NOW) -> dict[str, QueueTotals]:
    return FORMATS[mta].listing(text.splitlines(keepends=True), now)


def totals(found: dict[str, QueueTotals]) -> dict[str, tuple[int, int, float | None]]:
    return {q: (t.messages, t.size_bytes, t.oldest_arrival) for q, t in found.items()}


# -- readers --------------------------------------------------------------------


def test_postfix_listing_by_queue():
    got = totals(listing("postfix", POSTQUEUE_J))
    assert got == {"incoming": (0, 0, None), "active": (0, 0, None), "deferred": (2, 1250, 1773139000.0),
                   "hold": (1, 7, 1773141000.0), "maildrop": (0, 0, None)}


def test_postfix_listing_that_is_not_json_is_an_error():
    with pytest.raises(QueueListingError, match="line 1"):
        listing("postfix", "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n")
    with pytest.raises(QueueListingError, match="line 2"):
        listing("postfix", '{"queue_name": "hold", "arrival_time": 1, "message_size": 1}\n{"queue_id": "X"}\n')


@pytest.mark.parametrize("line", [
    '{"queue_name": "hold", "arrival_time": 1, "message_size": 1e999}',  # int() of infinity
    '{"queue_name": "hold", "arrival_time": Infinity, "message_size": 1}',
    '{"queue_name": "hold", "arrival_time": NaN, "message_size": 1}',
])
def test_postfix_listing_with_numbers_out_of_range_is_an_error(line):
    with pytest.raises(QueueListingError, match="line 1"):
        listing("postfix", line + "\n")


EXIM_BP = """\
25m  2.9K 1wJx7Y-000123-AB <alice@lab.test>
          bob@ok.test

 2h   812 1wJx7Z-000124-CD <> *** frozen ***
          carol@dead.test

 0m       1wJx80-000125-EF <dan@lab.test>
        D erin@ok.test
          frank@ok.test

 3d   14K 1wJx81-0000000012A-ABCD <gina@lab.test>
          hal@ok.test

"""


def test_exim_listing_frozen_apart_with_exims_rounding():
    got = totals(listing("exim", EXIM_BP))
    assert got == {
        "queue": (3, round(2.9 * 1024) + 0 + 14 * 1024, NOW - 3 * 86400),
        "frozen": (1, 812, NOW - 2 * 3600),
    }


@pytest.mark.parametrize("text,size", [("812", 812), ("2.9K", 2970), ("14K", 14336), ("1.2M", 1258291),
                                       ("37M", 38797312), (None, 0)])
def test_exim_sizes(text, size):
    assert exim_size(text) == size


def test_exim_listing_of_something_else_is_an_error():
    with pytest.raises(QueueListingError, match="line 1"):
        listing("exim", "exim: permission denied\n")


MAILQ = """\
\t\t/var/spool/mqueue (3 requests)
-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------
62AB3Cx1012345*     512 Tue Mar 10 11:58 <a@lab.test>
                 (Deferred: Connection refused by [127.0.0.1])
\t\t\t\t\t <b@dead.test>
62AB3Cx2012346     1024 Mon Mar  9 08:00 <>
\t\t\t\t\t <c@dead.test>
62AB3Cx3012347-    2048 Wed Dec 31 23:59 <d@lab.test>
\t\t\t\t\t <e@ok.test>
\t\tTotal requests: 3
\t\t/var/spool/mqueue (1 request)
-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------
62AB3Cx4012348      100 Tue Mar 10 10:00 <f@lab.test>
     QUARANTINE: Suspicious attachment
\t\t\t\t\t <g@ok.test>
\t\tTotal requests: 1
/var/spool/mqueue-client/clientmqueue is empty
\t\tTotal requests: 0
"""


def test_sendmail_listing_by_queue():
    got = totals(listing("sendmail", MAILQ))
    assert got == {
        "mqueue": (3, 512 + 1024 + 2048, time.mktime((2025, 12, 31, 23, 59, 0, 0, 0, -1))),
        "quarantine": (1, 100, NOW - 2 * 3600),
        "clientmqueue": (0, 0, None),
    }


def test_sendmail_clientmqueue_is_told_by_its_directory():
    text = "\t\t/var/spool/clientmqueue (1 request)\n" + MAILQ.splitlines(keepends=True)[5]
    assert totals(listing("sendmail", text))["clientmqueue"] == (1, 1024, NOW - 28 * 3600)


def test_sendmail_qtime_is_the_latest_past_minute_of_that_name():
    assert sendmail_qtime("Tue Mar 10 11:58", NOW) == NOW - 120
    assert sendmail_qtime("Wed Dec 31 23:59", NOW) == time.mktime((2025, 12, 31, 23, 59, 0, 0, 0, -1))
    with pytest.raises(QueueListingError):
        sendmail_qtime("Mon Foo 31 23:59", NOW)


SMTPCTL = """\
69e5a3f1a2b3c4d5|inet4|mta||a@lab.test|b@dead.test|b@dead.test|1773140000|1773999999|1773140100|1|pending|3500|No MX
69e5a3f1a2b3c4d6|inet4|mta||a@lab.test|c@dead.test|c@dead.test|1773140000|1773999999|0|0|inflight|2|
1234abcd00000001|local|mta|suspend|x@lab.test|y@ok.test|y@ok.test|1773130000|1773999999|0|0|pending|10|
1234abcd00000002|local|mta|suspend|x@lab.test|z@ok.test|z@ok.test|1773130000|1773999999|0|0|pending|10|
5555000000000001|local|bounce|bounce|x@lab.test|q@ok.test|q@ok.test|1773135000|1773999999|0|0|pending|0|a|b
"""


def test_opensmtpd_envelopes_make_messages():
    got = totals(listing("opensmtpd", SMTPCTL))
    assert got == {"inflight": (1, 0, 1773140000.0), "pending": (1, 0, 1773135000.0),
                   "suspended": (1, 0, 1773130000.0)}


def test_opensmtpd_listing_of_something_else_is_an_error():
    with pytest.raises(QueueListingError):
        listing("opensmtpd", "smtpctl: need root privileges\n")


# -- the probe, running commands ----------------------------------------------------


def script(tmp_path, body: str) -> tuple[str, ...]:
    path = tmp_path / "list-queue.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return (str(path),)


def probe_for(tmp_path, body: str, mta: str = "postfix", timeout: float = 5) -> tuple[QueueProbe, CollectorRegistry]:
    metrics = ExporterMetrics()
    config = QueueConfig(mta, script(tmp_path, body), interval_seconds=0.05, timeout_seconds=timeout)
    return QueueProbe(config, metrics.queue_gauges(), now=lambda: 1773141000.0), metrics.registry


def gauge(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_probe_sets_every_queue(tmp_path):
    (tmp_path / "listing").write_text(POSTQUEUE_J)
    probe, registry = probe_for(tmp_path, f"cat {tmp_path / 'listing'}\n")
    assert probe.run_once()
    assert gauge(registry, "smtp_queue_probe_success") == 1
    assert gauge(registry, "smtp_queue_messages", queue="deferred") == 2
    assert gauge(registry, "smtp_queue_size_bytes", queue="deferred") == 1250
    assert gauge(registry, "smtp_queue_oldest_message_age_seconds", queue="deferred") == 2000
    assert gauge(registry, "smtp_queue_oldest_message_age_seconds", queue="hold") == 0
    for queue in ("incoming", "active", "maildrop"):
        assert gauge(registry, "smtp_queue_messages", queue=queue) == 0
        assert gauge(registry, "smtp_queue_oldest_message_age_seconds", queue=queue) == 0
    assert 0 < gauge(registry, "smtp_queue_probe_duration_seconds") < 5


def test_without_sizes_no_size_series(tmp_path):
    (tmp_path / "listing").write_text(SMTPCTL)
    probe, registry = probe_for(tmp_path, f"cat {tmp_path / 'listing'}\n", mta="opensmtpd")
    assert probe.run_once()
    assert gauge(registry, "smtp_queue_messages", queue="pending") == 1
    assert gauge(registry, "smtp_queue_size_bytes", queue="pending") is None


def test_failures_keep_the_last_good_values_and_log_once_per_episode(tmp_path, caplog):
    listing_file, fail = tmp_path / "listing", tmp_path / "fail"
    listing_file.write_text(POSTQUEUE_J)
    probe, registry = probe_for(
        tmp_path, f'if [ -e {fail} ]; then echo "showq: Permission denied" >&2; exit 69; fi\ncat {listing_file}\n')
    caplog.set_level(logging.INFO, logger="exporter.queue_probe")
    assert probe.run_once()
    fail.touch()
    assert not probe.run_once() and not probe.run_once()
    assert gauge(registry, "smtp_queue_probe_success") == 0
    assert gauge(registry, "smtp_queue_messages", queue="deferred") == 2  # the last good listing
    failures = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(failures) == 1 and "exited with status 69: showq: Permission denied" in failures[0]
    fail.unlink()
    assert probe.run_once()
    assert gauge(registry, "smtp_queue_probe_success") == 1
    assert any("works again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    fail.touch()
    assert not probe.run_once()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2  # a new episode


def test_an_unforeseen_error_fails_the_probe_and_the_thread_goes_on(tmp_path, monkeypatch, caplog):
    probe, registry = probe_for(tmp_path, "true\n")

    def broken(*args: object) -> None:
        raise RuntimeError("a reader's bug")

    monkeypatch.setattr("exporter.queue_probe.list_queue", broken)
    caplog.set_level(logging.WARNING, logger="exporter.queue_probe")
    assert not probe.run_once() and not probe.run_once()
    assert gauge(registry, "smtp_queue_probe_success") == 0
    assert [r.getMessage().count("unexpected RuntimeError: a reader's bug") for r in caplog.records] == [1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes; it waits for init to reap it.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_hung_listing_is_killed_with_its_children_at_the_timeout(tmp_path):
    pids = tmp_path / "pids"
    # A child that would outlive its shell, and output cut off mid-listing.
    body = (f"sleep 60 & echo $! > {pids}\necho $$ >> {pids}\n"
            """echo '{"queue_name": "hold", "arrival_time": 1, "message_size": 1}'\nsleep 60\n""")
    config = QueueConfig("postfix", script(tmp_path, body), timeout_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(ProbeFailed, match="timed out after 0.5s"):
        list_queue(config)
    assert time.monotonic() - started < 3
    assert wait_for(lambda: not any(alive(int(pid)) for pid in pids.read_text().split()), timeout=5)


def test_output_of_another_command_fails_the_probe(tmp_path):
    config = QueueConfig("exim", script(tmp_path, "echo 'Mail queue is empty'\n"))
    with pytest.raises(ProbeFailed, match="unexpected output: line 1"):
        list_queue(config)


def test_a_command_that_cannot_start(tmp_path):
    with pytest.raises(ProbeFailed, match="cannot run"):
        list_queue(QueueConfig("postfix", (str(tmp_path / "no-such-program"),)))


def test_the_thread_probes_on_its_interval_and_stops(tmp_path):
    runs = tmp_path / "runs"
    probe, registry = probe_for(tmp_path, f"echo run >> {runs}\n")
    probe.start()
    wait_for(lambda: runs.exists() and len(runs.read_text().split()) >= 3, timeout=5)
    probe.stop()
    assert len(runs.read_text().split()) >= 3
    assert gauge(registry, "smtp_queue_probe_success") == 1
    count = len(runs.read_text().split())
    time.sleep(0.2)
    assert len(runs.read_text().split()) == count


def test_no_queue_series_without_the_probe():
    assert not [f for f in ExporterMetrics().registry.collect() if f.name.startswith("smtp_queue")]


# -- the config ------------------------------------------------------------------------


def config_error(tmp_path, text: str) -> list[tuple[str, str]]:
    path = tmp_path / "config.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    return [(e.key, e.problem) for e in err.value.every]


def test_queue_config(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text(f"queue: {{mta: exim, command: '{sys.executable} -c pass', interval_seconds: 60, "
                    "timeout_seconds: 2.5}\n")
    queue = load_config(str(path)).queue
    assert queue == QueueConfig("exim", (sys.executable, "-c", "pass"), 60, 2.5)
    path.write_text("queue: {mta: postfix, command: [/bin/cat, 'a b']}\n")
    assert load_config(str(path)).queue.argv == ("/bin/cat", "a b")


def test_queue_config_problems_are_named(tmp_path):
    assert config_error(tmp_path, "queue: {mta: qmail}") == [
        ("queue.mta", "got the text 'qmail'; must be one of: postfix, exim, sendmail, opensmtpd")]
    assert [key for key, _ in config_error(
        tmp_path, "queue: {mta: exim, command: '', interval_seconds: 0, timeout_seconds: x, every: 3}")] == [
        "queue.every", "queue.interval_seconds", "queue.timeout_seconds", "queue.command"]
    [(key, problem)] = config_error(tmp_path, "queue: {mta: postfix, command: [no-such-lister, -j]}")
    assert key == "queue.command" and "no-such-lister" in problem and "PATH" in problem
    [(key, problem)] = config_error(tmp_path, "queue: {command: cat}")
    assert key == "queue.mta" and "postfix, exim, sendmail, opensmtpd" in problem


@pytest.mark.slow
def test_bench_queue_runs_and_checks_its_totals():
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_queue.py"
    out = subprocess.run([sys.executable, str(bench), "--messages", "3000"], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "3,000 messages" in out.stdout and "totals as emitted" in out.stdout, out.stdout

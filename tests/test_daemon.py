"""The daemon stepped by hand: real files, a real state file, no threads."""

import errno
import json
import os
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import NUMBERED_REJECT, POSTFIX_SENT, append_rejects, metric_by, numbered_rejects, run_once, wait_for
from prometheus_client import generate_latest
from watchdog.observers import Observer

from exporter.config import Settings, SourceConfig
from exporter.daemon import Daemon, raise_open_files_limit
from exporter.labels import MAX_SERVICES, REASON_LABELS, REPLY_LABELS
from exporter.metrics import METRICS, ExporterMetrics
from exporter.wakeup import Flag, Waker

DATA = Path(__file__).parent / "data"
FAKE_JOURNALCTL = DATA / "fake_journalctl.py"
# The state file the daemon of format 1 (before its counters came from one
# table) wrote after reading tests/data/once.log whole, kept as it was written.
STATE_V1 = DATA / "state-v1.json"
KEY = {"direction": "inbound", "code": "550", "class": "5xx", "enhanced": "5.1.1", "stage": "rcpt",
       "remote": "", "service": "postfix"}


def rejects(daemon):
    return daemon.metrics.registry.get_sample_value("smtp_replies_total", KEY) or 0


def make(tmp_path, **kw):
    settings = Settings(
        sources=[SourceConfig(path=str(tmp_path / "mail.log"))],
        state_file=str(tmp_path / "state.json"),
        **kw,
    )
    return Daemon(settings, ExporterMetrics())


def test_counts_new_lines_and_keeps_zero_series(tmp_path):
    append_rejects(tmp_path / "mail.log", 0, 5)
    d = make(tmp_path)
    d.poll()
    assert rejects(d) == 0  # present at start-up: followed from its end
    append_rejects(tmp_path / "mail.log", 5, 3)
    d.poll()
    assert rejects(d) == 3
    reg = d.metrics.registry
    # A service's first delivery brings its zero series: its rates by status
    # exist from then on. Rejects alone (smtpd) bring none.
    bounced = {"status": "bounced", "remote": "other", "service": "postfix"}
    assert reg.get_sample_value("smtp_deliveries_total", bounced) is None
    with open(tmp_path / "mail.log", "a") as f:
        f.write(POSTFIX_SENT + "\n")
    d.poll()
    assert reg.get_sample_value("smtp_deliveries_total", bounced) == 0
    assert reg.get_sample_value("smtp_deliveries_total", {**bounced, "status": "sent", "remote": "other"}) == 1
    source = str(tmp_path / "mail.log")
    assert reg.get_sample_value("smtp_exporter_lines_total", {"source": source, "result": "matched"}) == 4
    assert reg.get_sample_value("smtp_exporter_source_last_read_timestamp_seconds", {"source": source}) > 0


def test_a_source_with_a_service_counts_every_line_under_it_and_keeps_its_name_past_the_cap(tmp_path):
    submission, mx = tmp_path / "submission.log", tmp_path / "mail.log"
    submission.touch()
    mx.touch()
    d = Daemon(Settings(sources=[SourceConfig(path=str(submission), service="submission"),
                                 SourceConfig(path=str(mx))]), ExporterMetrics())
    d.poll()
    # More tags than the cap, read before the configured source's first line:
    # its place was kept at start.
    with open(mx, "a") as f:
        for i in range(MAX_SERVICES + 5):
            f.write(NUMBERED_REJECT.format(s=i, n=i, o=i).replace("postfix/smtpd", f"postfix-{i}/smtpd"))
    d.poll()
    append_rejects(submission, 0, 2)  # lines tagged postfix/smtpd
    d.poll()
    reg = d.metrics.registry
    assert reg.get_sample_value("smtp_replies_total", {**KEY, "service": "submission"}) == 2
    named = {s.labels["service"] for f in reg.collect() if f.name == "smtp_replies" for s in f.samples}
    assert len(named - {"other"}) == MAX_SERVICES and "submission" in named


def test_restart_with_state_file_counts_each_line_once(tmp_path):
    d = make(tmp_path, from_beginning=True)
    append_rejects(tmp_path / "mail.log", 0, 10)
    d.poll()
    d.save_state()
    # A crash: no clean shutdown, the next process starts from the state file.
    append_rejects(tmp_path / "mail.log", 10, 7)  # written while down
    e = make(tmp_path)
    assert rejects(e) == 10  # counts restored with the positions
    e.poll()
    assert rejects(e) == 17
    append_rejects(tmp_path / "mail.log", 17, 1)
    e.poll()
    assert rejects(e) == 18


def test_a_stop_during_a_backlog_leaves_the_files_not_read_yet_to_the_next_start(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(5):
        append_rejects(logs / f"mx{i}.log", 10 * i, 10)
    settings = Settings(sources=[SourceConfig(path=str(logs / "*.log"))], state_file=str(tmp_path / "state.json"))
    d = Daemon(settings, ExporterMetrics())
    d.poll()  # follows them from their ends
    for i in range(5):
        append_rejects(logs / f"mx{i}.log", 100 + 10 * i, 10)  # the backlog
    polled = []
    d.poll(lambda: len(polled) >= 2 or bool(polled.append(1)))  # SIGTERM after two files
    d.save_state()
    assert rejects(d) == 20
    e = Daemon(settings, ExporterMetrics())
    e.poll()
    assert rejects(e) == 50  # the other three files' backlog, read once
    # A file that appears as the stop comes is still followed and read: at
    # the next start it would be taken as there before it, and read from its end.
    append_rejects(logs / "mx0.log", 200, 4)
    append_rejects(logs / "new.log", 300, 3)
    e.poll(lambda: True)
    e.save_state()
    assert rejects(e) == 53
    f = Daemon(settings, ExporterMetrics())
    f.poll()
    assert rejects(f) == 57


def rows(snapshot):
    """A snapshot's rows in an order that does not depend on counting order."""
    return sorted(json.dumps(row, sort_keys=True) for row in snapshot)


def test_restart_restores_every_counter(tmp_path):
    log = tmp_path / "mail.log"
    distinct = NUMBERED_REJECT.replace("550 5.1.1", "550 5.1.{n}")  # a reply label set per line
    with open(log, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.writelines(distinct.format(s=n % 60, n=n, o=n % 250) for n in range(120))  # past the series cap
        f.write(POSTFIX_SENT + "\n")  # a delivery
        f.write("Nov  3 17:45:00 mx postfix/smtp[2]: Verified TLS connection established to "
                "mx.example.net[192.0.2.2]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n")
        f.write("x" * 2000 + "\n")  # past max_line_bytes
        f.write("Nov  3 17:45:00 mx postfix/smtpd[1]: connect from \udcff.example[192.0.2.1]\n")  # not UTF-8
    settings = Settings(sources=[SourceConfig(path=str(log))], state_file=str(tmp_path / "state.json"),
                        from_beginning=True, max_line_bytes=1024)
    d = Daemon(settings, ExporterMetrics(max_reply_series=100))
    d.poll()
    d.save_state()
    before = d.metrics.snapshot()
    kept = {m.sample_name for m in METRICS if m.kind in ("counter", "histogram")}
    assert {name for name, _, _ in before} == kept  # the log moved every counter and histogram
    e = Daemon(settings, ExporterMetrics(max_reply_series=100))
    assert rows(e.metrics.snapshot()) == rows(before)


def test_a_state_file_of_format_1_restores_its_counts(tmp_path):
    state = tmp_path / "state.json"
    shutil.copy(STATE_V1, state)
    d = Daemon(Settings(sources=[], state_file=str(state)), ExporterMetrics())
    # Its rows come back as they were: the labels added since (service) are
    # empty, which to Prometheus is the series without them.
    with_service = {"smtp_replies_total", "smtp_reply_reasons_total", "smtp_deliveries_total"}
    saved = [[name, {**labels, "service": ""} if name in with_service else labels, value]
             for name, labels, value in json.loads(STATE_V1.read_text())["counters"]]
    assert rows(d.metrics.snapshot()) == rows(saved)
    # What it saved is what reading the same log in one go counts.
    once = run_once("tests/data/once.log")
    assert once.returncode == 0, once.stderr
    restored = generate_latest(d.metrics.registry).decode()
    for name, labels in (("smtp_replies_total", REPLY_LABELS), ("smtp_reply_reasons_total", REASON_LABELS),
                         ("smtp_deliveries_total", ("status", "remote")), ("smtp_exporter_lines_total", ("result",))):
        labels = tuple(label for label in labels if label != "service")
        assert metric_by(restored, name, *labels) == metric_by(once.stdout.decode(), name, *labels), name


def test_a_partial_line_at_save_time_is_counted_once(tmp_path):
    log = tmp_path / "mail.log"
    d = make(tmp_path, from_beginning=True)
    append_rejects(log, 0, 2)
    text = NUMBERED_REJECT.format(s=2, n=2, o=2)
    with open(log, "a") as f:
        f.write(text[:30])
    d.poll()
    d.save_state()
    with open(log, "a") as f:
        f.write(text[30:])
    e = make(tmp_path)
    e.poll()
    assert rejects(e) == 3


def test_corrupt_state_file_is_set_aside(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    append_rejects(tmp_path / "mail.log", 0, 1)
    d = make(tmp_path, from_beginning=True)
    d.poll()
    assert rejects(d) == 1
    assert (tmp_path / "state.json.corrupt").exists()


def test_apply_adds_and_removes_sources_without_losing_counts(tmp_path):
    append_rejects(tmp_path / "mail.log", 0, 4)
    d = make(tmp_path, from_beginning=True)
    d.poll()
    other = tmp_path / "other.log"
    append_rejects(other, 100, 2)
    d.apply(Settings(sources=[SourceConfig(path=str(other))], state_file=d.settings.state_file,
                     from_beginning=True))
    d.poll()
    assert rejects(d) == 6
    assert list(d.sources) == [str(other)]
    assert os.path.exists(tmp_path / "state.json")


def test_restart_in_the_rotation_grace_period_counts_what_the_old_file_got(tmp_path):
    log = tmp_path / "mail.log"
    append_rejects(log, 0, 3)
    d = make(tmp_path, from_beginning=True)
    d.poll()
    os.rename(log, tmp_path / "mail.log.1")
    append_rejects(log, 3, 1)
    d.poll()
    d.save_state()
    append_rejects(tmp_path / "mail.log.1", 4, 2)  # the writer has not reopened yet; then kill -9
    e = make(tmp_path)
    e.poll()
    assert rejects(e) == 6


def test_restart_inside_the_rest_of_a_cut_line_does_not_count_it_as_a_line(tmp_path):
    log = tmp_path / "mail.log"
    append_rejects(log, 0, 1)
    with open(log, "a") as f:  # a long line still being written; its end holds a reply
        f.write("x" * 2000 + " " + NUMBERED_REJECT.format(s=1, n=1, o=1).rstrip("\n"))
    d = make(tmp_path, from_beginning=True, max_line_bytes=1024)
    d.poll()
    d.save_state()
    with open(log, "a") as f:
        f.write("\n")
    append_rejects(log, 2, 1)
    e = make(tmp_path, max_line_bytes=1024)
    e.poll()
    source = str(log)
    lines = {result: e.metrics.registry.get_sample_value(
        "smtp_exporter_lines_total", {"source": source, "result": result}) for result in ("matched", "ignored")}
    assert rejects(e) == 2
    assert lines == {"matched": 2, "ignored": 1}


def test_a_source_removed_and_added_back_resumes_where_it_stopped(tmp_path):
    log = tmp_path / "mail.log"
    append_rejects(log, 0, 3)
    d = make(tmp_path, from_beginning=True)
    d.poll()
    d.save_state()
    e = make(tmp_path)  # restarted: positions from the state file
    append_rejects(log, 3, 2)
    e.poll()
    assert rejects(e) == 5
    with_log = e.settings
    e.apply(Settings(sources=[], state_file=with_log.state_file))
    e.poll()
    append_rejects(log, 5, 1)  # while not followed
    e.apply(with_log)
    e.poll()
    assert rejects(e) == 6


@pytest.mark.slow
def test_a_journal_removed_and_added_back_resumes_after_its_cursor(tmp_path, monkeypatch):
    journal = tmp_path / "journal.jsonl"
    with open(journal, "w") as f:
        for n in range(3):
            f.write(json.dumps({"__CURSOR": f"c{n}", "SYSLOG_IDENTIFIER": "postfix/smtpd", "SYSLOG_PID": "1",
                                "MESSAGE": numbered_rejects(n, 1).split(": ", 1)[1].rstrip("\n")}) + "\n")
    monkeypatch.setenv("FAKE_JOURNAL", str(journal))
    settings = Settings(sources=[SourceConfig(journal_units=["postfix.service"])])
    d = Daemon(settings, ExporterMetrics(), journalctl=(sys.executable, str(FAKE_JOURNALCTL)))
    try:
        poll_until(d, 3)
        d.apply(Settings(sources=[]))
        d.apply(settings)
        d.poll()  # starts journalctl again
        args = tmp_path / "journal.jsonl.args"
        assert wait_for(lambda: len(args.read_text().splitlines()) >= 2)
        time.sleep(0.5)  # what it prints at once (all entries, without a cursor) has come by now
        d.poll()
        assert rejects(d) == 3
        assert "--after-cursor=c2" in json.loads(args.read_text().splitlines()[1])
    finally:
        for journal_source in d.journals.values():
            journal_source.close()


def poll_until(daemon, count, timeout=10.0):
    deadline = time.monotonic() + timeout
    while rejects(daemon) < count and time.monotonic() < deadline:
        time.sleep(0.02)
        daemon.poll()
    assert rejects(daemon) == count


def test_a_state_file_that_cannot_be_written_is_a_warning_and_reading_goes_on(tmp_path, caplog):
    state_dir = tmp_path / "state"
    log = tmp_path / "mail.log"
    settings = Settings(sources=[SourceConfig(path=str(log))], state_file=str(state_dir / "state.json"),
                        from_beginning=True)
    d = Daemon(settings, ExporterMetrics())
    append_rejects(log, 0, 2)
    d.poll()  # the directory is missing
    d.save_state()
    assert rejects(d) == 2
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "state file" in r.getMessage()]
    assert len(warnings) == 1  # once, not at every save
    state_dir.mkdir()
    d.save_state()
    assert (state_dir / "state.json").exists()


def test_a_poll_that_reads_is_busy_also_when_a_deleted_glob_file_is_let_go_in_it(tmp_path):
    # What is busy decides how the loop wakes; a follower let go takes its
    # total along, which must not hide what the others read.
    settings = Settings(sources=[SourceConfig(path=str(tmp_path / "*.log"))], rotation_grace_seconds=0,
                        from_beginning=True)
    d = Daemon(settings, ExporterMetrics())
    append_rejects(tmp_path / "a.log", 0, 20)
    append_rejects(tmp_path / "b.log", 20, 1)
    d.poll()
    os.unlink(tmp_path / "a.log")
    append_rejects(tmp_path / "b.log", 21, 1)
    assert d.poll() == len(NUMBERED_REJECT.format(s=21, n=21, o=21))
    assert d.poll() == 0


class WatchLimitUsedUp(Observer):
    """inotify whose watch limit is used up: adding a watch fails as inotify_add_watch does."""

    def schedule(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


def test_the_inotify_watch_limit_used_up_at_start_is_a_warning_and_the_log_is_polled(tmp_path, caplog):
    log = tmp_path / "mail.log"
    log.touch()
    settings = Settings(sources=[SourceConfig(path=str(log))], poll_interval_seconds=0.2)
    d = Daemon(settings, ExporterMetrics(), make_observer=WatchLimitUsedUp)
    stop, waker = Flag(), Waker()
    loop = threading.Thread(target=d.run, args=(stop, waker))
    loop.start()
    try:
        time.sleep(0.3)  # the loop has started, failed to watch, and polls
        append_rejects(log, 0, 5)
        wait_for(lambda: rejects(d) >= 5)
    finally:
        stop.set()
        waker.wake()
        loop.join(timeout=10)
    assert rejects(d) == 5
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "inotify watch limit reached" in warnings[0], warnings


def test_an_infinite_hard_limit_on_open_files_is_left_alone_and_nothing_read_for_it(monkeypatch):
    # Linux never reports it for open files (their hard limit is at most
    # fs.nr_open), but it must not stop the start, whatever /proc allows.
    asked = []
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, resource.RLIM_INFINITY))
    monkeypatch.setattr(resource, "setrlimit", lambda which, limits: asked.append(limits))

    def unreadable(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("exporter.daemon.open", unreadable, raising=False)
    raise_open_files_limit()
    assert asked == []

"""The daemon stepped by hand: real files, a real state file, no threads."""

import os

from exporter.config import Settings, SourceConfig
from exporter.daemon import Daemon
from exporter.metrics import ExporterMetrics

REJECT = (
    "Nov  3 17:44:{s:02d} mx postfix/smtpd[{n}]: NOQUEUE: reject: RCPT from c.example[192.0.2.{o}]: "
    "550 5.1.1 <u{n}@example.net>: Recipient address rejected: User unknown; from=<a@example.org> "
    "to=<u{n}@example.net> proto=ESMTP helo=<c.example>\n"
)
KEY = {"direction": "inbound", "code": "550", "class": "5xx", "enhanced": "5.1.1", "stage": "rcpt",
       "remote": ""}


def write(path, first, count):
    with open(path, "a") as f:
        for n in range(first, first + count):
            f.write(REJECT.format(s=n % 60, n=n, o=n % 250))


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
    write(tmp_path / "mail.log", 0, 5)
    d = make(tmp_path)
    d.poll()
    assert rejects(d) == 0  # present at start-up: followed from its end
    write(tmp_path / "mail.log", 5, 3)
    d.poll()
    assert rejects(d) == 3
    reg = d.metrics.registry
    assert reg.get_sample_value("smtp_deliveries_total", {"status": "bounced", "remote": "other"}) == 0
    source = str(tmp_path / "mail.log")
    assert reg.get_sample_value("smtp_exporter_lines_total", {"source": source, "result": "matched"}) == 3
    assert reg.get_sample_value("smtp_exporter_source_last_read_timestamp_seconds", {"source": source}) > 0


def test_restart_with_state_file_counts_each_line_once(tmp_path):
    d = make(tmp_path, from_beginning=True)
    write(tmp_path / "mail.log", 0, 10)
    d.poll()
    d.save_state()
    # A crash: no clean shutdown, the next process starts from the state file.
    write(tmp_path / "mail.log", 10, 7)  # written while down
    e = make(tmp_path)
    assert rejects(e) == 10  # counts restored with the positions
    e.poll()
    assert rejects(e) == 17
    write(tmp_path / "mail.log", 17, 1)
    e.poll()
    assert rejects(e) == 18


def test_a_partial_line_at_save_time_is_counted_once(tmp_path):
    log = tmp_path / "mail.log"
    d = make(tmp_path, from_beginning=True)
    write(log, 0, 2)
    text = REJECT.format(s=2, n=2, o=2)
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
    write(tmp_path / "mail.log", 0, 1)
    d = make(tmp_path, from_beginning=True)
    d.poll()
    assert rejects(d) == 1
    assert (tmp_path / "state.json.corrupt").exists()


def test_apply_adds_and_removes_sources_without_losing_counts(tmp_path):
    write(tmp_path / "mail.log", 0, 4)
    d = make(tmp_path, from_beginning=True)
    d.poll()
    other = tmp_path / "other.log"
    write(other, 100, 2)
    d.apply(Settings(sources=[SourceConfig(path=str(other))], state_file=d.settings.state_file,
                     from_beginning=True))
    d.poll()
    assert rejects(d) == 6
    assert list(d.sources) == [str(other)]
    assert os.path.exists(tmp_path / "state.json")

"""The state file: what loads, and every way a bad one is set aside instead of
crashing the start (and, under systemd, looping)."""

import json
import logging
import math

import pytest
from helpers import metric_by, numbered_rejects, wait_for
from daemontest import Exporter

from exporter.source_progress import Position
from exporter.state import State, load_state, parse_state, save_state

POSITION = {"dev": 2049, "ino": 131, "fingerprint": "4e6f7620", "offset": 420, "skipping": False}
GOOD = {
    "version": 1,
    "positions": {"/var/log/mail.log": {"/var/log/mail.log": POSITION}},
    "draining": {"/var/log/mail.log": {"/var/log/mail.log": [dict(POSITION, ino=130, offset=99)]}},
    "counters": [["smtp_replies_total", {"direction": "inbound", "code": "550"}, 3.0]],
    "journal_cursors": {"postfix": "s=abc;i=1"},
}


def with_change(path: tuple, value) -> str:
    """GOOD with the value at path (keys and list indexes) replaced, or removed for `...`."""
    data = json.loads(json.dumps(GOOD))
    *parents, last = path
    node = data
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return json.dumps(data)


def test_a_saved_state_loads_back_the_same(tmp_path):
    state = parse_state(json.dumps(GOOD))
    path = tmp_path / "state.json"
    save_state(str(path), state)
    assert load_state(str(path)) == state
    assert state.positions["/var/log/mail.log"]["/var/log/mail.log"] == Position(2049, 131, b"Nov ", 420)
    assert state.counters == GOOD["counters"]


LOG = "/var/log/mail.log"
MOUNT = ("positions", LOG, LOG)
BAD = [
    ("not JSON", "{not json"),
    ("not a mapping", "[1, 2]"),
    ("another version", with_change(("version",), 2)),
    ("no version", with_change(("version",), ...)),
    ("an unknown key", json.dumps(dict(GOOD, extra=1))),
    ("a counter row too short", with_change(("counters", 0), ["smtp_replies_total", {}])),
    ("labels that are not a mapping", with_change(("counters", 0), ["smtp_replies_total", ["inbound"], 1.0])),
    ("a label value that is not text", with_change(("counters", 0), ["smtp_replies_total", {"code": 550}, 1.0])),
    ("a value that is text", with_change(("counters", 0), ["smtp_replies_total", {}, "3"])),
    ("a negative value", with_change(("counters", 0), ["smtp_replies_total", {}, -1.0])),
    ("a NaN value", json.dumps(GOOD).replace("3.0", "NaN")),
    ("an Infinity value", json.dumps(GOOD).replace("3.0", "Infinity")),
    ("counters that are not a list", with_change(("counters",), {"a": 1})),
    ("an offset of -1", with_change(MOUNT, dict(POSITION, offset=-1))),
    ("an offset that is text", with_change(MOUNT, dict(POSITION, offset="420"))),
    ("an offset that is true", with_change(MOUNT, dict(POSITION, offset=True))),
    ("a position without an inode", with_change(MOUNT, {k: v for k, v in POSITION.items() if k != "ino"})),
    ("a fingerprint that is not hex", with_change(MOUNT, dict(POSITION, fingerprint="xyz"))),
    ("skipping that is not a boolean", with_change(MOUNT, dict(POSITION, skipping="no"))),
    ("positions that are a list", with_change(("positions",), [])),
    ("draining files that are not a list", with_change(("draining", LOG, LOG), {})),
    ("a journal cursor that is a number", with_change(("journal_cursors", "postfix"), 7)),
    ("not UTF-8", b"\xff\xfe{}"),
]


@pytest.mark.parametrize("what,text", BAD, ids=[what for what, _ in BAD])
def test_a_bad_state_file_is_set_aside_with_one_error(tmp_path, caplog, what, text):
    path = tmp_path / "state.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with caplog.at_level(logging.ERROR, logger="exporter.state"):
        assert load_state(str(path)) == State()
    assert not path.exists()
    aside = tmp_path / "state.json.corrupt"
    assert aside.read_bytes() == (text if isinstance(text, bytes) else text.encode())
    assert [r.levelname for r in caplog.records] == ["ERROR"], what
    assert "state.json.corrupt" in caplog.text


def test_no_state_file_is_a_fresh_start(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert load_state(str(tmp_path / "state.json")) == State()
    assert not caplog.records


def test_the_good_file_has_every_part_checked():
    """Each BAD case differs from GOOD in one part: GOOD itself must pass, and
    so the rejections above are about that part alone."""
    state = parse_state(json.dumps(GOOD))
    assert state.journal_cursors == {"postfix": "s=abc;i=1"}
    assert [p.offset for p in state.draining["/var/log/mail.log"]["/var/log/mail.log"]] == [99]
    assert all(math.isfinite(row[2]) for row in state.counters)




@pytest.mark.slow
@pytest.mark.parametrize("what,text", [BAD[5], BAD[9], BAD[13]], ids=[BAD[i][0] for i in (5, 9, 13)])
def test_the_daemon_starts_on_a_bad_state_file_and_counts_from_the_log(tmp_path, what, text):
    log, state = tmp_path / "mail.log", tmp_path / "state.json"
    log.write_text(numbered_rejects(0, 5))
    state.write_text(text)
    exporter = Exporter(tmp_path, "--from-beginning", "--state-file", str(state), str(log))
    try:
        counted = wait_for(lambda: metric_by(exporter.scrape(), "smtp_replies_total", "code")[("550",)] == 5)
    finally:
        status = exporter.stop()
    assert status == 0
    assert counted, exporter.errors()
    assert (tmp_path / "state.json.corrupt").read_text() == text
    assert exporter.errors().count("state.json is unusable") == 1
    assert json.loads(state.read_text())["version"] == 1  # a good one was saved in its place

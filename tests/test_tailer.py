"""The tailer on real files: rename, copytruncate, delete, partial writes, restarts.

The tests step the followers by hand and move a fake clock, so nothing sleeps.
"""

import os

from exporter.tailer import FileFollower, Ledger, LogSource, Position


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Collected:
    """A sink that keeps every line it is handed, in order."""

    def __init__(self):
        self.lines = []
        self.cut = 0

    def __call__(self, block, cut):
        self.lines.extend(block.decode().splitlines())
        self.cut += cut


def line(n):
    # Distinct first bytes per line, as syslog's timestamps and pids give.
    return f"Nov  3 17:44:{n % 60:02d} mx postfix/smtpd[{1000 + n}]: line {n}\n"


def write(path, *numbers, mode="a"):
    with open(path, mode) as f:
        f.write("".join(line(n) for n in numbers))


def follower(path, sink, clock, start_at_end=False, ledger=None, last_known=None):
    return FileFollower(
        str(path), sink, ledger or Ledger(), start_at_end=start_at_end,
        last_known=last_known, grace_seconds=2.0, clock=clock,
    )


def numbers(sink):
    return [int(text.rsplit(" ", 1)[1]) for text in sink.lines]


def test_starts_at_end_of_existing_file_and_reads_new_lines(tmp_path):
    log = tmp_path / "mail.log"
    write(log, 1, 2)
    sink, clock = Collected(), Clock()
    f = follower(log, sink, clock, start_at_end=True)
    f.poll()
    assert sink.lines == []
    write(log, 3)
    f.poll()
    assert numbers(sink) == [3]


def test_file_created_later_is_read_from_first_byte(tmp_path):
    log = tmp_path / "mail.log"
    sink, clock = Collected(), Clock()
    f = follower(log, sink, clock, start_at_end=True)
    f.poll()
    write(log, 1, 2)
    f.poll()
    assert numbers(sink) == [1, 2]


def test_partial_line_waits_for_its_end(tmp_path):
    log = tmp_path / "mail.log"
    sink, clock = Collected(), Clock()
    f = follower(log, sink, clock)
    text = line(7)
    with open(log, "w") as fh:
        fh.write(text[:20])
    f.poll()
    assert sink.lines == []
    assert f.position().offset == 0  # a restart would read the partial line again
    with open(log, "a") as fh:
        fh.write(text[20:])
    f.poll()
    assert numbers(sink) == [7]


def test_rename_rotation_drains_old_file_for_grace_period(tmp_path):
    log = tmp_path / "mail.log"
    write(log, 1)
    sink, clock = Collected(), Clock()
    f = follower(log, sink, clock)
    f.poll()
    os.rename(log, tmp_path / "mail.log.1")
    write(tmp_path / "mail.log.1", 2)  # syslog still writes to the old file
    write(log, 3)
    f.poll()
    write(tmp_path / "mail.log.1", 4)  # ... until it reopens
    clock.now += 1
    f.poll()
    clock.now += 5  # grace over: the old file is closed
    f.poll()
    write(tmp_path / "mail.log.1", 99)  # never read: we moved on
    write(log, 5)
    f.poll()
    assert sorted(numbers(sink)) == [1, 2, 3, 4, 5]
    assert f.stats.rotations == 1


def test_copytruncate_detected_even_when_grown_past_old_offset(tmp_path):
    log = tmp_path / "mail.log"
    write(log, 1)
    sink, clock = Collected(), Clock()
    f = follower(log, sink, clock)
    f.poll()
    # copytruncate, then the writer writes more than we had read before we look.
    with open(log, "r+") as fh:
        fh.truncate(0)
    write(log, 2, 3, 4)
    f.poll()
    assert numbers(sink) == [1, 2, 3, 4]
    assert f.stats.truncations == 1


def test_plain_truncation(tmp_path):
    log = tmp_path / "mail.log"
    write(log, 1, 2, 3)
    sink, clock = Collected(), Clock()
    f = follower(log, sink, clock)
    f.poll()
    with open(log, "r+") as fh:
        fh.truncate(0)
    f.poll()
    write(log, 4)
    f.poll()
    assert numbers(sink) == [1, 2, 3, 4]
    assert f.stats.truncations == 1


def test_delete_and_recreate(tmp_path):
    log = tmp_path / "mail.log"
    write(log, 1)
    sink, clock = Collected(), Clock()
    f = follower(log, sink, clock)
    f.poll()
    os.unlink(log)
    f.poll()  # gone: nothing to do, nothing lost
    write(log, 2)
    f.poll()
    clock.now += 5
    f.poll()
    assert numbers(sink) == [1, 2]


def test_restart_resumes_at_saved_offset_and_reads_what_came_while_down(tmp_path):
    log = tmp_path / "mail.log"
    write(log, 1, 2)
    sink, clock = Collected(), Clock()
    f = follower(log, sink, clock, start_at_end=False)
    f.poll()
    saved = Position.from_json(f.position().to_json())  # through the state file's form
    f.close()
    write(log, 3, 4)  # written while we were down
    sink2 = Collected()
    g = follower(log, sink2, clock, start_at_end=True, ledger=Ledger([saved]), last_known=saved)
    g.poll()
    assert numbers(sink2) == [3, 4]


def test_restart_after_rotation_while_down(tmp_path):
    log = tmp_path / "mail.log"
    write(log, 1)
    sink, clock = Collected(), Clock()
    f = follower(log, sink, clock)
    f.poll()
    saved = f.position()
    f.close()
    write(log, 2)  # after the save, before the rotation
    os.rename(log, tmp_path / "mail.log.1")
    write(log, 3)
    sink2 = Collected()
    g = follower(log, sink2, clock, start_at_end=True, ledger=Ledger([saved]), last_known=saved)
    g.poll()
    assert sorted(numbers(sink2)) == [2, 3]


def test_restart_does_not_trust_a_reused_inode(tmp_path):
    log = tmp_path / "mail.log"
    write(log, 1, 2, 3)
    st = os.stat(log)
    # The saved state names this inode, but with other first bytes: a new file.
    stale = Position(st.st_dev, st.st_ino, b"Oct  1 00:00:00 other content", 10)
    sink, clock = Collected(), Clock()
    g = follower(log, sink, clock, start_at_end=True, ledger=Ledger([stale]), last_known=stale)
    g.poll()
    assert numbers(sink) == [1, 2, 3]


def test_glob_follows_new_files_and_skips_renamed_rotations(tmp_path):
    write(tmp_path / "a.log", 1)
    sink = Collected()
    clock = Clock()
    source = LogSource(str(tmp_path / "*.log*"), lambda path: sink, grace_seconds=2.0, clock=clock)
    source.poll()
    assert sink.lines == []  # present at start-up: read from its end
    write(tmp_path / "b.log", 2)  # appears later: read from its first byte
    write(tmp_path / "a.log", 3)
    source.poll()
    os.rename(tmp_path / "a.log", tmp_path / "a.log.1")
    write(tmp_path / "a.log", 4)
    source.poll()
    clock.now += 5
    source.poll()  # old a.log closed; a.log.1 now matches the glob on its own
    source.poll()
    write(tmp_path / "a.log.1.gz", 50)  # compressed rotations are not followed
    source.poll()
    assert sorted(numbers(sink)) == [2, 3, 4]


def test_permission_denied_is_counted_and_retried(tmp_path):
    log = tmp_path / "mail.log"
    write(log, 1)
    os.chmod(log, 0)
    sink, clock = Collected(), Clock()
    f = follower(log, sink, clock)
    if os.access(log, os.R_OK):  # root reads anyway; make the path unreadable instead
        os.chmod(log, 0o644)
        os.rename(log, tmp_path / "real.log")
        os.mkdir(log)  # a directory cannot be read as a log
        f.poll()
        assert f.stats.read_errors >= 1
        os.rmdir(log)
        os.rename(tmp_path / "real.log", log)
    else:
        f.poll()
        assert f.stats.read_errors == 1
        os.chmod(log, 0o644)
    f.poll()
    assert numbers(sink) == [1]

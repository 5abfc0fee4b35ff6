"""The tailer on real files: rename, copytruncate, delete, partial writes, restarts.

The tests step the followers by hand and move a fake clock, so nothing sleeps.
"""

import errno
import logging
import os
import shutil

from helpers import copytruncate

from exporter import tailer
from exporter.source_progress import Position
from exporter.tailer import FileFollower, Ledger, LogSource


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


def read_and_stopped(log, clock, *numbers_written):
    """Follow log while numbers_written are written, stop: the saved position."""
    write(log, *numbers_written)
    f = follower(log, Collected(), clock)
    f.poll()
    saved = Position.from_json(f.position().to_json())  # through the state file's form
    f.close()
    return saved


def restarted(log, sink, clock, saved):
    return follower(log, sink, clock, start_at_end=True, ledger=Ledger([saved]), last_known=saved)


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
    clock = Clock()
    saved = read_and_stopped(log, clock, 1, 2)
    write(log, 3, 4)  # written while we were down
    sink2 = Collected()
    g = restarted(log, sink2, clock, saved)
    g.poll()
    assert numbers(sink2) == [3, 4]


def test_restart_after_rotation_while_down(tmp_path):
    log = tmp_path / "mail.log"
    clock = Clock()
    saved = read_and_stopped(log, clock, 1)
    write(log, 2)  # after the save, before the rotation
    os.rename(log, tmp_path / "mail.log.1")
    write(log, 3)
    sink2 = Collected()
    g = restarted(log, sink2, clock, saved)
    g.poll()
    assert sorted(numbers(sink2)) == [2, 3]


def test_restart_does_not_trust_a_reused_inode(tmp_path):
    log = tmp_path / "mail.log"
    write(log, 1, 2, 3)
    st = os.stat(log)
    # The saved state names this inode, but with other first bytes: a new file.
    stale = Position(st.st_dev, st.st_ino, b"Oct  1 00:00:00 other content\n", 10)
    sink, clock = Collected(), Clock()
    g = restarted(log, sink, clock, stale)
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


def test_a_file_cut_to_a_prefix_of_itself_goes_on_at_its_new_end(tmp_path):
    log = tmp_path / "mail.log"
    write(log, *range(1, 21))
    sink, clock = Collected(), Clock()
    f = follower(log, sink, clock)
    f.poll()
    kept = len("".join(line(n) for n in range(1, 8)))
    os.truncate(log, kept)  # the same inode and first bytes, shorter than our offset
    f.poll()
    write(log, 30)
    f.poll()
    assert numbers(sink) == [*range(1, 21), 30]
    assert f.stats.truncations == 1


def test_restart_goes_on_at_the_new_end_of_a_file_cut_to_a_prefix_while_down(tmp_path):
    log = tmp_path / "mail.log"
    clock = Clock()
    saved = read_and_stopped(log, clock, *range(1, 21))
    os.truncate(log, len("".join(line(n) for n in range(1, 8))))
    write(log, 30)  # after the cut: not yet read
    assert os.path.getsize(log) < saved.offset
    sink2 = Collected()
    g = restarted(log, sink2, clock, saved)
    g.poll()
    write(log, 31)
    g.poll()
    assert numbers(sink2) == [31]  # 30 sits below the saved offset: the kept prefix is not read twice
    assert g.stats.truncations == 1


def test_restart_reads_a_file_written_anew_while_down_from_its_first_byte(tmp_path):
    log = tmp_path / "mail.log"
    clock = Clock()
    saved = read_and_stopped(log, clock, *range(1, 21))
    write(log, 40, 41, mode="w")  # copytruncate and new lines, the copy elsewhere
    sink2 = Collected()
    g = restarted(log, sink2, clock, saved)
    g.poll()
    assert numbers(sink2) == [40, 41]


def stopped_in_the_grace_period(tmp_path, pattern, clock):
    """Follow lines 1-2, rotate by rename, write 3 to the new file, stop:
    the positions a state file would keep (the old file still draining)."""
    log = tmp_path / "mail.log"
    source = LogSource(pattern, lambda path: Collected(), from_beginning=True, grace_seconds=2.0, clock=clock)
    write(log, 1, 2)
    source.poll()
    os.rename(log, tmp_path / "mail.log.1")
    write(log, 3)
    source.poll()
    saved, draining = source.positions(), source.draining_positions()
    source.close()
    return saved, draining


def test_restart_in_the_rotation_grace_period_drains_the_rotated_file(tmp_path):
    log = tmp_path / "mail.log"
    clock = Clock()
    saved, draining = stopped_in_the_grace_period(tmp_path, str(log), clock)
    assert list(draining) == [str(log)]
    write(tmp_path / "mail.log.1", 4, 5)  # the writer had not reopened yet
    write(log, 6)
    sink2 = Collected()
    again = LogSource(str(log), lambda path: sink2, saved=saved, saved_draining=draining,
                      grace_seconds=2.0, clock=clock)
    again.poll()
    assert sorted(numbers(sink2)) == [4, 5, 6]
    write(tmp_path / "mail.log.1", 7)
    clock.now += 5
    again.poll()  # drained once more, then closed
    write(tmp_path / "mail.log.1", 8)
    again.poll()
    assert sorted(numbers(sink2)) == [4, 5, 6, 7]
    assert again.draining_positions() == {}


def test_restart_in_the_grace_period_with_a_glob_matching_the_rotated_name(tmp_path):
    clock = Clock()
    pattern = str(tmp_path / "mail.log*")
    saved, draining = stopped_in_the_grace_period(tmp_path, pattern, clock)
    write(tmp_path / "mail.log.1", 4)
    sink2 = Collected()
    again = LogSource(pattern, lambda path: sink2, saved=saved, saved_draining=draining,
                      grace_seconds=2.0, clock=clock)
    again.poll()
    write(tmp_path / "mail.log.1", 5)
    again.poll()
    clock.now += 5
    again.poll()
    again.poll()
    assert sorted(numbers(sink2)) == [4, 5]


def deleted_files_held_open():
    held = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            held += os.readlink(f"/proc/self/fd/{fd}").endswith(" (deleted)")
        except OSError:
            pass
    return held


def test_glob_matches_deleted_by_retention_are_closed_and_dropped(tmp_path):
    sink, clock = Collected(), Clock()
    source = LogSource(str(tmp_path / "mail-*.log"), lambda path: sink, from_beginning=True,
                       grace_seconds=2.0, clock=clock)
    held_before = deleted_files_held_open()
    for day in range(10):
        write(tmp_path / f"mail-{day:03d}.log", day)
        source.poll()
        if day >= 3:
            old = tmp_path / f"mail-{day - 3:03d}.log"
            with open(old, "a") as f:  # the writer's last words before the file goes
                f.write(line(100 + day))
            os.unlink(old)
        source.poll()
        clock.now += 1
    assert len(source.followers) == 5  # three on disk, two deleted within the grace period
    clock.now += 5
    source.poll()
    assert sorted(source.followers) == [str(tmp_path / f"mail-{day:03d}.log") for day in (7, 8, 9)]
    assert deleted_files_held_open() == held_before
    assert sorted(numbers(sink)) == list(range(10)) + list(range(103, 110))


def test_positions_from_state_files_without_the_skipping_flag_still_load():
    saved = {"dev": 1, "ino": 2, "fingerprint": b"Nov  3".hex(), "offset": 40}
    assert Position.from_json(saved) == Position(1, 2, b"Nov  3", 40, skipping=False)
    skipping = Position(1, 2, b"Nov  3", 40, skipping=True)
    assert Position.from_json(skipping.to_json()) == skipping


def glob_source(tmp_path, pattern, sink, clock, **kw):
    return LogSource(str(tmp_path / pattern), lambda path: sink, grace_seconds=2.0, clock=clock, **kw)


def test_a_glob_over_more_files_than_any_fixed_ledger_size_resumes_each_after_a_restart(tmp_path):
    files = [tmp_path / f"app{i:03d}.log" for i in range(300)]
    for i, path in enumerate(files):
        write(path, i * 10, i * 10 + 1)
    clock = Clock()
    first = glob_source(tmp_path, "*.log", Collected(), clock)
    first.poll()
    saved, draining = first.positions(), first.draining_positions()
    first.close()
    for i, path in enumerate(files):
        write(path, i * 10 + 2)  # written while down
    sink = Collected()
    again = glob_source(tmp_path, "*.log", sink, clock, saved=saved, saved_draining=draining)
    again.poll()
    expected = sorted(i * 10 + 2 for i in range(300))
    assert sorted(numbers(sink)) == expected, (len(sink.lines), len(expected))


def test_the_ledger_forgets_files_let_go_long_ago_and_keeps_the_followed_ones(tmp_path):
    clock = Clock()
    source = glob_source(tmp_path, "*.log", Collected(), clock, from_beginning=True)
    for i in range(50):
        write(tmp_path / f"app{i:03d}.log", i)
    source.poll()
    for i in range(40):
        os.unlink(tmp_path / f"app{i:03d}.log")
    source.poll()
    clock.now += 5  # past the grace period: the 40 are closed and let go
    source.poll()
    assert len(source.ledger) == 50
    clock.now += tailer.RECENT_SECONDS + 1
    source.poll()
    assert len(source.ledger) == len(source.followers) == 10


def test_glob_and_copytruncate_count_the_copy_once(tmp_path):
    log = tmp_path / "mail.log"
    write(log, 1, 2)
    sink, clock = Collected(), Clock()
    source = glob_source(tmp_path, "mail.log*", sink, clock)
    source.poll()
    write(log, 3, 4)
    source.poll()
    shutil.copyfile(log, tmp_path / "mail.log.1")
    source.poll()  # the copy appears before the truncation
    write(log, 5)  # after the copy, before the truncation: lost, in neither file
    os.truncate(log, 0)
    write(log, 6)
    source.poll()
    for _ in range(3):
        clock.now += 3
        source.poll()
    assert sorted(numbers(sink)) == [3, 4, 6]


def test_glob_and_copytruncate_when_the_copy_is_seen_after_the_truncation(tmp_path):
    log = tmp_path / "mail.log"
    sink, clock = Collected(), Clock()
    source = glob_source(tmp_path, "mail.log*", sink, clock)
    write(log, 1)
    source.poll()
    write(log, 2, 3)
    source.poll()
    write(log, 4)  # not read before the rotation: it is in the copy
    copytruncate(log, tmp_path / "mail.log.1")
    write(log, 5)
    source.poll()
    for _ in range(3):
        clock.now += 3
        source.poll()
    assert sorted(numbers(sink)) == [2, 3, 4, 5]  # 1 was there at start-up


def test_single_path_copytruncate_reads_what_was_not_read_from_the_copy(tmp_path):
    log = tmp_path / "mail.log"
    write(log, 1, 2)
    sink, clock = Collected(), Clock()
    f = follower(log, sink, clock)
    f.poll()
    write(log, 3, 4)  # written before the copy, not yet read when the file is cut
    copytruncate(log, tmp_path / "mail.log.1")
    write(log, 5)
    f.poll()
    clock.now += 3
    f.poll()
    assert sorted(numbers(sink)) == [1, 2, 3, 4, 5]
    assert f.stats.truncations == 1 and f.stats.rotations == 0


def test_glob_rename_rotations_while_the_writer_writes_to_the_renamed_file_read_each_line_once(tmp_path):
    log = tmp_path / "mail.log"
    sink, clock = Collected(), Clock()
    source = glob_source(tmp_path, "mail.log*", sink, clock)
    source.poll()
    n = 0
    for _ in range(4):
        for _ in range(3):
            write(log, n)
            n += 1
            source.poll()
        for k in range(3, 0, -1):  # mail.log.2 -> mail.log.3, ..., mail.log -> mail.log.1
            if (tmp_path / f"mail.log.{k}").exists():
                os.rename(tmp_path / f"mail.log.{k}", tmp_path / f"mail.log.{k + 1}")
        os.rename(log, tmp_path / "mail.log.1")
        write(log, n)  # the new file
        n += 1
        source.poll()
        for _ in range(2):  # the writer has not reopened yet
            write(tmp_path / "mail.log.1", n)
            n += 1
            clock.now += 0.5
            source.poll()
        clock.now += 1
        source.poll()
    for _ in range(4):
        clock.now += 3
        source.poll()
    assert sorted(numbers(sink)) == list(range(n))


def test_two_logs_that_start_with_the_same_line_are_both_read(tmp_path):
    sink, clock = Collected(), Clock()
    source = glob_source(tmp_path, "*.log", sink, clock)
    source.poll()
    write(tmp_path / "a.log", 1, 2)
    source.poll()
    write(tmp_path / "b.log", 1, 3)  # the same first line, then its own
    source.poll()
    write(tmp_path / "b.log", 4)
    source.poll()
    assert sorted(numbers(sink)) == [1, 1, 2, 3, 4]


def test_a_new_file_is_read_once_its_first_line_is_whole(tmp_path):
    log = tmp_path / "mail.log"
    sink, clock = Collected(), Clock()
    f = follower(log, sink, clock, start_at_end=True)
    f.poll()
    text = line(9)
    with open(log, "w") as fh:
        fh.write(text[:15])  # a copy in the making looks like this too
    f.poll()
    assert f.position().offset == 0
    with open(log, "a") as fh:
        fh.write(text[15:])
    f.poll()
    assert numbers(sink) == [9]


def test_idle_glob_files_are_closed_and_reopened_when_they_grow(tmp_path):
    sink, clock = Collected(), Clock()
    source = glob_source(tmp_path, "*.log", sink, clock)
    for i in range(20):
        write(tmp_path / f"app{i:02d}.log", i)
    source.poll()
    assert sum(f.open_files for f in source.followers.values()) == 20
    clock.now += tailer.IDLE_CLOSE_SECONDS
    source.poll()
    assert sum(f.open_files for f in source.followers.values()) == 0
    write(tmp_path / "app03.log", 103)
    source.poll()
    assert sum(f.open_files for f in source.followers.values()) == 1
    # Rotated while closed: read under its new name, which the glob matches.
    clock.now += tailer.IDLE_CLOSE_SECONDS
    source.poll()
    os.rename(tmp_path / "app05.log", tmp_path / "app05.1.log")
    write(tmp_path / "app05.1.log", 105)
    write(tmp_path / "app05.log", 205)
    source.poll()
    source.poll()
    assert sorted(numbers(sink)) == [103, 105, 205]


def test_copytruncate_over_the_same_copy_again_and_again_counts_each_line_once(tmp_path):
    # cp (and shutil.copyfile) rewrite an existing mail.log.1 in place: the
    # file drained (or followed by a glob) gets the next copy's content.
    for pattern in ("mail.log", "mail.log*"):
        directory = tmp_path / pattern.replace("*", "-glob")
        directory.mkdir()
        log = directory / "mail.log"
        log.touch()
        sink, clock = Collected(), Clock()
        source = glob_source(directory, pattern, sink, clock)
        source.poll()
        n = 0
        for _ in range(4):
            for _ in range(3):
                write(log, n, n + 1)
                n += 2
                source.poll()
            write(log, n)  # not read before the copy
            n += 1
            copytruncate(log, directory / "mail.log.1")
            clock.now += 1
            source.poll()
        for _ in range(4):
            clock.now += 3
            source.poll()
        assert sorted(numbers(sink)) == list(range(n)), pattern


def test_a_file_seen_empty_then_written_and_renamed_before_the_next_poll_is_read(tmp_path):
    log = tmp_path / "mail.log"
    sink, clock = Collected(), Clock()
    f = follower(log, sink, clock, start_at_end=True)
    f.poll()
    log.touch()  # created by the writer: no first line to tell it by yet
    f.poll()
    write(log, 1, 2)
    os.rename(log, tmp_path / "mail.log.1")  # rotated before we looked again
    write(log, 3)
    f.poll()
    clock.now += 3
    f.poll()
    assert sorted(numbers(sink)) == [1, 2, 3]


def test_a_log_starting_like_another_is_read_whole_also_across_a_restart(tmp_path):
    # b.log's first line is a.log's (a reply logged twice): until they differ
    # it cannot be told from a copy, so it waits; a restart meanwhile loses nothing.
    clock = Clock()
    pattern = "*.log"
    source = glob_source(tmp_path, pattern, Collected(), clock)
    source.poll()
    write(tmp_path / "a.log", 1, 2)
    source.poll()
    write(tmp_path / "b.log", 1)
    source.poll()
    saved, draining = source.positions(), source.draining_positions()
    source.close()
    write(tmp_path / "b.log", 3)  # while down: now b.log differs from a.log
    sink = Collected()
    again = glob_source(tmp_path, pattern, sink, clock, saved=saved, saved_draining=draining)
    again.poll()
    again.poll()
    assert sorted(numbers(sink)) == [1, 3]


def fail_once(monkeypatch, name, when=lambda *args: True):
    """The next os.<name> call that `when` picks fails with EIO, as a failing
    disk or an NFS server may make any read fail (a real EIO cannot be made here)."""
    real = getattr(os, name)
    pending = [True]

    def failing(*args):
        if pending and when(*args):
            pending.clear()
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(*args)

    monkeypatch.setattr(tailer.os, name, failing)


def test_a_read_error_looking_for_a_truncation_is_counted_logged_once_and_read_past(tmp_path, monkeypatch, caplog):
    log = tmp_path / "mail.log"
    sink, clock = Collected(), Clock()
    f = follower(log, sink, clock)
    write(log, 1)
    f.poll()
    caplog.set_level(logging.WARNING, logger="exporter.tailer")
    for n in (2, 3):
        write(log, n)
        fail_once(monkeypatch, "pread")  # the poll's first read: are the first bytes still ours?
        f.poll()
    assert f.stats.read_errors == 2
    assert numbers(sink) == [1]
    assert len(caplog.records) == 1  # once for the episode
    f.poll()
    assert numbers(sink) == [1, 2, 3]
    fail_once(monkeypatch, "pread")
    f.poll()
    assert len(caplog.records) == 2  # a new episode is logged again


def test_a_read_error_on_a_file_being_drained_does_not_stop_the_current_one(tmp_path, monkeypatch):
    log, rotated = tmp_path / "mail.log", tmp_path / "mail.log.1"
    sink, clock = Collected(), Clock()
    f = follower(log, sink, clock)
    write(log, 1)
    f.poll()
    os.rename(log, rotated)
    write(log, 2)
    f.poll()
    write(rotated, 3)
    write(log, 4)
    fail_once(monkeypatch, "fstat")  # the poll's first fstat: has the drained file been written anew?
    f.poll()
    assert f.stats.read_errors == 1
    assert 4 in numbers(sink)
    f.poll()
    assert sorted(numbers(sink)) == [1, 2, 3, 4]


def test_a_read_error_telling_a_copy_from_its_original_leaves_no_descriptor_open(tmp_path, monkeypatch):
    log, copy = tmp_path / "mail.log", tmp_path / "mail.log.1"
    write(log, 1, 2)
    sink, clock = Collected(), Clock()
    source = glob_source(tmp_path, "mail.log*", sink, clock, from_beginning=True)
    source.poll()
    shutil.copyfile(log, copy)
    open_fds = len(os.listdir("/proc/self/fd"))
    # Only Ledger.look_up's comparison of the two files reads COPY_CHECK_BYTES.
    fail_once(monkeypatch, "pread", when=lambda fd, size, offset: size == tailer.COPY_CHECK_BYTES)
    source.poll()
    assert source.followers[str(copy)].stats.read_errors == 1
    assert len(os.listdir("/proc/self/fd")) == open_fds
    os.truncate(log, 0)
    write(log, 3)
    for _ in range(3):
        source.poll()
        clock.now += 3
    assert sorted(numbers(sink)) == [1, 2, 3]

"""Each reply counted exactly once, however the files are fed: the real daemon, scraped over HTTP.

One test for each way issue 11 found a reply lost or counted twice, or the
daemon crash-looping: a writer feeds the log as a mail server and logrotate
would, and the replies the daemon counts must equal the replies written
(after start-up) exactly.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from helpers import append_rejects, copytruncate, metric_by, numbered_rejects, replies_by, wait_for
from daemontest import Exporter, settle

pytestmark = pytest.mark.slow  # the daemon runs as a process of its own

RATE = 2000  # lines per second, as the reproductions write


def counted(exporter: Exporter) -> int:
    return sum(replies_by(exporter.scrape(), "direction").values())


def source_total(exporter: Exporter, name: str) -> float:
    """A smtp_exporter_source_* counter summed over the sources."""
    return metric_by(exporter.scrape(), name)[()]


def count_settled(exporter: Exporter, expected: int) -> int:
    """The count once it is expected (a second later: anything counted twice
    shows then), or once it stops changing."""
    return settle(exporter, expected, measure=counted, hold=1)


class PacedWriter:
    """Writes numbered reply lines to a path at RATE lines/s, in 10 ms steps."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.n = 0
        self.f = open(path, "a", buffering=1)
        self.t0 = time.monotonic()

    def run_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            due = int((time.monotonic() - self.t0) * RATE)
            if due > self.n:
                self.f.write(numbered_rejects(self.n, due - self.n))
                self.n = due
            time.sleep(0.01)

    def reopen(self) -> None:
        self.f.close()
        self.f = open(self.path, "a", buffering=1)

    def close(self) -> None:
        self.f.close()


def many_logs(tmp_path: Path, count: int) -> tuple[Path, list[Path], int]:
    """count logs of a line each (present at start-up: not counted): their
    directory, their paths, and the number of the next line."""
    logs = tmp_path / "logs"
    logs.mkdir()
    files = [logs / f"mx{i:04d}.log" for i in range(count)]
    for n, path in enumerate(files):
        append_rejects(path, n, 1)
    return logs, files, count


def test_a_glob_over_300_files_restarted_with_state_counts_each_line_once(tmp_path):
    logs, files, n = many_logs(tmp_path, 300)
    state = tmp_path / "state.json"
    args = ("--state-file", str(state), str(logs / "*.log"))
    first = Exporter(tmp_path, *args)
    assert first.stop() == 0
    for path in files:
        n = append_rejects(path, n, 5)  # written while the exporter is down
    again = Exporter(tmp_path, *args)
    try:
        assert count_settled(again, 1500) == 1500
    finally:
        again.stop()


def storm_counts_every_line_once(tmp_path: Path, exporter_args: Sequence[str], rounds: int, period: float,
                                 rotate: Callable[[PacedWriter, Path], None], last: float = 0) -> None:
    """Write mail.log at RATE lines/s, rotated by rotate every period seconds,
    rounds times, then last seconds more: the exporter counts each line once."""
    log = tmp_path / "mail.log"
    log.touch()
    exporter = Exporter(tmp_path, *exporter_args)
    try:
        writer = PacedWriter(log)
        for _ in range(rounds):
            writer.run_for(period)
            rotate(writer, log)
        writer.run_for(last)
        writer.close()
        assert count_settled(exporter, writer.n) == writer.n
    finally:
        exporter.stop()


@pytest.mark.parametrize("pattern", ["mail.log", "mail.log*"], ids=["single-path", "glob"])
def test_copytruncate_at_2000_lines_per_second_loses_nothing_and_counts_the_copy_once(tmp_path, pattern):
    # Nothing is written between the copy and the truncation here: that
    # window is the one loss copytruncate cannot avoid.
    storm_counts_every_line_once(tmp_path, [str(tmp_path / pattern)], 4, 1.0,
                                 lambda writer, log: copytruncate(log, log.with_name("mail.log.1")), last=0.5)


def test_glob_rename_rotation_while_the_writer_still_writes_to_the_renamed_file(tmp_path):
    def rotate(writer: PacedWriter, log: Path) -> None:
        for k in range(3, 0, -1):
            if (tmp_path / f"mail.log.{k}").exists():
                os.rename(tmp_path / f"mail.log.{k}", tmp_path / f"mail.log.{k + 1}")
        os.rename(log, tmp_path / "mail.log.1")
        writer.run_for(0.5)  # syslog goes on writing to the renamed file until its HUP
        writer.reopen()

    config = grace_config(tmp_path, str(tmp_path / "mail.log*"), 1.0)
    storm_counts_every_line_once(tmp_path, ["--config", str(config)], 4, 0.8, rotate, last=0.3)


def grace_config(tmp_path: Path, path: str, grace: float) -> Path:
    config = tmp_path / "config.yml"
    config.write_text(f"sources: [{{path: '{path}'}}]\nrotation_grace_seconds: {grace}\n")
    return config


def test_a_file_cut_to_a_prefix_of_itself_is_not_read_again(tmp_path):
    log = tmp_path / "mail.log"
    exporter = Exporter(tmp_path, "--from-beginning", str(log))
    try:
        n = append_rejects(log, 0, 20)
        assert count_settled(exporter, 20) == 20
        os.truncate(log, len(numbered_rejects(0, 7)))
        # Lines appended before the cut is noticed would be taken for the rest of the old content.
        assert wait_for(lambda: source_total(exporter, "smtp_exporter_source_truncations_total") == 1)
        append_rejects(log, n, 3)
        assert count_settled(exporter, 23) == 23
        assert source_total(exporter, "smtp_exporter_source_truncations_total") == 1
    finally:
        exporter.stop()


def unable_to_override_file_permissions() -> None:
    """In the child, before exec: a root process loses the capabilities that
    let it read any file, so a file it does not own with mode 0600 is denied."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_a_log_unreadable_at_start_counts_the_lines_written_before_it_became_readable(tmp_path):
    log = tmp_path / "mail.log"
    n = append_rejects(log, 0, 10)  # there at start-up: not counted
    os.chmod(log, 0o600)
    if os.geteuid() == 0:
        os.chown(log, 65534, 65534)  # another user's file
    exporter = Exporter(tmp_path, str(log), preexec_fn=unable_to_override_file_permissions)
    try:
        errors = source_total(exporter, "smtp_exporter_source_read_errors_total")
        n = append_rejects(log, n, 25)
        # Tried again since, and denied again:
        assert wait_for(lambda: source_total(exporter, "smtp_exporter_source_read_errors_total") > errors)
        assert counted(exporter) == 0
        assert "Permission denied" in exporter.errors()
        os.chmod(log, 0o644)
        n = append_rejects(log, n, 5)
        assert count_settled(exporter, 30) == 30
    finally:
        exporter.stop()


def test_a_rename_storm_on_a_busy_single_path_loses_nothing(tmp_path):
    # With --poll, a file created and renamed away between two polls is not
    # seen by a single path (README); inotify sees each one created.
    def rotate(writer: PacedWriter, log: Path) -> None:
        os.rename(log, tmp_path / "mail.log.1")
        writer.reopen()

    storm_counts_every_line_once(tmp_path, [str(tmp_path / "mail.log")], 30, 0.1, rotate)  # a rotation every 100 ms


def test_a_run_of_nuls_longer_than_a_line_does_not_hide_the_line_after_it(tmp_path):
    log = tmp_path / "mail.log"
    with open(log, "wb") as f:
        f.write(numbered_rejects(0, 1).encode() + b"\0" * 100_000 + numbered_rejects(1, 1).encode())
    exporter = Exporter(tmp_path, "--from-beginning", str(log))
    try:
        assert count_settled(exporter, 2) == 2
    finally:
        exporter.stop()


@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "poll"])
def test_a_log_directory_missing_at_start_is_waited_for(tmp_path, poll):
    directory = tmp_path / "later"
    log = directory / "mail.log"
    exporter = Exporter(tmp_path, *(["--poll"] if poll else []), str(log))
    try:
        time.sleep(0.5)
        assert exporter.proc.poll() is None, exporter.errors()
        directory.mkdir()
        append_rejects(log, 0, 7)  # appeared after start-up: read whole
        assert count_settled(exporter, 7) == 7
        errors = exporter.errors()
        assert "Traceback" not in errors, errors
        if not poll:
            assert errors.count("does not exist") == 1, errors
    finally:
        status = exporter.stop()
    assert status == 0


def test_a_glob_over_1100_files_starts_with_the_default_soft_limit_of_1024(tmp_path):
    logs, files, n = many_logs(tmp_path, 1100)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def default_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))

    exporter = Exporter(tmp_path, str(logs / "*.log"), preexec_fn=default_soft_limit)
    try:
        for path in files:
            n = append_rejects(path, n, 1)
        assert count_settled(exporter, 1100) == 1100
        assert exporter.proc.poll() is None
    finally:
        exporter.stop(signal.SIGTERM)

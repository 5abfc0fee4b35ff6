"""The real daemon as a process, scraped over HTTP, while a writer rotates its log.

The writer behaves like syslog under logrotate: it splits lines across
writes, rotates by rename (and goes on writing to the old file for 100 ms),
by copytruncate and by delete. The expected counts are the --once counts of
the same log, which test_corpus checks against the lab's truth.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemontest import Exporter, settle

from helpers import REPO, SHARED, replies_by, run_once, samples

pytestmark = pytest.mark.slow  # the daemon runs as a process of its own

LAB_LOG = SHARED / "corpus" / "postfix-lab" / "postfix.log"
DEMO_LOG = REPO / "exporter" / "demo" / "postfix.log"
SOURCE_LOG = LAB_LOG if LAB_LOG.exists() else DEMO_LOG


def differences(got: dict, expected: dict) -> dict:
    return {k: (got.get(k, 0), expected.get(k, 0)) for k in set(got) | set(expected)
            if got.get(k, 0) != expected.get(k, 0)}


@pytest.fixture(scope="module")
def expected() -> dict:
    result = run_once(str(SOURCE_LOG))
    assert result.returncode == 0
    return dict(replies_by(result.stdout.decode(), "direction", "code", "class", "enhanced", "stage"))


class SyslogLikeWriter:
    """Appends lines in pieces of random size, as a busy syslog would."""

    def __init__(self, path: Path, seed: int = 7) -> None:
        self.path = path
        self.rng = random.Random(seed)
        self.f = open(path, "ab", buffering=0)

    def write_lines(self, lines: list[bytes]) -> None:
        data = b"".join(lines)
        pos = 0
        while pos < len(data):
            n = self.rng.randint(1, 400)  # often cuts a line in two
            self.f.write(data[pos : pos + n])
            pos += n
            if self.rng.random() < 0.05:
                time.sleep(0.002)

    def reopen(self) -> None:
        self.f.close()
        self.f = open(self.path, "ab", buffering=0)

    def close(self) -> None:
        self.f.close()


def test_rotations_lose_nothing_and_count_nothing_twice(tmp_path, expected):
    log = tmp_path / "mail.log"
    log.touch()
    exporter = Exporter(tmp_path, str(log))
    try:
        lines = SOURCE_LOG.read_bytes().splitlines(keepends=True)
        quarter = len(lines) // 4
        writer = SyslogLikeWriter(log)
        writer.write_lines(lines[:quarter])
        # 1. rename rotation; syslog keeps writing to the old file for 100 ms.
        os.rename(log, tmp_path / "mail.log.1")
        end = time.monotonic() + 0.1
        i = quarter
        while time.monotonic() < end and i < 2 * quarter:
            writer.write_lines(lines[i : i + 5])
            i += 5
            time.sleep(0.01)
        writer.reopen()  # a new mail.log
        writer.write_lines(lines[i : 2 * quarter])
        time.sleep(0.5)
        # 2. copytruncate: copy, then truncate under the writer (O_APPEND goes on at the new end).
        shutil.copyfile(log, tmp_path / "mail.log.2")
        os.truncate(log, 0)
        writer.write_lines(lines[2 * quarter : 3 * quarter])
        time.sleep(0.5)
        # 3. delete and recreate.
        os.unlink(log)
        writer.reopen()
        writer.write_lines(lines[3 * quarter :])
        writer.close()
        got = settle(exporter, expected)
        assert got == expected, differences(got, expected)
        assert exporter.stop() == 0
    finally:
        exporter.stop(signal.SIGKILL)


def test_kill_9_and_restart_with_state_file(tmp_path, expected):
    log = tmp_path / "mail.log"
    state = tmp_path / "state.json"
    lines = SOURCE_LOG.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    log.touch()
    first = Exporter(tmp_path, "--state-file", str(state), str(log))
    try:
        writer = SyslogLikeWriter(log, seed=11)
        writer.write_lines(lines[:half])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # let it count some, and save state
            if replies_by(first.scrape(), "direction") and state.exists():
                break
            time.sleep(0.1)
        time.sleep(1.5)
    finally:
        first.stop(signal.SIGKILL)
    # Written while the exporter is down, then the rest after the restart.
    writer.write_lines(lines[half : half + 500])
    second = Exporter(tmp_path, "--state-file", str(state), str(log))
    try:
        writer.write_lines(lines[half + 500 :])
        writer.close()
        got = settle(second, expected)
        assert got == expected, (differences(got, expected), second.errors())
    finally:
        second.stop()


def test_landing_page_and_self_metrics(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("")
    exporter = Exporter(tmp_path, str(log))
    try:
        page = exporter.scrape("/")
        assert "smtp-reply-exporter" in page and 'href="/metrics"' in page
        s = samples(exporter.scrape())
        names = {name for name, _ in s}
        for name in (
            "smtp_exporter_build_info",
            "smtp_exporter_source_rotations_total",
            "smtp_exporter_source_last_read_timestamp_seconds",
            "process_resident_memory_bytes",
        ):
            assert name in names, name
        assert exporter.stop() == 0
    finally:
        exporter.stop(signal.SIGKILL)


def test_sighup_reloads_config_without_losing_counts(tmp_path):
    one, two = tmp_path / "one.log", tmp_path / "two.log"
    one.write_text("")
    two.write_text("")
    config = tmp_path / "config.yml"
    config.write_text(f"sources: [{{path: {one}}}]\n")
    exporter = Exporter(tmp_path, "--config", str(config))
    try:
        line = (
            "Nov  3 17:44:15 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from c[192.0.2.1]: 550 5.1.1 "
            "<u@example.net>: Recipient address rejected: User unknown; from=<> to=<u@example.net> "
            "proto=ESMTP helo=<c>\n"
        )
        with open(one, "a") as f:
            f.write(line)
        want = {("inbound", "550", "5xx", "5.1.1", "rcpt"): 1}
        assert settle(exporter, want) == want
        config.write_text(f"sources: [{{path: {two}}}]\n")
        exporter.proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        with open(two, "a") as f:
            f.write(line)
        want = {("inbound", "550", "5xx", "5.1.1", "rcpt"): 2}
        assert settle(exporter, want) == want
    finally:
        exporter.stop()


def test_broken_config_exits_2_naming_file_and_key(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("sources: [{path: /var/log/mail.log}]\nweb: {listen_adress: ':1'}\n")
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config", str(config), "--check-config"],
        cwd=REPO, capture_output=True,
    )
    assert result.returncode == 2
    assert f"{config}: web.listen_adress: unknown key".encode() in result.stderr


def test_poll_mode_and_globs_follow_new_files(tmp_path):
    # --poll: no inotify (NFS, CIFS); a glob picks up a file created later
    # and reads it from its first byte.
    exporter = Exporter(tmp_path, "--poll", str(tmp_path / "*.log"))
    try:
        lines = SOURCE_LOG.read_bytes().splitlines(keepends=True)[:400]
        (tmp_path / "late.log").write_bytes(b"".join(lines))
        want = dict(replies_by(run_once(str(tmp_path / "late.log")).stdout.decode(),
                               "direction", "code", "class", "enhanced", "stage"))
        assert want, "the sample must hold replies"
        assert settle(exporter, want) == want
    finally:
        exporter.stop()

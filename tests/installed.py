"""Checks shared by the tests of the install paths (wheel, deploy/install.sh,
the Debian package): an installed exporter must count a real log exactly as
this checkout does, in --once and as the daemon scraped over HTTP."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from helpers import REPO, replies_by, run_once
from daemontest import Exporter, settle

DEMO_LOG = REPO / "exporter" / "demo" / "postfix.log"
REPLY_LABELS = ("direction", "code", "class", "enhanced", "stage")


def real_log(directory: Path) -> Path:
    """A copy of the bundled demo log (a real Postfix log from the lab) where
    an installed exporter may read it."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "mail.log"
    shutil.copy(DEMO_LOG, log)
    log.chmod(0o644)
    return log


def checkout_counts(log: Path) -> dict:
    result = run_once(str(log))
    assert result.returncode == 0, result.stderr
    counted = dict(replies_by(result.stdout.decode(), *REPLY_LABELS))
    assert sum(counted.values()) > 100, "the log holds too few replies to compare anything"
    return counted


def assert_counts_like_checkout(command: Sequence[str], tmp: Path, log: Path, *daemon_args: str) -> None:
    """`command` (an installed smtp-reply-exporter) counts `log` as this
    checkout's --once does: with --once, and as a daemon given daemon_args
    (a config, a state file, ...) that reads it from the beginning."""
    expected = checkout_counts(log)
    once = subprocess.run([*command, "--once", str(log)], capture_output=True, check=False, timeout=120)
    assert once.returncode == 0, once.stderr.decode()
    assert dict(replies_by(once.stdout.decode(), *REPLY_LABELS)) == expected

    exporter = Exporter(tmp, "--from-beginning", *daemon_args, command=command)
    try:
        assert settle(exporter, expected) == expected
    finally:
        exporter.stop()

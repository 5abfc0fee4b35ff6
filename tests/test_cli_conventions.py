"""The command-line conventions of Prometheus' own programs: --log.level and
--log.format as promslog has them, --web.systemd-socket (socket activation,
tried with a socket this test passes as systemd would), and the
--config.file and --config.check names."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest
from daemontest import Exporter

from exporter.logformat import PromslogFormatter
from helpers import REPO
from mta.namespace import free_port

LOGFMT_LINE = re.compile(r'time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(DEBUG|INFO|WARN|ERROR) '
                         r'source=[\w.]+\.py:\d+ msg=("(?:[^"\\]|\\.)*"|\S+)( err=.*)?')


def exporter(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exporter", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=30, check=False, env=env)


def _record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("test", level, "/somewhere/cli.py", 42, message, (), None)


@pytest.mark.parametrize(("message", "shown"), [
    ("stopped", "msg=stopped"),
    ("following /var/log/mail.log", 'msg="following /var/log/mail.log"'),
    ('a "quoted" = sign', 'msg="a \\"quoted\\" = sign"'),
    ("two\nlines", 'msg="two\\nlines"'),
    ("", 'msg=""'),
])
def test_logfmt_quotes_what_needs_it(message, shown):
    line = PromslogFormatter("logfmt").format(_record(message))
    assert LOGFMT_LINE.fullmatch(line), line
    assert line.endswith(f" level=INFO source=cli.py:42 {shown}")


def test_json_lines_have_promslogs_keys():
    line = PromslogFormatter("json").format(_record("cannot save", logging.WARNING))
    fields = json.loads(line)
    assert list(fields) == ["time", "level", "source", "msg"]
    assert (fields["level"], fields["source"], fields["msg"]) == ("WARN", "cli.py:42", "cannot save")


@pytest.mark.slow  # the daemon runs as a process of its own
@pytest.mark.parametrize("log_format", ["logfmt", "json"])
def test_the_daemon_logs_in_the_format_asked(tmp_path, log_format):
    log = tmp_path / "mail.log"
    log.touch()
    args = () if log_format == "logfmt" else ("--log.format", "json")  # logfmt by default
    daemon = Exporter(tmp_path, *args, "--log.level", "debug", str(log))
    assert daemon.stop() == 0
    lines = daemon.errors().splitlines()
    assert len(lines) >= 3, lines  # the start, a request (debug) and the stop
    if log_format == "logfmt":
        assert all(LOGFMT_LINE.fullmatch(line) for line in lines), lines
    else:
        records = [json.loads(line) for line in lines]
        assert all(list(r) == ["time", "level", "source", "msg"] for r in records), records
        assert {r["level"] for r in records} >= {"DEBUG", "INFO"}


@pytest.mark.parametrize("level", ["warn", "warning"])
def test_log_level_warn_and_its_old_name(tmp_path, level):
    result = exporter("--log.level", level, "--config.check", str(tmp_path / "mail.log"))
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_systemd_socket_activation(tmp_path):
    log = tmp_path / "mail.log"
    log.touch()
    listener = socket.create_server(("127.0.0.1", 0))
    port, fd = listener.getsockname()[1], listener.fileno()
    # As systemd does: the socket as file descriptor 3, LISTEN_PID the
    # exporter's own (this wrapper's, which exec keeps).
    wrapper = [sys.executable, "-c", f"import os, sys; os.dup2({fd}, 3); os.close({fd}); "
               "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1'); os.execv(sys.argv[1], sys.argv[1:])"]
    try:
        daemon = Exporter(tmp_path, "--web.systemd-socket", str(log), port=port, wrapper=wrapper, pass_fds=(fd,))
    finally:
        listener.close()  # the exporter has its own
    try:
        assert "smtp_exporter_build_info" in daemon.scrape()
        assert daemon.fetch("/metrics", method="HEAD").status == 200
        assert f"metrics on 127.0.0.1:{port}/metrics" in daemon.errors()
        assert daemon.stop() == 0
    finally:
        daemon.stop(signal.SIGKILL)


@pytest.mark.e2e
@pytest.mark.slow
def test_systemd_socket_activate_starts_it(tmp_path):
    # systemd's own tool for trying socket activation: it listens, and runs
    # the exporter with the socket when the first connection comes.
    tool = shutil.which("systemd-socket-activate")
    if tool is None:
        pytest.skip("needs systemd-socket-activate (the systemd package)")
    log = tmp_path / "mail.log"
    log.touch()
    port = free_port()
    daemon = Exporter(tmp_path, "--web.systemd-socket", str(log), port=port,
                      wrapper=[tool, "--listen", f"127.0.0.1:{port}"])
    try:
        assert "smtp_exporter_build_info" in daemon.scrape()
        assert daemon.stop() == 0
    finally:
        daemon.stop(signal.SIGKILL)


@pytest.mark.parametrize(("environment", "problem"), [
    ({}, "no sockets were passed (LISTEN_FDS and LISTEN_PID are not set)"),
    ({"LISTEN_PID": "1", "LISTEN_FDS": "1"}, "the sockets were passed to process 1, not to this one"),
])
def test_systemd_socket_without_sockets_says_why(tmp_path, environment, problem):
    env = {key: value for key, value in os.environ.items() if not key.startswith("LISTEN_")}
    result = exporter("--web.systemd-socket", str(tmp_path / "mail.log"), env={**env, **environment})
    assert result.returncode == 1
    assert f"smtp-reply-exporter: cannot listen: --web.systemd-socket: {problem}" in result.stderr

"""--check-config checks what the daemon's start checks, and names every
problem at once: the real CLI on real files, the start run beside it."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from helpers import REPO


def exporter(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exporter", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=30, check=False)


def problems(result: subprocess.CompletedProcess) -> list[str]:
    prefix = "smtp-reply-exporter: configuration error: "
    return [line.removeprefix(prefix) for line in result.stderr.splitlines() if line.startswith(prefix)]


@pytest.mark.parametrize(("address", "fix"), [
    ("::1:9000", "write an IPv6 address in brackets, e.g. [::1]:9000"),
    ("localhost", "expected host:port"),
    (":70000", "a port of 0-65535"),
])
def test_a_listen_address_the_server_cannot_use_fails_the_check_and_the_start(tmp_path, address, fix):
    log = str(tmp_path / "mail.log")
    checked = exporter("--check-config", "--web.listen-address", address, log)
    started = exporter("--web.listen-address", address, log)
    assert checked.returncode == started.returncode == 2, (checked.stderr, started.stderr)
    assert problems(checked) == problems(started)
    assert len(problems(checked)) == 1
    assert problems(checked)[0].startswith(f"(command line): --web.listen-address: got {address!r}; ")
    assert fix in problems(checked)[0]
    assert "cannot listen" not in started.stderr


def test_the_check_loads_the_web_config_and_its_certificates(tmp_path):
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    log = str(tmp_path / "mail.log")
    checked = exporter("--check-config", "--web.config.file", str(web), log)
    started = exporter("--web.config.file", str(web), "--web.listen-address", "127.0.0.1:0", log)
    assert checked.returncode == started.returncode == 2, (checked.stderr, started.stderr)
    assert problems(checked) == problems(started)
    assert problems(checked) == [
        (f"{web}: tls_server_config.{key}: cannot read {tmp_path / name}: No such file or directory "
         "(relative paths are read from the config file's directory); fix the path or the file's permissions")
        for key, name in (("cert_file", "server.crt"), ("key_file", "server.key"))
    ]


def test_a_certificate_that_is_not_one_fails_the_check(tmp_path, pki):
    shutil.copy(pki / "server.key", tmp_path)
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n")
    result = exporter("--check-config", "--web.config.file", str(web), str(tmp_path / "mail.log"))
    assert result.returncode == 2
    assert [problem.split(": ")[1] for problem in problems(result)] == ["tls_server_config.cert_file"]
    assert "must be PEM" in result.stderr


def test_every_problem_of_config_file_flags_web_config_and_state_file_is_named(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text(
        "sources: [{path: /var/log/mail.log, format: qmail}]\n"
        f"web: {{config_file: {tmp_path / 'web.yml'}, listen_addresses: ['::1:9000']}}\n"
        f"state_file: {tmp_path / 'missing' / 'state.json'}\n"
        "poll: true\npoll: false\n"
    )
    (tmp_path / "web.yml").write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "basic_auth_users:\n  alice: hunter2\n"
        "rate_limt: {interval: 1s}\n"
    )
    result = exporter("--check-config", "--config", str(config), "--web.telemetry-path", "metrics")
    assert result.returncode == 2
    assert [problem.split(": ")[:2] for problem in problems(result)] == [
        [str(config), "poll"],  # given twice: found as the file is read, before its values
        [str(config), "web.listen_addresses[0]"],
        [str(config), "sources[0].format"],
        ["(command line)", "--web.telemetry-path"],
        [str(tmp_path / "web.yml"), "rate_limt"],
        [str(tmp_path / "web.yml"), "tls_server_config.cert_file"],
        [str(tmp_path / "web.yml"), "tls_server_config.key_file"],
        [str(tmp_path / "web.yml"), "basic_auth_users.alice"],
        [str(config), "state_file"],
    ]
    assert "hunter2" not in result.stderr
    assert "configuration OK" not in result.stdout


def test_a_state_file_flag_is_named_as_the_flag(tmp_path):
    result = exporter("--check-config", "--state-file", str(tmp_path / "missing" / "state.json"),
                      str(tmp_path / "mail.log"))
    assert result.returncode == 2
    assert problems(result) == [
        (f"(command line): --state-file: directory {tmp_path / 'missing'} does not exist; "
         "create it (writable by this user) first"),
    ]


def test_a_good_setup_passes(tmp_path, pki):
    for name in ("server.crt", "server.key"):
        shutil.copy(pki / name, tmp_path)
    (tmp_path / "web.yml").write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    config = tmp_path / "config.yml"
    config.write_text(
        f"sources: [{{path: {tmp_path / 'mail.log'}}}, {{path: {tmp_path / 'other.log'}, format: exim}}]\n"
        f"web: {{config_file: {tmp_path / 'web.yml'}, listen_addresses: ['[::1]:9000', ':10925']}}\n"
        f"state_file: {tmp_path / 'state.json'}\n"
    )
    result = exporter("--check-config", "--config", str(config))
    assert (result.returncode, result.stdout, result.stderr) == (0, "configuration OK: 2 source(s)\n", "")


def test_once_does_not_need_the_web_config(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("")
    result = exporter("--once", "--web.config.file", str(tmp_path / "absent.yml"), str(log))
    assert result.returncode == 0, result.stderr



def test_config_file_and_check_have_prometheus_names_and_keep_the_old_ones(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text(f"sources: [{{path: {tmp_path / 'mail.log'}}}]\n")
    named = exporter("--config.check", "--config.file", str(config))
    old = exporter("--check-config", "--config", str(config))
    assert (named.returncode, named.stdout) == (old.returncode, old.stdout) == (0, "configuration OK: 1 source(s)\n")
    usage = exporter("--help").stdout
    assert "--config.file FILE, --config FILE" in usage
    assert "--config.check, --check-config" in usage

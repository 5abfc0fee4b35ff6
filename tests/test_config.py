"""Config loading: the shipped example loads; every error names file, key and fix."""

from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "smtp-reply-exporter.example.yml"


def test_shipped_example_loads():
    settings = load_config(str(EXAMPLE))
    assert settings.sources[0].path == "/var/log/mail.log"
    assert settings.listen_addresses == ["127.0.0.1:10925"]
    assert settings.state_file == "/var/lib/smtp-reply-exporter/state.json"


def test_empty_file_gives_defaults(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text("")
    assert load_config(str(f)).telemetry_path == "/metrics"


@pytest.mark.parametrize(
    "text,key,fix",
    [
        ("sources: [{path: /x}]\nsorces: []\n", "sorces", "known keys are"),
        ("sources: /var/log/mail.log\n", "sources", "non-empty list"),
        ("sources: [{path: /x, journal: {units: [a]}}]\n", "sources[0]", "exactly one"),
        ("sources: [{journal: {units: []}}]\n", "sources[0].journal.units", "list of systemd unit"),
        ("sources: [{path: /x, format: qmail}]\n", "sources.format", "one of: auto, postfix, exim"),
        ("sources: [{path: /x, colour: red}]\n", "sources[0].colour", "unknown key"),
        ("from_beginning: yes please\n", "from_beginning", "true or false"),
        ("poll_interval_seconds: true\n", "poll_interval_seconds", "number of seconds"),
        ("max_line_bytes: 10\n", "max_line_bytes", "at least 1024"),
        ("web: {listen_addresses: [localhost]}\n", "web.listen_addresses", "host:port"),
        ("web: {telemetry_path: metrics}\n", "web.telemetry_path", "/metrics"),
        ("web: {port: 1}\n", "web.port", "known keys"),
        ("sources: [{path: /x}\n", "(file)", "not valid YAML at line"),
        ("- a\n- b\n", "(top level)", "mapping"),
    ],
)
def test_errors_name_file_key_and_fix(tmp_path, text, key, fix):
    f = tmp_path / "bad.yml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(str(f))
    message = str(info.value)
    assert message.startswith(f"{f}: {key}: "), message
    assert fix in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read it"):
        load_config(str(tmp_path / "nope.yml"))

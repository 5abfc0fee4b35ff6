"""Config loading: the shipped example loads; every error names file, key and fix."""

from pathlib import Path

import pytest

from exporter.config import load_config
from exporter.configcheck import ConfigError

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
        ("sources: [{path: /x}]\nsorces: []\n", "sorces", "unknown key (did you mean 'sources'?); the known keys are"),
        ("sources: /var/log/mail.log\n", "sources", "must be a list such as [{path: /var/log/mail.log}]"),
        ("sources: []\n", "sources", "is empty; give at least one"),
        ("sources: [{path: /x, journal: {units: [a]}}]\n", "sources[0]", "exactly one"),
        ("sources: [{journal: {units: []}}]\n", "sources[0].journal.units", "list of systemd unit"),
        ("sources: [{path: /x, format: qmail}]\n", "sources[0].format", "one of: auto, postfix, exim"),
        ("sources: [{path: /x, colour: red}]\n", "sources[0].colour", "unknown key; the known keys are: path, journal"),
        ("sources: [{path: /x, service: 'mx in'}]\n", "sources[0].service", "letters, digits and _ . / -"),
        ("sources: [{path: /x, service: other}]\n", "sources[0].service", "not 'other'"),
        ("sources: [{path: /x, service: [mx]}]\n", "sources[0].service", "a service name, e.g. submission"),
        ("from_beginning: yes please\n", "from_beginning", "true or false"),
        ("poll_interval_seconds: true\n", "poll_interval_seconds", "number of seconds"),
        ("max_line_bytes: 10\n", "max_line_bytes", "got 10; must be a whole number of bytes >= 1024"),
        ("poll_interval_seconds: .inf\n", "poll_interval_seconds", "seconds > 0"),
        ("rotation_grace_seconds: .nan\n", "rotation_grace_seconds", "seconds >= 0"),
        ("sources: [{path: ''}]\n", "sources[0].path", "is empty"),
        ("web: {listen_addresses: [localhost]}\n", "web.listen_addresses[0]", "host:port"),
        ("web: {listen_addresses: ['127.0.0.1:1', '::1:9000']}\n", "web.listen_addresses[1]", "[::1]:9000"),
        ("web: {listen_addresses: []}\n", "web.listen_addresses", "is empty"),
        ("web: {telemetry_path: metrics}\n", "web.telemetry_path", "/metrics"),
        ("web: {telemetry_path: /}\n", "web.telemetry_path", "other than /"),
        ("web: {port: 1}\n", "web.port", "known keys are: listen_addresses"),
        ("sources: [{path: /x}\n", "(file)", "not valid YAML at line"),
        ("- a\n- b\n", "(top level)", "mapping"),
        ("max_reply_series: 5\n", "max_reply_series", "label sets >= 100"),
        ("poll: true\npoll: false\n", "poll", "is given twice (lines 1 and 2)"),
        ("sources:\n  - path: /a\n    path: /b\n", "sources[0].path", "given twice"),
        ("formats: {name: x}\n", "formats", "must be a list"),
        ("formats: [{name: haraka}]\n", "formats[0].match", "named groups code"),
        ("formats: [{name: haraka, match: 'code=(?P<code>\\d{3}'}]\n", "formats[0].match", "fix the pattern"),
        ("formats: [{name: haraka, match: 'code=(\\d{3})'}]\n", "formats[0].match", "(?P<code>"),
        ("formats: [{name: haraka, match: '(?P<code>\\d{3}) (?P<who>\\w+)'}]\n", "formats[0].match",
         "unknown group 'who'"),
        ("formats: [{name: postfix, match: '(?P<code>\\d{3})'}]\n", "formats[0].name", "already a format"),
        ("formats: [{name: q, match: '(?P<code>\\d{3})', direction: in}]\n", "formats[0].direction",
         "inbound or outbound"),
        ("formats: [{name: q, match: '(?P<code>\\d{3})', stage: RCPT}]\n", "formats[0].stage", "one of connect"),
        ("formats: [{name: q, match: '(?P<code>\\d{3})', contains: [\"\"]}]\n", "formats[0].contains", "non-empty"),
        ("formats: [{name: q, match: '(?P<code>\\d{3})', colour: red}]\n", "formats[0].colour", "unknown key"),
        ("providers: [google]\n", "providers", "mapping of provider name"),
        ("reasons: {reason: policy}\n", "reasons", "must be a list such as"),
        ("reasons: [{reason: sad, code: '550'}]\n", "reasons[0].reason", "user_unknown"),
        ("reasons: [{reason: policy, text: '(unclosed'}]\n", "reasons[0].text", "fix"),
        ("providers: {Google: [example.com]}\n", "providers.Google", "lowercase"),
        ("providers: {other: [example.com]}\n", "providers.other", "not 'other'"),
        ("providers: {acme: []}\n", "providers.acme", "list of domain suffixes"),
        ("providers: {acme: ['not a domain']}\n", "providers.acme[0]", "not a domain suffix"),
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


def test_a_source_may_name_its_service(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text("sources:\n  - {path: /var/log/mail.log}\n  - {path: /var/log/submission.log, service: submission}\n")
    assert [s.service for s in load_config(str(f)).sources] == [None, "submission"]


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read it"):
        load_config(str(tmp_path / "nope.yml"))


def test_custom_format_and_provider_tables_load(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text(
        "sources: [{path: /var/log/haraka.log, format: haraka}]\n"
        "formats:\n"
        "  - name: haraka\n"
        "    match: 'outbound.*code=(?P<code>\\d{3}) (?P<enhanced>\\d\\.\\d+\\.\\d+)? host=(?P<host>\\S+)'\n"
        "    contains: ['code=']\n"
        "    direction: outbound\n"
        "providers:\n"
        "  acme: [mx.acme.example]\n"
    )
    settings = load_config(str(f))
    assert "haraka" in settings.formats and "postfix" in settings.formats
    assert settings.providers.provider_of("in1.mx.acme.example") == "acme"
    assert settings.providers.provider_of("gmail-smtp-in.l.google.com") == "google"  # bundled kept


def test_exim_rejectlog_is_dropped_only_beside_a_mainlog():
    from exporter.config import SourceConfig, repeated_rejectlogs

    main, reject = SourceConfig(path="/var/log/exim4/mainlog"), SourceConfig(path="/var/log/exim4/rejectlog")
    assert repeated_rejectlogs([main, reject]) == [reject]
    assert repeated_rejectlogs([reject]) == []  # alone, it is the only record of the rejections
    assert repeated_rejectlogs([main, SourceConfig(journal_units=["exim4.service"])]) == []


def test_commented_examples_of_the_shipped_config_load(tmp_path):
    """The formats:, providers: and reasons: examples, uncommented, are valid."""
    import re

    text = EXAMPLE.read_text()
    head, examples = text.split("\n# formats:", 1)
    uncommented = head + re.sub(r"(?m)^# ((?:formats|providers|reasons):|  )", r"\1", "\n# formats:" + examples)
    assert uncommented.count("\nformats:") == uncommented.count("\nproviders:") == 1
    f = tmp_path / "c.yml"
    f.write_text(uncommented)
    settings = load_config(str(f))
    assert "qmail-send" in settings.formats
    assert settings.providers.provider_of("in.mx.partner.example") == "hosting_partner"
    assert settings.reasons.reason("550", "5.7.1", "you are listed at bl.partner.example") == "blocklisted"
    reply = settings.formats["qmail-send"].parse(
        "@400000006543 delivery 42: deferral: mx.example.com said: 451 4.7.1 Greylisted, try later"
    )
    assert [(r.code, r.enhanced, r.direction, r.host) for r in reply] == [
        ("451", "4.7.1", "outbound", "mx.example.com")]


def test_state_file_directory_must_exist_and_be_writable(tmp_path):
    from exporter.config import check_state_file
    from exporter.configcheck import Checker

    checker = Checker("c.yml")
    check_state_file(checker, "state_file", str(tmp_path / "state.json"))
    with pytest.raises(ConfigError, match=r"^c\.yml: state_file: directory .*/missing does not exist"):
        check_state_file(checker, "state_file", str(tmp_path / "missing" / "state.json"))


def test_every_problem_in_the_file_is_named(tmp_path):
    f = tmp_path / "bad.yml"
    f.write_text(
        "sources: [{path: /x, format: qmail}]\n"
        "web: {listen_addresses: ['::1:9000'], telemetry_path: metrics}\n"
        "poll: 1\n"
        "colour: red\n"
        "reasons: [{reason: sad, code: '550'}]\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(str(f))
    assert [(e.file, e.key) for e in info.value.every] == [
        (str(f), "colour"),
        (str(f), "web.listen_addresses[0]"),
        (str(f), "web.telemetry_path"),
        (str(f), "poll"),
        (str(f), "reasons[0].reason"),
        (str(f), "sources[0].format"),
    ]
    assert str(info.value).splitlines() == [f"{e.file}: {e.key}: {e.problem}" for e in info.value.every]

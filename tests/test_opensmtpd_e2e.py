"""End to end with a real OpenSMTPD 6.8 (Debian 12's opensmtpd): the scripted
peer answers its relaying, smtplib clients provoke its filter, match-rule and
built-in rejections, and `python3 -m exporter --once` over its syslog log must
count, key by key, exactly the replies that crossed the wire, and the
delivery attempts by status. How OpenSMTPD writes those replies down (and so
the stages the log can give) is described in tests/mta/opensmtpd_lab.py.

The lab (tests/mta/opensmtpd_lab.py) runs once per module, in about 20 s
(OpenSMTPD gives up on refused routes after some seconds). It needs root:
smtpd runs inside a private mount namespace whose /etc overlay adds the users
`opensmtpd` and `opensmtpq` that Debian's binary drops privileges to; the
host's /etc is not changed. It downloads the opensmtpd package with apt-get
on first use and skips when that fails for lack of network.
"""

from __future__ import annotations

import pytest
from helpers import run_once
from mta import opensmtpd_lab
from mta.checks import AgainstTheWire, Wire, lab_fixture, skip_if, unrecognized
from mta.namespace import syslog_tag

pytestmark = [pytest.mark.e2e, *skip_if(opensmtpd_lab.unavailable())]
lab = lab_fixture(opensmtpd_lab.run, "opensmtpd-e2e")


@pytest.fixture(scope="module", params=["auto", "opensmtpd", "foreground"])
def wire(lab, request) -> Wire:
    """The syslog log, its format detected or named; or its messages as
    `smtpd -d` writes them (no tag: under the format's name), detected."""
    log, expected = (lab.foreground_log, lab.foreground) if request.param == "foreground" else (lab.log, lab.expected)
    options = ("--format", "opensmtpd") if request.param == "opensmtpd" else ()
    return Wire((log,), expected.replies, expected.deliveries, options, tls=expected.tls)


class TestAgainstTheWire(AgainstTheWire):
    pass


def test_no_line_of_the_log_is_left_unrecognized(lab):
    result = run_once(str(lab.log))
    assert result.returncode == 0, result.stderr
    assert unrecognized(result.stdout.decode()) == 0


def test_lab_covers_every_stage_and_class(lab):
    """Guards the lab itself: a filter or peer script that stops working must
    not quietly shrink what the comparison covers."""
    keys = lab.expected.replies
    outbound = {k[4] for k in keys if k[0] == "outbound"}
    inbound = {k[4] for k in keys if k[0] == "inbound"}
    assert outbound == {"connect", "helo", "starttls", "unknown", "end_of_data"}
    assert inbound >= {"connect", "helo", "starttls", "auth", "mail", "rcpt", "data", "other", "unknown"}
    assert {k[2] for k in keys} == {"2xx", "4xx", "5xx"}
    assert any(k[0] == "inbound" and k[1] and not k[3] for k in keys)  # "550 Invalid recipient"
    assert {status for status, _ in lab.expected.deliveries} == {"sent", "deferred", "bounced"}
    log = lab.log.read_text()
    # Each shape the parser reads is in the real log.
    for shape in (" mta delivery evpid=", ' result="Ok" stat="250 ', ' result="TempFail" stat="4',
                  ' result="PermFail" stat="5', 'stat="550-5.7.1 ', "mta error reason=BANNER rejected: ",
                  "mta error reason=HELO rejected: ", "mta error reason=STARTTLS rejected: ",
                  'stat="Network error on destination MXs"', "mta error reason=IO Error: Connection refused",
                  'smtp failed-command command="" result="', 'smtp failed-command command="DATA" result="',
                  "smtp bad-input result=", " mta tls ciphers=TLSv1.", ' mta server-cert-check result="failure"'):
        assert shape in log, shape
    # Every line is smtpd's, read by pattern: the day in the stamp may be padded ("Dec  6").
    assert {syslog_tag(line) for line in log.splitlines()} == {opensmtpd_lab.SYSLOG_TAG}

"""The queue probe against a real OpenSMTPD: deferred mail (a relay that
refuses connections), one message of two envelopes, and a paused message
(smtpctl pause envelope), each gauge key by key."""

from __future__ import annotations

import subprocess
import time

import pytest
from mta import opensmtpd_lab
from mta.checks import skip_if
from mta.debian import PackagesUnavailable
from mta.namespace import free_port
from mta.opensmtpd_lab import OpenSmtpdLab
from mta.queue_checks import probed

pytestmark = [pytest.mark.e2e, *skip_if(opensmtpd_lab.unavailable())]

DEAD = "dead.test"  # routed to a held port where nothing listens: every delivery is deferred
MESSAGES = [[f"a1@{DEAD}", f"a2@{DEAD}"], [f"b@{DEAD}"], [f"c@{DEAD}"]]  # the last one gets paused


def smtpctl(lab: OpenSmtpdLab, *args: str) -> str:
    result = subprocess.run(lab.smtpctl(*args), capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def lab():
    try:
        with OpenSmtpdLab("smtp-reply-queue-opensmtpd", {DEAD: ("smtp+notls", free_port())}) as lab:
            lab.first_submitted = time.time()
            for n, recipients in enumerate(MESSAGES):
                lab.submit(recipients, f"Subject: queued {n}\n\nqueued mail\n")
            lab.last_submitted = time.time()
            lab.wait_outcomes([r for recipients in MESSAGES for r in recipients])
            paused = next(line.split("|")[0][:8] for line in smtpctl(lab, "show", "queue").splitlines()
                          if f"|c@{DEAD}|" in line)
            assert smtpctl(lab, "pause", "envelope", paused).startswith("1 envelope paused")
            yield lab
    except PackagesUnavailable as err:
        pytest.skip(str(err))


def test_gauges_are_what_the_queue_holds(lab):
    got = probed("opensmtpd", lab.smtpctl("show", "queue"))
    assert got.success == 1
    # Four envelopes, three messages: two waiting for their next try, one paused.
    assert len(smtpctl(lab, "show", "queue").splitlines()) == 4
    assert got.messages == {"inflight": 0, "pending": 2, "suspended": 1}
    assert got.size_bytes == {}  # smtpctl gives no sizes: no series rather than a wrong 0
    assert got.oldest_age["inflight"] == 0
    for queue in ("pending", "suspended"):  # creation times are whole seconds
        assert got.at - lab.last_submitted - 1 <= got.oldest_age[queue] <= got.at - lab.first_submitted + 1

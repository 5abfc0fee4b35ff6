"""The queue probe against a real Exim: deferred mail (a relay that refuses
connections) and a frozen message (exim -Mf), each gauge key by key; and
exim -bp as an unprivileged user with no new privileges, as the shipped
systemd unit runs it."""

from __future__ import annotations

import re

import pytest
from mta import exim_lab
from mta.checks import skip_if
from mta.debian import PackagesUnavailable
from mta.exim_lab import EximLab
from mta.namespace import free_port, wait_settled
from mta.queue_checks import probed

pytestmark = [pytest.mark.e2e, *skip_if(exim_lab.unavailable())]

DEAD = "dead.test"  # routed to a held port where nothing listens: every delivery is deferred
BODY = "Subject: queued {n}\n\n" + "queued mail, line of text\n" * 30  # under 1K: exim -bp shows exact bytes
QUEUED = 4
UNPRIVILEGED = ("setpriv", "--reuid", "nobody", "--regid", "nogroup", "--no-new-privs")


@pytest.fixture(scope="module")
def lab():
    try:
        with EximLab("smtp-reply-queue-exim", {DEAD: ("smtp", free_port())}) as lab:
            for n in range(QUEUED):
                lab.submit([f"user{n}@{DEAD}"], BODY.format(n=n))
            wait_settled(lambda: lab.mainlog.stat().st_size, lambda: lab.log_text().count(" == ") == QUEUED,
                         lambda: f"not every message deferred:\n{lab.log_text()}", 30, 0.3)
            lab.frozen = lab.queued_ids()[0]
            lab.run("-Mf", lab.frozen)
            yield lab
    except PackagesUnavailable as err:
        pytest.skip(str(err))


def test_gauges_are_what_the_queue_holds(lab):
    got = probed("exim", lab.command("-bp"))
    assert got.success == 1
    ids = lab.queued_ids()
    assert len(ids) == QUEUED and int(lab.run("-bpc")) == QUEUED
    assert got.messages == {"queue": QUEUED - 1, "frozen": 1}
    # Sizes as Exim logged them on arrival (S=): under 1K, exim -bp prints them exactly.
    logged = dict(re.findall(r" (\S+) <= .* S=(\d+)", lab.log_text()))
    assert got.size_bytes == {"queue": sum(int(logged[i]) for i in ids if i != lab.frozen),
                              "frozen": int(logged[lab.frozen])}
    assert all(int(logged[i]) > len(BODY) for i in ids)  # Exim added its headers
    # Seconds old: exim -bp says 0m, so 0 to the minute it counts in.
    assert got.oldest_age == {"queue": 0, "frozen": 0}


def test_unprivileged_user_needs_the_exim_group(lab, caplog):
    # The spool is Debian-exim 0750, and queue_list_requires_admin: the
    # listing is for root, the Exim user and the members of its group.
    denied = probed("exim", lab.command("-bp", wrapper=(*UNPRIVILEGED, "--clear-groups")))
    assert denied.success == 0 and "exim: permission denied" in caplog.text
    allowed = probed("exim", lab.command("-bp", wrapper=(*UNPRIVILEGED, "--groups", str(lab.uid))))
    assert allowed.success == 1 and allowed.messages == {"queue": QUEUED - 1, "frozen": 1}

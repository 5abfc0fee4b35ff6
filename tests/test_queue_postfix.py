"""The queue probe against a real Postfix: deferred mail (a relay that refuses
connections), a held message (postsuper -h), each gauge key by key; and
postqueue -j as an unprivileged user with no new privileges, as the shipped
systemd unit runs it."""

from __future__ import annotations

import time

import pytest
from mta import postfix_lab
from mta.checks import skip_if
from mta.namespace import free_port
from mta.postfix_lab import PostfixLab
from mta.queue_checks import probed

pytestmark = [pytest.mark.e2e, *skip_if(postfix_lab.unavailable())]

DEAD = "dead.test"  # routed to a held port where nothing listens: every delivery is deferred
BODY = "Subject: queued {n}\n\n" + "queued mail, line of text\n" * 40
DEFERRED, HELD = 3, 1
# The shipped unit's user has no supplementary group but those the unit
# names; NoNewPrivileges keeps postqueue's setgid postdrop from applying.
UNPRIVILEGED = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--no-new-privs"]


@pytest.fixture(scope="module")
def lab():
    with PostfixLab("smtp-reply-queue", routes={DEAD: f"smtp:[127.0.0.1]:{free_port()}"}) as lab:
        submitted = []
        for n in range(DEFERRED + HELD):
            before = time.time()
            lab.sendmail([f"user{n}@{DEAD}"], BODY.format(n=n))
            submitted.append((before, time.time()))
        queue = lab.wait_idle()
        assert [m["queue_name"] for m in queue] == ["deferred"] * (DEFERRED + HELD), queue
        lab.hold(queue[0]["queue_id"])
        lab.submitted = submitted
        yield lab


def test_gauges_are_what_the_queue_holds(lab):
    got = probed("postfix", lab.queue_command())
    truth = lab.queue_state()  # postqueue -j read whole, apart from the probe's reader
    assert got.success == 1
    assert got.messages == {"incoming": 0, "active": 0, "deferred": DEFERRED, "hold": HELD, "maildrop": 0}
    by_queue = {q: [m for m in truth if m["queue_name"] == q] for q in got.messages}
    assert got.size_bytes == {q: sum(m["message_size"] for m in ms) for q, ms in by_queue.items()}
    # Postfix adds its headers: each message is bigger than the body the test sent.
    assert got.size_bytes["deferred"] > DEFERRED * len(BODY)
    for queue, messages in by_queue.items():
        oldest = min((m["arrival_time"] for m in messages), default=None)
        assert got.oldest_age[queue] == (0 if oldest is None else got.at - oldest)
    # Each arrival lies within the seconds its submission took.
    first_submitted, last_submitted = lab.submitted[0][0], lab.submitted[-1][1]
    assert got.at - last_submitted - 1 <= got.oldest_age["deferred"] <= got.at - first_submitted + 1


def test_unprivileged_user_needs_the_postdrop_group(lab, caplog):
    # public/ (the showq socket's directory) is postfix:postdrop 0710.
    denied = probed("postfix", [*UNPRIVILEGED, "--clear-groups", *lab.queue_command()])
    assert denied.success == 0 and denied.messages == {}
    assert "Connect to the Postfix showq service: Permission denied" in caplog.text
    allowed = probed("postfix", [*UNPRIVILEGED, "--groups", "postdrop", *lab.queue_command()])
    assert allowed.success == 1
    assert allowed.messages == probed("postfix", lab.queue_command()).messages

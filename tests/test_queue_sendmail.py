"""The queue probe against a real Sendmail: deferred mail (a relay that
refuses connections) and a quarantined message (sendmail -Q), each gauge key
by key. The lab runs no submission program (MSP), so its clientmqueue is not
listed: the probe's command is the default's first two listings."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
from mta import sendmail_lab
from mta.checks import skip_if
from mta.debian import PackagesUnavailable
from mta.namespace import free_port
from mta.queue_checks import probed
from mta.sendmail_lab import SendmailLab

pytestmark = [pytest.mark.e2e, *skip_if(sendmail_lab.unavailable())]

DEAD = "dead.test"  # routed to a held port where nothing listens: every delivery is deferred
MESSAGES = [[f"a1@{DEAD}", f"a2@{DEAD}"], [f"b@{DEAD}"], [f"c@{DEAD}"]]  # the last one gets quarantined


def run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    try:
        with SendmailLab(tmp_path_factory.mktemp("sendmail-queue") / "maillog", "smtp-reply-queue-sendmail",
                         {DEAD: ("deadrelay", free_port())}) as lab:
            for n, recipients in enumerate(MESSAGES):
                lab.submit(recipients, f"Subject: queued {n}\n\n" + "queued mail\n" * (n + 1))
            lab.settle(lambda: lab.log.read_text().count("stat=Deferred") < len(MESSAGES))
            lab.quarantined = next(queue_id for queue_id, qf in control_files(lab).items()
                                   if f"<{MESSAGES[-1][0]}>" in qf)
            run(lab.sendmail("-Qsuspicious attachment", f"-qI{lab.quarantined}"))
            yield lab
    except PackagesUnavailable as err:
        pytest.skip(str(err))


def control_files(lab: SendmailLab) -> dict[str, str]:
    """Queue id -> text of its control file (qf, or hf once quarantined)."""
    return {p.name[2:]: p.read_text(errors="replace") for p in lab.queue.iterdir() if p.name[:2] in ("qf", "hf")}


def test_gauges_are_what_the_queue_holds(lab):
    listing = " ".join(shlex.quote(part) for part in lab.sendmail("-bp"))
    got = probed("sendmail", ["sh", "-ec", f"{listing}; {listing} -qQ"])
    assert got.success == 1
    assert got.messages == {"mqueue": len(MESSAGES) - 1, "quarantine": 1, "clientmqueue": 0}
    # mailq's size is the data file's (df): the body.
    data = {p.name[2:]: p.stat().st_size for p in lab.queue.glob("df*")}
    assert len(data) == len(MESSAGES)
    assert got.size_bytes == {"mqueue": sum(n for i, n in data.items() if i != lab.quarantined),
                              "quarantine": data[lab.quarantined], "clientmqueue": 0}
    # Q-Time is the control file's T (queued at) time, to the minute.
    queued = {queue_id: int(re.search(r"^T(\d+)$", qf, re.M)[1]) for queue_id, qf in control_files(lab).items()}
    minute = {queue_id: t - t % 60 for queue_id, t in queued.items()}
    assert got.oldest_age == {
        "mqueue": got.at - min(t for i, t in minute.items() if i != lab.quarantined),
        "quarantine": got.at - minute[lab.quarantined], "clientmqueue": 0}

"""Telling which MTAs write a block from their syslog tags, in one pass."""

import pytest

from exporter.parsers import FORMATS, Presence, formats_for
from exporter.parsers.presence import TagFinder

FINDER = TagFinder({"exim": ("exim", "exim4"), "sendmail": ("sendmail", "sm-mta"), "opensmtpd": ("smtpd",),
                    "untagged": ()})


@pytest.mark.parametrize("block, mtas", [
    (b"Nov 29 04:12:50 mx exim4[28234]: 1xX => a@b.c\n", {"exim"}),
    (b"2026-11-29T04:12:50.1+01:00 mx exim[7]: x\nNov 29 04:12:50 mx sm-mta[3]: y\n", {"exim", "sendmail"}),
    (b"Nov 29 04:12:50 mx smtpd[7617]: info: OpenSMTPD starting\n", {"opensmtpd"}),
    (b"<13>1 mx ]sendmail[12]: x\n", {"sendmail"}),  # a tag right after a bracketed field
    # Postfix's daemons are named "postfix/smtpd", "postfix/sendmail": not whole tags.
    (b"Nov 29 04:12:50 mx postfix/smtpd[9]: connect from a[192.0.2.1]\n", set()),
    (b"Nov 29 04:12:50 mx postfix/sendmail[9]: fatal: x\n", set()),
    # A name inside a longer one, a tag without "]: ", an address in brackets.
    (b"Nov 29 04:12:50 mx myexim[1]: x\nNov 29 04:12:50 mx exim[1] x\n", set()),
    (b"Nov 29 04:12:50 mx postfix/smtpd[9]: connect from smtpd[192.0.2.1]\n", set()),
    (b"", set()),
])
def test_tags_found(block, mtas):
    assert FINDER.found(block) == mtas


def test_every_mta_found_when_the_first_recurs():
    block = b"".join(b"Nov 29 04:12:50 mx exim[%d]: x\n" % i for i in range(100)) + b"Nov 29 mx smtpd[1]: y\n"
    assert FINDER.found(block) == {"exim", "opensmtpd"}


def test_presence_of_each_bundled_format():
    blocks = {
        "postfix": b"Nov 29 04:12:51 mx postfix/smtpd[9]: connect from a[192.0.2.1]\n",
        "exim": b"2026-11-03 17:44:15 1xXMrL-00085u-0m <= a@b.c H=x [192.0.2.1] P=esmtp S=2297\n",
        "sendmail": b"Nov 29 04:12:50 mx sm-msp-queue[1]: x\n",
        "opensmtpd": b"info: OpenSMTPD 6.8.0p2 starting\na427e8957ba23d6f smtp connected address=local\n",
    }
    presence = Presence(formats_for("auto"))
    for name, block in blocks.items():
        assert [f.name for f in presence.formats_in(block)] == [name]
        assert FORMATS[name].present(block)
    mixed = b"".join(blocks.values())
    assert [f.name for f in presence.formats_in(mixed)] == list(blocks)

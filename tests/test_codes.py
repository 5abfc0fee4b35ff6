"""The code tables: meanings, fallbacks, and what the info metrics are built from."""

import re

import pytest

from exporter import codes


@pytest.mark.parametrize(
    "code,words",
    [
        ("550", "mailbox unavailable"),
        ("421", "closing transmission channel"),
        ("455", "parameters"),
        ("555", "not recognized"),
        ("521", "does not accept mail"),
        ("556", "Domain does not accept mail"),
        ("530", "Authentication required"),
        ("534", "too weak"),
        ("535", "credentials invalid"),
        ("538", "Encryption required"),
        ("454", "TLS not available"),
    ],
)
def test_reply_code_meanings(code, words):
    assert words in codes.reply_code_meaning(code)


@pytest.mark.parametrize(
    "code,meaning",
    [
        ("539", "Permanent negative completion (unspecified)"),
        ("259", "Positive completion (mail system)"),
        ("420", "Transient negative completion (connections)"),
    ],
)
def test_unknown_reply_codes_fall_back_to_their_digits(code, meaning):
    assert codes.reply_code_meaning(code) == meaning


@pytest.mark.parametrize(
    "enhanced,meaning",
    [
        ("5.1.1", "Permanent failure: Bad destination mailbox address"),
        ("4.7.1", "Persistent transient failure: Delivery not authorized, message refused"),
        ("5.7.26", "Permanent failure: Multiple authentication checks failed"),
        ("4.4.1", "Persistent transient failure: No answer from host"),
        ("2.0.0", "Success: Other undefined status"),
        ("5.1.10", "Permanent failure: Recipient address has null MX"),
        ("5.1.99", "Permanent failure: Addressing status (other)"),
        ("4.9.9", "Persistent transient failure: Unknown subject (other)"),
    ],
)
def test_enhanced_meanings(enhanced, meaning):
    assert codes.enhanced_meaning(enhanced) == meaning


def test_tables_are_well_formed():
    assert all(re.fullmatch(r"[2-5][0-5][0-9]", c) for c in codes.REPLY_CODES)
    assert all(re.fullmatch(r"[0-7]\.[0-9]{1,3}", k) for k in codes.ENHANCED_SUBJECT_DETAIL)


def test_info_rows_sorted_unique_and_complete():
    replies = list(codes.iter_reply_codes())
    assert [r[0] for r in replies] == sorted({r[0] for r in replies})
    assert ("550", "5xx", codes.REPLY_CODES["550"]) in replies
    enhanced = [e for e, _ in codes.iter_enhanced_codes()]
    assert len(enhanced) == len(set(enhanced)) == 3 * len(codes.ENHANCED_SUBJECT_DETAIL)
    assert enhanced.index("5.7.9") < enhanced.index("5.7.10")  # numeric, not string, order

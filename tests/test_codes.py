"""The code tables: meanings, fallbacks, and the rows the info metrics are built from."""

import re

import pytest

from exporter import codes


@pytest.mark.parametrize(
    "code,words",
    [
        ("550", "mailbox unavailable"),
        ("421", "closing transmission channel"),
        ("455", "unable to accommodate parameters"),
        ("555", "not recognized or not implemented"),
        ("521", "Host does not accept mail"),
        ("556", "Domain does not accept mail"),
        ("530", "Authentication required"),
        ("534", "mechanism is too weak"),
        ("535", "credentials invalid"),
        ("538", "Encryption required"),
        ("454", "Temporary authentication failure"),
        ("454", "TLS not available"),
        ("220", "Service ready"),
        ("235", "Authentication succeeded"),
        ("432", "password transition"),
    ],
)
def test_reply_code_meanings(code, words):
    assert words in codes.reply_code_meaning(code)


@pytest.mark.parametrize(
    "code,meaning",
    [
        ("559", "Permanent negative completion (mail system)"),
        ("599", "Permanent negative completion (unknown category)"),
        ("259", "Positive completion (mail system)"),
        ("420", "Transient negative completion (connections)"),
        ("509", "Permanent negative completion (syntax)"),
        ("219", "Positive completion (information)"),
        ("539", "Permanent negative completion (unassigned category)"),
        ("120", "Positive preliminary (connections)"),
        ("999", "Unknown class 9xx (unknown category)"),
    ],
)
def test_unknown_reply_codes_fall_back_to_their_digits(code, meaning):
    assert code not in codes.REPLY_CODES
    assert codes.reply_code_meaning(code) == meaning


def test_every_three_digit_string_has_a_meaning_and_class():
    for n in range(1000):
        code = f"{n:03d}"
        assert codes.reply_code_meaning(code)
        assert codes.reply_class(code) == code[0] + "xx"


@pytest.mark.parametrize("bad", ["", "55", "5500", "55a", " 550", "５５０"])
def test_malformed_reply_codes_are_refused(bad):
    with pytest.raises(ValueError):
        codes.reply_code_meaning(bad)
    with pytest.raises(ValueError):
        codes.reply_class(bad)


@pytest.mark.parametrize(
    "enhanced,meaning",
    [
        ("5.1.1", "Permanent failure: Bad destination mailbox address"),
        ("4.7.1", "Persistent transient failure: Delivery not authorized, message refused"),
        ("5.7.26", "Permanent failure: Multiple authentication checks failed"),
        ("4.4.1", "Persistent transient failure: No answer from host"),
        ("2.0.0", "Success: Other undefined status"),
        ("5.1.10", "Permanent failure: Recipient address has null MX"),
        ("5.7.25", "Permanent failure: Reverse DNS validation failed"),
        ("5.7.27", "Permanent failure: Sender address has null MX"),
        ("4.7.28", "Persistent transient failure: Mail flood detected"),
        ("5.7.29", "Permanent failure: ARC validation failure"),
        ("5.7.30", "Permanent failure: REQUIRETLS support required"),
        ("5.5.6", "Permanent failure: Authentication exchange line is too long"),
    ],
)
def test_enhanced_meanings(enhanced, meaning):
    assert codes.enhanced_meaning(enhanced) == meaning


@pytest.mark.parametrize(
    "enhanced,meaning",
    [
        ("5.1.99", "Permanent failure: Addressing status (other)"),
        ("4.7.999", "Persistent transient failure: Security or policy status (other)"),
        ("4.9.9", "Persistent transient failure: Unknown subject 9"),
        ("2.100.0", "Success: Unknown subject 100"),
        ("3.1.1", "Unknown class 3: Bad destination mailbox address"),
        ("5.01.001", "Permanent failure: Bad destination mailbox address"),
    ],
)
def test_enhanced_fallbacks(enhanced, meaning):
    assert codes.enhanced_meaning(enhanced) == meaning


def test_every_well_formed_enhanced_code_has_a_meaning():
    for klass in "0123456789":
        for subject in ("0", "1", "7", "8", "42", "999"):
            for detail in ("0", "1", "10", "30", "31", "999"):
                assert codes.enhanced_meaning(f"{klass}.{subject}.{detail}")


@pytest.mark.parametrize(
    "bad", ["", "5.1", "5.1.1.1", "55.1.1", "5.1000.1", "5.1.x", "5..1", " 5.1.1"]
)
def test_malformed_enhanced_codes_are_refused(bad):
    with pytest.raises(ValueError):
        codes.enhanced_meaning(bad)


def test_tables_are_well_formed():
    assert all(re.fullmatch(r"[2-5][0-5][0-9]", c) for c in codes.REPLY_CODES)
    # No leading zeros (RFC 3463), so each key is the one enhanced_meaning looks up.
    number = r"(0|[1-9][0-9]{0,2})"
    assert all(re.fullmatch(number + r"\." + number, k) for k in codes.ENHANCED_SUBJECT_DETAIL)
    assert set(codes.ENHANCED_CLASSES) == {"2", "4", "5"}
    assert set(codes.ENHANCED_SUBJECTS) == set("01234567")
    assert {k.split(".")[0] for k in codes.ENHANCED_SUBJECT_DETAIL} <= set(codes.ENHANCED_SUBJECTS)
    for table in (
        codes.REPLY_CODES,
        codes.ENHANCED_CLASSES,
        codes.ENHANCED_SUBJECTS,
        codes.ENHANCED_SUBJECT_DETAIL,
    ):
        for meaning in table.values():
            assert meaning == meaning.strip() and meaning[0].isupper() and "\n" not in meaning


def test_reply_table_covers_rfc5321_and_the_common_extensions():
    rfc5321 = (
        "211 214 220 221 250 251 252 354 421 450 451 452 455"
        " 500 501 502 503 504 550 551 552 553 554 555"
    )
    extensions = "521 556 235 334 432 454 530 534 535 538"
    assert set(rfc5321.split()) | set(extensions.split()) == set(codes.REPLY_CODES)


def test_enhanced_table_covers_the_registry():
    # Highest registered detail for each subject; each runs from 0 without gaps.
    last = {"0": 0, "1": 10, "2": 4, "3": 6, "4": 7, "5": 6, "6": 10, "7": 30}
    expected = {f"{s}.{d}" for s, top in last.items() for d in range(top + 1)}
    assert set(codes.ENHANCED_SUBJECT_DETAIL) == expected


def test_reply_info_rows_sorted_unique_and_complete():
    rows = list(codes.iter_reply_codes())
    names = [code for code, _, _ in rows]
    assert names == sorted(set(names), key=int)
    assert set(names) == set(codes.REPLY_CODES)
    assert ("550", "5xx", codes.REPLY_CODES["550"]) in rows
    assert all(klass == code[0] + "xx" for code, klass, _ in rows)


def test_enhanced_info_rows_sorted_unique_and_complete():
    rows = list(codes.iter_enhanced_codes())
    names = [e for e, _ in rows]
    numeric = [tuple(map(int, e.split("."))) for e in names]
    assert numeric == sorted(set(numeric))
    assert len(names) == len(set(names)) == 3 * len(codes.ENHANCED_SUBJECT_DETAIL)
    assert {e[0] for e in names} == {"2", "4", "5"}
    assert names.index("5.7.9") < names.index("5.7.10")  # numeric, not text, order
    assert ("5.1.1", "Permanent failure: Bad destination mailbox address") in rows
    assert all(meaning == codes.enhanced_meaning(e) for e, meaning in rows)
    assert not any(meaning.endswith("(other)") for _, meaning in rows)

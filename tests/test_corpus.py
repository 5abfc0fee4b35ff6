"""Replays the shared lab logs through the real CLI and compares with their truth."""

import json

import pytest

from helpers import SHARED, replies_by, run_once

POSTFIX_LAB = SHARED / "corpus" / "postfix-lab"


@pytest.mark.skipif(not POSTFIX_LAB.is_dir(), reason="../shared/corpus is not present")
def test_postfix_lab_matches_truth_key_by_key():
    truth = json.loads((POSTFIX_LAB / "truth.json").read_text())
    expected = {(t["direction"], t["code"], t["enhanced"]): t["count"] for t in truth}
    result = run_once(str(POSTFIX_LAB / "postfix.log"))
    assert result.returncode == 0, result.stderr.decode()
    got = replies_by(result.stdout.decode(), "direction", "code", "enhanced")
    for key in sorted(set(expected) | set(got)):
        assert got.get(key, 0) == expected.get(key, 0), key
    assert sum(got.values()) == sum(expected.values())


EXIM_LAB = SHARED / "corpus" / "exim-lab"


@pytest.mark.skipif(not EXIM_LAB.is_dir(), reason="../shared/corpus is not present")
def test_exim_lab_matches_truth_key_by_key():
    truth = json.loads((EXIM_LAB / "truth.json").read_text())
    expected = {(t["direction"], t["class"], t["code"], t["enhanced"]): t["count"] for t in truth}
    result = run_once(str(EXIM_LAB / "exim_mainlog"))
    assert result.returncode == 0, result.stderr.decode()
    got = replies_by(result.stdout.decode(), "direction", "class", "code", "enhanced")
    for key in sorted(set(expected) | set(got)):
        assert got.get(key, 0) == expected.get(key, 0), key

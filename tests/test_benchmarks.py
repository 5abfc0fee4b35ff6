"""bench_once.py runs end to end on a small log and prints what it promises.

Figures are not judged here (a benchmark prints them; tests on a shared
machine cannot time fairly): this keeps the script and its --floor
measurement working as the exporter changes under them.
"""

import re
import subprocess
import sys

import pytest
from helpers import REPO

pytestmark = pytest.mark.slow


def test_bench_once_runs_and_prints_the_floor(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_once.py"), "--lines", "3000", "--no-mtail", "--floor",
         "--tmpdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    # The exporter read every line of the log, and the floor was measured.
    read = re.search(r"exporter read ([\d,]+) lines", text)
    assert read and int(read.group(1).replace(",", "")) == 3000, text
    handed = re.search(r"scan without parsing, one worker: [\d.]+ s CPU \(([\d,]+) lines handed to a parser\)", text)
    matched = re.search(r"matched ([\d,]+)", text)
    assert handed and matched, text
    # Every line that gave an event was handed to a parser.
    assert int(handed.group(1).replace(",", "")) >= int(matched.group(1).replace(",", "")) > 0
    assert re.search(r"floor with \d+ worker\(s\), parsing free: [\d.]+ s", text), text
    assert "memory         : peak" in text

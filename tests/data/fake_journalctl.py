"""Stands in for journalctl where no journald runs (as on CI machines).

Prints the entries of the JSONL file named by $FAKE_JOURNAL that come after
--after-cursor (all of them with --lines=0 ignored: the test decides), with
the arguments it got appended to $FAKE_JOURNAL.args, then follows forever.
"""

import json
import os
import sys
import time

args = sys.argv[1:]
with open(os.environ["FAKE_JOURNAL"] + ".args", "a") as f:
    f.write(json.dumps(args) + "\n")
after = next((a.split("=", 1)[1] for a in args if a.startswith("--after-cursor=")), None)
started = after is None
with open(os.environ["FAKE_JOURNAL"]) as f:
    for line in f:
        entry = json.loads(line)
        if started:
            sys.stdout.write(line)
        elif entry["__CURSOR"] == after:
            started = True
sys.stdout.flush()
while True:
    time.sleep(1)

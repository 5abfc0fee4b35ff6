"""The daemon loop's waker and the flags its signal handlers set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from helpers import REPO

from exporter.wakeup import Flag, Waker

# The daemon loop's shape, cut to the bone: it waits on the waker and takes
# the reloads the flags ask for until one asks it to stop.
SIGNALLED_LOOP = """
from exporter.wakeup import Waker, handle_signals
waker = Waker()
stop, reload = handle_signals(waker)
print("ready", flush=True)
reloads = 0
while not stop.is_set():
    waker.wait(0.0001)
    if reload.is_set():
        reload.clear()
        reloads += 1
print(reloads, flush=True)
"""


def test_a_wake_before_the_wait_ends_it_at_once():
    waker = Waker()
    try:
        waker.wake()
        started = time.monotonic()
        waker.wait(5)
        assert time.monotonic() - started < 1
    finally:
        waker.close()


def test_a_wait_uses_up_every_wake_up_before_it():
    waker = Waker()
    try:
        for _ in range(100_000):  # more bytes than a pipe holds: wake() never blocks
            waker.wake()
        waker.wait(0)
        started = time.monotonic()
        waker.wait(0.2)
        assert time.monotonic() - started >= 0.19
    finally:
        waker.close()


def test_a_wake_from_another_thread_ends_the_wait():
    waker = Waker()
    try:
        timer = threading.Timer(0.1, waker.wake)
        timer.start()
        started = time.monotonic()
        waker.wait(5)
        assert time.monotonic() - started < 2
        timer.join()
    finally:
        waker.close()


def test_a_flag_is_what_was_last_set_or_cleared():
    flag = Flag()
    assert not flag.is_set()
    flag.set()
    flag.set()
    assert flag.is_set()
    flag.clear()
    assert not flag.is_set()


def test_a_storm_of_signals_never_deadlocks_the_loop_and_sigterm_still_stops_it():
    # Handlers that called threading.Event.set() hung for good, within a
    # second or two of this, when a signal came while the main thread held
    # the Event's lock in wait() or clear(): the daemon then ignored SIGTERM.
    loop = subprocess.Popen([sys.executable, "-c", SIGNALLED_LOOP], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert loop.stdout is not None
        assert loop.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 2
        sent = 0
        while time.monotonic() < deadline:
            os.kill(loop.pid, signal.SIGHUP)
            sent += 1
            time.sleep(0.0001)
        loop.send_signal(signal.SIGTERM)
        out, _ = loop.communicate(timeout=10)
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()
    assert loop.returncode == 0
    assert 0 < int(out) <= sent

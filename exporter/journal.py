"""Following journald: `journalctl --follow --output=json` for the mail units.

The journal has no files to rotate or truncate; its position is a cursor.
The cursor of the last entry counted goes into the state file with the
counts, and a restart hands it back with --after-cursor, so entries written
while the exporter was down are read and none is read twice. Without a
cursor, following starts at the end of the journal (--lines=0).

Each entry becomes the line syslog would have written ("host ident[pid]:
message"), so every MTA parser reads journal entries as it reads files.
MESSAGE may be a JSON array of bytes when it is not valid UTF-8.
"""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from exporter.lines import BlockSink
from exporter.source_progress import SourceStats

log = logging.getLogger(__name__)

# A journal entry line longer than this is skipped whole: it cannot be a
# reply line, and a bounded read keeps a hostile entry from taking memory.
MAX_ENTRY_BYTES = 1 << 20


def entry_to_line(entry: dict) -> bytes | None:
    """The syslog-style line for one journal entry, or None if it has no message."""
    message = entry.get("MESSAGE")
    if isinstance(message, list):
        message = bytes(b & 0xFF for b in message if isinstance(b, int))
    elif isinstance(message, str):
        message = message.encode("utf-8", "surrogateescape")
    else:
        return None
    ident = entry.get("SYSLOG_IDENTIFIER") or entry.get("_COMM") or "unknown"
    pid = entry.get("SYSLOG_PID") or entry.get("_PID") or "0"
    host = entry.get("_HOSTNAME") or "localhost"
    line = f"{host} {ident}[{pid}]: ".encode("utf-8", "replace") + message
    return line.replace(b"\n", b" ") + b"\n"


class JournalSource:
    def __init__(
        self,
        units: Sequence[str],
        sink: BlockSink,
        wake: Callable[[], None],
        cursor: str | None = None,
        command: Sequence[str] = ("journalctl",),
    ) -> None:
        self.units = list(units)
        self.cursor = cursor
        self.stats = SourceStats()
        self._sink = sink
        self._wake = wake
        self._command = list(command)
        self._lines: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        args = [*self._command, "--follow", "--output=json", "--no-pager"]
        args += [f"--unit={unit}" for unit in self.units]
        args.append(f"--after-cursor={self.cursor}" if self.cursor else "--lines=0")
        try:
            self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        except OSError as err:
            self.stats.read_errors += 1
            log.error("cannot run %s: %s (will retry)", args[0], err.strerror or err)
            return
        threading.Thread(target=self._pump, name="journalctl-reader", daemon=True).start()

    def _pump(self) -> None:
        # The only blocking part: waits on journalctl's output, hands lines to
        # the polling thread, and wakes it.
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        while True:
            line = stdout.readline(MAX_ENTRY_BYTES)
            if not line:
                break
            if not line.endswith(b"\n"):
                while line and not line.endswith(b"\n"):  # skip the rest of an oversized entry
                    line = stdout.readline(MAX_ENTRY_BYTES)
                continue
            self._lines.put(line)
            self._wake()
        self._lines.put(None)
        self._wake()

    def poll(self) -> int:
        """Count the entries journalctl has written since the last poll; return how many bytes they were."""
        if self._proc is None:
            self.start()
        block: list[bytes] = []
        while True:
            try:
                raw = self._lines.get_nowait()
            except queue.Empty:
                break
            if raw is None:
                self.stats.read_errors += 1
                log.warning("journalctl for %s exited; restarting it", ", ".join(self.units))
                self._reap()  # the next poll starts it again, after the cursor
                break
            try:
                entry = json.loads(raw)
            except ValueError:
                self.stats.read_errors += 1
                continue
            line = entry_to_line(entry) if isinstance(entry, dict) else None
            if line is not None:
                block.append(line)
            if isinstance(entry, dict) and isinstance(entry.get("__CURSOR"), str):
                self.cursor = entry["__CURSOR"]
        if not block:
            return 0
        data = b"".join(block)
        self.stats.last_read_time = time.time()
        self.stats.bytes_read += len(data)
        self._sink(data, 0)
        return len(data)

    def _reap(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def close(self) -> None:
        self._reap()

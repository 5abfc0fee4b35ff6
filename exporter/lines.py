"""Turning raw reads into complete lines, with a bound on line length.

Reads arrive in arbitrary pieces (a tailed file grows mid-line; a block read
cuts anywhere). LineBuffer hands on only complete lines and holds the partial
last line until its end arrives, so no line is ever parsed in halves. A line
longer than max_line is cut there and the rest of it skipped, so a hostile
log cannot make the buffer grow without end.

NUL bytes are dropped: a crash leaves runs of them where the file's last
writes were lost (a "hole"), and a run longer than max_line would otherwise
make one over-long line of itself and the line written after it, whose rest
is skipped. The lines around the hole still count.
"""

from __future__ import annotations

from collections.abc import Callable

DEFAULT_MAX_LINE = 64 * 1024

# Where a source hands what its LineBuffer gives: a block of complete lines,
# and how many lines were cut at the limit since the last block.
BlockSink = Callable[[bytes, int], None]


class LineBuffer:
    def __init__(self, max_line: int = DEFAULT_MAX_LINE, *, skipping: bool = False) -> None:
        self.max_line = max_line
        self._cut = 0  # lines cut at max_line since take_cut()
        self._tail = b""
        self._raw_tail = 0  # bytes of the file the tail came from (its NULs are dropped)
        # Inside the cut-off rest of a long line; given when resuming a read
        # that stopped there, so the rest is not taken for a line of its own.
        self._skipping = skipping

    def push(self, data: bytes) -> bytes:
        """Add a read; return the complete lines it finishes (ending in b"\\n")."""
        if self._skipping:
            nl = data.find(b"\n")
            if nl < 0:
                return b""
            data = data[nl + 1 :]
            self._skipping = False
        nl = data.rfind(b"\n")  # the held tail never holds one
        if nl < 0:
            complete, rest = b"", data
            self._raw_tail += len(data)
        else:
            # One copy of the read, not two (tail + data, then its lines):
            # for a 1 MB block that is most of the cost of buffering.
            complete, rest = b"".join((self._tail, memoryview(data)[: nl + 1])), data[nl + 1 :]
            self._tail = b""
            self._raw_tail = len(rest)
        if b"\0" in data:  # memchr: nearly free on the blocks that hold none
            complete, rest = complete.replace(b"\0", b""), rest.replace(b"\0", b"")
        tail = self._tail + rest
        if len(tail) > self.max_line:
            complete += tail[: self.max_line] + b"\n"
            tail = b""
            self._raw_tail = 0
            self._skipping = True
            self._cut += 1
        self._tail = tail
        return complete

    def take_cut(self) -> int:
        """How many lines were cut at max_line since the last call."""
        cut, self._cut = self._cut, 0
        return cut

    @property
    def skipping(self) -> bool:
        """Is the input inside the cut-off rest of a long line?"""
        return self._skipping

    @property
    def pending(self) -> int:
        """Bytes of the file in a partial line waiting for its end."""
        return self._raw_tail

    def finish(self) -> bytes:
        """At the true end of input: the last line, even without its newline."""
        tail, self._tail, self._raw_tail, self._skipping = self._tail, b"", 0, False
        return tail + b"\n" if tail else b""

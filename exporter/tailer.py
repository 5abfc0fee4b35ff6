"""Following log files like `tail -F`, through rotation, truncation and restarts.

A FileFollower is a state machine over file descriptors; it never sleeps and
watches nothing itself (watchdog events only wake the loop that calls
poll()). Each poll() reads what is new, then looks at the path again:

* Rename rotation (logrotate `create`): the path now names another file. The
  old descriptor is kept and drained for a grace period, because syslog goes
  on writing to it until it reopens; then it is closed. The new file is read
  from its first byte.
* Delete and recreate: the same, even when the new file reuses the inode,
  because a file is known by its first bytes (its fingerprint) as well as by
  its device and inode.
* `copytruncate` and truncation: the file is shorter than our offset, or its
  first bytes no longer match the fingerprint (it was truncated and has
  grown past our offset since). Reading restarts at byte 0.
* Partial writes: a LineBuffer holds the last line until its newline comes;
  the offset we report is that of the last complete line.
* Restarts: a Ledger remembers how far each file (by identity) was read; it
  is what the state file saves, with the files still being drained after a
  rotation and whether a long line's rest was being skipped. A file found in
  the ledger resumes there, or from byte 0 if it is now shorter than that. If
  the file was rotated while we were down, or was being drained when the
  state was saved, the old one is looked up beside the path by identity and
  drained from its saved offset first.
* Deletion: a glob match that has been gone for the grace period is drained,
  closed and forgotten (a configured path keeps its last file open until the
  path is back, because the writer goes on writing to it until then).

What is read goes to a callback as blocks of complete lines.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from exporter.lines import DEFAULT_MAX_LINE, BlockSink, LineBuffer
from exporter.source_progress import Position, SourceStats

log = logging.getLogger(__name__)

FINGERPRINT_BYTES = 256
READ_SIZE = 1 << 20
# Bytes read from one file in one poll, so that a huge backlog in one file
# cannot starve the others; the rest comes on the next poll.
MAX_READ_PER_POLL = 16 << 20
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip")
LEDGER_SIZE = 256


class Ledger:
    """Read positions by file identity, bounded, shared by a source's followers.

    Following by identity rather than by name is what keeps a renamed
    rotation (mail.log -> mail.log.1) from being read twice when a glob
    matches both names, and what lets a restart resume a rotated file.
    """

    def __init__(self, positions: list[Position] | None = None) -> None:
        self._by_identity: OrderedDict[tuple[int, int], Position] = OrderedDict()
        for pos in positions or ():
            self.record(pos)

    def record(self, pos: Position) -> None:
        key = (pos.dev, pos.ino)
        self._by_identity[key] = pos
        self._by_identity.move_to_end(key)
        while len(self._by_identity) > LEDGER_SIZE:
            self._by_identity.popitem(last=False)

    def find(self, dev: int, ino: int, head: bytes) -> Position | None:
        pos = self._by_identity.get((dev, ino))
        return pos if pos is not None and pos.same_file(dev, ino, head) else None

    def positions(self) -> list[Position]:
        return list(self._by_identity.values())


class _OpenFile:
    """One open descriptor and what we know of the file behind it."""

    def __init__(
        self, fd: int, st: os.stat_result, offset: int, head: bytes, max_line: int, skipping: bool = False,
    ) -> None:
        self.fd = fd
        self.dev = st.st_dev
        self.ino = st.st_ino
        self.offset = offset
        self.head = head
        self.buffer = LineBuffer(max_line, skipping=skipping)

    @classmethod
    def resumed(cls, fd: int, st: os.stat_result, head: bytes, max_line: int, known: Position) -> _OpenFile:
        """The file known was read up to known.offset, unless it was truncated since."""
        if st.st_size < known.offset:  # same first bytes, but cut short and maybe regrown
            return cls(fd, st, 0, head, max_line)
        return cls(fd, st, known.offset, head, max_line, known.skipping)

    def position(self) -> Position:
        # A partial last line is read again after a restart rather than lost.
        return Position(self.dev, self.ino, self.head, self.offset - self.buffer.pending, self.buffer.skipping)

    def grow_head(self) -> None:
        if len(self.head) < FINGERPRINT_BYTES:
            self.head = os.pread(self.fd, FINGERPRINT_BYTES, 0)

    def truncated(self, size: int) -> bool:
        if size < self.offset:
            return True
        # copytruncate, then the writer wrote past our offset before we looked.
        return os.pread(self.fd, len(self.head), 0) != self.head

    def close(self) -> None:
        os.close(self.fd)


def _open_file(path: str) -> tuple[int, os.stat_result, bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fd, os.fstat(fd), os.pread(fd, FINGERPRINT_BYTES, 0)
    except OSError:
        os.close(fd)
        raise


class FileFollower:
    def __init__(
        self,
        path: str,
        sink: BlockSink,
        ledger: Ledger,
        *,
        start_at_end: bool,
        last_known: Position | None = None,
        last_draining: list[Position] | None = None,
        close_when_gone: bool = False,
        grace_seconds: float = 5.0,
        max_line: int = DEFAULT_MAX_LINE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.stats = SourceStats()
        self._sink = sink
        self._ledger = ledger
        self._start_at_end = start_at_end
        self._last_known = last_known  # what this path held when state was saved
        # Older files this path held, still being drained when state was saved.
        self._last_draining = list(last_draining or ())
        # A glob match that is deleted is closed after the grace period; a
        # configured path keeps its last file open until the path is back,
        # because the writer goes on writing to it until then.
        self._close_when_gone = close_when_gone
        self._grace = grace_seconds
        self._max_line = max_line
        self._clock = clock
        self._current: _OpenFile | None = None
        self._draining: deque[tuple[_OpenFile, float]] = deque()
        self._failing = False
        self._gone_since: float | None = None  # when the path was first found missing

    def position(self) -> Position | None:
        return self._current.position() if self._current is not None else self._last_known

    def draining_positions(self) -> list[Position]:
        """For the state file: the rotated files not yet drained."""
        return [f.position() for f, _ in self._draining] + self._last_draining

    @property
    def finished(self) -> bool:
        """The path has been gone for the grace period and every file is drained and closed."""
        return self._gone_since is not None and self._current is None and not self._draining

    def identities(self) -> set[tuple[int, int]]:
        files = [f for f, _ in self._draining] + ([self._current] if self._current else [])
        return {(f.dev, f.ino) for f in files}

    def close(self) -> None:
        for f, _ in self._draining:
            f.close()
        self._draining.clear()
        if self._current is not None:
            self._current.close()
            self._current = None

    def poll(self) -> None:
        """Notice rotation or truncation, and read everything new."""
        now = self._clock()
        self._drain_old(now)
        cur = self._current
        try:
            st = os.stat(self.path)
        except OSError as err:
            self._start_at_end = False  # a file that appears later is read whole
            if cur is not None:
                self._read(cur)  # deleted or renamed: its writer may still write
            if not isinstance(err, FileNotFoundError):
                self._failed(err)
                return
            if self._gone_since is None:
                self._gone_since = now
            if cur is not None and self._close_when_gone and now - self._gone_since >= self._grace:
                self._finish(cur)  # the writer has had its time
                self._current = None
            return
        self._gone_since = None
        if cur is None:
            self._open_current()
        elif (st.st_dev, st.st_ino) != (cur.dev, cur.ino):
            self.stats.rotations += 1
            self._read(cur)
            self._draining.append((cur, now + self._grace))
            self._current = None
            self._open_current()
        else:
            # Checked before reading, so that bytes written after a truncation
            # are never read from the old offset.
            if cur.truncated(st.st_size):
                self.stats.truncations += 1
                cur.offset = 0
                cur.head = b""
                cur.buffer = LineBuffer(self._max_line)  # a partial line from before is void
            self._read(cur)

    def _open_current(self) -> None:
        try:
            fd, st, head = _open_file(self.path)
        except OSError as err:
            self._failed(err)
            return
        self._failing = False
        # Files rotated away before the state was saved are older than
        # whatever this path holds now: finish them first.
        rotated = self._last_draining
        known = self._ledger.find(st.st_dev, st.st_ino, head)
        if known is None and self._last_known is not None:
            # The file we were reading was rotated while we were down too.
            rotated = [*rotated, self._last_known]
        self._resume_rotated(rotated)
        if known is not None:
            self._current = _OpenFile.resumed(fd, st, head, self._max_line, known)
        else:
            offset = st.st_size if self._start_at_end and not rotated else 0
            self._current = _OpenFile(fd, st, offset, head, self._max_line)
        self._start_at_end = False  # only a file present at start-up is skipped
        self._last_known = None
        self._last_draining = []
        self._read(self._current)

    def _resume_rotated(self, rotated: list[Position]) -> None:
        """Find the files rotated away beside the path, by identity, and drain them."""
        if not rotated:
            return
        directory = os.path.dirname(self.path) or "."
        base = os.path.basename(self.path)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return
        wanted = list(rotated)
        for name in names:
            if not wanted:
                return
            if not name.startswith(base) or name == base or name.endswith(COMPRESSED_SUFFIXES):
                continue
            try:
                fd, st, head = _open_file(os.path.join(directory, name))
            except OSError:
                continue
            last = next((p for p in wanted if p.same_file(st.st_dev, st.st_ino, head)), None)
            if last is None:
                os.close(fd)
                continue
            wanted.remove(last)
            old = _OpenFile.resumed(fd, st, head, self._max_line, last)
            self.stats.rotations += 1
            self._read(old)
            self._draining.append((old, self._clock() + self._grace))

    def _drain_old(self, now: float) -> None:
        for f, _ in self._draining:
            self._read(f)
        while self._draining and self._draining[0][1] <= now:
            f, _ = self._draining.popleft()
            self._finish(f)

    def _finish(self, f: _OpenFile) -> None:
        self._read(f)
        # The writer has moved on: a last line without newline is final.
        self._sink(f.buffer.finish(), 0)
        f.close()

    def _read(self, f: _OpenFile) -> None:
        budget = MAX_READ_PER_POLL
        while budget > 0:
            try:
                data = os.pread(f.fd, READ_SIZE, f.offset)
            except OSError as err:
                self._failed(err)
                return
            if not data:
                return
            f.offset += len(data)
            budget -= len(data)
            self.stats.last_read_time = time.time()
            self.stats.bytes_read += len(data)
            f.grow_head()
            block = f.buffer.push(data)
            cut = f.buffer.take_cut()
            if block or cut:
                self._sink(block, cut)
            self._ledger.record(f.position())

    def _failed(self, err: OSError) -> None:
        self.stats.read_errors += 1
        if not self._failing:  # log once per episode, not on every poll
            log.warning("%s: %s (will retry)", self.path, err.strerror or err)
            self._failing = True


class LogSource:
    """One configured source: a path or a glob pattern, with its followers.

    A path that exists when we start is read from its end (or its saved
    position); one that appears later is read from its first byte. A glob
    match that is only another name for a file already followed or drained
    (a renamed rotation, mail.log -> mail.log.1) is skipped, and one that was
    read before resumes where it was, so nothing is read twice. Compressed
    rotations are skipped.
    """

    def __init__(
        self,
        pattern: str,
        make_sink: Callable[[str], BlockSink],
        *,
        from_beginning: bool = False,
        saved: dict[str, Position] | None = None,
        saved_draining: dict[str, list[Position]] | None = None,
        grace_seconds: float = 5.0,
        max_line: int = DEFAULT_MAX_LINE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pattern = pattern
        self.followers: dict[str, FileFollower] = {}
        self._make_sink = make_sink
        self._from_beginning = from_beginning
        self._saved = dict(saved or {})
        self._saved_draining = {path: list(files) for path, files in (saved_draining or {}).items()}
        self.ledger = Ledger([*self._saved.values(), *(p for files in self._saved_draining.values() for p in files)])
        self._grace = grace_seconds
        self._max_line = max_line
        self._clock = clock
        self._started = False
        self._is_glob = glob.has_magic(pattern)

    def paths(self) -> list[str]:
        if not self._is_glob:
            return [self.pattern]
        return sorted(p for p in glob.glob(self.pattern) if not p.endswith(COMPRESSED_SUFFIXES))

    def directories(self) -> set[str]:
        """Where to watch for changes: the directory part before any glob magic."""
        head = self.pattern
        while glob.has_magic(head):
            head = os.path.dirname(head)
        return {head if self._is_glob else os.path.dirname(self.pattern) or "."}

    def poll(self) -> None:
        for path, follower in list(self.followers.items()):
            follower.poll()
            if self._is_glob and follower.finished:
                del self.followers[path]  # deleted; the ledger still knows how far it was read
        following: set[tuple[int, int]] = set()
        for follower in self.followers.values():
            following |= follower.identities()
        # In name order, so that after a restart mail.log takes up the
        # draining of its rotated mail.log.1 before the glob reaches that name.
        for path in self.paths():
            if path in self.followers:
                continue
            if self._is_glob:
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) in following:
                    continue
            follower = FileFollower(
                path,
                self._make_sink(path),
                self.ledger,
                start_at_end=not self._started and not self._from_beginning,
                last_known=self._saved.pop(path, None),
                last_draining=self._saved_draining.pop(path, None),
                close_when_gone=self._is_glob,
                grace_seconds=self._grace,
                max_line=self._max_line,
                clock=self._clock,
            )
            self.followers[path] = follower
            follower.poll()
            following |= follower.identities()
        self._started = True

    def positions(self) -> dict[str, Position]:
        """For the state file: each path's live position."""
        out = {}
        for path, follower in self.followers.items():
            pos = follower.position()
            if pos is not None:
                out[path] = pos
        return out

    def draining_positions(self) -> dict[str, list[Position]]:
        """For the state file: each path's rotated files still being drained."""
        out = {}
        for path, follower in self.followers.items():
            files = follower.draining_positions()
            if files:
                out[path] = files
        return out

    def close(self) -> None:
        for follower in self.followers.values():
            follower.close()

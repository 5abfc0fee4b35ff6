"""Following log files like `tail -F`, through rotation, truncation and restarts.

A FileFollower is a state machine over file descriptors; it never sleeps and
watches nothing itself (watchdog events only wake the loop that calls
poll()). Each poll() reads what is new, then looks at the path again.

How a file is known. By its device and inode, and by its content: its
fingerprint is its first FINGERPRINT_BYTES bytes, and two fingerprints are
of the same content when they agree over the bytes both have and those hold
a whole first line (or all FINGERPRINT_BYTES bytes, when the first line is
longer). A file without a whole first line yet is left alone until it has
one: it cannot be told from a copy in the making, and it holds no line to
count. A new file with the same first bytes as a file another follower
holds (compared byte for byte, up to COPY_CHECK_BYTES) is held but not read
until it differs (a twin: another log that begins with the same line, read
from its start) or the other is written anew (it was a copy in the making).

* Rename rotation (logrotate `create`): the path now names another file. The
  old descriptor is kept and drained for a grace period, because syslog goes
  on writing to it until it reopens; then it is closed. The new file is read
  from its first byte.
* Delete and recreate: the same, even when the new file reuses the inode,
  because its content differs.
* `copytruncate`: the same inode now holds other content (cut to nothing,
  maybe written again past our offset). Reading restarts at byte 0, and the
  copy is looked for beside the path: what it holds past our offset (written
  before the copy, not yet read) is read from it. Only what the writer wrote
  between the copy and the truncation is lost: it is in neither file.
* A copy whose original was read (copytruncate's mail.log.1 matched by a
  glob) is known as read as far as the original was.
* Cut to a prefix of itself (same inode, same content, shorter than our
  offset): reading goes on at the new end, and a truncation is counted.
* One reader per file: a source's followers share a Ledger, which says which
  follower holds which file (or the file a copy was made of). A follower
  whose path names a file another one holds (a glob's mail.log.1 while
  mail.log's follower drains it) waits until it is let go, then goes on
  where the other stopped.
* Partial writes: a LineBuffer holds the last line until its newline comes;
  the offset we report is that of the last complete line.
* Restarts: the Ledger knows how far each followed file (and each file
  still being drained, or let go in the last RECENT_SECONDS) was read; the
  state file saves the positions of the files followed and drained, however
  many. A file found in the ledger resumes there. If the file was rotated
  while we were down, or was being drained when the state was saved, the old
  one (or its copy) is looked up beside the path and drained from its saved
  offset first.
* Start-up: a file present at start is read from the size it had then, also
  when it could not be opened at first (permission denied, fixed later): the
  lines written in between are counted. A file that appears later is read
  from its first byte.
* Deletion: a glob match that has been gone for the grace period is drained,
  closed and forgotten (a configured path keeps its last file open until the
  path is back, because the writer goes on writing to it until then).
* Descriptors: a glob's file that has had nothing new for
  IDLE_CLOSE_SECONDS is closed, and reopened by path (checked to be the same
  file) when it grows. If such a closed file is rotated, what its writer
  still writes to it is read under its new name when the glob matches that
  name, and is lost if it does not (or the file was deleted).

What is read goes to a callback as blocks of complete lines.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from operator import attrgetter

from exporter.lines import DEFAULT_MAX_LINE, BlockSink, LineBuffer
from exporter.source_progress import Position, SourceStats

log = logging.getLogger(__name__)

FINGERPRINT_BYTES = 256
# How much of a new file is compared with an open file it seems a copy of.
COPY_CHECK_BYTES = 64 << 10
READ_SIZE = 1 << 20
# Bytes read from one file in one poll, so that a huge backlog in one file
# cannot starve the others; the rest comes on the next poll.
MAX_READ_PER_POLL = 16 << 20
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip")
# How long the ledger keeps the position of a file no follower holds (drained
# and closed, deleted, or written anew): a glob may still find it under a new
# name, or its copy, on a later poll.
RECENT_SECONDS = 60.0
# A glob's file with nothing new for this long is closed until it grows, so
# that a glob over many files does not hold a descriptor for each.
IDLE_CLOSE_SECONDS = 60.0

def content_key(head: bytes) -> bytes | None:
    """What names a file's content: its first line (its first FINGERPRINT_BYTES
    bytes when that line is longer); None while it has neither."""
    nl = head.find(b"\n", 0, FINGERPRINT_BYTES)
    if nl >= 0:
        return head[: nl + 1]
    return head[:FINGERPRINT_BYTES] if len(head) >= FINGERPRINT_BYTES else None


def same_content(fingerprint: bytes, head: bytes) -> bool:
    """Do a file's first bytes (head) show the content a fingerprint was taken of?"""
    n = min(len(fingerprint), len(head))
    return fingerprint[:n] == head[:n] and content_key(fingerprint[:n]) is not None


Key = tuple[int, int]  # (device, inode)


class Ledger:
    """Read positions by file, and which follower holds which file; shared by a source's followers.

    It keeps the position of every file a follower holds (followed or being
    drained), and of the ones let go in the last RECENT_SECONDS, so it is
    bounded by what is followed, not by a constant. Following by identity
    rather than by name is what keeps a renamed rotation (mail.log ->
    mail.log.1) from being read twice when a glob matches both names, and
    what lets a restart resume a rotated file.
    """

    def __init__(self, positions: list[Position] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._known: dict[Key, Position] = {}
        self._touched: dict[Key, float] = {}  # when each position was last recorded
        self._by_content: dict[bytes, set[Key]] = {}  # content_key -> files known with it
        # Contents no longer at their inode (it was written anew): their copies may still turn up.
        self._retired: list[tuple[Position, float]] = []
        self._holders: dict[Key, _OpenFile] = {}
        for pos in positions or ():
            self.record(pos)

    def record(self, pos: Position) -> None:
        key = (pos.dev, pos.ino)
        old = self._known.get(key)
        self._known[key] = pos
        self._touched[key] = self._clock()
        if old is None or old.fingerprint != pos.fingerprint:
            if old is not None:
                self._unindex(key, old)
            content = content_key(pos.fingerprint)
            if content is not None:
                self._by_content.setdefault(content, set()).add(key)

    def _unindex(self, key: Key, pos: Position) -> None:
        content = content_key(pos.fingerprint)
        files = self._by_content.get(content, set()) if content is not None else set()
        files.discard(key)
        if not files and content is not None:
            self._by_content.pop(content, None)

    def retire(self, pos: Position) -> None:
        """The content pos was taken of is no longer at its inode (it was cut and written anew)."""
        self._retired.append((pos, self._clock()))

    def hold(self, f: _OpenFile) -> None:
        self._holders[(f.dev, f.ino)] = f
        self.record(f.position())

    def release(self, f: _OpenFile) -> None:
        key = (f.dev, f.ino)
        if self._holders.get(key) is f:
            del self._holders[key]
        self.record(f.position())

    def look_up(
        self, fd: int, key: Key, head: bytes, asking: _OpenFile | None = None,
    ) -> tuple[str, Position | None]:
        """What the file (device, inode) open as fd is: "held" by a follower
        (other than as asking);
        "copying" a file a follower holds (the same bytes so far: a copy in
        the making, or a twin that has not differed yet); or "free", with how
        far it (or the file it is a copy of) was read, if it was."""
        if self._holders.get(key, asking) is not asking:
            return "held", None
        pos = self._known.get(key)
        if pos is not None and same_content(pos.fingerprint, head):
            return "free", pos
        copied: list[Position] = [p for p, _ in self._retired if same_content(p.fingerprint, head)]
        for other in self._by_content.get(content_key(head) or b"", ()):
            p = self._known[other]
            if other == key or not same_content(p.fingerprint, head):
                continue
            original = self._holders.get(other)
            if original is not None:
                relation = original.relation(fd)
                if relation == "copy":
                    return "copying", None
                if relation == "twin":
                    continue  # another log that starts with the same line
            copied.append(p)
        # Of several (a copy of a copy), the one read furthest: nothing twice.
        return "free", max(copied, key=attrgetter("offset"), default=None)

    def forget_old(self) -> None:
        """Drop the positions of files no follower holds, recorded over RECENT_SECONDS ago."""
        cutoff = self._clock() - RECENT_SECONDS
        if len(self._known) > len(self._holders):
            for key in [k for k, t in self._touched.items() if t < cutoff and k not in self._holders]:
                self._unindex(key, self._known.pop(key))
                del self._touched[key]
        if self._retired and self._retired[0][1] < cutoff:
            self._retired = [(p, t) for p, t in self._retired if t >= cutoff]

    def __len__(self) -> int:
        return len(self._known)


class _OpenFile:
    """One file and what we know of it; its descriptor, unless closed while idle."""

    def __init__(
        self, fd: int, st: os.stat_result, offset: int, head: bytes, max_line: int, now: float,
        skipping: bool = False,
    ) -> None:
        self.fd: int | None = fd
        self.dev = st.st_dev
        self.ino = st.st_ino
        self.offset = offset
        self.head = head
        self.buffer = LineBuffer(max_line, skipping=skipping)
        self.last_data = now  # the follower's clock when data last came
        # No whole first line yet: held (so a rename cannot take it from us)
        # but not read, as it may be a copy in the making.
        self.undecided = content_key(head) is None

    def undecide(self) -> None:
        """Not to be read until told from the file it has the same bytes as:
        its fingerprint is left without a whole line, so that after a restart
        it is told apart again rather than found by its inode."""
        nl = self.head.find(b"\n")
        self.head = self.head[:nl] if nl >= 0 else self.head[: FINGERPRINT_BYTES - 1]
        self.undecided = True

    def position(self) -> Position:
        # A partial last line is read again after a restart rather than lost.
        return Position(self.dev, self.ino, self.head, self.offset - self.buffer.pending, self.buffer.skipping)

    def grow_head(self) -> None:
        if len(self.head) < FINGERPRINT_BYTES and self.fd is not None:
            self.head = os.pread(self.fd, FINGERPRINT_BYTES, 0)

    def cut_to(self, size: int) -> int | None:
        """Where to go on reading if the file was cut since we read it: at its
        new end when it was cut to a prefix of itself, at 0 when it holds other
        content now (copytruncate); None when it was not cut."""
        assert self.fd is not None
        if size >= self.offset and os.pread(self.fd, len(self.head), 0) == self.head:
            return None
        now = os.pread(self.fd, FINGERPRINT_BYTES, 0)
        if not same_content(self.head, now):
            return 0
        self.head = now  # cut inside the fingerprint: it is shorter now
        return size if size < self.offset else None

    def relation(self, fd: int) -> str:
        """What the file open as fd is to this one, whose fingerprint it shares:
        its "copy", a "twin" (another log starting with the same line), or
        "cut" (this one holds other content now, so fd may be its copy)."""
        if self.fd is None:
            return "copy"  # closed while idle: the fingerprint is all there is
        ours = os.pread(self.fd, COPY_CHECK_BYTES, 0)
        if not same_content(self.head, ours):
            return "cut"
        theirs = os.pread(fd, COPY_CHECK_BYTES, 0)
        n = min(len(ours), len(theirs))
        return "copy" if ours[:n] == theirs[:n] else "twin"

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@contextmanager
def _closed_on_error(fd: int) -> Iterator[None]:
    """Close fd if what is done with it before it has an owner raises."""
    try:
        yield
    except BaseException:
        os.close(fd)
        raise


def _open_file(path: str) -> tuple[int, os.stat_result, bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    with _closed_on_error(fd):
        return fd, os.fstat(fd), os.pread(fd, FINGERPRINT_BYTES, 0)


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
        idle_close_seconds: float | None = None,
        max_line: int = DEFAULT_MAX_LINE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.stats = SourceStats()
        self._sink = sink
        self._ledger = ledger
        self._start_at_end = start_at_end  # and the path not looked at yet
        # (device, inode, size) of the file the path held at start-up, until it is opened.
        self._start: tuple[int, int, int] | None = None
        self._last_known = last_known  # what this path held when state was saved
        # Older files this path held, still being drained when state was saved.
        self._last_draining = list(last_draining or ())
        # A glob match that is deleted is closed after the grace period; a
        # configured path keeps its last file open until the path is back,
        # because the writer goes on writing to it until then.
        self._close_when_gone = close_when_gone
        self._grace = grace_seconds
        self._idle_close = idle_close_seconds
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

    @property
    def open_files(self) -> int:
        """Descriptors held."""
        files = [f for f, _ in self._draining] + ([self._current] if self._current else [])
        return sum(f.fd is not None for f in files)

    def close(self) -> None:
        for f, _ in self._draining:
            f.close()
        self._draining.clear()
        if self._current is not None:
            self._current.close()
            self._current = None

    def poll(self) -> int:
        """Notice rotation or truncation, and read everything new; return how
        many bytes were read. A read that fails (EIO, ESTALE, ...) is counted
        and logged, and tried again on the next poll: it stops neither this
        follower's other files nor the daemon."""
        errors, read = self.stats.read_errors, self.stats.bytes_read
        now = self._clock()
        self._drain_old(now)
        try:
            self._poll_path(now)
        except OSError as err:
            self._failed(err)
        if self.stats.read_errors == errors:
            self._failing = False  # the episode is over: the next failure is logged again
        return self.stats.bytes_read - read

    def _poll_path(self, now: float) -> None:
        """Look at the path again and read its file."""
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
        if self._start_at_end:
            self._start_at_end = False
            self._start = (st.st_dev, st.st_ino, st.st_size)
        if cur is None:
            self._open_current()
        elif (st.st_dev, st.st_ino) != (cur.dev, cur.ino):
            self.stats.rotations += 1
            self._current = None
            if cur.fd is None:
                self._finish(cur)  # closed while idle: a glob finds it under its new name
            else:
                self._draining.append((cur, now + self._grace))
                self._read(cur)
            self._open_current()
        elif cur.fd is not None or (st.st_size != cur.offset and self._reopen(cur)):
            # Checked before reading, so that bytes written after a truncation
            # are never read from the old offset.
            if not self._still_holds(cur, st.st_size):
                self._written_anew(cur)
                return
            self._read(cur)
            if self._idle_close is not None and now - cur.last_data >= self._idle_close:
                cur.close()

    def _reopen(self, f: _OpenFile) -> bool:
        """Open again by path a file closed while idle, if the path still names it."""
        fd, st, _ = _open_file(self.path)
        if (st.st_dev, st.st_ino) != (f.dev, f.ino):  # rotated since the stat: seen on the next poll
            os.close(fd)
            return False
        f.fd = fd
        return True

    def _still_holds(self, f: _OpenFile, size: int) -> bool:
        """Does f still hold the content we were reading? If it was cut to a
        prefix of itself, reading goes on at its new end."""
        resume_at = f.cut_to(size)
        if resume_at is None:
            return True
        self.stats.truncations += 1
        if resume_at == 0:
            return False
        f.offset = resume_at
        f.buffer = LineBuffer(self._max_line)  # a partial line from before is void
        return True

    def _written_anew(self, f: _OpenFile) -> None:
        """The current file holds other content now (copytruncate, or a copy
        made over it): read what is left of the old content from its copy
        beside the path, then take the file up again as one not seen before."""
        before = f.position()
        f.close()
        self._ledger.release(f)
        self._ledger.retire(before)
        self._current = None
        self._drop_replaced()  # the copy may have been made over one since the poll began
        self._drain_beside([before], rotated=False)
        self._open_current()

    def _open_current(self) -> None:
        fd, st, head = _open_file(self.path)
        with _closed_on_error(fd):
            status, known = self._ledger.look_up(fd, (st.st_dev, st.st_ino), head)
            if status == "held":  # read by another follower until it lets go
                os.close(fd)
                return
            # Files rotated away before the state was saved are older than
            # whatever this path holds now: finish them first.
            rotated = self._last_draining
            if known is None and self._last_known is not None:
                # The file we were reading was rotated while we were down too.
                rotated = [*rotated, self._last_known]
            self._drain_beside(rotated, rotated=True)
            if known is not None:
                cur = self._resumed(fd, st, head, known)
            else:
                cur = _OpenFile(fd, st, self._start_offset(st, rotated), head, self._max_line, self._clock())
                if status == "copying":
                    cur.undecide()
        self._ledger.hold(cur)
        self._current = cur
        self._start = None
        self._last_known = None
        self._last_draining = []
        self._read(cur)

    def _start_offset(self, st: os.stat_result, rotated: list[Position]) -> int:
        """Where a file not read before is read from: the size it had at
        start-up if the path held it then, else (it appeared later, or is
        newer than files rotated while we were down) its first byte."""
        if self._start is None or self._start[:2] != (st.st_dev, st.st_ino) or rotated:
            return 0
        return self._start[2]

    def _resumed(self, fd: int, st: os.stat_result, head: bytes, known: Position) -> _OpenFile:
        """The file read before as far as known says (or a copy of that file)."""
        offset, skipping = known.offset, known.skipping
        if (st.st_dev, st.st_ino) == (known.dev, known.ino) and st.st_size < offset:
            self.stats.truncations += 1  # cut to a prefix of itself: the rest is new
            offset, skipping = st.st_size, False
        # A copy shorter than the offset is still being made: its rest was read already.
        return _OpenFile(fd, st, offset, head, self._max_line, self._clock(), skipping)

    def _drain_beside(self, wanted: list[Position], rotated: bool) -> None:
        """Find the files of wanted beside the path (renamed, or copied), and drain them from their offsets."""
        if not wanted:
            return
        directory = os.path.dirname(self.path) or "."
        base = os.path.basename(self.path)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return
        wanted = list(wanted)
        for name in names:
            if not wanted:
                return
            if not name.startswith(base) or name == base or name.endswith(COMPRESSED_SUFFIXES):
                continue
            try:
                fd, st, head = _open_file(os.path.join(directory, name))
            except OSError:
                continue
            last = next((p for p in wanted if same_content(p.fingerprint, head)), None)
            try:
                free = last is not None and self._ledger.look_up(fd, (st.st_dev, st.st_ino), head)[0] == "free"
            except OSError as err:  # it cannot be told from a file another follower holds
                self._failed(err)
                free = False
            if last is None or not free:
                os.close(fd)
                continue
            wanted.remove(last)
            old = self._resumed(fd, st, head, last)
            self._ledger.hold(old)
            if rotated:
                self.stats.rotations += 1
            self._draining.append((old, self._clock() + self._grace))
            self._read(old)

    def _drop_replaced(self) -> None:
        """Let go of the files being drained that hold other content now (a copy
        made over them): what they held is gone, what they hold is another's."""
        for f, until in list(self._draining):
            try:
                replaced = f.fd is not None and not self._still_holds(f, os.fstat(f.fd).st_size)
            except OSError as err:
                self._failed(err)
                continue
            if replaced:
                self._drop(f, until)

    def _drop(self, f: _OpenFile, until: float) -> None:
        self._draining.remove((f, until))
        f.close()
        self._ledger.release(f)

    def _drain_old(self, now: float) -> None:
        self._drop_replaced()
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
        self._ledger.release(f)

    def _read(self, f: _OpenFile) -> None:
        """Read what is new in f; a read that fails is counted, and tried again on the next poll."""
        try:
            self._read_new(f)
        except OSError as err:
            self._failed(err)

    def _read_new(self, f: _OpenFile) -> None:
        if f.undecided and not self._decided(f):
            return
        budget = MAX_READ_PER_POLL
        while budget > 0 and f.fd is not None:
            data = os.pread(f.fd, READ_SIZE, f.offset)
            if not data:
                return
            f.grow_head()  # before the offset moves: if it fails, data is read again
            f.offset += len(data)
            budget -= len(data)
            f.last_data = self._clock()
            self.stats.last_read_time = time.time()
            self.stats.bytes_read += len(data)
            block = f.buffer.push(data)
            cut = f.buffer.take_cut()
            if block or cut:
                self._sink(block, cut)
            self._ledger.record(f.position())

    def _decided(self, f: _OpenFile) -> bool:
        """Once a held file has a whole first line and differs from every file
        another follower holds: is it new, or a copy of a file read before
        (then it goes on from where that one was read to)?"""
        if f.fd is None:
            return False
        head = os.pread(f.fd, FINGERPRINT_BYTES, 0)
        if content_key(head) is None:
            return False
        status, known = self._ledger.look_up(f.fd, (f.dev, f.ino), head, asking=f)
        if status != "free":
            return False  # still the same bytes as a file another follower reads
        f.head, f.undecided = head, False
        if known is not None and (known.dev, known.ino) != (f.dev, f.ino):
            f.offset, f.buffer = known.offset, LineBuffer(self._max_line, skipping=known.skipping)
        self._ledger.hold(f)  # now under its content
        return True

    def _failed(self, err: OSError) -> None:
        self.stats.read_errors += 1
        if not self._failing:  # log once per episode, not on every poll
            log.warning("%s: %s (will retry)", self.path, err.strerror or err)
            self._failing = True


class LogSource:
    """One configured source: a path or a glob pattern, with its followers.

    A path that exists when we start is read from its end (or its saved
    position); one that appears later is read from its first byte. A glob
    match that is only another name for a file another follower holds (a
    renamed rotation, mail.log -> mail.log.1, or its copy) waits until that
    one lets it go, and one that was read before resumes where it was, so
    nothing is read twice. Compressed rotations are skipped.
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
        self.ledger = Ledger(
            [*self._saved.values(), *(p for files in self._saved_draining.values() for p in files)], clock,
        )
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

    def poll(self, stopping: Callable[[], bool] = lambda: False) -> int:
        """Poll the followers, and follow the glob's new matches; return how
        many bytes were read. Once stopping() says so, the followed files not
        polled yet wait, so that a stop comes within one file's read and not a
        glob's backlog: they are read from their saved positions at the next
        start. New matches are still followed and read: a file first seen at
        the next start would be taken as there before it, and read from its end."""
        read = 0
        for path, follower in list(self.followers.items()):
            if stopping():
                break
            read += follower.poll()
            if self._is_glob and follower.finished:
                del self.followers[path]  # deleted; the ledger still knows how far it was read
        # In name order, so that after a restart mail.log takes up the
        # draining of its rotated mail.log.1 before the glob reaches that name.
        for path in self.paths():
            if path in self.followers:
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
                idle_close_seconds=IDLE_CLOSE_SECONDS if self._is_glob else None,
                max_line=self._max_line,
                clock=self._clock,
            )
            self.followers[path] = follower
            read += follower.poll()
        self.ledger.forget_old()
        self._started = True
        return read

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

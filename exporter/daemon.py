"""The long-running exporter: sources polled on wake-ups, state saved as it goes.

Watchdog's inotify observer only wakes the loop; the loop also polls on a
timer, so correctness never depends on an event arriving. Files coming and
going (created, renamed, deleted) wake it at all times; a file growing wakes
it while the logs are quiet. While they are busy the timer reads every
BUSY_POLL_INTERVAL, which is as often as wake-ups would be merged into polls
anyway (MIN_POLL_GAP), and watchdog handling an event for every write would
cost a tenth of a core at 1,000 lines/s. The timer starts short after a poll
that read something and backs off to poll_interval_seconds while the logs
are quiet. With --poll (NFS, CIFS), or where a directory cannot be watched
(it does not exist yet, or the inotify limits are used up), the timer is all
there is. Tests drive Daemon.poll() directly and need no threads or sleeps.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import time
from collections.abc import Callable

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from exporter.config import Settings, SourceConfig
from exporter.journal import JournalSource
from exporter.metrics import ExporterMetrics
from exporter.parsers import formats_for
from exporter.scanner import LineScanner
from exporter.state import State, load_state, save_state
from exporter.tailer import LogSource
from exporter.wakeup import Flag, Waker

log = logging.getLogger(__name__)

# Wake-ups closer together than this are merged into one poll: a busy log
# writes line by line, and one poll per line would cost CPU for nothing.
MIN_POLL_GAP = 0.05
# The timer after a poll that read something; each quiet poll doubles it, up
# to poll_interval_seconds. Short, so that --poll reads a busy log (and sees a
# file rotated away) before copytruncate or the next rotation takes it.
BUSY_POLL_INTERVAL = 0.05
# The events watched while the logs are busy, and while they are quiet. One
# watch per directory, switched between the two (watchdog keeps one inotify
# mask per directory, so two watches on it would not each keep their own).
BUSY_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileMovedEvent, FileDeletedEvent, FileClosedEvent, DirCreatedEvent, DirMovedEvent,
    DirDeletedEvent,
]
QUIET_EVENTS = [*BUSY_EVENTS, FileModifiedEvent]
# How often a directory that could not be watched for another reason than
# not existing (the inotify limits) is tried again.
WATCH_RETRY_SECONDS = 30.0
STATE_SAVE_INTERVAL = 1.0


class _WakeOnEvent(FileSystemEventHandler):
    def __init__(self, waker: Waker) -> None:
        self._waker = waker

    def on_any_event(self, event) -> None:  # noqa: ANN001 - watchdog's type
        self._waker.wake()


def raise_open_files_limit() -> None:
    """Raise the soft limit on open files to the hard one, as Go programs do
    at start: a glob over many logs holds a descriptor for each busy file, and
    the default soft limit (1,024) is far below what the system allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Linux caps the hard limit at fs.nr_open: it is never infinite for open files.
    if hard == resource.RLIM_INFINITY or soft >= hard:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError) as err:
        log.warning("cannot raise the open files limit from %d to %d: %s", soft, hard, err)


class Daemon:
    def __init__(
        self,
        settings: Settings,
        metrics: ExporterMetrics,
        wake: Callable[[], None] = lambda: None,
        journalctl: tuple[str, ...] = ("journalctl",),
        make_observer: Callable[[], BaseObserver] = Observer,
    ) -> None:
        raise_open_files_limit()  # before the first poll opens the logs
        self.metrics = metrics
        self.settings = settings
        self.sources: dict[str, LogSource] = {}
        self.journals: dict[str, JournalSource] = {}
        self._wake = wake  # journal entries arrive on a thread, which wakes the loop
        self._journalctl = journalctl
        self._make_observer = make_observer
        # Directories that could not be watched -> when to try again (0: as soon as it exists).
        self._unwatched: dict[str, float] = {}
        self._state_due = 0.0
        self._save_failing = False
        self._saved_state = load_state(settings.state_file) if settings.state_file else State()
        if self._saved_state.counters:
            metrics.restore(self._saved_state.counters)
        self.apply(settings)

    # -- configuration ------------------------------------------------------------
    def apply(self, settings: Settings) -> None:
        """Start following the configured sources; keep the ones already followed."""
        self.settings = settings
        # Sources already followed keep the tables they started with.
        self._labeller = settings.labeller(self.metrics.services)
        for source in settings.sources:
            if source.service is not None:  # a place under the cap, whatever the logs hold first
                self.metrics.services.label(source.service)
        files = {s.name: s for s in settings.sources if s.path}
        journals = {s.name: s for s in settings.sources if s.journal_units}
        for name in [name for name in self.sources if name not in files]:
            self._remember(name, self.sources.pop(name))
        for name in [name for name in self.journals if name not in journals]:
            journal = self.journals.pop(name)
            if journal.cursor:  # so that adding it back resumes here
                self._saved_state.journal_cursors[name] = journal.cursor
            journal.close()
        for name, source in files.items():
            if name not in self.sources:
                self.sources[name] = self._file_source(source)
        for name, source in journals.items():
            if name not in self.journals:
                self.journals[name] = JournalSource(
                    source.journal_units,
                    self._scanner_for(name, source),
                    self._wake,
                    cursor=self._saved_state.journal_cursors.get(name),
                    command=self._journalctl,
                )

    def _scanner_for(self, name: str, source: SourceConfig):  # noqa: ANN202
        """The scanner of one followed file (name: its path) or journal source."""
        sink = self.metrics.sink_for(name)
        formats = formats_for(source.format, self.settings.formats)
        return LineScanner(formats, sink, self.settings.max_line_bytes, self._labeller, service=source.service).feed

    def _file_source(self, source: SourceConfig) -> LogSource:
        assert source.path is not None
        return LogSource(
            source.path,
            lambda path: self._scanner_for(path, source),
            from_beginning=self.settings.from_beginning,
            saved=self._saved_state.positions.pop(source.name, {}),
            saved_draining=self._saved_state.draining.pop(source.name, {}),
            grace_seconds=self.settings.rotation_grace_seconds,
            max_line=self.settings.max_line_bytes,
        )

    def _remember(self, name: str, source: LogSource) -> None:
        """Close a source that is no longer configured; adding it back resumes where it stopped."""
        self._saved_state.positions[name] = source.positions()
        self._saved_state.draining[name] = source.draining_positions()
        source.close()

    def _watch(
        self,
        observer: BaseObserver,
        handler: FileSystemEventHandler,
        watched: dict[str, ObservedWatch],
        events: list[type[FileSystemEvent]],
    ) -> None:
        """Watch the sources' directories not watched yet for events; say once for each that cannot be."""
        now = time.monotonic()
        for directory in sorted(self.watched_directories() - set(watched)):
            retry = self._unwatched.get(directory)
            if retry is not None and (now < retry or not os.path.isdir(directory)):
                continue
            try:
                watch = observer.schedule(handler, directory, recursive=False, event_filter=events)
            except OSError as err:
                if retry is None:
                    if err.errno == errno.ENOENT:
                        log.warning("log directory %s does not exist (yet); following its files when it appears",
                                    directory)
                    else:
                        log.warning("cannot watch %s (%s); polling it, every %ss when quiet",
                                    directory, err, self.settings.poll_interval_seconds)
                self._unwatched[directory] = 0.0 if err.errno == errno.ENOENT else now + WATCH_RETRY_SECONDS
                continue
            watched[directory] = watch
            if self._unwatched.pop(directory, None) is not None:
                log.info("watching %s now", directory)

    def _reload(self, reload: Callable[[], Settings] | None) -> None:
        if reload is None:
            return
        try:
            settings = reload()
        except Exception as err:  # a bad edit must not stop a running exporter
            log.error("reload failed, keeping the running configuration: %s", err)
            return
        self.apply(settings)
        log.info("configuration reloaded: %d sources", len(self.sources))

    def watched_directories(self) -> set[str]:
        dirs: set[str] = set()
        for source in self.sources.values():
            dirs |= source.directories()
        return dirs

    # -- the loop -----------------------------------------------------------------
    def poll(self, stopping: Callable[[], bool] = lambda: False) -> int:
        """Poll every source once; return how many bytes were read. Once
        stopping() says so (SIGTERM), the files and journals not read yet
        wait for the next start, so that a backlog cannot hold up the stop."""
        read = sum(source.poll(stopping) for source in self.sources.values())
        read += sum(journal.poll() for journal in self.journals.values() if not stopping())
        stats = [(path, f.stats) for s in self.sources.values() for path, f in s.followers.items()]
        stats += [(name, j.stats) for name, j in self.journals.items()]
        self.metrics.update_sources(stats)
        now = time.monotonic()
        if self.settings.state_file and now >= self._state_due:
            self.save_state()
            self._state_due = now + STATE_SAVE_INTERVAL
        return read

    def save_state(self) -> None:
        if not self.settings.state_file:
            return
        state = State(
            positions={name: s.positions() for name, s in self.sources.items()},
            draining={name: s.draining_positions() for name, s in self.sources.items()},
            counters=self.metrics.snapshot(),
            journal_cursors={name: j.cursor for name, j in self.journals.items() if j.cursor},
        )
        try:
            save_state(self.settings.state_file, state)
        except OSError as err:
            # Reading and counting go on; the next save tries again.
            if not self._save_failing:  # once per episode, not every second
                log.warning("cannot save state file %s: %s (will retry)", self.settings.state_file, err)
            self._save_failing = True
        else:
            self._save_failing = False

    @property
    def state_saved(self) -> bool:
        """Whether the last save of the state file succeeded."""
        return bool(self.settings.state_file) and not self._save_failing

    def run(
        self,
        stop: Flag,
        waker: Waker,
        reload_requested: Flag | None = None,
        reload: Callable[[], Settings] | None = None,
    ) -> None:
        """Poll until stop is set; on reload_requested, apply reload()'s settings."""
        handler = _WakeOnEvent(waker)
        observer = None if self.settings.poll else self._make_observer()
        watched: dict[str, ObservedWatch] = {}
        events = BUSY_EVENTS
        if observer is not None:
            # Started before anything is scheduled, so that a directory that
            # cannot be watched fails alone, in _watch, and not the start.
            observer.start()
        interval = BUSY_POLL_INTERVAL
        try:
            last = 0.0
            while not stop.is_set():
                if reload_requested is not None and reload_requested.is_set():
                    reload_requested.clear()
                    self._reload(reload)
                if observer is not None:
                    self._watch(observer, handler, watched, events)
                gap = MIN_POLL_GAP - (time.monotonic() - last)
                if gap > 0:
                    time.sleep(gap)
                last = time.monotonic()
                read = self.poll(stop.is_set)
                interval = BUSY_POLL_INTERVAL if read else min(2 * interval, self.settings.poll_interval_seconds)
                # Quiet: a write wakes the loop. Busy: the timer reads as often
                # as wake-ups would be merged anyway.
                wanted = BUSY_EVENTS if read else QUIET_EVENTS
                if observer is not None and wanted is not events:
                    for watch in watched.values():
                        observer.unschedule(watch)
                    watched.clear()
                    events = wanted
                    if events is QUIET_EVENTS:
                        continue  # watched again, then polled: what came meanwhile does not wait for the timer
                waker.wait(interval)
        finally:
            if observer is not None:
                observer.stop()
                observer.join(timeout=5)
            self.poll(stop.is_set)
            self.save_state()
            followed: list[LogSource | JournalSource] = [*self.sources.values(), *self.journals.values()]
            for source in followed:
                source.close()

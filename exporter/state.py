"""The state file: read positions and counter values, saved together, atomically.

Positions and counts are taken in the same instant and written in one
rename, so after a crash (even kill -9) the counters resume exactly where
the positions say reading resumes: nothing is lost and nothing is counted
twice. Lines read after the last save are simply read again.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field

from exporter.source_progress import Position

log = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass
class State:
    # source pattern -> file path -> position
    positions: dict[str, dict[str, Position]] = field(default_factory=dict)
    # source pattern -> file path -> the files rotated away from it, still being drained
    draining: dict[str, dict[str, list[Position]]] = field(default_factory=dict)
    counters: list[list] = field(default_factory=list)  # ExporterMetrics.snapshot() rows
    journal_cursors: dict[str, str] = field(default_factory=dict)  # source name -> cursor


def load_state(path: str) -> State:
    """The saved state, or an empty one when there is none yet.

    A state file that cannot be read is set aside (renamed to .corrupt) and
    reading starts afresh, so one bad file cannot keep the exporter down.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown version {data.get('version')!r}")
        return State(
            positions={
                source: {p: Position.from_json(pos) for p, pos in files.items()}
                for source, files in data.get("positions", {}).items()
            },
            draining={
                source: {p: [Position.from_json(pos) for pos in old] for p, old in files.items()}
                for source, files in data.get("draining", {}).items()
            },
            counters=list(data.get("counters", [])),
            journal_cursors=dict(data.get("journal_cursors", {})),
        )
    except FileNotFoundError:
        return State()
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        aside = path + ".corrupt"
        log.error("state file %s is unreadable (%s); moved to %s, starting afresh", path, err, aside)
        try:
            os.replace(path, aside)
        except OSError:
            pass
        return State()


def save_state(path: str, state: State) -> None:
    data = {
        "version": STATE_VERSION,
        "positions": {
            source: {p: pos.to_json() for p, pos in files.items()}
            for source, files in state.positions.items()
        },
        "draining": {
            source: {p: [pos.to_json() for pos in old] for p, old in files.items()}
            for source, files in state.draining.items()
        },
        "counters": state.counters,
        "journal_cursors": state.journal_cursors,
    }
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)

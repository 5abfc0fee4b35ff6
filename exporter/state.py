"""The state file: read positions and counter values, saved together, atomically.

Positions and counts are taken in the same instant and written in one
rename, so after a crash (even kill -9) the counters resume exactly where
the positions say reading resumes: nothing is lost and nothing is counted
twice. Lines read after the last save are simply read again.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, NoReturn

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


class StateError(ValueError):
    """The state file does not have the shape this version writes."""


def _fail(where: str, problem: str) -> NoReturn:
    raise StateError(f"{where}: {problem}")


def _mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        _fail(where, "not a mapping")
    return value


def _count(value: Any, where: str) -> int:
    # bool is an int to Python, never to this file.
    if type(value) is not int or value < 0:
        _fail(where, f"{value!r} is not a whole number >= 0")
    return value


def _position(value: Any, where: str) -> Position:
    data = _mapping(value, where)
    for key in ("dev", "ino", "offset"):
        _count(data.get(key), f"{where}.{key}")
    fingerprint = data.get("fingerprint")
    if not isinstance(fingerprint, str):
        _fail(f"{where}.fingerprint", "not hex text")
    try:
        bytes.fromhex(fingerprint)
    except ValueError:
        _fail(f"{where}.fingerprint", "not hex text")
    if not isinstance(data.get("skipping", False), bool):
        _fail(f"{where}.skipping", "not true or false")
    return Position.from_json(data)


def _counter_row(value: Any, where: str) -> list:
    if not isinstance(value, list) or len(value) != 3:
        _fail(where, "not a [name, labels, value] row")
    name, labels, number = value
    if not isinstance(name, str):
        _fail(f"{where}[0]", "the name is not text")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in _mapping(labels, f"{where}[1]").items()):
        _fail(f"{where}[1]", "a label name or value is not text")
    if type(number) not in (int, float) or not math.isfinite(number) or number < 0:
        _fail(f"{where}[2]", f"{number!r} is not a finite count >= 0")
    return value


def _reject_constant(name: str) -> float:
    raise StateError(f"{name} is not a count")  # json.load would take NaN and Infinity


def parse_state(text: str) -> State:
    """The state in a state file's text, checked whole before any of it is used."""
    data = _mapping(json.loads(text, parse_constant=_reject_constant), "the file")
    unknown = set(data) - {"version", "positions", "draining", "counters", "journal_cursors"}
    if unknown:
        _fail("the file", f"unknown keys {sorted(unknown)}")
    if data.get("version") != STATE_VERSION:
        _fail("version", f"{data.get('version')!r}, not {STATE_VERSION}")
    positions = {
        source: {path: _position(pos, f"positions.{source}.{path}")
                 for path, pos in _mapping(files, f"positions.{source}").items()}
        for source, files in _mapping(data.get("positions", {}), "positions").items()
    }
    draining: dict[str, dict[str, list[Position]]] = {}
    for source, files in _mapping(data.get("draining", {}), "draining").items():
        draining[source] = {}
        for path, old in _mapping(files, f"draining.{source}").items():
            if not isinstance(old, list):
                _fail(f"draining.{source}.{path}", "not a list")
            draining[source][path] = [_position(pos, f"draining.{source}.{path}[{i}]") for i, pos in enumerate(old)]
    counters = data.get("counters", [])
    if not isinstance(counters, list):
        _fail("counters", "not a list")
    cursors = _mapping(data.get("journal_cursors", {}), "journal_cursors")
    if not all(isinstance(c, str) for c in cursors.values()):
        _fail("journal_cursors", "a cursor is not text")
    return State(
        positions=positions,
        draining=draining,
        counters=[_counter_row(row, f"counters[{i}]") for i, row in enumerate(counters)],
        journal_cursors=dict(cursors),
    )


def load_state(path: str) -> State:
    """The saved state, or an empty one when there is none yet.

    A state file that cannot be read, or whose contents are not exactly the
    shape this version writes (checked whole before any of it is used), is
    set aside (renamed to .corrupt) and reading starts afresh, with one error
    logged: one bad file cannot keep the exporter down or in a restart loop.
    """
    try:
        with open(path, encoding="utf-8") as f:
            return parse_state(f.read())
    except FileNotFoundError:
        return State()
    except (OSError, ValueError) as err:  # StateError, JSON and UTF-8 errors are ValueErrors
        aside = path + ".corrupt"
        try:
            os.replace(path, aside)
            where = f"moved to {aside}"
        except OSError as move_err:
            where = f"could not be moved aside ({move_err.strerror or move_err})"
        log.error("state file %s is unusable (%s); %s, starting afresh", path, err, where)
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

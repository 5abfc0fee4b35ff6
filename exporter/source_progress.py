"""What a log source reports of its reading: how far it read each file, and what it saw.

Position is how far one file was counted and how to know that file again;
the tailer makes and resumes from them, the state file keeps them. SourceStats
are a source's rotations, truncations, read errors and bytes read, which the
metrics expose. Both live here so that the metrics, the state file and the
journal source need not import the tailer for them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Position:
    """How far one file has been counted, and how to recognise that file."""

    dev: int
    ino: int
    fingerprint: bytes  # the file's first bytes, as many as the tailer keeps (see tailer.content_key)
    offset: int
    skipping: bool = False  # offset is inside the cut-off rest of a long line

    def to_json(self) -> dict:
        return {
            "dev": self.dev, "ino": self.ino, "fingerprint": self.fingerprint.hex(), "offset": self.offset,
            "skipping": self.skipping,
        }

    @classmethod
    def from_json(cls, data: dict) -> Position:
        return cls(
            int(data["dev"]), int(data["ino"]), bytes.fromhex(data["fingerprint"]), int(data["offset"]),
            bool(data.get("skipping", False)),  # older state files do not have it
        )


class SourceStats:
    """What a source (a file follower or the journal) saw, for the self-metrics."""

    def __init__(self) -> None:
        self.rotations = 0
        self.truncations = 0
        self.read_errors = 0
        self.last_read_time = 0.0  # wall clock of the last read that returned data
        self.bytes_read = 0

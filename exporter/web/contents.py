"""A watched file's contents, read again to see whether it has changed.

The web config and the certificate files are checked at every request or
connection, so that an edit applies at once (exporter-toolkit reads its web
config at every request) and a renewed certificate is served without a
restart; they are parsed again only when their contents differ. Contents,
not a stat: two writes within one tick of the file system's clock (a few
milliseconds) that keep the size leave the stat as it was. The files are
small, so reading them costs microseconds.
"""

from __future__ import annotations


def file_contents(path: str) -> bytes | None:
    """The file's bytes; None if it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None

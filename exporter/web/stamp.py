"""A file's stamp: what changes when the file is rewritten or replaced.

A cheap stat, so that a file can be checked at every connection or request
and re-read only when it has changed.
"""

from __future__ import annotations

import os

FileStamp = tuple[int, int, int, int] | None  # None: the file cannot be stat'ed


def file_stamp(path: str) -> FileStamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns

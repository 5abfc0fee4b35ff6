"""Debian packages the labs run without installing them.

Exim, OpenSMTPD and Sendmail each conflict with the installed Postfix, so
their packages are fetched with `apt-get download` into a store under
/var/tmp and unpacked with `dpkg -x` into a private root there, both kept
between runs and shared by runs side by side: one at a time fetches and
unpacks, under a lock. Nothing is installed and the host's package state is
untouched.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PackageError(RuntimeError):
    pass


class PackagesUnavailable(PackageError):
    """The packages could not be downloaded for lack of network."""


# Words of apt's messages when the archive cannot be reached.
_NETWORK_FAILURES = ("Could not resolve", "Temporary failure resolving", "Failed to fetch",
                     "Unable to connect", "Network is unreachable", "Connection timed out",
                     "Could not connect")


def unavailable(why_root: str, *tools: str) -> str | None:
    """Why this machine cannot run a lab that needs root (for why_root) and
    these tools, or None when it can."""
    if os.geteuid() != 0:
        return why_root
    for tool in ("apt-get", "dpkg", "unshare", *tools):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH"
    return None


class Packages:
    """Some Debian packages, downloaded once into STORE/debs and unpacked
    once into STORE/root."""

    def __init__(self, store: Path, *names: str) -> None:
        self.store = store
        self.names = names
        self.debs = store / "debs"
        self.root = store / "root"
        self._marker = self.root / ".smtp-reply-lab-packages"  # which packages the root holds

    def linker_setup(self, etc: Path) -> str:
        """Shell lines making the dynamic linker find the root's libraries, also
        for setuid and setgid binaries (which ignore LD_LIBRARY_PATH): an
        ld.so.conf.d entry written into `etc`, the upper of the namespace's
        overlay on /etc, then ldconfig, whose cache lands in that overlay."""
        conf = etc / "ld.so.conf.d"
        conf.mkdir(parents=True, exist_ok=True)
        # "zz": read last, so the host's own libraries come first.
        (conf / "zz-smtp-reply-lab.conf").write_text(
            "".join(f"{d}\n" for d in sorted(self.root.glob("usr/lib/*-linux-gnu"))))
        return "ldconfig\n"

    def _ready(self) -> bool:
        return self._marker.exists() and self._marker.read_text() == " ".join(self.names)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the store's lock: a run beside this one waits until this
        one's download and unpacking are done, and then finds them."""
        self.store.mkdir(parents=True, exist_ok=True)
        with open(self.store / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def unpacked(self) -> Path:
        """The private root holding every package, unpacking it the first time."""
        if self._ready():
            return self.root
        with self._locked():
            if self._ready():  # unpacked by a run that held the lock before this one
                return self.root
            debs = self.fetch()
            # Unpack beside the root and rename it into place: a run that dies
            # halfway leaves no half a root behind.
            staging = self.store / "root.partial"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(mode=0o755)
            for deb in debs:
                subprocess.run(["dpkg", "-x", str(deb), str(staging)], check=True, capture_output=True, timeout=120)
            (staging / self._marker.name).write_text(" ".join(self.names))
            shutil.rmtree(self.root, ignore_errors=True)
            staging.rename(self.root)
        return self.root

    def _cached(self) -> list[Path | None]:
        return [max(self.debs.glob(f"{name}_*.deb"), default=None) for name in self.names]

    def fetch(self) -> list[Path]:
        """The .deb file of each package, downloaded once; called under the lock."""
        self.debs.mkdir(parents=True, exist_ok=True)
        # Downloaded beside debs/ and renamed into it, so that a download cut
        # short never leaves a partial .deb there to be taken for a whole one.
        download = self.store / "debs.partial"
        output = ""
        # A machine whose package lists are missing or stale learns the current
        # versions from one `apt-get update` and tries again.
        for refresh in (False, True):
            if all(self._cached()):
                return self._cached()
            if refresh:
                subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=300, check=False)
            shutil.rmtree(download, ignore_errors=True)
            download.mkdir()
            result = subprocess.run(
                ["apt-get", "download", "-o", "APT::Sandbox::User=root", *self.names],
                cwd=download, capture_output=True, text=True, timeout=300, check=False)
            output = result.stdout + result.stderr
            for deb in download.glob("*.deb"):
                deb.rename(self.debs / deb.name)
            shutil.rmtree(download)
            offline = [line for line in output.splitlines() if any(w in line for w in _NETWORK_FAILURES)]
            if offline:
                reason = re.sub(r"\S+://\S+ *", "", offline[0])  # the archive's address says nothing here
                raise PackagesUnavailable(f"cannot download {' '.join(self.names)}: {reason}")
        if all(self._cached()):
            return self._cached()
        raise PackageError(f"apt-get download {' '.join(self.names)} failed:\n{output}")

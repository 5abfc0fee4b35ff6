"""Debian packages the labs run without installing them.

Exim, OpenSMTPD and Sendmail each conflict with the installed Postfix, so
their packages are fetched with `apt-get download` into a store under
/var/tmp and unpacked with `dpkg -x` into a private root there, both kept
between runs. Nothing is installed and the host's package state is untouched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
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

    def unpacked(self) -> Path:
        """The private root holding every package, unpacking it the first time."""
        if self._marker.exists() and self._marker.read_text() == " ".join(self.names):
            return self.root
        debs = self.fetch()
        # Unpack beside the root and rename it into place: a run that dies
        # halfway, or a lab starting at the same time, never sees half a root.
        staging = Path(tempfile.mkdtemp(prefix="root.", dir=self.store))
        for deb in debs:
            subprocess.run(["dpkg", "-x", str(deb), str(staging)], check=True, capture_output=True, timeout=120)
        (staging / self._marker.name).write_text(" ".join(self.names))
        staging.chmod(0o755)
        shutil.rmtree(self.root, ignore_errors=True)
        try:
            staging.rename(self.root)
        except OSError:  # another run put its root there first
            shutil.rmtree(staging, ignore_errors=True)
        return self.root

    def _cached(self) -> list[Path | None]:
        return [max(self.debs.glob(f"{name}_*.deb"), default=None) for name in self.names]

    def fetch(self) -> list[Path]:
        """The .deb file of each package, downloaded once."""
        self.debs.mkdir(parents=True, exist_ok=True)
        output = ""
        # A machine whose package lists are missing or stale learns the current
        # versions from one `apt-get update` and tries again.
        for refresh in (False, True):
            if all(self._cached()):
                return self._cached()
            if refresh:
                subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=300, check=False)
            result = subprocess.run(
                ["apt-get", "download", "-o", "APT::Sandbox::User=root", *self.names],
                cwd=self.debs, capture_output=True, text=True, timeout=300, check=False)
            output = result.stdout + result.stderr
            offline = [line for line in output.splitlines() if any(w in line for w in _NETWORK_FAILURES)]
            if offline:
                reason = re.sub(r"\S+://\S+ *", "", offline[0])  # the archive's address says nothing here
                raise PackagesUnavailable(f"cannot download {' '.join(self.names)}: {reason}")
        if all(self._cached()):
            return self._cached()
        raise PackageError(f"apt-get download {' '.join(self.names)} failed:\n{output}")

"""A self-signed certificate for a lab's TLS (an MTA's STARTTLS, the
scripted peer's), made at test time with the openssl command line."""

from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed(directory: Path, hostname: str) -> tuple[Path, Path]:
    """(certificate, private key) for `hostname`, written into `directory`
    as tls.crt and tls.key (the key readable by its owner only, as Sendmail
    insists)."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={hostname}", "-keyout", str(key), "-out", str(cert)],
                   capture_output=True, timeout=60, check=True)
    key.chmod(0o600)
    return cert, key

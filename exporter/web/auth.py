"""HTTP basic auth against the bcrypt hashes of basic_auth_users."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping

import bcrypt

BCRYPT_MAX_PASSWORD_BYTES = 72  # bcrypt reads no further; longer ones are refused
AUTH_CACHE_SECONDS = 300.0
AUTH_CACHE_SIZE = 256


def _basic_credentials(header: str | None) -> tuple[bytes, bytes] | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (ValueError, binascii.Error):
        return None
    user, colon, password = raw.partition(b":")
    return (user, password) if colon else None


class BasicAuth:
    """Checks HTTP basic credentials against bcrypt hashes.

    An unknown user is checked against a decoy hash of the highest cost in
    use, so a wrong name takes as long as a wrong password. A successful
    check is remembered for a while, keyed on an HMAC of user and password
    under a per-process random key, so scrapes do not pay bcrypt's cost each
    time; failures are never remembered, so guessing stays slow. One bcrypt
    check runs at a time, so a flood of guesses takes one core, not all.
    """

    def __init__(self, users: Mapping[str, str], cache_seconds: float = AUTH_CACHE_SECONDS,
                 cache_size: int = AUTH_CACHE_SIZE) -> None:
        if not users:
            raise ValueError("BasicAuth needs at least one user")
        self._users = {name: hashed.encode() for name, hashed in users.items()}
        cost = max(int(hashed.split("$")[2]) for hashed in users.values())
        self._decoy = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(cost))
        self._cache_seconds, self._cache_size = cache_seconds, cache_size
        self._cache_key = os.urandom(32)
        self._passed: OrderedDict[bytes, float] = OrderedDict()  # digest -> when it expires
        self._cache_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()

    def check(self, authorization: str | None) -> bool:
        """True if the Authorization header value names a user and its password."""
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return False
        user, password = credentials
        if len(password) > BCRYPT_MAX_PASSWORD_BYTES:
            return False  # bcrypt >= 4.1 raises on these; no stored hash can match one
        digest = hmac.new(self._cache_key, len(user).to_bytes(4, "big") + user + password, hashlib.sha256).digest()
        now = time.monotonic()
        with self._cache_lock:
            expires = self._passed.get(digest)
            if expires is not None:
                if now < expires:
                    return True
                del self._passed[digest]
        try:
            hashed = self._users.get(user.decode("utf-8"))
        except UnicodeDecodeError:
            hashed = None
        with self._bcrypt_lock:
            try:
                matched = bcrypt.checkpw(password, hashed if hashed is not None else self._decoy)
            except ValueError:
                matched = False
        if not (matched and hashed is not None):
            return False
        if self._cache_seconds > 0:
            with self._cache_lock:
                self._passed[digest] = now + self._cache_seconds
                self._passed.move_to_end(digest)
                while len(self._passed) > self._cache_size:
                    self._passed.popitem(last=False)
        return True

"""Which mail provider a remote host belongs to: the `remote` label.

Relay host names are chosen by the remote side and unbounded in number, so
they never become label values themselves. A suffix table maps them to a
short, fixed list of providers; every other host is "other". The bundled
table can be extended or overridden from the config file (`providers:`).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from exporter.configcheck import Checker, child

OTHER = "other"

# provider -> domain suffixes of its MX and outbound relay hosts.
BUNDLED: dict[str, tuple[str, ...]] = {
    "google": ("google.com", "googlemail.com", "gmail.com"),
    "microsoft": ("outlook.com", "hotmail.com", "live.com", "microsoft.com", "office365.us"),
    "yahoo": ("yahoodns.net", "yahoo.com", "aol.com"),
    "apple": ("icloud.com", "me.com", "mac.com", "apple.com"),
    "proton": ("protonmail.ch", "proton.me", "protonmail.com"),
    "zoho": ("zoho.com", "zoho.eu", "zoho.in", "zohomail.com"),
    "fastmail": ("messagingengine.com", "fastmail.com"),
    "gmx": ("gmx.net", "gmx.de", "gmx.com", "web.de", "mail.com"),
    "ionos": ("ionos.com", "ionos.de", "kundenserver.de", "1and1.com", "perfora.net"),
    "yandex": ("yandex.ru", "yandex.net", "yandex.com"),
    "mailru": ("mail.ru",),
    "qq": ("qq.com",),
    "comcast": ("comcast.net",),
    "att": ("att.net", "prodigy.net", "sbcglobal.net"),
    "mimecast": ("mimecast.com", "mimecast.co.za", "mimecast-offshore.com"),
    "proofpoint": ("pphosted.com", "ppe-hosted.com", "proofpoint.com"),
    "barracuda": ("barracudanetworks.com", "barracuda.com", "cudamail.com"),
    "amazon": ("amazonses.com", "amazonaws.com"),
}

_PROVIDER_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_SUFFIX = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}")


class ProviderTable:
    """Maps a relay host name to its provider by the longest matching suffix."""

    def __init__(self, table: dict[str, tuple[str, ...]]) -> None:
        self.providers = tuple(sorted(table))
        self._by_suffix = {suffix: name for name, suffixes in table.items() for suffix in suffixes}
        # Relay hosts repeat (a handful of MX names carry most mail); bounded,
        # so a hostile log full of random names cannot grow it.
        self.provider_of = lru_cache(maxsize=4096)(self._lookup)

    @classmethod
    def bundled(cls) -> ProviderTable:
        return cls(BUNDLED)

    @classmethod
    def from_config(cls, value: Any, checker: Checker | None = None, key: str = "providers") -> ProviderTable:
        """The bundled table with the config's mapping under key applied.

        value: {provider: [suffix, ...]}. A provider named here gets exactly
        these suffixes (replacing the bundled ones for that provider).
        Raises ConfigError naming the key and the fix.
        """
        checker = checker or Checker()
        table = dict(BUNDLED)
        for name, suffixes in checker.mapping(key, value, None, "provider name to a list of domain suffixes").items():
            here = child(key, name)
            if not isinstance(name, str) or not _PROVIDER_NAME.fullmatch(name) or name == OTHER:
                checker.fail(here, "a provider name is lowercase letters, digits and _ "
                             f"(at most 32, starting with a letter), and not {OTHER!r}")
            if isinstance(suffixes, str):
                suffixes = [suffixes]
            if not isinstance(suffixes, list) or not suffixes:
                checker.fail(here, "give a list of domain suffixes, e.g. [example.net]")
            for i, suffix in enumerate(suffixes):
                if not isinstance(suffix, str) or not _SUFFIX.fullmatch(suffix.lower().strip(".")):
                    checker.fail(f"{here}[{i}]", f"{suffix!r} is not a domain suffix such as mx.example.net")
            table[name] = tuple(s.lower().strip(".") for s in suffixes)
        return cls(table)

    def _lookup(self, host: str) -> str:
        # From the whole name down, so the longest listed suffix wins.
        suffix = host.lower().rstrip(".")
        while True:
            name = self._by_suffix.get(suffix)
            if name is not None:
                return name
            dot = suffix.find(".")
            if dot < 0:
                return OTHER
            suffix = suffix[dot + 1 :]

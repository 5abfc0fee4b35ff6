"""What the web front serves now: the app and the TLS connections made from
the telemetry path and the web config file, re-made when the file changes.

exporter-toolkit reads its web config at every request, so a password
removed from basic_auth_users stops working at once. This does the same: the
file is read at every request and parsed again when its contents change
(contents.py). A broken edit is logged and the previous settings stay in use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from exporter.configcheck import ConfigError
from exporter.web.app import make_app
from exporter.web.config import WebConfig, load_web_config
from exporter.web.contents import file_contents
from exporter.web.tls import TLSConnections

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Site:
    app: Callable
    tls: TLSConnections | None  # None: plain HTTP


def _site(registry: CollectorRegistry, telemetry_path: str, config: WebConfig | None) -> Site:
    tls = None
    if config is not None and config.tls is not None:
        tls = TLSConnections(config.tls, config.path or "(web config)")
    return Site(make_app(registry, telemetry_path, config), tls)


class LiveSite:
    def __init__(self, registry: CollectorRegistry, telemetry_path: str, config: WebConfig | None) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self.telemetry_path = telemetry_path
        self.config = config
        self._contents = config.contents if config is not None else None
        self._site = _site(registry, telemetry_path, config)

    def reconfigure(self, telemetry_path: str, config: WebConfig | None) -> None:
        """Serve this path and web config from the next connection and request on."""
        site = _site(self._registry, telemetry_path, config)
        with self._lock:
            if telemetry_path != self.telemetry_path:
                log.info("metrics path is now %s (was %s)", telemetry_path, self.telemetry_path)
            self.telemetry_path, self.config, self._site = telemetry_path, config, site
            self._contents = config.contents if config is not None else None

    def current(self) -> Site:
        path = self.config.path if self.config is not None else None
        if path is None or file_contents(path) == self._contents:
            return self._site
        with self._lock:
            contents = file_contents(path)
            if contents == self._contents:  # another request has read it meanwhile
                return self._site
            try:
                fresh = load_web_config(path)
                self._site = _site(self._registry, self.telemetry_path, fresh)
                self.config, self._contents = fresh, fresh.contents
                log.info("web config %s changed; its new settings are in use", path)
            except ConfigError as err:
                self._contents = contents  # not parsed again until it changes again
                log.error("web config %s changed but cannot be used; the previous settings stay in use:\n%s",
                          path, err)
            return self._site

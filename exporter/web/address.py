"""Where the exporter listens: the listen address rules, the default port and path.

The main config checks listen addresses and the metrics path with the
parsers the server uses, so what the check passes is what the server can use.
"""

from __future__ import annotations

# The Prometheus wiki's "Default port allocations" list has given out every
# port from 9100 to 9999 and carries on above 10000 (10001-10026, 10080,
# 10100, 10101, 10200, 10201, 10998, 11111, ...). 10925 is on neither part
# ("25" as in SMTP) and clear of the ports mail hosts use themselves, such as
# 10024-10026 for content filters.
DEFAULT_PORT = 10925
DEFAULT_LISTEN_ADDRESS = f":{DEFAULT_PORT}"
DEFAULT_TELEMETRY_PATH = "/metrics"


def parse_listen_address(address: str) -> tuple[str, int]:
    """ "host:port", ":port" or "[ipv6]:port" -> (host, port); host "" is every interface.

    ValueError says what is wrong and how to write it."""
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"got {address!r}; expected host:port, :port or [ipv6]:port with a port of 0-65535, "
                         f"e.g. 127.0.0.1:{DEFAULT_PORT} or :{DEFAULT_PORT}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host or "[" in host or "]" in host:
        raise ValueError(f"got {address!r}; write an IPv6 address in brackets, e.g. [::1]:{port}")
    return host, int(port)


def parse_telemetry_path(path: str) -> str:
    """The path of the metrics; ValueError unless it is one (the landing page is /)."""
    if not path.startswith("/") or path == "/":
        raise ValueError(f"got {path!r}; expected a path other than / that starts with /, "
                         f"e.g. {DEFAULT_TELEMETRY_PATH}")
    return path

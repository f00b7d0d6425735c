"""``HOST:PORT`` options (``--ws``, ``--http``, ``--osc``) and the errors of starting a
server. Pure functions; the main thread calls them while it checks the options.
"""

from __future__ import annotations

import ipaddress

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


class ServerError(Exception):
    """The server cannot start (port in use, address not available, bad HOST:PORT)."""


class AddressError(ServerError, ValueError):
    """A HOST:PORT option that cannot be parsed (a usage error)."""


def parse_hostport(spec: str, default_port: int = DEFAULT_PORT, option: str = "--ws") -> tuple[str, int]:
    """'HOST:PORT', 'HOST', ':PORT' or 'PORT' -> (host, port); IPv6 as [::1]:PORT."""
    s = spec.strip()
    host, port = DEFAULT_HOST, default_port
    if s.startswith("["):
        h, _, rest = s[1:].partition("]")
        host = h
        if rest.startswith(":"):
            port = rest[1:]
    elif s.count(":") == 1:
        h, p = s.split(":")
        host, port = h or DEFAULT_HOST, p
    elif s.isdigit():
        port = s
    elif s:
        host = s
    try:
        port = int(port)
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise AddressError(f"{option} {spec!r}: the port must be a number 0-65535 "
                           f"(e.g. {option} 127.0.0.1:{default_port})") from None
    return host, port


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

"""``HOST:PORT`` options (``--ws``, ``--http``, ``--osc``) and the errors of starting a
server. Pure functions; the main thread calls them while it checks the options.
"""

from __future__ import annotations

import ipaddress
import socket

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
        h, close, rest = s[1:].partition("]")
        if not close or not h or (rest and not rest.startswith(":")):
            raise AddressError(f"{option} {spec!r}: an IPv6 address goes in brackets, e.g. {option} [::1]:{default_port}")
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
    """Would listening on ``host`` bind loopback addresses only? Decided on the addresses it
    resolves to, as the server will bind them: "" and "0.0.0.0" and "::" are every
    interface, a name is what it resolves to (all of them must be loopback)."""
    addrs = bind_addresses(host)
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def bind_addresses(host: str) -> list[str]:
    """The IP addresses a server asked to listen on ``host`` binds (asyncio's rules: an empty
    host means every interface)."""
    try:
        infos = socket.getaddrinfo(host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError):
        return ["0.0.0.0"] if not host else []  # unresolvable: the bind itself will fail and say so
    return sorted({i[4][0] for i in infos})

"""Who may connect: the bind rules (listening off loopback needs a token or ``--insecure``),
browser origins, and the access token. Pure checks; the main thread applies the bind rules
before anything starts, the WebSocket loop's thread checks every handshake.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from .address import bind_addresses, is_loopback


def exposure(ws: tuple[str, int] | None, http: tuple[str, int] | None, token: str | None, insecure: bool,
             ws_spec: str, http_spec: str | None) -> tuple[str | None, str | None]:
    """(refusal, warning) for the addresses ``live`` is asked to listen on: a refusal when a
    server would be reachable from other machines without a token (and without
    ``--insecure``), or when the dashboard would be but its stream would not. Decided on
    the addresses each host resolves to (``""`` and ``0.0.0.0`` are every interface)."""
    if ws is None:
        return None, None
    host, port = ws
    for option, spec, h in [("--ws", ws_spec, host)] + ([("--http", http_spec, http[0])] if http else []):
        if not bind_addresses(h):
            return f"{option} {spec}: cannot resolve {h!r} to an address of this machine", None
    for option, spec, h in [("--ws", ws_spec, host)] + ([("--http", http_spec, http[0])] if http else []):
        if not is_loopback(h) and not token and not insecure:
            return (f"{option} {spec}: listening on {h} lets other machines read the "
                    "stream. Give an access token (--token SECRET; clients connect to "
                    "ws://HOST:PORT/?token=SECRET, browsers open http://HOST:PORT/?token=SECRET), "
                    "or pass --insecure if the network is yours"), None
    if http and not is_loopback(http[0]) and is_loopback(host):
        return (f"--http {http_spec} is reachable from other machines but the stream (--ws {ws_spec}) is "
                "not: their browsers could not connect. Listen on the same host, e.g. "
                f"--ws {http[0]}:{port}"), None
    if not is_loopback(host) and insecure and not token:
        return None, (f"WARNING: listening on {host} without a token (--insecure): anyone who can reach "
                      "this machine can read the stream")
    return None, None


def exposed(addresses: list[str]) -> list[str]:
    """Those of the bound ``addresses`` that other machines can reach."""
    return [a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback]


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison (no timing tells how much of a guess was right)."""
    return hmac.compare_digest(given.encode(), token.encode())


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def host_of(value: str | None) -> str | None:
    """The host name of an HTTP ``Host`` header or an origin's authority, lower case."""
    if not value:
        return None
    try:
        return (urlsplit(f"//{value.strip()}").hostname or "").lower() or None
    except ValueError:
        return None


@dataclass
class Access:
    """The rules of one server: its token, the extra origins, the hosts it listens on
    (``hosts``: the --ws and --http hosts), and where its dashboard listens
    (``dashboard_port()``: its pages may connect; None without one)."""

    token: str | None = None
    allow_origins: list[str] = field(default_factory=list)
    dashboard_port: Callable[[], int | None] = lambda: None
    hosts: list[str] = field(default_factory=lambda: ["127.0.0.1"])

    def host_allowed(self, host_header: str | None) -> bool:
        """Is a request's ``Host`` one this server answers to? Loopback names, the hosts it
        was told to listen on, their addresses, and the hosts of --allow-origin; any name
        when it listens on every interface (there a token is required). A browser that an
        attacker's page made resolve its own name to us (DNS rebinding) sends that name, and
        is refused."""
        if any(h in ("", "0.0.0.0", "::") for h in self.hosts):
            return True
        name = host_of(host_header)
        if name is None:
            return False
        allowed = set(LOOPBACK_NAMES) | {h.lower() for h in self.hosts}
        for h in self.hosts:
            allowed.update(bind_addresses(h))
        allowed.update(host_of(o.split("://", 1)[-1]) or "" for o in self.allow_origins)
        if name in allowed:
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

    def origin_allowed(self, origin: str | None, host: str | None = None) -> bool:
        """Programs send no Origin; browsers do: only pages served from this machine (any
        port), our own dashboard (the host this connection was made to, at the --http port),
        or origins given with --allow-origin ('*' allows any), may connect."""
        if origin is None or "*" in self.allow_origins or origin in self.allow_origins:
            return True
        try:
            u = urlsplit(origin)
            if u.scheme not in ("http", "https"):
                return False
            if (u.hostname or "") in ("localhost", "127.0.0.1", "::1"):
                return True
            port = self.dashboard_port()
            if port is not None and host:
                return u.port == port and u.hostname == urlsplit(f"//{host}").hostname
        except ValueError:  # a malformed Origin or Host
            return False
        return False

    def refusal(self, path: str, headers) -> str | None:
        """Why a handshake (request ``path`` and ``headers``) is refused, or None."""
        if not self.host_allowed(headers.get("Host")):
            return (f"host {str(headers.get('Host'))[:60]!r} is not this server's; connect to the address it listens "
                    "on (or add the name with --allow-origin http://NAME)")
        origin = headers.get("Origin")
        if not self.origin_allowed(origin, headers.get("Host")):
            return (f"origin {origin} is not allowed; start emotrack live with --allow-origin {origin}")[:120]
        if self.token:
            given = parse_qs(urlsplit(path).query).get("token", [""])[0]
            auth = headers.get("Authorization", "")
            if auth.lower().startswith("bearer "):
                given = given or auth[7:].strip()
            if not token_matches(given, self.token):
                return ("missing token: connect to ws://HOST:PORT/?token=TOKEN" if not given
                        else "wrong token: use the --token the server was started with")
        return None

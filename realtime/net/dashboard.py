"""The browser dashboard's HTTP side (``emotrack live --http HOST:PORT``). Runs on the
WebSocket server's asyncio loop (thread ``emotrack-ws``); previews are read on the library
service's thread.

A deliberately small HTTP/1.1 server: GET/HEAD of a
fixed set of static files shipped in ``emotrack.assets/dashboard`` plus ``/config.json``,
which tells the page where the WebSocket is. No path from a request ever reaches the file
system: unknown paths are 404. One request per connection; slow or oversized requests
are cut off. The data itself only flows over the WebSocket, under its token and origin
rules; the files served here are the same for everyone.

With a library (``live --db``), ``/preview?song=ID&start=S`` sends a short WAV of the
library song with that id (under the same token as the WebSocket): the id is looked up in
the library, so only songs that were indexed can be played.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from ..assets import asset_bytes
from .access import token_matches

FILES = {  # URL path -> (file in assets/dashboard, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
MAX_REQUEST = 8192  # bytes of request line + headers
REQUEST_TIMEOUT = 10.0
SECURITY_HEADERS = (
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "X-Frame-Options: DENY\r\n"
    "Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; media-src 'self'; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'\r\n"
)


def load_files() -> dict[str, tuple[bytes, str]]:
    """Read the static files once, at start-up (a missing one is a broken install)."""
    return {path: (asset_bytes("dashboard", name), ctype) for path, (name, ctype) in FILES.items()}


class DashboardHttp:
    """Serves the dashboard; ``config`` builds /config.json on each request."""

    def __init__(self, host: str, port: int, config: Callable[[], dict], token: str | None = None,
                 preview: Callable[[int, float | None], Awaitable[bytes]] | None = None,
                 host_allowed: Callable[[str | None], bool] = lambda h: True):
        self.host, self.port = host, port
        self.host_allowed = host_allowed
        self.config = config
        self.token = token
        self.preview = preview
        self.files = load_files()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=MAX_REQUEST)
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    @property
    def sockets(self) -> list:
        return list(self._server.sockets) if self._server is not None else []

    @property
    def url(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{h}:{self.port}/"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            except (asyncio.LimitOverrunError, ValueError):
                return await self._send(writer, 431, "request headers too large\n")
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                return
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                return await self._send(writer, 400, "bad request\n")
            method, target = parts[0], parts[1]
            if not self.host_allowed(_header(head, b"host")):
                return await self._send(writer, 403, "this server does not answer to that host name\n")
            if method not in ("GET", "HEAD"):
                return await self._send(writer, 405, "only GET and HEAD\n", extra="Allow: GET, HEAD\r\n")
            path, _, query = target.split("#", 1)[0].partition("?")
            if path == "/preview" and self.preview is not None:
                return await self._preview(writer, parse_qs(query), head_only=method == "HEAD")
            if path == "/config.json":
                body, ctype = json.dumps(self.config()).encode(), "application/json"
            elif path in self.files:
                body, ctype = self.files[path]
            else:
                return await self._send(writer, 404, "not found: the dashboard is at /\n")
            await self._send(writer, 200, body, ctype, head_only=method == "HEAD")
        except Exception:  # one bad connection must never affect the loop
            pass
        finally:
            writer.close()

    async def _preview(self, writer, q: dict, head_only: bool) -> None:
        if self.token and not token_matches(q.get("token", [""])[0], self.token):
            return await self._send(writer, 403, "preview needs the server's token: /preview?song=ID&token=TOKEN\n")
        try:
            song = int(q["song"][0])
            start = float(q["start"][0]) if "start" in q else None
            if start is not None and not math.isfinite(start):
                raise ValueError
        except (KeyError, ValueError):
            return await self._send(writer, 400, "use /preview?song=ID[&start=SECONDS] (ID from a find result)\n")
        try:
            body = await self.preview(song, start)
        except KeyError:
            return await self._send(writer, 404, f"no song {song} in the library\n")
        except Exception as e:  # the file moved, or cannot be decoded any more
            return await self._send(writer, 404, f"song {song} cannot be played ({e}); run emotrack index again\n")
        await self._send(writer, 200, body, "audio/wav", head_only=head_only)

    async def _send(self, writer, status: int, body: bytes | str, ctype: str = "text/plain; charset=utf-8",
                    head_only: bool = False, extra: str = "") -> None:
        reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
                  431: "Request Header Fields Too Large"}[status]
        if isinstance(body, str):
            body = body.encode()
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                f"Cache-Control: no-cache\r\nConnection: close\r\n{SECURITY_HEADERS}{extra}\r\n")
        writer.write(head.encode() + (b"" if head_only else body))
        try:
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
        except (TimeoutError, ConnectionError):
            pass


def _header(head: bytes, name: bytes) -> str | None:
    """The value of one header of a request head (the first, case-insensitive)."""
    for line in head.split(b"\r\n")[1:]:
        k, sep, v = line.partition(b":")
        if sep and k.strip().lower() == name:
            return v.strip().decode("latin-1")
    return None

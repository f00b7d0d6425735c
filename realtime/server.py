"""WebSocket broadcast of the predictions (protocol v1, see assets/protocol-v1.schema.json).

Threads: an asyncio loop on its own thread (``emotrack-ws``) owns every connection; the
worker only calls :meth:`WebSocketServer.put`, which hands the ready JSON text to the loop
with ``call_soon_threadsafe`` and returns.

Backpressure: a client whose socket write buffer holds more than ``max_buffer`` bytes is
skipped (it sees a gap in ``seq``); one that stays over it for ``stuck_seconds`` is
disconnected. Neither slows the worker or the other clients.

Client messages (see docs/protocol.md): ``ping``, ``status`` (a report now),
``subscribe`` (a decimated rate and/or a subset of the frame fields) and, with a library
(``live --db``), ``find``, which runs on the finder's thread while the loop goes on; the
finder's ``like_now`` answers go to every client. Client messages are parsed
defensively: anything else gets an ``error`` answer; a message over
``MAX_CLIENT_MESSAGE`` bytes closes that connection (1009); a client sending faster than
``MSG_RATE`` per second has the excess ignored, and is closed (1008) if it keeps on.
No client message can name a file, change the model or affect another client.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_CLIENT_MESSAGE = 4096  # bytes; a bigger client message closes that connection (1009)
MSG_RATE, MSG_BURST = 20.0, 50  # client messages per second (token bucket), and its depth
MSG_EXCESS_CLOSE = 500  # messages ignored for flooding before the connection is closed
MAX_FINDING = 8  # library queries waiting or running, over all clients
FRAME_FIELDS = ("wall", "valence", "arousal", "valence_std", "arousal_std", "latency_ms", "counters")
ALWAYS_FIELDS = ("type", "seq", "t")  # in every frame, whatever the subscription


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


@dataclass
class _Client:
    stuck_since: float | None = None  # when its buffer last went over the limit
    every: int = 1  # send frames whose seq is a multiple of this
    fields: tuple[str, ...] | None = None  # None: every field
    tokens: float = MSG_BURST  # token bucket for client messages
    refilled: float = 0.0
    ignored: int = 0  # messages ignored for flooding

    def allow_message(self, now: float) -> bool:
        self.tokens = min(MSG_BURST, self.tokens + (now - self.refilled) * MSG_RATE)
        self.refilled = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.ignored += 1
        return False


class WebSocketServer:
    """Sink: sends ``hello`` on connect, then every frame/status message to every client."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, hello: dict | None = None,
                 max_buffer: int = 256 * 1024, stuck_seconds: float = 5.0, max_clients: int = 1000,
                 sndbuf: int = 256 * 1024, token: str | None = None,
                 allow_origins: list[str] | None = None, http: tuple[str, int] | None = None,
                 finder=None):
        self.host, self.port = host, port
        self.hello = hello or {"type": "hello", "protocol": 1}
        self.max_buffer, self.stuck_seconds, self.max_clients = max_buffer, stuck_seconds, max_clients
        self.sndbuf = sndbuf  # a fixed kernel send buffer: a stalled client shows up in ours soon
        self.token = token
        self.allow_origins = list(allow_origins or [])
        self.refused = 0
        self.http_addr = http  # (host, port) of the dashboard, served from the same loop
        self.dashboard = None
        self.report: Callable[[], dict] | None = None  # builds the answer to {"type": "status"}
        self.finder = finder  # a finder.Finder: find, like_now and previews from a library
        self._finding = 0  # find queries waiting or running
        self._clients: dict = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.dropped_clients = 0
        self.skipped_messages = 0

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def url(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{h}:{self.port}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Bind and serve; raises :class:`ServerError` with advice if the port is taken."""
        ready = threading.Event()
        err: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._bind())
            except BaseException as e:
                err.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="emotrack-ws", daemon=True)
        self._thread.start()
        ready.wait()
        if err:
            self._thread.join()
            self._thread = None
            e = err[0]
            option, host, port, what = "--ws", self.host, self.port, "the WebSocket server"
            if isinstance(e, _HttpBindError):
                e = e.__cause__
                (host, port), option, what = self.http_addr, "--http", "the dashboard"
            if isinstance(e, OSError) and e.errno == errno.EADDRINUSE:
                raise ServerError(
                    f"port {port} on {host} is already in use (another emotrack, or "
                    f"another program). Stop it, or choose another port: {option} {host}:{port + 1}"
                ) from e
            if isinstance(e, OSError) and e.errno in (errno.EADDRNOTAVAIL, errno.EACCES, -2, -3, -5):
                raise ServerError(f"cannot listen on {host}:{port} ({e.strerror or e}). "
                                  f"Use an address of this machine, e.g. {option} 127.0.0.1:{port}") from e
            raise ServerError(f"cannot start {what} on {host}:{port}: {e}") from e

    async def _bind(self) -> None:
        from websockets.asyncio.server import serve

        self._server = await serve(
            self._handler, self.host, self.port, compression=None, max_size=MAX_CLIENT_MESSAGE,
            ping_interval=20, ping_timeout=20, close_timeout=2,
        )
        if self.port == 0:  # an ephemeral port: report the real one
            self.port = self._server.sockets[0].getsockname()[1]
        if self.http_addr is not None:
            from .dashboard import DashboardHttp

            self.dashboard = DashboardHttp(*self.http_addr, config=self.dashboard_config, token=self.token,
                                           preview=self._preview if self.finder else None)
            try:
                await self.dashboard.start()
            except OSError as e:
                self._server.close()
                raise _HttpBindError() from e

    def dashboard_config(self) -> dict:
        """/config.json: where the page finds the stream (on the host it was loaded from)."""
        return {"protocol": 1, "ws_port": self.port, "token_required": bool(self.token),
                "server": self.hello.get("server"), "hop": self.hello.get("hop"),
                "library": {"songs": self.finder.songs, "like_now_seconds": self.finder.like_seconds}
                if self.finder else None}

    @property
    def http_url(self) -> str | None:
        return self.dashboard.url if self.dashboard else None

    def close(self) -> None:
        """Close every connection (1001 going away) and the listening socket; join the thread."""
        if self._closed or self._loop is None or self._thread is None:
            return
        self._closed = True

        async def shutdown() -> None:
            if self.dashboard is not None:
                self.dashboard.close()
            self._server.close(close_connections=True)
            try:
                await asyncio.wait_for(self._server.wait_closed(), 3)
            except TimeoutError:
                for ws in list(self._clients):
                    ws.transport.abort()
            self._loop.stop()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        except RuntimeError:  # loop already gone
            pass
        self._thread.join(timeout=10)

    # ------------------------------------------------------------------ connections
    async def _handler(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        refusal = self._refusal(ws)
        if refusal:
            self.refused += 1
            await ws.close(1008, refusal)
            return
        if len(self._clients) >= self.max_clients:
            await ws.close(1013, f"server full ({self.max_clients} clients); try again later")
            return
        sock = ws.transport.get_extra_info("socket")
        if sock is not None and self.sndbuf:
            import socket

            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
        try:
            await ws.send(json.dumps(self.hello, separators=(",", ":")))
        except ConnectionClosed:
            return
        client = self._clients[ws] = _Client(refilled=time.monotonic())
        try:
            if self.finder is not None and self.finder.last_like is not None:
                await ws.send(_dumps(self.finder.last_like))
            async for raw in ws:
                if not client.allow_message(time.monotonic()):
                    if client.ignored == 1 or client.ignored % 100 == 0:
                        await ws.send(_dumps(_error("rate_limited", f"more than {MSG_RATE:g} messages per "
                                                                    "second; the excess is ignored")))
                    if client.ignored >= MSG_EXCESS_CLOSE:
                        await ws.close(1008, "too many messages")
                        break
                    continue
                reply = self._answer(raw, client)
                if asyncio.iscoroutine(reply):
                    reply = await reply
                await ws.send(_dumps(reply))
        except ConnectionClosed:
            pass
        finally:
            self._clients.pop(ws, None)

    def origin_allowed(self, origin: str | None, host: str | None = None) -> bool:
        """Programs send no Origin; browsers do: only pages served from this machine (any
        port), our own dashboard (the host this connection was made to, at the --http port),
        or origins given with --allow-origin ('*' allows any), may connect."""
        if origin is None or "*" in self.allow_origins or origin in self.allow_origins:
            return True
        from urllib.parse import urlsplit

        try:
            u = urlsplit(origin)
            if u.scheme not in ("http", "https"):
                return False
            if (u.hostname or "") in ("localhost", "127.0.0.1", "::1"):
                return True
            if self.dashboard is not None and host:
                return u.port == self.dashboard.port and u.hostname == urlsplit(f"//{host}").hostname
        except ValueError:  # a malformed Origin or Host
            return False
        return False

    def _refusal(self, ws) -> str | None:
        import hmac
        from urllib.parse import parse_qs, urlsplit

        req = ws.request
        origin = req.headers.get("Origin")
        if not self.origin_allowed(origin, req.headers.get("Host")):
            return (f"origin {origin} is not allowed; start emotrack live with --allow-origin {origin}")[:120]
        if self.token:
            given = parse_qs(urlsplit(req.path).query).get("token", [""])[0]
            auth = req.headers.get("Authorization", "")
            if auth.lower().startswith("bearer "):
                given = given or auth[7:].strip()
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return ("missing token: connect to ws://HOST:PORT/?token=TOKEN" if not given
                        else "wrong token: use the --token the server was started with")
        return None

    def _answer(self, raw, client: _Client):
        """The reply to one client message (always one message: an answer or an ``error``;
        for ``find``, a coroutine that waits for it)."""
        try:
            m = json.loads(raw)
        except (ValueError, TypeError, RecursionError):  # UnicodeDecodeError is a ValueError
            return _error("bad_json", "client messages must be JSON objects, e.g. {\"type\": \"ping\"}")
        if not isinstance(m, dict):
            return _error("bad_message", "client messages must be JSON objects with a \"type\"")
        kind = m.get("type")
        if kind == "ping":
            return {"type": "pong", "id": _small(m.get("id")), "wall": round(time.time(), 4)}
        if kind == "status":
            return self._status_report()
        if kind == "subscribe":
            return self._subscribe(m, client)
        if kind == "find":
            return self._find(m)
        return _error("unknown_message", f"unknown client message type {_short(kind)}; protocol v1 "
                                         "accepts: ping, status, subscribe, find")

    async def _find(self, m: dict) -> dict:
        if self.finder is None:
            return _error("no_library", "this server has no music library: start emotrack live with "
                                        "--db PATH (a library made by emotrack index)")
        job = self.finder.request(m)
        if isinstance(job, dict):
            return job
        if self._finding >= MAX_FINDING:
            return _error("busy", f"{MAX_FINDING} library queries are already waiting; try again shortly")
        self._finding += 1
        try:
            return await asyncio.wrap_future(self.finder.submit(job))
        except Exception as e:  # a query must never take the connection down
            return _error("find_failed", f"the query failed: {type(e).__name__}: {e}"[:200])
        finally:
            self._finding -= 1

    async def _preview(self, song: int, start: float | None) -> bytes:
        """WAV bytes of a library song (for the dashboard's /preview), from the find thread."""
        return await asyncio.wrap_future(self.finder.submit(self.finder.preview, song, start))

    def _like_done(self, fut) -> None:
        """A "more like now" answer is ready (find thread): send it to every client."""
        if fut.cancelled() or fut.exception() is not None:
            return
        msg = fut.result()
        self.put(msg, _dumps(msg))

    def _status_report(self) -> dict:
        msg = {"type": "status", "event": "report", "message": "status on request",
               "t": 0.0, "wall": round(time.time(), 4)}
        if self.report is not None:
            try:
                msg.update(self.report())
            except Exception as e:  # a report must never take the connection down
                msg["message"] = f"status report failed: {type(e).__name__}"
        msg["type"], msg["event"] = "status", "report"
        return msg

    def _subscribe(self, m: dict, client: _Client) -> dict:
        """``{"type": "subscribe", "every": N | "rate": HZ, "fields": [...] | null}``; omitted
        keys keep their current setting; the answer says what is in effect."""
        unknown = sorted(str(k)[:40] for k in m if k not in ("type", "every", "rate", "fields"))
        if unknown:
            return _error("bad_subscribe", f"subscribe takes every, rate and fields; unknown: {', '.join(unknown)}")
        if "every" in m and "rate" in m:
            return _error("bad_subscribe", "give either every (frames) or rate (per second), not both")
        every, fields = client.every, client.fields
        hop = float(self.hello.get("hop") or 0.5)
        if "every" in m:
            v = m["every"]
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 10000:
                return _error("bad_subscribe", "every must be a whole number of frames, 1-10000")
            every = v
        elif "rate" in m:
            v = m["rate"]
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < float("inf"):
                return _error("bad_subscribe", f"rate must be a positive number of frames per second (at most {1 / hop:g})")
            every = 10000 if v * hop * 10000 <= 1 else max(1, round(1.0 / (hop * v)))
        if "fields" in m:
            v = m["fields"]
            if v is None:
                fields = None
            elif isinstance(v, list) and all(isinstance(f, str) for f in v):
                bad = [f[:40] for f in v if f not in FRAME_FIELDS and f not in ALWAYS_FIELDS]
                if bad:
                    return _error("bad_subscribe", f"unknown frame fields {bad[:5]}; known: {', '.join(FRAME_FIELDS)}")
                fields = tuple(f for f in FRAME_FIELDS if f in v)
            else:
                return _error("bad_subscribe", "fields must be a list of frame field names, or null for all")
        client.every, client.fields = every, fields
        return {"type": "subscribed", "every": every, "rate": round(1.0 / (hop * every), 6),
                "fields": list(ALWAYS_FIELDS + fields) if fields is not None else None}

    # ------------------------------------------------------------------ sink interface
    def put(self, msg: dict, text: str) -> None:
        loop = self._loop
        if loop is not None and not self._closed:
            try:
                loop.call_soon_threadsafe(self._broadcast, msg, text)
            except RuntimeError:  # the loop closed under us during shutdown
                pass

    status = put

    def _broadcast(self, msg: dict, text: str) -> None:
        from websockets.asyncio.server import broadcast

        now = time.monotonic()
        seq = msg.get("seq", 0) if msg.get("type") == "frame" else None
        if seq is not None and self.finder is not None:
            fut = self.finder.observe(msg)
            if fut is not None:
                fut.add_done_callback(self._like_done)
        groups: dict[tuple[str, ...] | None, list] = {}
        for ws, c in list(self._clients.items()):
            if seq is not None and seq % c.every:
                continue  # decimated away by its subscription: not a skip
            transport = ws.transport
            if transport is None or transport.is_closing():
                continue
            if transport.get_write_buffer_size() > self.max_buffer:
                self.skipped_messages += 1
                if c.stuck_since is None:
                    c.stuck_since = now
                elif now - c.stuck_since > self.stuck_seconds:
                    self.dropped_clients += 1
                    self._clients.pop(ws, None)
                    transport.abort()  # its buffer is full: a close frame would never get through
                continue
            c.stuck_since = None
            groups.setdefault(c.fields if seq is not None else None, []).append(ws)
        for fields, clients in groups.items():
            if fields is None:
                broadcast(clients, text)
            else:  # one encoding per distinct field subset, not per client
                broadcast(clients, _dumps({k: msg[k] for k in ALWAYS_FIELDS + fields if k in msg}))


class _HttpBindError(Exception):
    """The dashboard's port could not be bound (the OSError is its cause)."""


def _dumps(msg: dict) -> str:
    return json.dumps(msg, separators=(",", ":"))


def _error(code: str, message: str) -> dict:
    return {"type": "error", "error": code, "message": message}


def _short(x) -> str:
    """A client-supplied value, quoted and cut short, for an error message."""
    r = repr(x) if isinstance(x, str | int | float | bool | type(None)) else type(x).__name__
    return r if len(r) <= 40 else r[:37] + "..."


def _small(x):
    """A ping id is echoed only if it is a short scalar (a client cannot make us send megabytes)."""
    if isinstance(x, bool | type(None)) or (isinstance(x, int) and abs(x) < 2**53) \
            or (isinstance(x, float) and math.isfinite(x)):
        return x
    if isinstance(x, str) and len(x) <= 64:
        return x
    return None

"""WebSocket broadcast of the predictions (protocol v1, see assets/protocol-v1.schema.json).

Threads: an asyncio loop on its own thread (``emotrack-ws``) owns every connection, the
dashboard's HTTP side and the answers to client messages (``handling``); the worker only
calls :meth:`WebSocketServer.frame` / ``status``, which hand the ready JSON text to the
loop with ``call_soon_threadsafe`` and return. ``start``/``close`` run on the main thread.

Backpressure: a client whose socket write buffer holds more than ``max_buffer`` bytes is
skipped (it sees a gap in ``seq``); one that stays over it for ``stuck_seconds`` is
disconnected. Neither slows the worker or the other clients. A client message over
``MAX_CLIENT_MESSAGE`` bytes closes that connection (1009); a flooding client is closed
(1008). Who may connect is decided by ``access``.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import sys
import threading
import time
from collections.abc import Callable

from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed

from .. import protocol
from .access import Access
from .address import DEFAULT_HOST, DEFAULT_PORT, ServerError
from .dashboard import DashboardHttp
from .handling import MSG_EXCESS_CLOSE, ClientMessages, ClientState

MAX_CLIENT_MESSAGE = 4096  # bytes; a bigger client message closes that connection (1009)


class WebSocketServer:
    """Sink: sends ``hello`` on connect, then every frame/status message to every client."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, hello: dict | None = None,
                 max_buffer: int = 256 * 1024, stuck_seconds: float = 5.0, max_clients: int = 1000,
                 sndbuf: int = 256 * 1024, token: str | None = None,
                 allow_origins: list[str] | None = None, http: tuple[str, int] | None = None,
                 library=None):
        self.host, self.port = host, port
        self.hello = hello or {"type": "hello", "protocol": protocol.PROTOCOL_VERSION}
        self.max_buffer, self.stuck_seconds, self.max_clients = max_buffer, stuck_seconds, max_clients
        self.sndbuf = sndbuf  # a fixed kernel send buffer: a stalled client shows up in ours soon
        self.token = token
        self.access = Access(token, list(allow_origins or []),
                             lambda: self.dashboard.port if self.dashboard is not None else None,
                             [host] + ([http[0]] if http else []))
        self.refused = 0
        self.http_addr = http  # (host, port) of the dashboard, served from the same loop
        self.dashboard = None
        self.report: Callable[[], dict] | None = None  # builds the answer to {"type": "status"}
        self.library = library  # a library.service.LibraryService: find, like_now and previews
        self.messages = ClientMessages(lambda: self.hello.get("hop"), lambda: self.report() if self.report else None,
                                       library)
        self._clients: dict = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.dropped_clients = 0
        self.skipped_messages = 0
        self.accept_errors = 0  # connections the loop could not accept (out of file descriptors)

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
            loop.set_exception_handler(self._loop_error)
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
        self._server = await serve(
            self._handler, self.host, self.port, compression=None, max_size=MAX_CLIENT_MESSAGE,
            ping_interval=20, ping_timeout=20, close_timeout=2,
        )
        if self.port == 0:  # an ephemeral port: report the real one
            self.port = self._server.sockets[0].getsockname()[1]
        if self.http_addr is not None:
            self.dashboard = DashboardHttp(*self.http_addr, config=self.dashboard_config, token=self.token,
                                           preview=self._preview if self.library else None,
                                           host_allowed=self.access.host_allowed)
            try:
                await self.dashboard.start()
            except OSError as e:
                self._server.close()
                raise _HttpBindError() from e

    def dashboard_config(self) -> dict:
        """/config.json: where the page finds the stream (on the host it was loaded from)."""
        return {"protocol": protocol.PROTOCOL_VERSION, "ws_port": self.port, "token_required": bool(self.token),
                "server": self.hello.get("server"), "hop": self.hello.get("hop"),
                "library": {"songs": self.library.songs, "like_now_seconds": self.library.like_seconds}
                if self.library else None}

    def _loop_error(self, loop, context: dict) -> None:
        """asyncio's errors on the loop: running out of file descriptors (more clients than
        ``ulimit -n`` allows) is said once and then counted, not logged with a traceback per
        refused connection; anything else goes to asyncio's default handler."""
        e = context.get("exception")
        if isinstance(e, OSError) and e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            self.accept_errors += 1
            if self.accept_errors == 1:
                print(f"emotrack: out of file descriptors ({e.strerror}): new connections wait until some close; "
                      "raise the limit (ulimit -n) for more clients. Further ones are only counted.",
                      file=sys.stderr, flush=True)
            return
        if self._closed and isinstance(e, ValueError) and "_start_serving" in repr(context.get("handle")):
            # after running out of descriptors asyncio retries accepting on a timer; one that
            # fires once the listening socket is closed (we are shutting down) has nothing to do
            return
        loop.default_exception_handler(context)

    def bound_addresses(self) -> list[str]:
        """The IP addresses the WebSocket server and the dashboard actually listen on."""
        socks = list(self._server.sockets) if self._server is not None else []
        if self.dashboard is not None:
            socks += self.dashboard.sockets
        return sorted({s.getsockname()[0] for s in socks})

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
            # connection handlers still pending (e.g. accepted while out of descriptors) end here,
            # on the running loop: left to the garbage collector they complain of no loop
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            if rest:
                await asyncio.wait(rest, timeout=2)
            self._loop.stop()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        except RuntimeError:  # loop already gone
            pass
        self._thread.join(timeout=10)

    # ------------------------------------------------------------------ connections
    async def _handler(self, ws) -> None:
        refusal = self.access.refusal(ws.request.path, ws.request.headers)
        if refusal:
            self.refused += 1
            await ws.close(1008, refusal)
            return
        if len(self._clients) >= self.max_clients:
            await ws.close(1013, f"server full ({self.max_clients} clients); try again later")
            return
        sock = ws.transport.get_extra_info("socket")
        if sock is not None and self.sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
        try:
            await ws.send(protocol.dumps(self.hello))
        except ConnectionClosed:
            return
        client = self._clients[ws] = ClientState(refilled=time.monotonic())
        try:
            if self.library is not None and self.library.last_like is not None:
                await ws.send(protocol.dumps(self.library.last_like))
            async for raw in ws:
                if not client.allow_message(time.monotonic()):
                    if client.ignored == 1 or client.ignored % 100 == 0:
                        await ws.send(protocol.dumps(self.messages.rate_limited()))
                    if client.ignored >= MSG_EXCESS_CLOSE:
                        await ws.close(1008, "too many messages")
                        break
                    continue
                reply = self.messages.answer(raw, client)
                if asyncio.iscoroutine(reply):
                    reply = await reply
                await ws.send(protocol.dumps(reply))
        except ConnectionClosed:
            pass
        finally:
            self._clients.pop(ws, None)

    def origin_allowed(self, origin: str | None, host: str | None = None) -> bool:
        """See :meth:`Access.origin_allowed`."""
        return self.access.origin_allowed(origin, host)

    async def _preview(self, song: int, start: float | None) -> bytes:
        """WAV bytes of a library song (for the dashboard's /preview), from the service's thread."""
        return await asyncio.wrap_future(self.library.submit(self.library.preview, song, start))

    def _like_done(self, fut) -> None:
        """A "more like now" answer is ready (the service's thread): send it to every client."""
        if fut.cancelled() or fut.exception() is not None:
            return
        msg = fut.result()
        self.status(msg, protocol.dumps(msg))

    # ------------------------------------------------------------------ sink interface
    def frame(self, msg: dict, text: str) -> None:
        """A frame or status message (worker thread): handed to the loop, never waited for."""
        loop = self._loop
        if loop is not None and not self._closed:
            try:
                loop.call_soon_threadsafe(self._broadcast, msg, text)
            except RuntimeError:  # the loop closed under us during shutdown
                pass

    status = frame

    def _broadcast(self, msg: dict, text: str) -> None:
        now = time.monotonic()
        seq = msg.get("seq", 0) if msg.get("type") == "frame" else None
        if seq is not None and self.library is not None:
            fut = self.library.observe(msg)
            if fut is not None:
                fut.add_done_callback(self._like_done)
        groups: dict[tuple[str, ...] | None, list] = {}
        for ws, c in list(self._clients.items()):
            transport = ws.transport
            if transport is None or transport.is_closing():
                continue
            decimated = seq is not None and seq % c.every != 0  # not sent to it: not a skip
            # every client's buffer is checked on every message, whatever its subscription: one
            # that sends pings and never reads fills it with pongs even when it gets no frames
            if transport.get_write_buffer_size() > self.max_buffer:
                self.skipped_messages += 0 if decimated else 1
                if c.stuck_since is None:
                    c.stuck_since = now
                elif now - c.stuck_since > self.stuck_seconds:
                    self.dropped_clients += 1
                    self._clients.pop(ws, None)
                    transport.abort()  # its buffer is full: a close frame would never get through
                continue
            c.stuck_since = None
            if not decimated:
                groups.setdefault(c.fields if seq is not None else None, []).append(ws)
        for fields, clients in groups.items():
            if fields is None:
                broadcast(clients, text)
            else:  # one encoding per distinct field subset, not per client
                broadcast(clients, protocol.dumps(protocol.subset(msg, fields)))


class _HttpBindError(Exception):
    """The dashboard's port could not be bound (the OSError is its cause)."""

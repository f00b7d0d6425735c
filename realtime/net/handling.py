"""What clients may send, and the answers (protocol v1, docs/protocol.md): ``ping``,
``status`` (a report now), ``subscribe`` (a decimated rate and/or a subset of the frame
fields) and, with a library (``live --db``), ``find``, which runs on the library
service's thread while the loop goes on.

Runs on the WebSocket loop's thread. Client messages are parsed defensively: anything
else gets an ``error`` answer; a client sending faster than ``MSG_RATE`` per second has
the excess ignored (the server closes it if it keeps on). No client message can name a
file, change the model or affect another client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass

from .. import protocol

MSG_RATE, MSG_BURST = 20.0, 50  # client messages per second (token bucket), and its depth
MSG_EXCESS_CLOSE = 500  # messages ignored for flooding before the connection is closed
MAX_FINDING = 8  # library queries waiting or running, over all clients


@dataclass
class ClientState:
    """One connection's subscription and message budget."""

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


class ClientMessages:
    """Answers client messages for one server. ``hop`` gives the frame hop (seconds),
    ``report`` builds the status report, ``service`` is the library service or None."""

    def __init__(self, hop: Callable[[], float], report: Callable[[], dict | None], service=None):
        self.hop, self.report, self.service = hop, report, service
        self._finding = 0  # find queries waiting or running

    def answer(self, raw, client: ClientState):
        """The reply to one client message (always one message: an answer or an ``error``;
        for ``find``, a coroutine that waits for it)."""
        try:
            m = json.loads(raw)
        except (ValueError, TypeError, RecursionError):  # UnicodeDecodeError is a ValueError
            return protocol.error("bad_json", "client messages must be JSON objects, e.g. {\"type\": \"ping\"}")
        if not isinstance(m, dict):
            return protocol.error("bad_message", "client messages must be JSON objects with a \"type\"")
        kind = m.get("type")
        if kind == "ping":
            return protocol.pong(m.get("id"))
        if kind == "status":
            return self.status_report()
        if kind == "subscribe":
            return self.subscribe(m, client)
        if kind == "find":
            return self.find(m)
        return protocol.error("unknown_message", f"unknown client message type {protocol.short(kind)}; protocol v1 "
                                                 f"accepts: {', '.join(protocol.CLIENT_MESSAGES)}")

    def rate_limited(self) -> dict:
        return protocol.error("rate_limited", f"more than {MSG_RATE:g} messages per second; the excess is ignored")

    async def find(self, m: dict) -> dict:
        if self.service is None:
            return protocol.error("no_library", "this server has no music library: start emotrack live with "
                                                "--db PATH (a library made by emotrack index)")
        job = self.service.request(m)
        if isinstance(job, dict):
            return job
        if self._finding >= MAX_FINDING:
            return protocol.error("busy", f"{MAX_FINDING} library queries are already waiting; try again shortly")
        self._finding += 1
        try:
            return await asyncio.wrap_future(self.service.submit(job))
        except Exception as e:  # a query must never take the connection down
            return protocol.error("find_failed", f"the query failed: {type(e).__name__}: {e}"[:200])
        finally:
            self._finding -= 1

    def status_report(self) -> dict:
        try:
            return protocol.report("status on request", self.report() if self.report is not None else None)
        except Exception as e:  # a report must never take the connection down
            return protocol.report(f"status report failed: {type(e).__name__}")

    def subscribe(self, m: dict, client: ClientState) -> dict:
        """``{"type": "subscribe", "every": N | "rate": HZ, "fields": [...] | null}``; omitted
        keys keep their current setting; the answer says what is in effect."""
        unknown = sorted(str(k)[:40] for k in m if k not in ("type", "every", "rate", "fields"))
        if unknown:
            return protocol.error("bad_subscribe", f"subscribe takes every, rate and fields; unknown: {', '.join(unknown)}")
        if "every" in m and "rate" in m:
            return protocol.error("bad_subscribe", "give either every (frames) or rate (per second), not both")
        every, fields = client.every, client.fields
        hop = float(self.hop() or 0.5)
        if "every" in m:
            v = m["every"]
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 10000:
                return protocol.error("bad_subscribe", "every must be a whole number of frames, 1-10000")
            every = v
        elif "rate" in m:
            v = m["rate"]
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < float("inf"):
                return protocol.error("bad_subscribe",
                                      f"rate must be a positive number of frames per second (at most {1 / hop:g})")
            every = 10000 if v * hop * 10000 <= 1 else max(1, round(1.0 / (hop * v)))
        if "fields" in m:
            v = m["fields"]
            if v is None:
                fields = None
            elif isinstance(v, list) and all(isinstance(f, str) for f in v):
                bad = [f[:40] for f in v if f not in protocol.FRAME_FIELDS and f not in protocol.ALWAYS_FIELDS]
                if bad:
                    return protocol.error("bad_subscribe", f"unknown frame fields {bad[:5]}; known: "
                                                           f"{', '.join(protocol.FRAME_FIELDS)}")
                fields = tuple(f for f in protocol.FRAME_FIELDS if f in v)
            else:
                return protocol.error("bad_subscribe", "fields must be a list of frame field names, or null for all")
        client.every, client.fields = every, fields
        return protocol.subscribed(every, hop, fields)


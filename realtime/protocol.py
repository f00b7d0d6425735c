"""Protocol v1: every message emotrack sends, and the one compact JSON encoding of them.

The WebSocket server, the live engine, the recorder, ``analyze`` and ``listen`` all build
their messages here, so the wire format lives in one module (the JSON Schema
``assets/protocol-v1.schema.json`` describes the same messages and the tests check what
these functions build against it). Pure functions: they run on whichever thread calls
them (the worker for ``frame``/``status``, the asyncio loop for answers to clients, the
main thread for ``analyze``).

Version 1 may gain optional fields and new message types; clients ignore what they do
not know (docs/protocol.md).
"""

from __future__ import annotations

import json
import math
import time

PROTOCOL_VERSION = 1
# frame fields a client may subscribe to; ALWAYS_FIELDS are in every frame
FRAME_FIELDS = ("wall", "valence", "arousal", "valence_std", "arousal_std", "latency_ms", "adc_latency_ms", "counters",
                "descriptors")
ALWAYS_FIELDS = ("type", "seq", "t")
PREDICTION_FIELDS = ("t", "valence", "arousal", "valence_std", "arousal_std")  # analyze's lines
RECORD_FIELDS = ("seq", "t", "wall", "valence", "arousal", "valence_std", "arousal_std", "latency_ms")  # --record
CLIENT_MESSAGES = ("ping", "status", "subscribe", "find")


def dumps(msg: dict) -> str:
    """The one encoding: compact JSON (no spaces), UTF-8 text."""
    return json.dumps(msg, separators=(",", ":"))


def wall_now() -> float:
    return round(time.time(), 4)


def hello(run: str, server: str, model_name: str, model_version: str, hop: float, frame_seconds: float,
          sample_rate: int, source: dict, descriptors: dict[str, float] | None = None) -> dict:
    """The first message every client gets: what it is listening to. With a model that has
    descriptors, ``descriptors`` maps each name to how likely it is on typical music (what
    a display ranks a frame's descriptors against)."""
    msg = {"type": "hello", "protocol": PROTOCOL_VERSION, "server": server, "run": run,
           "model": {"name": model_name, "version": model_version}, "hop": round(hop, 6),
           "frame_seconds": frame_seconds, "sample_rate": sample_rate, "source": source,
           "valence_range": [-1, 1], "arousal_range": [-1, 1]}
    if descriptors:
        msg["descriptors"] = {k: round(float(v), 4) for k, v in descriptors.items()}
    return msg


def prediction(t: float, valence: float, arousal: float, valence_std: float, arousal_std: float,
               ndigits: int = 5) -> dict:
    """One line of ``emotrack analyze``: the prediction whose frame ends at ``t``."""
    return {"t": round(t, 4), "valence": round(valence, ndigits), "arousal": round(arousal, ndigits),
            "valence_std": round(valence_std, ndigits), "arousal_std": round(arousal_std, ndigits)}


def frame(seq: int, t: float, valence: float, arousal: float, valence_std: float, arousal_std: float,
          latency_ms: float, counters: dict, descriptors: dict[str, float] | None = None,
          wall: float | None = None, adc_latency_ms: float | None = None) -> dict:
    """One prediction on the stream; ``descriptors`` (optional, added in v1 without a version
    change) the model's perceptual descriptors of the frame, each in [0, 1]."""
    msg = {"type": "frame", "seq": seq, "t": round(t, 4), "wall": wall_now() if wall is None else wall,
           **{k: v for k, v in prediction(t, valence, arousal, valence_std, arousal_std).items() if k != "t"},
           "latency_ms": round(latency_ms, 3), "counters": counters}
    if adc_latency_ms is not None:  # devices that report PortAudio's timing: from the converter's capture
        msg["adc_latency_ms"] = round(max(0.0, adc_latency_ms), 3)
    if descriptors:
        msg["descriptors"] = {k: round(float(v), 3) for k, v in descriptors.items()}
    return msg


def record(msg: dict) -> dict:
    """What ``--record`` keeps of a frame (one line of JSONL, or one CSV row)."""
    return {k: msg[k] for k in RECORD_FIELDS if k in msg}


def subset(msg: dict, fields: tuple[str, ...]) -> dict:
    """A frame cut down to a client's subscription (the always-present fields kept)."""
    return {k: msg[k] for k in ALWAYS_FIELDS + fields if k in msg}


def status(event: str, message: str, t: float, counters: dict) -> dict:
    """Something happened: device_lost, device_resumed, end_of_input, source_error, error,
    sink_error, ..."""
    return {"type": "status", "event": event, "message": message, "t": round(t, 4), "wall": wall_now(),
            "counters": counters}


def report(message: str, extra: dict | None = None) -> dict:
    """The answer to a client's ``{"type": "status"}``."""
    msg = {"type": "status", "event": "report", "message": message, "t": 0.0, "wall": wall_now()}
    msg.update(extra or {})
    msg["type"], msg["event"] = "status", "report"
    return msg


def error(code: str, message: str) -> dict:
    """The answer to a client message that cannot be served."""
    return {"type": "error", "error": code, "message": message}


def pong(ping_id) -> dict:
    return {"type": "pong", "id": echo_id(ping_id), "wall": wall_now()}


def subscribed(every: int, hop: float, fields: tuple[str, ...] | None) -> dict:
    return {"type": "subscribed", "every": every, "rate": round(1.0 / (hop * every), 6),
            "fields": list(ALWAYS_FIELDS + fields) if fields is not None else None}


def found(request_id, query: str, match: str | None, songs: int, ms: float, results: list[dict]) -> dict:
    """The answer to a ``find``: songs from the library."""
    return {"type": "found", "id": request_id, "query": query, "match": match, "songs": songs, "ms": round(ms, 2),
            "results": results}


def like_now(t: float, window: tuple[float, float], seconds: float, songs: int, results: list[dict],
             message: str | None, ms: float) -> dict:
    """The songs whose stretches best match the last ``seconds`` of the live trajectory."""
    return {"type": "like_now", "t": round(float(t), 3), "window": [round(float(window[0]), 3),
            round(float(window[1]), 3)], "seconds": seconds, "songs": songs, "results": results,
            "message": message, "ms": round(ms, 2)}


def short(x) -> str:
    """A client-supplied value, quoted and cut short, for an error message."""
    r = repr(x) if isinstance(x, str | int | float | bool | type(None)) else type(x).__name__
    return r if len(r) <= 40 else r[:37] + "..."


def echo_id(x):
    """A client's request id is echoed only if it is a short scalar (a client cannot make us
    send megabytes)."""
    if isinstance(x, bool | type(None)) or (isinstance(x, int) and abs(x) < 2**53) \
            or (isinstance(x, float) and math.isfinite(x)):
        return x
    if isinstance(x, str) and len(x) <= 64:
        return x
    return None

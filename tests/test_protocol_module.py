"""protocol.py builds every message; the shipped JSON Schema accepts what it builds."""

from __future__ import annotations

import json

import pytest
from emotrack.realtime import protocol

from .conftest import schema_validator

COUNTERS = {"overflows": 0, "dropped_seconds": 0.0, "device_losses": 0, "clients": 1}
RESULT = {"id": 3, "path": "/music/a.flac", "distance": 0.12, "valence": 0.5, "arousal": -0.2, "duration": 181.0}


def built() -> dict[str, dict]:
    return {
        "hello": protocol.hello("abc123", "emotrack 0.1.0", "emotrack-vae-lstm", "1", 0.5, 0.5, 22050,
                                {"kind": "file", "name": "x.wav", "sample_rate": 44100, "channels": 2}),
        "frame": protocol.frame(0, 0.5, 0.1, -0.2, 0.3, 0.4, 1.234, COUNTERS),
        "status": protocol.status("end_of_input", "x.wav: end of input", 12.5, COUNTERS),
        "report": protocol.report("status on request", {"state": "running", "t": 3.0}),
        "error": protocol.error("bad_json", "client messages must be JSON objects"),
        "pong": protocol.pong(7),
        "subscribed": protocol.subscribed(5, 0.1, ("valence", "arousal")),
        "subscribed_all": protocol.subscribed(1, 0.5, None),
        "found": protocol.found(1, "point", None, 12, 1.5, [RESULT]),
        "like_now": protocol.like_now(30.0, (10.0, 30.0), 20.0, 12, [{**RESULT, "segment": [4.0, 24.0]}], None, 9.9),
    }


@pytest.mark.parametrize("kind", list(built()))
def test_every_builder_matches_the_schema(kind):
    msg = built()[kind]
    schema_validator().validate(json.loads(protocol.dumps(msg)))
    assert msg["type"] in ("hello", "frame", "status", "error", "pong", "subscribed", "found", "like_now")
    if kind == "hello":
        assert msg["protocol"] == protocol.PROTOCOL_VERSION


def test_dumps_is_compact_and_round_trips():
    msg = built()["frame"]
    text = protocol.dumps(msg)
    assert " " not in text and json.loads(text) == msg


def test_a_frame_cut_to_a_subscription_keeps_type_seq_and_t():
    cut = protocol.subset(built()["frame"], ("valence",))
    assert cut == {"type": "frame", "seq": 0, "t": 0.5, "valence": 0.1}


def test_echoed_ids_are_short_scalars_only():
    assert protocol.pong("x" * 64)["id"] == "x" * 64
    assert protocol.pong("x" * 65)["id"] is None
    assert protocol.pong([1, 2])["id"] is None
    assert protocol.pong(float("nan"))["id"] is None

"""Lab Streaming Layer outlets (``emotrack live --lsl [NAME]``), for research recorders
(LabRecorder, or any LSL inlet) that record emotion next to EEG, physiology or motion.

Two streams, both with source_id ``emotrack:NAME``:

- ``NAME`` (type ``Emotion``): 4 float32 channels ``valence, arousal, valence_std,
  arousal_std`` at the nominal rate 1/hop. Each sample's LSL timestamp is the moment
  the last audio sample of its frame was captured: ``local_clock()`` minus
  ``adc_latency_ms``, from PortAudio's ADC time of the block, for devices that report it
  (``latency_ms``, from its arrival, otherwise and for files): the same clock LSL puts on
  every other stream, so they line up.
- ``NAME-events`` (type ``Markers``): one string per status event, e.g.
  ``device_lost: ...``.

pylsl (with its bundled liblsl) is an optional extra: ``pip install 'emotrack[lsl]'``.
Threads: ``frame``/``status`` run on the worker (``push_sample`` copies into liblsl's own
buffer and returns; liblsl's threads do the network).
"""

from __future__ import annotations

CHANNELS = ("valence", "arousal", "valence_std", "arousal_std")


class LslError(Exception):
    """pylsl is missing or liblsl cannot be loaded."""


def _pylsl():
    try:
        import pylsl  # deferred: an optional extra (emotrack[lsl]) with a native library
    except (ImportError, RuntimeError, OSError) as e:  # no package, or no liblsl for this platform
        raise LslError(f"--lsl needs pylsl and its liblsl ({e}). Install it: pip install 'emotrack[lsl]'") from e
    pylsl.set_config_content("[log]\nlevel = -2\n")  # liblsl logs every connection at INFO otherwise
    return pylsl


class LslSink:
    """Sink: every prediction as one LSL sample; every status event as one marker."""

    def __init__(self, name: str, hop: float, hello: dict):
        lsl = _pylsl()
        self._clock = lsl.local_clock
        self.source_id = f"emotrack:{name}"
        info = lsl.StreamInfo(name, "Emotion", len(CHANNELS), 1.0 / hop, lsl.cf_float32, self.source_id)
        desc = info.desc()
        desc.append_child_value("manufacturer", "emotrack")
        desc.append_child_value("server", str(hello.get("server", "")))
        desc.append_child_value("model", f"{hello.get('model', {}).get('name', '')} {hello.get('model', {}).get('version', '')}")
        desc.append_child_value("source", str(hello.get("source", {}).get("name", "")))
        desc.append_child_value("frame_seconds", str(hello.get("frame_seconds", "")))
        chans = desc.append_child("channels")
        for c in CHANNELS:
            ch = chans.append_child("channel")
            ch.append_child_value("label", c)
            ch.append_child_value("unit", "DEAM scale, -1..1" if not c.endswith("std") else "std, DEAM scale")
            ch.append_child_value("type", "Emotion")
        self.outlet = lsl.StreamOutlet(info, chunk_size=1, max_buffered=360)
        markers = lsl.StreamInfo(f"{name}-events", "Markers", 1, lsl.IRREGULAR_RATE, lsl.cf_string,
                                 f"{self.source_id}:events")
        self.markers = lsl.StreamOutlet(markers)
        self.sent = 0

    def frame(self, msg: dict, text: str) -> None:
        # when the frame's last sample was captured (PortAudio's ADC time), else when it arrived
        stamp = self._clock() - msg.get("adc_latency_ms", msg["latency_ms"]) / 1000.0
        self.outlet.push_sample([msg["valence"], msg["arousal"], msg["valence_std"], msg["arousal_std"]], stamp)
        self.sent += 1

    def status(self, msg: dict, text: str) -> None:
        self.markers.push_sample([f"{msg['event']}: {msg['message']}"])

    def close(self) -> None:
        self.outlet = self.markers = None  # pylsl's outlets close when released

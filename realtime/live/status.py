"""The status line: what the window shows at its foot and the headless run prints every
``--status-every`` seconds. Runs on the GUI thread or the main thread; it only reads values
the worker publishes whole (the last frame, the latency summary, counters).
"""

from __future__ import annotations


def rank_descriptors(values: dict[str, float] | None, typical: dict[str, float], k: int = 3) -> list[str]:
    """The ``k`` descriptors that stand out most in ``values`` (a frame's), by how much more
    likely each is than on typical music (``typical``, from the model or the hello)."""
    if not values:
        return []
    ratio = {n: v / max(typical.get(n, 0.5), 1e-3) for n, v in values.items()}
    return sorted(ratio, key=lambda n: -ratio[n])[:k]


def descriptor_line(engine) -> str:
    """'soft · slow · piano' for the newest frame, or '' for a model without descriptors."""
    last = engine.last
    model = engine.model
    if not last or not last.get("descriptors"):
        return ""
    typical = dict(zip(model.descriptor_names, model.descriptor_typical.tolist(), strict=True))
    return " · ".join(rank_descriptors(last["descriptors"], typical))


def status_parts(engine, server=None) -> list[str]:
    """What the window's status line and the headless status lines say."""
    src = engine.source
    lat = engine.latency_summary  # published by the worker; nothing is computed here
    last = engine.last
    parts = [f"{src.kind}: {src.name} ({src.state})"]
    if last:
        parts.append(f"t {last['t']:.1f} s   V {last['valence']:+.2f} ± {last['valence_std']:.2f}   "
                     f"A {last['arousal']:+.2f} ± {last['arousal_std']:.2f}")
    desc = descriptor_line(engine)
    if desc:
        parts.append(desc)
    if lat.get("count"):
        parts.append(f"latency {lat['median_ms']:.1f} ms (p99 {lat['p99_ms']:.1f})")
    parts.append(f"overflows {src.ring.overflows}")
    dropped = engine.counters_now().get("osc_dropped")
    if dropped:
        parts.append(f"OSC dropped {dropped}")
    if getattr(src, "losses", 0):
        parts.append(f"device lost {src.losses}x")
    if server is not None:
        parts.append(f"WebSocket {server.url}: {server.client_count} clients")
    return parts

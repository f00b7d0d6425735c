"""emotrack.realtime: the torch-free runtime. ``core`` (features, model, Tracker), ``live``
(sources, worker, sinks), ``net`` (WebSocket, dashboard), ``library`` (index and find),
``bench``; ``cli``, ``protocol`` and ``assets`` at the top. See docs/ARCHITECTURE.md."""

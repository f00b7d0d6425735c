"""emotrack.realtime: the torch-free runtime. ``core`` (features, model, Tracker), ``live``
(sources, worker, sinks), ``net`` (WebSocket, dashboard), ``library`` (index and find),
``bench``; ``cli``, ``protocol`` and ``assets`` at the top. docs/ARCHITECTURE.md says which thread runs each part."""

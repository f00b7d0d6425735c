"""The streaming core: the one feature definition, decoding and resampling, log-mel, the
ONNX model, the Tracker that owns a stream's state, and the whole-song model. No threads of
its own: the live worker, ``analyze`` and the index workers call it."""

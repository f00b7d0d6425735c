"""``emotrack live``: audio sources (a device, a file), the ring between the audio thread
and the worker, the worker (engine), the status line, and the sinks. docs/ARCHITECTURE.md
names every thread."""

"""emotrack.realtime: the torch-free runtime (config, features, model, pipeline, CLI)."""

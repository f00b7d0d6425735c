"""``emotrack bench``: every benchmark, apart from the runtime (nothing in the runtime
imports it)."""

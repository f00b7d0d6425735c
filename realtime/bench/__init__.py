"""``emotrack bench``: every benchmark, apart from the runtime (nothing in the runtime
imports it). Each benchmark runs on the main thread and says which threads or child
processes it adds."""

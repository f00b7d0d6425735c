"""A music library by emotion: the SQLite store, ``emotrack index`` (worker processes), DTW,
queries (``Library``), ``emotrack find``, and the library service inside ``live``."""

"""The live window (PySide6 + pyqtgraph): the valence-arousal plane with the current point,
its uncertainty and a fading trail; valence and arousal over time with their uncertainty
bands; a status line.

Threads: :class:`GuiSink` is called on the worker thread and only appends to a bounded
history under a short lock. The GUI (main) thread only draws: a ``QTimer`` every 40 ms
copies the newest history and calls ``setData``; the status line reads what the worker
published (``status_parts``), it computes nothing. Dark theme and a large current point,
for a stage monitor. PySide6 and pyqtgraph are imported only when a window is made (a
headless installation has no use for them).
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque

import numpy as np

from ..status import descriptor_line, status_parts

# colours (also used by the screenshot test to find what was drawn)
BG = "#101418"
FG = "#d8dee9"
POINT = "#ffd54f"  # current point
TRAIL = "#4dd0e1"  # trail
VALENCE = "#81c784"
AROUSAL = "#ff8a65"
QUADRANTS = {  # label, position
    "happy · excited": (0.55, 0.92), "tense · angry": (-0.55, 0.92),
    "sad · depressed": (-0.55, -0.92), "calm · relaxed": (0.55, -0.92),
}


class GuiSink:
    """Keeps the last ``history_seconds`` of predictions and the latest status event."""

    def __init__(self, trail_seconds: float = 10.0, history_seconds: float = 60.0, max_points: int = 5000):
        self.trail_seconds = trail_seconds
        self.history_seconds = max(history_seconds, trail_seconds)
        self._hist: deque = deque(maxlen=max_points)
        self._lock = threading.Lock()
        self.seq = -1
        self.event: dict | None = None
        self.last: dict | None = None

    def frame(self, msg: dict, text: str) -> None:
        row = (msg["t"], msg["valence"], msg["arousal"], msg["valence_std"], msg["arousal_std"])
        with self._lock:
            self._hist.append(row)
            self.seq = msg["seq"]
            self.last = msg

    def status(self, msg: dict, text: str) -> None:
        self.event = msg

    def close(self) -> None:
        pass

    def snapshot(self) -> np.ndarray:
        """(n, 5) array of t, valence, arousal, valence_std, arousal_std over the history window."""
        with self._lock:
            rows = list(self._hist)
        a = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
        if len(a):
            a = a[a[:, 0] >= a[-1, 0] - self.history_seconds]
        return a


def smooth_display(h: np.ndarray, hop: float, frame_seconds: float) -> np.ndarray:
    """What the window draws at a hop shorter than the frame: each row the causal mean of the
    outputs of the last ``frame_seconds`` (one per phase-shifted state), so the 0.5 s ripple
    of the states disagreeing does not dominate; it lags by half of that, 0.2 s at hop 0.1.
    The stream keeps the raw values."""
    k = int(round(frame_seconds / hop)) if hop > 0 else 1
    if k <= 1 or len(h) < 2:
        return h
    c = np.cumsum(np.vstack([np.zeros((1, h.shape[1] - 1)), h[:, 1:]]), 0)
    idx = np.arange(1, len(h) + 1)
    lo = np.maximum(0, idx - k)
    out = h.copy()
    out[:, 1:] = (c[idx] - c[lo]) / (idx - lo)[:, None]
    return out


def _rgba(hex_colour: str, alpha: int) -> tuple[int, int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), alpha


class LiveWindow:
    """Builds the widgets; ``refresh()`` draws the newest state (GUI thread only)."""

    def __init__(self, engine, sink: GuiSink, server=None, title_source: str = ""):
        import pyqtgraph as pg  # deferred: Qt is needed only where a window is drawn
        from PySide6 import QtCore, QtGui, QtWidgets

        pg.setConfigOptions(antialias=True, background=BG, foreground=FG)
        self.pg = pg
        self.engine, self.sink, self.server = engine, sink, server
        self._drawn_seq = -2

        self.win = QtWidgets.QMainWindow()
        self.win.setWindowTitle(f"emotrack live — {title_source}" if title_source else "emotrack live")
        self.win.resize(900, 1000)
        self.win.setStyleSheet(f"background-color: {BG}; color: {FG};")
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(8, 8, 8, 8)
        self.win.setCentralWidget(central)

        self._build_plane(pg, QtCore, QtGui, QtWidgets)
        layout.addWidget(self.plane, stretch=3)

        # --- what stands out in the music now (models with descriptors): "soft · slow · piano"
        self.descriptors = QtWidgets.QLabel("")
        dfont = QtGui.QFont()
        dfont.setPointSize(20)
        self.descriptors.setFont(dfont)
        self.descriptors.setStyleSheet(f"color: {POINT};")
        self.descriptors.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.descriptors)

        self._build_series(pg)
        layout.addWidget(self.series, stretch=2)

        # --- status line
        self.status = QtWidgets.QLabel("waiting for the first 0.5 s of audio…")
        sfont = QtGui.QFont()
        sfont.setPointSize(14)
        self.status.setFont(sfont)
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        self.timer = QtCore.QTimer()
        self.timer.setInterval(40)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    def _build_plane(self, pg, QtCore, QtGui, QtWidgets) -> None:
        """The valence-arousal plane: quadrant names, the trail, the ±1 std ellipse, the point."""
        self.plane = pg.PlotWidget()
        # both axes always span [-1, 1] (with a small margin), whatever the window's shape; an
        # aspect lock would widen the valence axis of a tall window to ±1.7
        self.plane.setAspectLocked(False)
        self.plane.setXRange(-1.05, 1.05, padding=0)
        self.plane.setYRange(-1.05, 1.05, padding=0)
        self.plane.getViewBox().setLimits(xMin=-1.05, xMax=1.05, yMin=-1.05, yMax=1.05)
        self.plane.enableAutoRange(enable=False)
        self.plane.setMouseEnabled(False, False)
        self.plane.hideButtons()
        self.plane.setLabel("bottom", "valence")
        self.plane.setLabel("left", "arousal")
        grey = pg.mkPen("#4c566a", width=1)
        self.plane.addItem(pg.InfiniteLine(0, angle=90, pen=grey))
        self.plane.addItem(pg.InfiniteLine(0, angle=0, pen=grey))
        self.plane.addItem(pg.PlotCurveItem([-1, 1, 1, -1, -1], [-1, -1, 1, 1, -1], pen=grey))
        font = QtGui.QFont()
        font.setPointSize(13)
        for text, (x, y) in QUADRANTS.items():
            item = pg.TextItem(text, color="#8fa1b3", anchor=(0.5, 0.5))
            item.setFont(font)
            item.setPos(x, y)
            self.plane.addItem(item)
        self.trail_line = pg.PlotCurveItem(pen=pg.mkPen(_rgba(TRAIL, 110), width=2))
        self.trail_dots = pg.ScatterPlotItem(pen=None)
        self.ellipse = QtWidgets.QGraphicsEllipseItem(0, 0, 0, 0)
        self.ellipse.setPen(pg.mkPen(_rgba(POINT, 160), width=2, style=QtCore.Qt.PenStyle.DashLine))
        self.ellipse.setBrush(pg.mkBrush(_rgba(POINT, 35)))
        self.point = pg.ScatterPlotItem(size=34, pen=pg.mkPen("w", width=3), brush=pg.mkBrush(POINT))
        for it in (self.trail_line, self.trail_dots, self.ellipse, self.point):
            self.plane.addItem(it)

    def _build_series(self, pg) -> None:
        """Valence and arousal over time, with ±1 std bands."""
        grey = pg.mkPen("#4c566a", width=1)
        self.series = pg.PlotWidget()
        self.series.setYRange(-1.05, 1.05, padding=0)
        self.series.setMouseEnabled(False, False)
        self.series.hideButtons()
        self.series.setLabel("bottom", "stream time (s)")
        self.series.addLegend(offset=(10, 5))
        self.series.addItem(pg.InfiniteLine(0, angle=0, pen=grey))
        self.curves = {}
        for name, col in (("valence", VALENCE), ("arousal", AROUSAL)):
            lo = pg.PlotCurveItem(pen=pg.mkPen(None))
            hi = pg.PlotCurveItem(pen=pg.mkPen(None))
            band = pg.FillBetweenItem(lo, hi, brush=pg.mkBrush(_rgba(col, 55)))
            line = self.series.plot(pen=pg.mkPen(col, width=3), name=name)
            self.series.addItem(lo)
            self.series.addItem(hi)
            self.series.addItem(band)
            self.curves[name] = (line, lo, hi)

    def refresh(self) -> None:
        self._status()
        self.descriptors.setText(descriptor_line(self.engine))
        if self.sink.seq == self._drawn_seq:
            return
        self._drawn_seq = self.sink.seq
        h = self.sink.snapshot()
        if len(h) == 0:
            return
        h = smooth_display(h, self.engine.hop, self.engine.model.features.frame_seconds)
        t, v, a, vs, as_ = h.T
        trail = h[t >= t[-1] - self.sink.trail_seconds]
        n = len(trail)
        self.trail_line.setData(trail[:, 1], trail[:, 2])
        alpha = np.linspace(25, 220, n).astype(int) if n > 1 else np.array([220])
        size = np.linspace(5, 14, n) if n > 1 else np.array([14.0])
        brushes = [self.pg.mkBrush(_rgba(TRAIL, int(al))) for al in alpha]
        self.trail_dots.setData(trail[:, 1], trail[:, 2], brush=brushes, size=size)
        self.point.setData([v[-1]], [a[-1]])
        self.ellipse.setRect(v[-1] - vs[-1], a[-1] - as_[-1], 2 * vs[-1], 2 * as_[-1])
        for name, y, s in (("valence", v, vs), ("arousal", a, as_)):
            line, lo, hi = self.curves[name]
            line.setData(t, y)
            lo.setData(t, np.clip(y - s, -1.05, 1.05))
            hi.setData(t, np.clip(y + s, -1.05, 1.05))
        self.series.setXRange(max(0.0, t[-1] - self.sink.history_seconds), max(t[-1], 5.0), padding=0.01)

    def _status(self) -> None:
        src = self.engine.source
        ev = self.sink.event
        text = "   |   ".join(status_parts(self.engine, self.server))
        frame = self.engine.model.features.frame_seconds
        if self.engine.hop < frame:
            lag = (round(frame / self.engine.hop) - 1) * self.engine.hop / 2
            text += f"   |   drawn as a {frame:g} s average ({lag:.2f} s behind); the stream is raw"
        if ev and ev["event"] in ("device_lost", "error", "source_error", "end_of_input"):
            colour = "#bf616a" if ev["event"] != "end_of_input" else "#ebcb8b"
            if not (ev["event"] == "device_lost" and src.state == "running"):
                text += f"<br><span style='color:{colour}'>{ev['message']}</span>"
        self.status.setText(text)


def _app():
    from PySide6 import QtWidgets  # deferred: see LiveWindow

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication(["emotrack"])


def run_window(engine, sink: GuiSink, server=None, title_source: str = "") -> None:
    """Show the window until it is closed or Ctrl-C (main thread)."""
    app = _app()
    w = LiveWindow(engine, sink, server, title_source)
    w.win.show()
    signal.signal(signal.SIGINT, lambda *_: app.quit())
    signal.signal(signal.SIGTERM, lambda *_: app.quit())
    app.exec()  # the 40 ms timer also lets Python run its signal handlers
    w.timer.stop()
    w.win.close()


def render_png(engine, sink: GuiSink, path: str, seconds: float, server=None, size=(900, 1000)) -> object:
    """Show the window off screen for ``seconds``, save a screenshot; returns the QImage."""
    app = _app()
    w = LiveWindow(engine, sink, server)
    w.win.resize(*size)
    w.win.show()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)
    w.refresh()
    app.processEvents()
    img = w.win.grab().toImage()
    img.save(str(path))
    w.timer.stop()
    w.win.close()
    return img

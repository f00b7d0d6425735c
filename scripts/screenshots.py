"""Redraw docs/img/live-window.png and docs/img/dashboard.png from the shipped model on the
bundled demo, after 48 s of it at real time (the trajectory has then gone calm -> energetic
-> tense): the window rendered off screen, the dashboard in headless Chromium.

    .venv/bin/python scripts/screenshots.py        # about two minutes
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
SECONDS = 48.0


def window() -> None:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from emotrack import load_model
    from emotrack.realtime.assets import demo_path
    from emotrack.realtime.live.engine import LiveEngine
    from emotrack.realtime.live.sinks.gui import GuiSink, render_png
    from emotrack.realtime.live.sources import FileSource

    sink = GuiSink(trail_seconds=30)
    e = LiveEngine(load_model(), FileSource(demo_path()), hop=0.1, sinks=[sink], duration=SECONDS)
    e.start()
    render_png(e, sink, str(IMG / "live-window.png"), seconds=SECONDS + 0.5)
    e.stop()


def dashboard() -> None:
    from playwright.sync_api import sync_playwright

    live = subprocess.Popen([sys.executable, "-m", "emotrack.realtime.cli", "live", "--no-gui", "--quiet",
                             "--input", str(ROOT / "assets" / "demo.opus"),
                             "--ws", "127.0.0.1:18765", "--http", "127.0.0.1:18080"])
    try:
        time.sleep(1.0)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1100, "height": 650}, device_scale_factor=2)
            page.goto("http://127.0.0.1:18080/")
            time.sleep(SECONDS - 1.0)
            page.screenshot(path=str(IMG / "dashboard.png"))
            browser.close()
    finally:
        live.terminate()
        live.wait(10)


if __name__ == "__main__":
    window()
    dashboard()
    print(f"wrote {IMG / 'live-window.png'} and {IMG / 'dashboard.png'}")

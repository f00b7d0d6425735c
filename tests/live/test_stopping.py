"""How a run ends is told truly: SIGTERM is a stop, not an end of input; running out of file
descriptors is said once, not per refused connection."""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import sys
import time

import pytest

from ..conftest import EMOTRACK, WsClient, free_port, wait_for


def _live(port, demo_path, **kw):
    return subprocess.Popen(EMOTRACK + ["live", "--no-gui", "--quiet", "--input", str(demo_path), "--loop",
                                        "--ws", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kw)


def _connect(port, timeout=20) -> WsClient:
    end = time.monotonic() + timeout
    while True:
        try:
            return WsClient(f"ws://127.0.0.1:{port}")
        except (AssertionError, OSError):
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


@pytest.mark.parametrize("attempt", range(4))
def test_sigterm_is_a_stop_not_an_end_of_input(demo_path, attempt):
    port = free_port()
    proc = _live(port, demo_path)
    try:
        client = _connect(port)
        wait_for(lambda: len(client.frames()) >= 2, 15, "frames")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        wait_for(lambda: client.closed_reason is not None, 10, "the close")
        events = [m["event"] for m in client.messages if m["type"] == "status"]
        assert "stopped" in events and "end_of_input" not in events, events
    finally:
        proc.kill()


def test_out_of_file_descriptors_is_said_once(demo_path):
    port = free_port()

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    proc = _live(port, demo_path, preexec_fn=low_limit)
    socks = []
    try:
        _connect(port).close()
        for _ in range(300):  # more than the server may hold open
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            socks.append(s)
        time.sleep(3)
    finally:
        for s in socks:
            s.close()
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=30)[1]
    assert err.count("out of file descriptors") == 1, err[-2000:]
    assert "Traceback" not in err and len(err.splitlines()) < 20, err[-2000:]


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("Linux rlimits and signals")

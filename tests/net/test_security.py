"""What the servers let in: bind rules decided on the addresses really bound, and the Host
check that stops DNS rebinding, on the WebSocket and on the dashboard's HTTP side."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import socket
import subprocess

import pytest
from emotrack.realtime.live.sources import FileSource
from emotrack.realtime.net.access import exposure
from emotrack.realtime.net.address import AddressError, bind_addresses, parse_hostport
from hypothesis import given, settings
from hypothesis import strategies as st

from ..conftest import EMOTRACK, free_port, http_get, serve_dashboard


@pytest.mark.parametrize("spec", ["[]:{port}", ":{port}", "0.0.0.0:{port}", "[::]:{port}"])
def test_every_interface_needs_a_token(demo_path, spec):
    """``--ws "[]:PORT"`` used to listen on every interface without a token."""
    port = free_port()
    r = subprocess.run(EMOTRACK + ["live", "--no-gui", "--fast", "--duration", "1", "--input", str(demo_path),
                                   "--ws", spec.format(port=port)], capture_output=True, text=True, timeout=60)
    if spec.startswith(":"):  # ":PORT" is 127.0.0.1:PORT
        assert r.returncode == 0, r.stderr
        return
    assert r.returncode == 2, r.stderr
    assert "--token" in r.stderr or "brackets" in r.stderr


HOSTS = st.one_of(
    st.sampled_from(["", "0.0.0.0", "::", "127.0.0.1", "127.5.6.7", "localhost", "::1", "[]", "[::]", "[::1]",
                     "::ffff:127.0.0.1", "0", "0x7f000001", "LOCALHOST", " 127.0.0.1 "]),
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)


@settings(max_examples=300, deadline=None)
@given(host=HOSTS, port=st.integers(0, 65535), sep=st.sampled_from([":", ""]))
def test_no_spec_binds_off_loopback_without_a_token(host, port, sep):
    spec = f"{host}{sep}{port}" if sep else host
    try:
        h, p = parse_hostport(spec)
    except AddressError:
        return  # refused: nothing is bound
    refusal, _ = exposure((h, p), None, None, False, spec, None)
    if refusal is None:
        addrs = bind_addresses(h)
        assert addrs and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs), (spec, addrs)


def _handshake(port: int, host: str, origin: str | None) -> bytes:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
           + (f"Origin: {origin}\r\n" if origin else "") + "\r\n")
    s.sendall(req.encode())
    data = b""
    try:
        while len(data) < 4096:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and len(data.split(b"\r\n\r\n", 1)[1]) > 2:
                break
    except TimeoutError:
        pass
    s.close()
    return data


def test_dns_rebinding_is_refused_on_both_sides(model, demo_path):
    engine, server = serve_dashboard(model, FileSource(demo_path, loop=True))
    try:
        ws, hp = server.port, server.dashboard.port
        evil = _handshake(ws, f"attacker.example:{ws}", f"http://attacker.example:{hp}")
        assert b"hello" not in evil  # no stream for a page of another site
        good = _handshake(ws, f"127.0.0.1:{ws}", f"http://127.0.0.1:{hp}")
        assert b" 101 " in good.split(b"\r\n")[0] and b"hello" in good
        for path in ("/config.json", "/", "/preview?song=1"):
            status, _, _ = http_get(f"http://127.0.0.1:{hp}{path}", headers={"Host": f"attacker.example:{hp}"})
            assert status == 403, path
        status, _, body = http_get(f"http://127.0.0.1:{hp}/config.json")
        assert status == 200 and json.loads(body)["ws_port"] == ws
        status, _, _ = http_get(f"http://127.0.0.1:{hp}/config.json", headers={"Host": f"localhost:{hp}"})
        assert status == 200
    finally:
        engine.stop()

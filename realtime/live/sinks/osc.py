"""``--osc HOST:PORT``: every prediction as Open Sound Control messages over UDP.

Runs on the worker thread: building a message and one non-blocking ``sendto`` take a few
microseconds, and a datagram that cannot be sent at once is dropped and counted (UDP
promises no delivery anyway), so OSC never stalls the worker.

Addresses, with the default prefix ``/emotrack``:

- ``/emotrack/va f f``        valence, arousal (in [-1, 1])
- ``/emotrack/valence f``     valence
- ``/emotrack/arousal f``     arousal
- ``/emotrack/std f f``       their predicted standard deviations
- ``/emotrack/t d``           stream time of the end of the frame, seconds (64-bit float)
- ``/emotrack/seq i``         the prediction's number (a jump means lost datagrams)
- ``/emotrack/descriptor/NAME f``  each descriptor of models that have them (soft, loud, ...)
- ``/emotrack/status s s``    a status event and its message (device_lost, device_resumed,
                              end_of_input, stopped, ...); also ``/emotrack/event/EVENT s``

Without ``bundle`` each is its own datagram; with it a prediction's messages travel in one
OSC bundle whose time tag is the prediction's wall-clock time. Broadcast addresses work
(SO_BROADCAST); datagrams that could not be sent are counted (``osc_dropped`` in the frame
counters and the status line).
"""

from __future__ import annotations

import socket

from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from ...net.address import ServerError, parse_hostport


class OscSink:
    def __init__(self, spec: str, prefix: str = "/emotrack", bundle: bool = False):
        self.host, self.port = parse_hostport(spec, default_port=9000, option="--osc")
        if self.port == 0:
            raise ServerError(f"--osc {spec!r}: give the port the receiving program listens on, e.g. --osc 127.0.0.1:9000")
        if not prefix.startswith("/") or " " in prefix or prefix.endswith("/"):
            raise ServerError(f"--osc-prefix {prefix!r}: must start with '/', have no spaces and no trailing '/'")
        self.prefix, self.bundle = prefix, bundle
        try:
            info = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0]
        except socket.gaierror as e:
            raise ServerError(f"--osc {spec!r}: cannot resolve {self.host!r} ({e.strerror})") from e
        self._addr = info[4]
        self._sock = socket.socket(info[0], socket.SOCK_DGRAM)
        if info[0] == socket.AF_INET:  # a broadcast address (192.168.1.255, 255.255.255.255) needs it
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self._sock.setblocking(False)
        self.sent = 0
        self.dropped = 0

    def _messages(self, m: dict):
        p = self.prefix
        for addr, args, kinds in ((f"{p}/va", [m["valence"], m["arousal"]], "ff"), (f"{p}/valence", [m["valence"]], "f"),
                                  (f"{p}/arousal", [m["arousal"]], "f"),
                                  (f"{p}/std", [m["valence_std"], m["arousal_std"]], "ff"),
                                  (f"{p}/t", [float(m["t"])], "d"), (f"{p}/seq", [int(m["seq"])], "i")):
            b = OscMessageBuilder(address=addr)
            for a, k in zip(args, kinds, strict=True):
                b.add_arg(a, k)
            yield b.build()
        for name, value in (m.get("descriptors") or {}).items():
            b = OscMessageBuilder(address=f"{p}/descriptor/{name.replace(' ', '_')}")
            b.add_arg(float(value), "f")
            yield b.build()

    def _send(self, datagrams) -> None:
        for d in datagrams:
            try:
                self._sock.sendto(d, self._addr)
                self.sent += 1
            except OSError:  # would block, or ICMP port unreachable from a previous datagram
                self.dropped += 1

    def frame(self, msg: dict, text: str) -> None:
        msgs = list(self._messages(msg))
        if self.bundle:
            bb = OscBundleBuilder(msg["wall"])
            for x in msgs:
                bb.add_content(x)
            datagrams = [bb.build().dgram]
        else:
            datagrams = [x.dgram for x in msgs]
        self._send(datagrams)

    def status(self, msg: dict, text: str) -> None:
        """A status event: ``PREFIX/status s s`` (event, message) and ``PREFIX/event/EVENT s``."""
        out = []
        for addr, args in ((f"{self.prefix}/status", [msg["event"], msg["message"]]),
                           (f"{self.prefix}/event/{msg['event']}", [msg["message"]])):
            b = OscMessageBuilder(address=addr)
            for a in args:
                b.add_arg(str(a)[:1000], "s")
            out.append(b.build().dgram)
        self._send(out)

    def close(self) -> None:
        self._sock.close()

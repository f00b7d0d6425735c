"""``--osc HOST:PORT``: every prediction as Open Sound Control messages over UDP.

Runs on the worker thread: building a message and one non-blocking ``sendto`` take a few
microseconds, and a datagram that cannot be sent at once is dropped and counted (UDP
promises no delivery anyway), so OSC never stalls the worker.

Addresses, with the default prefix ``/emotrack``:

- ``/emotrack/va f f``        valence, arousal (in [-1, 1])
- ``/emotrack/valence f``     valence
- ``/emotrack/arousal f``     arousal
- ``/emotrack/std f f``       their predicted standard deviations
- ``/emotrack/t f``           stream time of the end of the frame, seconds
- ``/emotrack/seq i``         the prediction's number (a jump means lost datagrams)

Without ``bundle`` each is its own datagram; with it all six travel in one OSC bundle whose
time tag is the prediction's wall-clock time.
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
        self._sock.setblocking(False)
        self.sent = 0
        self.dropped = 0

    def _messages(self, m: dict):
        p = self.prefix
        for addr, args in ((f"{p}/va", [m["valence"], m["arousal"]]), (f"{p}/valence", [m["valence"]]),
                           (f"{p}/arousal", [m["arousal"]]), (f"{p}/std", [m["valence_std"], m["arousal_std"]]),
                           (f"{p}/t", [float(m["t"])]), (f"{p}/seq", [int(m["seq"])])):
            b = OscMessageBuilder(address=addr)
            for a in args:
                b.add_arg(a, "i" if isinstance(a, int) else "f")
            yield b.build()

    def frame(self, msg: dict, text: str) -> None:
        msgs = list(self._messages(msg))
        if self.bundle:
            bb = OscBundleBuilder(msg["wall"])
            for x in msgs:
                bb.add_content(x)
            datagrams = [bb.build().dgram]
        else:
            datagrams = [x.dgram for x in msgs]
        for d in datagrams:
            try:
                self._sock.sendto(d, self._addr)
                self.sent += 1
            except OSError:  # would block, or ICMP port unreachable from a previous datagram
                self.dropped += 1

    def status(self, msg: dict, text: str) -> None:
        pass

    def close(self) -> None:
        self._sock.close()

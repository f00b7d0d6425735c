"""``emotrack listen [ws://HOST:PORT]``: print the stream of a running ``emotrack live`` as
JSON lines on stdout, one message per line (main thread). Connection problems go to stderr
with what to do; ``--reconnect`` keeps trying.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import connect

from ..exitcodes import ExitCode

HELP = "print the stream of a running `emotrack live` as JSON lines"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", nargs="?", default="ws://127.0.0.1:8765", help="default ws://127.0.0.1:8765")
    p.add_argument("--token", help="the access token the server was started with")
    p.add_argument("--frames-only", action="store_true", help="only frame messages (no hello/status)")
    p.add_argument("--reconnect", action="store_true", help="keep trying when the server is not there or goes away")
    p.add_argument("--count", type=int, help="exit after this many frames")


def _with_token(url: str, token: str | None) -> str:
    if not token:
        return url
    u = urlsplit(url)
    q = [(k, v) for k, v in parse_qsl(u.query) if k != "token"] + [("token", token)]
    return urlunsplit((u.scheme, u.netloc, u.path or "/", urlencode(q), u.fragment))


def run(args: argparse.Namespace) -> int:
    return listen(args.url, args.token, args.frames_only, args.reconnect, args.count)


def listen(url: str, token: str | None = None, frames_only: bool = False, reconnect: bool = False,
           count: int | None = None) -> int:
    """Print every message of the stream at ``url`` until it ends (or ``count`` frames)."""
    url = url if "://" in url else f"ws://{url}"
    frames = 0
    while True:
        try:
            with connect(_with_token(url, token), compression=None, open_timeout=5,
                         max_size=2**20) as ws:
                for raw in ws:
                    m = json.loads(raw)
                    if frames_only and m.get("type") != "frame":
                        continue
                    print(raw if isinstance(raw, str) else raw.decode(), flush=True)
                    if m.get("type") == "frame":
                        frames += 1
                        if count and frames >= count:
                            return ExitCode.OK
            reason = "the server closed the connection"
        except InvalidURI as e:
            print(f"emotrack listen: {e}; expected e.g. ws://127.0.0.1:8765", file=sys.stderr)
            return ExitCode.USAGE
        except ConnectionClosed as e:
            rcvd = e.rcvd
            reason = f"connection closed ({rcvd.code} {rcvd.reason})" if rcvd else "connection lost"
            if rcvd is not None and rcvd.code == 1008:  # refused by policy: a retry will not help
                print(f"emotrack listen: {url}: {rcvd.reason}", file=sys.stderr)
                return ExitCode.USAGE
        except InvalidHandshake as e:
            print(f"emotrack listen: {url} refused the connection: {e}", file=sys.stderr)
            return ExitCode.USAGE
        except BrokenPipeError:  # whoever read our stdout went away
            return ExitCode.OK
        except (OSError, TimeoutError) as e:
            reason = f"cannot connect ({getattr(e, 'strerror', None) or e}); is `emotrack live` running there?"
        except KeyboardInterrupt:
            return ExitCode.OK
        if not reconnect:
            print(f"emotrack listen: {url}: {reason}", file=sys.stderr)
            return ExitCode.OK if reason == "the server closed the connection" else ExitCode.DEVICE
        print(f"emotrack listen: {url}: {reason}; retrying in 1 s", file=sys.stderr)
        try:
            time.sleep(1)
        except KeyboardInterrupt:
            return ExitCode.OK

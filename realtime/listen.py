"""``emotrack listen [ws://HOST:PORT]``: print the stream of a running ``emotrack live`` as
JSON lines on stdout, one message per line (main thread). Connection problems go to stderr
with what to do; ``--reconnect`` keeps trying.
"""

from __future__ import annotations

import json
import sys
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def _with_token(url: str, token: str | None) -> str:
    if not token:
        return url
    u = urlsplit(url)
    q = [(k, v) for k, v in parse_qsl(u.query) if k != "token"] + [("token", token)]
    return urlunsplit((u.scheme, u.netloc, u.path or "/", urlencode(q), u.fragment))


def run_listen(args) -> int:
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
    from websockets.sync.client import connect

    url = args.url if "://" in args.url else f"ws://{args.url}"
    frames = 0
    while True:
        try:
            with connect(_with_token(url, args.token), compression=None, open_timeout=5,
                         max_size=2**20) as ws:
                for raw in ws:
                    m = json.loads(raw)
                    if args.frames_only and m.get("type") != "frame":
                        continue
                    print(raw if isinstance(raw, str) else raw.decode(), flush=True)
                    if m.get("type") == "frame":
                        frames += 1
                        if args.count and frames >= args.count:
                            return 0
            reason = "the server closed the connection"
        except InvalidURI as e:
            print(f"emotrack listen: {e}; expected e.g. ws://127.0.0.1:8765", file=sys.stderr)
            return 2
        except ConnectionClosed as e:
            rcvd = e.rcvd
            reason = f"connection closed ({rcvd.code} {rcvd.reason})" if rcvd else "connection lost"
            if rcvd is not None and rcvd.code == 1008:  # refused by policy: a retry will not help
                print(f"emotrack listen: {url}: {rcvd.reason}", file=sys.stderr)
                return 2
        except InvalidHandshake as e:
            print(f"emotrack listen: {url} refused the connection: {e}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # whoever read our stdout went away
            return 0
        except (OSError, TimeoutError) as e:
            reason = f"cannot connect ({getattr(e, 'strerror', None) or e}); is `emotrack live` running there?"
        except KeyboardInterrupt:
            return 0
        if not args.reconnect:
            print(f"emotrack listen: {url}: {reason}", file=sys.stderr)
            return 0 if reason == "the server closed the connection" else 4
        print(f"emotrack listen: {url}: {reason}; retrying in 1 s", file=sys.stderr)
        try:
            time.sleep(1)
        except KeyboardInterrupt:
            return 0

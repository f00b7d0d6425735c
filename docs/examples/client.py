"""A minimal emotrack client: prints valence and arousal twice a second.

    pip install websockets
    python client.py [ws://127.0.0.1:8765] [--token SECRET]

It asks for 2 predictions per second and only the fields it uses (protocol v1
"subscribe"), and reconnects when emotrack restarts.
"""

import argparse
import json
import time

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url", nargs="?", default="ws://127.0.0.1:8765")
    ap.add_argument("--token")
    a = ap.parse_args()
    url = a.url + (f"/?token={a.token}" if a.token else "")
    while True:
        try:
            with connect(url, open_timeout=5) as ws:
                hello = json.loads(ws.recv())
                if hello.get("protocol") != 1:
                    raise SystemExit(f"this client speaks protocol 1, the server {hello.get('protocol')}")
                print(f"# {hello['server']}, model {hello['model']['name']}, source {hello['source']['name']}")
                ws.send(json.dumps({"type": "subscribe", "rate": 2, "fields": ["valence", "arousal"]}))
                for raw in ws:
                    m = json.loads(raw)
                    if m["type"] == "frame":
                        print(f"t={m['t']:7.1f} s  valence {m['valence']:+.2f}  arousal {m['arousal']:+.2f}", flush=True)
                    elif m["type"] in ("status", "error"):
                        print("#", m)
        except ConnectionClosed as e:
            if e.rcvd and e.rcvd.code == 1008:  # wrong token or origin: retrying will not help
                raise SystemExit(f"refused: {e.rcvd.reason}") from None
            print("# connection closed; reconnecting")
        except (OSError, InvalidStatus, TimeoutError):
            print("# emotrack is not running there; retrying in 2 s")
        except KeyboardInterrupt:
            return
        time.sleep(2)


if __name__ == "__main__":
    main()

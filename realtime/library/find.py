"""``emotrack find``: songs by a point or a drawn profile, from the command line (main thread)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from ..console import say
from ..exitcodes import ExitCode
from .library import Library, QueryError, parse_point, parse_profile
from .store import LibraryError, default_db

HELP = "songs by a point or a drawn profile in valence-arousal space"


def add_arguments(p: argparse.ArgumentParser) -> None:
    q = p.add_mutually_exclusive_group()
    q.add_argument("--point", metavar="V,A", help="nearest songs by whole-song emotion, e.g. --point 0.6,0.4")
    q.add_argument("--profile", metavar="FILE", help="CSV or JSON of (t, valence, arousal) points ('-': stdin)")
    p.add_argument("--match", choices=["whole", "segment"], default="whole",
                   help="--profile against the whole song (time-normalised) or its best-matching segment")
    p.add_argument("-k", type=int, default=10, help="how many songs (default 10)")
    p.add_argument("--db", help="the library file (default as for index)")
    p.add_argument("--format", choices=["table", "json", "jsonl", "csv"], default="table",
                   help="table (default), json (one array), jsonl (one song per line) or csv")


def run(args: argparse.Namespace) -> int:
    return find(args.point, args.profile, args.match, args.k, args.db, args.format)


def find(point: str | None, profile: str | None, match: str = "whole", k: int = 10, db: str | None = None,
         fmt: str = "table") -> int:
    if (point is None) == (profile is None):
        say("find", "give --point V,A or --profile FILE (one of them)")
        return ExitCode.USAGE
    if k < 1:
        say("find", f"-k {k}: give how many songs, 1 or more")
        return ExitCode.USAGE
    try:
        if point is not None:
            v, a = parse_point(point)
        else:
            try:
                text = sys.stdin.read() if profile == "-" else Path(profile).read_text()
            except OSError as e:
                raise QueryError(f"--profile {profile}: {e.strerror or e}") from None
            except UnicodeDecodeError:
                raise QueryError(f"--profile {profile}: not UTF-8 text; give a CSV or JSON file of "
                                 "(t, valence, arousal) points") from None
            pts = parse_profile(text, profile)
        lib = Library.open(db or default_db())
    except (QueryError, LibraryError) as e:
        say("find", str(e))
        return ExitCode.USAGE
    try:
        if point is not None:
            results = lib.point(v, a, k)
        elif match == "segment":
            results = lib.profile_segment(pts, k)
        else:
            results = lib.profile_whole(pts, k)
    except QueryError as e:
        say("find", str(e))
        return ExitCode.USAGE
    finally:
        lib.close()
    if fmt == "json":
        print(json.dumps(results, indent=1))
    elif fmt == "jsonl":
        for r in results:
            print(json.dumps(r))
    elif fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=["id", "path", "artist", "title", "album", "distance", "valence",
                                                   "arousal", "duration", "segment_start", "segment_end"],
                           extrasaction="ignore")
        w.writeheader()
        for r in results:
            seg = r.get("segment") or [None, None]
            w.writerow({**r, "segment_start": seg[0], "segment_end": seg[1]})
    else:
        print(format_table(results))
    return ExitCode.OK


def format_table(results: list[dict]) -> str:
    seg = any("segment" in r for r in results)
    head = (f"{'#':>3}  {'distance':>8}  {'valence':>7}  {'arousal':>7}  {'length':>7}  " + ("segment        " if seg else "")
            + "song")
    lines = [head]
    for i, r in enumerate(results, 1):
        m, s = divmod(int(round(r["duration"])), 60)
        line = f"{i:>3}  {r['distance']:>8.3f}  {r['valence']:>+7.2f}  {r['arousal']:>+7.2f}  {m:>4}:{s:02d}  "
        if seg:
            a, b = r["segment"]
            line += f"{int(a) // 60}:{int(a) % 60:02d}-{int(b) // 60}:{int(b) % 60:02d}".ljust(15)
        lines.append(line + song_name(r))
    return "\n".join(lines)


def song_name(r: dict) -> str:
    """'Artist — Title (Album)' from the tags, or the path when the file has none."""
    if r.get("title"):
        name = f"{r['artist']} — {r['title']}" if r.get("artist") else r["title"]
        return name + (f" ({r['album']})" if r.get("album") else "") + f"  [{r['path']}]"
    return r["path"]

"""Debian's free game music as an unlabelled dataset (``debian``), for VAE pretraining and
teacher distillation. Offline; fetched by the opt-in ``scripts/debian-music.sh``.

``scan(root)`` walks ``root/root/<package>/`` (what ``dpkg -x`` unpacked), takes every
music file of at least ``MIN_SECONDS`` (sound effects are shorter), also those inside
``.pk3`` zip archives (extracted once under ``root/extracted/``), drops exact duplicates
(the same first megabyte) and the stems of Frets on Fire songs (only ``song.ogg``, the
mix, is kept), and records each file's licence: the ``License:`` of the last stanza of the
package's machine-readable copyright file whose ``Files:`` pattern matches the file, or the
package-wide licence below (read by hand from each copyright file). The scan is cached in
``root/scan.json``. ``emotrack.models.data.load_debian`` makes clips of it, split by
track (file) like every other set.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import zipfile
from pathlib import Path

import soundfile as sf

MIN_SECONDS = 30.0
AUDIO = {".ogg", ".oga", ".opus", ".mp3", ".flac", ".wav"}
# package -> licence of its music, from usr/share/doc/<package>/copyright (read 2026-12-01)
PACKAGE_LICENCES = {
    "asc-music": "GPL-2+",
    "colobot-common-sounds": "GPL-3+",
    "drascula-music": "Drascula licence (free redistribution, no fee for the game itself)",
    "flare-game": "CC-BY-SA-3.0+",
    "freedroidrpg-data": "GPL-2+ (some tracks CC-BY-SA-3.0, per file)",
    "fretsonfire-songs-muldjord": "CC-BY-SA-3.0",
    "fretsonfire-songs-sectoid": "MIT-style (Expat) permission notice",
    "frozen-bubble-data": "GPL-2",
    "hedgewars-data": "GPL-2 (per file where stated)",
    "hyperrogue-music": "GPL-2+ / CC-BY-SA-3.0 (per file)",
    "megaglest-data": "CC-BY-SA-3.0",
    "nexuiz-music": "GPL-2+",
    "openclonk-data": "CC-BY-3.0 / CC-BY-SA-3.0 (per file, see its copyright)",
    "planetblupi-music-ogg": "GPL-3+",
    "pushover-data": "GPL-3+",
    "singularity-music": "CC-BY-SA-3.0",
    "supertux-data": "GPL-2+ (data/music)",
    "supertuxkart-data": "CC-BY-SA-3.0 / CC-BY-SA-4.0 / GPL (per file)",
    "ufoai-music": "GPL-2+ / CC-BY(-SA)-3.0 (per file)",
    "warzone2100-music": "GPL-2+",
    "wesnoth-1.16-music": "GPL-2+",
    "widelands-data": "GPL-2+ / CC-BY-SA (per file)",
}


def _copyright_stanzas(pkg_root: Path, package: str) -> list[tuple[list[str], str]]:
    """(Files patterns, License) of a DEP-5 copyright file, in order; [] for free-form ones."""
    path = pkg_root / "usr" / "share" / "doc" / package / "copyright"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    stanzas, files, lic = [], None, None
    for para in text.split("\n\n"):
        files, lic = None, None
        for line in para.splitlines():
            if line.startswith("Files:"):
                files = line[6:].split()
            elif line.startswith("License:"):
                lic = line[8:].strip()
        if files and lic:
            stanzas.append((files, lic))
    return stanzas


def holder_of(root: str | Path, item: dict) -> str:
    """The ``Copyright:`` of the last DEP-5 stanza whose ``Files:`` matches a scanned file
    (continuation lines joined), or "" for free-form copyright files."""
    pkg_root = Path(root) / "root" / item["package"]
    path = pkg_root / "usr" / "share" / "doc" / item["package"] / "copyright"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    rel = item["path"].split("/", 2)[2] if item["path"].startswith("root/") else item["path"]
    parts = rel.split("/")
    tails = ["/".join(parts[i:]) for i in range(len(parts))]
    found = ""
    for para in text.split("\n\n"):
        fields: dict[str, list[str]] = {}
        key = None
        for line in para.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key].append(line.strip())
            elif ":" in line:
                key, _, val = line.partition(":")
                fields[key] = [val.strip()] if val.strip() else []
        pats = " ".join(fields.get("Files", [])).split()
        if pats and fields.get("Copyright") and any(fnmatch.fnmatch(t, p) for p in pats for t in tails):
            found = "; ".join(x for x in fields["Copyright"] if x != ".")
    return found


def licence_of(rel: str, stanzas: list[tuple[list[str], str]], package: str) -> str:
    """The licence of an installed file, by DEP-5's rule (the last stanza whose pattern matches
    wins; ``*`` matches everything), a pattern matching any tail of the installed path
    (``data/music/x.ogg`` matches ``usr/share/games/stk/data/music/x.ogg``)."""
    parts = rel.split("/")
    tails = ["/".join(parts[i:]) for i in range(len(parts))]
    found = None
    for pats, lic in stanzas:
        if any(fnmatch.fnmatch(t, p) for p in pats for t in tails):
            found = lic
    return found or PACKAGE_LICENCES.get(package, "see the package's copyright file")


def _fingerprint(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha1(f.read(1 << 20)).hexdigest()


def _extract_pk3(pk3: Path, dest: Path) -> list[Path]:
    out = []
    with zipfile.ZipFile(pk3) as z:
        for info in z.infolist():
            name = info.filename
            if Path(name).suffix.lower() not in AUDIO or info.is_dir() or ".." in Path(name).parts:
                continue
            target = dest / name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_suffix(target.suffix + ".part")
                tmp.write_bytes(z.read(info))
                tmp.rename(target)
            out.append(target)
    return out


def scan(root: str | Path, refresh: bool = False) -> list[dict]:
    """Every music file of at least MIN_SECONDS under ``root``: [{path, package, version,
    licence, seconds, sample_rate}], cached in ``root/scan.json``."""

    root = Path(root)
    cache = root / "scan.json"
    if cache.exists() and not refresh:
        return json.loads(cache.read_text())
    versions = {}
    if (root / "packages.tsv").exists():
        for line in (root / "packages.tsv").read_text().splitlines()[1:]:
            p, v, *_ = line.split("\t")
            versions[p] = v
    items, seen = [], set()
    for pkg_root in sorted(p for p in (root / "root").iterdir() if p.is_dir()):
        package = pkg_root.name
        stanzas = _copyright_stanzas(pkg_root, package)
        files = sorted(p for p in pkg_root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO)
        for pk3 in sorted(pkg_root.rglob("*.pk3")):
            files += _extract_pk3(pk3, root / "extracted" / package / pk3.stem)
        for f in files:
            if package.startswith("fretsonfire") and f.name != "song.ogg":
                continue  # the stems (guitar, rhythm, drums) of a song whose mix is song.ogg
            try:
                info = sf.info(str(f))
            except Exception:
                continue
            seconds = info.frames / info.samplerate
            if seconds < MIN_SECONDS:
                continue
            fp = _fingerprint(f)
            if fp in seen:
                continue
            seen.add(fp)
            rel = str(f.relative_to(pkg_root)) if f.is_relative_to(pkg_root) else str(f.relative_to(root / "extracted" / package))
            items.append({"path": str(f.relative_to(root)), "package": package, "version": versions.get(package, ""),
                          "licence": licence_of(rel, stanzas, package), "seconds": round(seconds, 2),
                          "sample_rate": info.samplerate})
    cache.write_text(json.dumps(items, indent=0))
    return items


def summary(items: list[dict]) -> list[dict]:
    """Per package: version, licences, files and hours."""
    by: dict[str, dict] = {}
    for it in items:
        d = by.setdefault(it["package"], {"package": it["package"], "version": it["version"], "files": 0,
                                          "hours": 0.0, "licences": set()})
        d["files"] += 1
        d["hours"] += it["seconds"] / 3600
        d["licences"].add(it["licence"])
    return [{**d, "hours": round(d["hours"], 2), "licences": sorted(d["licences"])}
            for d in sorted(by.values(), key=lambda d: -d["hours"])]

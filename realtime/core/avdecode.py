"""Decoding what libsndfile cannot (m4a/AAC, ALAC, WMA, the sound of video files) with FFmpeg,
through PyAV. No thread of its own: ``core.audio.read_blocks`` falls back to it. PyAV (104 MB
with its FFmpeg) is the ``ffmpeg`` extra, so that a headless installation stays small; without
it such files are refused with the install command.

The first audio stream of the container is decoded and converted to packed float32 at its
own rate and channel count, in blocks of about ``blocksize`` frames; the rest of the
pipeline (downmix, the causal resampler, the framer) is the same as for any file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

try:
    import av
except ImportError:  # the ffmpeg extra is not installed
    av = None

INSTALL_HINT = "FFmpeg decoding is not installed: pip install 'emotrack[ffmpeg]'"

# what FFmpeg reads that libsndfile does not: the index looks for these too
SUFFIXES = {".m4a", ".m4b", ".mp4", ".aac", ".alac", ".wma", ".asf", ".webm", ".mkv", ".mka", ".mov", ".avi",
            ".m4v", ".3gp", ".ac3"}


class AvDecodeError(Exception):
    """FFmpeg could not open or decode the file (the message says why)."""


class FFmpegMissing(AvDecodeError):
    """The ffmpeg extra (PyAV) is not installed: the message is the install command."""


def open_av(source, name, blocksize: int = 65536) -> tuple[int, int, Iterator[np.ndarray]]:
    """(sample rate, channels, iterator of float32 (frames, channels) blocks) of the first
    audio stream of ``source`` (a path or a seekable file object)."""
    if av is None:
        raise FFmpegMissing(INSTALL_HINT)
    try:
        container = av.open(source, mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise AvDecodeError(re.sub(r"^\[Errno -?\d+\] ", "", str(e).split(": '", 1)[0])) from e
    if not container.streams.audio:
        container.close()
        raise AvDecodeError("it holds no audio stream")
    stream = container.streams.audio[0]
    ctx = stream.codec_context
    rate, channels = int(ctx.sample_rate or 0), int(ctx.layout.nb_channels or 0)
    if rate <= 0 or channels <= 0:
        container.close()
        raise AvDecodeError("its audio stream has no sample rate or channel layout")
    resampler = av.AudioResampler(format="flt", layout=ctx.layout, rate=rate)

    def gen() -> Iterator[np.ndarray]:
        parts, held = [], 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    a = out.to_ndarray().reshape(-1, channels)
                    parts.append(a)
                    held += len(a)
                    if held >= blocksize:
                        yield np.concatenate(parts).astype(np.float32, copy=False)
                        parts, held = [], 0
        except av.error.FFmpegError as e:
            raise AvDecodeError(f"decoding failed ({e})") from e
        finally:
            container.close()
        if parts:
            yield np.concatenate(parts).astype(np.float32, copy=False)

    return rate, channels, gen()

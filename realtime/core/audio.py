"""Audio plumbing shared by files and live input: decoding, downmix, a streaming
resampler and the 0.5 s framer. No thread of its own: the live worker, the file player
(decoding only) and ``analyze`` on the main thread call it.

Everything here is causal and stateful, so feeding a signal in blocks of any size gives
exactly the output of feeding it whole.
"""

from __future__ import annotations

import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from .avdecode import AvDecodeError, FFmpegMissing, open_av
from .config import FEATURES, FeatureConfig


class AudioDecodeError(Exception):
    """A file could not be opened or decoded."""


def to_mono(block: np.ndarray) -> np.ndarray:
    """(frames,) or (frames, channels) -> float32 (frames,), the mean of the channels."""
    block = np.asarray(block, dtype=np.float32)
    if block.ndim == 2:
        if block.shape[1] == 2:  # stereo: the same numbers as the mean ((a + b) / 2), ~15x faster than
            return (block[:, 0] + block[:, 1]) * np.float32(0.5)  # numpy's strided reduction over axis 1
        return block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
    return block


def finite_mono(block: np.ndarray) -> tuple[np.ndarray, int]:
    """``to_mono``, with NaN and infinite samples made silence; and how many there were."""
    mono = to_mono(block)
    finite = np.isfinite(mono)
    if finite.all():
        return mono, 0
    return np.where(finite, mono, np.float32(0.0)), int((~finite).sum())


class StreamingResampler:
    """Causal polyphase resampler from ``sr_in`` to ``sr_out`` (rational ratio L/M).

    Output sample n uses input samples up to index floor(n*M/L) only; its delay is half
    the filter length (about 0.7 ms). When the rates are equal the signal passes through
    untouched.
    """

    _CHUNK = 1024  # outputs computed together by the many-phase path

    def __init__(self, sr_in: int, sr_out: int, taps_per_phase: int = 32, beta: float = 8.6):
        if sr_in <= 0 or sr_out <= 0:
            raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
        self.sr_in, self.sr_out = int(sr_in), int(sr_out)
        g = gcd(self.sr_in, self.sr_out)
        self.L, self.M = self.sr_out // g, self.sr_in // g
        self.passthrough = self.L == self.M
        self.K = taps_per_phase
        if not self.passthrough:
            n = self.K * self.L
            fc = 0.5 / max(self.L, self.M) * 0.92  # cycles per upsampled sample
            j = np.arange(n) - (n - 1) / 2
            h = 2 * fc * np.sinc(2 * fc * j) * np.kaiser(n, beta)
            h *= self.L / h.sum()  # unity DC gain after upsampling by L
            # poly[p, q] = h[p + q*L] weights the q-th most recent input for phase p;
            # _polyrev[p] is in input order (oldest first) for a dot with a window
            poly = h.reshape(self.K, self.L).T
            self._polyrev = np.ascontiguousarray(poly[:, ::-1], dtype=np.float32)
            # output n has phase (n*M) % L, periodic in n with period L: row r of this table is
            # the taps of output n = r (mod L), so a run of _CHUNK outputs starting at n reads
            # the contiguous rows n % L onwards instead of gathering its taps
            self._taps = self._polyrev[(np.arange(self.L + self._CHUNK, dtype=np.int64) * self.M) % self.L]
        self.reset()

    def reset(self) -> None:
        self._hist = np.zeros(0 if self.passthrough else self.K - 1, dtype=np.float32)
        self._n_in = 0  # input samples consumed so far
        self._n_out = 0  # output samples produced so far

    def process(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.passthrough:
            return x
        buf = np.concatenate([self._hist, x])
        # buf[k] is input sample (self._n_in - (K-1) + k)
        base = self._n_in - (self.K - 1)
        n_in_total = self._n_in + len(x)
        # output n needs input index (n*M)//L <= n_in_total - 1, i.e. n*M < n_in_total*L
        last_n = (n_in_total * self.L - 1) // self.M
        count = max(0, last_n + 1 - self._n_out)
        out = np.empty(count, dtype=np.float32)
        if count:
            win = np.lib.stride_tricks.sliding_window_view(buf, self.K)
            # each output is its K inputs (oldest first) dotted with its phase's taps, summed in an
            # order that does not depend on how the input was split into blocks
            if self.L == 1:  # one phase (44.1 -> 22.05 kHz): the rows are every M-th window, a
                # strided view, summed tap by tap over all rows at once (no (n, K) temporary)
                j0 = self._n_out * self.M - base - (self.K - 1)  # buf index of output n's first input
                rows, h = win[j0: j0 + self.M * (count - 1) + 1: self.M], self._polyrev[0]
                np.multiply(rows[:, 0], h[0], out=out)
                tmp = np.empty_like(out)
                for k in range(1, self.K):
                    out += np.multiply(rows[:, k], h[k], out=tmp)
            else:
                # one (n, K) row of products per output, summed along the row; in runs of _CHUNK
                # outputs, so the temporaries stay in cache (whole blocks of them cost 2-3x the time)
                for c0 in range(0, count, self._CHUNK):
                    n0, c = self._n_out + c0, min(self._CHUNK, count - c0)
                    m = np.arange(n0, n0 + c, dtype=np.int64) * self.M
                    # first buf index of the K inputs ending at input (m // L); always >= 0
                    j = m // self.L - base - (self.K - 1)
                    r = n0 % self.L
                    out[c0 : c0 + c] = (win[j] * self._taps[r : r + c]).sum(axis=1)
        self._n_out = last_n + 1
        self._n_in = n_in_total
        self._hist = buf[len(buf) - (self.K - 1):]
        return out


class Framer:
    """Cuts a mono stream into frames of ``frame_samples`` every ``hop_samples``.

    ``push`` returns the complete frames together with their stream time ``t``: the time,
    in seconds at the model rate, of the end of the frame. Bounded: it keeps at most one
    frame of history.
    """

    def __init__(self, frame_samples: int, hop_samples: int, sample_rate: int):
        if hop_samples <= 0 or hop_samples > frame_samples:
            raise ValueError(f"hop must be in 1..{frame_samples} samples, got {hop_samples}")
        self.frame_samples, self.hop_samples, self.sample_rate = frame_samples, hop_samples, sample_rate
        self.reset()

    def reset(self) -> None:
        self.seek(0)

    def seek(self, pos: int) -> None:
        """Forget buffered audio; the next sample pushed is stream sample ``pos``.

        Frame ends stay on the grid ``frame_samples + k * hop_samples``, so stream times
        after a gap (dropped audio, a lost device) line up with those before it.
        """
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = int(pos)  # stream index of self._buf[0]
        k = -(-self._buf_start // self.hop_samples)  # first grid frame starting at >= pos
        self._next_end = self.frame_samples + k * self.hop_samples  # exclusive end of the next frame

    def push(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._buf = np.concatenate([self._buf, np.asarray(x, dtype=np.float32)])
        avail_end = self._buf_start + len(self._buf)
        ends = []
        while self._next_end <= avail_end:
            ends.append(self._next_end)
            self._next_end += self.hop_samples
        if ends:  # copies of slices (a gather through an index array cost ~20 us a frame)
            fs, b0 = self.frame_samples, self._buf_start
            frames = np.stack([self._buf[e - fs - b0 : e - b0] for e in ends])
        else:
            frames = np.zeros((0, self.frame_samples), dtype=np.float32)
        drop = self._next_end - self.frame_samples - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        t = np.asarray(ends, dtype=np.float64) / self.sample_rate
        return frames, t


def read_blocks(path: str | Path, blocksize: int = 65536) -> tuple[int, int, Iterator[np.ndarray]]:
    """Open an audio file; return (sample_rate, channels, iterator of float32 blocks).

    Raises :class:`AudioDecodeError` naming the file and the reason if it cannot be read:
    missing, not a regular file (a FIFO or a device would block or be read twice), or not
    decodable. The iterator raises it too when decoding stops before the end the file
    declares (a truncated or damaged file), after yielding what could be read. ``-`` is
    standard input, read once into a temporary file (decoders need to seek).
    """
    if str(path) == "-":
        return _open(tempfile_of_stdin(), "-", blocksize)
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioDecodeError(f"{path}: no such file") from None
    except OSError as e:
        raise AudioDecodeError(f"{path}: cannot read it ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioDecodeError(f"{path}: is a directory, expected an audio file")
    if not stat.S_ISREG(st.st_mode):
        raise AudioDecodeError(f"{path}: is not a regular file (a FIFO, a device or a socket); emotrack reads "
                               "audio files: save the stream to a file first")
    return _open(str(path), path, blocksize)


def tempfile_of_stdin():
    """Standard input, copied once into a temporary file (unlinked; gone when closed)."""
    tmp = tempfile.TemporaryFile()
    shutil.copyfileobj(sys.stdin.buffer, tmp, 1 << 20)
    tmp.seek(0)
    return tmp


def _open(source, path, blocksize: int) -> tuple[int, int, Iterator[np.ndarray]]:
    try:
        f = sf.SoundFile(source)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError; FFmpeg may know it
        if not isinstance(source, str):
            source.seek(0)
        try:
            sr, ch, blocks = open_av(source, path, blocksize)
        except FFmpegMissing as missing:
            raise AudioDecodeError(f"{path}: libsndfile cannot decode it ({e}); m4a/AAC, ALAC, WMA and video "
                                   f"files need FFmpeg. {missing}") from e
        except AvDecodeError as av_e:
            raise AudioDecodeError(f"{path}: cannot decode it as audio: neither libsndfile nor FFmpeg knows it "
                                   f"({av_e}); emotrack reads wav, flac, ogg, opus, mp3, m4a/AAC, ALAC, WMA and "
                                   "the sound of video files") from e
        return sr, ch, _reporting(blocks, path)
    declared = _declared_frames(f)

    def gen() -> Iterator[np.ndarray]:
        read = 0
        with f:
            while True:
                try:
                    block = f.read(blocksize, dtype="float32", always_2d=True)
                except Exception as e:
                    raise AudioDecodeError(f"{path}: decoding failed after {read / f.samplerate:.1f} s ({e}); "
                                           "what came before was analysed") from e
                if len(block) == 0:
                    break
                read += len(block)
                yield block
        # a declared length that was not reached: the file is cut short (a second of slack: mp3
        # headers estimate the length)
        if declared is not None and read < declared - f.samplerate:
            raise AudioDecodeError(f"{path}: decoding stopped at {read / f.samplerate:.1f} s of the "
                                   f"{declared / f.samplerate:.1f} s it declares (cut short or damaged); "
                                   "what came before was analysed")

    return f.samplerate, f.channels, gen()


def _reporting(blocks: Iterator[np.ndarray], path) -> Iterator[np.ndarray]:
    """FFmpeg's blocks, with its decoding errors said the way every other one is."""
    try:
        yield from blocks
    except AvDecodeError as e:
        raise AudioDecodeError(f"{path}: {e}; what came before was analysed") from e


def _declared_frames(f) -> int | None:
    """The length a file says it has: libsndfile's count, or, for a WAV/AIFF whose data chunk
    claims more than the file holds (a truncated file, which libsndfile shortens without a
    word), what the chunk claims."""
    declared = f.frames if f.frames and f.frames > 0 else None
    try:
        info = f.extra_info
    except Exception:
        return declared
    m = re.search(r"^data\s*:\s*(\d+)\s*\(should be \d+\)", info, re.M)
    align = re.search(r"Block Align\s*:\s*(\d+)", info)
    if m and align and int(align.group(1)) > 0:
        return max(declared or 0, int(m.group(1)) // int(align.group(1)))
    return declared


def load_audio(path: str | Path, cfg: FeatureConfig = FEATURES) -> np.ndarray:
    """Whole file -> mono float32 at the model rate, through the same streaming resampler."""
    sr, _, blocks = read_blocks(path)
    rs = StreamingResampler(sr, cfg.sample_rate)
    parts = [rs.process(to_mono(b)) for b in blocks]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

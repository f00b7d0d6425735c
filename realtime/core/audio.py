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

    Output n is the dot of its K = ``taps_per_phase`` inputs with the taps of its phase
    (n*M) % L; the phases repeat every L outputs while the inputs move on by M. So outputs
    are laid out in rows of P = r*L (whole periods, at least one group), each row reading
    r*M inputs further on, and each group of a row's outputs is one matrix product of the
    rows' inputs (a strided view) with the group's taps laid out in a band. The products
    are float64 and rounded to float32: every output is its dot to float32 precision, the
    same on every CPU and however the input is split into blocks (BLAS kernels differ by
    CPU only in float64's last bits). 48 kHz -> 22.05 kHz: ~0.09 ms per 0.5 s of audio,
    against ~0.5 ms for one row of K products per output (float32) before.

    An odd rate has a long period (44,101 Hz: L = 22,050), and a row of it would be more
    outputs than a live block wants and hundreds of small products: there each output's K
    inputs are gathered and dotted with its taps in runs of _CHUNK (float64 too).
    """

    _GROUP = 32  # outputs per matrix product (64 where M < 2L, whose bands are narrower)
    _OUTPUTS = 65536  # outputs per run of rows (at least two rows), so the copies stay small
    _MAX_PERIOD = 1024  # longer periods take the gathering path (every common rate is shorter)
    _CHUNK = 1024  # outputs per run of the gathering path

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
            self._banded = -(-self._GROUP // self.L) * self.L <= self._MAX_PERIOD
            if self._banded:
                self._bands()
            else:
                # row r: the taps of output n = r (mod L), so a run of outputs from n reads rows n % L onwards
                self._taps = self._polyrev[(np.arange(self.L + self._CHUNK, dtype=np.int64) * self.M) % self.L]
                self._taps = self._taps.astype(np.float64)
        self.reset()

    def _bands(self) -> None:
        """Row layout and band matrices. Output p of a row (0 <= p < P) starts at input
        offset (p*M)//L of the row; a group of outputs a..b-1 reads the inputs from output a's
        start to output b-1's end (w of them), and its band holds each output's taps at its
        offset in that span."""
        L, M, K = self.L, self.M, self.K
        group = 64 if M < 2 * L else self._GROUP
        periods = -(-group // L)  # per row
        self._P = P = periods * L
        self._row_step = periods * M  # inputs from one row to the next
        # rows per run: 256 at 48 -> 22.05 kHz (P = 147); two for an odd rate such as 44,101 Hz (P = 22,050)
        self._rows = max(2, self._OUTPUTS // P)
        start = (np.arange(P, dtype=np.int64) * M) // L
        self._row_span = int(start[-1]) + K  # the inputs one row reads
        self._groups = []
        for a in range(0, P, group):
            b = min(P, a + group)
            w = int(start[b - 1] - start[a]) + K
            # always ``group`` columns (a narrower last group gets zero columns): BLAS sums a
            # narrow product in an order that depends on the number of rows (seen with 19
            # columns), and an output must not depend on how the input was split into blocks
            band = np.zeros((w, group))
            for i, p in enumerate(range(a, b)):
                o = int(start[p] - start[a])
                band[o : o + K, i] = self._polyrev[(p * M) % L]
            self._groups.append((a, b, int(start[a]), w, band))

    def reset(self) -> None:
        self._hist = np.zeros(0 if self.passthrough else self.K - 1, dtype=np.float32)
        self._n_in = 0  # input samples consumed so far
        self._n_out = 0  # output samples produced so far

    def process(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.passthrough:
            return x
        K = self.K
        buf = np.concatenate([self._hist, x])
        base = self._n_in - (K - 1)  # buf[k] is input sample base + k
        n_in_total = self._n_in + len(x)
        # output n needs input index (n*M)//L <= n_in_total - 1, i.e. n*M < n_in_total*L
        n0, n1 = self._n_out, (n_in_total * self.L - 1) // self.M + 1
        out = np.empty(max(0, n1 - n0), dtype=np.float32)
        if self._banded:
            self._rows_into(out, buf, base, n0, n1)
        else:
            self._gather_into(out, buf, base, n0)
        self._n_out = max(n0, n1)
        self._n_in = n_in_total
        self._hist = buf[len(buf) - (K - 1):]
        return out

    def _gather_into(self, out: np.ndarray, buf: np.ndarray, base: int, n0: int) -> None:
        """Outputs n0 ... n0 + len(out) - 1, each its K inputs (a row of the sliding windows)
        times its phase's taps, summed along the row."""
        K, L, M = self.K, self.L, self.M
        win = np.lib.stride_tricks.sliding_window_view(buf, K)
        for c0 in range(0, len(out), self._CHUNK):
            n, c = n0 + c0, min(self._CHUNK, len(out) - c0)
            j = (np.arange(n, n + c, dtype=np.int64) * M) // L - base - (K - 1)  # first input of each
            r = n % L
            out[c0 : c0 + c] = (win[j] * self._taps[r : r + c]).sum(axis=1)

    def _rows_into(self, out: np.ndarray, buf: np.ndarray, base: int, n0: int, n1: int) -> None:
        """Outputs n0 ... n1 - 1 as rows of whole periods against the band matrices."""
        K, P, step = self.K, self._P, self._row_step
        last_row = (n1 - 1) // P
        for q0 in range(n0 // P, last_row + 1 if n1 > n0 else 0, self._rows):
            q1 = min(q0 + self._rows, last_row + 1)
            # at least two rows: numpy multiplies a single row with another kernel (gemv)
            nr = max(2, q1 - q0)
            # the inputs these rows read, from stream index lo: those before buf (read only by
            # outputs before n0) and after it (only by outputs from n1 on) are zeros
            lo = q0 * step - (K - 1)
            seg = np.zeros((nr - 1) * step + self._row_span)
            a, b = max(lo, base), min(lo + len(seg), base + len(buf))
            if b > a:
                seg[a - lo : b - lo] = buf[a - base : b - base]
            rows = np.empty((nr, P), np.float32)
            for g0, g1, off, w, band in self._groups:
                win = np.lib.stride_tricks.as_strided(seg[off:], shape=(nr, w), strides=(step * 8, 8))
                rows[:, g0:g1] = (np.ascontiguousarray(win) @ band)[:, : g1 - g0]
            f0, f1 = max(n0, q0 * P), min(n1, q1 * P)  # the outputs these rows hold that are wanted
            out[f0 - n0 : f1 - n0] = rows.reshape(-1)[f0 - q0 * P : f1 - q0 * P]


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

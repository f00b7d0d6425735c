"""The pretrained teachers: musicnn's MSD_musicnn and MTT_musicnn taggers (Pons & Serra,
ISMIR-LBD 2019; weights from the ``musicnn`` 0.1.0 wheel, ISC licence) ported to torch,
with musicnn's own front end. Training only: TensorFlow is never imported, the TF1
checkpoints are read by :mod:`emotrack.models.tfckpt`. Offline, no threads of its own.

Front end (``musicnn.extractor.batch_data``, reproduced): mono 16 kHz;
``librosa.feature.melspectrogram(n_fft=512, hop_length=256, n_mels=96)`` (power, centre
padding, librosa's other defaults); the spectrogram is cast to float16 and back to float32,
*then* ``log10(10000 x + 1)`` in float32 (musicnn's own code does the multiply in float16,
which with numpy >= 2 overflows to inf on loud bins and gives wrong tags); patches of
``PATCH_FRAMES`` = 187 frames (2.99 s).

Network (``musicnn.models.build_musicnn``): batch-norm of the input; timbral convolutions
(204 filters of 7 x 38 and 7 x 67 time x mel bins) and temporal ones (51 filters each of
128, 64, 32 frames x 1 bin, TF "same" padding), each ReLU -> batch-norm -> max over
frequency; three 1-D convolutions of 64 filters (width 7) with residual connections;
max- and mean-pooling over time, batch-norm, a 200-unit ReLU layer with batch-norm (the
"penultimate" embedding) and 50 tag logits.

The same wheel carries two more taggers on the same front end and tags, MSD_vgg and MTT_vgg
(``musicnn.models.vgg`` with 128 filters: batch-norm of the input; five 3 x 3 convolutions,
each ReLU -> batch-norm -> max pool of 4 x 1 (stride 2), 2 x 2, 2 x 2, 2 x 2, 4 x 4 (time x
mel); the last 2 x 1 x 128 map flattened in TF's order; 50 tag logits): :class:`Vgg`,
:func:`load_vgg`, checked against TensorFlow like the others. They are not teachers of the
shipped recipe; ``scripts/probe_vgg_teachers.py`` measures what they would add.
"""

from __future__ import annotations

import tempfile
import warnings
from importlib import resources
from pathlib import Path

import librosa
import numpy as np
import torch
from emotrack.realtime.core.teacher import (  # the runtime's definitions: one front end for both sides
    HOP,
    N_FFT,
    N_MELS,
    PATCH_FRAMES,
    SAMPLE_RATE,
    log_compress,
    window_starts,
)
from torch import nn
from torch.nn import functional as F

from .tfckpt import read_checkpoint

BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default
TEACHERS = ("MSD_musicnn", "MTT_musicnn")
VGG_TAGGERS = ("MSD_vgg", "MTT_vgg")
MTT_LABELS = ['guitar', 'classical', 'slow', 'techno', 'strings', 'drums', 'electronic', 'rock', 'fast', 'piano',
              'ambient', 'beat', 'violin', 'vocal', 'synth', 'female', 'indian', 'opera', 'male', 'singing', 'vocals',
              'no vocals', 'harpsichord', 'loud', 'quiet', 'flute', 'woman', 'male vocal', 'no vocal', 'pop', 'soft',
              'sitar', 'solo', 'man', 'classic', 'choir', 'voice', 'new age', 'dance', 'male voice', 'female vocal',
              'beats', 'harp', 'cello', 'no voice', 'weird', 'country', 'metal', 'female voice', 'choral']
MSD_LABELS = ['rock', 'pop', 'alternative', 'indie', 'electronic', 'female vocalists', 'dance', '00s',
              'alternative rock', 'jazz', 'beautiful', 'metal', 'chillout', 'male vocalists', 'classic rock', 'soul',
              'indie rock', 'Mellow', 'electronica', '80s', 'folk', '90s', 'chill', 'instrumental', 'punk', 'oldies',
              'blues', 'hard rock', 'ambient', 'acoustic', 'experimental', 'female vocalist', 'guitar', 'Hip-Hop',
              '70s', 'party', 'country', 'easy listening', 'sexy', 'catchy', 'funk', 'electro', 'heavy metal',
              'Progressive rock', '60s', 'rnb', 'indie pop', 'sad', 'House', 'happy']
LABELS = {"MSD_musicnn": MSD_LABELS, "MTT_musicnn": MTT_LABELS}


class TeacherMissingError(RuntimeError):
    """musicnn (its wheel carries the weights) is not installed."""


def checkpoint_dir(name: str) -> Path:
    """The folder of a musicnn checkpoint inside the installed wheel."""
    if name not in TEACHERS + VGG_TAGGERS:
        raise ValueError(f"unknown teacher {name!r}; known: {', '.join(TEACHERS + VGG_TAGGERS)}")
    try:
        root = resources.files("musicnn")
    except ModuleNotFoundError as e:  # the package only; its code (TensorFlow) is never imported
        raise TeacherMissingError(
            "the teachers' weights come from the musicnn wheel: pip install --no-deps musicnn==0.1.0 "
            "(scripts/setup.sh does; --no-deps keeps its old TensorFlow pin out)") from e
    return Path(str(root.joinpath(name)))


# ---------------------------------------------------------------------- front end
def melspectrogram(y16k: np.ndarray) -> np.ndarray:
    """Mono 16 kHz audio -> (frames, 96) float32 compressed mel spectrogram, musicnn's way.

    Frame k covers samples [256 k - 256, 256 k + 256) (centre padding with zeros at the
    ends of the signal)."""

    y = np.asarray(y16k, dtype=np.float32)
    if len(y) == 0:
        return np.zeros((0, N_MELS), np.float32)
    m = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS).T
    return log_compress(m)


# ---------------------------------------------------------------------- the network
def _tf_same(k: int) -> tuple[int, int]:
    """TensorFlow's "same" padding (before, after) for an odd or even kernel, stride 1."""
    return (k - 1) // 2, k - 1 - (k - 1) // 2


class Musicnn(nn.Module):
    """(B, frames, 96) compressed mel patches -> logits (B, 50), penultimate (B, 200),
    mean_pool (B, 753), max_pool (B, 753). Inference only (batch-norms use moving stats)."""

    def __init__(self, n_classes: int = 50, mid: int = 64, back: int = 200):
        super().__init__()
        self.bn_in = nn.BatchNorm2d(1, eps=BN_EPS)
        self.timbral = nn.ModuleList([nn.Conv2d(1, 204, (7, int(0.4 * N_MELS))),
                                      nn.Conv2d(1, 204, (7, int(0.7 * N_MELS)))])
        self.timbral_bn = nn.ModuleList([nn.BatchNorm2d(204, eps=BN_EPS) for _ in range(2)])
        self.temporal_k = (128, 64, 32)
        self.temporal = nn.ModuleList([nn.Conv2d(1, 51, (k, 1)) for k in self.temporal_k])
        self.temporal_bn = nn.ModuleList([nn.BatchNorm2d(51, eps=BN_EPS) for _ in range(3)])
        front = 2 * 204 + 3 * 51
        self.mid = nn.ModuleList([nn.Conv1d(front, mid, 7, padding=3), nn.Conv1d(mid, mid, 7, padding=3),
                                  nn.Conv1d(mid, mid, 7, padding=3)])
        self.mid_bn = nn.ModuleList([nn.BatchNorm1d(mid, eps=BN_EPS) for _ in range(3)])
        pooled = front + 3 * mid
        self.bn_pool = nn.BatchNorm1d(2 * pooled, eps=BN_EPS)
        self.dense = nn.Linear(2 * pooled, back)
        self.bn_dense = nn.BatchNorm1d(back, eps=BN_EPS)
        self.out = nn.Linear(back, n_classes)

    def forward(self, x: torch.Tensor):
        x = self.bn_in(x.unsqueeze(1))  # (B, 1, T, F): time is the height
        feats = []
        xp = F.pad(x, (0, 0, 3, 3))
        for conv, bn in zip(self.timbral, self.timbral_bn, strict=True):
            feats.append(bn(F.relu(conv(xp))).amax(dim=3))
        for k, conv, bn in zip(self.temporal_k, self.temporal, self.temporal_bn, strict=True):
            feats.append(bn(F.relu(conv(F.pad(x, (0, 0, *_tf_same(k)))))).amax(dim=3))
        front = torch.cat(feats, 1)  # (B, 561, T)
        h1 = self.mid_bn[0](F.relu(self.mid[0](front)))
        h2 = self.mid_bn[1](F.relu(self.mid[1](h1))) + h1
        h3 = self.mid_bn[2](F.relu(self.mid[2](h2))) + h2
        m = torch.cat([front, h1, h2, h3], 1)  # (B, 753, T)
        max_pool, mean_pool = m.amax(dim=2), m.mean(dim=2)
        flat = torch.stack([max_pool, mean_pool], -1).flatten(1)  # TF's [753, 2] flattened: interleaved
        pen = self.bn_dense(F.relu(self.dense(self.bn_pool(flat))))
        return self.out(pen), pen, mean_pool, max_pool


def _load_bn(bn: nn.Module, w: dict, name: str) -> None:
    bn.weight.data = torch.from_numpy(w[f"{name}/gamma"].copy())
    bn.bias.data = torch.from_numpy(w[f"{name}/beta"].copy())
    bn.running_mean.data = torch.from_numpy(w[f"{name}/moving_mean"].copy())
    bn.running_var.data = torch.from_numpy(w[f"{name}/moving_variance"].copy())


def _conv2d_weight(k: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))  # (kh, kw, in, out) -> (out, in, kh, kw)


def _conv1d_weight(k: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(k[:, :, 0, :].transpose(2, 1, 0)))  # (kt, in, 1, out) -> (out, in, kt)


def load_teacher(name: str, checkpoint: str | Path | None = None) -> Musicnn:
    """MSD_musicnn or MTT_musicnn with its weights, in eval mode. Every tensor of the
    checkpoint (but Adam's slots) is used exactly once: a missing or extra one fails."""
    w = read_checkpoint(checkpoint or checkpoint_dir(name))
    w = {k: v for k, v in w.items() if "Adam" not in k and not k.endswith("_power")}
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        used.add(key)
        return w[key]

    net = Musicnn()
    bns = iter(f"batch_normalization{'' if i == 0 else f'_{i}'}" for i in range(11))
    convs = iter(f"conv2d{'' if i == 0 else f'_{i}'}" for i in range(8))

    def bn(module: nn.Module) -> None:
        name = next(bns)
        for s in ("gamma", "beta", "moving_mean", "moving_variance"):
            take(f"{name}/{s}")
        _load_bn(module, w, name)

    bn(net.bn_in)
    for conv, b in [*zip(net.timbral, net.timbral_bn, strict=True), *zip(net.temporal, net.temporal_bn, strict=True)]:
        c = next(convs)
        conv.weight.data = _conv2d_weight(take(f"{c}/kernel"))
        conv.bias.data = torch.from_numpy(take(f"{c}/bias").copy())
        bn(b)
    for conv, b in zip(net.mid, net.mid_bn, strict=True):
        c = next(convs)
        conv.weight.data = _conv1d_weight(take(f"{c}/kernel"))
        conv.bias.data = torch.from_numpy(take(f"{c}/bias").copy())
        bn(b)
    bn(net.bn_pool)
    net.dense.weight.data = torch.from_numpy(take("dense/kernel").T.copy())
    net.dense.bias.data = torch.from_numpy(take("dense/bias").copy())
    bn(net.bn_dense)
    net.out.weight.data = torch.from_numpy(take("dense_1/kernel").T.copy())
    net.out.bias.data = torch.from_numpy(take("dense_1/bias").copy())
    unused = sorted(set(w) - used)
    if unused:
        raise ValueError(f"{name}: checkpoint tensors not used by the port: {unused}")
    return net.eval()


class Vgg(nn.Module):
    """musicnn's ``vgg(x, is_training, 50, 128)`` for inference: (B, 187, 96) compressed mel
    patches -> logits (B, 50), the flattened last pool (B, 256), and the five pools."""

    POOLS = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))

    def __init__(self, filters: int = 128, n_classes: int = 50):
        super().__init__()
        self.bn_in = nn.BatchNorm2d(1, eps=BN_EPS)
        self.convs = nn.ModuleList([nn.Conv2d(1 if i == 0 else filters, filters, 3, padding=1) for i in range(5)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(filters, eps=BN_EPS) for _ in range(5)])
        self.out = nn.Linear(2 * filters, n_classes)

    def forward(self, x: torch.Tensor):
        h = self.bn_in(x.unsqueeze(1))  # (B, 1, T, F): time is the height, as in TF's NHWC
        pools = []
        for conv, bn, (k, s) in zip(self.convs, self.bns, self.POOLS, strict=True):
            h = F.max_pool2d(bn(F.relu(conv(h))), k, s)  # TF's max_pooling2d pads "valid"
            pools.append(h)
        flat = h.permute(0, 2, 3, 1).flatten(1)  # TF flattens (height, width, channels)
        return self.out(flat), flat, pools


def load_vgg(name: str, checkpoint: str | Path | None = None) -> Vgg:
    """MSD_vgg or MTT_vgg with its weights, in eval mode; every tensor of the checkpoint
    (but Adam's slots) is used exactly once."""
    if name not in VGG_TAGGERS:
        raise ValueError(f"unknown VGG tagger {name!r}; known: {', '.join(VGG_TAGGERS)}")
    w = read_checkpoint(checkpoint or checkpoint_dir(name))
    w = {k: v for k, v in w.items() if "Adam" not in k and not k.endswith("_power")}
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        used.add(key)
        return torch.from_numpy(np.ascontiguousarray(w[key]))

    def bn(module: nn.Module, key: str) -> None:
        module.weight.data, module.bias.data = take(f"{key}/gamma"), take(f"{key}/beta")
        module.running_mean.data, module.running_var.data = take(f"{key}/moving_mean"), take(f"{key}/moving_variance")

    net = Vgg()
    bn(net.bn_in, "batch_normalization")
    for i, (conv, b) in enumerate(zip(net.convs, net.bns, strict=True)):
        conv.weight.data = _conv2d_weight(w[f"{i + 1}CNN/kernel"])
        used.add(f"{i + 1}CNN/kernel")
        conv.bias.data = take(f"{i + 1}CNN/bias")
        bn(b, f"batch_normalization_{i + 1}")
    net.out.weight.data, net.out.bias.data = take("dense/kernel").T.contiguous(), take("dense/bias")
    unused = sorted(set(w) - used)
    if unused:
        raise ValueError(f"{name}: checkpoint tensors not used by the port: {unused}")
    return net.eval()


# ---------------------------------------------------------------------- causal windows, fast
class _TimbralGraph(nn.Module):
    """Normalised input (1, 1, T + 6, 96) -> timbral features (1, 408, T), no padding."""

    def __init__(self, net: Musicnn):
        super().__init__()
        self.net = net

    def forward(self, xn):
        return torch.cat([bn(F.relu(conv(xn))).amax(dim=3) for conv, bn in
                          zip(self.net.timbral, self.net.timbral_bn, strict=True)], 1)


class _PatchGraph(nn.Module):
    """Normalised patches (B, 1, 187, 96) and their timbral features taken from the whole
    signal (B, 408, 187) -> logits (B, 50), penultimate (B, 200). The first and last 3
    frames of the timbral features are recomputed with the patch's own zero padding, so
    the result equals the network run on each patch alone."""

    def __init__(self, net: Musicnn):
        super().__init__()
        self.net = net
        self.tim = _TimbralGraph(net)

    def forward(self, x, tim):
        net = self.net
        head = self.tim(F.pad(x[:, :, :6], (0, 0, 3, 0)))[:, :, :3]
        tail = self.tim(F.pad(x[:, :, -6:], (0, 0, 0, 3)))[:, :, -3:]
        feats = [torch.cat([head, tim[:, :, 3:-3], tail], 2)]
        for k, conv, bn in zip(net.temporal_k, net.temporal, net.temporal_bn, strict=True):
            feats.append(bn(F.relu(conv(F.pad(x, (0, 0, *_tf_same(k)))))).amax(dim=3))
        front = torch.cat(feats, 1)
        h1 = net.mid_bn[0](F.relu(net.mid[0](front)))
        h2 = net.mid_bn[1](F.relu(net.mid[1](h1))) + h1
        h3 = net.mid_bn[2](F.relu(net.mid[2](h2))) + h2
        m = torch.cat([front, h1, h2, h3], 1)
        flat = torch.stack([m.amax(dim=2), m.mean(dim=2)], -1).flatten(1)
        pen = net.bn_dense(F.relu(net.dense(net.bn_pool(flat))))
        return net.out(pen), pen


def _workdir_and_options(workdir, prefix: str, threads: int):
    """(the temporary folder to keep alive or None, the folder for the exported graphs,
    onnxruntime's session options: ``threads`` intra-op threads, quiet)."""
    import onnxruntime as ort

    tmp = tempfile.TemporaryDirectory(prefix=prefix) if workdir is None else None
    work = Path(workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return tmp, work, so


def _window_spec(y16k: np.ndarray, frame_ends) -> tuple[np.ndarray, np.ndarray]:
    """The first frame of each causal window ending at ``frame_ends`` (s), and the compressed
    spectrogram with ``PATCH_FRAMES - 1`` silent frames before it, cut after the last window:
    no sample after a window's end reaches it."""
    frame_ends = np.asarray(frame_ends, dtype=np.float64)
    starts = window_starts(frame_ends)
    last_sample = np.round(frame_ends * SAMPLE_RATE).astype(np.int64)
    if len(frame_ends) and last_sample.max() > len(y16k):
        raise ValueError(f"a window ends at {frame_ends.max():.3f} s, after the audio ({len(y16k) / SAMPLE_RATE:.3f} s)")
    need = int(starts.max()) + 1 if len(starts) else 0
    spec = melspectrogram(y16k[: last_sample.max()] if len(frame_ends) else y16k[:0])
    return starts, np.concatenate([np.zeros((PATCH_FRAMES - 1, N_MELS), np.float32), spec])[: need + PATCH_FRAMES - 1]


class TeacherRunner:
    """Both teachers' outputs on causal ~3 s windows, through onnxruntime (one thread each).

    ``run(y16k, frame_ends)`` -> {"MSD_musicnn_logits": (n, 50), "MSD_musicnn_penultimate":
    (n, 200), and the same for MTT_musicnn}, float32, one row per window ending at each
    of ``frame_ends`` (seconds). No sample after a window's end is used (tested)."""

    CHUNK = 2048  # spectrogram frames per timbral pass (memory: ~100 MB)
    BATCH = 32

    def __init__(self, names: tuple[str, ...] = TEACHERS, threads: int = 1, workdir: str | Path | None = None):

        import onnxruntime as ort

        self.names = names
        self._tmp, work, so = _workdir_and_options(workdir, "emotrack-teachers-", threads)
        self.models = {}
        for name in names:
            net = load_teacher(name)
            bn = net.bn_in
            with torch.no_grad():  # the input batch-norm is one scalar affine map: applied in numpy
                scale = float(bn.weight[0] / torch.sqrt(bn.running_var[0] + BN_EPS))
                shift = float(bn.bias[0] - bn.running_mean[0] * scale)
            a, b = work / f"{name}-timbral.onnx", work / f"{name}-patch.onnx"
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the exporter's notes on constant folding
                torch.onnx.export(_TimbralGraph(net), (torch.zeros(1, 1, 70, N_MELS),), str(a), input_names=["x"],
                                  output_names=["tim"], dynamic_axes={"x": {2: "t"}, "tim": {2: "t"}},
                                  opset_version=17, dynamo=False)
                torch.onnx.export(_PatchGraph(net), (torch.zeros(2, 1, PATCH_FRAMES, N_MELS),
                                                     torch.zeros(2, 408, PATCH_FRAMES)), str(b),
                                  input_names=["x", "tim"], output_names=["logits", "penultimate"],
                                  dynamic_axes={"x": {0: "b"}, "tim": {0: "b"}, "logits": {0: "b"},
                                                "penultimate": {0: "b"}}, opset_version=17, dynamo=False)
            self.models[name] = (np.float32(scale), np.float32(shift),
                                 ort.InferenceSession(str(a), so, providers=["CPUExecutionProvider"]),
                                 ort.InferenceSession(str(b), so, providers=["CPUExecutionProvider"]))

    def run(self, y16k: np.ndarray, frame_ends: np.ndarray) -> dict[str, np.ndarray]:
        starts, spec = _window_spec(y16k, frame_ends)
        out = {}
        for name, (scale, shift, tim_sess, patch_sess) in self.models.items():
            xn = spec * scale + shift
            tim = np.empty((408, len(xn)), np.float32)
            padded = np.pad(xn, ((3, 3), (0, 0)))
            for c in range(0, len(xn), self.CHUNK):
                e = min(len(xn), c + self.CHUNK)
                tim[:, c:e] = tim_sess.run(None, {"x": padded[None, None, c:e + 6]})[0][0]
            logits = np.empty((len(starts), 50), np.float32)
            pen = np.empty((len(starts), 200), np.float32)
            for b in range(0, len(starts), self.BATCH):
                s = starts[b:b + self.BATCH]
                idx = s[:, None] + np.arange(PATCH_FRAMES)[None]
                lo, pe = patch_sess.run(None, {"x": xn[idx][:, None], "tim": tim[:, idx].transpose(1, 0, 2).copy()})
                logits[b:b + len(s)], pen[b:b + len(s)] = lo, pe
            out[f"{name}_logits"], out[f"{name}_penultimate"] = logits, pen
        return out


class _VggGraph(nn.Module):
    """Compressed mel patches (B, 187, 96) -> logits (B, 50), the flattened last pool (B, 256),
    the fourth pool's mean and max over time and mel (B, 128 each)."""

    def __init__(self, net: Vgg):
        super().__init__()
        self.net = net

    def forward(self, x):
        logits, flat, pools = self.net(x)
        return logits, flat, pools[3].mean((2, 3)), pools[3].amax((2, 3))


class VggRunner:
    """A VGG tagger on the same causal ~3 s windows as :class:`TeacherRunner`, through
    onnxruntime: ``run(y16k, frame_ends)`` -> {"<name>_logits": (n, 50), "<name>_pool5":
    (n, 256), "<name>_pool4mean": (n, 128), "<name>_pool4max": (n, 128)} float32 per name.
    No sample after a window's end is used (tested)."""

    PARTS = ("logits", "pool5", "pool4mean", "pool4max")
    BATCH = 16

    def __init__(self, names: tuple[str, ...] = ("MSD_vgg",), threads: int = 1, workdir: str | Path | None = None):
        import onnxruntime as ort

        self.names = names
        self._tmp, work, so = _workdir_and_options(workdir, "emotrack-vgg-", threads)
        self.sessions = {}
        for name in names:
            path = work / f"{name}.onnx"
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(_VggGraph(load_vgg(name)), (torch.zeros(2, PATCH_FRAMES, N_MELS),), str(path),
                                  input_names=["x"], output_names=list(self.PARTS),
                                  dynamic_axes={k: {0: "b"} for k in ("x", *self.PARTS)}, opset_version=17, dynamo=False)
            self.sessions[name] = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def run(self, y16k: np.ndarray, frame_ends: np.ndarray) -> dict[str, np.ndarray]:
        starts, spec = _window_spec(y16k, frame_ends)
        out = {}
        for name, sess in self.sessions.items():
            parts = [[] for _ in self.PARTS]
            for b in range(0, len(starts), self.BATCH):
                idx = starts[b:b + self.BATCH, None] + np.arange(PATCH_FRAMES)[None]
                for acc, r in zip(parts, sess.run(None, {"x": spec[idx]}), strict=True):
                    acc.append(r)
            for part, acc in zip(self.PARTS, parts, strict=True):
                dim = {"logits": 50, "pool5": 256}.get(part, 128)
                out[f"{name}_{part}"] = np.concatenate(acc) if acc else np.zeros((0, dim), np.float32)
        return out

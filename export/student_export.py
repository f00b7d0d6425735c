"""The student of a ``train --teachers`` run -> ONNX with named recurrent state and the
descriptors as an extra output, through a parity gate that fails the export (offline).

Graph: ``mel (B,T,n_mels,n_t), h (1,B,H), c (1,B,H)[, chroma (B,T,12)[, chroma_avg (B,T,12)]] ->
valence, arousal, valence_std, arousal_std, descriptors (B,T,K), h_out, c_out``; ``chroma``, the
frames' pitch-class profiles, where the head reads them (``NetConfig.tonal``; its parameters are in
the metadata), ``chroma_avg`` their causal average (``NetConfig.tonal_avg``; the runtime keeps its
running sum beside h and c). The descriptors are the student's
distilled tag probabilities (sigmoid of its tag head, put back on the teachers' logit
scale); their names and their typical values (the teachers' mean probability over the
training frames) are in the metadata. The per-dataset offsets of training are not in the
graph. The gate compares torch with onnxruntime on a whole sequence, whole sequence with
frame by frame, from a random non-zero state, and checks that swapping h and c matters.

The shipped file has int8 weights in the encoder's first dense layer (``export.int8``; a
third of the step time). The float graph passes the gate above first; the int8 graph must
then stay within ``INT8_TOL`` of it and still give a frame the same numbers alone as in a
batch. ``int8=False`` writes the float graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from emotrack.models.distill import DESCRIPTORS, BlockLSTM, StudentHead, lstm_blocks
from emotrack.models.nets import FrameVAE, NetConfig
from emotrack.realtime.core.config import CHROMA, FEATURES
from emotrack.realtime.core.features import average_profiles
from emotrack.realtime.core.model import EmotionModel, StepOutput
from torch import nn

from .int8 import INT8_TOL, quantize_dense
from .onnx_export import (
    OPSET,
    PARITY_TOL,
    ExportParityError,
    finish_onnx,
    gate,
    load_vae,
    parity_inputs,
)
from .options import STUDENT_VERSION

OUTPUTS = ["valence", "arousal", "valence_std", "arousal_std", "descriptors", "h_out", "c_out"]
KEYS = ("valence", "arousal", "valence_std", "arousal_std")
INT8_LAYER = "encoder/fc/fc.0/Gemm"  # the dense layer after the convs: (frames, flattened conv map) x 512


class StudentGraph(nn.Module):
    """encoder code -> LSTM -> outputs, with the descriptors' de-standardisation built in."""

    def __init__(self, vae: FrameVAE, head: StudentHead, index: list[int], mu: np.ndarray, sd: np.ndarray):
        super().__init__()
        self.vae, self.head = vae, head
        self.register_buffer("index", torch.as_tensor(index, dtype=torch.long))
        self.register_buffer("mu", torch.from_numpy(np.asarray(mu, np.float32)))
        self.register_buffer("sd", torch.from_numpy(np.asarray(sd, np.float32)))

    def forward(self, mel, h, c, chroma=None, chroma_avg=None):
        b, t = mel.shape[:2]
        z = self.vae.encode(mel.reshape(b * t, *mel.shape[2:]))[0].reshape(b, t, -1)
        if self.head.tonal is not None:
            z = torch.cat([z, chroma] + ([chroma_avg] if self.head.tonal_avg is not None else []), -1)
        mean, std, (h2, c2), y = self.head(z, (h, c))
        logits = (self.head.tags(y) * self.sd + self.mu).index_select(-1, self.index)
        return mean[..., 0], mean[..., 1], std[..., 0], std[..., 1], torch.sigmoid(logits), h2, c2


def load_student(ckpt_path: Path) -> tuple[StudentGraph, dict]:
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    vae, net = load_vae(ck, ckpt_path)
    head = StudentHead(net, ck["datasets"])
    head.load_state_dict(ck["head"], strict=True)
    split_blocks(head)
    # the tag head predicts standardised logits: MSD's 50 then MTT's 50 (see distill.targets_of)
    mu, sd = _tag_scaling(ck["teacher_mu"], ck["teacher_sd"])
    graph = StudentGraph(vae, head, ck["descriptor_index"], mu, sd).eval()
    return graph, ck


@torch.no_grad()
def split_blocks(head: StudentHead, T: int = 16) -> int:
    """Merged heads (``head_ensemble``) go into the graph as their K LSTMs side by side
    (``distill.BlockLSTM``), not as one LSTM K times as wide with zeros off its blocks; the
    head's outputs and state must stay what they were (within PARITY_TOL, on a random sequence
    from a random state). Returns K (1: the LSTM is left as it is)."""
    K = lstm_blocks(head.lstm)
    if K == 1:
        return 1
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, T, head.cfg.latent_dim, generator=g)
    if head.tonal is not None:  # the frame's profiles (and their average's)
        z = torch.cat([z] + [random_chroma(2, T, g) for _ in range(head.n_chroma // 12)], -1)
    st = tuple(torch.randn(1, 2, head.lstm.hidden_size, generator=g) for _ in range(2))
    before, merged = head(z, st), head.lstm
    head.lstm = BlockLSTM(merged, K)
    after = head(z, st)
    diff = max(float((a - b).abs().max()) for a, b in zip((*before[:2], *before[2], before[3]),
                                                           (*after[:2], *after[2], after[3]), strict=True))
    if diff > PARITY_TOL:
        raise ExportParityError(f"the merged head's {K} LSTMs apart differ from it by {diff:.2e} (> {PARITY_TOL})")
    return K


def random_chroma(b: int, t: int, g: torch.Generator) -> torch.Tensor:
    """(b, t, 12) random pitch-class profiles (positive, each summing to 1), for the gates."""
    return torch.softmax(2.0 * torch.randn(b, t, 12, generator=g), -1)


def _tag_scaling(mu: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The teachers' logit columns of the 500-d scaler (KEYS order: MSD logits, MSD pen,
    MTT logits, MTT pen), as MSD's 50 then MTT's 50."""
    cols = np.r_[0:50, 250:300]
    return np.asarray(mu)[cols], np.asarray(sd)[cols]


def export_student(ckpt: Path, out: Path, name: str = "emotrack-vae-lstm", version: str = STUDENT_VERSION,
                   extra_meta: dict | None = None, int8: bool = True,
                   float_copy: Path | None = None) -> tuple[Path, dict]:
    """Write ``out`` (.onnx) and check parity; raises ExportParityError on a mismatch.
    ``float_copy``: where to keep the float graph of an int8 export (else it is removed)."""
    graph, ck = load_student(Path(ckpt))
    net = NetConfig.from_dict(ck["net_config"])
    L, H = net.lstm_layers, net.lstm_hidden
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dyn = {"mel": {0: "batch", 1: "time"}, "h": {1: "batch"}, "c": {1: "batch"}, "h_out": {1: "batch"},
           "c_out": {1: "batch"}}
    for n in OUTPUTS[:5]:
        dyn[n] = {0: "batch", 1: "time"}
    flt = (float_copy or out.with_name(out.stem + ".float.onnx")) if int8 else out
    args, names = (torch.randn(1, 6, *FEATURES.frame_shape), torch.zeros(L, 1, H), torch.zeros(L, 1, H)), ["mel", "h", "c"]
    if net.tonal:
        args, names = (*args, random_chroma(1, 6, torch.Generator().manual_seed(0))), [*names, "chroma"]
        dyn["chroma"] = {0: "batch", 1: "time"}
    if net.tonal and net.tonal_avg:
        args, names = (*args, random_chroma(1, 6, torch.Generator().manual_seed(1))), [*names, "chroma_avg"]
        dyn["chroma_avg"] = {0: "batch", 1: "time"}
    with torch.no_grad():
        torch.onnx.export(graph, args, str(flt), input_names=names, output_names=OUTPUTS, dynamic_axes=dyn,
                          opset_version=OPSET, dynamo=False)
    meta = {"name": name, "version": version, "features": FEATURES.to_dict(), "net": net.to_dict(),
            "hidden_size": H, "num_layers": L, "lstm_blocks": len(getattr(graph.head.lstm, "parts", [0])),
            "outputs": OUTPUTS, "scale": "DEAM [-1, 1]",
            "descriptors": list(ck["descriptors"]), "descriptor_typical": ck.get("descriptor_typical"),
            "descriptor_sources": [f"{m}:{t}" for m, t in DESCRIPTORS], "kind": "dynamic",
            "teachers": "musicnn 0.1.0 MSD_musicnn + MTT_musicnn (distilled; not run at run time)"}
    if net.tonal:
        meta["chroma"] = CHROMA.to_dict()
    meta = {**meta, **(extra_meta or {})}
    finish_onnx(flt, meta)
    parity = parity_check(graph, flt)
    if not int8:
        return out, parity
    try:
        info = quantize_dense(flt, out, INT8_LAYER)
        finish_onnx(out, {**meta, "int8": info})
        parity.update(int8_check(flt, out))
    finally:
        if float_copy is None:
            flt.unlink(missing_ok=True)
    return out, parity


def run_both_ways(em: EmotionModel, mel: np.ndarray, state: tuple, chroma: np.ndarray | None = None) -> tuple:
    """``em`` over ``mel`` (T frames; ``chroma`` their pitch-class profiles where it takes
    them) from ``state``, as one sequence and frame by frame: the whole run's outputs and end
    state, the frame-by-frame outputs (shaped like the whole run's) and end state. Both gates
    compare the two."""
    whole, end = em.run(mel, state, chroma)
    steps = []
    for t in range(len(mel)):
        o, state = em.run(mel[t:t + 1], state, None if chroma is None else chroma[t:t + 1])
        steps.append(o)
    stacked = StepOutput(*(np.concatenate([getattr(o, k) for o in steps]) for k in KEYS),
                         np.concatenate([o.descriptors for o in steps]) if steps[0].descriptors is not None else None)
    return whole, end, stacked, state


def int8_check(float_path: Path, int8_path: Path, T: int = 48, seed: int = 1) -> dict:
    """The int8 graph against the float one on a sequence from a random non-zero state
    (within INT8_TOL), and its whole sequence against its frame-by-frame run (within
    PARITY_TOL: each frame is quantized on its own); ExportParityError otherwise."""
    a, b = EmotionModel(float_path), EmotionModel(int8_path)
    mel, h0, c0 = (x.numpy() for x in parity_inputs(a, T, seed))
    ch, s0 = chroma_input(a, T, seed), start_state(a, h0, c0, seed)
    fa, _ = a.run(mel[0], s0, ch)
    fb, hb, steps, state = run_both_ways(b, mel[0], s0, ch)
    keys = (*KEYS, "descriptors")
    diffs = {"int8_vs_float": float(max(np.abs(getattr(fa, k) - getattr(fb, k)).max() for k in keys)),
             "int8_whole_vs_steps": float(max(np.abs(getattr(fb, k) - getattr(steps, k)).max() for k in keys)),
             "int8_final_state_whole_vs_steps": state_diff(hb, state)}
    if not (diffs["int8_vs_float"] <= INT8_TOL and diffs["int8_whole_vs_steps"] <= PARITY_TOL
            and diffs["int8_final_state_whole_vs_steps"] <= PARITY_TOL):
        raise ExportParityError(f"{int8_path}: int8 graph failed its gate {diffs} (tolerance {INT8_TOL} "
                                f"against the float graph, {PARITY_TOL} whole against frame by frame)")
    return diffs


def chroma_input(em: EmotionModel, T: int, seed: int) -> np.ndarray | None:
    """(T, 12) random pitch-class profiles for a gate, where ``em`` takes them (else None)."""
    if not em.takes_chroma:
        return None
    return random_chroma(1, T, torch.Generator().manual_seed(1000 + seed))[0].numpy()


def start_state(em: EmotionModel, h0: np.ndarray, c0: np.ndarray, seed: int) -> tuple:
    """A gate's start state: (h0, c0), and where ``em`` averages profiles, a random sum as a
    stream has after some seconds (positive, below 1), so that the average's state is tested too."""
    if not em.tonal_avg:
        return h0, c0
    total = random_chroma(1, 1, torch.Generator().manual_seed(2000 + seed))[0, 0].double().numpy()
    return h0, c0, 0.6 * total


def state_diff(a: tuple, b: tuple) -> float:
    """The largest difference between two states of one graph (h, c and any profile sum)."""
    return float(max(np.abs(np.asarray(x) - np.asarray(y)).max() for x, y in zip(a, b, strict=True)))


@torch.no_grad()
def parity_check(graph: StudentGraph, path: Path, T: int = 24, seed: int = 0) -> dict:
    em = EmotionModel(path)
    mel, h0, c0 = parity_inputs(em, T, seed)
    ch, s0 = chroma_input(em, T, seed), start_state(em, h0.numpy(), c0.numpy(), seed)
    extra = [] if ch is None else [torch.from_numpy(ch)[None]]
    if em.tonal_avg:  # the average the runtime feeds, from the same start
        extra.append(torch.from_numpy(average_profiles(ch, em.tonal_avg, s0[2])[0])[None])
    ref = [x.numpy() for x in graph(mel, h0, c0, *extra)]
    whole, end, steps, state = run_both_ways(em, mel[0].numpy(), s0, ch)
    h1, c1 = end[:2]
    whole_arr = np.stack([getattr(whole, k) for k in KEYS], 1)
    torch_arr = np.stack([r[0] for r in ref[:4]], 1)
    diffs = {
        "torch_vs_onnx": float(np.abs(torch_arr - whole_arr).max()),
        "descriptors_torch_vs_onnx": float(np.abs(ref[4][0] - whole.descriptors).max()),
        "torch_vs_onnx_state": float(max(np.abs(ref[5] - h1).max(), np.abs(ref[6] - c1).max())),
        "whole_vs_steps": float(np.abs(whole_arr - np.stack([getattr(steps, k) for k in KEYS], 1)).max()),
        "descriptors_whole_vs_steps": float(np.abs(whole.descriptors - steps.descriptors).max()),
        "final_state_whole_vs_steps": state_diff(end, state),
    }
    return gate(path, diffs, em, mel[0].numpy(), s0, whole, ch)

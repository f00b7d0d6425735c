"""torch -> ONNX export of the VAE-LSTM with named recurrent state, a parity gate that
fails the export, and the model card. Offline (``emotrack export``).

Graph: ``mel (B,T,n_mels,n_t), h (L,B,H), c (L,B,H) -> valence, arousal, valence_std,
arousal_std (B,T), h_out, c_out``. Only B and T are dynamic. Opset and IR version are
pinned so that the pinned onnxruntime loads the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import torch
from emotrack.models.nets import (
    EmotionHead,
    ExportWrapper,
    FrameVAE,
    NetConfig,
    SeqModel,
    vae_code_fn,
)
from emotrack.realtime.core.config import FEATURES, FeatureConfig
from emotrack.realtime.core.model import METADATA_KEY, EmotionModel

OPSET = 17
IR_VERSION = 8
PARITY_TOL = 1e-4


class ExportParityError(RuntimeError):
    """The exported graph does not reproduce the torch model."""


def load_vae(ck: dict, path: Path) -> tuple[FrameVAE, NetConfig]:
    """A checkpoint's frame VAE and net settings; refused if it was trained on other features
    than the runtime computes."""
    feats = FeatureConfig.from_dict(ck["features"])
    if feats.diff(FEATURES):
        raise ValueError(f"{path}: trained with other feature parameters {feats.diff(FEATURES)}")
    net = NetConfig.from_dict(ck["net_config"])
    vae = FrameVAE(net)
    vae.load_state_dict(ck["vae"], strict=True)
    return vae, net


def load_checkpoint(path: Path) -> tuple[SeqModel, NetConfig]:
    ck = torch.load(path, map_location="cpu", weights_only=False)
    vae, net = load_vae(ck, path)
    head = EmotionHead(net)
    head.load_state_dict(ck["head"], strict=True)
    model = SeqModel(vae.encoder, head, code_fn=vae_code_fn(vae)).eval()
    return model, net


def export_onnx(ckpt: Path, out: Path, name: str = "emotrack-vae-lstm", version: str = "1",
                extra_meta: dict | None = None) -> Path:
    """Write ``out`` (an .onnx file) and check parity; raise ExportParityError on mismatch."""
    model, net = load_checkpoint(Path(ckpt))
    wrapper = ExportWrapper(model).eval()
    L, H = net.lstm_layers, net.lstm_hidden
    mel = torch.randn(1, 6, *FEATURES.frame_shape)
    h = torch.zeros(L, 1, H)
    c = torch.zeros(L, 1, H)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    names_out = ["valence", "arousal", "valence_std", "arousal_std", "h_out", "c_out"]
    dyn = {"mel": {0: "batch", 1: "time"}, "h": {1: "batch"}, "c": {1: "batch"},
           "h_out": {1: "batch"}, "c_out": {1: "batch"}}
    for n in names_out[:4]:
        dyn[n] = {0: "batch", 1: "time"}
    torch.onnx.export(wrapper, (mel, h, c), str(out), input_names=["mel", "h", "c"], output_names=names_out,
                      dynamic_axes=dyn, opset_version=OPSET, dynamo=False)
    meta = {"name": name, "version": version, "features": FEATURES.to_dict(), "net": net.to_dict(),
            "hidden_size": H, "num_layers": L, "outputs": names_out, "scale": "DEAM [-1, 1]"}
    finish_onnx(out, {**meta, **(extra_meta or {})})
    parity_check(wrapper, out)
    return out


def finish_onnx(path: Path, meta: dict) -> None:
    """Pin the IR version, store ``meta`` as the emotrack metadata, check the file fully."""

    m = onnx.load(str(path))
    m.ir_version = IR_VERSION
    del m.metadata_props[:]
    p = m.metadata_props.add()
    p.key, p.value = METADATA_KEY, json.dumps(meta)
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(path))


def parity_inputs(em: EmotionModel, T: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random mel frames and a random non-zero (h, c) of ``em``'s shape, the same for a seed."""
    g = torch.Generator().manual_seed(seed)
    L, H = em.num_layers, em.hidden_size
    mel = torch.randn(1, T, *FEATURES.frame_shape, generator=g) * 0.7
    h0 = torch.randn(L, 1, H, generator=g) * 0.5
    c0 = torch.randn(L, 1, H, generator=g) * 0.5
    return mel, h0, c0


@torch.no_grad()
def parity_check(wrapper: ExportWrapper, path: Path, T: int = 24, seed: int = 0) -> dict:
    """torch vs ONNX on a whole sequence, and ONNX whole vs frame by frame, from a random
    non-zero state (a zero state would hide swapped h and c)."""
    em = EmotionModel(path)
    mel, h0, c0 = parity_inputs(em, T, seed)
    ref = [x.numpy() for x in wrapper(mel, h0, c0)]
    whole, (h1, c1) = em.run(mel[0].numpy(), (h0.numpy(), c0.numpy()))
    state = (h0.numpy(), c0.numpy())
    steps = []
    for t in range(T):
        o, state = em.run(mel[0, t : t + 1].numpy(), state)
        steps.append([o.valence[0], o.arousal[0], o.valence_std[0], o.arousal_std[0]])
    steps = np.array(steps)
    whole_arr = np.stack([whole.valence, whole.arousal, whole.valence_std, whole.arousal_std], 1)
    torch_arr = np.stack([r[0] for r in ref[:4]], 1)
    diffs = {
        "torch_vs_onnx": float(np.abs(torch_arr - whole_arr).max()),
        "torch_vs_onnx_state": float(max(np.abs(ref[4] - h1).max(), np.abs(ref[5] - c1).max())),
        "whole_vs_steps": float(np.abs(whole_arr - steps).max()),
        "final_state_whole_vs_steps": float(max(np.abs(h1 - state[0]).max(), np.abs(c1 - state[1]).max())),
    }
    return gate(path, diffs, em, mel[0].numpy(), (h0.numpy(), c0.numpy()), whole)


def gate(path: Path, diffs: dict, em: EmotionModel, mel: np.ndarray, state: tuple, whole,
         chroma: np.ndarray | None = None) -> dict:
    """The end of a recurrent graph's parity check: swapping h and c must change the output
    ``whole`` (or the comparisons in ``diffs`` prove nothing), and every difference must be
    within PARITY_TOL; ExportParityError otherwise. Returns ``diffs`` with the swap's effect."""
    swapped = (state[1], state[0], *state[2:])  # h and c (a profile average's sum stays where it is)
    sw, _ = em.run(mel, swapped, **({"chroma": chroma} if chroma is not None else {}))
    diffs["swapped_state_effect"] = float(np.abs(sw.valence - whole.valence).max())
    bad = {k: v for k, v in diffs.items() if k != "swapped_state_effect" and not v <= PARITY_TOL}
    if bad or diffs["swapped_state_effect"] < 1e-6:
        raise ExportParityError(f"{path}: parity failed {diffs} (tolerance {PARITY_TOL})")
    return diffs

"""The int8 dense layer of the student's export: close to the float layer within the bound
its rounding allows, the same numbers for a frame alone as in a batch, and a gate that
refuses an int8 graph that strays from its float one."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("torch")

from emotrack.export.int8 import exact_weights, quantize_dense  # noqa: E402
from emotrack.export.onnx_export import ExportParityError  # noqa: E402
from emotrack.export.student_export import int8_check  # noqa: E402
from emotrack.realtime.core.model import default_model_path  # noqa: E402


def dense_graph(path, w, b, trans_a=0):
    """Y = X W^T + b as one Gemm node named like the student's."""
    k = w.shape[1]
    node = helper.make_node("Gemm", ["X", "W", "B"], ["Y"], name="/encoder/fc/fc.0/Gemm", transB=1, transA=trans_a)
    graph = helper.make_graph([node], "dense", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["n", k])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["n", w.shape[0]])],
                              [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"X": x})[0]


def test_int8_dense_is_within_its_rounding_bound_and_the_same_for_a_row_alone(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.05, (32, 300)).astype(np.float32)
    b = rng.normal(0, 0.1, 32).astype(np.float32)
    x = np.concatenate([np.abs(rng.normal(0, 1, (6, 300))) - 1,  # ELU-like rows: from -1 up
                        np.full((1, 300), 0.3)]).astype(np.float32)  # a constant row: zero range
    dense_graph(tmp_path / "f.onnx", w, b)
    info = quantize_dense(tmp_path / "f.onnx", tmp_path / "q.onnx", "encoder/fc/fc.0/Gemm")
    assert info["weights"] == [300, 32]
    q = onnx.load(str(tmp_path / "q.onnx"))
    assert "MatMulInteger" in {n.op_type for n in q.graph.node} and "W" not in {t.name for t in q.graph.initializer}
    assert_exact_form(q)

    yf, yq = run(tmp_path / "f.onnx", x), run(tmp_path / "q.onnx", x)
    # each input is off by at most half its row's step, each weight by half its unit's step
    x_step = (x.max(1) - x.min(1)) / 255
    w_step = np.abs(w).max(1) / 127
    bound = (x_step[:, None] / 2 * np.abs(w).sum(1)[None] + w_step[None] / 2 * np.abs(x).sum(1)[:, None]
             + 1e-4)  # float32 sums of 300 terms
    err = np.abs(yq - yf)
    assert (err <= bound).all() and err.max() > 1e-6  # int8 happened, within what rounding allows
    assert np.isfinite(yq).all()  # the constant row (zero range) too: only its weights' rounding
    for i in range(len(x)):  # a row alone gives what it gives in the batch (per-row quantization)
        assert np.abs(run(tmp_path / "q.onnx", x[i:i + 1]) - yq[i:i + 1]).max() <= 1e-6


def test_int8_refuses_a_layer_it_cannot_rewrite(tmp_path):
    w, b = np.ones((4, 8), np.float32), np.zeros(4, np.float32)
    dense_graph(tmp_path / "f.onnx", w, b)
    with pytest.raises(ValueError, match="0 Gemm nodes named"):
        quantize_dense(tmp_path / "f.onnx", tmp_path / "q.onnx", "decoder/Gemm")
    dense_graph(tmp_path / "t.onnx", w.T.copy(), b, trans_a=1)
    with pytest.raises(ValueError, match="untransposed input"):
        quantize_dense(tmp_path / "t.onnx", tmp_path / "q.onnx", "encoder/fc/fc.0/Gemm")


def test_int8_gate_passes_a_faithful_graph_and_refuses_one_that_strays(tmp_path):
    shipped = default_model_path()
    shutil.copy(shipped, tmp_path / "same.onnx")
    diffs = int8_check(shipped, tmp_path / "same.onnx")
    assert diffs["int8_vs_float"] <= 1e-6 and diffs["int8_whole_vs_steps"] <= 1e-4
    m = onnx.load(str(shipped))  # the same graph with the valence output's weights off by 10 %
    name = next(n.input[1] for n in m.graph.node if n.op_type == "MatMul" and n.name.startswith("/head/out"))
    for t in m.graph.initializer:
        if t.name == name:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * 1.1, name))
    onnx.save(m, str(tmp_path / "strayed.onnx"))
    with pytest.raises(ExportParityError, match="int8 graph failed its gate"):
        int8_check(shipped, tmp_path / "strayed.onnx")


def assert_exact_form(model):
    """Every integer product takes uint8 weights with zero point 128: never int8, which x86
    CPUs without VNNI multiply with a saturating int16 pair sum (other numbers than elsewhere)."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type == "MatMulInteger"]
    assert nodes
    for n in nodes:
        assert inits[n.input[1]].dtype == np.uint8, n.name
        assert len(n.input) == 4 and inits[n.input[3]].dtype == np.uint8 and int(inits[n.input[3]]) == 128, n.name


def integer_graph(path, w):
    """acc = q @ w, with q uint8 (n, k) fed and w an int8 constant: the form exported before."""
    node = helper.make_node("MatMulInteger", ["Q", "W"], ["ACC"], name="mm")
    graph = helper.make_graph([node], "int", [helper.make_tensor_value_info("Q", TensorProto.UINT8, ["n", w.shape[0]])],
                              [helper.make_tensor_value_info("ACC", TensorProto.INT32, ["n", w.shape[1]])],
                              [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_exact_weights_keep_the_integer_product_exact_where_int8_would_saturate(tmp_path):
    # rows of 255 against weights of +-127 are what overflow an int16 pair sum (255 * 127 * 2 >
    # 32767); with uint8 weights and zero point 128 the product is the exact one on any CPU
    rng = np.random.default_rng(3)
    w = rng.choice(np.array([-127, 127, -3, 0, 5], np.int8), size=(64, 16))
    q = np.concatenate([np.full((2, 64), 255), rng.integers(0, 256, (5, 64))]).astype(np.uint8)
    integer_graph(tmp_path / "s8.onnx", w)
    assert exact_weights(tmp_path / "s8.onnx", tmp_path / "u8.onnx") == 1
    m = onnx.load(str(tmp_path / "u8.onnx"))
    assert_exact_form(m)
    acc = ort.InferenceSession(str(tmp_path / "u8.onnx"), providers=["CPUExecutionProvider"]).run(None, {"Q": q})[0]
    np.testing.assert_array_equal(acc, q.astype(np.int64) @ w.astype(np.int64))  # integers: exact
    assert exact_weights(tmp_path / "u8.onnx", tmp_path / "again.onnx") == 0  # already exact: left alone


def test_the_shipped_model_multiplies_exactly():
    assert_exact_form(onnx.load(str(default_model_path())))

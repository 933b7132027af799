"""TPAT's loss lowering (python/tpat_bridge/lowerings/losses.py): NegativeLogLikelihoodLoss and
SoftmaxCrossEntropyLoss, CPU only.

Every case: the plan validates against the schema and names the lowering; its CUDA source compiles
with nvcc -arch=sm_90; the same Relax graph built for LLVM matches ONNX Runtime and ONNX's reference
implementation. Cases: reductions none/sum/mean, with and without weights, ignore_index (negative
too, and a class index), extra spatial dims (N, C, d1, d2, d3), a symbolic batch, int32 targets,
float16 (through a float32 twin), the log_prob output. A symbolic class dim declines.

Run: .venv/bin/python -m pytest tests/python/test_lowering_losses.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import (  # noqa: E402
    assert_matches,
    input_shape,
    lowered_plan,
    lowering_checks,
    run_llvm,
    run_ort,
    run_ort_half_via_float32,
)
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402

FT = {"float32": TP.FLOAT, "float16": TP.FLOAT16}


def _model(op, xshape, weight=False, dtype="float32", tdtype=TP.INT64, log_prob=False, **attrs):
    red = attrs.get("reduction", "mean")
    oshape = [xshape[0], *xshape[2:]] if red == "none" else []
    ins = [h.make_tensor_value_info("x", FT[dtype], xshape)]
    ins.append(h.make_tensor_value_info("t", tdtype, [xshape[0], *xshape[2:]]))
    names = ["x", "t"]
    if weight:
        ins.append(h.make_tensor_value_info("w", FT[dtype], [xshape[1]]))
        names.append("w")
    outs = [h.make_tensor_value_info("loss", FT[dtype], oshape)]
    if log_prob:
        outs.append(h.make_tensor_value_info("logp", FT[dtype], xshape))
    node = h.make_node(op, names, [o.name for o in outs], **attrs)
    m = h.make_model(h.make_graph([node], "g", ins, outs), opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    return m


NLL, SCE = "NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"
CASES = {
    # name: (model, {symbol: size}, tolerance)
    "nll_none": (_model(NLL, [3, 5], reduction="none"), {}, 1e-5),
    "nll_sum_weight": (_model(NLL, [3, 5, 2], weight=True, reduction="sum"), {}, 1e-5),
    "nll_mean": (_model(NLL, [4, 6, 3]), {}, 1e-5),
    "nll_mean_weight_ii": (_model(NLL, [4, 5, 7], weight=True, ignore_index=2), {}, 1e-5),
    "nll_none_negative_ii_3d": (_model(NLL, [2, 4, 3, 2, 5], reduction="none", ignore_index=-5), {}, 1e-5),
    "nll_sum_symbolic_int32": (_model(NLL, ["N", 7, 6], tdtype=TP.INT32, reduction="sum"), {"N": 5}, 1e-5),
    "sce_mean": (_model(SCE, [3, 5]), {}, 1e-5),
    "sce_none_log_prob": (_model(SCE, [3, 5, 2], reduction="none", log_prob=True), {}, 1e-5),
    "sce_mean_weight_ii_log_prob": (_model(SCE, [4, 6, 3], weight=True, ignore_index=1, log_prob=True), {}, 1e-5),
    "sce_sum_4d_symbolic": (_model(SCE, ["N", 5, 3, 4], reduction="sum", ignore_index=0), {"N": 3}, 1e-4),
    "sce_mean_fp16": (_model(SCE, [8, 10, 4], dtype="float16", weight=True), {}, 2e-2),
    # the row form (a block per pixel, C >= 256): 2-D with vector loads, symbolic rows, a class
    # count that allows only 2-element vectors, beyond 2-D (strided classes), float16, log_prob
    "sce_row_mean_weight_ii_log_prob": (
        _model(SCE, [6, 1000], weight=True, ignore_index=3, log_prob=True),
        {},
        1e-5,
    ),
    "sce_row_sum_symbolic": (_model(SCE, ["N", 300], reduction="sum"), {"N": 5}, 1e-4),
    "sce_row_none_vec2": (_model(SCE, [4, 258], reduction="none"), {}, 1e-5),
    "sce_row_3d_log_prob": (_model(SCE, [2, 260, 3], reduction="none", log_prob=True), {}, 1e-5),
    "sce_row_mean_fp16": (_model(SCE, [5, 512], dtype="float16", ignore_index=0), {}, 2e-2),
    "nll_none_4d_weight_fp16": (_model(NLL, [2, 6, 5, 4], dtype="float16", weight=True, reduction="none"), {}, 2e-2),
}
ROW_FORM = {
    "sce_row_mean_weight_ii_log_prob": "block of 1024 per pixel, 4-element loads",
    "sce_row_sum_symbolic": "block of 256 per pixel, 4-element loads",
    "sce_row_none_vec2": "block of 1024 per pixel, 2-element loads",
    "sce_row_3d_log_prob": "block of 1024 per pixel, 1-element loads",
    "sce_row_mean_fp16": "block of 1024 per pixel, 8-element loads",
}

NOT_LOWERED = {"nll_symbolic_classes": _model(NLL, [3, "C"], reduction="sum")}


def _feeds(model, syms, seed=0):
    rng = np.random.default_rng(seed)
    xs = input_shape(model.graph.input[0], syms)
    dt = np.float16 if model.graph.input[0].type.tensor_type.elem_type == TP.FLOAT16 else np.float32
    tdt = np.int32 if model.graph.input[1].type.tensor_type.elem_type == TP.INT32 else np.int64
    f = {"x": rng.standard_normal(xs).astype(dt), "t": rng.integers(0, xs[1], [xs[0], *xs[2:]]).astype(tdt)}
    if len(model.graph.input) == 3:
        f["w"] = rng.uniform(0.2, 2.0, xs[1]).astype(dt)
    ii = [a.i for a in model.graph.node[0].attribute if a.name == "ignore_index"]
    if ii:  # some targets are ignored
        f["t"].reshape(-1)[::3] = ii[0]
    return f


@pytest.mark.parametrize("name", list(CASES))
def test_plan_uses_tpat_lowering(built, name):
    plan = lowered_plan(built[name]["res"], "loss")
    detail = plan["lowering_detail"]
    assert (ROW_FORM[name] if name in ROW_FORM else "thread per pixel") in detail, detail
    reduced = "reduction=none" not in detail
    assert len([s for s in plan["steps"] if s["kind"] == "launch"]) == (2 if reduced else 1)


def _half(name):
    return CASES[name][0].graph.input[0].type.tensor_type.elem_type == TP.FLOAT16


test_nvcc_compiles, test_numerics_llvm_vs_ort_and_onnx_reference = lowering_checks(
    CASES,
    feeds=lambda name: _feeds(*CASES[name][:2]),
    tol=lambda name: CASES[name][2],
    ort=run_ort_half_via_float32,
    reference=lambda name, feeds: [
        np.asarray(r).astype(feeds["x"].dtype) for r in ReferenceEvaluator(CASES[name][0]).run(None, feeds)
    ],
    ref_tol=lambda name: 5e-2 if _half(name) else CASES[name][2],
)


def test_symbolic_classes_decline(built):
    choice = registry.choose(load_node(str(built["nll_symbolic_classes"]["path"])))
    assert choice.lowering is None and "class dim" in choice.reason


def test_out_of_range_target_counts_as_ignored(built):
    """ONNX calls a target outside [0, C) an error (ONNX Runtime refuses it); the plugin never
    reads outside its input: such a target gets loss 0 and weight 0."""
    model, syms, _ = CASES["nll_none"]
    feeds = _feeds(model, syms)
    feeds["t"][0] = 5 + 3
    feeds["t"][1] = -7
    got = run_llvm(built["nll_none"]["path"], feeds)[0]
    assert got[0] == 0 and got[1] == 0
    assert got[2] == -feeds["x"][2, feeds["t"][2]]


@pytest.mark.parametrize("op, shape", [(SCE, [4, 300]), (NLL, [3, 5, 4])])
def test_constant_weight(tmp_path, op, shape):
    """The class weights as an initializer (a constant of the kernel), row and pixel form."""
    import onnx
    from onnx import numpy_helper

    model = _model(op, shape, weight=True, ignore_index=1)
    feeds = _feeds(model, {})
    w = feeds.pop("w")
    del model.graph.input[2]
    model.graph.initializer.append(numpy_helper.from_array(w, "w"))
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    got = run_llvm(path, feeds)[0]
    assert_matches(got, run_ort(model, feeds)[0], 1e-5)

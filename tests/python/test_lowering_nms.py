"""TPAT's NonMaxSuppression lowering (python/tpat_bridge/lowerings/nms.py): a data-dependent output, CPU only.

Every case: the plan validates, launches the sort / mask / sweep / scan / scatter kernels and
declares selected_indices' dim 0 data-dependent with a trailing 0-D int64 size output (upper bound
B * C * min(max_output, N)); its CUDA source compiles with nvcc -arch=sm_90; the same IR built for
LLVM equals ONNX Runtime's output (order included) on several random inputs per case: overlapping
boxes with flipped corners, repeated boxes, zero-area boxes, scores with ties. Cases: both
center_point_box modes, max_output absent / 0 / negative / above N / a 0-D constant, score_threshold
absent / given / filtering everything, iou_threshold absent / runtime inputs, several batches and
classes, more than 64 candidates (several sweep chunks), N above the shared-memory sort (global
workspace), a symbolic N and batch (runtime sort length), zero boxes, every box identical (all
but one suppressed). Then the refusals, and reference data + cross_check.

Run: .venv/bin/python -m pytest tests/python/test_lowering_nms.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import input_shape, launches, lowered_plan, lowering_checks, run_ort  # noqa: E402
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402
from tpat_bridge.tools import cross_check, reference  # noqa: E402

ABSENT = object()


def _model(b, c, n, max_out=3, iou=0.5, st=None, center=0, runtime_thr=False, scalar_max=False, n_scores=None, width=4):
    """NonMaxSuppression(boxes [b, n, 4], scores [b, c, n], ...): constants unless runtime_thr
    (iou and score thresholds as graph inputs); max_out/iou ABSENT leave the input out."""
    ins, inits = ["boxes", "scores"], []
    inputs = [
        h.make_tensor_value_info("boxes", TP.FLOAT, [b, n, width]),
        h.make_tensor_value_info("scores", TP.FLOAT, [b, c, n if n_scores is None else n_scores]),
    ]
    tail = [
        ("max", TP.INT64, max_out, [] if scalar_max else [1]),
        ("iou", TP.FLOAT, iou, [1]),
        ("st", TP.FLOAT, st, [1]),
    ]
    while tail and (tail[-1][2] is None or tail[-1][2] is ABSENT):
        tail.pop()
    for name, et, v, shape in tail:
        if v is ABSENT or v is None:
            ins.append("")
        elif runtime_thr and name != "max":
            ins.append(name)
            inputs.append(h.make_tensor_value_info(name, et, [1]))
        else:
            ins.append(name)
            inits.append(h.make_tensor(name, et, shape, [v]))
    node = h.make_node("NonMaxSuppression", ins, ["y"], center_point_box=center)
    g = h.make_graph([node], "g", inputs, [h.make_tensor_value_info("y", TP.INT64, ["k", 3])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 11)])
    m.ir_version = 9
    return m


CASES = {
    # name: (model, {symbol: size})
    "basic": (_model(2, 3, 10, max_out=5, st=0.3), {}),
    "center1": (_model(1, 2, 50, max_out=10, iou=0.4, center=1), {}),
    "no_max": (_model(1, 2, 8, max_out=ABSENT, iou=ABSENT), {}),
    "max_zero": (_model(2, 2, 8, max_out=0), {}),
    "max_negative": (_model(1, 2, 8, max_out=-4), {}),
    "max_above_n_chunks": (_model(2, 2, 150, max_out=1000, iou=0.3, st=0.0), {}),
    "runtime_thresholds": (_model(2, 3, 40, max_out=6, st=0.25, runtime_thr=True), {}),
    "no_iou_scalar_max": (_model(1, 3, 20, max_out=4, iou=ABSENT, scalar_max=True), {}),
    "filter_all": (_model(1, 2, 30, max_out=5, st=2.0), {}),
    "global_sort": (_model(1, 1, 4500, max_out=300, iou=0.5, st=0.5), {}),
    "symbolic": (_model("b", 3, "n", max_out=7, iou=0.45, st=0.2), {"b": 2, "n": 77}),
    # boxes and scores with their own symbols for N, a symbolic box width, max_output INT64_MAX
    # (torchvision's detectors)
    "symbols_differ": (
        _model(1, 2, "nb", max_out=2**63 - 1, st=0.1, n_scores="ns", width="w"),
        {"nb": 90, "ns": 90, "w": 4},
    ),
    "zero_boxes": (_model("b", 2, "n", max_out=3), {"b": 1, "n": 0}),  # a static 0 is refused earlier
    "zero_batches": (_model("b", 2, "n", max_out=3), {"b": 0, "n": 5}),
}


def _boxes(rng, b, n, center, kind):
    xy = rng.uniform(0.0, 4.0, (b, n, 2))
    wh = rng.uniform(0.2, 1.5, (b, n, 2))
    if kind == "identical":
        xy[:] = xy[:, :1]
        wh[:] = wh[:, :1]
    if kind == "degenerate":  # zero-area boxes mixed in
        wh[rng.random((b, n)) < 0.3] = 0.0
    if center == 1:
        arr = np.concatenate([xy, wh], -1)
    else:
        arr = np.concatenate([xy, xy + wh], -1)[..., [1, 0, 3, 2]]  # [y1, x1, y2, x2]
        flip = rng.random((b, n)) < 0.3
        arr[flip] = arr[flip][:, [2, 3, 0, 1]]
    if n > 3 and kind != "identical":
        arr[:, n // 3] = arr[:, 0]
    return arr.astype(np.float32)


def _feeds(model, syms, seed):
    rng = np.random.default_rng(seed)
    shapes = {vi.name: input_shape(vi, syms) for vi in model.graph.input}
    b, n, _ = shapes["boxes"]
    center = next((a.i for a in model.graph.node[0].attribute if a.name == "center_point_box"), 0)
    kind = ["plain", "identical", "degenerate", "plain"][seed % 4]
    scores = rng.random(shapes["scores"])
    if seed % 2 == 0:
        scores = np.round(scores * 8) / 8  # ties
    out = {"boxes": _boxes(rng, b, n, center, kind), "scores": scores.astype(np.float32)}
    if "iou" in shapes:
        out["iou"] = np.array([[0.0, 0.3, 0.6, 1.0][seed % 4]], np.float32)
    if "st" in shapes:
        out["st"] = np.array([[0.25, 0.0, 0.6, -1.0][seed % 4]], np.float32)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_plan_declares_size_output(built, name):
    plan = lowered_plan(built[name]["res"], "nonmaxsuppression")
    assert launches(plan) == [
        "tpat_nms_sort_kernel",
        "tpat_nms_mask_kernel",
        "tpat_nms_sweep_kernel",
        "tpat_nms_scan_kernel",
        "tpat_nms_scatter_kernel",
    ]
    out, size = plan["outputs"]
    assert out["data_dependent"] == {"dim": 0, "size_output": 1}
    # constant thresholds are kernel immediates: no constant to upload (a plugin initialises on a
    # machine without a GPU, e.g. TensorRT-RTX building an engine on the CPU)
    if name != "runtime_thresholds":
        assert plan["constants"] == []
    assert size["size_of"] == [0] and size["dtype"] == "int64" and size["shape_expr"] == []


# four input sets per case (seeds 0-3: plain, identical, degenerate boxes, score ties)
test_nvcc_compiles, test_numerics_llvm_vs_ort = lowering_checks(
    CASES, feeds=lambda name: [_feeds(*CASES[name], seed) for seed in range(4)]
)
SELECT_NOTHING = {"no_max", "max_zero", "max_negative", "filter_all", "zero_boxes", "zero_batches"}


@pytest.mark.parametrize("name", [n for n in CASES if n not in SELECT_NOTHING])
def test_case_selects_something(name):
    """On one of its input sets at least, ONNX Runtime selects a box: the case checks a selection."""
    model, syms = CASES[name]
    assert max(run_ort(model, _feeds(model, syms, seed))[0].shape[0] for seed in range(4)) > 0


@pytest.mark.parametrize("max_out, rows", [(5, 30), (50, 60)])
def test_upper_bound(max_out, rows):
    """U = B * C * min(max_output, N) rows: the plan's output shape."""
    from tpat_bridge.planning.plan import handle_plan

    res = handle_plan(
        {"command": "plan", "model_path": _save(_model(2, 3, 10, max_out=max_out), "ub"), "target": "sm_90"}
    )
    assert res["ok"], res
    assert res["plan"]["outputs"][0]["shape"] == [rows, 3]


def _save(m, name):
    import tempfile

    p = Path(tempfile.mkdtemp(prefix="tpat_nms_")) / f"{name}.onnx"
    onnx.save(m, str(p))
    return str(p)


@pytest.mark.parametrize(
    "model, why",
    [
        (_model(1, 2, 8, iou=1.5), "iou_threshold outside"),
        (_model(1, 2, 8, center=2), "center_point_box 2"),
    ],
)
def test_declines(model, why):
    choice = registry.choose(load_node(_save(model, "d")))
    assert choice.lowering is None and why in choice.reason


def test_runtime_max_output_declines():
    m = _model(1, 2, 8, max_out=3)
    init = m.graph.initializer[0]
    assert init.name == "max"
    del m.graph.initializer[0]
    m.graph.input.append(h.make_tensor_value_info("max", TP.INT64, [1]))
    choice = registry.choose(load_node(_save(m, "rt")))
    assert choice.lowering is None and "must be a constant" in choice.reason


DETECTOR = {"n_scores": "s1", "width": "s2", "max_out": 2**63 - 1, "iou": 0.45, "st": 0.05}


@pytest.mark.parametrize("kw", [{"max_out": 4, "iou": 0.5, "st": 0.1}, DETECTOR], ids=["plain", "detector_symbols"])
def test_reference_and_cross_check_agree(tmp_path, kw):
    """Reference data (two symbolic bindings; a detector's own symbols for the scores' N and the box
    width are bound to the boxes' N and 4) and the generate-time cross-check of the lowering."""
    p = tmp_path / "n.onnx"
    m = _model(1, 3, "s0", **kw)
    for a, b in (("boxes", "in0"), ("scores", "in1")):
        m.graph.input[[i.name for i in m.graph.input].index(a)].name = b
        m.graph.node[0].input[list(m.graph.node[0].input).index(a)] = b
    m.graph.output[0].name = m.graph.node[0].output[0] = "out0"
    onnx.save(m, str(p))
    ans = reference.make_reference(
        {"command": "reference", "model_path": str(p), "out_dir": str(tmp_path / "ref"), "prefix": "x", "plugin": "x"}
    )
    assert ans["cases"] == 2
    res = cross_check.cross_check({"model_path": str(p), "reference_dir": str(tmp_path / "ref"), "tactics": ["tpat"]})
    assert [t["status"] for t in res["tactics"]] == ["agrees"], res

"""TPAT's Col2Im lowering (python/tpat_bridge/lowerings/col2im.py), CPU only.

Every case: the plan validates against the schema and names the lowering, one kernel; its CUDA source
compiles with nvcc -arch=sm_90; the same TE compute built for LLVM matches ONNX Runtime (float32;
float16 through a float32 twin) and ONNX's reference implementation (every dtype). Cases: 1-, 2- and
3-D images, strides, dilations, asymmetric pads, all of them together, a block of more than 64
offsets (the reduction form), a symbolic batch and a symbolic channel dim, float16, float64, int32.
Runtime image_shape / block_shape and inconsistent shapes are declined with a reason.

Run: .venv/bin/python -m pytest tests/python/test_lowering_col2im.py
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import input_shape, launches, lowered_plan, lowering_checks, run_ort, run_ort_half_via_float32  # noqa: E402
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402
from tpat_bridge.tools.reference import _col2im_ort_wrong  # noqa: E402

ONNX_T = {"float32": TP.FLOAT, "float16": TP.FLOAT16, "float64": TP.DOUBLE, "int32": TP.INT32}
NP_T = {"float32": np.float32, "float16": np.float16, "float64": np.float64, "int32": np.int32}


def _blocks(img, block, dil, pads, strides):
    n = len(img)
    return [(img[d] + pads[d] + pads[d + n] - dil[d] * (block[d] - 1) - 1) // strides[d] + 1 for d in range(n)]


def _model(img, block, c=2, batch=1, dtype="float32", const_shapes=True, sym_c=False, **attrs):
    n = len(img)
    dil = attrs.get("dilations", [1] * n)
    pads = attrs.get("pads", [0] * (2 * n))
    strides = attrs.get("strides", [1] * n)
    L = math.prod(_blocks(img, block, dil, pads, strides))
    cb = "C" if sym_c else c * math.prod(block)
    inputs = [h.make_tensor_value_info("x", ONNX_T[dtype], [batch, cb, L])]
    inits = []
    if const_shapes:
        inits = [
            numpy_helper.from_array(np.array(img, np.int64), "img"),
            numpy_helper.from_array(np.array(block, np.int64), "blk"),
        ]
    else:
        inputs += [h.make_tensor_value_info("img", TP.INT64, [n]), h.make_tensor_value_info("blk", TP.INT64, [n])]
    node = h.make_node("Col2Im", ["x", "img", "blk"], ["y"], **attrs)
    out_c = "c_out" if sym_c else c
    g = h.make_graph([node], "g", inputs, [h.make_tensor_value_info("y", ONNX_T[dtype], [batch, out_c, *img])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 9
    return m


CASES = {
    # name: (model, {symbol: size}, tolerance)
    "basic_2d": (_model([5, 5], [1, 5], c=1), {}, 1e-5),  # test_col2im
    "strides_2d": (_model([5, 5], [3, 3], strides=[2, 2]), {}, 1e-5),
    "dilations_2d": (_model([6, 6], [2, 2], dilations=[1, 5]), {}, 1e-5),
    "pads_2d": (_model([5, 5], [1, 5], pads=[0, 1, 0, 1]), {}, 1e-5),
    "all_2d_asymmetric": (
        _model([9, 7], [3, 2], c=3, batch=2, strides=[2, 3], dilations=[2, 1], pads=[1, 2, 2, 0]),
        {},
        1e-5,
    ),
    "overlap_3d": (_model([3, 4, 5], [2, 2, 2], c=2), {}, 1e-5),  # test_col2im_5d-like
    "strided_3d": (_model([6, 5, 7], [3, 2, 3], c=1, strides=[2, 1, 3], pads=[1, 0, 1, 1, 0, 2]), {}, 1e-5),
    "one_d": (_model([11], [3], c=4, strides=[2], pads=[1, 1]), {}, 1e-5),
    "big_block_reduction": (_model([12, 12], [9, 9], c=1), {}, 1e-4),
    # the contributing range: one candidate per pixel for a patch grid, gaps between blocks,
    # a dilation over the stride (that dim walks the offsets), overlapping strided + dilated blocks
    "patches": (_model([8, 12], [4, 4], c=3, strides=[4, 4]), {}, 1e-5),
    "gaps": (_model([11, 9], [2, 3], strides=[4, 5], pads=[1, 0, 2, 1]), {}, 1e-5),
    "dilation_over_stride": (_model([13, 10], [3, 2], strides=[2, 2], dilations=[3, 2], pads=[0, 1, 1, 0]), {}, 1e-5),
    "overlap_strided_dilated": (
        _model([12, 11], [4, 3], strides=[2, 3], dilations=[2, 1], pads=[2, 1, 0, 2]),
        {},
        1e-5,
    ),
    "patches_3d_fp16": (_model([4, 6, 6], [2, 3, 3], dtype="float16", strides=[2, 3, 3]), {}, 2e-2),
    "symbolic_batch": (_model([6, 6], [2, 3], batch="N", strides=[2, 1]), {"N": 3}, 1e-5),
    "symbolic_channels": (_model([5, 6], [2, 2], sym_c=True, pads=[1, 1, 0, 0]), {"C": 3 * 4}, 1e-5),
    "fp16": (_model([8, 8], [3, 3], dtype="float16", pads=[1, 1, 1, 1]), {}, 2e-2),
    "fp16_reduction": (_model([10, 10], [9, 8], c=1, dtype="float16"), {}, 3e-2),
    "float64": (_model([7, 5], [2, 3], dtype="float64", strides=[1, 2]), {}, 1e-9),
    "int32": (_model([6, 7], [3, 3], dtype="int32", strides=[1, 2], dilations=[2, 1]), {}, 0),
    # patch grids walked along the row (row_walk): the ViT form, a pad of one stride with an image
    # width that is no multiple of it, 16-bit patches, more columns than one thread walks
    "walk_patches": (_model([32, 48], [8, 8], c=3, strides=[8, 8]), {}, 1e-5),
    "walk_padded": (_model([30, 44], [8, 8], strides=[8, 8], pads=[2, 8, 0, 4]), {}, 1e-5),
    "walk_fp16": (_model([32, 64], [16, 16], c=1, dtype="float16", strides=[16, 16]), {}, 2e-2),
    "walk_long_rows": (_model([4, 330], [1, 8], c=2, strides=[1, 10]), {}, 1e-5),
    # exact patch grids (the transposing kernel): symbolic batch, rows of an odd length (2-element
    # loads, scalar stores), int32
    "patches_symbolic": (_model([8, 12], [4, 4], batch="N", strides=[4, 4]), {"N": 3}, 1e-5),
    "patches_odd": (_model([6, 9], [3, 3], c=2, batch=2, strides=[3, 3]), {}, 1e-5),
    "patches_int32": (_model([4, 8], [2, 4], dtype="int32", strides=[2, 4]), {}, 0),
}
# the block columns each thread walks (0: one pixel per thread, or the exact-patch kernel)
WALKS = {"walk_patches": 0, "walk_padded": 6, "walk_fp16": 0, "walk_long_rows": 16, "patches": 0, "gaps": 0}
# exact patch grids: (sy, sx, LY, LX, VL, V) of the transposing kernel
PATCHES = {
    "patches": (4, 4, 2, 3, 4, 4),
    "walk_patches": (8, 8, 4, 6, 4, 4),
    "walk_fp16": (16, 16, 2, 4, 8, 8),
    "patches_symbolic": (4, 4, 2, 3, 4, 4),
    "patches_odd": (3, 3, 2, 3, 2, 1),
    "patches_int32": (2, 4, 2, 2, 4, 4),
}

NOT_LOWERED = {
    "runtime_shapes": _model([5, 5], [1, 5], const_shapes=False),
}


def _feeds(model, syms, seed=0):
    rng = np.random.default_rng(seed)
    vi = model.graph.input[0]
    shape = input_shape(vi, syms)
    dt = {v: k for k, v in ONNX_T.items()}[vi.type.tensor_type.elem_type]
    if dt == "int32":
        return {"x": rng.integers(-50, 50, shape).astype(np.int32)}
    return {"x": rng.standard_normal(shape).astype(NP_T[dt])}


@pytest.mark.parametrize("name", list(CASES))
def test_plan_uses_tpat_lowering(built, name):
    plan = lowered_plan(built[name]["res"], "col2im")
    assert len(launches(plan)) >= 1


test_nvcc_compiles, test_numerics_llvm_vs_ort_and_onnx_reference = lowering_checks(
    CASES,
    feeds=lambda name: _feeds(*CASES[name][:2]),
    tol=lambda name: CASES[name][2],
    # ONNX Runtime's CPU Col2Im: float32 only, wrong beyond 2-D
    ort=run_ort_half_via_float32,
    ort_has=lambda name: not _col2im_ort_wrong(CASES[name][0]),
    reference=lambda name, feeds: [ReferenceEvaluator(CASES[name][0]).run(None, feeds)[0].astype(feeds["x"].dtype)],
)


def test_onnx_runtime_is_wrong_where_the_reference_data_uses_onnx_reference():
    """ONNX Runtime 1.24's Col2Im with a spatial rank other than 2 and strides or pads returns
    garbage (uninitialized memory); reference data uses ONNX's reference implementation there."""
    model = CASES["strided_3d"][0]
    assert _col2im_ort_wrong(model) and not _col2im_ort_wrong(CASES["all_2d_asymmetric"][0])
    feeds = _feeds(model, {})
    ref = ReferenceEvaluator(model).run(None, feeds)[0]
    ort_out = run_ort(model, feeds)[0]
    assert not np.allclose(ort_out, ref, atol=1e-3, equal_nan=False)


def test_contributing_range_candidates(built):
    """Candidates per pixel: one for a patch grid, ceil(span / stride) per dim when blocks overlap,
    the block offsets for a dim whose dilation exceeds its stride."""
    from tpat_bridge.lowerings import col2im

    def sel(name):
        return registry.choose(load_node(str(built[name]["path"]))).selection

    assert col2im.terms(sel("patches")) == 1
    assert col2im.terms(sel("gaps")) == 1
    assert col2im.dim_forms(sel("dilation_over_stride")) == [("off", 3), ("col", 2)]
    assert col2im.terms(sel("overlap_strided_dilated")) == 4 * 1
    assert col2im.terms(sel("big_block_reduction")) == 81


def test_row_walk(built):
    """Patch grids along the last dim are walked by a thread per block offset (reads along the
    input row, unrolled); overlapping, narrow (under 32 B) or 1-stride grids keep one pixel per
    thread. The walk's stores: `walk` per thread, unrolled."""
    from tpat_bridge.lowerings import col2im

    for name, walk in WALKS.items():
        sel = registry.choose(load_node(str(built[name]["path"]))).selection
        assert col2im.row_walk(sel) == walk, name
        if walk:
            body = built[name]["res"]["plan"]["cuda_source"].split("__global__")[-1]
            assert body.count("tpat_col2im_ptr[") == walk, name
    for name in ("basic_2d", "overlap_3d", "big_block_reduction", "fp16_reduction", "one_d"):
        assert col2im.row_walk(registry.choose(load_node(str(built[name]["path"]))).selection) == 0, name


def test_exact_patches_transpose(built):
    """Exact 2-D patch grids get the transposing kernel (its numerics: the LLVM checks above run
    it with serial blocks and threads): one launch, the staged rows in shared memory, VL-wide
    loads and V-wide stores; every other case keeps the TE compute."""
    from tpat_bridge.lowerings import col2im

    for name in CASES:
        sel = registry.choose(load_node(str(built[name]["path"]))).selection
        assert col2im.patch_plan(sel) == PATCHES.get(name), name
        plan = built[name]["res"]["plan"]
        kernels = launches(plan)
        if name not in PATCHES:
            assert "tpat_col2im_patches_kernel" not in kernels, name
            continue
        assert kernels == ["tpat_col2im_patches_kernel"], kernels
        assert "transposed through shared memory" in plan["lowering_detail"]
        src = plan["cuda_source"].split("__global__")[-1]
        assert "__shared__" in src and "__syncthreads()" in src
        if name == "walk_fp16":  # 8 halves per load and per store (each a uint4 cast on both sides)
            assert src.count("*(uint4*)") == 4, src


def test_declines_with_reasons(built):
    info = load_node(str(built["runtime_shapes"]["path"]))
    choice = registry.choose(info)
    assert choice.lowering is None and "runtime input" in choice.reason


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda m: m.graph.input[0].type.tensor_type.shape.dim[2].__setattr__("dim_value", 7), "number of blocks"),
        (lambda m: m.graph.input[0].type.tensor_type.shape.dim[1].__setattr__("dim_value", 7), "multiple"),
        (lambda m: m.graph.node[0].attribute.extend([h.make_attribute("strides", [0, 1])]), "> 0"),
        (lambda m: m.graph.node[0].attribute.extend([h.make_attribute("pads", [1, 1])]), "pads"),
    ],
)
def test_inconsistent_nodes_decline(tmp_path, mutate, words):
    m = _model([5, 5], [2, 2])
    mutate(m)
    p = tmp_path / "m.onnx"
    import onnx

    onnx.save(m, str(p))
    choice = registry.choose(load_node(str(p)))
    assert choice.lowering is None and words in choice.reason, choice.reason

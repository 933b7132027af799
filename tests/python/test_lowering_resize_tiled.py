"""TPAT's tiled Resize kernel (resize.py `tile_plan` / `_tiled_ir`: the last two axes resized
separably through a shared-memory tile), CPU only.

Every case: the plan names the tiled kernel, its CUDA compiles with nvcc -arch=sm_90, and the
same IR built for LLVM (blocks and threads as serial loops) matches ONNX Runtime. Cases cover
only W resized (odd widths: 1- and 2-wide stores), only H resized, rank 2, padded last tiles, a
symbolic batch, float16 and bfloat16, up- and downsampling, antialias (linear, cubic x0.25 as in
the bench). Forms that stay on the TE compute: more than TILE_MAX_TAPS taps on one axis (the
reduction form), a resized channel axis, TPAT_RESIZE_SCHEDULE=dlight. And `tile_plan` itself:
every tap row of a tile lies in the rows it stages, the staged tile fits static shared memory.

Run: .venv/bin/python -m pytest tests/python/test_lowering_resize_tiled.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import (  # noqa: E402
    assert_matches,
    compile_all,
    input_shape,
    lowered_plan,
    lowering_checks,
    plan_all,
    run_llvm,
    run_ort,
)
from tpat_bridge.lowerings import resize  # noqa: E402

ONNX_T = {"float32": TP.FLOAT, "float16": TP.FLOAT16, "bfloat16": TP.BFLOAT16}


def _model(xshape, oshape, dtype="float32", scales=None, sizes=None, opset=19, **attrs):
    inputs = ["x", "", "scales" if scales is not None else ""]
    inits = []
    if scales is not None:
        inits.append(h.make_tensor("scales", TP.FLOAT, [len(scales)], scales))
    if sizes is not None:
        inputs.append("sizes")
        inits.append(h.make_tensor("sizes", TP.INT64, [len(sizes)], sizes))
    g = h.make_graph(
        [h.make_node("Resize", inputs, ["y"], **attrs)],
        "g",
        [h.make_tensor_value_info("x", ONNX_T[dtype], xshape)],
        [h.make_tensor_value_info("y", ONNX_T[dtype], oshape)],
        inits,
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 9
    return m


TILED = {
    # name: (model, {symbol: size}, tolerance)
    "w_only_odd": (_model([2, 3, 5, 7], [2, 3, 5, 13], sizes=[2, 3, 5, 13], mode="linear"), {}, 1e-5),
    "w_only_even_cubic": (_model([1, 2, 4, 9], [1, 2, 4, 18], scales=[1, 1, 1, 2], mode="cubic"), {}, 1e-5),
    "h_only_fp16": (_model([1, 4, 9, 24], [1, 4, 27, 24], "float16", scales=[1, 1, 3, 1], mode="linear"), {}, 2e-2),
    "rank2_align_corners": (
        _model([19, 23], [40, 50], sizes=[40, 50], mode="linear", coordinate_transformation_mode="align_corners"),
        {},
        1e-5,
    ),
    "padded_tiles_down": (_model([1, 2, 77, 91], [1, 2, 37, 45], sizes=[1, 2, 37, 45], mode="cubic"), {}, 1e-5),
    "symbolic_batch_x4": (
        _model(["N", 3, 11, 13], ["N", 3, 44, 52], scales=[1, 1, 4, 4], mode="linear"),
        {"N": 2},
        1e-5,
    ),
    "bf16_down_half": (
        _model([2, 2, 32, 64], [2, 2, 16, 32], "bfloat16", scales=[1, 1, 0.5, 0.5], mode="linear"),
        {},
        2e-2,
    ),
    "fp16_up_x2_cubic_exclude": (
        _model([1, 3, 16, 16], [1, 3, 32, 32], "float16", scales=[1, 1, 2, 2], mode="cubic", exclude_outside=1),
        {},
        2e-2,
    ),
    "aa_linear_half": (
        _model([1, 3, 64, 48], [1, 3, 32, 24], scales=[1, 1, 0.5, 0.5], mode="linear", opset=18, antialias=1),
        {},
        1e-5,
    ),
    # 4 x 8 = 32 taps per axis: the stages stay serial loops (passes x taps over UNROLL_LOADS)
    "aa_cubic_eighth": (
        _model([1, 1, 128, 128], [1, 1, 16, 16], scales=[1, 1, 0.125, 0.125], mode="cubic", opset=18, antialias=1),
        {},
        1e-4,
    ),
    "aa_cubic_quarter": (
        _model(
            [1, 2, 64, 64],
            [1, 2, 16, 16],
            scales=[1, 1, 0.25, 0.25],
            mode="cubic",
            opset=18,
            antialias=1,
            cubic_coeff_a=-0.5,
            exclude_outside=1,
        ),
        {},
        1e-5,
    ),
}
# Not the tiled kernel: the TE compute (unrolled or reduction form) takes them.
TE_FORM = {
    "aa_taps_over_limit": (
        _model([1, 1, 60, 8], [1, 1, 6, 8], scales=[1, 1, 0.1, 1], mode="cubic", opset=18, antialias=1),
        {},
        1e-5,
    ),
    "channel_axis_resized": (_model([1, 4, 6, 5], [1, 8, 12, 5], scales=[1, 2, 2, 1], mode="linear"), {}, 1e-5),
}
CASES = {**TILED, **TE_FORM}


def _feeds(model, syms, seed=0):
    vi = model.graph.input[0]
    x = np.random.default_rng(seed).standard_normal(input_shape(vi, syms)).astype(np.float32)
    et = vi.type.tensor_type.elem_type
    if et == TP.FLOAT16:
        return {"x": x.astype(np.float16)}
    if et == TP.BFLOAT16:
        import ml_dtypes

        return {"x": x.astype(ml_dtypes.bfloat16)}
    return {"x": x}


def _ort(model, feeds):
    """ONNX Runtime (its CPU Resize has no 16-bit kernels: the float32 model, rounded back)."""
    x = feeds["x"]
    if x.dtype == np.float32:
        return run_ort(model, feeds)[0]
    m = model.__class__()
    m.CopyFrom(model)
    for vi in list(m.graph.input) + list(m.graph.output):
        vi.type.tensor_type.elem_type = TP.FLOAT
    return run_ort(m, {"x": x.astype(np.float32)})[0].astype(x.dtype)


@pytest.mark.parametrize("name", list(TILED))
def test_tiled_kernel_planned(built, name):
    plan = lowered_plan(built[name]["res"], "resize")
    assert "tiled" in plan["lowering_detail"], plan["lowering_detail"]
    assert len(plan["kernels"]) == 1


@pytest.mark.parametrize("name", list(TILED))
def test_launch_bounds_in_cuda(built, name):
    """The kernel's __launch_bounds__ carries tile_blocks_per_sm's cap (compiled by nvcc in
    test_nvcc_compiles), and nothing else."""
    from tpat_bridge.lowerings import registry
    from tpat_bridge.planning.load import load_node

    tp = resize.tile_plan(registry.choose(load_node(str(built[name]["path"]))).selection)
    cap = resize.tile_blocks_per_sm(tp)
    src = lowered_plan(built[name]["res"], "resize")["cuda_source"]
    want = f"__launch_bounds__({resize.TILE_THREADS}, {cap})" if cap else f"__launch_bounds__({resize.TILE_THREADS})"
    assert want in src, (name, cap)


@pytest.mark.parametrize("name", list(TILED))
def test_stage_passes_unrolled(built, name):
    """Each stage's passes over the tile are unrolled (every load of a thread issued together)
    while passes x taps <= UNROLL_LOADS (per stage) and the stage's filter is linear (<= 2 taps);
    else a serial loop (counted: the kernel's `for` loops are exactly those stages)."""
    from tpat_bridge.lowerings import registry
    from tpat_bridge.planning.load import load_node

    sel = registry.choose(load_node(str(built[name]["path"]))).selection
    tp = resize.tile_plan(sel)
    rs, rows2 = resize.TILE_THREADS // tp.cw, resize.TILE_THREADS // (tp.cw // tp.v)
    lim1, lim2 = resize.UNROLL_LOADS
    lin = resize.UNROLL_TAPS  # a stage of a wider filter (cubic, antialias) stays serial
    p1, p2 = -(-tp.span // rs), -(-tp.rh // rows2)  # passes (a loop of 1 pass leaves no `for`)
    serial = (p1 > 1 and (tp.tw > lin or p1 * tp.tw > lim1)) + (p2 > 1 and (tp.th > lin or p2 * tp.th > lim2))
    src = built[name]["res"]["plan"]["cuda_source"].split("__global__")[-1]
    assert src.count("for (") == serial, (name, serial)
    assert serial or name != "aa_cubic_eighth"


@pytest.mark.parametrize("name", list(TE_FORM))
def test_te_form_kept(built, name):
    plan = lowered_plan(built[name]["res"], "resize")
    assert "tiled" not in plan["lowering_detail"], plan["lowering_detail"]


test_nvcc_compiles, test_numerics_llvm_vs_ort = lowering_checks(
    CASES,
    feeds=lambda name: _feeds(*CASES[name][:2]),
    tol=lambda name: CASES[name][2],
    ort=lambda model, feeds: [_ort(model, feeds)],
)


def test_dlight_switch_keeps_te_form(tmp_path, monkeypatch):
    """TPAT_RESIZE_SCHEDULE=dlight: the TE compute (dlight's schedule), still right."""
    monkeypatch.setenv("TPAT_RESIZE_SCHEDULE", "dlight")
    model, syms, tol = TILED["symbolic_batch_x4"]
    b = plan_all({"dl": model}, tmp_path)
    plan = lowered_plan(b["dl"]["res"], "resize")
    assert "tiled" not in plan["lowering_detail"]
    feeds = _feeds(model, syms)
    assert_matches(run_llvm(b["dl"]["path"], feeds)[0], _ort(model, feeds), tol)
    rc, err = compile_all(b, ["dl"], tmp_path)["dl"]
    assert rc == 0, err


def _sel(model, tmp_path):
    import onnx
    from tpat_bridge.lowerings.protocol import NodeView, node_operands
    from tpat_bridge.planning.load import load_node

    p = tmp_path / "m.onnx"
    onnx.save(model, str(p))
    info = load_node(str(p))
    node = info.model.graph.node[0]
    return resize.select(NodeView(node=node, operands=node_operands(info), info=info))


BENCH_LIKE = {
    "resize": _model([32, 32, 44, 50], [32, 32, 176, 200], scales=[1, 1, 4, 4], mode="linear"),
    "resize_cubic": _model([8, 32, 128, 128], [8, 32, 256, 256], scales=[1, 1, 2, 2], mode="cubic"),
    "resize_align_corners_fp16": _model(
        [16, 64, 128, 128],
        [16, 64, 256, 256],
        "float16",
        scales=[1, 1, 2, 2],
        mode="linear",
        coordinate_transformation_mode="align_corners",
    ),
    "resize_down_bf16": _model(
        [16, 32, 256, 256], [16, 32, 128, 128], "bfloat16", scales=[1, 1, 0.5, 0.5], mode="linear"
    ),
    "resize_antialias": _model(
        [16, 3, 512, 512],
        [16, 3, 256, 256],
        scales=[1, 1, 0.5, 0.5],
        mode="linear",
        opset=18,
        antialias=1,
        exclude_outside=1,
    ),
    "resize_antialias_cubic": _model(
        [8, 3, 512, 512],
        [8, 3, 128, 128],
        scales=[1, 1, 0.25, 0.25],
        mode="cubic",
        opset=18,
        antialias=1,
        cubic_coeff_a=-0.5,
        exclude_outside=1,
    ),
}


@pytest.mark.parametrize("name", list(BENCH_LIKE))
def test_tile_plan_of_bench_shapes(name, tmp_path):
    """The bench's Resize shapes take the tiled kernel with 16-byte stores, a staged tile within
    static shared memory, at least one full wave of blocks, and every tap row of every tile
    inside the rows that tile stages."""
    sel = _sel(BENCH_LIKE[name], tmp_path)
    tp = resize.tile_plan(sel)
    assert tp is not None
    assert tp.v * np.dtype(np.float16 if sel.dtype != "float32" else np.float32).itemsize == 16
    assert tp.span * tp.cw * 4 <= 48 << 10
    lead = int(np.prod(sel.xshape[:-2]))
    assert lead * -(-tp.ho // tp.rh) * -(-tp.wo // tp.cw) >= resize.SMS * resize.BLOCKS_PER_SM
    hidx = tp.htab[0]
    for k, lo in enumerate(tp.lo):
        rows = hidx[k * tp.rh : (k + 1) * tp.rh]
        assert rows.min() >= lo and rows.max() < lo + tp.span
        assert 0 <= lo < tp.hi


def test_whole_height_tile(tmp_path):
    """An output height that is no power of two (176: linear x4 of 44 rows) may be one tile of the
    whole height (no padded rows); power-of-two heights keep power-of-two tiles."""
    assert resize.tile_plan(_sel(BENCH_LIKE["resize"], tmp_path)).rh == 176
    assert resize.tile_plan(_sel(BENCH_LIKE["resize_align_corners_fp16"], tmp_path)).rh == 256


def test_huge_plane_keeps_te_form(tmp_path):
    """A plane of 2^31 elements or more (int32 offsets within a plane would wrap): no tiled kernel."""
    sel = _sel(_model([1, 1, 40000, 60000], [1, 1, 80000, 60000], scales=[1, 1, 2, 1], mode="linear"), tmp_path)
    assert resize.tile_plan(sel) is None
    small = _sel(_model([1, 1, 400, 600], [1, 1, 800, 600], scales=[1, 1, 2, 1], mode="linear"), tmp_path)
    assert resize.tile_plan(small) is not None


def _ints(e):
    import tvm

    return int(tvm.sym.analyzer.Analyzer().simplify(e))


@pytest.mark.parametrize("v,cw", [(8, 32), (8, 64), (8, 128), (8, 256), (4, 32), (4, 64), (2, 32)])
def test_stage2_chunks_cover_rows_without_bank_conflicts(v, cw):
    """Stage 2's chunk columns (`_chunk_col`): the threads of a tile row cover its CW columns once
    each, and each quarter-warp's float4 reads (8 threads, 128 bytes: one shared-memory
    wavefront when conflict-free) hit 32 different banks, whichever rows its threads are on
    (rows are whole multiples of 32 floats apart). 16-bit outputs (V = 8) were 2-way conflicted
    when a thread's 8 outputs were consecutive (ncu membw3-1: 4.66 M conflicts, 0.40 M after)."""
    sv = min(v, 4)
    g = cw // v
    rows2 = resize.TILE_THREADS // g
    cols = {}
    for t in range(resize.TILE_THREADS):
        ry = t // g
        for q in range(v // sv):
            c = _ints(resize._chunk_col(resize.i32c(t % g), resize.i32c(ry), q, v, sv, cw))
            assert c % sv == 0 and 0 <= c < cw
            cols.setdefault(ry, []).extend(range(c, c + sv))
    assert len(cols) == rows2
    for ry, cs in cols.items():
        assert sorted(cs) == list(range(cw)), ry
    if sv < 4:
        return  # 8-byte reads: a half-warp per wavefront, consecutive columns
    for q in range(v // sv):
        for w0 in range(0, resize.TILE_THREADS, 8):
            banks = []
            for t in range(w0, w0 + 8):
                c = _ints(resize._chunk_col(resize.i32c(t % g), resize.i32c(t // g), q, v, sv, cw))
                banks.extend((c + e) % 32 for e in range(4))
            assert len(set(banks)) == 32, (q, w0, banks)
    if v == 8 and cw >= 64:  # the check fails the earlier layout (a thread's 8 outputs side by side)
        old = [((t % g) * v + e) % 32 for t in range(8) for e in range(4)]
        assert len(set(old)) == 16


def test_launch_bounds_of_linear_small_tiles(tmp_path):
    """Linear filters whose tile lets 8 blocks share an SM's shared memory ask __launch_bounds__
    for 8 blocks per SM (linear x4 f32: 50.8 -> 48.3 us on the H200, membw3-2); a 32 KB tile
    (align_corners fp16: 6 blocks by shared memory; capped registers measured no better) and
    wider filters (cubic) do not."""
    assert resize.tile_blocks_per_sm(resize.tile_plan(_sel(BENCH_LIKE["resize"], tmp_path))) == 8
    for name in ("resize_align_corners_fp16", "resize_down_bf16", "resize_cubic", "resize_antialias_cubic"):
        assert resize.tile_blocks_per_sm(resize.tile_plan(_sel(BENCH_LIKE[name], tmp_path))) is None, name

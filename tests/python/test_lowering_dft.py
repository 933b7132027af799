"""TPAT's own DFT lowering (python/tpat_bridge/lowerings/dft.py), CPU only.

TVM 0.27 has no DFT converter (`frontend_import_failed` without this lowering). Every case: a
schema-valid plan made by the lowering with the expected strategy (Stockham FFT in one kernel,
a real input of even length as a half-length complex FFT, four-step, Bluestein in one or four
kernels), nvcc -arch=sm_90 compiles its CUDA source, and the
LLVM build of the same kernels matches numpy.fft in float64 (and ONNX Runtime's CPU DFT for the
float32 / float64 cases).

Grid: n in {1, 2, 3, 5, 7, 8, 12, 16, 96, 97 (prime), 720, 1000, 1009 (prime: Bluestein through a
power of two), 1024, 4096, 8191 (prime)} and 16384 (real: rfft1, 2 blocks per transform; float64: the
real four-step), 12800 and 14000 (rfft1 with radices 5 and 7), 13122 (rfft1 in one block), 10336 (four-step, radices 17 and 19), 40000, 12000 (real: a 6000-point FFT), 6144 (the shared-memory limit), 6150 (prime factor 41), 221 (radix 17), 62 (radix 31);
real and complex input, onesided, inverse, every allowed axis (negative too, non-last with dims
after it), opset 17's attribute and opset 20's input, dft_length shorter and longer than the signal,
float32 / float16 / float64 (bfloat16: nvcc only, LLVM cannot run it), a symbolic batch dim.
Declined: inverse with onesided declared with a complex output (IRFFT's output ends in 1:
tests/python/test_dft_irfft.py), a runtime dft_length, a runtime axis.

Tolerances, as max |got - want| / max(1, max |want|): float32 2e-6 (the FFT's error grows like
log n; the old O(n) sum needed 2e-3 at n = 256), float64 1e-12, float16 1e-3 (the output's
rounding: half an ulp of 2^-11 relative).

Run: .venv/bin/python -m pytest tests/python/test_lowering_dft.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import lowered_plan, run_llvm, run_ort  # noqa: E402
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402

ONNX_T = {"float32": TP.FLOAT, "float16": TP.FLOAT16, "float64": TP.DOUBLE, "bfloat16": TP.BFLOAT16}
NP_T = {"float32": np.float32, "float16": np.float16, "float64": np.float64, "bfloat16": ml_dtypes.bfloat16}
TOL = {"float32": 2e-6, "float64": 1e-12, "float16": 1e-3}


def _model(
    xshape,
    axis=None,
    n=None,
    inverse=0,
    onesided=0,
    dtype="float32",
    opset=20,
    runtime_length=False,
    runtime_axis=False,
):
    r = len(xshape)
    ax = (-2 if opset >= 20 else 1) if axis is None else axis
    ins, inits, attrs = ["x"], [], {"inverse": inverse, "onesided": onesided}
    inputs = [h.make_tensor_value_info("x", ONNX_T[dtype], xshape)]
    if runtime_length:
        ins.append("len")
        inputs.append(h.make_tensor_value_info("len", TP.INT64, []))
    elif n is not None or (opset >= 20 and (axis is not None or runtime_axis)):
        ins.append("len" if n is not None else "")
        if n is not None:
            inits.append(onnx.numpy_helper.from_array(np.array(n, np.int64), "len"))
    if runtime_axis:
        ins.append("axis")
        inputs.append(h.make_tensor_value_info("axis", TP.INT64, []))
    elif opset >= 20 and axis is not None:
        ins.append("axis")
        inits.append(onnx.numpy_helper.from_array(np.array(axis, np.int64), "axis"))
    elif opset < 20 and axis is not None:
        attrs["axis"] = axis
    a = ax % r
    length = n if n is not None else xshape[a]
    oshape = list(xshape[:-1]) + [2]
    if not runtime_length and not runtime_axis:
        oshape[a] = length // 2 + 1 if onesided else length
    else:
        oshape[a] = "K"
    node = h.make_node("DFT", ins, ["y"], **attrs)
    g = h.make_graph([node], "g", inputs, [h.make_tensor_value_info("y", ONNX_T[dtype], oshape)], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 10
    return m


# name -> (xshape, strategy in the plan's detail, model kwargs, symbol values)
GRID = {
    "n1_real_onesided": ([3, 1, 1], "Stockham", dict(onesided=1)),
    "n2_inverse": ([3, 2, 2], "Stockham", dict(inverse=1)),
    "n3_real_axis0": ([3, 2, 1], "Stockham", dict(axis=0)),
    "n5_onesided_opset17": ([2, 5, 1], "Stockham", dict(onesided=1, axis=1, opset=17)),
    "n7_inverse_axis1_rank4": ([2, 7, 3, 2], "Stockham", dict(inverse=1, axis=1)),
    "n8_fp16_real": ([4, 8, 1], "real input as a 4-point", dict(dtype="float16")),
    "n12_fp64_inverse": ([2, 12, 2], "Stockham", dict(inverse=1, dtype="float64")),
    "n16_pad_from_10": ([3, 10, 1], "real input as a 8-point", dict(n=16)),
    "n96_inverse": ([5, 96, 2], "Stockham", dict(inverse=1)),
    "n97_prime_real_onesided": ([3, 97, 1], "Bluestein, 200-point", dict(onesided=1)),
    "n720_real_onesided": ([4, 720, 1], "real input as a 360-point", dict(onesided=1)),
    "n1000_axis_m3_rank4": ([2, 1000, 3, 2], "Stockham", dict(axis=-3)),
    "n1024": ([3, 1024, 2], "Stockham", {}),
    "n4096_fp16_onesided": ([2, 4096, 1], "real input as a 2048-point", dict(onesided=1, dtype="float16")),
    "n8191_prime_inverse": ([2, 8191, 2], "Bluestein, 16384-point four-step", dict(inverse=1)),
    "n16384_real_onesided": (
        [2, 16384, 1],
        "real input as a 8192-point complex FFT in 2 blocks per transform (bins by parity: 4096 points each, "
        "radices 8x8x8x8), 512 threads, shared memory, 1 kernel",
        dict(onesided=1),
    ),
    "n16384_real_inverse_full_rfft1": ([2, 16384, 1], "8192-point complex FFT in 2 blocks", dict(inverse=1)),
    "n13122_real_rfft1_one_block": (
        [2, 13122, 1],
        "6561-point complex FFT in one block per transform (radices 9x9x9x9), 736 threads, dynamic shared memory",
        dict(onesided=1),
    ),
    "n12800_real_trunc_odd_rfft1": (
        [2, 13001, 1],
        "6400-point complex FFT in 2 blocks per transform (bins by parity: 3200 points each",
        dict(n=12800, onesided=1),
    ),
    "n16384_real_onesided_fp64_rfourstep": (
        [2, 16384, 1],
        "8192-point complex four-step",
        dict(onesided=1, dtype="float64"),
    ),
    "n20000_real_inverse_full": ([3, 20000, 1], "real input as a 10000-point complex four-step", dict(inverse=1)),
    "n12500_real_axis0_cols_fp64": (
        [12500, 3, 1],
        "real input as a 6250-point",
        dict(axis=0, onesided=1, dtype="float64"),
    ),
    "n14000_real_pad_fp16": (
        [2, 13000, 1],
        "real input as a 7000-point complex FFT in 2 blocks per transform",
        dict(n=14000, onesided=1, dtype="float16"),
    ),
    "n40000_axis0_cols": ([40000, 3, 2], "four-step FFT 64 x 625", dict(axis=0)),
    "n6144_shared_limit": ([2, 6144, 2], "Stockham", {}),
    "n6150_prime41": ([2, 6150, 1], "Bluestein, 12500-point four-step", dict(onesided=1)),
    "n221_radix17": ([3, 221, 2], "Stockham FFT radices 13x17", {}),
    "n62_radix31_fp64": ([3, 62, 2], "Stockham FFT radices 2x31", dict(dtype="float64")),
    "n37_prime_fp64": ([2, 37, 2], "Bluestein", dict(dtype="float64", inverse=1)),
    "n1009_prime_pow2": ([3, 1009, 2], "Bluestein, 2048-point FFTs (radices 4x4x4x4x4x2)", {}),
    "n10336_fourstep_radix17_19": ([2, 10336, 2], "four-step FFT 16 x 646 (radices 4x4 | 2x17x19)", {}),
    "n16384_fourstep_inverse_fp64": ([2, 16384, 2], "four-step FFT 64 x 256", dict(inverse=1, dtype="float64")),
    "trunc_8191_to_7000": ([2, 8191, 2], "four-step", dict(n=7000)),
    "pad_720_to_1024_axis1": ([2, 720, 3, 1], "real input as a 512-point", dict(n=1024, axis=1, onesided=1)),
    "sym_batch": (["B", 12, 2], "Stockham", {}),
    "sym_batch_fourstep": (["B", 8192, 2], "four-step", {}),
    "sym_batch_rfft_12000": (["B", 12000, 1], "real input as a 6000-point", dict(onesided=1)),
    "many_short": ([2048, 16, 2], "Stockham", {}),
    "opset17_axis_attr": ([2, 8, 2], "Stockham", dict(axis=1, opset=17)),
}
SYMS = {"sym_batch": {"B": 3}, "sym_batch_fourstep": {"B": 2}, "sym_batch_rfft_12000": {"B": 2}}
COMPILE_ONLY = {
    "bf16_real_onesided": ([2, 720, 1], "real input", dict(onesided=1, dtype="bfloat16")),
    "bf16_bluestein4": ([2, 8191, 2], "Bluestein", dict(dtype="bfloat16")),
}
CASES = {name: (_model(s, **kw),) for name, (s, _, kw) in {**GRID, **COMPILE_ONLY}.items()}
NOT_LOWERED = {
    "inverse_onesided": _model([2, 8, 2], inverse=1, onesided=1),
    "runtime_length": _model([2, 8, 1], runtime_length=True),
    "runtime_axis": _model([2, 8, 1], runtime_axis=True),
}


def _feeds(name):
    s, _, kw = GRID[name]
    shape = [SYMS.get(name, {}).get(d, d) for d in s]
    rng = np.random.default_rng(len(name))
    return {"x": rng.standard_normal(shape).astype(NP_T[kw.get("dtype", "float32")])}


def _reference(name, x):
    """numpy.fft in float64 of the (exactly widened) input."""
    s, _, kw = GRID[name]
    r = len(s)
    ax = kw.get("axis", -2 if kw.get("opset", 20) >= 20 else 1) % r
    xc = x[..., 0].astype(np.float64) + (1j * x[..., 1].astype(np.float64) if s[-1] == 2 else 0)
    n = kw.get("n", xc.shape[ax])
    y = (np.fft.ifft if kw.get("inverse") else np.fft.fft)(xc, n=n, axis=ax)
    if kw.get("onesided"):
        y = np.take(y, range(n // 2 + 1), axis=ax)
    return np.stack([y.real, y.imag], -1)


@pytest.mark.parametrize("name", list(CASES))
def test_plan_uses_tpat_lowering(built, name):
    plan = lowered_plan(built[name]["res"], "dft")
    assert plan["steps"]
    assert {**GRID, **COMPILE_ONLY}[name][1] in plan["lowering_detail"], plan["lowering_detail"]
    assert "direct sum" not in plan["lowering_detail"]


@pytest.mark.parametrize("name", list(CASES))
def test_nvcc_compiles(compiled, name):
    rc, err = compiled[name]
    assert rc == 0, err


@pytest.mark.parametrize("name", list(GRID))
def test_numerics_llvm_vs_numpy_fft(built, name):
    feeds = _feeds(name)
    dtype = GRID[name][2].get("dtype", "float32")
    got = run_llvm(built[name]["path"], feeds)[0]
    want = _reference(name, feeds["x"])
    assert got.dtype == NP_T[dtype] and got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got.astype(np.float64) - want).max()) / scale
    assert err <= TOL[dtype], (name, err)


ORT_CASES = [
    "n3_real_axis0",
    "n7_inverse_axis1_rank4",
    "n12_fp64_inverse",
    "n16_pad_from_10",
    "n97_prime_real_onesided",
    "n1000_axis_m3_rank4",
    "n8191_prime_inverse",
    "n16384_real_onesided",
    "pad_720_to_1024_axis1",
    "sym_batch",
    "opset17_axis_attr",
]


@pytest.mark.parametrize("name", ORT_CASES)
def test_onnx_runtime_agrees(built, name):
    """ONNX Runtime's DFT on the same model (run in float64: its float32 DFT of lengths that are
    not powers of two is a direct sum with an error near n * 2^-24, 8e-5 at n = 8191) and input
    (a subset: that sum is O(n^2)). Tolerance 2e-6: ONNX Runtime's float64 DFT is itself off by
    2e-8 at n = 12 (numpy.fft, above, is the accuracy reference)."""
    feeds = _feeds(name)
    got = run_llvm(built[name]["path"], feeds)[0].astype(np.float64)
    m = onnx.ModelProto()
    m.CopyFrom(CASES[name][0])
    for vi in (m.graph.input[0], m.graph.output[0]):
        vi.type.tensor_type.elem_type = TP.DOUBLE
    want = run_ort(m, {"x": feeds["x"].astype(np.float64)})[0]
    scale = max(1.0, float(np.abs(want).max()))
    assert float(np.abs(got - want).max()) / scale <= 2e-6


def test_symbolic_inner_dims_fall_back_to_the_direct_sum():
    """A symbolic dim between the axis and the last one is the only case left to the O(n) sum."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "sym_inner.onnx"
        onnx.save(_model([2, 16, "C", 2], axis=1), str(path))
        sel = registry.choose(load_node(str(path))).selection
    assert sel.kind == "direct" and "direct sum" in sel.describe()


@pytest.mark.parametrize("name", list(NOT_LOWERED))
def test_other_cases_decline_with_a_reason(built, name):
    choice = registry.choose(load_node(str(built[name]["path"])))
    sel, reason = choice.selection, choice.reason
    assert (choice.declined[-1][1] == reason) if choice.declined else reason == "no TPAT lowering for this op"
    assert sel is None and reason


def test_rfft1_is_one_launch_of_two_blocks_per_series_without_workspace(tmp_path):
    """dft_long's shape: one kernel, 2 blocks per series (128 x 512 threads), static shared memory,
    no workspace buffer (the real four-step had two launches and a 4 MB workspace)."""
    from tpat_bridge.planning.plan import handle_plan

    path = tmp_path / "dft_long.onnx"
    onnx.save(_model([64, 16384, 1], onesided=1), str(path))
    plan = handle_plan({"command": "plan", "model_path": str(path), "target": "sm_90"})["plan"]
    launches = [s for s in plan["steps"] if s.get("kind") == "launch"]
    assert len(launches) == 1, launches
    (ln,) = launches
    assert [g["int"] for g in ln["grid"]] == [128, 1, 1] and [b["int"] for b in ln["block"]] == [512, 1, 1]
    assert ln["dynamic_shared_memory_bytes"] == {"int": 0}
    assert plan["buffers"] == [], plan["buffers"]  # the four-step's was [64, 16384] float32


@pytest.mark.parametrize("m", [8192, 7000, 6400, 6561])
def test_rfft1_shared_layout_is_free_of_bank_conflicts(m):
    """The padding _rfft1_pads picks makes every stage's strided writes and the next reads (the
    next gather, or the store's Z_k and Z_M-k) one wavefront per warp access where m is a power of two
    (8192 = 2 x 8x8x8x8); for the other radices it is never worse than no padding."""
    from tpat_bridge.lowerings import dft

    mh = m // dft._rfft1_split(m)
    tb = dft._rfft1_threads(mh)
    stages = dft._rfft1_stages(mh)
    pads = dft._rfft1_pads(mh, tb)
    lanes = np.arange(32)
    for si, (R, Ns) in enumerate(stages):
        nbf = mh // R
        rows = []
        for p in range(-(-nbf // tb)):
            j = p * tb + lanes
            for k in range(R):
                rows.append(np.where(j < nbf, (j // Ns) * Ns * R + j % Ns + k * Ns, -1))
        rows = np.array(rows)
        cost = lambda pad: dft._bank_cost(np.where(rows >= 0, dft._pad_addr(rows, pad), -1))  # noqa: E731
        assert cost(pads[si]) <= cost(0)
        if m & (m - 1) == 0:
            assert cost(pads[si]) == len(rows), (si, R, Ns, pads[si])

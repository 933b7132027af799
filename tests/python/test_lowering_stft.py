"""TPAT's own STFT lowering (python/tpat_bridge/lowerings/dft.py, `STFT`), CPU only.

STFT (opset 17) is the DFT kernel with frames as transforms: transform (batch, frame) reads the
signal from frame * frame_step on, times the window. TVM 0.27 has no STFT converter; TensorRT 10
rejects the op, TensorRT 11 / RTX take only a real float32 signal with a constant frame_step and
window. Every case: a schema-valid plan made by the lowering, nvcc -arch=sm_90 compiles its CUDA
source, the LLVM build matches numpy (frames times window, numpy.fft in float64) and ONNX
Runtime's STFT (float32 cases). Cases: real and complex signal, constant and runtime window,
frame_length with and without a window, onesided 0/1, a Whisper-like 400/160 framing, a prime
frame length (Bluestein), a frame longer than shared memory (four-step), float16 / float64, a
symbolic batch. Declined: a runtime frame_step, onesided with a complex signal, a window whose
length is not frame_length.

Tolerances (max |got - want| / max(1, max |want|)): float32 2e-6, float64 1e-12, float16 1e-3.

Run: .venv/bin/python -m pytest tests/python/test_lowering_stft.py
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

from lowering_harness import lowered_plan, lowering_checks, run_llvm  # noqa: E402
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402

ONNX_T = {"float32": TP.FLOAT, "float16": TP.FLOAT16, "float64": TP.DOUBLE}
NP_T = {"float32": np.float32, "float16": np.float16, "float64": np.float64}
TOL = {"float32": 2e-6, "float64": 1e-12, "float16": 1e-3}


def _hann(n):
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float64)


def _model(
    xshape, step, flen=None, window="const", onesided=1, dtype="float32", runtime_step=False, wlen=None, give_flen=True
):
    """STFT(signal, frame_step, window?, frame_length?): window "const" (an initializer), "input"
    (a graph input) or None; flen given as the frame_length input when not None."""
    batch, length = xshape[0], xshape[1]
    wlen = wlen or flen
    ins, inputs, inits = ["x"], [h.make_tensor_value_info("x", ONNX_T[dtype], xshape)], []
    if runtime_step:
        ins.append("step")
        inputs.append(h.make_tensor_value_info("step", TP.INT64, []))
    else:
        ins.append("step")
        inits.append(onnx.numpy_helper.from_array(np.array(step, np.int64), "step"))
    if window == "const":
        ins.append("w")
        inits.append(onnx.numpy_helper.from_array(_hann(wlen).astype(NP_T[dtype]), "w"))
    elif window == "input":
        ins.append("w")
        inputs.append(h.make_tensor_value_info("w", ONNX_T[dtype], [wlen]))
    else:
        ins.append("")
    if flen is not None and give_flen:
        ins.append("flen")
        inits.append(onnx.numpy_helper.from_array(np.array(flen, np.int64), "flen"))
    frames = 1 + (length - flen) // step
    k = flen // 2 + 1 if onesided else flen
    node = h.make_node("STFT", ins, ["y"], onesided=onesided)
    out = h.make_tensor_value_info("y", ONNX_T[dtype], [batch, frames, k, 2])
    g = h.make_graph([node], "g", inputs, [out], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 10
    return m


# name -> (model kwargs, the strategy in the plan's detail, symbol values)
SPECS = {
    "real_hann_const": (dict(xshape=[2, 64, 1], step=8, flen=16), "real input", {}),
    "real_window_input": (dict(xshape=[3, 50, 1], step=5, flen=12, window="input"), "real input", {}),
    "window_without_frame_length": (dict(xshape=[2, 70, 1], step=9, flen=24, give_flen=False), "real input", {}),
    "no_window_twosided": (dict(xshape=[2, 40, 1], step=7, flen=10, window=None, onesided=0), "real input", {}),
    "odd_frame_real": (dict(xshape=[2, 60, 1], step=5, flen=15), "Stockham FFT radices 3x5", {}),
    "complex_window": (dict(xshape=[2, 48, 2], step=4, flen=16, onesided=0), "Stockham", {}),
    "whisper_400_160": (
        dict(xshape=[1, 16000, 1], step=160, flen=400),
        "real input as a 200-point complex FFT (radices 4x2x5x5)",
        {},
    ),
    "prime_97_bluestein": (dict(xshape=[2, 500, 1], step=50, flen=97), "Bluestein", {}),
    "long_frame_fourstep": (dict(xshape=[1, 20000, 1], step=1000, flen=16384), "four-step FFT 64 x 128", {}),
    "fp16": (dict(xshape=[2, 256, 1], step=32, flen=64, dtype="float16"), "real input", {}),
    "fp64_complex": (dict(xshape=[2, 60, 2], step=6, flen=20, onesided=0, dtype="float64"), "Stockham", {}),
    "sym_batch": (dict(xshape=["B", 128, 1], step=16, flen=32), "real input", {"B": 3}),
}
CASES = {name: (_model(**kw),) for name, (kw, _, _) in SPECS.items()}
NOT_LOWERED = {
    "runtime_step": _model([2, 64, 1], 8, 16, runtime_step=True),
    "onesided_complex": _model([2, 64, 2], 8, 16, onesided=1),
    "window_length_differs": _model([2, 64, 1], 8, 16, wlen=12, window="const"),
}


def _feeds(name):
    kw, _, syms = SPECS[name]
    shape = [syms.get(d, d) for d in kw["xshape"]]
    dt = NP_T[kw.get("dtype", "float32")]
    rng = np.random.default_rng(len(name))
    feeds = {"x": rng.standard_normal(shape).astype(dt)}
    if kw.get("window") == "input":
        feeds["w"] = rng.standard_normal(kw["flen"]).astype(dt)
    return feeds


def _reference(name, feeds):
    kw, _, _ = SPECS[name]
    x = feeds["x"].astype(np.float64)
    xc = x[..., 0] + (1j * x[..., 1] if x.shape[-1] == 2 else 0)
    flen, step = kw["flen"], kw["step"]
    win = kw.get("window", "const")
    w = (
        feeds["w"].astype(np.float64)
        if win == "input"
        else (
            _hann(flen).astype(NP_T[kw.get("dtype", "float32")]).astype(np.float64) if win == "const" else np.ones(flen)
        )
    )
    frames = 1 + (xc.shape[1] - flen) // step
    fr = np.stack([xc[:, f * step : f * step + flen] * w for f in range(frames)], 1)
    y = np.fft.fft(fr, axis=-1)
    if kw.get("onesided", 1):
        y = y[..., : flen // 2 + 1]
    return np.stack([y.real, y.imag], -1)


@pytest.mark.parametrize("name", list(CASES))
def test_plan_uses_tpat_lowering(built, name):
    plan = lowered_plan(built[name]["res"], "stft")
    assert SPECS[name][1] in plan["lowering_detail"], plan["lowering_detail"]


@pytest.mark.parametrize("name", list(CASES))
def test_numerics_llvm_vs_numpy(built, name):
    feeds = _feeds(name)
    dtype = SPECS[name][0].get("dtype", "float32")
    got = run_llvm(built[name]["path"], feeds)[0]
    want = _reference(name, feeds)
    assert got.dtype == NP_T[dtype] and got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max()))
    assert float(np.abs(got.astype(np.float64) - want).max()) / scale <= TOL[dtype]


ORT_CASES = [n for n in CASES if SPECS[n][0].get("dtype", "float32") != "float16" and SPECS[n][0]["xshape"][-1] == 1]


def _close_to_scale(got, want, tol):
    """max |got - want| within tol of max(1, max |want|)."""
    assert got.shape == want.shape
    got, want = got.astype(np.float64), want.astype(np.float64)
    assert float(np.abs(got - want).max()) / max(1.0, float(np.abs(want).max())) <= tol


def _ort_tol(name):
    # ONNX Runtime's float32 STFT sums directly for lengths that are not powers of two
    return 1e-12 if SPECS[name][0].get("dtype") == "float64" else 2e-7 * SPECS[name][0]["flen"] + 2e-6


# ONNX Runtime: real signals only; 1.24.4's STFT of a complex signal returns values near 1e37 and
# NaN here (numpy, above, is the reference for those)
test_nvcc_compiles, test_onnx_runtime_agrees = lowering_checks(
    CASES, feeds=_feeds, tol=_ort_tol, compare=_close_to_scale, names=ORT_CASES
)


@pytest.mark.parametrize("name", list(NOT_LOWERED))
def test_other_cases_decline_with_a_reason(built, name):
    choice = registry.choose(load_node(str(built[name]["path"])))
    assert choice.selection is None and choice.reason

"""DFT with inverse=1 and onesided=1 (IRFFT), as torch.onnx exports torch.fft.irfft (autoformer).

ONNX 1.20's shape inference refuses that pair ("is_onesided and inverse attributes cannot be
enabled at the same time"), so the DFT's output and the Slice/Squeeze after it were untyped and
generate could not extract the nodes (`extraction_failed`, `unknown_rank`); ONNX 1.21
(onnx/onnx#7574) defines it: a one-sided spectrum [..., L, ..., 2] in, the real signal
[..., n, ..., 1] out, n = dft_length or 2 (L - 1), numpy.fft.irfft's numbers. Checked here:
  * planning's type rules (planning/shapes.py) type the whole chain of a small synthetic model
    (rfft -> irfft -> Slice -> Squeeze, as autoformer's export), also through the bridge command;
    out-of-range values give no type;
  * the DFT lowering's irfft plans (every strategy), compiles with nvcc for sm_90 and, built for
    LLVM, matches numpy.fft.irfft in float64 (2e-6 relative for float32);
  * generate's reference data for such a node are numpy's irfft, sized before the run;
  * end to end: `tpat generate --nodes irfft` on the chain converts it, and the rewritten model
    (plugin on LLVM, the rest in ONNX Runtime) gives numpy's result.

Run: .venv/bin/python -m pytest tests/python/test_dft_irfft.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from lowering_harness import lowered_plan, run_llvm  # noqa: E402
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402
from tpat_bridge.planning.shapes import infer_model, infer_shapes  # noqa: E402

ONNX_T = {"float32": TP.FLOAT, "float64": TP.DOUBLE, "float16": TP.FLOAT16}
NP_T = {"float32": np.float32, "float64": np.float64, "float16": np.float16}
TOL = {"float32": 2e-6, "float64": 1e-12, "float16": 1e-3}


def _irfft_model(xshape, axis=1, n=None, dtype="float32", opset=18, out_last=1):
    r = len(xshape)
    a = axis % r
    size = n if n is not None else 2 * (xshape[a] - 1)
    ins, inits, attrs = ["x"], [], {"inverse": 1, "onesided": 1}
    if n is not None:
        ins.append("len")
        inits.append(numpy_helper.from_array(np.array(n, np.int64), "len"))
    if opset >= 20:
        if n is None:
            ins.append("")
        ins.append("axis")
        inits.append(numpy_helper.from_array(np.array(axis, np.int64), "axis"))
    else:
        attrs["axis"] = axis
    oshape = list(xshape[:-1]) + [out_last]
    oshape[a] = size
    g = h.make_graph(
        [h.make_node("DFT", ins, ["y"], **attrs)],
        "g",
        [h.make_tensor_value_info("x", ONNX_T[dtype], xshape)],
        [h.make_tensor_value_info("y", ONNX_T[dtype], oshape)],
        inits,
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 10
    return m


# name -> (xshape, model kwargs, strategy in the plan's detail)
GRID = {
    "autoformer_9_to_16": ([2, 9, 8, 2], dict(n=16), "Stockham"),  # autoformer's node_DFT_190
    "autoformer_8_to_14": ([2, 8, 8, 2], dict(n=14), "Stockham"),  # node_DFT_543 / _789
    "default_length_5_to_8": ([3, 5, 2], {}, "Stockham"),
    "odd_n15_crop_9_bins": ([2, 9, 2], dict(n=15), "Stockham"),
    "pad_9_bins_to_32": ([2, 9, 2], dict(n=32), "Stockham"),
    "last_axis_opset20": ([4, 33, 2], dict(axis=-2, opset=20), "Stockham"),
    "axis0_columns": ([17, 3, 5, 2], dict(axis=0), "Stockham"),
    "prime_97_bluestein": ([3, 49, 2], dict(n=97), "Bluestein"),
    "fourstep_16384": ([2, 8193, 2], {}, "four-step"),
    "float64_n12": ([2, 7, 2], dict(n=12, dtype="float64"), "Stockham"),
    "float16_n64": ([2, 33, 2], dict(dtype="float16"), "Stockham"),
}
CASES = {name: (_irfft_model(s, **kw),) for name, (s, kw, _) in GRID.items()}
NOT_LOWERED = {
    "real_input": _irfft_model([2, 9, 1], n=16),  # IRFFT needs a complex spectrum
}


def _feeds(name):
    s, kw, _ = GRID[name]
    rng = np.random.default_rng(len(name))
    return {"x": rng.standard_normal(s).astype(NP_T[kw.get("dtype", "float32")])}


def _want(name, x):
    s, kw, _ = GRID[name]
    a = kw.get("axis", 1) % len(s)
    xc = x[..., 0].astype(np.float64) + 1j * x[..., 1].astype(np.float64)
    return np.fft.irfft(xc, n=kw.get("n", 2 * (s[a] - 1)), axis=a)[..., None]


@pytest.mark.parametrize("name", list(GRID))
def test_irfft_plans_with_the_dft_lowering(built, name):
    plan = lowered_plan(built[name]["res"], "dft")
    assert "irfft" in plan["lowering_detail"] and GRID[name][2] in plan["lowering_detail"], plan["lowering_detail"]


@pytest.mark.parametrize("name", list(GRID))
def test_irfft_nvcc_compiles(compiled, name):
    rc, err = compiled[name]
    assert rc == 0, err


@pytest.mark.parametrize("name", list(GRID))
def test_irfft_llvm_matches_numpy(built, name):
    feeds = _feeds(name)
    dtype = GRID[name][1].get("dtype", "float32")
    got = run_llvm(built[name]["path"], feeds)[0]
    want = _want(name, feeds["x"])
    assert got.dtype == NP_T[dtype] and got.shape == want.shape, (got.shape, want.shape)
    err = float(np.abs(got.astype(np.float64) - want).max()) / max(1.0, float(np.abs(want).max()))
    assert err <= TOL[dtype], (name, err)


def test_irfft_of_a_real_input_is_declined(built):
    choice = registry.choose(load_node(str(built["real_input"]["path"])))
    assert choice.selection is None and "complex" in choice.reason


def _chain(opset=18, n=16, last=2, axis=1):
    """autoformer's pattern: rfft of [2, 16, 8, 1] on axis 1, the product's irfft with dft_length,
    Slice [0:1] on the last axis, Squeeze: ONNX 1.20 leaves y, s and out untyped."""
    nodes = [
        h.make_node("DFT", ["x", "len16"], ["f"], name="rfft", axis=1, onesided=1),
        h.make_node("Mul", ["f", "f"], ["p"], name="mul"),
        h.make_node("DFT", ["p", "len"], ["y"], name="irfft", axis=axis, inverse=1, onesided=1),
        h.make_node("Slice", ["y", "zero", "one", "minus1"], ["s"], name="slice"),
        h.make_node("Squeeze", ["s", "minus1"], ["out"], name="squeeze"),
    ]
    inits = [
        numpy_helper.from_array(np.array(16, np.int64), "len16"),
        numpy_helper.from_array(np.array(n, np.int64), "len"),
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
    ]
    g = h.make_graph(
        nodes,
        "chain",
        [h.make_tensor_value_info("x", TP.FLOAT, ["B", 16, 8, 1])],
        [h.make_tensor_value_info("out", TP.FLOAT, None)],
        inits,
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 10
    return m


def _types(model):
    g = model.graph
    return {
        vi.name: (
            vi.type.tensor_type.elem_type,
            [d.dim_value or d.dim_param or None for d in vi.type.tensor_type.shape.dim],
        )
        for vi in list(g.value_info) + list(g.output)
        if vi.type.tensor_type.elem_type
    }


def test_type_rules_type_the_whole_irfft_chain():
    plain = onnx.shape_inference.infer_shapes(_chain(), strict_mode=False)
    inferred, notes = infer_model(_chain())
    t = _types(inferred)
    assert t["f"] == (TP.FLOAT, ["B", 9, 8, 2])
    assert t["y"] == (TP.FLOAT, ["B", 16, 8, 1])
    assert t["s"] == (TP.FLOAT, ["B", 16, 8, 1])
    assert t["out"] == (TP.FLOAT, ["B", 16, 8])
    assert any("IRFFT" in w for w in notes), notes
    if onnx.__version__ < "1.21":  # the gap the rules fill (ONNX 1.21 types it itself)
        assert "y" not in _types(plain)


def test_type_rules_default_length_and_symbolic_axis():
    m = _chain()
    m.graph.node[2].input.pop()  # no dft_length: n = 2 (L - 1) = 16 from L = 9
    assert _types(infer_model(m)[0])["y"] == (TP.FLOAT, ["B", 16, 8, 1])
    m = _chain(axis=0)  # on the symbolic batch dim without dft_length: that dim is unknown
    m.graph.node[2].input.pop()
    assert _types(infer_model(m)[0])["y"] == (TP.FLOAT, [None, 9, 8, 1])


@pytest.mark.parametrize("bad", ["length_zero", "length_huge", "axis_last", "axis_out_of_range"])
def test_type_rules_give_no_type_for_values_out_of_range(bad):
    m = _chain(n={"length_zero": 0, "length_huge": 2**63 - 1}.get(bad, 16))
    if bad.startswith("axis"):
        irfft = m.graph.node[2]
        del irfft.attribute[:]
        irfft.attribute.extend(
            [
                h.make_attribute("inverse", 1),
                h.make_attribute("onesided", 1),
                h.make_attribute("axis", 3 if bad == "axis_last" else 9),
            ]
        )
    inferred, _ = infer_model(m)
    assert "f" in _types(inferred)  # the rfft before it is typed
    t = _types(inferred)
    assert "y" not in t and "s" not in t and not t["out"][1]  # out: the declared type, no shape


def test_bridge_infer_shapes_reports_the_chain(tmp_path):
    p = tmp_path / "chain.onnx"
    onnx.save(_chain(), str(p))
    res = infer_shapes({"model_path": str(p)})
    by = {t["name"]: t for t in res["tensors"]}
    assert by["y"]["dtype"] == "float32" and [d.get("value", d.get("param")) for d in by["y"]["shape"]] == [
        "B",
        16,
        8,
        1,
    ]
    assert [d.get("value", d.get("param")) for d in by["out"]["shape"]] == ["B", 16, 8]


def test_reference_data_are_numpys_irfft():
    from tpat_bridge.tools.reference import _Runner

    model = CASES["autoformer_9_to_16"][0]
    x = _feeds("autoformer_9_to_16")["x"]
    got, _ = _Runner(model).run({"x": x})
    want = _want("autoformer_9_to_16", x).astype(np.float32)
    assert got[0].shape == (2, 16, 8, 1) and np.allclose(got[0], want, atol=1e-6)


def test_reference_sizes_a_node_model_whose_output_has_no_shape():
    """generate's node model declares the output's type only; the size check before the reference
    run (DFT's output size follows dft_length's value) must size it through the rules, or the
    plugin goes without reference data (`too_large: ... cannot be sized`)."""
    from tpat_bridge.tools.reference import Infeasible, _check_output_sizes

    m = onnx.ModelProto()
    m.CopyFrom(CASES["autoformer_9_to_16"][0])
    m.graph.output[0].type.tensor_type.ClearField("shape")
    _check_output_sizes(m, {"x": np.zeros((2, 9, 8, 2), np.float32)}, 1 << 20)
    with pytest.raises(Infeasible, match="too_large"):  # 2 x 16 x 8 float32 = 1 KiB
        _check_output_sizes(m, {"x": np.zeros((2, 9, 8, 2), np.float32)}, 1000)
    huge = _irfft_model([2, 9, 8, 2], n=2**31 - 1)
    huge.graph.output[0].type.tensor_type.ClearField("shape")
    with pytest.raises(Infeasible, match="too_large"):
        _check_output_sizes(huge, {"x": np.zeros((2, 9, 8, 2), np.float32)}, 1 << 30)


def test_generate_converts_the_irfft_of_the_chain_and_the_model_still_computes_it(tmp_path):
    """End to end on the synthetic chain (what stopped autoformer: `extraction_failed`): generate
    extracts and converts the irfft node (reference data and the CPU cross-check included), and
    the rewritten model, the plugin through its LLVM build and the rest through ONNX Runtime,
    gives numpy's result (ONNX Runtime 1.24 cannot load the original: --expected)."""
    tpat = ROOT / ".build" / "debug" / "tpat"
    if not tpat.exists():
        pytest.fail(f"{tpat} is missing: run `swift build` (make test builds it)")
    from tpat_bridge.tools import verify_model as vm

    model = tmp_path / "chain.onnx"
    onnx.save(_chain(), str(model))
    out = tmp_path / "out"
    env = {**os.environ, "TPAT_HOME": os.environ.get("TPAT_HOME", str(ROOT))}
    r = subprocess.run(
        [str(tpat), "generate", str(model), "--nodes", "irfft", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((out / "tpat-generate.json").read_text())
    (plugin,) = report["plugins"]
    assert plugin["nodes"] == ["irfft"] and plugin["lowering"] == "dft" and plugin["referenceCases"] >= 1, plugin
    assert "cross_check" not in r.stdout + r.stderr and "no reference data" not in r.stdout + r.stderr
    x = np.random.default_rng(7).standard_normal((3, 16, 8, 1)).astype(np.float32)
    f = np.fft.rfft(x[..., 0].astype(np.float64), n=16, axis=1)
    f = np.stack([f.real, f.imag], -1) ** 2  # Mul(f, f): elementwise on the (re, im) pairs
    want = np.fft.irfft(f[..., 0] + 1j * f[..., 1], n=16, axis=1).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    np.savez(tmp_path / "want.npz", out=want)
    res = vm.verify_model(
        str(out), cpu=True, inputs=str(tmp_path / "x.npz"), expected=str(tmp_path / "want.npz"), original=str(model)
    )
    assert res["ok"] and res["pluginNodes"] == 1, res

"""Reference data (python/tpat_bridge/tools/reference.py) and the generic checker
(plugin-runtime/check/tpat_check.cpp). CPU only: the checker and a sample launcher are compiled
with nvcc, not run. Run: .venv/bin/python -m pytest tests/python/test_reference.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

from tpat_bridge.errors import BridgeError  # noqa: E402
from tpat_bridge.tools import reference  # noqa: E402

NVCC = Path(sys.prefix) / "lib" / "python3.11" / "site-packages" / "nvidia" / "cu13" / "bin" / "nvcc"

NP = {
    "float32": np.float32,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float64": np.float64,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "bool": np.bool_,
}


# ------------------------------------------------------------------------------------------------
# canonical one-node models
# ------------------------------------------------------------------------------------------------


def vi(name, t, shape):
    return h.make_tensor_value_info(name, t, shape)


def model(op, inputs, outputs, consts=(), attrs=None, opset=22, node_inputs=None):
    """inputs: [(type, shape)] -> in0...; consts: [np array] -> const0...; outputs: [type]."""
    ins = [vi(f"in{i}", t, s) for i, (t, s) in enumerate(inputs)]
    inits = [numpy_helper.from_array(np.asarray(c), f"const{i}") for i, c in enumerate(consts)]
    if node_inputs is None:
        node_inputs = [f"in{i}" for i in range(len(inputs))] + [f"const{i}" for i in range(len(consts))]
    outs = [vi(f"out{j}", t, None) for j, t in enumerate(outputs)]
    node = h.make_node(op, node_inputs, [f"out{j}" for j in range(len(outputs))], name="n0", **(attrs or {}))
    g = h.make_graph([node], "g", ins, outs, initializer=inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 10

    return m


MODELS = {
    "scatternd_none": lambda: model(
        "ScatterND", [(TP.FLOAT, ["s0", 8, 6]), (TP.INT64, ["s1", 2]), (TP.FLOAT, ["s1", 6])], [TP.FLOAT]
    ),
    "scatternd_add": lambda: model(
        "ScatterND",
        [(TP.FLOAT, ["s0", 8, 6]), (TP.INT64, ["s1", 2]), (TP.FLOAT, ["s1", 6])],
        [TP.FLOAT],
        attrs={"reduction": "add"},
    ),
    "scatterelements_max": lambda: model(
        "ScatterElements",
        [(TP.FLOAT, ["s0", 9]), (TP.INT64, ["s0", 4]), (TP.FLOAT, ["s0", 4])],
        [TP.FLOAT],
        attrs={"axis": 1, "reduction": "max"},
    ),
    "scatterelements_none": lambda: model(
        "ScatterElements",
        [(TP.FLOAT, [6, "s0"]), (TP.INT32, [5, "s0"]), (TP.FLOAT, [5, "s0"])],
        [TP.FLOAT],
        attrs={"axis": 0},
    ),
    "gathernd_b1": lambda: model(
        "GatherND", [(TP.FLOAT, ["s0", 5, 6, 3]), (TP.INT64, ["s0", 4, 2])], [TP.FLOAT], attrs={"batch_dims": 1}
    ),
    "gatherelements": lambda: model(
        "GatherElements", [(TP.FLOAT, ["s0", 4]), (TP.INT64, ["s1", 4])], [TP.FLOAT], attrs={"axis": 0}
    ),
    "gather": lambda: model("Gather", [(TP.FLOAT, [10, "s0"]), (TP.INT32, ["s1", 3])], [TP.FLOAT], attrs={"axis": 0}),
    "gridsample_5d": lambda: model(
        "GridSample",
        [(TP.FLOAT, ["s0", 2, 4, 5, 6]), (TP.FLOAT, ["s0", 3, 4, 5, 3])],
        [TP.FLOAT],
        attrs={"mode": "linear", "align_corners": 0},
    ),
    "gridsample_nearest": lambda: model(
        "GridSample",
        [(TP.FLOAT, ["s0", 3, 6, 7]), (TP.FLOAT, ["s0", 5, 4, 2])],
        [TP.FLOAT],
        attrs={"mode": "nearest", "padding_mode": "border"},
    ),
    "onehot": lambda: model(
        "OneHot",
        [(TP.INT64, ["s0", 5])],
        [TP.FLOAT],
        consts=[np.array(11, np.int64), np.array([0.0, 1.0], np.float32)],
        attrs={"axis": -1},
    ),
    "topk": lambda: model(
        "TopK",
        [(TP.FLOAT, ["s0", 4096])],
        [TP.FLOAT, TP.INT64],
        consts=[np.array([3840], np.int64)],
        attrs={"axis": -1, "largest": 1, "sorted": 1},
    ),
    "topk_fp16": lambda: model(
        "TopK",
        [(TP.FLOAT16, ["s0", 3000])],
        [TP.FLOAT16, TP.INT64],
        consts=[np.array([2900], np.int64)],
        attrs={"axis": 1, "largest": 0},
    ),
    "topk_symbolic_axis": lambda: model(
        "TopK", [(TP.FLOAT, [2, "s0"])], [TP.FLOAT, TP.INT64], consts=[np.array([100], np.int64)], attrs={"axis": 1}
    ),
    "bitshift_u32": lambda: model(
        "BitShift", [(TP.UINT32, ["s0", 16]), (TP.UINT32, ["s0", 16])], [TP.UINT32], attrs={"direction": "LEFT"}
    ),
    "mod_i32": lambda: model("Mod", [(TP.INT32, ["s0", 8]), (TP.INT32, ["s0", 8])], [TP.INT32], attrs={"fmod": 0}),
    "mod_f32": lambda: model("Mod", [(TP.FLOAT, ["s0", 8]), (TP.FLOAT, [8])], [TP.FLOAT], attrs={"fmod": 1}),
    "div_i64": lambda: model("Div", [(TP.INT64, ["s0", 8]), (TP.INT64, ["s0", 8])], [TP.INT64]),
    "cumsum": lambda: model(
        "CumSum", [(TP.FLOAT, ["s0", 300])], [TP.FLOAT], consts=[np.array(1, np.int64)], attrs={"exclusive": 1}
    ),
    "layernorm_fp16": lambda: model(
        "LayerNormalization",
        [(TP.FLOAT16, ["s0", 16, 64])],
        [TP.FLOAT16],
        consts=[
            np.random.default_rng(1).standard_normal(64).astype(np.float16),
            np.random.default_rng(2).standard_normal(64).astype(np.float16),
        ],
        attrs={"axis": -1, "epsilon": 1e-5},
    ),
    "col2im": lambda: model(
        "Col2Im",
        [(TP.FLOAT, ["s0", 12, 20])],
        [TP.FLOAT],
        consts=[np.array([5, 6], np.int64), np.array([2, 2], np.int64)],
    ),
    "col2im_symbolic_l": lambda: model(
        "Col2Im",
        [(TP.FLOAT, [2, "s0", "s1"])],
        [TP.FLOAT],
        consts=[np.array([5, 6], np.int64), np.array([2, 3], np.int64)],
    ),
    "maxunpool": lambda: model(
        "MaxUnpool",
        [(TP.FLOAT, ["s0", 3, 4, 4]), (TP.INT64, ["s0", 3, 4, 4])],
        [TP.FLOAT],
        attrs={"kernel_shape": [2, 2], "strides": [2, 2]},
    ),
    "maxunpool_overlap": lambda: model(
        "MaxUnpool",
        [(TP.FLOAT, [2, "s0", 5, 5]), (TP.INT64, [2, "s0", 5, 5])],
        [TP.FLOAT],
        attrs={"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    ),
    "resize_cubic": lambda: model(
        "Resize",
        [(TP.FLOAT, ["s0", 3, 5, 7])],
        [TP.FLOAT],
        consts=[np.array([1, 1, 2, 1.5], np.float32)],
        attrs={"mode": "cubic"},
        node_inputs=["in0", "", "const0"],
    ),
    "einsum_static": lambda: model(
        "Einsum", [(TP.FLOAT, [3, 40, 5]), (TP.FLOAT, [3, 5, 40])], [TP.FLOAT], attrs={"equation": "bij,bjk->bik"}
    ),
    "add_bf16": lambda: model("Add", [(TP.BFLOAT16, ["s0", 4]), (TP.BFLOAT16, [4])], [TP.BFLOAT16]),
    "where_bool": lambda: model("Where", [(TP.BOOL, ["s0", 6]), (TP.FLOAT, ["s0", 6]), (TP.FLOAT, [6])], [TP.FLOAT]),
}


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def parse_txt(path: Path):
    """A mirror of tpat_check's parser: header keys + cases of input/output entries."""
    head, cases, cur = {}, [], None
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        key = line[0]
        if key == "case":
            assert cur is None
            cur = {"index": int(line[1]), "inputs": [], "outputs": []}
        elif key == "end":
            cases.append(cur)
            cur = None
        elif key in ("input", "output"):
            rank = int(line[3])
            e = {
                "index": int(line[1]),
                "dtype": line[2],
                "shape": [int(d) for d in line[4 : 4 + rank]],
                "file": line[4 + rank],
            }
            if key == "output":
                assert len(line) == 7 + rank
                e["atol"], e["rtol"] = float(line[5 + rank]), float(line[6 + rank])
            else:
                assert len(line) == 5 + rank
            cur[key + "s"].append(e)
        else:
            head[key] = line[1:]
    assert cur is None
    return head, cases


def load_bin(base: Path, e):
    raw = np.fromfile(base / e["file"], dtype=np.uint8)
    dt = np.dtype(NP[e["dtype"]])
    assert raw.size == int(np.prod(e["shape"], dtype=np.int64)) * dt.itemsize
    if e["dtype"] == "bool":
        return raw.astype(np.bool_).reshape(e["shape"])
    return raw.view(dt).reshape(e["shape"])


def fresh_ort(m: onnx.ModelProto, inputs):
    """ONNX Runtime on the written inputs, independent of reference.py (bf16: float32 twin)."""
    has_bf16 = any(x.dtype == ml_dtypes.bfloat16 for x in inputs)
    if has_bf16:
        m = reference._float_twin(m)
        inputs = [x.astype(np.float32) if x.dtype == ml_dtypes.bfloat16 else x for x in inputs]
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {f"in{i}": x for i, x in enumerate(inputs)})
    if has_bf16:
        outs = [o.astype(ml_dtypes.bfloat16) if o.dtype == np.float32 else o for o in outs]
    return outs


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Every model above through make_reference once (threads: onnxruntime releases the GIL)."""
    root = tmp_path_factory.mktemp("reference")

    def one(name):
        d = root / name
        d.mkdir()
        m = MODELS[name]()
        mp = d / "model.onnx"
        onnx.save(m, mp)
        res = reference.make_reference(
            {
                "command": "reference",
                "model_path": str(mp),
                "out_dir": str(d / "ref"),
                "prefix": f"tpat_{name}",
                "plugin": name,
                "cases": None,
                "seed": 0,
            }
        )
        return name, (m, d / "ref", res)

    with ThreadPoolExecutor(8) as ex:
        return dict(ex.map(one, MODELS))


def read_all(ref_dir: Path):
    j = json.loads((ref_dir / "manifest.json").read_text())
    head, cases = parse_txt(ref_dir / "manifest.txt")
    out = []
    for c in cases:
        ins = [load_bin(ref_dir, e) for e in c["inputs"]]
        outs = [load_bin(ref_dir, e) for e in c["outputs"]]
        out.append((c, ins, outs))
    return j, head, out


# ------------------------------------------------------------------------------------------------
# generic properties
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_manifest_and_outputs_match_fresh_ort(generated, name):
    m, ref, res = generated[name]
    assert Path(res["manifest"]) == ref / "manifest.txt"
    assert (ref / "manifest.json").is_file() and (ref / "manifest.txt").is_file()
    total = sum(p.stat().st_size for p in ref.rglob("*") if p.is_file())
    assert res["bytes"] == total
    assert total < 16 << 20
    j, head, cases = read_all(ref)
    assert head["plugin"] == [name] and head["prefix"] == [f"tpat_{name}"] and head["format"] == ["1"]
    assert j["plugin"] == name and j["prefix"] == f"tpat_{name}" and j["op"] == m.graph.node[0].op_type
    assert res["cases"] == len(cases) == len(j["cases"])
    symbolic = bool(j["symbols"])
    assert len(cases) == (2 if symbolic else 1), res["notes"]
    if symbolic:
        assert [e["shape"] for e in cases[0][0]["inputs"]] != [e["shape"] for e in cases[1][0]["inputs"]]
    for (c, ins, outs), jc in zip(cases, j["cases"]):
        # txt and json agree
        assert [(e["dtype"], e["shape"], e["file"]) for e in c["inputs"]] == [
            (e["dtype"], e["shape"], e["file"]) for e in jc["inputs"]
        ]
        assert [(e["dtype"], e["shape"], e["file"], e["atol"], e["rtol"]) for e in c["outputs"]] == [
            (e["dtype"], e["shape"], e["file"], e["atol"], e["rtol"]) for e in jc["outputs"]
        ]
        # bindings are consistent with the declared input shapes
        for gi, e in zip(m.graph.input, c["inputs"]):
            dims = [
                d.dim_value if d.HasField("dim_value") else jc["bindings"][d.dim_param]
                for d in gi.type.tensor_type.shape.dim
            ]
            assert dims == e["shape"]
        # outputs are what onnxruntime gives on the written inputs
        want = fresh_ort(m, ins)
        assert len(want) == len(outs)
        for w, o, e in zip(want, outs, c["outputs"]):
            assert o.shape == w.shape and o.dtype == w.dtype
            if o.dtype.kind == "f" or o.dtype == ml_dtypes.bfloat16:
                np.testing.assert_array_equal(o.astype(np.float64), w.astype(np.float64))
                assert e["atol"] > 0 and e["rtol"] > 0
            else:
                np.testing.assert_array_equal(o, w)
                assert e["atol"] == 0 and e["rtol"] == 0


def case_inputs(generated, name):
    _, ref, _ = generated[name]
    j, _, cases = read_all(ref)
    return j, cases


# ------------------------------------------------------------------------------------------------
# op-specific input rules
# ------------------------------------------------------------------------------------------------


def test_scatternd_none_unique_in_range(generated):
    _, cases = case_inputs(generated, "scatternd_none")
    for _, (data, ind, _upd), _ in cases:
        k = ind.shape[-1]
        dims = np.array(data.shape[:k])
        assert ((ind >= -dims) & (ind < dims)).all()
        norm = np.where(ind < 0, ind + dims, ind).reshape(-1, k)
        assert len({tuple(r) for r in norm}) == norm.shape[0], "duplicate index tuples"
    assert any((ind < 0).any() for _, (_, ind, _), _ in cases), "some negative indices expected"


def test_scatternd_add_has_duplicates(generated):
    j, cases = case_inputs(generated, "scatternd_add")
    for _, (data, ind, _upd), _ in cases:
        dims = np.array(data.shape[: ind.shape[-1]])
        assert ((ind >= -dims) & (ind < dims)).all()
        norm = np.where(ind < 0, ind + dims, ind).reshape(-1, ind.shape[-1])
        assert len({tuple(r) for r in norm}) < norm.shape[0]
    assert any("duplicates" in n for n in j["notes"])


def test_scatterelements_rules(generated):
    for name, unique in (("scatterelements_max", False), ("scatterelements_none", True)):
        m, _, _ = generated[name]
        axis = [a.i for a in m.graph.node[0].attribute if a.name == "axis"][0]
        _, cases = case_inputs(generated, name)
        for _, (data, ind, _), _ in cases:
            d = data.shape[axis]
            assert ((ind >= -d) & (ind < d)).all()
            norm = np.moveaxis(np.where(ind < 0, ind + d, ind), axis, -1).reshape(-1, ind.shape[axis])
            has_dup = any(len(set(r)) < len(r) for r in norm)
            assert has_dup != unique, name


def test_gathernd_batch_dims(generated):
    _, cases = case_inputs(generated, "gathernd_b1")
    for _, (data, ind), (out,) in cases:
        dims = np.array(data.shape[1 : 1 + ind.shape[-1]])
        assert ((ind >= -dims) & (ind < dims)).all()
        assert out.shape == (data.shape[0], ind.shape[1], data.shape[3])


@pytest.mark.parametrize("name,axis", [("gatherelements", 0), ("gather", 0)])
def test_gather_indices_in_range(generated, name, axis):
    _, cases = case_inputs(generated, name)
    negative = False
    for _, (data, ind), _ in cases:
        d = data.shape[axis]
        assert ((ind >= -d) & (ind < d)).all()
        negative |= bool((ind < 0).any())
    assert negative


def test_onehot_indices(generated):
    _, cases = case_inputs(generated, "onehot")
    for _, (ind,), (out,) in cases:
        assert ((ind >= -11) & (ind < 11)).all()
        assert out.shape == ind.shape + (11,)
        assert (out.sum(-1) == 1).all()


def test_gridsample_grid(generated):
    _, cases = case_inputs(generated, "gridsample_5d")
    for _, (x, g), (out,) in cases:
        assert g.shape[-1] == 3 and np.abs(g).max() <= 1.1
        assert out.shape == (x.shape[0], x.shape[1]) + g.shape[1:4]
    _, cases = case_inputs(generated, "gridsample_nearest")
    for _, (x, g), _ in cases:
        for i, size in ((0, x.shape[3]), (1, x.shape[2])):
            u = ((g[..., i].astype(np.float64) + 1) * size - 1) / 2
            assert (np.abs(u - np.floor(u) - 0.5) > 0.01).all()


@pytest.mark.parametrize("name", ["topk", "topk_fp16", "topk_symbolic_axis"])
def test_topk_distinct(generated, name):
    _, cases = case_inputs(generated, name)
    for _, (x,), (vals, idx) in cases:
        for row in x.astype(np.float64):
            assert np.unique(row).size == row.size
        assert idx.dtype == np.int64 and vals.shape == idx.shape
        np.testing.assert_array_equal(np.take_along_axis(x, idx, axis=1), vals)


def test_bitshift_amounts(generated):
    _, cases = case_inputs(generated, "bitshift_u32")
    for _, (x, s), _ in cases:
        assert x.dtype == np.uint32 and (s < 32).all()
        assert x.max() > 1 << 20


def test_mod_div_nonzero(generated):
    for name in ("mod_i32", "mod_f32", "div_i64"):
        _, cases = case_inputs(generated, name)
        for _, (a, b), _ in cases:
            assert (b != 0).all()
            if b.dtype.kind == "f":
                assert (np.abs(b) >= 0.5).all()
            else:
                assert (b < 0).any() and (a < 0).any()


def test_maxunpool_indices(generated):
    for name in ("maxunpool", "maxunpool_overlap"):
        _, cases = case_inputs(generated, name)
        for _, (x, ind), (out,) in cases:
            n, c = x.shape[:2]
            plane = out.shape[2] * out.shape[3]
            flat = ind.reshape(n * c, -1)
            base = (np.arange(n * c) * plane)[:, None]
            assert ((flat >= base) & (flat < base + plane)).all(), "index outside its (n, c) plane"
            assert np.unique(flat).size == flat.size, "duplicate output positions"
            np.testing.assert_array_equal(out.reshape(-1)[ind.reshape(-1)], x.reshape(-1))


def test_col2im_binding_fixup(generated):
    _, cases = case_inputs(generated, "col2im_symbolic_l")
    for _, (x,), (out,) in cases:
        assert x.shape[1] % 6 == 0 and x.shape[2] == 4 * 4
        assert out.shape == (2, x.shape[1] // 6, 5, 6)


def test_tolerances(generated):
    _, _, cases = read_all(generated["cumsum"][1])
    assert cases[0][0]["outputs"][0]["atol"] == pytest.approx(1e-4 * np.sqrt(300))
    assert cases[0][0]["outputs"][0]["rtol"] == 1e-3
    _, _, cases = read_all(generated["layernorm_fp16"][1])
    assert (cases[0][0]["outputs"][0]["atol"], cases[0][0]["outputs"][0]["rtol"]) == (1e-2, 1e-2)
    _, _, cases = read_all(generated["add_bf16"][1])
    assert (cases[0][0]["outputs"][0]["atol"], cases[0][0]["outputs"][0]["rtol"]) == (5e-2, 5e-2)
    _, _, cases = read_all(generated["einsum_static"][1])
    assert cases[0][0]["outputs"][0]["atol"] == pytest.approx(1e-4 * np.sqrt(5))
    _, _, cases = read_all(generated["topk"][1])
    assert (cases[0][0]["outputs"][1]["atol"], cases[0][0]["outputs"][1]["rtol"]) == (0, 0)


# ------------------------------------------------------------------------------------------------
# requests: explicit cases, determinism, errors
# ------------------------------------------------------------------------------------------------


def test_explicit_cases_seed_and_rewrite(tmp_path):
    mp = tmp_path / "m.onnx"
    onnx.save(MODELS["scatternd_none"](), mp)
    req = {
        "command": "reference",
        "model_path": str(mp),
        "out_dir": str(tmp_path / "r"),
        "prefix": "tpat_x",
        "plugin": "x",
        "cases": [{"s0": 2, "s1": 9}, {"s0": 4, "s1": 1}, {"s0": 3, "s1": 3}],
        "seed": 5,
    }
    res = reference.make_reference(req)
    assert res["cases"] == 3
    j = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert [c["bindings"] for c in j["cases"]] == req["cases"]
    first = (tmp_path / "r" / "case0" / "in1.bin").read_bytes()
    # same seed: same bytes; fewer cases: stale case folders go away
    res = reference.make_reference(dict(req, cases=req["cases"][:1]))
    assert res["cases"] == 1 and (tmp_path / "r" / "case0" / "in1.bin").read_bytes() == first
    assert not (tmp_path / "r" / "case1").exists()
    with pytest.raises(BridgeError) as e:  # 9 unique index tuples cannot fit 1 * 8 slots
        reference.make_reference(dict(req, cases=[{"s0": 1, "s1": 9}]))
    assert e.value.code == "reference"
    with pytest.raises(BridgeError) as e:
        reference.make_reference(dict(req, cases=[{"s0": 1}]))
    assert e.value.code == "input"
    with pytest.raises(BridgeError) as e:
        reference.make_reference(dict(req, cases=[{"s0": 1, "s1": 1, "s7": 2}]))
    assert e.value.code == "input"
    with pytest.raises(BridgeError) as e:
        reference.make_reference(dict(req, model_path=str(tmp_path / "missing.onnx")))
    assert e.value.code == "input"


def test_unknown_op_gets_generic_data_and_a_note(tmp_path):
    mp = tmp_path / "m.onnx"
    onnx.save(model("Sinh", [(TP.FLOAT, ["s0", 3])], [TP.FLOAT]), mp)  # Sinh has a plain-random rule
    res = reference.make_reference(
        {
            "model_path": str(mp),
            "out_dir": str(tmp_path / "a"),
            "prefix": "tpat_a",
            "plugin": "a",
            "cases": None,
            "seed": 0,
        }
    )
    assert res["cases"] == 2 and not any("no input rule" in n for n in res["notes"])
    onnx.save(model("Det", [(TP.FLOAT, ["s0", 3, 3])], [TP.FLOAT]), mp)  # Det has no rule
    res = reference.make_reference(
        {
            "model_path": str(mp),
            "out_dir": str(tmp_path / "b"),
            "prefix": "tpat_b",
            "plugin": "b",
            "cases": None,
            "seed": 0,
        }
    )
    assert res["cases"] == 2 and any("Det: no input rule" in n for n in res["notes"])


# ------------------------------------------------------------------------------------------------
# the checker compiles (CPU machine: no run)
# ------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not NVCC.exists(), reason="nvcc from the venv's nvidia-cuda-nvcc wheel is missing")
def test_checker_and_sample_launcher_compile(tmp_path):
    common = ROOT / "plugin-runtime" / "common"
    check = [
        str(NVCC),
        "-std=c++17",
        "-O2",
        "-arch=sm_90",
        "-Xcompiler",
        "-Wall,-Wextra,-Werror",
        "-I",
        str(common),
        "-o",
        str(tmp_path / "tpat_check"),
        str(ROOT / "plugin-runtime" / "check" / "tpat_check.cpp"),
        "-ldl",
    ]
    lib = [
        str(NVCC),
        "-std=c++17",
        "-O2",
        "-arch=sm_90",
        "-Xcompiler",
        "-fPIC",
        "-shared",
        "-I",
        str(common),
        "-o",
        str(tmp_path / "libtpat_kernels.so"),
        str(ROOT / "tests" / "fixtures" / "check_sample" / "sample_launcher.cu"),
    ]
    with ThreadPoolExecutor(2) as ex:
        procs = list(ex.map(lambda cmd: subprocess.run(cmd, capture_output=True, text=True, timeout=300), [check, lib]))
    for p in procs:
        assert p.returncode == 0, p.stderr
    assert (tmp_path / "tpat_check").is_file() and (tmp_path / "libtpat_kernels.so").is_file()
    syms = subprocess.run(
        ["nm", "-D", "--defined-only", str(tmp_path / "libtpat_kernels.so")], capture_output=True, text=True
    )
    if syms.returncode == 0:
        for fn in ("output_dims", "workspace_size", "initialize", "enqueue", "terminate", "num_tactics"):
            assert f"tpat_sample_mul2_{fn}" in syms.stdout

    # the sample's reference data (what `tpat_check libtpat_kernels.so manifest.txt` runs on a GPU)
    mp = tmp_path / "mul2.onnx"
    onnx.save(model("Mul", [(TP.FLOAT, ["s0", 17])], [TP.FLOAT], consts=[np.array(2.0, np.float32)]), mp)
    res = reference.make_reference(
        {
            "model_path": str(mp),
            "out_dir": str(tmp_path / "ref"),
            "prefix": "tpat_sample_mul2",
            "plugin": "sample_mul2",
            "cases": None,
            "seed": 0,
        }
    )
    assert res["cases"] == 2


def test_complex_stft_reference_is_numpy_framing_and_ort_dft(tmp_path):
    """ONNX Runtime 1.24.4's STFT of a complex signal returns values near 1e37 and NaN: the
    reference frames the signal in numpy and runs ORT's DFT of the frames (checked against
    numpy.fft in float64 here), with a runtime window."""
    from onnx import helper as oh

    node = oh.make_node("STFT", ["x", "step", "w", "len"], ["y"], onesided=0)
    g = oh.make_graph(
        [node],
        "g",
        [oh.make_tensor_value_info("x", TP.FLOAT, [2, 40, 2]), oh.make_tensor_value_info("w", TP.FLOAT, [10])],
        [oh.make_tensor_value_info("y", TP.FLOAT, [2, 7, 10, 2])],
        [
            onnx.numpy_helper.from_array(np.array(5, np.int64), "step"),
            onnx.numpy_helper.from_array(np.array(10, np.int64), "len"),
        ],
    )
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])
    m.ir_version = 9
    mp = tmp_path / "m.onnx"
    onnx.save(m, mp)
    res = reference.make_reference(
        {
            "command": "reference",
            "model_path": str(mp),
            "out_dir": str(tmp_path / "r"),
            "prefix": "tpat_s",
            "plugin": "s",
            "cases": None,
            "seed": 0,
        }
    )
    assert res["cases"] == 1
    _, _, cases = read_all(tmp_path / "r")
    ((_, ins, outs),) = cases
    x, w = ins[0].astype(np.float64), ins[1].astype(np.float64)
    xc = x[..., 0] + 1j * x[..., 1]
    fr = np.stack([xc[:, f * 5 : f * 5 + 10] * w for f in range(7)], 1)
    want = np.fft.fft(fr, axis=-1)
    got = outs[0].astype(np.float64)
    assert got.shape == (2, 7, 10, 2)
    np.testing.assert_allclose(got[..., 0] + 1j * got[..., 1], want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_float32_dft_reference_comes_from_a_float64_twin(tmp_path):
    """ONNX Runtime's float32 DFT of a prime length sums the definition with float32 twiddle
    angles and drifts far from the transform; the reference runs a float64 twin of the model
    instead (numpy.fft in float64 agrees to float32 rounding)."""
    from onnx import helper as oh

    n = 4099  # prime: ONNX Runtime's direct sum
    g = oh.make_graph(
        [oh.make_node("DFT", ["x", "", "axis"], ["y"])],
        "g",
        [oh.make_tensor_value_info("x", TP.FLOAT, [2, n, 1])],
        [oh.make_tensor_value_info("y", TP.FLOAT, [2, n, 2])],
        [onnx.numpy_helper.from_array(np.array(1, np.int64), "axis")],
    )
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 20)])
    m.ir_version = 9
    mp = tmp_path / "m.onnx"
    onnx.save(m, mp)
    req = {"command": "reference", "model_path": str(mp), "out_dir": str(tmp_path / "r")}
    res = reference.make_reference(dict(req, prefix="tpat_d", plugin="d", cases=None, seed=0))
    assert res["cases"] == 1
    _, _, cases = read_all(tmp_path / "r")
    ((_, ins, outs),) = cases
    want = np.fft.fft(ins[0].astype(np.float64)[..., 0], axis=1)
    got = outs[0].astype(np.float64)
    err = np.abs(got[..., 0] + 1j * got[..., 1] - want).max() / np.abs(want).max()
    assert err < 1e-6, err

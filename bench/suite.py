"""TPAT benchmark suite: writes one small one-node ONNX model per case into bench/models/ and the
case list bench/cases.json (model file, op, --ops selector, shapes, minimal-traffic formula).

Usage: python bench/suite.py [--out-dir bench/models] [--cases bench/cases.json]

Data, indices, updates, scales and biases are graph INPUTS (so the models stay a few hundred
bytes); only what an op needs as a constant is an initializer: TopK's K, CumSum's axis, OneHot's
depth and values, Resize's scales, ReduceMax's axes.

Minimal traffic ("code" in cases.json) is a Python expression over the plugin's canonical tensors:
in0, in1, ... are the node's non-constant inputs in node order, out0, out1, ... its outputs;
B(t) = bytes of tensor t (elements * element size), N(t) = its element count,
S(t) = its shape (a tuple). `traffic_bytes(code, inputs, outputs)` (python/tpat_bridge/bench.py) evaluates it;
python/tpat_bridge/bench.py keeps an identical copy so the GPU machine needs nothing from bench/.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
IR_VERSION = 9        # onnxruntime >= 1.16 and onnx >= 1.15 read it

DTYPES = {"float32": TP.FLOAT, "float16": TP.FLOAT16, "int64": TP.INT64}
import sys  # noqa: E402

sys.path.insert(0, str(ROOT / "python"))
from tpat_bridge.bench import traffic_bytes  # noqa: E402,F401  the formula evaluator bench uses




# --------------------------------------------------------------------------------------------
# the cases
# --------------------------------------------------------------------------------------------

def _vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, DTYPES[dtype], list(shape))


def _const(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def _model(case, node, inputs, outputs, inits=(), opset=18):
    graph = helper.make_graph([node], f"tpat_bench_{case}", [_vi(*i) for i in inputs],
                              [_vi(*o) for o in outputs], initializer=list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="tpat-bench-suite")
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m, full_check=True)
    return m


def _case(id, op, model, words, code, notes=""):
    """One cases.json entry; inputs/outputs (canonical order) are read back from the model."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    node = g.node[0]
    types = {vi.name: vi for vi in list(g.input) + list(g.output)}
    name_of = {v: k for k, v in DTYPES.items()}

    def desc(name, canon):
        tt = types[name].type.tensor_type
        return {"name": name, "canonical": canon, "dtype": name_of[tt.elem_type],
                "shape": [d.dim_value for d in tt.shape.dim]}

    ins, k = [], 0
    consts = []
    for n in node.input:
        if not n:
            continue
        if n in inits:
            t = next(t for t in g.initializer if t.name == n)
            consts.append({"name": n, "value": numpy_helper.to_array(t).tolist()})
        else:
            ins.append(desc(n, f"in{k}"))
            k += 1
    outs = [desc(n, f"out{j}") for j, n in enumerate(node.output)]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attrs = {a: (v.decode() if isinstance(v, bytes) else v) for a, v in attrs.items()}
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    entry = {
        "id": id, "model": f"{id}.onnx", "op": op, "select": op, "opset": opset,
        "attributes": attrs, "constants": consts, "inputs": ins, "outputs": outs,
        "traffic": {"words": words, "code": code},
    }
    entry["traffic"]["bytes"] = traffic_bytes(code, [(i["shape"], i["dtype"]) for i in ins],
                                              [(o["shape"], o["dtype"]) for o in outs])
    if notes:
        entry["notes"] = notes
    return entry


def build_suite():
    """Returns [(case id, ModelProto, cases.json entry)]."""
    out = []

    def add(id, op, model, words, code, notes=""):
        out.append((id, model, _case(id, op, model, words, code, notes)))

    # GatherND: (1,128,128,224)[idx (1,600,3)] -> (1,600,224); batch_dims=0, so the 3-tuples
    # index the first three data dims and every tuple gathers one 224-float row.
    m = _model("gathernd",
               helper.make_node("GatherND", ["data", "indices"], ["y"], batch_dims=0),
               [("data", "float32", (1, 128, 128, 224)), ("indices", "int64", (1, 600, 3))],
               [("y", "float32", (1, 600, 224))])
    add("gathernd", "GatherND", m,
        "reads only the gathered rows (= output bytes) and the indices, writes the output; the rest of the table is never touched",
        "B(out0) + B(in1) + B(out0)")

    # ScatterND: 3-tuples index (32,128,128) slots of (32,128,128,256); updates = idx.shape[:-1] +
    # data.shape[3:] = (32,600,256).
    for red, id in (("none", "scatternd"), ("add", "scatternd_add")):
        kw = {} if red == "none" else {"reduction": red}
        m = _model(id,
                   helper.make_node("ScatterND", ["data", "indices", "updates"], ["y"], **kw),
                   [("data", "float32", (32, 128, 128, 256)), ("indices", "int64", (32, 600, 3)),
                    ("updates", "float32", (32, 600, 256))],
                   [("y", "float32", (32, 128, 128, 256))])
        add(id, "ScatterND", m,
            "the output is a new tensor: data read once and written once, plus updates and indices read once"
            + ("" if red == "none" else " (the add's read of the target rows is counted inside the data read)"),
            "B(in0) + B(out0) + B(in1) + B(in2)",
            "indices unique (reduction=none)" if red == "none" else "indices with duplicates on purpose")

    # OneHot: depth 16384, 16 indices -> (16, 16384) float32. depth and values [off, on] are
    # constants (TVM's OneHot converter takes only constant values).
    m = _model("onehot",
               helper.make_node("OneHot", ["indices", "depth", "values"], ["y"], axis=-1),
               [("indices", "int64", (16,))],
               [("y", "float32", (16, 16384))],
               inits=[_const("depth", np.array(16384, dtype=np.int64)),
                      _const("values", np.array([0.0, 1.0], dtype=np.float32))])
    add("onehot", "OneHot", m, "reads the indices, writes the output once",
        "B(in0) + B(out0)")

    # Resize linear x4 (half_pixel) (32,32,44,50) -> (32,32,176,200); scales constant, roi empty.
    m = _model("resize",
               helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear",
                                coordinate_transformation_mode="half_pixel"),
               [("x", "float32", (32, 32, 44, 50))],
               [("y", "float32", (32, 32, 176, 200))],
               inits=[_const("scales", np.array([1, 1, 4, 4], dtype=np.float32))])
    add("resize", "Resize", m, "reads the input once, writes the (16x larger) output once",
        "B(in0) + B(out0)")

    # ReduceMax over axis 1, keepdims: (256,82,128) -> (256,1,128).
    m = _model("reducemax",
               helper.make_node("ReduceMax", ["x", "axes"], ["y"], keepdims=1),
               [("x", "float32", (256, 82, 128))],
               [("y", "float32", (256, 1, 128))],
               inits=[_const("axes", np.array([1], dtype=np.int64))])
    add("reducemax", "ReduceMax", m, "reads the input once, writes the output once",
        "B(in0) + B(out0)")

    # GridSample 5-D trilinear, zeros padding, align_corners=0 (opset 20: N-D GridSample).
    m = _model("gridsample",
               helper.make_node("GridSample", ["x", "grid"], ["y"], mode="linear",
                                padding_mode="zeros", align_corners=0),
               [("x", "float32", (2, 32, 16, 64, 64)), ("grid", "float32", (2, 16, 64, 64, 3))],
               [("y", "float32", (2, 32, 16, 64, 64))], opset=20)
    add("gridsample", "GridSample", m,
        "reads the input volume once (the grid covers it), the grid once, writes the output once",
        "B(in0) + B(in1) + B(out0)")

    # ScatterElements max along axis 1: data (256,4096), idx/updates (256,1024).
    m = _model("scatterelements_max",
               helper.make_node("ScatterElements", ["data", "indices", "updates"], ["y"], axis=1,
                                reduction="max"),
               [("data", "float32", (256, 4096)), ("indices", "int64", (256, 1024)),
                ("updates", "float32", (256, 1024))],
               [("y", "float32", (256, 4096))])
    add("scatterelements_max", "ScatterElements", m,
        "data read once and written once, plus indices and updates read once",
        "B(in0) + B(out0) + B(in1) + B(in2)", "indices with duplicates along the axis on purpose")

    # TopK K=4096 (constant) over the last axis of (8,65536): values + int64 indices.
    m = _model("topk",
               helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=-1, largest=1, sorted=1),
               [("x", "float32", (8, 65536))],
               [("values", "float32", (8, 4096)), ("indices", "int64", (8, 4096))],
               inits=[_const("k", np.array([4096], dtype=np.int64))])
    add("topk", "TopK", m, "reads the input once, writes values and indices once",
        "B(in0) + B(out0) + B(out1)")

    # CumSum along axis 1 (constant axis).
    m = _model("cumsum",
               helper.make_node("CumSum", ["x", "axis"], ["y"]),
               [("x", "float32", (64, 16384))],
               [("y", "float32", (64, 16384))],
               inits=[_const("axis", np.array(1, dtype=np.int64))])
    add("cumsum", "CumSum", m, "reads the input once, writes the output once", "B(in0) + B(out0)")

    # LayerNormalization fp16 over the last axis; scale and bias are inputs.
    m = _model("layernorm",
               helper.make_node("LayerNormalization", ["x", "scale", "bias"], ["y"], axis=-1,
                                epsilon=1e-5),
               [("x", "float16", (8192, 1024)), ("scale", "float16", (1024,)), ("bias", "float16", (1024,))],
               [("y", "float16", (8192, 1024))])
    add("layernorm", "LayerNormalization", m,
        "reads x once, scale and bias once, writes y once (one pass; mean/variance stay on chip)",
        "B(in0) + B(in1) + B(in2) + B(out0)")

    # LayerNormalization fp16 with Mean and InvStdDev (float32) used, as training graphs have it.
    m = _model("layernorm_stats",
               helper.make_node("LayerNormalization", ["x", "scale", "bias"], ["y", "mean", "invstd"],
                                axis=-1, epsilon=1e-5),
               [("x", "float16", (8192, 1024)), ("scale", "float16", (1024,)), ("bias", "float16", (1024,))],
               [("y", "float16", (8192, 1024)), ("mean", "float32", (8192, 1)), ("invstd", "float32", (8192, 1))])
    add("layernorm_stats", "LayerNormalization", m,
        "reads x once, scale and bias once, writes y, mean and invstd once",
        "B(in0) + B(in1) + B(in2) + B(out0) + B(out1) + B(out2)")

    # RMSNormalization (opset 23) fp16 over the last axis, as in LLaMA-style decoders.
    m = _model("rmsnorm",
               helper.make_node("RMSNormalization", ["x", "scale"], ["y"], axis=-1, epsilon=1e-6),
               [("x", "float16", (8192, 4096)), ("scale", "float16", (4096,))],
               [("y", "float16", (8192, 4096))], opset=23)
    add("rmsnorm", "RMSNormalization", m, "reads x once, scale once, writes y once",
        "B(in0) + B(in1) + B(out0)")

    # DFT (opset 20) of a real series, onesided, as the transformers time-series models use it
    # (Autoformer's autocorrelation: rfft over a 720-step window for every batch x channel).
    m = _model("dft",
               helper.make_node("DFT", ["x", "", "axis"], ["y"], onesided=1),
               [("x", "float32", (512, 720, 1))],
               [("y", "float32", (512, 361, 2))], opset=20,
               inits=[_const("axis", np.array(1, dtype=np.int64))])
    add("dft", "DFT", m, "reads the input once, writes the output once", "B(in0) + B(out0)")

    # GELU (erf form) as one node: Gelu, opset 20, approximate='none'.
    m = _model("gelu",
               helper.make_node("Gelu", ["x"], ["y"], approximate="none"),
               [("x", "float16", (8192, 4096))],
               [("y", "float16", (8192, 4096))], opset=20)
    add("gelu", "Gelu", m, "reads the input once, writes the output once", "B(in0) + B(out0)")
    return out


def write_suite(out_dir=ROOT / "bench" / "models", cases_path=ROOT / "bench" / "cases.json"):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for id, model, entry in build_suite():
        onnx.save(model, str(out_dir / f"{id}.onnx"))
        entries.append(entry)
    doc = {
        "format": 1,
        "about": "TPAT benchmark suite (bench/suite.py). traffic.code is a Python expression over "
                 "the plugin's canonical tensors in0.. (non-constant node inputs) and out0..; "
                 "B(t) = bytes, N(t) = elements, S(t) = shape. traffic.bytes is its value for the "
                 "case's shapes.",
        "models_dir": os.path.relpath(out_dir, Path(cases_path).parent),
        "cases": entries,
    }
    Path(cases_path).write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=str(ROOT / "bench" / "models"))
    ap.add_argument("--cases", default=str(ROOT / "bench" / "cases.json"))
    a = ap.parse_args(argv)
    doc = write_suite(a.out_dir, a.cases)
    for c in doc["cases"]:
        print(f"{c['id']:22s} {c['op']:20s} {c['traffic']['bytes'] / 1e6:10.2f} MB  {c['model']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""If nodes folded before selection (python/tpat_bridge/planning/fold_if.py, `tpat generate`).

The patterns are the real models' (scripts/real_models): torch-geometric's GAT checks
`edge_index.dim() == 0`, an If on Equal(Size(Shape(x)), 0) whose branches give different ranks,
so ONNX's shape inference gives its output no rank and the ScatterElements reading it could not
be cut out (`extraction_failed` / `unknown_rank`); an If whose branch holds a NonZero keeps a
data-dependent shape out of TensorRT's top-level scope. torchvision's SSD checks
`boxes.numel() == 0`, a condition that depends on data: that If stays, and is reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

from tpat_bridge.planning import fold_if  # noqa: E402
from tpat_bridge.tools import verify_model as vm  # noqa: E402

OPSET = [helper.make_opsetid("", 17)]


def _rank_cond(prefix, x):
    """Equal(Size(Shape(x)), 0): "x is a scalar", false for any x of rank >= 1 (torch's `x.dim() == 0`)."""
    return [
        helper.make_node("Shape", [x], [f"{prefix}_shape"], name=f"{prefix}/Shape"),
        helper.make_node("Size", [f"{prefix}_shape"], [f"{prefix}_rank"], name=f"{prefix}/Size"),
        helper.make_node("Equal", [f"{prefix}_rank", "zero"], [f"{prefix}_cond"], name=f"{prefix}/Equal"),
    ]


def gat_like() -> onnx.ModelProto:
    """data [6, 4] -> If (then: Reshape to 1-D, else: Identity) -> ScatterElements(add) of
    updates [3, 4] at indices [3, 4] (updates smaller than the data), then a second If on the
    rank of the first If's output (typed only once the first is folded) and a Relu."""
    then1 = helper.make_graph(
        [helper.make_node("Reshape", ["data", "flat"], ["t1"], name="then/Reshape")],
        "then1",
        [],
        [helper.make_tensor_value_info("t1", TensorProto.FLOAT, None)],
    )
    else1 = helper.make_graph(
        [helper.make_node("Identity", ["data"], ["e1"], name="else/Identity")],
        "else1",
        [],
        [helper.make_tensor_value_info("e1", TensorProto.FLOAT, None)],
    )
    # the second If's branches reuse the first's inner names: inlining must rename them
    then2 = helper.make_graph(
        [helper.make_node("Reshape", ["scattered", "flat"], ["t1"], name="then/Reshape")],
        "then2",
        [],
        [helper.make_tensor_value_info("t1", TensorProto.FLOAT, None)],
    )
    else2 = helper.make_graph(
        [helper.make_node("Identity", ["scattered"], ["e1"], name="else/Identity")],
        "else2",
        [],
        [helper.make_tensor_value_info("e1", TensorProto.FLOAT, None)],
    )
    nodes = (
        _rank_cond("c1", "data")
        + [helper.make_node("If", ["c1_cond"], ["if1"], name="If_1", then_branch=then1, else_branch=else1)]
        + [
            helper.make_node(
                "ScatterElements", ["if1", "indices", "updates"], ["scattered"], name="Scatter", axis=0, reduction="add"
            )
        ]
        + _rank_cond("c2", "scattered")
        + [
            helper.make_node("If", ["c2_cond"], ["if2"], name="If_2", then_branch=then2, else_branch=else2),
            helper.make_node("Relu", ["if2"], ["y"], name="Relu"),
        ]
    )
    g = helper.make_graph(
        nodes,
        "gat_like",
        [
            helper.make_tensor_value_info("data", TensorProto.FLOAT, [6, 4]),
            helper.make_tensor_value_info("indices", TensorProto.INT64, [3, 4]),
            helper.make_tensor_value_info("updates", TensorProto.FLOAT, [3, 4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6, 4])],
        initializer=[
            numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat"),
        ],
    )
    m = helper.make_model(g, opset_imports=OPSET, producer_name="tpat-test")
    m.ir_version = 8
    return m


def if_nonzero(data_dependent_condition: bool = False) -> onnx.ModelProto:
    """An If whose else branch holds a NonZero. The condition is x's rank == 0 (static: folds),
    or, with `data_dependent_condition`, ReduceSum(x) > 0 (stays)."""
    then_b = helper.make_graph(
        [
            helper.make_node(
                "Constant", [], ["empty"], name="then/Empty", value=numpy_helper.from_array(np.zeros((1, 0), np.int64))
            )
        ],
        "then",
        [],
        [helper.make_tensor_value_info("empty", TensorProto.INT64, None)],
    )
    else_b = helper.make_graph(
        [helper.make_node("NonZero", ["x"], ["nz"], name="else/NonZero")],
        "else",
        [],
        [helper.make_tensor_value_info("nz", TensorProto.INT64, None)],
    )
    if data_dependent_condition:
        cond = [
            helper.make_node("ReduceSum", ["x"], ["s"], name="Sum", keepdims=0),
            helper.make_node("Greater", ["s", "fzero"], ["c1_cond"], name="Greater"),
        ]
    else:
        cond = _rank_cond("c1", "x")
    g = helper.make_graph(
        cond + [helper.make_node("If", ["c1_cond"], ["idx"], name="If", then_branch=then_b, else_branch=else_b)],
        "if_nonzero",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16])],
        [helper.make_tensor_value_info("idx", TensorProto.INT64, [1, "n"])],
        initializer=[
            numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
            numpy_helper.from_array(np.array(0, dtype=np.float32), "fzero"),
        ],
    )
    m = helper.make_model(g, opset_imports=OPSET, producer_name="tpat-test")
    m.ir_version = 8
    return m


def _run(model, feeds):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)


def _feeds(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "data": rng.standard_normal((6, 4)).astype(np.float32),
        "indices": rng.integers(0, 6, size=(3, 4)).astype(np.int64),
        "updates": rng.standard_normal((3, 4)).astype(np.float32),
    }


def test_shape_inference_loses_the_rank_without_folding():
    from tpat_bridge.planning.shapes import infer_model

    inferred, _ = infer_model(gat_like())
    types = {vi.name: vi for vi in inferred.graph.value_info}
    assert "if1" not in types or not types["if1"].type.tensor_type.HasField("shape")


def test_gat_pattern_folds_both_ifs_and_computes_the_same():
    model = gat_like()
    folded, notes, kept = fold_if.fold(onnx.load_from_string(model.SerializeToString()))
    assert [(n["node"], n["branch"], n["condition"]) for n in notes] == [
        ("If_1", "else_branch", False),
        ("If_2", "else_branch", False),
    ]
    assert kept == []
    assert not any(n.op_type == "If" for n in folded.graph.node)
    onnx.checker.check_model(folded)
    names = [o for n in folded.graph.node for o in n.output]
    assert len(names) == len(set(names))  # the second If's inner "e1" did not collide
    from tpat_bridge.planning.shapes import infer_model

    inferred, _ = infer_model(folded)
    types = {vi.name: vi for vi in inferred.graph.value_info}
    assert [d.dim_value for d in types["if1"].type.tensor_type.shape.dim] == [6, 4]
    for seed in range(3):
        want, got = _run(model, _feeds(seed)), _run(folded, _feeds(seed))
        np.testing.assert_array_equal(want[0], got[0])


def test_then_branch_taken_and_outer_tensor_output_gets_an_identity():
    model = gat_like()
    # rank 0 -> then; make the condition "rank != 0" so that then_branch is taken
    eq = next(n for n in model.graph.node if n.name == "c1/Equal")
    eq.op_type = "Greater"  # rank 2 > 0: true
    then1 = next(a.g for a in model.graph.node[3].attribute if a.name == "then_branch")
    then1.output[0].name = "data"  # the branch returns an outer tensor as is
    del then1.node[:]
    folded, notes, _ = fold_if.fold(onnx.load_from_string(model.SerializeToString()))
    assert notes[0]["branch"] == "then_branch" and notes[0]["nodes"] == 0
    ident = [n for n in folded.graph.node if n.op_type == "Identity" and n.output[0] == "if1"]
    assert len(ident) == 1 and ident[0].input[0] == "data"
    f = _feeds()  # ONNX Runtime refuses the original (a branch returning an outer tensor): numpy
    want = f["data"].copy()
    for i in range(3):
        for j in range(4):
            want[f["indices"][i, j], j] += f["updates"][i, j]
    np.testing.assert_allclose(_run(folded, f)[0], np.maximum(want, 0), rtol=1e-6)


def test_data_dependent_condition_stays_and_names_the_nonzero():
    folded, notes, kept = fold_if.fold(if_nonzero(data_dependent_condition=True))
    assert notes == []
    assert len(kept) == 1 and kept[0]["node"] == "If"
    assert kept[0]["data_dependent"] == [{"node": "If > else_branch > else/NonZero", "op": "NonZero"}]
    assert "graph input 'x'" in kept[0]["depends_on"]


def test_bridge_command_writes_only_when_folded(tmp_path):
    src = tmp_path / "m.onnx"
    onnx.save(if_nonzero(), src)
    out = tmp_path / "folded.onnx"
    r = fold_if.fold_ifs({"model_path": str(src), "out_path": str(out)})
    assert r["written"] and out.exists() and r["folded"][0]["branch"] == "else_branch"
    onnx.save(if_nonzero(data_dependent_condition=True), src)
    out2 = tmp_path / "kept.onnx"
    r = fold_if.fold_ifs({"model_path": str(src), "out_path": str(out2)})
    assert not r["written"] and not out2.exists() and r["kept"]
    import jsonschema

    schema = json.loads((ROOT / "schemas" / "bridge.schema.json").read_text())
    jsonschema.validate(r, {"$ref": "#/$defs/foldIfsResult", "$defs": schema["$defs"]})


def _tpat():
    tpat = ROOT / ".build" / "debug" / "tpat"
    if not tpat.exists():
        pytest.fail(f"{tpat} is missing: run `swift build` (make test builds it)")
    return str(tpat)


def _generate(model, tmp_path):
    src = tmp_path / "model" / "m.onnx"
    src.parent.mkdir()
    onnx.save(model, src)
    out = tmp_path / "out"
    r = subprocess.run(
        [_tpat(), "generate", str(src), "--auto", "-o", str(out)], capture_output=True, text=True, timeout=900
    )
    return src, out, r


def test_generate_folds_the_if_and_converts_the_scatter(tmp_path):
    src, out, r = _generate(gat_like(), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "If 'If_1' folded into its else_branch" in r.stdout
    report = json.loads((out / "tpat-generate.json").read_text())
    assert [p["opType"] for p in report["plugins"]] == ["ScatterElements"], report
    assert report["failures"] == []
    assert len(report["rewrites"]) == 2
    rewritten = onnx.load(str(out / "m.onnx"))
    assert not any(n.op_type == "If" for n in rewritten.graph.node)
    v = vm.verify_model(str(out), cpu=True, original=str(src))
    assert v["ok"], v
    assert v["pluginNodes"] == 1 and v["firstMismatch"] is None


def test_generate_lifts_nonzero_to_the_top_level(tmp_path):
    src, out, r = _generate(if_nonzero(), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((out / "tpat-generate.json").read_text())
    assert [p["opType"] for p in report["plugins"]] == ["NonZero"], report
    rewritten = onnx.load(str(out / "m.onnx"))
    assert "If" not in [n.op_type for n in rewritten.graph.node]
    plugin = [n for n in rewritten.graph.node if n.domain == "tpat"]  # in the top-level graph
    assert len(plugin) == 1 and plugin[0].op_type.startswith("NonZero")
    v = vm.verify_model(str(out), cpu=True, original=str(src))
    assert v["ok"], v


def test_generate_warns_when_a_data_dependent_if_stays(tmp_path):
    _, out, r = _generate(if_nonzero(data_dependent_condition=True), tmp_path)
    text = r.stdout + r.stderr
    assert "If 'If' stays (its condition depends on graph input 'x')" in text, text
    assert "only in the top-level graph" in text

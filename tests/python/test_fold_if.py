"""If nodes folded before selection (python/tpat_bridge/planning/fold_if.py, `tpat generate`).

The patterns are the real models' (scripts/real_models): torch-geometric's GAT checks
`edge_index.dim() == 0`, an If on Equal(Size(Shape(x)), 0) whose branches give different ranks,
so ONNX's shape inference gives its output no rank and the ScatterElements reading it could not
be cut out (`extraction_failed` / `unknown_rank`); an If whose branch holds a NonZero keeps a
data-dependent shape out of TensorRT's top-level scope. torchvision's SSD checks
`boxes.numel() == 0`, a condition that depends on data: that If stays, and is reported."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

from tpat_bridge.planning import fold_if  # noqa: E402
from tpat_bridge.tools import verify_model as vm  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "make_selection_fixtures", ROOT / "scripts" / "make_selection_fixtures.py"
)
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)
gat_like, if_nonzero = fixtures.if_fold_scatter, fixtures.if_fold_nonzero


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

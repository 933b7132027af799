"""The committed fixture models are what scripts/make_fixtures.py builds, and they are sound."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import onnx
import pytest

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "tests" / "fixtures" / "models"
DEMO = REPO / "examples" / "demo.onnx"
RULES = json.loads(
    (REPO / "Sources" / "TPATCore" / "Selection" / "Resources" / "tensorrt10-onnx-operators.json").read_text()
)
EXPECTED = json.loads((MODELS / "expected-verdicts.json").read_text())


def load_script():
    spec = importlib.util.spec_from_file_location("make_fixtures", REPO / "scripts" / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("fixtures")
    mod = load_script()
    assert mod.main(["--out-dir", str(out / "models"), "--examples-dir", str(out / "examples"), "--skip-ort"]) == 0
    return out


def test_fixtures_up_to_date(regenerated):
    fresh = sorted(p.name for p in (regenerated / "models").iterdir())
    committed = {p.name for p in MODELS.iterdir()}
    assert set(fresh) <= committed, "run scripts/make_fixtures.py"
    for name in fresh:
        assert (regenerated / "models" / name).read_bytes() == (MODELS / name).read_bytes(), (
            f"{name} is stale: run scripts/make_fixtures.py"
        )
    assert (regenerated / "examples" / "demo.onnx").read_bytes() == DEMO.read_bytes(), (
        "examples/demo.onnx is stale: run scripts/make_fixtures.py"
    )


def test_sizes(regenerated):
    for p in (regenerated / "models").iterdir():
        assert (MODELS / p.name).stat().st_size < 50 * 1024, p.name
    assert DEMO.stat().st_size < 100 * 1024


def test_expected_verdicts_name_existing_nodes():
    assert set(EXPECTED) <= {p.name for p in MODELS.glob("*.onnx")}
    assert len(EXPECTED) >= 6
    for fname, verdicts in EXPECTED.items():
        model = onnx.load(str(MODELS / fname), load_external_data=False)
        names = [n.name for n in model.graph.node]
        assert len(set(names)) == len(names) and all(names), fname
        assert set(verdicts) <= set(names), (fname, sorted(set(verdicts) - set(names)))
        # every node carries an intended verdict
        assert set(verdicts) == set(names), (fname, sorted(set(names) - set(verdicts)))


def test_expected_verdicts_are_well_formed():
    for fname, verdicts in EXPECTED.items():
        model = onnx.load(str(MODELS / fname), load_external_data=False)
        nodes = {n.name: n for n in model.graph.node}
        for node_name, v in verdicts.items():
            assert set(v) == {"verdict", "rule"}, (fname, node_name)
            assert v["verdict"] in ("supported", "restricted", "unsupported")
            node = nodes[node_name]
            rule = v["rule"]
            if v["verdict"] != "unsupported":
                assert rule is None, (fname, node_name)
                assert node.domain in ("", "ai.onnx")
                assert RULES["ops"][node.op_type]["status"] == "supported", (fname, node_name)
                continue
            if rule == "op":
                assert node.domain not in ("", "ai.onnx") or RULES["ops"][node.op_type]["status"] == "unsupported"
            elif rule == "dtype":
                assert RULES["ops"][node.op_type]["status"] == "supported"
            else:
                ids = [r["id"] for r in RULES["ops"][node.op_type]["restrictions"]]
                assert rule in ids, (fname, node_name, rule)


def test_intended_cases_present():
    basic = EXPECTED["verdicts_basic.onnx"]
    assert basic["scatternd_add"] == {"verdict": "unsupported", "rule": "ScatterND.reduction"}
    assert basic["topk_k4096"]["rule"] == "TopK.K"
    # The table says `sorted` must be 1; onnxOpImporters.cpp never reads it (issue 13).
    assert basic["topk_unsorted"] == {"verdict": "restricted", "rule": None}
    assert basic["gridsample_5d"]["rule"] == "GridSample.rank"
    assert basic["gridsample_4d"]["verdict"] == "restricted"
    assert basic["cumsum_input_axis"]["rule"] == "CumSum.axis"
    assert basic["layernorm_mean"]["rule"] == "LayerNormalization.Mean"
    ops = EXPECTED["verdicts_unsupported_ops.onnx"]
    assert {v["rule"] for v in ops.values()} == {"op"} and len(ops) == 8
    assert EXPECTED["verdicts_custom_domain.onnx"]["custom_op"]["rule"] == "op"
    assert EXPECTED["verdicts_dtypes.onnx"]["mod_uint8"]["rule"] == "dtype"
    assert EXPECTED["verdicts_dtypes.onnx"]["scatterelements_bool"]["rule"] == "dtype"


@pytest.mark.parametrize("fname", sorted(EXPECTED))
def test_models_check(fname):
    path = MODELS / fname
    model = onnx.load(str(path))
    known = all(o.domain in ("", "ai.onnx") for o in model.opset_import)
    onnx.checker.check_model(str(path), full_check=known)


def test_symbolic_shapes_and_data_prop():
    model = onnx.load(str(MODELS / "symbolic.onnx"))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "seq", 64]

    def shapes(data_prop):
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=data_prop)
        return {
            v.name: [
                d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else None)
                for d in v.type.tensor_type.shape.dim
            ]
            for v in inferred.graph.value_info
        }

    plain = shapes(False)
    assert plain["act"] == ["batch", "seq", 32]
    assert plain["scattered"] == ["batch", "seq", 32]
    assert len(plain["heads"]) == 4 and plain["heads"] != ["batch", "seq", 4, 8]
    assert shapes(True)["heads"] == ["batch", "seq", 4, 8]


def test_external_data():
    path = MODELS / "external_data.onnx"
    raw = onnx.load(str(path), load_external_data=False)
    ext = [t for t in raw.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert ext and all({e.key: e.value for e in t.external_data}["location"] == "external_data.bin" for t in ext)
    full = onnx.load(str(path))
    sizes = [onnx.numpy_helper.to_array(t).nbytes for t in full.graph.initializer]
    assert max(sizes) >= 1024
    assert (MODELS / "external_data.bin").stat().st_size == sum(sizes)


def test_demo_has_unsupported_nodes():
    mod = load_script()
    model = onnx.load(str(DEMO))
    names = {n.name: n for n in model.graph.node}
    assert set(mod.DEMO_UNSUPPORTED) <= set(names)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    onnx.checker.check_model(str(DEMO), full_check=True)


def test_onnxruntime_runs_fixtures():
    pytest.importorskip("onnxruntime")
    mod = load_script()
    for fname, builder, _expect, ort_ok in mod.FIXTURES:
        if not ort_ok:
            continue
        _model, feeds = builder()
        mod.run_ort(MODELS / fname, feeds)
    _model, feeds = mod.build_demo()
    mod.run_ort(DEMO, feeds)

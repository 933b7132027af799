"""Issue 13's selection pieces on the Python side: the three rule sets (TensorRT 10.x, 11.x,
TensorRT-RTX 1.7) and their regeneration, the whole-model parser probe, and the shape answer's
ONNX-checker and non-tensor fields. Fixture models: scripts/make_selection_fixtures.py."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import onnx
import onnx.defs
import pytest

REPO = Path(__file__).resolve().parents[2]
RES = REPO / "Sources" / "TPATCore" / "Selection" / "Resources"
FILES = {
    "10": RES / "tensorrt10-onnx-operators.json",
    "11": RES / "tensorrt11-onnx-operators.json",
    "rtx": RES / "tensorrt-rtx-onnx-operators.json",
}
SCHEMA = json.loads((REPO / "schemas" / "trt-rules.schema.json").read_text())
BRIDGE_SCHEMA = json.loads((REPO / "schemas" / "bridge.schema.json").read_text())
MODELS = REPO / "tests" / "fixtures" / "models"


def _module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


trt_rules = _module("trt_rules", REPO / "scripts" / "trt_rules.py")


@pytest.fixture(scope="module")
def rules():
    return {k: json.loads(p.read_text()) for k, p in FILES.items()}


def restriction(op, rid):
    found = [r for r in op.get("restrictions", []) if r["id"] == rid]
    return found[0] if found else None


def has_rtx():
    try:
        import tensorrt_rtx_bindings  # noqa: F401

        return True
    except Exception:  # noqa: BLE001
        return False


def rtx_env():
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    env["LD_LIBRARY_PATH"] = f"{REPO / '.venv' / 'tpat-lib'}:{env.get('LD_LIBRARY_PATH', '')}"
    return env


# --- rule sets ------------------------------------------------------------------------------------
@pytest.mark.parametrize("flavour", ["10", "11", "rtx"])
def test_rule_sets_validate_and_cover_every_op(rules, flavour):
    r = rules[flavour]
    errors = list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(r))
    assert not errors, [e.message[:200] for e in errors[:5]]
    expected = {
        s.name
        for s in onnx.defs.get_all_schemas_with_history()
        if s.domain in ("", "ai.onnx") and s.since_version <= r["maxOpset"]
    }
    assert expected <= set(r["ops"])
    # Every rule that is not the base table's names where it comes from.
    if flavour != "10":
        assert r["source"]["notes"]


def test_schema_rejects_a_source_that_is_not_text(rules):
    bad = copy.deepcopy(rules["11"])
    bad["ops"]["Attention"]["source"] = 3
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(bad)
    bad = copy.deepcopy(rules["11"])
    bad["ops"]["Attention"]["restrictions"][0]["kind"] = "inputAbsentish"
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(bad)


def test_tensorrt11_imports_what_10_rejects(rules):
    o10, o11 = rules["10"]["ops"], rules["11"]["ops"]
    for op in [
        "Attention",
        "RMSNormalization",
        "RotaryEmbedding",
        "TensorScatter",
        "Swish",
        "STFT",
        "BlackmanWindow",
        "HannWindow",
        "HammingWindow",
    ]:
        assert o10[op]["status"] == "unsupported", op
        assert o11[op]["status"] == "supported", op
        assert o11[op]["source"], op
    assert "INT64" in o11["Pow"]["types"] and "INT64" not in o10["Pow"]["types"]
    assert restriction(o10["CumSum"], "CumSum.axis")["kind"] == "inputConstant"
    assert restriction(o11["CumSum"], "CumSum.axis") is None and "dd0a3a9" in o11["CumSum"]["source"]
    for op in ("Squeeze", "Unsqueeze"):
        assert restriction(o11[op], f"{op}.axes")["kind"] == "note"
    for op in ("Slice", "Pad"):
        assert restriction(o11[op], f"{op}.axes") is None
    assert restriction(o11["Attention"], "Attention.past_key") == {
        "id": "Attention.past_key",
        "kind": "inputAbsent",
        "input": 4,
        "text": "`past_key` is unsupported",
    }
    # STFT: a real signal only (last dim 1), checked, not a note: a complex STFT becomes a plugin
    for f in ("11", "rtx"):
        real = restriction(rules[f]["ops"]["STFT"], "STFT.real")
        assert real["kind"] == "inputLastDimIn" and real["input"] == 0 and real["dims"] == [1], f
    # The window ops take an int64 size: their type check is on the output.
    assert o11["HannWindow"]["typeInputs"] == [] and o11["HannWindow"]["typeOutputs"] == [0]


def test_tensorrt11_rules_come_from_the_table_tensorrt_11_1_pins(rules):
    r11 = rules["11"]
    assert r11["source"]["commit"] == trt_rules.COMMIT_111
    ops = r11["ops"]
    assert {"INT8", "FP8"} <= set(ops["Attention"]["types"]) and "FP4" in ops["DequantizeLinear"]["types"]
    assert "7c51a63" in ops["Swish"]["source"] and "issue 13" not in ops["Swish"]["source"]
    # check11 parses onnx-tensorrt's markdown matrix and names differences no cited override explains.
    table = (
        "| Operator | Supported | Supported Types | Restrictions |\n|---|---|---|---|\n"
        "| Swish                     | Y          | FP32, FP16, BF16 |\n"
        "| Clip | Y | FP32, FP16, BF16 |  |\n"
        "| BitShift | N |\n"
    )
    assert trt_rules.parse_operators_md(table)["BitShift"] == (False, [])
    assert trt_rules.check_11(r11, table) == []
    assert trt_rules.check_11(r11, table.replace("| Swish                     | Y", "| Swish | N")) == [
        "Swish: status supported vs table N"
    ]
    assert trt_rules.check_11(r11, table + "| Abs | Y | FP32 |\n") == [
        f"Abs: types {ops['Abs']['types']} vs table ['FP32']"
    ]


def test_importer_overrides_apply_to_every_flavour(rules):
    for f in ("10", "11"):
        ops = rules[f]["ops"]
        assert "BOOL" in ops["NonZero"]["types"]
        assert {"INT32", "INT64"} <= set(ops["Clip"]["types"])
        assert restriction(ops["TopK"], "TopK.sorted") is None
        assert restriction(ops["MaxPool"], "MaxPool.rank")["ranks"] == [3, 4, 5]


def test_rtx_rules_record_what_its_parser_does(rules):
    ops = rules["rtx"]["ops"]
    assert rules["rtx"]["source"]["commit"] is None and "TensorRT-RTX" in rules["rtx"]["source"]["tensorrt"]
    for op in ("RoiAlign", "NonZero", "DeformConv"):  # the 11.x table imports them; TensorRT-RTX does not
        assert rules["11"]["ops"][op]["status"] == "supported"
        assert ops[op]["status"] == "unsupported", op
        assert "TensorRT-RTX" in ops[op]["reason"] and "test_" in ops[op]["source"]
    se = restriction(ops["ScatterElements"], "ScatterElements.reduction")
    assert se["allowed"] == ["none"] and se["default"] == "none" and "Unsupported reduction type" in se["text"]
    assert 5 in restriction(ops["GridSample"], "GridSample.rank")["ranks"]
    assert restriction(ops["TopK"], "TopK.K")["limit"] > 4096
    assert restriction(ops["TensorScatter"], "TensorScatter.mode")["allowed"] == ["linear"]


def test_generated_files_are_what_the_script_writes(rules):
    r10 = trt_rules.build_10()
    assert trt_rules.dumps(r10) == FILES["10"].read_text()
    assert trt_rules.dumps(trt_rules.build_11(r10)) == FILES["11"].read_text()


@pytest.mark.skipif(not has_rtx(), reason="TensorRT-RTX is not installed")
def test_rtx_file_is_what_the_probe_gives():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, 'scripts'); import trt_rules as t; "
            "sys.stdout.write(t.dumps(t.build_rtx(t.build_11(t.build_10()))))",
        ],
        cwd=REPO,
        env=rtx_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == FILES["rtx"].read_text(), "run scripts/trt_rules.py rtx"


def test_violates_explains_rejections_by_the_base_rule():
    op = {
        "types": ["FP32"],
        "restrictions": [
            {"id": "X.o", "kind": "outputUnused", "output": 1},
            {"id": "X.a", "kind": "attributeIn", "attribute": "mode", "allowed": ["a"], "default": "a"},
        ],
    }
    base = {"dtype": "FP32", "outputs": 1, "inputs": 1, "rank": 2, "attrs": {}, "lists": {}}
    assert trt_rules.violates(op, base) is None
    assert trt_rules.violates(op, {**base, "dtype": "INT8"}) == "dtype"
    assert trt_rules.violates(op, {**base, "outputs": 2}) == "X.o"
    assert trt_rules.violates(op, {**base, "attrs": {"mode": "b"}}) == "X.a"


def test_fixtures_are_what_the_script_builds(tmp_path):
    mod = _module("make_selection_fixtures", REPO / "scripts" / "make_selection_fixtures.py")
    mod.main(["x", str(tmp_path)])
    for name in mod.FIXTURES:
        assert (tmp_path / name).read_bytes() == (MODELS / name).read_bytes(), (
            f"{name}: run scripts/make_selection_fixtures.py"
        )


# --- the bridge ------------------------------------------------------------------------------------
def ask(request):
    p = subprocess.run(
        [sys.executable, "-m", "tpat_bridge"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=rtx_env(),
        timeout=600,
    )
    assert p.returncode == 0, p.stderr
    answer = json.loads(p.stdout)
    jsonschema.Draft202012Validator({"$ref": "#/$defs/answer", "$defs": BRIDGE_SCHEMA["$defs"]}).validate(answer)
    assert answer["ok"], answer
    return answer["result"]


@pytest.mark.skipif(not has_rtx(), reason="TensorRT-RTX is not installed")
def test_whole_model_probe_cuts_out_rejected_nodes():
    r = ask({"command": "probe", "model_path": str(MODELS / "select_probe.onnx")})
    assert r["mode"] == "whole-model"
    by = {n["node"]: n for n in r["nodes"]}
    assert {n for n, x in by.items() if not x["imported"]} == {"nonzero", "col2im"}
    assert r["parses"] == 3  # one per rejected node, one that succeeds
    assert "NonZero" in by["nonzero"]["error"]
    assert by["col2im"]["error"]  # never the bare "false" the parser gives
    assert by["col2im"]["error"] != "false"


@pytest.mark.skipif(not has_rtx(), reason="TensorRT-RTX is not installed")
def test_probe_falls_back_to_one_node_at_a_time_when_a_cut_is_impossible():
    # SplitToSequence's output is a sequence: it cannot become a graph input of the cut model.
    r = ask({"command": "probe", "model_path": str(MODELS / "select_sequence.onnx")})
    assert r["mode"] == "whole-model+per-node"
    by = {n["node"]: n["imported"] for n in r["nodes"]}
    assert by == {"split_seq": False, "seq_at_0": False, "seq_at_1": False, "relu_second": True}


@pytest.mark.skipif(not has_rtx(), reason="TensorRT-RTX is not installed")
def test_probe_gives_a_body_holder_the_outer_scope_tensors_its_bodies_read():
    # The If's then-branch reads `data`, `idx`, `upd` from the outer graph: probed alone, the If
    # gets them as inputs, so the parser's answer is about the body's ScatterND, not a missing input.
    r = ask({"command": "probe", "model_path": str(MODELS / "select_body_convert.onnx")})
    by = {n["node"]: n for n in r["nodes"]}
    assert not by["if_node"]["imported"] and "ScatterND" in by["if_node"]["error"]
    assert by["loop"]["imported"]


def test_shapes_report_checker_and_non_tensor_values():
    bad = ask({"command": "infer_shapes", "model_path": str(MODELS / "select_checker.onnx")})
    assert "not_an_attribute" in bad["checker"]
    good = ask({"command": "infer_shapes", "model_path": str(MODELS / "select_shape_feed.onnx")})
    assert good["checker"] is None and good["non_tensor"] == []
    seq = ask({"command": "infer_shapes", "model_path": str(MODELS / "select_sequence.onnx")})
    assert seq["non_tensor"] == [{"name": "parts", "kind": "sequence"}]

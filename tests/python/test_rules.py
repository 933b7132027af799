"""Checks on Sources/TPATCore/Selection/Resources/tensorrt10-onnx-operators.json (the TensorRT 10.x verdict rules as data)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path

import jsonschema
import onnx.defs
import pytest

REPO = Path(__file__).resolve().parents[2]
RULES_PATH = REPO / "Sources" / "TPATCore" / "Selection" / "Resources" / "tensorrt10-onnx-operators.json"
SCHEMA_PATH = REPO / "schemas" / "trt-rules.schema.json"
SOURCE_SHA = "96e781103cfc4adf4a6bb557e94bac8e693f6f4c"
# Optional local mirror of onnx/onnx-tensorrt, used to cross-check against the table itself.
MIRROR = Path("/work/.mirror/onnx+onnx-tensorrt/repo")
# Entries of the table that are not (or no longer) ONNX default-domain operators.
NON_STANDARD = {"ImageScaler", "ParametricSoftplus", "ScaledTanh"}


@pytest.fixture(scope="module")
def rules():
    return json.loads(RULES_PATH.read_text())


@pytest.fixture(scope="module")
def ops(rules):
    return rules["ops"]


def default_domain_ops(max_opset):
    return sorted(
        {
            s.name
            for s in onnx.defs.get_all_schemas_with_history()
            if s.domain in ("", "ai.onnx") and s.since_version <= max_opset
        }
    )


def restriction(ops, rid):
    op = rid.split(".", 1)[0]
    found = [r for r in ops[op].get("restrictions", []) if r["id"] == rid]
    assert len(found) == 1, rid
    return found[0]


def test_schema_is_valid_draft_2020_12():
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_rules_validate_against_schema(rules):
    schema = json.loads(SCHEMA_PATH.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(rules), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message[:300]}" for e in errors[:10])


def test_schema_is_strict(rules):
    schema = json.loads(SCHEMA_PATH.read_text())
    v = jsonschema.Draft202012Validator(schema)

    bad = copy.deepcopy(rules)
    bad["extra"] = 1
    assert not v.is_valid(bad)
    bad = copy.deepcopy(rules)
    bad["ops"]["TopK"]["restrictions"][0]["unknownParam"] = 1
    assert not v.is_valid(bad)
    bad = copy.deepcopy(rules)
    bad["ops"]["TopK"]["restrictions"][0]["kind"] = "someNewKind"
    assert not v.is_valid(bad)
    bad = copy.deepcopy(rules)
    del bad["ops"]["Relu"]["types"]
    assert not v.is_valid(bad)
    bad = copy.deepcopy(rules)
    bad["ops"]["Relu"]["types"] = ["INF64"]
    assert not v.is_valid(bad)
    bad = copy.deepcopy(rules)
    del bad["ops"]["Col2Im"]["reason"]
    assert not v.is_valid(bad)


def test_source(rules):
    assert rules["source"] == {
        "repository": "onnx/onnx-tensorrt",
        "path": "docs/operators.md",
        "commit": SOURCE_SHA,
        "tensorrt": "10.x",
    }
    # Ops where the importers override the table say so (scripts/trt_rules.py, IMPORTER_10).
    overridden = {name for name, op in rules["ops"].items() if "source" in op}
    assert overridden == {"NonZero", "Clip", "AveragePool", "MaxPool", "TopK"}
    for name in overridden:
        assert "@ 96e7811 L" in rules["ops"][name]["source"], name
    assert rules["maxOpset"] == 24


def test_every_default_domain_op_is_covered(rules, ops):
    expected = default_domain_ops(rules["maxOpset"])
    assert len(expected) > 150
    missing = [op for op in expected if op not in ops]
    assert not missing, missing
    for op in NON_STANDARD | {"Upsample", "Scatter"}:
        assert op in ops, op
    unknown = sorted(set(ops) - set(expected) - NON_STANDARD)
    assert not unknown, unknown


def test_entries_are_complete(ops):
    for name, op in ops.items():
        if op["status"] == "supported":
            assert op["types"], name
            assert "INF64" not in op["types"], name
            assert "reason" not in op, name
        else:
            assert op["reason"].strip(), name
            assert "types" not in op and "restrictions" not in op, name


def test_restriction_ids_unique_and_texts_nonempty(ops):
    seen = set()
    for name, op in ops.items():
        for r in op.get("restrictions", []):
            assert r["id"].startswith(name + "."), r["id"]
            assert r["id"] not in seen, r["id"]
            seen.add(r["id"])
            assert r["text"].strip(), r["id"]


def test_ops_not_in_table_are_unsupported(ops):
    for name in ["Attention", "RMSNormalization", "RotaryEmbedding", "TensorScatter", "Swish"]:
        assert ops[name]["status"] == "unsupported", name
        assert ops[name]["reason"] == "not in the TensorRT 10.x operator table"
    assert ops["Gelu"]["status"] == "supported"


@pytest.mark.parametrize("name", ["Col2Im", "MaxUnpool", "BitShift", "BitwiseAnd", "Unique", "Compress", "DFT", "Det"])
def test_marked_n_ops_unsupported(ops, name):
    assert ops[name]["status"] == "unsupported"
    assert "marked N" in ops[name]["reason"]


def test_scatternd_reduction(ops):
    r = restriction(ops, "ScatterND.reduction")
    assert r["kind"] == "attributeIn" and r["attribute"] == "reduction"
    assert r["allowed"] == ["none"] and r["default"] == "none"


def test_topk(ops):
    k = restriction(ops, "TopK.K")
    assert k["kind"] == "inputConstantBelow" and k["input"] == 1 and k["limit"] == 3840
    # The table says `sorted` must be 1; the importer never reads it (results come sorted).
    assert not [r for r in ops["TopK"]["restrictions"] if r["id"] == "TopK.sorted"]


def test_gridsample_rank_4(ops):
    r = restriction(ops, "GridSample.rank")
    assert r["kind"] == "inputRankIn" and r["input"] == 0 and r["ranks"] == [4]
    assert ops["GridSample"]["types"] == ["FP32", "FP16"]


def test_resize(ops):
    mode = restriction(ops, "Resize.mode")
    assert mode["kind"] == "attributeIn" and sorted(mode["allowed"]) == ["linear", "nearest"]
    assert mode["default"] == "nearest"
    aa = restriction(ops, "Resize.antialias")
    assert aa["kind"] == "attributeIn" and aa["allowed"] == [0] and aa["default"] == 0
    ctm = restriction(ops, "Resize.coordinate_transformation_mode")
    assert ctm["default"] == "half_pixel"
    assert "tf_crop_and_resize" not in ctm["allowed"] and "half_pixel_symmetric" not in ctm["allowed"]
    assert restriction(ops, "Resize.keep_aspect_ratio_policy")["allowed"] == ["stretch"]
    assert restriction(ops, "Resize.nearest_mode")["default"] == "round_prefer_floor"


def test_cumsum_axis_constant(ops):
    r = restriction(ops, "CumSum.axis")
    assert r["kind"] == "inputConstant" and r["input"] == 1


def test_other_examples(ops):
    assert restriction(ops, "OneHot.depth")["input"] == 1
    assert restriction(ops, "Slice.axes")["input"] == 3
    assert restriction(ops, "Pad.axes")["input"] == 3
    for op in ["Squeeze", "Unsqueeze", "ReduceSum", "ReduceMean", "ReduceMax"]:
        r = restriction(ops, f"{op}.axes")
        assert r["kind"] == "inputConstant" and r["input"] == 1
    assert restriction(ops, "DequantizeLinear.x_zero_point")["kind"] == "inputConstantAllZero"
    assert restriction(ops, "QuantizeLinear.y_zero_point")["input"] == 2
    assert restriction(ops, "Dropout.training_mode")["input"] == 2
    for op in ["AveragePool", "MaxPool"]:
        assert restriction(ops, f"{op}.rank")["ranks"] == [3, 4, 5]  # the importer expands 1-D pooling
        assert restriction(ops, f"{op}.dilations")["kind"] == "attributeAllOnes"
    idx = restriction(ops, "MaxPool.Indices")
    assert idx["kind"] == "outputUnused" and idx["output"] == 1
    assert restriction(ops, "DeformConv.rank")["ranks"] == [3, 4]
    assert restriction(ops, "EyeLike.staticShape")["kind"] == "inputStaticShape"
    assert {restriction(ops, f"LayerNormalization.{o}")["output"] for o in ("Mean", "InvStdDev")} == {1, 2}
    assert {r["attribute"] for r in ops["Constant"]["restrictions"]} == {
        "sparse_value",
        "value_string",
        "value_strings",
    }
    assert ops["Constant"]["typeInputs"] == [] and ops["Constant"]["typeOutputs"] == [0]
    assert ops["ConstantOfShape"]["typeInputs"] == [] and "INT64" in ops["ConstantOfShape"]["types"]
    assert ops["Cast"]["typeOutputs"] == [0]
    assert restriction(ops, "LSTM.input_forget")["allowed"] == [0]
    assert restriction(ops, "LSTM.layout")["allowed"] == [0]
    assert restriction(ops, "RandomNormal.seed")["kind"] == "note"


def test_type_lists(ops):
    assert "UINT8" not in ops["Mod"]["types"]
    assert "BOOL" not in ops["ScatterElements"]["types"]
    assert ops["Mod"]["types"] == ["FP32", "FP16", "BF16", "INT32", "INT64"]
    assert "UINT8" in ops["Cast"]["types"]


def _table_rows():
    try:
        text = subprocess.run(
            ["git", "-C", str(MIRROR), "show", f"{SOURCE_SHA}:docs/operators.md"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("onnx-tensorrt mirror not available")
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^\|\s*([A-Za-z0-9]+)\s*\|\s*([YN])\s*\|(.*)$", line)
        if m:
            cells = m.group(3).split("|")
            types = [t.strip().replace("INF64", "INT64") for t in cells[0].split(",") if t.strip()]
            restr = cells[1].strip() if len(cells) > 1 else ""
            rows[m.group(1)] = (m.group(2), types, restr)
    return rows


def test_matches_operator_table(ops):
    rows = _table_rows()
    assert len(rows) > 150
    for name, (yn, types, restr) in rows.items():
        op = ops[name]
        assert op["status"] == ("supported" if yn == "Y" else "unsupported"), name
        if yn == "Y" and "source" not in op:  # importer overrides differ from the table on purpose
            assert op["types"] == types, name
            assert bool(op["restrictions"]) == bool(restr), name
        elif yn == "Y":
            assert set(types) <= set(op["types"]), name
    for name, op in ops.items():
        if name not in rows:
            assert op["status"] == "unsupported", name

"""The Python side of the bridge against schemas/bridge.schema.json, through the real
`python -m tpat_bridge` process the Swift tool starts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "schemas" / "bridge.schema.json").read_text())
FIXTURES = REPO / "tests" / "fixtures" / "models"


def validator(definition):
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{definition}", "$defs": SCHEMA["$defs"]})


def ask(request, raw=None):
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    lib = REPO / ".venv" / "tpat-lib"
    env["LD_LIBRARY_PATH"] = f"{lib}:{env.get('LD_LIBRARY_PATH', '')}"
    p = subprocess.run(
        [sys.executable, "-m", "tpat_bridge"],
        input=raw if raw is not None else json.dumps(request),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr
    answer = json.loads(p.stdout)  # stdout holds exactly one JSON answer
    validator("answer").validate(answer)
    return answer


def test_version_answer_matches_schema_and_pins():
    a = ask({"command": "version"})
    assert a["ok"]
    validator("versionResult").validate(a["result"])
    assert a["result"]["tvm"] == "0.27.0.post1"
    assert a["result"]["tvm_ffi"] == "0.1.14.post1"


def test_infer_shapes_keeps_symbols_and_propagates_data():
    request = {"command": "infer_shapes", "model_path": str(FIXTURES / "symbolic.onnx"), "data_prop": True}
    validator("request").validate(request)
    a = ask(request)
    assert a["ok"], a
    validator("shapeResult").validate(a["result"])
    tensors = {t["name"]: t for t in a["result"]["tensors"]}
    assert tensors["heads"]["shape"] == [{"param": "batch"}, {"param": "seq"}, {"value": 4}, {"value": 8}]
    without = ask(dict(request, data_prop=False))["result"]["tensors"]
    heads = next(t for t in without if t["name"] == "heads")
    assert heads["shape"] != tensors["heads"]["shape"]


def test_infer_shapes_reads_external_data():
    a = ask({"command": "infer_shapes", "model_path": str(FIXTURES / "external_data.onnx")})
    assert a["ok"], a
    assert all(t["shape"] is not None for t in a["result"]["tensors"])


@pytest.mark.parametrize(
    "request_obj,code",
    [
        ({"command": "infer_shapes", "model_path": "/no/such.onnx"}, "input"),
        ({"command": "nope"}, "bad_request"),
        ({"no": "command"}, "bad_request"),
    ],
)
def test_failures_are_structured_answers(request_obj, code):
    a = ask(request_obj)
    assert not a["ok"]
    assert a["error"]["code"] == code


def test_non_json_request_is_an_answer():
    a = ask(None, raw="{not json")
    assert a["error"]["code"] == "bad_request"


def test_probe_names_parser_and_failing_nodes():
    request = {"command": "probe", "model_path": str(FIXTURES / "verdicts_unsupported_ops.onnx")}
    validator("request").validate(request)
    a = ask(request)
    assert a["ok"], a
    validator("probeResult").validate(a["result"])
    result = a["result"]
    if result["parser"] is None:
        pytest.skip("no TensorRT parser installed")
    assert "TensorRT" in result["parser"]
    failing = {n["op_type"] for n in result["nodes"] if not n["imported"]}
    assert {"Col2Im", "BitShift", "Det"} <= failing


def test_validate_command_checks_instances():
    ok = ask(
        {
            "command": "validate",
            "schema": "bridge.schema.json",
            "definition": "error",
            "instance": {"code": "x", "reason": "y"},
        }
    )
    assert ok["result"]["valid"]
    bad = ask({"command": "validate", "schema": "bridge.schema.json", "definition": "error", "instance": {"code": 1}})
    assert not bad["result"]["valid"] and bad["result"]["errors"]
    escape = ask({"command": "validate", "schema": "../README.md", "instance": {}})
    assert not escape["ok"]

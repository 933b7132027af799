"""`qnn_probe`: which nodes Qualcomm QNN's HTP backend takes, asked of the real backend through
ONNX Runtime's QNN execution provider (onnxruntime-qnn, pinned in the venv; its x86_64 wheel runs
here on the CPU)."""

import json
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_bridge import FIXTURES, ask, validator  # noqa: E402
from tpat_bridge.tools import qnn_probe  # noqa: E402


def mixed_model(path):
    """Relu, TopK, Softmax (QNN takes them), a 5-D GridSample (QNN's HTP backend refuses its op
    config) and a BitShift (the provider has no builder for it); one node named like a terminal
    escape sequence."""
    nodes = [
        h.make_node("Relu", ["x"], ["r"], name="relu\x1b[31m"),
        h.make_node("TopK", ["r", "k"], ["tv", "ti"], name="topk", axis=-1),
        h.make_node("Softmax", ["tv"], ["sm"], name="softmax", axis=-1),
        h.make_node("GridSample", ["v", "g"], ["gs"], name="grid5d", mode="linear"),
        h.make_node("BitShift", ["u", "s"], ["bs"], name="shift", direction="LEFT"),
    ]
    graph = h.make_graph(
        nodes,
        "qnn_mixed",
        [
            h.make_tensor_value_info("x", T.FLOAT, [2, 64]),
            h.make_tensor_value_info("v", T.FLOAT, [1, 2, 4, 4, 4]),
            h.make_tensor_value_info("g", T.FLOAT, [1, 3, 3, 3, 3]),
            h.make_tensor_value_info("u", T.UINT32, [8]),
            h.make_tensor_value_info("s", T.UINT32, [8]),
        ],
        [
            h.make_tensor_value_info("sm", T.FLOAT, [2, 5]),
            h.make_tensor_value_info("ti", T.INT64, [2, 5]),
            h.make_tensor_value_info("gs", T.FLOAT, [1, 2, 3, 3, 3]),
            h.make_tensor_value_info("bs", T.UINT32, [8]),
        ],
        [h.make_tensor("k", T.INT64, [1], [5])],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 20)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def mixed_answer(tmp_path_factory):
    path = mixed_model(tmp_path_factory.mktemp("qnn") / "mixed.onnx")
    request = {"command": "qnn_probe", "model_path": str(path)}
    validator("request").validate(request)
    a = ask(request)
    assert a["ok"], a
    validator("qnnProbeResult").validate(a["result"])
    return a["result"]


def test_backend_is_named_with_versions(mixed_answer):
    backend = mixed_answer["backend"]
    assert (
        backend
        and "libQnnHtp.so" in backend
        and "onnxruntime-qnn 2.7.0" in backend
        and "ONNX Runtime 1.24.4" in backend
    )
    assert "HTP_QTI_AISW 2.40.0" in backend  # the QNN API version the backend itself reported


def test_real_backend_takes_and_refuses_node_by_node(mixed_answer):
    by_op = {n["op_type"]: n for n in mixed_answer["nodes"]}
    assert [n["index"] for n in mixed_answer["nodes"]] == [0, 1, 2, 3, 4]
    for op in ("Relu", "TopK", "Softmax"):
        assert by_op[op]["taken"] and by_op[op]["rule"] is None, by_op[op]
    grid = by_op["GridSample"]
    assert not grid["taken"] and grid["rule"] == "qnn.backend"
    assert (
        "backendValidateOpConfig() failed" in grid["error"]
        and "of type `GridSample` with error code 3110" in grid["error"]
    )
    shift = by_op["BitShift"]
    assert (
        not shift["taken"] and shift["rule"] == "qnn.op" and "`BitShift` are not supported by QNN EP" in shift["error"]
    )


def test_node_names_reach_the_answer_as_given_but_messages_are_printable(mixed_answer):
    assert mixed_answer["nodes"][0]["node"] == "relu\x1b[31m"
    for n in mixed_answer["nodes"]:
        assert n["error"] is None or n["error"].isprintable()


def test_fixture_reasons_from_the_provider():
    a = ask({"command": "qnn_probe", "model_path": str(FIXTURES / "verdicts_basic.onnx")})
    assert a["ok"], a
    nodes = {n["node"]: n for n in a["result"]["nodes"]}
    assert nodes["resize_antialias"]["rule"] == "qnn.ep" and "anti-aliasing" in nodes["resize_antialias"]["error"]
    assert (
        nodes["cumsum_input_axis"]["rule"] == "qnn.ep" and "must be a constant" in nodes["cumsum_input_axis"]["error"]
    )
    # The CumSum whose axis comes from a Constant node keeps it constant in its one-node model.
    assert nodes["cumsum_const_axis"]["taken"] and nodes["cumsum_axis_constant"]["taken"]
    assert nodes["topk_k4096"]["taken"] and nodes["scatternd_add"]["taken"]


def test_symbolic_dims_are_refused_with_the_providers_reason():
    a = ask({"command": "qnn_probe", "model_path": str(FIXTURES / "plugins_symbolic.onnx")})
    nodes = {n["node"]: n for n in a["result"]["nodes"]}
    assert not nodes["topk_unsorted"]["taken"] and nodes["topk_unsorted"]["rule"] == "qnn.ep"
    assert "Cannot get shape" in nodes["topk_unsorted"]["error"]


def test_bad_model_is_an_input_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a model")
    a = ask({"command": "qnn_probe", "model_path": str(bad)})
    assert not a["ok"] and a["error"]["code"] == "model"


LOG_TAKEN = """\
2026 [V:onnxruntime:, session_state.cc:1307 VerifyEachNodeIsAssignedToAnEp] Node placements
2026 [V:onnxruntime:, session_state.cc:1310 VerifyEachNodeIsAssignedToAnEp]  All nodes placed on [QNN]. Number of nodes: 1
"""
LOG_CPU = """\
2026 [V:onnxruntime:, qnn_execution_provider.cc:1713 LogNodeSupport] Validation FAILED for 1 nodes in OrtNodeUnit (Mod) :
\tOperator type: Mod Node name: m Node index: 0
\tREASON : Failed to add node.

2026 [V:onnxruntime:, session_state.cc:1313 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 1
2026 [V:onnxruntime:, session_state.cc:1315 VerifyEachNodeIsAssignedToAnEp]   Mod (m)
"""


def test_classify_reads_placements_and_reasons():
    assert qnn_probe.classify(LOG_TAKEN, "n", None) == {"taken": True, "rule": None, "error": None}
    # "Failed to add node." says nothing: the verdict says so instead of repeating it.
    v = qnn_probe.classify(LOG_CPU, "m", None)
    assert not v["taken"] and v["rule"] == "qnn.ep" and "no reason" in v["error"]
    # A session that failed is refused even when the log placed the node on QNN before failing.
    v = qnn_probe.classify(
        LOG_TAKEN, "n", "EPFail: [ONNXRuntimeError] : 11 : EP_FAIL : Failed to finalize QNN graph.\n more"
    )
    assert v == {
        "taken": False,
        "rule": "qnn.session",
        "error": "EPFail: [ONNXRuntimeError] : 11 : EP_FAIL : Failed to finalize QNN graph. more",
    }


def test_a_crashing_node_costs_that_node_only(tmp_path, monkeypatch):
    """The worker dies on node 1 (as a backend abort would): node 1 is `qnn.crash`, a new worker
    probes the rest."""
    model = mixed_model(tmp_path / "m.onnx")
    calls = []

    def fake_run(cmd, work, err):
        start = int(cmd[-1])
        calls.append(start)
        jobs = json.loads(Path(work, "jobs.json").read_text())
        with open(Path(work, "results.jsonl"), "a") as out:
            for job in jobs[start:]:
                out.write(json.dumps({"start": job["index"]}) + "\n")
                if job["index"] == 1 and start == 0:
                    return
                out.write(
                    json.dumps({"index": job["index"], "taken": True, "rule": None, "error": None, "interface": None})
                    + "\n"
                )

    monkeypatch.setattr(qnn_probe, "_run_worker", fake_run)
    result = qnn_probe.probe_qnn({"model_path": str(model)})
    assert calls == [0, 2]
    assert [n["taken"] for n in result["nodes"]] == [True, False, True, True, True]
    assert result["nodes"][1]["rule"] == "qnn.crash"


def test_a_hanging_node_is_killed_after_the_node_timeout(tmp_path, monkeypatch):
    """A real worker process that hangs on node 2 is killed after _NODE_TIMEOUT_S; node 2 is
    `qnn.crash`, the others are answered by the next worker."""
    model = mixed_model(tmp_path / "m.onnx")
    fake = tmp_path / "fake_python"
    fake.write_text(f"""#!{sys.executable}
import json, sys, time
work, start = sys.argv[-2], int(sys.argv[-1])
jobs = json.load(open(work + "/jobs.json"))
with open(work + "/results.jsonl", "a") as out:
    for job in jobs[start:]:
        out.write(json.dumps({{"start": job["index"]}}) + "\\n"); out.flush()
        if job["index"] == 2:
            time.sleep(120)
        out.write(json.dumps({{"index": job["index"], "taken": True, "rule": None, "error": None, "interface": None}}) + "\\n"); out.flush()
""")
    fake.chmod(0o755)
    monkeypatch.setattr(qnn_probe.sys, "executable", str(fake))
    monkeypatch.setattr(qnn_probe, "_NODE_TIMEOUT_S", 1)
    result = qnn_probe.probe_qnn({"model_path": str(model)})
    assert [n["rule"] for n in result["nodes"]] == [None, None, "qnn.crash", None, None]
    assert "over 1 s" in result["nodes"][2]["error"]

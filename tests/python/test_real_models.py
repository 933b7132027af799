"""The real-model suite (scripts/real_models) in CI: the small subset (models.py SMALL) exported
with the suite's own venv (.venv-models, a CPU torch) and run through the whole pipeline as
`make real-models` runs it: inspect -> generate --auto -> build -> engine (TensorRT-RTX on the
CPU). Every model must build an engine or name the node that stops it with a reason code (issue
13's target). Skipped, with the reason, only when the models venv cannot be built (no PyTorch CPU
wheel reachable) or with TPAT_SKIP_REAL_MODELS=1. The runner's parsing is tested on its own too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "real_models"))

import run as runner  # noqa: E402  (scripts/real_models/run.py: standard library only)

TPAT = ROOT / ".build" / "debug" / "tpat"


# --- the runner's parsing ------------------------------------------------------------------------


def test_reason_code_prefers_the_report_field_then_the_text():
    assert runner.reason_code({"code": "tvm_error", "reason": "NonZero: output shape depends on"}) == "tvm_error"
    assert runner.reason_code({"reason": "x (Unique): [data_dependent_shape] cannot plan"}) == "data_dependent_shape"
    # reports written before codes existed: the planner's messages
    assert (
        runner.reason_code(
            {
                "reason": "cannot plan node 'n' (NonZero): NonZero: output shape depends on the "
                "number of non-zero elements"
            }
        )
        == "data_dependent_shape"
    )
    assert runner.reason_code({"reason": "type of output 'seq' is unknown"}) == "extraction_failed"
    assert runner.reason_code({"reason": "something new"}) == "unknown"


def test_engine_error_names_the_node_and_op():
    text = (
        "Plugins: none\nerror: node '/model/convs.0/NonZero' (NonZero): Assertion failed: creator && "
        "getPluginCreatorVersion(creator) == CreatorVersion::kV3ONE: NonZero plugin creator version 1 "
        "was not found in plugin registry.\n"
    )
    e = runner.parse_engine_error(text)
    assert (e["node"], e["op"]) == ("/model/convs.0/NonZero", "NonZero")
    code, reason = runner.parser_reason(e["op"], e["message"])
    assert code == "parser_rejects_op" and "NonZero" in reason
    assert runner.parse_engine_error("error: build_serialized_network returned None") == {
        "node": None,
        "op": None,
        "message": "build_serialized_network returned None",
    }


def test_table_escapes_what_comes_from_the_model():
    row = {
        "model": "m",
        "package": "p",
        "outcome": "blocked",
        "stage": "engine",
        "node": "a|b\nc\x1b[31m",
        "op": "NonZero",
        "code": "parser_rejects_op",
        "reason": "r|s",
        "not_converted": [],
    }
    md = runner.markdown([row], {"date": "d", "tpat_commit": "c", "sm": "89", "builder": "TensorRT-RTX"})
    line = [ln for ln in md.splitlines() if ln.startswith("| m |")][0]
    assert line.count(" | ") == 7  # 8 columns: the node's '|' and the reason's '|' are escaped
    assert "\x1b" not in md and "\n" not in line
    assert runner.safe("a\x1b[31m\n") == "a\\x1b[31m\\n"


# --- the small subset through the pipeline -------------------------------------------------------


@pytest.fixture(scope="module")
def small_exports():
    if os.environ.get("TPAT_SKIP_REAL_MODELS") == "1":
        pytest.skip("TPAT_SKIP_REAL_MODELS=1")
    p = subprocess.run(["make", "-s", "models-venv"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        tail = " ".join((p.stdout + p.stderr).strip().splitlines()[-3:])
        pytest.skip(f"the real-model venv (.venv-models) cannot be built here: {tail}")
    models = ROOT / ".real-models"
    p = subprocess.run(
        [
            str(ROOT / ".venv-models" / "bin" / "python"),
            "scripts/real_models/export.py",
            "--small",
            "--out",
            str(models),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return models


@pytest.fixture(scope="module")
def small_results(small_exports, tmp_path_factory):
    assert TPAT.exists(), f"{TPAT} missing: swift build first"
    models = small_exports
    out = tmp_path_factory.mktemp("real_models")
    p = subprocess.run(
        [
            sys.executable,
            "scripts/real_models/run.py",
            "--small",
            "--models",
            str(models),
            "--out",
            str(out),
            "--tpat",
            str(TPAT),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return out, json.loads((out / "results.json").read_text())


def test_every_small_model_builds_an_engine_or_names_what_stops_it(small_results):
    out, results = small_results
    rows = {r["model"]: r for r in results["models"]}
    assert sorted(rows) == sorted(runner._small_names())
    for name, r in rows.items():
        assert r["outcome"] in ("plugins", "nothing_to_do", "blocked"), (name, r)
        if r["outcome"] == "blocked":
            assert r["stage"] in ("inspect", "build", "engine"), (name, r)
            assert r["code"] and r["code"] != "unknown" and r["reason"], (name, r)
            if r["stage"] == "engine" and r["code"] != "engine_failed":
                assert r["node"], (name, r)  # the parser stopped at a node: it is named
        else:
            assert r["engine_bytes"] > 0, (name, r)
            assert "Engine:" in (out / name / "engine.log").read_text()
        if r["outcome"] == "plugins":
            # every plugin layer in the engine is a node TPAT converted
            converted = {n for p in r["plugins"] for n in p["nodes"]}
            assert r["plugin_layers"] and set(r["plugin_layers"]) <= converted, (name, r)
    md = (out / "results.md").read_text()
    for name in rows:
        assert f"| {name} |" in md


def test_small_suite_covers_each_outcome_path(small_results):
    """The subset is chosen so that CI sees TPAT's plugins reach an engine and a model that needs none."""
    _, results = small_results
    outcomes = {r["model"]: r["outcome"] for r in results["models"]}
    assert "plugins" in outcomes.values(), outcomes
    assert "nothing_to_do" in outcomes.values() or "blocked" in outcomes.values(), outcomes


def test_exports_keep_their_inputs_and_pytorchs_outputs(small_exports):
    """export.py saves the example inputs (keys: the graph's inputs) and PyTorch's outputs on them
    (keys: the graph's outputs), and ONNX Runtime on the exported model with those inputs gives
    PyTorch's outputs: what `tpat verify --model --inputs` (and `--expected`) rely on."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    for name in runner._small_names():
        model = onnx.load(str(small_exports / f"{name}.onnx"))
        inits = {t.name for t in model.graph.initializer}
        with np.load(small_exports / f"{name}.inputs.npz", allow_pickle=False) as z:
            feeds = {k: z[k] for k in z.files}
        with np.load(small_exports / f"{name}.torch-outputs.npz", allow_pickle=False) as z:
            want = {k: z[k] for k in z.files}
        assert sorted(feeds) == sorted(i.name for i in model.graph.input if i.name not in inits), name
        assert sorted(want) == sorted(o.name for o in model.graph.output), name
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        for o, got in zip(sess.get_outputs(), sess.run(None, feeds)):
            w = want[o.name]
            assert got.shape == w.shape, (name, o.name)
            assert np.allclose(got, w, rtol=1e-3, atol=1e-4), (name, o.name, float(np.abs(got - w).max()))

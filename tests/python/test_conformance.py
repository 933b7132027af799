"""The fast subset of the ONNX backend conformance suite (scripts/conformance.py; `make conformance`
runs all of it): a handful of real backend test cases through the real `tpat inspect` + `tpat
generate` + the LLVM check against the test's expected outputs, and the check failing on wrong
expected data. Needs the built tpat (`make test` builds it first)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import conformance as conf  # noqa: E402

NODE = conf.node_tests_dir()


@pytest.fixture(scope="module")
def tpat():
    p = Path(conf.tpat_binary())
    if not p.exists():
        pytest.fail(f"{p} is missing: run `swift build` (make test builds it)")
    return p


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("conformance")


@pytest.fixture(scope="module")
def affine(tpat, work):
    return conf.run_case(NODE / "test_affine_grid_2d", work, "rtx", 300)


def test_prepare_turns_shape_inputs_into_initializers():
    model, inputs, outputs = conf.load_case(NODE / "test_reshape_extended_dims")
    m, made = conf.prepare(model, inputs)
    assert made == ["shape"]
    assert [vi.name for vi in m.graph.input] == ["data"]
    init = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    np.testing.assert_array_equal(init["shape"], inputs[1])
    assert m.graph.node[0].name == conf.NODE_NAME
    onnx.checker.check_model(m)


def test_load_case_refuses_what_is_not_one_tensor_node():
    with pytest.raises(conf.CaseError) as e:
        conf.load_case(NODE / "test_softmax_axis_0_expanded")
    assert e.value.code == "not_single_node"


def test_plugin_matches_the_tests_expected_outputs(affine, work):
    assert affine["inScope"] and affine["plugin"], affine
    assert affine["code"] == "passed", affine
    assert affine["constants"] == ["size"]
    assert affine["check"] and all(t["status"] == "agrees" and t["cases"] == 1 for t in affine["check"])
    m = json.loads(
        (
            work / "test_affine_grid_2d" / "out" / "plugins" / affine["plugin"] / "conformance" / "manifest.json"
        ).read_text()
    )
    assert m["cases"][0]["outputs"][0]["shape"] == [2, 5, 6, 2]


def test_check_fails_on_wrong_expected_data(affine, work):
    pdir = work / "test_affine_grid_2d" / "out" / "plugins" / affine["plugin"]
    bad = work / "bad_conformance"
    shutil.copytree(pdir / "conformance", bad)
    out = bad / "case0" / "out0.bin"
    a = np.fromfile(out, dtype="<f4")
    a[7] += 0.01
    a.tofile(out)
    res = conf.check_plugin(pdir, bad)
    assert [t["status"] for t in res["tactics"]] == ["disagrees"] * len(res["tactics"])
    assert res["tactics"][0]["max_error"] == pytest.approx(0.01, rel=1e-3)


@pytest.mark.parametrize(
    "case,code,in_scope",
    [
        ("test_relu", "imported_by_tensorrt", False),
        ("test_bitshift_left_uint16", "no_tensorrt_type", True),
    ],
)
def test_causes(tpat, work, case, code, in_scope):
    r = conf.run_case(NODE / case, work, "rtx", 300)
    assert (r["code"], r["inScope"], r["passed"], r["plugin"]) == (code, in_scope, False, None), r


@pytest.mark.parametrize(
    "case",
    [
        "test_nonzero_example",
        "test_compress_0",
        "test_unique_not_sorted_without_axis",
        "test_unique_sorted_with_negative_axis",
    ],
)
def test_data_dependent_outputs_pass(tpat, work, case):
    """Plugins with a size-tensor output (issue 14), on the tests' own data: the actual shape
    (the size tensor's value) and values match the expected outputs."""
    r = conf.run_case(NODE / case, work, "rtx", 300)
    assert (r["code"], r["inScope"], r["passed"]) == ("passed", True, True) and r["plugin"], r


def test_report_counts(affine, tmp_path):
    results = [
        affine,
        {"case": "x", "considered": False, "code": "not_single_node"},
        {
            "case": "y",
            "considered": True,
            "inScope": True,
            "plugin": None,
            "passed": False,
            "code": "tvm_error",
            "op": "Y",
        },
        {
            "case": "z",
            "considered": True,
            "inScope": True,
            "plugin": None,
            "passed": False,
            "code": "not_run",
            "op": "Z",
        },
        {
            "case": "w",
            "considered": True,
            "inScope": False,
            "plugin": None,
            "passed": False,
            "code": "imported_by_tensorrt",
            "op": "W",
        },
    ]
    s = conf.summarize(results, "rtx", 5)
    assert (s["singleNodeTensorCases"], s["inScope"], s["inScopeRun"], s["pluginsMade"], s["passed"]) == (4, 3, 2, 1, 1)
    assert s["causes"] == {"tvm_error": 1} and s["notConsidered"] == {"not_single_node": 1} and s["partial"]
    md = conf.markdown(s)
    assert "**Partial run:** 5 of 5 cases inspected; 2 of the 3 cases in scope" in md
    assert "| test_affine_grid_2d | AffineGrid |" in md and "| z |" not in md


@pytest.mark.parametrize(
    "case",
    [
        "test_col2im_pads",
        "test_center_crop_pad_crop_and_pad",
        "test_resize_downsample_sizes_cubic_antialias",
        "test_sce_mean_weight_ii_3d_log_prob",
    ],
)
def test_ops_tvm_cannot_import_pass(tpat, work, case):
    """TPAT's lowerings of ops TVM 0.27 cannot import (Col2Im, CenterCropPad, the losses) and of
    Resize antialias=1 (issue 14): a plugin, every tactic matching the test's expected outputs."""
    r = conf.run_case(NODE / case, work, "rtx", 300)
    assert (r["code"], r["inScope"], r["passed"]) == ("passed", True, True) and r["plugin"], r

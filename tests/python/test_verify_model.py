"""`tpat verify OUT --model` (python/tpat_bridge/tools/verify_model.py) in its CPU mode: the demo's
rewritten model cut at its plugin node, the plugin run through the LLVM build of its plan, every
other node through ONNX Runtime, compared tensor by tensor with ONNX Runtime on the original; a
plugin that computes something else is named as the first tensor that differs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

from tpat_bridge.tools import verify_model as vm  # noqa: E402


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    tpat = ROOT / ".build" / "debug" / "tpat"
    if not tpat.exists():
        pytest.fail(f"{tpat} is missing: run `swift build` (make test builds it)")
    out = tmp_path_factory.mktemp("verify_model") / "out"
    r = subprocess.run(
        [str(tpat), "generate", str(ROOT / "examples" / "demo.onnx"), "--auto", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def test_segments_cut_at_plugin_nodes(demo_out):
    import onnx

    m = onnx.load(str(demo_out / "demo.onnx"))
    segs = vm.segments(m)
    assert [k for k, _ in segs].count("plugin") == 1
    assert sum(len(n) for _, n in segs) == len(m.graph.node)


def test_rewritten_demo_matches_original_on_cpu(demo_out):
    r = vm.verify_model(str(demo_out), cpu=True, original=str(ROOT / "examples" / "demo.onnx"))
    assert r["ok"], r
    assert r["pluginNodes"] == 1 and r["ortSegments"] == 2
    assert r["firstMismatch"] is None and r["tensorsCompared"] >= len(r["outputs"])
    assert {o["name"] for o in r["outputs"]} == {"scores", "top_idx", "warped_mean"}


def test_wrong_plugin_is_named(demo_out, monkeypatch):
    real = vm.CpuPlugins.run

    def off_by_a_bit(self, name, tactic, inputs):
        return [o + np.asarray(0.5, dtype=o.dtype) for o in real(self, name, tactic, inputs)]

    monkeypatch.setattr(vm.CpuPlugins, "run", off_by_a_bit)
    r = vm.verify_model(str(demo_out), cpu=True, original=str(ROOT / "examples" / "demo.onnx"))
    assert not r["ok"]
    fm = r["firstMismatch"]
    assert fm["plugin"] and fm["node"] == "accumulate_row0" and fm["maxError"] == pytest.approx(0.5, rel=1e-3), fm


def test_cli_exit_codes(demo_out, tmp_path):
    env = {"PYTHONPATH": str(ROOT / "python")}
    cmd = [sys.executable, "-m", "tpat_bridge.tools.verify_model", str(demo_out), "--cpu"]
    ok = subprocess.run(
        cmd + ["--original", str(ROOT / "examples" / "demo.onnx")], capture_output=True, text=True, env=env, timeout=600
    )
    assert ok.returncode == 0 and ok.stdout.strip().endswith("PASS"), ok.stdout + ok.stderr
    bad = subprocess.run(
        cmd + ["--original", str(tmp_path / "nope.onnx")], capture_output=True, text=True, env=env, timeout=600
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")


def test_expected_outputs_replace_the_original_run(demo_out, tmp_path):
    """--expected: the graph outputs compared with given arrays (PyTorch's, for a model ONNX Runtime
    cannot load) instead of ONNX Runtime's run of the original; a wrong array fails on its output,
    a missing one is an input error."""
    import onnx

    orig = onnx.load(str(ROOT / "examples" / "demo.onnx"))
    feeds = vm.make_inputs(orig, None, 2, 0)
    want = vm.run_original(orig, feeds)
    outs = [o.name for o in orig.graph.output]
    inputs = tmp_path / "in.npz"
    np.savez(inputs, **feeds)
    good = tmp_path / "good.npz"
    np.savez(good, **{k: want[k] for k in outs})
    kw = dict(cpu=True, original=str(ROOT / "examples" / "demo.onnx"), inputs=str(inputs))
    r = vm.verify_model(str(demo_out), expected=str(good), **kw)
    assert r["ok"] and "--expected" in r["mode"] and r["tensorsCompared"] == len(outs), r
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{k: (want[k] + 1 if k == "warped_mean" else want[k]) for k in outs})
    r = vm.verify_model(str(demo_out), expected=str(bad), **kw)
    assert not r["ok"] and r["firstMismatch"]["tensor"] == "warped_mean"
    assert [o["name"] for o in r["outputs"] if not o["ok"]] == ["warped_mean"]
    short = tmp_path / "short.npz"
    np.savez(short, **{k: want[k] for k in outs[:1]})
    with pytest.raises(vm.VerifyError, match="no array for the graph output"):
        vm.verify_model(str(demo_out), expected=str(short), **kw)

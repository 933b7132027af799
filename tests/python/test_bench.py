"""`tpat bench` pieces that need no GPU: the suite models (bench/suite.py) and bench/cases.json,
the minimal-traffic formulas, report + chart rendering from a synthetic results JSON, and the
clean error when no CUDA device exists (python/tpat_bridge/tools/bench/).
Run: .venv/bin/python -m pytest tests/python/test_bench.py
"""
from __future__ import annotations

import copy
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "bench"))

import suite  # noqa: E402
from tpat_bridge.tools import bench  # noqa: E402
from tpat_bridge.errors import BridgeError  # noqa: E402

EXPECTED = {   # case -> (op, input shapes, output shapes), as the issue lists them
    "gathernd": ("GatherND", [(1, 128, 128, 224), (1, 600, 3)], [(1, 600, 224)]),
    "scatternd": ("ScatterND", [(32, 128, 128, 256), (32, 600, 3), (32, 600, 256)], [(32, 128, 128, 256)]),
    "scatternd_add": ("ScatterND", [(32, 128, 128, 256), (32, 600, 3), (32, 600, 256)], [(32, 128, 128, 256)]),
    "onehot": ("OneHot", [(16,)], [(16, 16384)]),
    "resize": ("Resize", [(32, 32, 44, 50)], [(32, 32, 176, 200)]),
    "reducemax": ("ReduceMax", [(256, 82, 128)], [(256, 1, 128)]),
    "gridsample": ("GridSample", [(2, 32, 16, 64, 64), (2, 16, 64, 64, 3)], [(2, 32, 16, 64, 64)]),
    "scatterelements_max": ("ScatterElements", [(256, 4096), (256, 1024), (256, 1024)], [(256, 4096)]),
    "topk": ("TopK", [(8, 65536)], [(8, 4096), (8, 4096)]),
    "cumsum": ("CumSum", [(64, 16384)], [(64, 16384)]),
    "layernorm": ("LayerNormalization", [(8192, 1024), (1024,), (1024,)], [(8192, 1024)]),
    "layernorm_stats": ("LayerNormalization", [(8192, 1024), (1024,), (1024,)],
                        [(8192, 1024), (8192, 1), (8192, 1)]),
    "rmsnorm": ("RMSNormalization", [(8192, 4096), (4096,)], [(8192, 4096)]),
    "dft": ("DFT", [(512, 720, 1)], [(512, 361, 2)]),
    "gelu": ("Gelu", [(8192, 4096)], [(8192, 4096)]),
}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    d = tmp_path_factory.mktemp("suite")
    doc = suite.write_suite(d / "models", d / "cases.json")
    return d, doc


# ------------------------------------------------------------------------------------------------
# suite models and cases.json
# ------------------------------------------------------------------------------------------------

def test_suite_models_are_valid_small_one_node_onnx(written):
    d, doc = written
    assert [c["id"] for c in doc["cases"]] == list(EXPECTED)
    for c in doc["cases"]:
        path = d / "models" / c["model"]
        assert path.stat().st_size < 2048, "data must be graph inputs, not initializers"
        m = onnx.load(str(path))
        onnx.checker.check_model(m, full_check=True)
        assert len(m.graph.node) == 1 and m.graph.node[0].op_type == c["op"] == c["select"]
        inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
        declared = [tuple(x.dim_value for x in o.type.tensor_type.shape.dim) for o in inferred.graph.output]
        assert declared == [tuple(o["shape"]) for o in c["outputs"]]
        # onnxruntime accepts every model (session creation only: no data is allocated)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [tuple(i.shape) for i in sess.get_inputs()] == [tuple(i["shape"]) for i in c["inputs"]]


def test_cases_shapes_as_specified(written):
    _, doc = written
    for c in doc["cases"]:
        op, ins, outs = EXPECTED[c["id"]]
        assert c["op"] == op
        assert [tuple(i["shape"]) for i in c["inputs"]] == ins, c["id"]
        assert [tuple(o["shape"]) for o in c["outputs"]] == outs, c["id"]
        assert [i["canonical"] for i in c["inputs"]] == [f"in{k}" for k in range(len(ins))]
    by = {c["id"]: c for c in doc["cases"]}
    assert by["gathernd"]["inputs"][1]["dtype"] == "int64" and by["gathernd"]["attributes"]["batch_dims"] == 0
    assert by["scatternd_add"]["attributes"]["reduction"] == "add" and "reduction" not in by["scatternd"]["attributes"]
    assert by["scatterelements_max"]["attributes"] == {"axis": 1, "reduction": "max"}
    assert by["topk"]["constants"][0]["value"] == [4096]
    assert by["onehot"]["constants"][0]["value"] == 16384
    assert by["cumsum"]["constants"][0]["value"] == 1
    assert by["resize"]["attributes"]["coordinate_transformation_mode"] == "half_pixel"
    assert by["gelu"]["opset"] == 20 and by["gelu"]["attributes"]["approximate"] == "none"
    assert by["gridsample"]["opset"] == 20
    assert {by[k]["inputs"][0]["dtype"] for k in ("layernorm", "gelu")} == {"float16"}


def test_committed_suite_is_up_to_date(written):
    _, doc = written
    committed = json.loads((ROOT / "bench" / "cases.json").read_text())
    assert committed["cases"] == doc["cases"], "run python bench/suite.py"
    for c in doc["cases"]:
        assert (ROOT / "bench" / "models" / c["model"]).is_file()


# ------------------------------------------------------------------------------------------------
# minimal traffic
# ------------------------------------------------------------------------------------------------

SMALL = {   # case -> (inputs, outputs, expected bytes)
    "gathernd": ([((2, 5, 6, 7), "float32"), ((2, 9, 3), "int64")], [((2, 9, 7), "float32")],
                 2 * (2 * 9 * 7 * 4) + 2 * 9 * 3 * 8),
    "scatternd": ([((3, 4, 5, 6), "float32"), ((3, 7, 3), "int64"), ((3, 7, 6), "float32")],
                  [((3, 4, 5, 6), "float32")], 2 * 360 * 4 + 63 * 8 + 126 * 4),
    "onehot": ([((5,), "int64")], [((5, 10), "float32")], 5 * 8 + 50 * 4),
    "resize": ([((1, 2, 3, 4), "float32")], [((1, 2, 12, 16), "float32")], 24 * 4 + 384 * 4),
    "gridsample": ([((1, 2, 3, 4, 5), "float32"), ((1, 3, 4, 5, 3), "float32")], [((1, 2, 3, 4, 5), "float32")],
                   120 * 4 + 180 * 4 + 120 * 4),
    "topk": ([((2, 50), "float32")], [((2, 4), "float32"), ((2, 4), "int64")], 400 + 32 + 64),
    "layernorm": ([((4, 8), "float16"), ((8,), "float16"), ((8,), "float16")], [((4, 8), "float16")],
                  64 + 16 + 16 + 64),
    "gelu": ([((3, 5), "float16")], [((3, 5), "float16")], 60),
}


def test_traffic_formulas_on_small_shapes(written):
    _, doc = written
    by = {c["id"]: c for c in doc["cases"]}
    for id, (ins, outs, want) in SMALL.items():
        code = by[id]["traffic"]["code"]
        assert suite.traffic_bytes(code, ins, outs) == want, id
        assert bench.traffic_bytes(code, ins, outs) == want, id
    # every case: the formula counts at least the output once and at most every tensor twice
    for c in doc["cases"]:
        ins = [(i["shape"], i["dtype"]) for i in c["inputs"]]
        outs = [(o["shape"], o["dtype"]) for o in c["outputs"]]
        total = bench.traffic_bytes(bench.default_traffic_code(len(ins), len(outs)), ins, outs)
        assert c["traffic"]["bytes"] == bench.traffic_bytes(c["traffic"]["code"], ins, outs)
        assert bench.traffic_bytes("B(out0)", ins, outs) <= c["traffic"]["bytes"] <= 2 * total, c["id"]
    # GatherND reads the gathered rows, not the whole 14.7 MB table
    assert by["gathernd"]["traffic"]["bytes"] == 2 * 600 * 224 * 4 + 600 * 3 * 8


def test_traffic_formula_cannot_reach_builtins():
    with pytest.raises(Exception):
        bench.traffic_bytes("__import__('os').getcwd()", [((1,), "float32")], [])


# ------------------------------------------------------------------------------------------------
# report rendering
# ------------------------------------------------------------------------------------------------

def _result(case, op, tpat, eager, compiled, mb, ok=True):
    res = {"out": f"/x/{case}", "plugin": f"{op}_0123abcd", "case": case, "op": op, "status": "ok" if ok else "mismatch",
           "notes": ["a note"], "inputs": [{"dtype": "float32", "shape": [4, 4]}],
           "outputs": [{"dtype": "float32", "shape": [4, 4]}], "num_tactics": 1, "torch_impl": "torch.thing()",
           "traffic": {"bytes": int(mb * 1e6), "code": "B(in0) + B(out0)", "words": "in once, out once", "source": "cases.json"},
           "check": {"against": "PyTorch eager", "pass": ok,
                     "tactics": [{"tactic": 0, "outputs": [{"pass": ok, "bad": 0 if ok else 3, "n": 16, "max_abs": 0.0 if ok else 2.5}]}]},
           "tpat": {"tactic": 0, "kernel_us": tpat, "host_us": tpat + 20, "graph": True, "inner": 1}}
    res["eager"] = {"kernel_us": eager, "host_us": eager + 30, "graph": True} if eager else None
    res["compiled"] = {"kernel_us": compiled, "host_us": compiled + 60, "graph": True, "compile_s": 3.2} if compiled else {"error": "boom"}
    best = min(x for x in (eager, compiled) if x)
    res["best_torch_us"] = best
    res["ratio_tpat_over_best"] = tpat / best
    res["tpat_slower"] = tpat > best
    copy_gbps = 3000.0
    res["gbps"] = {k: (mb * 1e6 / (v * 1e-6) / 1e9 if v else None) for k, v in (("tpat", tpat), ("eager", eager), ("compiled", compiled))}
    res["pct_copy"] = {k: (100 * v / copy_gbps if v else None) for k, v in res["gbps"].items()}
    return res


def synthetic_doc():
    return {
        "format": 1, "date": "2026-01-01T00:00:00+00:00",
        "device": {"name": "NVIDIA H100 80GB HBM3", "capability": "sm_90", "sms": 132, "memory_gib": 79.2,
                   "l2_mib": 50.0, "driver": "580.00", "torch": "2.11.0+cu130", "torch_cuda": "13.0", "python": "3.12.3"},
        "copy": {"gbps": 3000.0, "bytes_copied": 1 << 30},
        "settings": {"runs": 200, "warmup": 10, "flush_l2": True, "flush_bytes": 256 << 20, "timing": "kernel-only"},
        "results": [
            _result("gelu", "Gelu", 60.0, 70.0, 50.0, 134.2),
            _result("scatternd", "ScatterND", 4200.0, 480.0, 450.0, 1093.9),
            _result("topk", "TopK", 30.0, 45.0, None, 2.5, ok=False),
            {"out": "/x/onehot", "plugin": None, "case": "onehot", "op": "OneHot", "status": "error",
             "error": "no plugins in this OUT folder (nothing was converted)"},
        ],
    }


def _png_chunks(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks.append((kind, body))
        pos += 12 + n
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    return chunks


def test_render_report_markdown_and_png(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)       # force the built-in PNG writer
    p = tmp_path / "r.json"
    p.write_text(json.dumps(synthetic_doc()))
    out = bench.render_report(str(p), str(tmp_path / "rep"))
    md = Path(out["report"]).read_text()
    assert "NVIDIA H100 80GB HBM3" in md and "580.00" in md and "2.11.0+cu130" in md
    assert "3000 GB/s" in md
    assert "**9.33x SLOWER**" in md                            # 4200 / 450
    assert "| gelu | Gelu | pass | 60.0 µs | 70.0 µs | 50.0 µs | **1.20x SLOWER** |" in md
    assert "| topk | TopK | **FAIL** |" in md and "0.67x" in md
    assert "onehot (OneHot): error: no plugins" in md
    assert "topk (TopK): output differs from PyTorch eager" in md
    assert "## Where TPAT is slower" in md and "**scatternd** (ScatterND)" in md
    assert "![kernel-only medians](r.png)" in md
    data = Path(out["chart"]).read_bytes()
    chunks = _png_chunks(data)
    w, h, depth, ctype = struct.unpack(">IIBB", chunks[0][1][:10])
    assert depth == 8 and ctype == 2 and w > 300 and h > 300
    raw = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    assert len(raw) == h * (1 + 3 * w)
    img = np.frombuffer(raw, np.uint8).reshape(h, 1 + 3 * w)[:, 1:].reshape(h, w, 3)
    colors = {tuple(c) for c in img.reshape(-1, 3)[:: 7]}
    assert (214, 39, 40) in colors and (31, 119, 180) in colors and (44, 160, 44) in colors   # three series drawn


def test_render_report_when_nothing_ran(tmp_path):
    doc = synthetic_doc()
    doc["results"] = doc["results"][3:]
    p = tmp_path / "r.json"
    p.write_text(json.dumps(doc))
    out = bench.render_report(str(p), str(tmp_path), stem="empty")
    assert out["chart"] is None and out["report"].endswith("empty.md")
    assert "no plugins in this OUT folder" in Path(out["report"]).read_text()


# ------------------------------------------------------------------------------------------------
# run_bench without a GPU
# ------------------------------------------------------------------------------------------------

class _NoCuda:
    __version__ = "0.0-fake"

    class cuda:  # noqa: N801
        @staticmethod
        def is_available():
            return False

        @staticmethod
        def device_count():
            return 0


def test_run_bench_without_cuda_is_a_clean_error(tmp_path, monkeypatch):
    (tmp_path / "out" / "plugins").mkdir(parents=True)
    req = {"command": "bench", "outs": [str(tmp_path / "out")], "report_dir": str(tmp_path / "rep"), "runs": 5}
    monkeypatch.setitem(sys.modules, "torch", _NoCuda)
    with pytest.raises(BridgeError) as e:
        bench.run_bench(req)
    assert e.value.code == "no_device" and "no CUDA device" in e.value.reason
    monkeypatch.setitem(sys.modules, "torch", None)            # torch not installed at all
    with pytest.raises(BridgeError) as e:
        bench.run_bench(req)
    assert e.value.code == "no_device"
    assert not (tmp_path / "rep").exists()


def test_run_bench_bad_requests(tmp_path):
    for req, words in (({"outs": [], "report_dir": str(tmp_path)}, "outs"),
                       ({"outs": [str(tmp_path / "missing")], "report_dir": str(tmp_path)}, "no such folder"),
                       ({"outs": [str(tmp_path)]}, "report_dir"),
                       ({"outs": [str(tmp_path)], "report_dir": str(tmp_path), "runs": -3}, "runs")):
        with pytest.raises(BridgeError) as e:
            bench.run_bench(dict(req, command="bench"))
        assert e.value.code == "input" and words in e.value.reason


def test_plugin_discovery_and_case_matching(tmp_path, written):
    _, doc = written
    out = tmp_path / "gathernd"
    p = out / "plugins" / "GatherND_0123abcd"
    p.mkdir(parents=True)
    m = onnx.load(str(ROOT / "bench" / "models" / "gathernd.onnx"))
    onnx.save(m, str(p / "GatherND_0123abcd.onnx"))
    onnx.save(m, str(out / "gathernd.onnx"))
    (p / "GatherND_0123abcd.plugin.json").write_text(json.dumps({"prefix": "tpat_GatherND_0123abcd"}))
    (out / "plugins" / "build").mkdir()
    found = bench.discover_plugins(str(out))
    assert [(n, meta["prefix"]) for n, _, meta in found] == [("GatherND_0123abcd", "tpat_GatherND_0123abcd")]
    cases = {c["id"]: c for c in doc["cases"]}
    assert bench.match_case(cases, str(out), "GatherND")["id"] == "gathernd"
    assert bench.match_case(cases, str(out), "TopK") is None
    with pytest.raises(BridgeError):
        bench.discover_plugins(str(tmp_path / "nothing"))


# ------------------------------------------------------------------------------------------------
# where PyTorch is installed (CPU is enough): the PyTorch table matches ONNX Runtime
# ------------------------------------------------------------------------------------------------

SMALL_SHAPES = {
    "gathernd": {"data": (2, 5, 6, 7), "indices": (2, 9, 3), "y": (2, 9, 7)},
    "scatternd": {"data": (3, 4, 5, 6), "indices": (3, 7, 3), "updates": (3, 7, 6), "y": (3, 4, 5, 6)},
    "scatternd_add": {"data": (3, 4, 5, 6), "indices": (3, 7, 3), "updates": (3, 7, 6), "y": (3, 4, 5, 6)},
    "onehot": {},
    "resize": {"x": (2, 3, 5, 7), "y": (2, 3, 20, 28)},
    "reducemax": {"x": (4, 9, 6), "y": (4, 1, 6)},
    "gridsample": {"x": (2, 3, 4, 5, 6), "grid": (2, 3, 4, 5, 3), "y": (2, 3, 3, 4, 5)},
    "scatterelements_max": {"data": (5, 12), "indices": (5, 7), "updates": (5, 7), "y": (5, 12)},
    "topk": {"x": (2, 5000)},
    "cumsum": {"x": (3, 50), "y": (3, 50)},
    "layernorm": {"x": (6, 32), "scale": (32,), "bias": (32,), "y": (6, 32)},
    "layernorm_stats": {"x": (6, 32), "scale": (32,), "bias": (32,), "y": (6, 32), "mean": (6, 1),
                        "invstd": (6, 1)},
    "rmsnorm": {"x": (6, 40), "scale": (40,), "y": (6, 40)},
    "dft": {"x": (3, 20, 1), "y": (3, 11, 2)},
    "gelu": {"x": (5, 9), "y": (5, 9)},
}


def test_torch_table_matches_onnxruntime():
    torch = pytest.importorskip("torch")
    from tpat_bridge.tools import reference as R
    for id, model, _ in suite.build_suite():
        m = copy.deepcopy(model)
        for v in list(m.graph.input) + list(m.graph.output):
            for d, n in zip(v.type.tensor_type.shape.dim, SMALL_SHAPES[id].get(v.name, ())):
                d.dim_value = n
        node, attrs, slots, gi = R._read_model(m)
        ins, ctx = bench.make_inputs(torch, node, attrs, slots, {}, 0, "cpu", set())
        fn, desc = bench.torch_impl(node.op_type, attrs, slots, torch, "cpu", len(m.graph.output))
        assert fn is not None, desc
        outs, _ = R._Runner(m).run({v.name: t.numpy() for v, t in zip(gi, ins)})
        tols = [bench.tolerance_for(ctx, R._dtype_name(o), [o.shape for o in outs]) for o in outs]
        exp = [torch.from_numpy(np.ascontiguousarray(o)) for o in outs]
        res = bench.compare_outputs(torch, node.op_type, attrs, ins, list(fn(*ins)), exp, tols)
        assert all(r["pass"] for r in res), (id, res)

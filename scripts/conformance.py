"""ONNX's backend node tests as TPAT's conformance suite (issue 14, item 5; docs/conformance.md).

  .venv/bin/python scripts/conformance.py run [--trt rtx|10|11] [--cases PATTERN,...] [--limit N]
      [--jobs N] [--timeout S] [--work out/conformance] [--report reports/conformance] [--resume]
      [--ops OP,...]
  .venv/bin/python scripts/conformance.py report [--work ...] [--report ...]   # tables from results
  .venv/bin/python scripts/conformance.py check PLUGIN_DIR CONF_DIR              # one plugin, CPU

For every case of onnx/backend/test/data/node (the onnx package in the venv) whose graph is one
node and whose test_data_set_0 holds tensors:
  1. the shape-determining inputs (SHAPE_INPUTS: Reshape's shape, TopK's K, Resize's scales/sizes,
     Pad's pads, OneHot's depth, ...) become initializers with the test's values, as a TensorRT
     user has them; the node gets a name;
  2. `tpat inspect --json --trt T` decides the scope: the node is in scope when the rules of T mark
     it unsupported, or its op is named by `--ops` (ops the parser imports but the builder cannot
     build, e.g. NonMaxSuppression: TensorRT-RTX 1.7 has no runner for it);
  3. `tpat generate --nodes <node>` (which cross-checks every tactic on the CPU against ONNX
     Runtime); the failure's reason code is the cause when no plugin is made;
  4. the test's own inputs and expected outputs are written beside the plugin as a second
     reference set, <P>/conformance/manifest.{json,txt} (the format tpat_check reads), and every
     tactic of the plugin is built for LLVM (cross_check.py's machinery) and run on it: the case
     passes when every tactic matches the test's expected outputs (|got - want| <= atol + rtol *
     |want| with the plugin's reference tolerances; integers exactly).
Each step has a time bound; a case's result is <work>/<case>/result.json; `report` writes
<report>/conformance.json and conformance.md. On the GPU machine, scripts/conformance_gpu.sh runs
the same manifests through each plugin's launcher with tpat_check.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))

NODE_NAME = "conformance_node"

# Inputs whose values determine output shapes or are constants in every real model (weights,
# quantization parameters): op -> input positions turned into initializers. One table, documented
# in docs/conformance.md.
SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,),
    "Expand": (1,),
    "Tile": (1,),
    "TopK": (1,),
    "Resize": (1, 2, 3),
    "Upsample": (1,),
    "Pad": (1, 2, 3),
    "OneHot": (1,),
    "ConstantOfShape": (0,),
    "Range": (0, 1, 2),
    "Slice": (1, 2, 3, 4),
    "Squeeze": (1,),
    "Unsqueeze": (1,),
    "Split": (1,),
    "CenterCropPad": (1,),
    "Col2Im": (1, 2),
    "DFT": (1, 2),
    "STFT": (1, 3),
    "CumSum": (1,),
    "Trilu": (1,),
    "NonMaxSuppression": (2, 3, 4),
    "Clip": (1, 2),
    "Dropout": (1, 2),
    "AffineGrid": (1,),
    "MaxUnpool": (2,),
    "BlackmanWindow": (0,),
    "HannWindow": (0,),
    "HammingWindow": (0,),
    "MelWeightMatrix": (0, 1, 2, 3, 4),
    "ReduceSum": (1,),
    "ReduceMean": (1,),
    "ReduceMax": (1,),
    "ReduceMin": (1,),
    "ReduceProd": (1,),
    "ReduceL1": (1,),
    "ReduceL2": (1,),
    "ReduceLogSum": (1,),
    "ReduceLogSumExp": (1,),
    "ReduceSumSquare": (1,),
    "QuantizeLinear": (1, 2),
    "DequantizeLinear": (1, 2),
    "QLinearConv": (1, 2, 3, 4, 5, 6, 7, 8),
    "QLinearMatMul": (1, 2, 4, 5, 6, 7),
    "ConvInteger": (1, 2, 3),
    "MatMulInteger": (2, 3),
    "Conv": (1, 2),
    "ConvTranspose": (1, 2),
    "BatchNormalization": (1, 2, 3, 4),
    "InstanceNormalization": (1, 2),
    "LayerNormalization": (1, 2),
    "GroupNormalization": (1, 2),
    "RMSNormalization": (1,),
    "PRelu": (1,),
    "DeformConv": (1, 3),
}

DEFAULT_TOL = {"float32": (1e-4, 1e-3), "float16": (1e-2, 1e-2), "bfloat16": (5e-2, 5e-2), "float64": (1e-6, 1e-5)}


def node_tests_dir() -> Path:
    import onnx.backend.test as t

    return Path(t.__file__).resolve().parent / "data" / "node"


def tpat_binary() -> str:
    return os.environ.get("TPAT_BIN") or str(ROOT / ".build" / "debug" / "tpat")


# ------------------------------------------------------------------------------------------------
# preparing a case
# ------------------------------------------------------------------------------------------------


class CaseError(Exception):
    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


def load_case(case_dir: Path):
    """(model, inputs, outputs) of a backend test case; inputs/outputs are numpy arrays in graph
    order. Raises CaseError for what is not a single-node tensor case."""
    model = onnx.load(str(case_dir / "model.onnx"))
    if len(model.graph.node) != 1:
        raise CaseError("not_single_node", f"{len(model.graph.node)} nodes")
    data = case_dir / "test_data_set_0"
    if not data.is_dir():
        raise CaseError("no_test_data", "no test_data_set_0")

    def read(kind, n):
        arrs = []
        for i in range(n):
            p = data / f"{kind}_{i}.pb"
            if not p.exists():
                raise CaseError("non_tensor_test_data", f"{p.name} missing")
            t = onnx.TensorProto()
            try:
                t.ParseFromString(p.read_bytes())
                arr = numpy_helper.to_array(t)
            except Exception as e:  # noqa: BLE001 - sequences, optionals, maps
                raise CaseError("non_tensor_test_data", f"{p.name}: {type(e).__name__}") from None
            if not t.name and not t.dims and not t.raw_data and arr.size == 0 and t.data_type == 0:
                raise CaseError("non_tensor_test_data", f"{p.name} is not a tensor")
            arrs.append(arr)
        return arrs

    for vi in list(model.graph.input) + list(model.graph.output):
        if not vi.type.HasField("tensor_type"):
            raise CaseError("non_tensor_test_data", f"{vi.name} is not a tensor")
    inits = {t.name for t in model.graph.initializer}
    real_inputs = [vi for vi in model.graph.input if vi.name not in inits]
    return model, read("input", len(real_inputs)), read("output", len(model.graph.output))


def prepare(model: onnx.ModelProto, inputs: list) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of the case's model with the node named NODE_NAME and the SHAPE_INPUTS positions
    that are graph inputs turned into initializers holding the test's values. Returns the model
    and the names turned into constants."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    node = m.graph.node[0]
    node.name = NODE_NAME
    inits = {t.name for t in m.graph.initializer}
    graph_inputs = [vi for vi in m.graph.input if vi.name not in inits]
    values = {vi.name: arr for vi, arr in zip(graph_inputs, inputs)}
    positions = SHAPE_INPUTS.get(node.op_type, ()) if node.domain in ("", "ai.onnx") else ()
    made = []
    for pos in positions:
        if pos < len(node.input) and node.input[pos] in values and node.input[pos] not in made:
            name = node.input[pos]
            m.graph.initializer.append(numpy_helper.from_array(values[name], name))
            made.append(name)
    keep = [vi for vi in m.graph.input if vi.name not in made]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    return m, made


# ------------------------------------------------------------------------------------------------
# the conformance reference set beside a plugin
# ------------------------------------------------------------------------------------------------

_SAME_WIDTH = {("uint64", "int64"), ("uint32", "int32"), ("uint16", "int16"), ("uint8", "int8")}


def _as_plugin_dtype(arr: np.ndarray, want: str) -> np.ndarray:
    from tpat_bridge.tools.reference import _dtype_name, _np_dtype

    have = _dtype_name(arr)
    if have == want:
        return arr
    if (have, want) in _SAME_WIDTH or (want, have) in _SAME_WIDTH:
        return arr.view(_np_dtype(want))
    if have == "float64" and want == "float32":
        return arr.astype(np.float32)
    raise CaseError("io_mismatch", f"test tensor is {have}, the plugin takes {want}")


def write_conformance_set(
    plugin_dir: Path, prepared: onnx.ModelProto, inputs: list, outputs: list, test_model: onnx.ModelProto
) -> Path:
    """<P>/conformance/: the test's inputs and expected outputs in the plugin's canonical order and
    dtypes, as manifest.json + manifest.txt (docs/reference-data.md), tolerances from the plugin's
    reference manifest."""
    from tpat_bridge.tools.reference import ONNX_TO_NAME, _dtype_name, _fmt_float, _raw

    name = plugin_dir.name
    pmodel = onnx.load(str(plugin_dir / f"{name}.onnx"))
    pinits = {t.name for t in pmodel.graph.initializer}
    p_in = [vi for vi in pmodel.graph.input if vi.name not in pinits]
    node = prepared.graph.node[0]
    inits = {t.name for t in prepared.graph.initializer}
    orig_inits = {t.name for t in test_model.graph.initializer}
    orig_inputs = [vi.name for vi in test_model.graph.input if vi.name not in orig_inits]
    values = dict(zip(orig_inputs, inputs))
    node_in = [n for n in node.input if n and n not in inits]
    if len(node_in) != len(p_in):
        raise CaseError("io_mismatch", f"the node has {len(node_in)} runtime inputs, the plugin {len(p_in)}")
    expected = {vi.name: arr for vi, arr in zip(test_model.graph.output, outputs)}
    node_out = [n for n in node.output if n]
    if len(node_out) != len(pmodel.graph.output):
        raise CaseError("io_mismatch", f"the node has {len(node_out)} outputs, the plugin {len(pmodel.graph.output)}")
    try:
        ref = json.loads((plugin_dir / "reference" / "manifest.json").read_text())
        tols = [(o["atol"], o["rtol"]) for o in ref["cases"][0]["outputs"]]
    except (OSError, ValueError, KeyError, IndexError):
        tols = []
    d = plugin_dir / "conformance"
    if d.exists():
        shutil.rmtree(d)
    (d / "case0").mkdir(parents=True)
    lines = [
        "# ONNX backend test data for this plugin (scripts/conformance.py); paths relative to this file",
        "format 1",
        f"plugin {name}",
        f"prefix tpat_{name}",
        f"op {node.op_type}",
        "seed 0",
        "case 0",
    ]
    jin, jout = [], []
    for i, (tname, vi) in enumerate(zip(node_in, p_in)):
        arr = _as_plugin_dtype(values[tname], ONNX_TO_NAME[vi.type.tensor_type.elem_type])
        rel = f"case0/in{i}.bin"
        data = _raw(arr)
        (d / rel).write_bytes(data)
        dt = _dtype_name(arr)
        lines.append(f"input {i} {dt} {arr.ndim}{''.join(' ' + str(x) for x in arr.shape)} {rel}")
        jin.append(
            {"index": i, "name": f"in{i}", "dtype": dt, "shape": list(arr.shape), "file": rel, "bytes": len(data)}
        )
    for j, (tname, vo) in enumerate(zip(node_out, pmodel.graph.output)):
        if tname not in expected:
            raise CaseError("io_mismatch", f"no expected data for output {j}")
        arr = _as_plugin_dtype(expected[tname], ONNX_TO_NAME[vo.type.tensor_type.elem_type])
        dt = _dtype_name(arr)
        atol, rtol = tols[j] if j < len(tols) else DEFAULT_TOL.get(dt, (0.0, 0.0))
        rel = f"case0/out{j}.bin"
        data = _raw(arr)
        (d / rel).write_bytes(data)
        lines.append(
            f"output {j} {dt} {arr.ndim}{''.join(' ' + str(x) for x in arr.shape)} {rel} {_fmt_float(atol)} {_fmt_float(rtol)}"
        )
        jout.append(
            {
                "index": j,
                "name": f"out{j}",
                "dtype": dt,
                "shape": list(arr.shape),
                "file": rel,
                "bytes": len(data),
                "atol": float(atol),
                "rtol": float(rtol),
            }
        )
    lines.append("end")
    manifest = {
        "format": 1,
        "plugin": name,
        "prefix": f"tpat_{name}",
        "op": node.op_type,
        "domain": node.domain,
        "seed": 0,
        "symbols": [],
        "notes": ["ONNX backend test data"],
        "cases": [{"index": 0, "bindings": {}, "inputs": jin, "outputs": jout}],
    }
    (d / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (d / "manifest.txt").write_text("\n".join(lines) + "\n")
    return d


def tactic_lowerings(plugin_dir: Path) -> list[str]:
    """ "tpat" or "tvm" per tactic, in tactic order (the rule of PluginSource.lowering(of:))."""
    name = plugin_dir.name
    out, k = [], 0
    while True:
        p = plugin_dir / (f"{name}.plan.json" if k == 0 else f"{name}.tactic{k}.plan.json")
        if not p.exists():
            return out
        plan = json.loads(p.read_text())
        # the plan's `lowering` field (a TPAT lowering's registry name, or "tvm-default"); plans
        # no longer say it in `fixups`, which made every tactic "tvm" here
        low = plan.get("lowering")
        if low is None:
            low = (
                "tpat" if any(f.lower().startswith("tpat lowering") for f in plan.get("fixups", [])) else "tvm-default"
            )
        out.append("tvm" if low == "tvm-default" else "tpat")
        k += 1


def check_plugin(plugin_dir: Path, conf_dir: Path) -> dict:
    """Every tactic built for LLVM and run on the conformance set (cross_check.py)."""
    from tpat_bridge.tools import cross_check

    manifest = json.loads((conf_dir / "manifest.json").read_text())
    res = []
    for k, lowering in enumerate(tactic_lowerings(plugin_dir)):
        r = cross_check._run_lowering(
            str(plugin_dir / f"{plugin_dir.name}.onnx"), lowering, str(conf_dir), manifest["cases"]
        )
        res.append({"tactic": k, "lowering": lowering, **r})
    for t in res:
        if t["max_error"] == float("inf"):
            t["max_error"] = 1e308
    return {"tactics": res}


# ------------------------------------------------------------------------------------------------
# one case end to end
# ------------------------------------------------------------------------------------------------


def _run(cmd, timeout, cwd=None):
    """(returncode or None on timeout, stdout, stderr); the child gets its own process group,
    killed whole on timeout."""
    p = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, start_new_session=True
    )
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        out, err = p.communicate()
        return None, out, err


def _last_line(text: str) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def run_case(
    case_dir: Path, work: Path, trt: str, timeout: float, scope_only: bool = False, force_ops: tuple = ()
) -> dict:
    name = case_dir.name
    r: dict = {"case": name, "op": None, "inScope": False, "plugin": None, "passed": False, "code": None, "detail": ""}
    t0 = time.monotonic()
    try:
        model, inputs, outputs = load_case(case_dir)
    except CaseError as e:
        r.update(code=e.code, detail=e.detail, considered=False)
        return r
    except Exception as e:  # noqa: BLE001
        r.update(code="unreadable", detail=f"{type(e).__name__}: {e}"[:300], considered=False)
        return r
    r["considered"] = True
    node = model.graph.node[0]
    r["op"] = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
    wd = work / name
    if wd.exists():
        shutil.rmtree(wd)
    wd.mkdir(parents=True)
    prepared, made = prepare(model, inputs)
    r["constants"] = made
    onnx.save(prepared, str(wd / "model.onnx"))
    rc, out, err = _run([tpat_binary(), "inspect", str(wd / "model.onnx"), "--json", "--trt", trt], 120)
    if rc is None or rc != 0:
        r.update(code="inspect_failed", detail=_last_line(err) or f"exit {rc}")
        return r
    rep = json.loads(out)
    verdict = next((n for n in rep["nodes"] if n["name"] == NODE_NAME), None)
    r["verdict"] = verdict["verdict"] if verdict else None
    forced = node.op_type in force_ops and node.domain in ("", "ai.onnx")
    if not verdict or (verdict["verdict"] != "unsupported" and not forced):
        r["code"] = "imported_by_tensorrt"
        return r
    r["inScope"] = True
    r["rejection"] = verdict.get("reason", "")[:200] if verdict["verdict"] == "unsupported" else "forced by --ops"
    if scope_only:
        r["code"] = "not_run"
        return r
    if verdict.get("blocker"):
        r.update(code=verdict["blocker"]["code"], detail=verdict["blocker"]["reason"][:300])
        return r
    gen_out = wd / "out"
    env_timeout = max(30, int(timeout))
    rc, out, err = _run(
        [tpat_binary(), "generate", str(wd / "model.onnx"), "--nodes", NODE_NAME, "-o", str(gen_out)], env_timeout
    )
    (wd / "generate.log").write_text((out or "") + (err or ""))
    if rc is None:
        r.update(code="generate_timeout", detail=f"tpat generate ran over {env_timeout} s")
        return r
    try:
        greport = json.loads((gen_out / "tpat-generate.json").read_text())
    except (OSError, ValueError):
        r.update(code="generate_failed", detail=_last_line(err) or f"exit {rc}")
        return r
    if not greport.get("plugins"):
        f = (greport.get("failures") or [{}])[0]
        r.update(code=f.get("code") or "generate_failed", detail=(f.get("reason") or _last_line(err))[:300])
        return r
    plugin = greport["plugins"][0]
    r["plugin"] = plugin["name"]
    r["tactics"] = plugin.get("tactics")
    pdir = gen_out / "plugins" / plugin["name"]
    try:
        conf = write_conformance_set(pdir, prepared, inputs, outputs, model)
    except CaseError as e:
        r.update(code=e.code, detail=e.detail)
        return r
    left = max(30.0, timeout - (time.monotonic() - t0))
    rc, out, err = _run([sys.executable, str(Path(__file__).resolve()), "check", str(pdir), str(conf)], left)
    if rc is None:
        r.update(code="check_timeout", detail=f"the LLVM check ran over {int(left)} s")
        return r
    if rc != 0:
        r.update(code="check_failed", detail=_last_line(err))
        return r
    tactics = json.loads(out)["tactics"]
    r["check"] = tactics
    bad = [t for t in tactics if t["status"] == "disagrees"]
    skipped = [t for t in tactics if t["status"] == "skipped"]
    if bad:
        r.update(
            code="wrong_numerics",
            detail="; ".join(
                f"tactic {t['tactic']} ({t['lowering']}): max error {t['max_error']:.3g} {t['detail']}" for t in bad
            )[:300],
        )
    elif skipped:
        r.update(
            code="not_checked_on_cpu", detail="; ".join(f"tactic {t['tactic']}: {t['detail']}" for t in skipped)[:300]
        )
    elif not tactics:
        r.update(code="no_tactics", detail="the plugin has no plan file")
    else:
        r.update(passed=True, code="passed")
    r["seconds"] = round(time.monotonic() - t0, 1)
    return r


# ------------------------------------------------------------------------------------------------
# driver and report
# ------------------------------------------------------------------------------------------------


def select_cases(patterns: list[str] | None) -> list[Path]:
    root = node_tests_dir()
    cases = sorted(p for p in root.iterdir() if (p / "model.onnx").exists())
    if patterns:
        cases = [c for c in cases if any(fnmatch.fnmatch(c.name, pat) for pat in patterns)]
    return cases


def cmd_run(args) -> int:
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    cases = select_cases(args.cases.split(",") if args.cases else None)
    if args.limit:
        cases = cases[: args.limit]
    # Round robin over op types (the k-th case of every op before any op's (k+1)-th), so a run cut
    # short still samples every op; results do not depend on the order.
    by_op: dict[str, list[Path]] = {}
    for c in cases:
        by_op.setdefault(re.sub(r"^test_([a-z0-9]+).*$", r"\1", c.name), []).append(c)
    cases = [
        v[k] for k in range(max((len(v) for v in by_op.values()), default=0)) for v in by_op.values() if k < len(v)
    ]

    def finished(c: Path) -> bool:
        try:
            return json.loads((work / c.name / "result.json").read_text()).get("code") != "not_run"
        except (OSError, ValueError):
            return False

    todo = [c for c in cases if not (args.resume and finished(c))]
    print(f"{len(cases)} cases, {len(todo)} to run, {args.jobs} at a time, {args.timeout:.0f} s per case", flush=True)

    def one(c: Path):
        try:
            force = tuple(o for o in (args.ops or "").split(",") if o)
            res = run_case(c, work, args.trt, args.timeout, args.scope_only, force)
        except Exception as e:  # noqa: BLE001 - one case's failure is its own
            res = {
                "case": c.name,
                "op": None,
                "considered": True,
                "inScope": False,
                "plugin": None,
                "passed": False,
                "code": "harness_error",
                "detail": f"{type(e).__name__}: {e}"[:300],
            }
        (work / c.name).mkdir(parents=True, exist_ok=True)
        (work / c.name / "result.json").write_text(json.dumps(res, indent=1) + "\n")
        return res

    done = 0
    with cf.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        for res in ex.map(one, todo):
            done += 1
            if res.get("inScope"):
                print(f"[{done}/{len(todo)}] {res['case']}: {res['code']} {res.get('detail', '')[:120]}", flush=True)
    (work / "run.json").write_text(json.dumps({"trt": args.trt, "selected": [c.name for c in cases]}, indent=1) + "\n")
    return cmd_report(args, [c.name for c in cases])


def summarize(results: list[dict], trt: str, total_selected: int) -> dict:
    """Counts over the results; a case with code "not_run" (from --scope-only, not run since) is in
    or out of scope but was not generated: the run is then partial."""
    considered = [r for r in results if r.get("considered")]
    scope = [r for r in considered if r.get("inScope")]
    ran = [r for r in scope if r.get("code") != "not_run"]
    plugins = [r for r in ran if r.get("plugin")]
    passed = [r for r in ran if r.get("passed")]
    causes = Counter(r["code"] for r in ran if not r.get("passed"))
    return {
        "format": 1,
        "trt": trt,
        "onnx": onnx.__version__,
        "casesSelected": total_selected,
        "casesWithResult": len(results),
        "singleNodeTensorCases": len(considered),
        "inScope": len(scope),
        "inScopeRun": len(ran),
        "inScopeNotRun": len(scope) - len(ran),
        "partial": len(results) < total_selected or len(ran) < len(scope),
        "pluginsMade": len(plugins),
        "passed": len(passed),
        "causes": dict(causes.most_common()),
        "passedByOp": dict(Counter(r["op"] for r in passed).most_common()),
        "notConsidered": dict(Counter(r["code"] for r in results if not r.get("considered")).most_common()),
        "cases": sorted(ran, key=lambda r: r["case"]),
    }


def markdown(s: dict) -> str:
    lines = [
        f"# ONNX backend node tests through TPAT (TensorRT rules: {s['trt']}, onnx {s['onnx']})",
        "",
        "Generated by `scripts/conformance.py` (docs/conformance.md); numerics checked on the CPU",
        "(LLVM build of every tactic's plan) against the test's expected outputs.",
        "",
    ]
    if s["partial"]:
        lines += [
            f"**Partial run:** {s['casesWithResult']} of {s['casesSelected']} cases inspected; "
            f"{s['inScopeRun']} of the {s['inScope']} cases in scope went through generate "
            f"({s['inScopeNotRun']} not run yet).",
            "",
        ]
    lines += [
        "| node test cases | single-node tensor cases | in scope (TensorRT rejects) | in scope, run | plugins made | passed |",
        "|---|---|---|---|---|---|",
        f"| {s['casesSelected']} | {s['singleNodeTensorCases']} | {s['inScope']} | {s['inScopeRun']} | {s['pluginsMade']} | {s['passed']} |",
        "",
        "| cause (in scope, run, not passed) | cases |",
        "|---|---|",
    ]
    lines += [f"| `{k}` | {v} |" for k, v in s["causes"].items()]
    lines += [
        "",
        "Not considered: " + ", ".join(f"`{k}` {v}" for k, v in s["notConsidered"].items()),
        "",
        "| case | op | plugin | result | detail |",
        "|---|---|---|---|---|",
    ]
    for r in s["cases"]:
        det = (r.get("detail") or "").replace("|", "\\|").replace("\n", " ")[:140]
        lines.append(f"| {r['case']} | {r['op']} | {r.get('plugin') or ''} | `{r['code']}` | {det} |")
    return "\n".join(lines) + "\n"


def cmd_report(args, selected=None) -> int:
    work = Path(args.work).resolve()
    if selected is None:
        try:
            selected = json.loads((work / "run.json").read_text())["selected"]
        except (OSError, ValueError, KeyError):
            selected = [p.parent.name for p in work.glob("*/result.json")]
    results = []
    for n in selected:
        p = work / n / "result.json"
        if p.exists():
            results.append(json.loads(p.read_text()))
    s = summarize(results, args.trt, len(selected))
    rep = Path(args.report)
    rep.mkdir(parents=True, exist_ok=True)
    (rep / "conformance.json").write_text(json.dumps(s, indent=1) + "\n")
    (rep / "conformance.md").write_text(markdown(s))
    print(
        f"{s['casesWithResult']}/{s['casesSelected']} cases inspected, in scope {s['inScope']} (run {s['inScopeRun']}), "
        f"plugins {s['pluginsMade']}, passed {s['passed']}; causes {s['causes']}"
    )
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for n in ("run", "report"):
        p = sub.add_parser(n)
        p.add_argument("--trt", default="rtx", choices=["rtx", "10", "11"])
        p.add_argument("--work", default=str(ROOT / "out" / "conformance"))
        p.add_argument("--report", default=str(ROOT / "reports" / "conformance"))
        if n == "run":
            p.add_argument("--cases", help="comma-separated glob patterns of case names")
            p.add_argument("--limit", type=int, default=0)
            p.add_argument("--jobs", type=int, default=2)
            p.add_argument("--timeout", type=float, default=300.0, help="seconds per case")
            p.add_argument(
                "--resume",
                action="store_true",
                help="keep cases that already have a result (other than a --scope-only one)",
            )
            p.add_argument("--scope-only", action="store_true", help="inspect only: which cases are in scope")
            p.add_argument(
                "--ops",
                help="comma-separated op types run although the parser rules import them (e.g. "
                "NonMaxSuppression: TensorRT-RTX 1.7 parses it but builds no runner)",
            )
    c = sub.add_parser("check")
    c.add_argument("plugin_dir")
    c.add_argument("conf_dir")
    args = ap.parse_args(argv)
    if args.cmd == "check":
        print(json.dumps(check_plugin(Path(args.plugin_dir), Path(args.conf_dir))))
        return 0
    return cmd_run(args) if args.cmd == "run" else cmd_report(args)


if __name__ == "__main__":
    sys.exit(main())

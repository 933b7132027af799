"""The bridge command "bench": every plugin of every OUT folder (or every case of a prepared suite)
checked against its PyTorch baseline and timed against eager and torch.compile in one run."""

from __future__ import annotations

import ctypes
import datetime
import json
import os
import sys
import time

import onnx

from tpat_bridge.errors import BridgeError
from tpat_bridge.tools import reference as R

from . import report, shortfall
from .baselines import check_baseline
from .cases import default_traffic_code, discover_plugins, load_cases, match_case, traffic_bytes
from .check import _torch_dtype, actual_views, compare_outputs, make_inputs, tolerance_for
from .launcher import Launcher, _dims_array
from .timer import COPY_BYTES, FLUSH_BYTES, Timer, copy_bandwidth, device_info, measure, short_error, sized_copy
from .torch_refs import torch_impl

DEFAULT_RUNS = 200
DEFAULT_WARMUP = 10
TIMING_WORDS = (
    "kernel-only: each side captured in a CUDA graph, CUDA events around graph replays "
    "(a spin kernel ahead so host enqueue is not timed), median over runs; "
    "host-inclusive: Python call + torch.cuda.synchronize, median"
)


def _log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# one node: inputs, the PyTorch baseline and its timing (shared by plugins and unplanned cases)
# --------------------------------------------------------------------------------------------


class Node:
    """A one-node model read for the bench: node, attributes, slots, inputs on the GPU."""

    def __init__(self, torch, model, seed, res):
        self.node, self.attrs, self.slots, self.graph_inputs = R._read_model(model)
        self.op = self.node.op_type
        self.model = model
        res["op"] = self.op
        res["attributes"] = {k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in self.attrs.items()}
        binding = {}
        symbols = R._symbols(self.slots)
        if symbols:
            binding = R._fix_binding(self.op, self.attrs, self.slots, next(iter(R._candidates(symbols))))
            res["notes"].append(f"symbolic model: benchmarked at the first reference binding {binding}")
        notes = set()
        self.ins, self.ctx = make_inputs(torch, self.node, self.attrs, self.slots, binding, seed, "cuda", notes)
        res["notes"].extend(sorted(notes))
        self.in_shapes = [tuple(t.shape) for t in self.ins]


def _baseline(torch, nd, n_outputs, res):
    """The PyTorch function and its eager outputs (None, None when there is none or it fails)."""
    fn, desc = torch_impl(nd.op, nd.attrs, nd.slots, torch, "cuda", n_outputs)
    res["torch_impl"] = desc
    if fn is None:
        return None, None
    try:
        exp = [t.clone() for t in fn(*nd.ins)]
        torch.cuda.synchronize()
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        res["notes"].append(f"PyTorch eager failed: {short_error(e)}")
        return None, None
    low = (torch.float16, torch.bfloat16)
    if any(t.dtype in low for t in nd.ins):
        # 16-bit inputs: the check's expected values come from the same PyTorch function on the
        # inputs upcast to float32, rounded once to the output types. Eager's 16-bit kernels may
        # accumulate in 16 bits (torch.cumsum over a non-last axis of bf16 is 35 off over 4096
        # rows), which is not the answer a plugin is checked against.
        try:
            wide = [t.float() if t.dtype in low else t for t in nd.ins]
            ref = [w.to(e.dtype) for w, e in zip(fn(*wide), exp)]
            torch.cuda.synchronize()
            exp = ref
            res["check_reference"] = "PyTorch on the inputs upcast to float32"
        except Exception as e:  # noqa: BLE001 - the eager outputs stay the reference
            res["notes"].append(f"PyTorch on float32 inputs failed ({short_error(e)}): checked against eager")
    return fn, exp


def _time_torch(torch, timer, nd, fn, exp, tols, do_compile, res):
    """res["eager"] and res["compiled"]: kernel-only and host-inclusive times (compiled output
    checked against eager)."""
    res["eager"] = None
    res["compiled"] = None
    if fn is None:
        return
    res["eager"] = measure(timer, lambda: fn(*nd.ins))
    if not do_compile:
        return
    t0 = time.perf_counter()
    try:
        cfn = torch.compile(fn, dynamic=False)
        cout = [x.clone() for x in cfn(*nd.ins)]
        torch.cuda.synchronize()
        compile_s = time.perf_counter() - t0
        cchk = compare_outputs(torch, nd.op, nd.attrs, nd.ins, cout, exp, tols) if tols else None
        res["compiled"] = measure(timer, lambda: cfn(*nd.ins))
        res["compiled"]["compile_s"] = compile_s
        res["compiled"]["check_vs_eager"] = all(c["pass"] for c in cchk) if cchk is not None else None
        del cout
    except Exception as e:  # noqa: BLE001
        torch.cuda.synchronize()
        res["compiled"] = {"error": short_error(e), "compile_s": time.perf_counter() - t0}


def _derive(res, copy_gbps):
    """Effective bandwidths, % of the copy bandwidth, best PyTorch and TPAT / best PyTorch."""
    tb = res["traffic"]["bytes"] if res.get("traffic") else None

    def gbps(k):
        sec = res.get(k)
        return tb / (sec["kernel_us"] * 1e-6) / 1e9 if tb and isinstance(sec, dict) and sec.get("kernel_us") else None

    res["gbps"] = {k: gbps(k) for k in ("tpat", "eager", "compiled")}
    res["pct_copy"] = {k: (100.0 * v / copy_gbps if v and copy_gbps else None) for k, v in res["gbps"].items()}
    torch_best = [
        res[k]["kernel_us"] for k in ("eager", "compiled") if isinstance(res.get(k), dict) and res[k].get("kernel_us")
    ]
    res["best_torch_us"] = min(torch_best) if torch_best else None
    tpat = res.get("tpat")
    if torch_best and isinstance(tpat, dict) and tpat.get("kernel_us"):
        res["ratio_tpat_over_best"] = tpat["kernel_us"] / min(torch_best)
        res["tpat_slower"] = res["ratio_tpat_over_best"] > 1.0
    else:
        res["ratio_tpat_over_best"] = None
        res["tpat_slower"] = None


def size_matched_copy(torch, timer, r, cache, copy_gbps):
    """A memory-bound row's size-matched copy (r["size_copy"]: minimal traffic / 2 bytes copied,
    timed like the case; one measurement per size, in `cache`) and its verdict (r["copy_verdict"]).
    A failed copy is recorded in the row, never raised."""
    if r.get("bound", "memory") != "memory" or not (r.get("traffic") or {}).get("bytes"):
        return
    if r.get("status") not in ("ok", "mismatch", "not_planned"):
        return
    n = int(r["traffic"]["bytes"]) // 2
    if n not in cache:
        try:
            cache[n] = sized_copy(timer, n)
        except Exception as e:  # noqa: BLE001 - an OOM or CUDA error: the row says so
            cache[n] = {"bytes_copied": n, "error": short_error(e)}
            try:
                torch.cuda.synchronize()
            except Exception:  # noqa: BLE001 - a sticky CUDA error: the next case reports it
                pass
    sc = dict(cache[n])
    if sc.get("kernel_us"):
        sc["gbps"] = 2 * n / (sc["kernel_us"] * 1e-6) / 1e9
        sc["pct_copy"] = 100.0 * sc["gbps"] / copy_gbps if copy_gbps else None
    r["size_copy"] = sc
    if (r.get("pct_copy") or {}).get("tpat") is not None:
        r["copy_verdict"] = shortfall.verdict(r, report.COPY_PCT_TARGET)


def _traffic(case, in_shapes, in_dtypes, out_shapes, out_dtypes):
    if case and case.get("traffic", {}).get("code"):
        code, words, src = case["traffic"]["code"], case["traffic"].get("words", ""), "cases.json"
    else:
        code, words, src = (
            default_traffic_code(len(in_shapes), len(out_shapes)),
            "every input and output once (no case formula)",
            "default",
        )
    tb = traffic_bytes(code, list(zip(in_shapes, in_dtypes)), list(zip(out_shapes, out_dtypes)))
    return {"bytes": tb, "code": code, "words": words, "source": src}


def _case_fields(case):
    """What a row repeats from its case: variant words and the memory-bound flag."""
    if not case:
        return {}
    return {k: case[k] for k in ("variant", "bound", "bound_why") if k in case}


# --------------------------------------------------------------------------------------------
# one plugin: launcher, check of every tactic, timing of every tactic
# --------------------------------------------------------------------------------------------


class _Bound:
    """A plugin's launcher bound to the inputs, freshly allocated outputs and a workspace."""

    def __init__(self, torch, out_dir, name, meta, nd, res):
        lib = os.path.join(out_dir, "plugins", "build", "libtpat_kernels.so")
        self.prefix = meta.get("prefix") or f"tpat_{name}"
        self.L = Launcher(lib, self.prefix)
        self.out_dtypes = meta.get("output_dtypes") or [
            R.ONNX_TO_NAME[vi.type.tensor_type.elem_type] for vi in nd.model.graph.output
        ]
        # the node's outputs, then the size tensors of data-dependent ones (docs/kernel-plan.md)
        self.n_node = len(nd.model.graph.output)
        self.data_dependent = meta.get("data_dependent") or []
        n_all = len(self.out_dtypes)
        outs_dims = _dims_array([()] * n_all)
        self._rc(self.L.output_dims(_dims_array(nd.in_shapes), outs_dims), f"output_dims for {nd.in_shapes}")
        self.out_shapes = [tuple(outs_dims[j].d[k] for k in range(outs_dims[j].nb_dims)) for j in range(n_all)]
        ws = ctypes.c_size_t(0)
        self._rc(self.L.workspace_size(_dims_array(nd.in_shapes), ctypes.byref(ws)), "workspace_size")
        self.workspace = torch.empty(max(1, ws.value), dtype=torch.uint8, device="cuda") if ws.value else None
        res["workspace_bytes"] = int(ws.value)
        self._rc(self.L.initialize(), "initialize")
        self.outs = [
            torch.empty(s, dtype=_torch_dtype(torch, d), device="cuda")
            for s, d in zip(self.out_shapes, self.out_dtypes)
        ]
        self.L.bind(
            nd.in_shapes,
            [t.data_ptr() for t in nd.ins],
            [t.data_ptr() for t in self.outs],
            self.workspace.data_ptr() if self.workspace is not None else 0,
        )
        self.n_tactics = int(self.L.num_tactics())

    def _rc(self, rc, what):
        if rc != 0:
            raise BridgeError("launcher", f"{self.prefix}_{what} returned {rc}")


def _check_tactics(torch, nd, b, exp, tols, res):
    """Runs every tactic once on outputs pre-filled with 0x7F bytes and compares with eager."""
    stream = torch.cuda.current_stream().cuda_stream
    checks, rows = [], []
    for t in range(b.n_tactics):
        for o in b.outs:
            o.reshape(-1).view(torch.uint8).fill_(0x7F)  # reshape: a 0-D size tensor has no byte view
        rc = b.L.enqueue(t, stream)
        torch.cuda.synchronize()
        if rc != 0:
            rows.append({"tactic": t, "error": f"enqueue returned {rc}"})
            continue
        got = actual_views(b.data_dependent, b.outs, b.n_node)
        chk = compare_outputs(torch, nd.op, nd.attrs, nd.ins, got, exp, tols) if exp is not None else None
        checks.append({"tactic": t, "outputs": chk})
        rows.append({"tactic": t})
    res["check"] = {
        "against": (res.get("check_reference") or "PyTorch eager") if exp is not None else None,
        "pass": (all(all(c["pass"] for c in k["outputs"]) for k in checks) if exp is not None and checks else None),
        "tactics": checks,
    }
    return rows


def _time_tactics(torch, timer, b, rows, res):
    """Times every tactic that ran; res["tpat"] is the fastest."""
    best = None
    for row in rows:
        if "error" in row:
            continue

        def launch(t=row["tactic"]):
            rc = b.L.enqueue(t, torch.cuda.current_stream().cuda_stream)
            if rc != 0:
                raise BridgeError("launcher", f"{b.prefix}_enqueue returned {rc} (tactic {t})")

        row.update(measure(timer, launch))
        if best is None or row["kernel"]["median_us"] < best["kernel"]["median_us"]:
            best = row
    res["tactics"] = rows
    if best is None:
        raise BridgeError("launcher", "; ".join(r.get("error", "") for r in rows))
    res["tpat"] = {
        "tactic": best["tactic"],
        "kernel_us": best["kernel"]["median_us"],
        "kernel": best["kernel"],
        "host_us": best["host"]["median_us"],
        "graph": best["graph"],
        "inner": best["inner"],
    }


def bench_plugin(torch, timer, out_dir, name, pdir, meta, case, seed, do_compile, copy_gbps):
    res = {
        "out": os.path.abspath(out_dir),
        "plugin": name,
        "case": case["id"] if case else None,
        "status": "ok",
        "error": None,
        "notes": [],
        **_case_fields(case),
    }
    nd = Node(torch, onnx.load(os.path.join(pdir, f"{name}.onnx")), seed, res)
    in_dtypes = meta.get("input_dtypes") or [R.ONNX_TO_NAME[vi.type.tensor_type.elem_type] for vi in nd.graph_inputs]
    res["inputs"] = [{"dtype": d, "shape": list(s)} for d, s in zip(in_dtypes, nd.in_shapes)]
    b = _Bound(torch, out_dir, name, meta, nd, res)
    res["outputs"] = [{"dtype": d, "shape": list(s)} for d, s in zip(b.out_dtypes, b.out_shapes)]
    res["num_tactics"] = b.n_tactics
    res["traffic"] = _traffic(case, nd.in_shapes, in_dtypes, b.out_shapes, b.out_dtypes)
    fn, exp = _baseline(torch, nd, b.n_node, res)
    tols = [tolerance_for(nd.ctx, d, b.out_shapes) for d in b.out_dtypes]
    rows = _check_tactics(torch, nd, b, exp, tols, res)
    _time_tactics(torch, timer, b, rows, res)
    _time_torch(torch, timer, nd, fn, exp, tols, do_compile, res)
    _derive(res, copy_gbps)
    if res["check"]["pass"] is False:
        res["status"] = "mismatch"
    b.L.terminate()
    return res


def bench_unplanned(torch, timer, case, reason, seed, do_compile, copy_gbps):
    """A case TPAT did not plan (or whose lowering has not landed): its PyTorch baseline is
    still timed, so the report shows what TPAT would have to beat."""
    res = {
        "out": None,
        "plugin": None,
        "case": case["id"],
        "status": "not_planned",
        "error": reason,
        "notes": [],
        **_case_fields(case),
    }
    nd = Node(torch, onnx.load(case["model_path"]), seed, res)
    res["inputs"] = [{"dtype": i["dtype"], "shape": i["shape"]} for i in case["inputs"]]
    res["outputs"] = [{"dtype": o["dtype"], "shape": o["shape"]} for o in case["outputs"]]
    fn, exp = _baseline(torch, nd, len(case["outputs"]), res)
    if exp is not None:
        out_shapes = [tuple(t.shape) for t in exp]
        res["outputs"] = [{"dtype": o["dtype"], "shape": list(s)} for o, s in zip(case["outputs"], out_shapes)]
        res["traffic"] = _traffic(
            case, nd.in_shapes, [i["dtype"] for i in case["inputs"]], out_shapes, [o["dtype"] for o in case["outputs"]]
        )
    _time_torch(torch, timer, nd, fn, exp, None, do_compile, res)
    _derive(res, copy_gbps)
    return res


# --------------------------------------------------------------------------------------------
# the run: request, work list, loop
# --------------------------------------------------------------------------------------------


def _parse_request(request):
    outs = request.get("outs") or []
    suite_dir = request.get("suite_dir")
    if not isinstance(outs, list) or not all(isinstance(o, str) for o in outs) or not (outs or suite_dir):
        raise BridgeError("input", "bench: 'outs' must be a non-empty list of OUT folders (or give 'suite_dir')")
    if suite_dir is not None and (not isinstance(suite_dir, str) or not os.path.isdir(suite_dir)):
        raise BridgeError("input", f"bench: no such suite folder {suite_dir}")
    if suite_dir and not request.get("cases"):
        raise BridgeError("input", "bench: 'suite_dir' needs 'cases' (bench/cases.json)")
    report_dir = request.get("report_dir")
    if not isinstance(report_dir, str) or not report_dir:
        raise BridgeError("input", "bench: 'report_dir' is required")
    for o in outs:
        if not os.path.isdir(o):
            raise BridgeError("input", f"bench: no such folder {o}")
    runs = int(request.get("runs") or DEFAULT_RUNS)
    warmup = int(request.get("warmup") if request.get("warmup") is not None else DEFAULT_WARMUP)
    if runs < 1 or warmup < 0:
        raise BridgeError("input", "bench: runs must be >= 1 and warmup >= 0")
    return {
        "outs": outs,
        "suite_dir": suite_dir,
        "report_dir": report_dir,
        "runs": runs,
        "warmup": warmup,
        "flush": bool(request.get("flush_l2", False)),
        "seed": int(request.get("seed") or 0),
        "compile": bool(request.get("compile", True)),
        "stem": request.get("name") or "bench",
        "budget": request.get("time_budget_s"),
        "cases": load_cases(request.get("cases")),
        "only": request.get("only"),
        "resume": bool(request.get("resume", False)),
        "copy_bytes": int(request.get("copy_bytes") or COPY_BYTES),
        "flush_bytes": int(request.get("flush_bytes") or FLUSH_BYTES),
    }


def _import_torch():
    try:
        import torch  # lazy: torch exists on the GPU machine only
    except ImportError as e:
        raise BridgeError("no_device", f"bench needs PyTorch with CUDA: {e}")
    if not torch.cuda.is_available() or torch.cuda.device_count() < 1:
        raise BridgeError("no_device", "bench: no CUDA device (torch.cuda.is_available() is False)")
    return torch


def _prepared(suite_dir):
    """bench/prepare.py's record: {case id: {"status", "reason"}} (empty when absent)."""
    p = os.path.join(suite_dir, "prepare.json")
    if not os.path.isfile(p):
        return {}
    with open(p) as f:
        return {c["id"]: c for c in json.load(f).get("cases", [])}


def work_list(cfg):
    """[("plugin", out_dir, name, pdir, meta, case) | ("unplanned", case, reason) | ("error", row)]:
    the suite's cases in cases.json order first, then the plain OUT folders."""
    items = []
    if cfg["suite_dir"]:
        prepared = _prepared(cfg["suite_dir"])
        for cid, case in cfg["cases"].items():
            if cfg["only"] and cid not in cfg["only"]:
                continue
            out = os.path.join(cfg["suite_dir"], cid)
            built = os.path.isfile(os.path.join(out, "plugins", "build", "libtpat_kernels.so"))
            if case.get("requires"):
                items.append(("unplanned", case, f"not planned: requires {case['requires']}"))
            elif not built:
                why = prepared.get(cid, {}).get("reason") or "no built OUT folder in the suite folder"
                items.append(("unplanned", case, f"not planned: {why}"))
            else:
                items.extend(_plugins_of(out, cfg["cases"], forced=case))
    for out in cfg["outs"]:
        items.extend(_plugins_of(out, cfg["cases"]))
    return items


def _plugins_of(out_dir, cases, forced=None):
    try:
        plugins = discover_plugins(out_dir)
    except BridgeError as e:
        return [("error", {"out": os.path.abspath(out_dir), "plugin": None, "status": "error", "error": e.reason})]
    if not plugins:
        return [
            (
                "error",
                {
                    "out": os.path.abspath(out_dir),
                    "plugin": None,
                    "case": forced["id"] if forced else None,
                    "status": "error",
                    "error": "no plugins in this OUT folder (nothing was converted)",
                },
            )
        ]
    items = []
    for name, pdir, meta in plugins:
        op = _op_of(pdir, name)
        case = forced if forced and forced.get("op") == op else match_case(cases, out_dir, op)
        items.append(("plugin", out_dir, name, pdir, meta, case))
    return items


def _run_item(torch, timer, cfg, item, copy_gbps):
    if item[0] == "unplanned":
        _, case, reason = item
        _log(f"{case['id']} ({case['op']}): {reason}; timing PyTorch only")
        return bench_unplanned(torch, timer, case, reason, cfg["seed"], cfg["compile"], copy_gbps)
    _, out_dir, name, pdir, meta, case = item
    _log(f"{name} ({case['id'] if case else _op_of(pdir, name)})")
    return bench_plugin(torch, timer, out_dir, name, pdir, meta, case, cfg["seed"], cfg["compile"], copy_gbps)


def _failed_row(item, status, error):
    if item[0] == "unplanned":
        return {
            "case": item[1]["id"],
            "op": item[1]["op"],
            "plugin": None,
            "out": None,
            "status": status,
            "error": f"{item[2]}; {error}",
            **_case_fields(item[1]),
        }
    _, out_dir, name, pdir, _, case = item
    return {
        "out": os.path.abspath(out_dir),
        "plugin": name,
        "op": _op_of(pdir, name),
        "case": case["id"] if case else None,
        "status": status,
        "error": error,
        **_case_fields(case),
    }


def item_key(item):
    """The identity of a work item, matching `row_key` of its result row (for --resume)."""
    if item[0] == "unplanned":
        return f"{item[1]['id']}|None"
    if item[0] == "error":
        return row_key(item[1])
    return f"{item[5]['id'] if item[5] else None}|{item[2]}"


def row_key(row):
    return f"{row.get('case')}|{row.get('plugin')}"


def _new_doc(cfg, info, copy, timer):
    return {
        "format": 1,
        "tool": "tpat bench",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": info,
        "copy": copy,
        "calls": 1,
        "settings": {
            "runs": cfg["runs"],
            "warmup": cfg["warmup"],
            "flush_l2": cfg["flush"],
            "flush_bytes": timer.flush.numel() if timer.flush is not None else 0,
            "compile": cfg["compile"],
            "seed": cfg["seed"],
            "timing": TIMING_WORDS,
        },
        "results": [],
    }


def _resumed(cfg, json_path, doc):
    """With "resume": the rows of an earlier call of the same run (same device and settings) are
    kept and their items not run again; skipped rows are run again. {key: row}."""
    if not cfg["resume"] or not os.path.isfile(json_path):
        return {}
    with open(json_path) as f:
        prev = json.load(f)
    if (
        prev.get("device", {}).get("name") != doc["device"]["name"]
        or prev.get("settings", {}).get("flush_l2") != cfg["flush"]
    ):
        raise BridgeError("input", f"bench: cannot resume {json_path}: another device or L2 setting")
    doc["copy"] = prev.get("copy", doc["copy"])  # one copy bandwidth for the whole run
    doc["date"] = prev.get("date", doc["date"])
    doc["calls"] = int(prev.get("calls", 1)) + 1
    return {row_key(r): r for r in prev.get("results", []) if r.get("status") != "skipped"}


def run_bench(request: dict) -> dict:
    cfg = _parse_request(request)
    torch = _import_torch()
    t_start = time.perf_counter()
    os.makedirs(cfg["report_dir"], exist_ok=True)
    torch.manual_seed(cfg["seed"])
    info = device_info(torch)
    _log(f"device {info['name']} driver {info['driver']} torch {info['torch']}")
    copy = copy_bandwidth(torch, cfg["copy_bytes"])
    _log(f"copy bandwidth {copy['gbps']:.0f} GB/s")
    timer = Timer(torch, cfg["runs"], cfg["warmup"], cfg["flush_bytes"] if cfg["flush"] else 0)
    doc = _new_doc(cfg, info, copy, timer)
    json_path = os.path.join(cfg["report_dir"], f"{cfg['stem']}.json")
    done = _resumed(cfg, json_path, doc)
    copies = {}  # size-matched copies by bytes copied
    for item in work_list(cfg):
        key = item_key(item)
        if key in done:
            if "size_copy" not in done[key]:  # a row from before the size-matched copy
                size_matched_copy(torch, timer, done[key], copies, doc["copy"]["gbps"])
            doc["results"].append(done[key])
            continue
        if item[0] == "error":
            doc["results"].append(item[1])
            continue
        if cfg["budget"] is not None and time.perf_counter() - t_start > float(cfg["budget"]):
            doc["results"].append(_failed_row(item, "skipped", f"time budget of {cfg['budget']} s spent"))
            continue
        t0 = time.perf_counter()
        try:
            r = _run_item(torch, timer, cfg, item, doc["copy"]["gbps"])
        except BridgeError as e:
            r = _failed_row(item, "error", f"{e.code}: {e.reason}")
        except Exception as e:  # noqa: BLE001 - a CUDA error or bench bug: record, go on
            r = _failed_row(item, "error", short_error(e))
        r["seconds"] = time.perf_counter() - t0
        _check_baseline(torch, item, r)
        doc["results"].append(r)
        _log("  " + report.one_line(r))
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        size_matched_copy(torch, timer, r, copies, doc["copy"]["gbps"])  # the case's tensors are freed
        sc = r.get("size_copy") or {}
        if sc:
            pct = f"{sc['pct_copy']:.0f}% of the copy bandwidth" if sc.get("pct_copy") else sc.get("error")
            _log(
                f"  size-matched copy of {sc['bytes_copied']} B: {pct}; verdict {(r.get('copy_verdict') or {}).get('kind')}"
            )
        _write_json(json_path, doc)  # partial results survive a kill
    doc["seconds"] = time.perf_counter() - t_start
    doc["copy_summary"] = report.summary(doc["results"])["copy"]
    _write_json(json_path, doc)
    paths = report.render_report(json_path, cfg["report_dir"], cfg["stem"])
    return {
        "report": paths["report"],
        "chart": paths["chart"],
        "results_json": os.path.abspath(json_path),
        "device": info["name"],
        "copy_gbps": doc["copy"]["gbps"],
        "results": doc["results"],
    }


def _check_baseline(torch, item, row):
    """Suite cases: the PyTorch baseline against ONNX Runtime at the case's check shapes (CPU)."""
    case = item[1] if item[0] == "unplanned" else item[5]
    if case and case.get("check_shapes") and case.get("model_path"):
        row["baseline"] = check_baseline(case, torch)


def _write_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)


def _op_of(pdir, name):
    try:
        return onnx.load(os.path.join(pdir, f"{name}.onnx")).graph.node[0].op_type
    except Exception:  # noqa: BLE001
        return None

"""Whole-model proof (issue 14, item 6): the rewritten model of a `tpat generate` OUT, run with
TPAT's plugins through their own code and every other node through ONNX Runtime, against ONNX
Runtime on the original model.

  python -m tpat_bridge.tools.verify_model OUT [--cpu] [--inputs X.npz] [--expected Y.npz] [--dim 2] [--seed 0] [--json]

The rewritten graph is cut at the plugin nodes (domain "tpat"): each run of ordinary nodes between
them is one ONNX model run by ONNX Runtime (CPU provider), each plugin node runs
  * GPU mode (default): through its launcher in OUT/plugins/build/libtpat_kernels.so (ctypes, the
    ABI of plugin-runtime/common/tpat_launcher_abi.h; device memory and stream from cupy), the
    tactic of the node's `tactic` attribute; needs a GPU, cupy and `tpat build OUT` (or cmake)
    first; no TVM;
  * CPU mode (--cpu): through the LLVM build of the same tactic's plan (cross_check.py), which
    proves the cutting and comparing without a GPU (needs TVM).
The original model runs once in ONNX Runtime with every intermediate tensor exposed; tensor names
are the same in both graphs, so every tensor the rewritten run produces is compared, in graph
order, and the first one out of tolerance is named (tensor, producing node, max error). Inputs
are the user's .npz (keys = graph input names) or random: floats standard normal, integers in
[0, 3), bools fair, symbolic dims set to --dim. Tolerance: |got - want| <= atol + rtol * |want|
(default 1e-3 / 1e-3 for floats, exact for integers and bools), NaN matches NaN. --expected Y.npz
(Python CLI and bridge only) compares the graph outputs with the given arrays instead of running the
original, for a model the installed ONNX Runtime cannot load (autoformer's IRFFT under ONNX Runtime
1.24: PyTorch's own outputs, saved by scripts/real_models/export.py).

Bridge command: {"command": "verify_model", "out_dir": OUT, "cpu": bool, "inputs": npz|null,
"dim": 2, "seed": 0} -> the report below (`ok`, `firstMismatch`, `outputs`, `plugins`, ...).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from .. import dtypes
from ..errors import BridgeError
from .compare import actual_outputs
from .compare import error as compare  # one comparison rule: tpat_check's

PLUGIN_DOMAIN = "tpat"
# ONNX element type -> numpy dtype of the inputs this check makes (dtypes.DTYPES; bfloat16 has none)
_NP = {d.onnx: np.dtype(d.numpy) for d in dtypes.DTYPES.values() if d.name != "bfloat16"}


class VerifyError(Exception):
    pass


def _plan_outputs(plugins_dir, name, tactic=0) -> list:
    """The plan's outputs: the node's, then the size tensors of data-dependent ones (size_of)."""
    plan = os.path.join(plugins_dir, name, f"{name}.plan.json" if tactic == 0 else f"{name}.tactic{tactic}.plan.json")
    with open(plan) as f:
        return json.load(f)["outputs"]


def _actual(outputs: list, outs: list) -> list:
    """Data-dependent outputs cut to their actual shape (the size tensor's value in their dim;
    docs/kernel-plan.md); size tensors stay (0-D)."""
    dd = [{"output": k, **o["data_dependent"]} for k, o in enumerate(outputs) if o.get("data_dependent")]
    if not dd:
        return outs
    n = sum(1 for o in outputs if "size_of" not in o)
    return actual_outputs(outs, outs[:n], dd) + list(outs[n:])


# ------------------------------------------------------------------------------------------------
# inputs and the reference run
# ------------------------------------------------------------------------------------------------


def _graph_inputs(model):
    inits = {t.name for t in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


MAX_INPUT_ELEMENTS = 1 << 28  # a generated input is at most 2 GiB (float64)


def make_inputs(model, npz=None, dim=2, seed=0) -> dict:
    feeds = {}
    if npz:
        with np.load(npz, allow_pickle=False) as z:
            feeds = {k: z[k] for k in z.files}
    rng = np.random.default_rng(seed)
    for vi in _graph_inputs(model):
        if vi.name in feeds:
            continue
        tt = vi.type.tensor_type
        if tt.elem_type not in _NP:
            raise VerifyError(f"input {vi.name!r} has an element type this check cannot make (give it in --inputs)")
        shape = [d.dim_value if d.HasField("dim_value") else dim for d in tt.shape.dim]
        if any(d < 0 for d in shape) or math.prod(shape) > MAX_INPUT_ELEMENTS:  # exact ints: no wrap
            raise VerifyError(
                f"input {vi.name!r} has shape {shape}: negative or over {MAX_INPUT_ELEMENTS} "
                "elements (give it in --inputs)"
            )
        dt = _NP[tt.elem_type]
        if dt == np.bool_:
            feeds[vi.name] = rng.random(shape) < 0.5
        elif np.issubdtype(dt, np.integer):
            feeds[vi.name] = rng.integers(0, 3, size=shape).astype(dt)
        else:
            feeds[vi.name] = rng.standard_normal(shape).astype(dt)
    return feeds


def _session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _with_all_outputs(model):
    """A copy whose graph outputs are every node output with a known type (after inference)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False)
    except Exception:  # noqa: BLE001 - outputs without inferred types are simply not exposed
        inferred = m
    types = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    have = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for o in n.output:
            if o and o not in have and o in types and types[o].type.tensor_type.elem_type:
                vi = onnx.ValueInfoProto()
                vi.name = o
                vi.type.tensor_type.elem_type = types[o].type.tensor_type.elem_type
                m.graph.output.append(vi)
                have.add(o)
    return m


def run_original(model, feeds) -> dict:
    m = _with_all_outputs(model)
    sess = _session(m)
    names = [o.name for o in sess.get_outputs()]
    want = {i.name for i in sess.get_inputs()}
    return dict(zip(names, sess.run(names, {k: v for k, v in feeds.items() if k in want})))


# ------------------------------------------------------------------------------------------------
# the rewritten model, cut at the plugin nodes
# ------------------------------------------------------------------------------------------------


def _used_names(node) -> list[str]:
    """A node's inputs, including outer-scope names its subgraphs read."""
    names = [i for i in node.input if i]
    for a in node.attribute:
        for g in [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs):
            local = {i.name for i in g.input} | {t.name for t in g.initializer}
            for n in g.node:
                names += [x for x in _used_names(n) if x not in local]
                local |= set(n.output)
    return names


def segments(model) -> list[tuple[str, list]]:
    """[("ort", [nodes]) | ("plugin", [node])] in graph order."""
    out = []
    for n in model.graph.node:
        if n.domain == PLUGIN_DOMAIN:
            out.append(("plugin", [n]))
        elif out and out[-1][0] == "ort":
            out[-1][1].append(n)
        else:
            out.append(("ort", [n]))
    return out


def _run_segment(model, nodes, env) -> dict:
    inits = {t.name: t for t in model.graph.initializer}
    produced, needed, used_inits = set(), [], []
    for n in nodes:
        for x in _used_names(n):
            if x in produced or x in needed or x in used_inits:
                continue
            if x in env:
                needed.append(x)
            elif x in inits:
                used_inits.append(x)
            else:
                raise VerifyError(f"tensor {x!r} is read before it is computed")
        produced |= {o for o in n.output if o}

    def vi_of(name, arr):
        et = helper.np_dtype_to_tensor_dtype(arr.dtype)
        return helper.make_tensor_value_info(name, et, list(arr.shape))

    outs = [o for n in nodes for o in n.output if o]
    g = helper.make_graph(
        list(nodes),
        "segment",
        [vi_of(x, env[x]) for x in needed],
        [onnx.ValueInfoProto(name=o) for o in outs],
        [inits[x] for x in used_inits],
    )
    m = helper.make_model(
        g, opset_imports=[o for o in model.opset_import if o.domain != PLUGIN_DOMAIN], ir_version=model.ir_version
    )
    m = _with_all_outputs_typed(m, outs)
    sess = _session(m)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {x: env[x] for x in needed})))


def _with_all_outputs_typed(m, outs):
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False)
    types = {
        vi.name: vi.type.tensor_type.elem_type for vi in list(inferred.graph.value_info) + list(inferred.graph.output)
    }
    del m.graph.output[:]
    for o in outs:
        if types.get(o):
            vi = onnx.ValueInfoProto()
            vi.name = o
            vi.type.tensor_type.elem_type = types[o]
            m.graph.output.append(vi)
    return m


class CpuPlugins:
    """Each plugin through the LLVM build of its tactic's plan (cross_check.py's machinery)."""

    def __init__(self, plugins_dir):
        self.dir = plugins_dir
        self.vms = {}

    def run(self, name, tactic, inputs):
        # Lazy: the CPU mode needs TVM, which the GPU machines that run the GPU mode do not have.
        import tvm
        from tvm import relax

        from . import cross_check  # lazy: imports TVM (see above)

        key = (name, tactic)
        if key not in self.vms:
            pdir = os.path.join(self.dir, name)
            plan = os.path.join(pdir, f"{name}.plan.json" if tactic == 0 else f"{name}.tactic{tactic}.plan.json")
            with open(plan) as f:
                lowering = "tvm" if json.load(f).get("lowering", "tvm-default") == "tvm-default" else "tpat"
            _, mod = cross_check._module(os.path.join(pdir, f"{name}.onnx"), lowering)
            target = tvm.target.Target({"kind": "llvm"})
            with target:
                ex = tvm.compile(mod, target=target)
            self.vms[key] = relax.VirtualMachine(ex, tvm.cpu())
        res = self.vms[key]["main"](*[tvm.runtime.tensor(np.require(a, requirements="C")) for a in inputs])
        outs = [res.numpy()] if hasattr(res, "numpy") else [r.numpy() for r in res]
        return _actual(_plan_outputs(self.dir, name, tactic), outs)


class _Dims(ctypes.Structure):
    _fields_ = [("nb_dims", ctypes.c_int32), ("d", ctypes.c_int64 * 8)]


class GpuPlugins:
    """Each plugin through its launcher in libtpat_kernels.so, buffers and stream from cupy."""

    def __init__(self, plugins_dir):
        try:
            import cupy  # noqa: F401 - lazy: GPU machines only; fail early when the GPU mode cannot run
        except ImportError as e:
            raise VerifyError(
                f"the GPU mode needs cupy and a GPU ({e}); --cpu runs the plugins' LLVM builds instead"
            ) from None
        self.dir = plugins_dir
        lib = os.path.join(plugins_dir, "build", "libtpat_kernels.so")
        if not os.path.exists(lib):
            raise VerifyError(f"{lib} is missing: run `tpat build OUT` (or cmake) first")
        self.lib = ctypes.CDLL(lib)
        self.ready = set()

    def _fn(self, name, what, restype=ctypes.c_int):
        f = getattr(self.lib, f"tpat_{name}_{what}")
        f.restype = restype
        return f

    def run(self, name, tactic, inputs):
        import cupy as cp  # lazy: GPU machines only (checked in __init__)

        plan_outs = _plan_outputs(self.dir, name, tactic)  # the node's outputs, then size tensors
        out_types = [np.bool_ if o["dtype"] == "bool" else dtypes.numpy_dtype(o["dtype"]).type for o in plan_outs]
        if name not in self.ready:
            if self._fn(name, "initialize")() != 0:
                raise VerifyError(f"plugin {name}: initialize failed")
            self.ready.add(name)
        din = (_Dims * max(1, len(inputs)))()
        for i, a in enumerate(inputs):
            if a.ndim > 8:
                raise VerifyError(f"plugin {name}: input {i} has rank {a.ndim} > 8")
            din[i].nb_dims = a.ndim
            for k, d in enumerate(a.shape):
                din[i].d[k] = d
        dout = (_Dims * max(1, len(out_types)))()
        rc = self._fn(name, "output_dims")(din, dout)
        if rc != 0:
            raise VerifyError(f"plugin {name}: output_dims returned {rc} (TPAT_BAD_DIMS = 1)")
        ws = ctypes.c_size_t(0)
        if self._fn(name, "workspace_size")(din, ctypes.byref(ws)) != 0:
            raise VerifyError(f"plugin {name}: workspace_size failed")
        d_in = [cp.asarray(np.ascontiguousarray(a.astype(np.uint8) if a.dtype == np.bool_ else a)) for a in inputs]
        d_out = [
            cp.empty(tuple(dout[j].d[k] for k in range(dout[j].nb_dims)), dtype=np.uint8 if t == np.bool_ else t)
            for j, t in enumerate(out_types)
        ]
        d_ws = cp.empty(max(1, ws.value), dtype=np.uint8)
        in_ptrs = (ctypes.c_void_p * max(1, len(d_in)))(*[a.data.ptr for a in d_in])
        out_ptrs = (ctypes.c_void_p * max(1, len(d_out)))(*[a.data.ptr for a in d_out])
        stream = cp.cuda.get_current_stream()
        enqueue = self._fn(name, "enqueue")
        enqueue.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int32,
            ctypes.c_void_p,
        ]
        rc = enqueue(
            ctypes.cast(din, ctypes.c_void_p),
            ctypes.cast(in_ptrs, ctypes.c_void_p),
            ctypes.cast(out_ptrs, ctypes.c_void_p),
            ctypes.c_void_p(d_ws.data.ptr),
            int(tactic),
            ctypes.c_void_p(stream.ptr),
        )
        stream.synchronize()
        if rc != 0:
            raise VerifyError(f"plugin {name}: enqueue returned {rc}")
        return _actual(
            plan_outs, [a.get().astype(np.bool_) if t == np.bool_ else a.get() for a, t in zip(d_out, out_types)]
        )


def run_rewritten(model, feeds, runner) -> tuple[dict, list[str]]:
    """Every tensor of the rewritten model, and the order in which they were produced."""
    env = {k: v for k, v in feeds.items()}
    order = []
    for kind, nodes in segments(model):
        if kind == "ort":
            res = _run_segment(model, nodes, env)
        else:
            n = nodes[0]
            tactic = next((a.i for a in n.attribute if a.name == "tactic"), 0)
            inits = {t.name: t for t in model.graph.initializer}
            ins = [env[x] if x in env else numpy_helper.to_array(inits[x]) for x in n.input if x]
            outs = runner.run(n.op_type, tactic, ins)
            res = dict(zip([o for o in n.output if o], outs))
        env.update(res)
        order += [o for n in nodes for o in n.output if o in res]
    return env, order


def _expected_outputs(orig, path) -> dict:
    """The user's expected outputs (.npz keyed by graph output name), instead of ONNX Runtime's run
    of the original: every graph output must be there."""
    with np.load(path, allow_pickle=False) as z:
        want = {k: z[k] for k in z.files}
    missing = [o.name for o in orig.graph.output if o.name not in want]
    if missing:
        raise VerifyError(f"--expected has no array for the graph output(s) {', '.join(repr(m) for m in missing)}")
    return want


def verify_model(
    out_dir, cpu=False, inputs=None, dim=2, seed=0, atol=1e-3, rtol=1e-3, original=None, expected=None
) -> dict:
    with open(os.path.join(out_dir, "tpat-generate.json")) as f:
        report = json.load(f)
    rewritten_path = os.path.join(out_dir, os.path.basename(report["rewrittenModel"]))
    original_path = original or report["model"]
    if not os.path.exists(original_path):
        raise VerifyError(
            f"the original model {original_path!r} is not here"
            + ("" if original else " (path from tpat-generate.json): give it with --original")
        )
    rewritten, orig = onnx.load(rewritten_path), onnx.load(original_path)
    plugins_dir = os.path.join(out_dir, "plugins")
    runner = CpuPlugins(plugins_dir) if cpu else GpuPlugins(plugins_dir)
    feeds = make_inputs(orig, inputs, dim, seed)
    want = _expected_outputs(orig, expected) if expected else run_original(orig, feeds)
    got, order = run_rewritten(rewritten, feeds, runner)
    producer = {o: n for n in rewritten.graph.node for o in n.output if o}
    first, outputs = None, []
    for name in order:
        if name not in want:
            continue
        err, ok = compare(got[name], want[name], atol, rtol)
        if not ok and first is None:
            n = producer[name]
            first = {
                "tensor": name,
                "node": n.name,
                "opType": n.op_type,
                "plugin": n.domain == PLUGIN_DOMAIN,
                "maxError": err if err != float("inf") else 1e308,
                "shapes": [list(got[name].shape), list(want[name].shape)],
            }
    for o in orig.graph.output:
        if o.name not in got:
            outputs.append({"name": o.name, "ok": False, "maxError": 1e308, "detail": "not computed"})
            continue
        err, ok = compare(got[o.name], want[o.name], atol, rtol)
        outputs.append({"name": o.name, "ok": ok, "maxError": err if err != float("inf") else 1e308})
    segs = segments(rewritten)
    return {
        "ok": all(o["ok"] for o in outputs) and first is None,
        "mode": ("cpu (LLVM)" if cpu else "gpu (launchers)") + (", against --expected" if expected else ""),
        "original": original_path,
        "rewritten": rewritten_path,
        "plugins": sorted({n[0].op_type for k, n in segs if k == "plugin"}),
        "pluginNodes": sum(1 for k, _ in segs if k == "plugin"),
        "ortSegments": sum(1 for k, _ in segs if k == "ort"),
        "tensorsCompared": sum(1 for x in order if x in want),
        "firstMismatch": first,
        "outputs": outputs,
        "inputs": {k: list(v.shape) for k, v in feeds.items()},
    }


def bridge(request: dict) -> dict:
    try:
        return verify_model(
            request["out_dir"],
            cpu=bool(request.get("cpu")),
            inputs=request.get("inputs"),
            dim=int(request.get("dim", 2)),
            seed=int(request.get("seed", 0)),
            original=request.get("original"),
            expected=request.get("expected"),
        )
    except VerifyError as e:
        raise BridgeError("input", str(e)) from None
    except (OSError, KeyError) as e:
        raise BridgeError("input", f"{type(e).__name__}: {e}") from None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="whole-model check of a tpat generate OUT")
    ap.add_argument("out")
    ap.add_argument("--cpu", action="store_true", help="plugins through their LLVM builds (no GPU)")
    ap.add_argument("--original", help="the original model (default: the path in tpat-generate.json)")
    ap.add_argument("--inputs", help=".npz with the model's inputs")
    ap.add_argument(
        "--expected",
        help=".npz with the expected graph outputs (e.g. PyTorch's, from the real-model exporter), "
        "compared instead of ONNX Runtime's run of the original (for models it cannot run)",
    )
    ap.add_argument("--dim", type=int, default=2, help="value of symbolic dims (random inputs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--atol", type=float, default=1e-3)
    ap.add_argument("--rtol", type=float, default=1e-3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    try:
        r = verify_model(a.out, a.cpu, a.inputs, a.dim, a.seed, a.atol, a.rtol, a.original, a.expected)
    except VerifyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(r, indent=1))
    else:
        print(
            f"{r['mode']}: {r['pluginNodes']} plugin nodes, {r['ortSegments']} ONNX Runtime segments, "
            f"{r['tensorsCompared']} tensors compared"
        )
        for o in r["outputs"]:
            print(f"  {'PASS' if o['ok'] else 'FAIL'}  output {o['name']!r}: max error {o['maxError']:.3g}")
        if r["firstMismatch"]:
            fm = r["firstMismatch"]
            print(
                f"  first tensor that differs: {fm['tensor']!r} from node {fm['node']!r} ({fm['opType']}), max error {fm['maxError']:.3g}"
            )
        print("PASS" if r["ok"] else "FAIL")
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

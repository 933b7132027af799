"""`tpat bench`: kernel-only timing of TPAT plugins against PyTorch eager and torch.compile.

Public entries:
  run_bench(request) -> {"report": md path, "chart": png path | None, "results": [...],
                         "results_json": path, ...}
  render_report(results_json_path, report_dir, stem=None) -> {"report", "chart"}

Request (bridge command "bench"):
  {"command": "bench", "outs": [OUT folders of `tpat generate` + `tpat build`],
   "flush_l2": false, "runs": 200, "warmup": 10, "report_dir": "<folder>",
   "cases": "bench/cases.json" (optional: minimal-traffic formulas and case names),
   optional: "seed": 0, "compile": true, "name": "bench" (file stem of the outputs),
   "time_budget_s": null (cases that start after this many seconds are skipped, not hidden),
   "copy_bytes": 1 GiB, "flush_bytes": 256 MiB}

Per plugin P of every OUT: inputs are made on the GPU with the op-aware rules of the reference
data (reference.py's generators, at the plugin's static shapes; plain random tensors straight on
the GPU), the TPAT launcher (OUT/plugins/build/libtpat_kernels.so through ctypes) runs once and
is checked against PyTorch eager, then TPAT, eager and torch.compile are each captured in a CUDA
graph and timed by CUDA events around graph replays (a spin kernel first, so the host's enqueue
is not timed): the median over `runs` runs is the kernel-only time. Host-inclusive times (the
Python/ctypes call + synchronize) are measured separately. `flush_l2` writes a 256 MiB buffer
before every timed run (outside the timed region). A device-to-device copy of 1 GiB gives the
copy bandwidth (bytes read + written); each op's effective bandwidth is its minimal traffic
(cases.json formula, else every input and output once) divided by its time.

Nothing here needs TVM or Swift; torch, numpy and onnx are imported only when needed.
"""
from __future__ import annotations

import ctypes
import datetime
import json
import math
import os
import platform
import statistics
import struct
import subprocess
import sys
import time
import zlib

from tpat_bridge.errors import BridgeError

TPAT_MAX_DIMS = 8
DEFAULT_RUNS = 200
DEFAULT_WARMUP = 10
FLUSH_BYTES = 256 << 20          # > 5x the H100's 50 MB L2
COPY_BYTES = 1 << 30
SPIN_US_BASE = 40                # spin kernel ahead of every timed run (host enqueue hidden)
SPIN_US_PER_REPLAY = 12
TARGET_RUN_US = 100.0            # without flush, back-to-back replays per event pair reach this
MAX_INNER = 20
HOST_RUNS_MAX = 50
MAX_MEASURE_US = 3e6             # timed work per measurement; slow kernels get fewer runs
MIN_RUNS = 10

ITEMSIZE = {"float32": 4, "float16": 2, "int64": 8, "int32": 4, "bfloat16": 2, "float64": 8,
            "int8": 1, "uint8": 1, "bool": 1, "int16": 2, "uint16": 2, "uint32": 4, "uint64": 8}
FLOAT_NAMES = ("float32", "float16", "bfloat16", "float64")


def _log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# minimal traffic (identical to bench/suite.py's traffic_bytes)
# --------------------------------------------------------------------------------------------

def traffic_bytes(code: str, inputs: list, outputs: list) -> int:
    """Evaluates a minimal-traffic formula. inputs/outputs: lists of (shape, dtype name);
    names in the formula: in0.., out0.., B(t) bytes, N(t) elements, S(t) shape."""
    env = {}
    for prefix, tensors in (("in", inputs), ("out", outputs)):
        for i, (shape, dtype) in enumerate(tensors):
            env[f"{prefix}{i}"] = (tuple(int(d) for d in shape), dtype)

    def N(t):
        return int(math.prod(t[0]))

    def B(t):
        return N(t) * ITEMSIZE[t[1]]

    def S(t):
        return t[0]

    env.update({"B": B, "N": N, "S": S, "prod": math.prod, "min": min, "max": max})
    return int(eval(code, {"__builtins__": {}}, env))


def default_traffic_code(n_in, n_out):
    return " + ".join([f"B(in{i})" for i in range(n_in)] + [f"B(out{j})" for j in range(n_out)])


# --------------------------------------------------------------------------------------------
# finding plugins and cases
# --------------------------------------------------------------------------------------------

def load_cases(path):
    if not path:
        return {}
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise BridgeError("input", f"bench: cannot read cases file {path}: {e}")
    return {c["id"]: c for c in doc.get("cases", [])}


def discover_plugins(out_dir):
    """[(plugin name, plugin folder, plugin.json dict)] of one OUT folder, sorted by name."""
    pdir = os.path.join(out_dir, "plugins")
    if not os.path.isdir(pdir):
        raise BridgeError("input", f"bench: {out_dir} has no plugins/ folder (run tpat generate)")
    found = []
    for name in sorted(os.listdir(pdir)):
        d = os.path.join(pdir, name)
        pj = os.path.join(d, f"{name}.plugin.json")
        if os.path.isfile(os.path.join(d, f"{name}.onnx")) and (
                os.path.isfile(pj) or os.path.isfile(os.path.join(d, f"{name}.plan.json"))):
            meta = {}
            if os.path.isfile(pj):
                with open(pj) as f:
                    meta = json.load(f)
            found.append((name, d, meta))
    return found


def _model_stem(out_dir):
    """The model name of an OUT folder (OUT/<model>.onnx), else the folder's name."""
    onnxs = [f[:-5] for f in os.listdir(out_dir) if f.endswith(".onnx")]
    if len(onnxs) == 1:
        return onnxs[0]
    return os.path.basename(os.path.normpath(out_dir))


def match_case(cases, out_dir, op):
    stem = _model_stem(out_dir)
    c = cases.get(stem) or cases.get(os.path.basename(os.path.normpath(out_dir)))
    if c and c.get("op") == op:
        return c
    hits = [c for c in cases.values() if c.get("op") == op and c.get("model", "")[:-5] == stem]
    return hits[0] if hits else None


# --------------------------------------------------------------------------------------------
# the launcher through ctypes
# --------------------------------------------------------------------------------------------

class TpatDims(ctypes.Structure):
    _fields_ = [("nb_dims", ctypes.c_int32), ("d", ctypes.c_int64 * TPAT_MAX_DIMS)]


def _dims_array(shapes):
    arr = (TpatDims * max(1, len(shapes)))()
    for i, s in enumerate(shapes):
        if len(s) > TPAT_MAX_DIMS:
            raise BridgeError("input", f"rank {len(s)} > {TPAT_MAX_DIMS}")
        arr[i].nb_dims = len(s)
        for k, d in enumerate(s):
            arr[i].d[k] = int(d)
    return arr


_LIBS = {}


class Launcher:
    """The six C functions of one plugin, with prebuilt argument arrays for cheap calls."""

    def __init__(self, lib_path, prefix):
        lib_path = os.path.abspath(lib_path)
        if lib_path not in _LIBS:
            if not os.path.isfile(lib_path):
                raise BridgeError("input", f"bench: no {lib_path} (run tpat build)")
            _LIBS[lib_path] = ctypes.CDLL(lib_path)
        lib = _LIBS[lib_path]
        P = ctypes.POINTER

        def fn(name, res, args):
            try:
                f = getattr(lib, f"{prefix}_{name}")
            except AttributeError:
                raise BridgeError("input", f"bench: {lib_path} lacks {prefix}_{name}")
            f.restype = res
            f.argtypes = args
            return f

        self.output_dims = fn("output_dims", ctypes.c_int, [P(TpatDims), P(TpatDims)])
        self.workspace_size = fn("workspace_size", ctypes.c_int, [P(TpatDims), P(ctypes.c_size_t)])
        self.initialize = fn("initialize", ctypes.c_int, [])
        self.enqueue_fn = fn("enqueue", ctypes.c_int, [P(TpatDims), P(ctypes.c_void_p), P(ctypes.c_void_p),
                                                        ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p])
        self.terminate = fn("terminate", None, [])
        self.num_tactics = fn("num_tactics", ctypes.c_int, [])

    def bind(self, in_shapes, in_ptrs, out_ptrs, workspace_ptr):
        self._dims = _dims_array(in_shapes)
        self._ins = (ctypes.c_void_p * max(1, len(in_ptrs)))(*in_ptrs)
        self._outs = (ctypes.c_void_p * max(1, len(out_ptrs)))(*out_ptrs)
        self._ws = ctypes.c_void_p(workspace_ptr or None)

    def enqueue(self, tactic, stream):
        return self.enqueue_fn(self._dims, self._ins, self._outs, self._ws, tactic, ctypes.c_void_p(stream or None))


# --------------------------------------------------------------------------------------------
# PyTorch implementations of the suite's ops (eager; the same function goes to torch.compile)
# --------------------------------------------------------------------------------------------

def torch_impl(op, attrs, slots, torch, device, n_outputs=1):
    """(fn(*graph inputs) -> tuple of outputs, description) or (None, reason); n_outputs: how
    many of the node's outputs are used (LayerNormalization's Mean / InvStdDev)."""
    F = torch.nn.functional
    consts = {}
    for s in slots:
        if s.kind == "const":
            consts[s.pos] = torch.from_numpy(_np_contig(s.value).copy()).to(device)

    def args(ins):
        v = []
        for s in slots:
            if s.kind == "input":
                v.append(ins[s.graph_index])
            elif s.kind == "const":
                v.append(consts[s.pos])
            else:
                v.append(None)
        return v

    def const_list(pos):
        s = slots[pos] if pos < len(slots) else None
        if s is None or s.kind != "const":
            return None
        return [x.item() for x in s.value.reshape(-1)]

    def wrap_neg(idx, d):
        return torch.where(idx < 0, idx + d, idx)

    if op == "GatherND":
        if int(attrs.get("batch_dims", 0)) != 0:
            return None, "GatherND batch_dims != 0: no PyTorch implementation here"

        def f(*ins):
            data, idx = args(ins)[:2]
            return (data[tuple(idx.unbind(-1))],)
        return f, "data[tuple(indices.unbind(-1))] (advanced indexing)"

    if op == "ScatterND":
        red = attrs.get("reduction", "none")

        if red in ("none", "add"):
            def f(*ins):
                data, idx, upd = args(ins)[:3]
                out = data.clone()
                out.index_put_(tuple(idx.unbind(-1)), upd, accumulate=(red == "add"))
                return (out,)
            return f, f"data.clone().index_put_(tuple(indices.unbind(-1)), updates, accumulate={red == 'add'})"
        amode = {"mul": "prod", "max": "amax", "min": "amin"}.get(red)
        if amode is None:
            return None, f"ScatterND reduction={red}: no PyTorch implementation here"

        def f(*ins):
            data, idx, upd = args(ins)[:3]
            k = idx.shape[-1]
            dims = data.shape[:k]
            flat = torch.zeros(idx.shape[:-1], dtype=torch.int64, device=idx.device)
            for j in range(k):
                flat = flat * dims[j] + wrap_neg(idx[..., j], dims[j])
            out = data.clone().reshape(math.prod(dims), -1)
            out.index_reduce_(0, flat.reshape(-1), upd.reshape(flat.numel(), -1), amode, include_self=True)
            return (out.reshape(data.shape),)
        return f, f"data.clone().index_reduce_(0, flat indices, updates, {amode!r})"

    if op == "OneHot":
        depth = const_list(1)
        values = const_list(2)
        if depth is None:
            return None, "OneHot with a non-constant depth: no PyTorch implementation here"
        depth = int(depth[0])
        axis = int(attrs.get("axis", -1))
        unit = values == [0.0, 1.0] or values == [0, 1]

        def f(*ins):
            v = args(ins)
            ind = v[0]
            oh = F.one_hot(torch.remainder(ind.long(), depth), depth)
            if axis != -1 and axis != oh.dim() - 1:
                oh = oh.movedim(-1, axis)
            vals = v[2]
            if unit:
                return (oh.to(vals.dtype),)
            return (torch.where(oh.bool(), vals[1], vals[0]),)
        return f, "F.one_hot(indices mod depth, depth) + cast (indices outside [-depth, depth) not handled)"

    if op in ("Resize", "Upsample"):
        mode = attrs.get("mode", "nearest")
        ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
        scales = const_list(2)
        sizes = const_list(3)
        if mode not in ("linear", "cubic"):
            return None, f"Resize mode={mode}: no PyTorch implementation here"
        if ctm in ("half_pixel", "pytorch_half_pixel"):
            align = False
        elif ctm == "align_corners":
            align = True
        else:
            return None, f"Resize coordinate_transformation_mode={ctm}: no F.interpolate equivalent"
        if attrs.get("antialias", 0) or (mode == "cubic" and (float(attrs.get("cubic_coeff_a", -0.75)) != -0.75
                                                               or int(attrs.get("exclude_outside", 0)))):
            return None, "Resize antialias/cubic variant: no F.interpolate equivalent"
        kw = {}
        if scales:
            if scales[0] != 1 or scales[1] != 1:
                return None, "Resize of the batch/channel dims"
            kw["scale_factor"] = tuple(float(s) for s in scales[2:])
        elif sizes:
            kw["size"] = tuple(int(s) for s in sizes[2:])
        else:
            return None, "Resize without constant scales or sizes"
        nsp = len(scales or sizes) - 2
        tmode = {("linear", 1): "linear", ("linear", 2): "bilinear", ("linear", 3): "trilinear",
                 ("cubic", 2): "bicubic"}.get((mode, nsp))
        if tmode is None:
            return None, f"Resize {mode} over {nsp} spatial dims: no F.interpolate mode"

        def f(*ins):
            x = args(ins)[0]
            return (F.interpolate(x, mode=tmode, align_corners=align, **kw),)
        return f, f"F.interpolate(mode={tmode!r}, align_corners={align}, {', '.join(f'{k}={v}' for k, v in kw.items())})"

    if op in ("ReduceMax", "ReduceMin"):
        axes = const_list(1) if len(slots) > 1 else None
        if axes is None:
            axes = attrs.get("axes")
        if len(slots) > 1 and slots[1].kind == "input":
            return None, f"{op} with non-constant axes"
        keep = bool(int(attrs.get("keepdims", 1)))
        if not axes and int(attrs.get("noop_with_empty_axes", 0)):
            return None, f"{op} noop_with_empty_axes"
        red = torch.amax if op == "ReduceMax" else torch.amin

        def f(*ins):
            x = args(ins)[0]
            dims = [int(a) for a in axes] if axes else list(range(x.dim()))
            return (red(x, dim=dims, keepdim=keep),)
        return f, f"torch.{'amax' if op == 'ReduceMax' else 'amin'}(dim={axes}, keepdim={keep})"

    if op == "GridSample":
        mode = {"linear": "bilinear", "bilinear": "bilinear", "nearest": "nearest",
                "cubic": "bicubic", "bicubic": "bicubic"}[attrs.get("mode", "linear")]
        pad = attrs.get("padding_mode", "zeros")
        align = bool(int(attrs.get("align_corners", 0)))

        def f(*ins):
            x, grid = args(ins)[:2]
            return (F.grid_sample(x, grid, mode=mode, padding_mode=pad, align_corners=align),)
        return f, f"F.grid_sample(mode={mode!r}, padding_mode={pad!r}, align_corners={align})"

    if op in ("ScatterElements", "Scatter"):
        axis = int(attrs.get("axis", 0))
        red = attrs.get("reduction", "none")
        tred = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}.get(red)

        def f(*ins):
            data, idx, upd = args(ins)[:3]
            a = axis % data.dim()
            i = wrap_neg(idx, data.shape[a])
            if tred is None:
                return (data.scatter(a, i, upd),)
            return (data.scatter_reduce(a, i, upd, reduce=tred, include_self=True),)
        desc = ("data.scatter(axis, idx, updates)" if tred is None else
                f"data.scatter_reduce(axis, idx, updates, reduce={tred!r}, include_self=True)")
        return f, desc + " (negative indices wrapped first)"

    if op == "TopK":
        k = const_list(1)
        if k is None:
            return None, "TopK with a non-constant K"
        k = int(k[0])
        axis = int(attrs.get("axis", -1))
        largest = bool(int(attrs.get("largest", 1)))

        def f(*ins):
            x = args(ins)[0]
            v, i = torch.topk(x, k, dim=axis, largest=largest, sorted=True)
            return (v, i)
        return f, f"torch.topk(k={k}, dim={axis}, largest={largest}, sorted=True)"

    if op == "NonZero":
        return (lambda *ins: (torch.nonzero(args(ins)[0]).T.contiguous(),)), "torch.nonzero(x).T"
    if op == "Compress":
        axis = attrs.get("axis")

        def f(*ins):
            x, c = args(ins)[:2]
            n = min(c.numel(), x.numel() if axis is None else x.shape[int(axis)])
            sel = torch.nonzero(c.reshape(-1)[:n]).reshape(-1)
            return (x.reshape(-1)[sel] if axis is None else torch.index_select(x, int(axis), sel),)
        return f, "torch.index_select(x, axis, torch.nonzero(condition))"
    if op == "CumSum":
        axis = const_list(1)
        if axis is None:
            return None, "CumSum with a non-constant axis"
        axis = int(axis[0])
        excl = bool(int(attrs.get("exclusive", 0)))
        rev = bool(int(attrs.get("reverse", 0)))

        def f(*ins):
            x = args(ins)[0]
            y = x.flip(axis) if rev else x
            c = y.cumsum(axis)
            if excl:
                c = c - y
            return (c.flip(axis) if rev else c,)
        return f, f"torch.cumsum(dim={axis})" + (" (reverse via flip)" if rev else "") + (" (exclusive: minus x)" if excl else "")

    if op in ("LayerNormalization", "RMSNormalization"):
        axis = int(attrs.get("axis", -1))
        eps = float(attrs.get("epsilon", 1e-5))
        rms = op == "RMSNormalization"

        def f(*ins):
            v = args(ins)
            x = v[0]
            a = axis % x.dim()
            shape = tuple(x.shape[a:])
            # Scale / B broadcast to the normalized shape (a view, no copy)
            w = v[1].expand(shape) if len(v) > 1 and v[1] is not None else None
            b = v[2].expand(shape) if len(v) > 2 and v[2] is not None else None
            if rms:
                return (F.rms_norm(x, shape, w, eps),)
            if n_outputs == 1:
                return (F.layer_norm(x, shape, w, b, eps),)
            # Mean and InvStdDev (float32, shape x.shape[:axis] + [1] * len(shape)) as ATen has them
            y, mean, rstd = torch.ops.aten.native_layer_norm(x, list(shape), w, b, eps)
            stat = tuple(x.shape[:a]) + (1,) * len(shape)
            return (y, mean.float().reshape(stat), rstd.float().reshape(stat))[:n_outputs]
        if rms:
            return f, f"F.rms_norm(normalized_shape=x.shape[{axis}:], eps={eps})"
        if n_outputs > 1:
            return f, f"torch.ops.aten.native_layer_norm(normalized_shape=x.shape[{axis}:], eps={eps}) (y, mean, rstd)"
        return f, f"F.layer_norm(normalized_shape=x.shape[{axis}:], eps={eps})"

    if op == "DFT":
        inverse, onesided = bool(int(attrs.get("inverse", 0))), bool(int(attrs.get("onesided", 0)))
        n_c, ax_c = const_list(1), const_list(2)
        # opset 17: axis attribute (default 1); opset 20: constant axis input (default -2)
        axis = int(attrs["axis"]) if "axis" in attrs else int(ax_c[0]) if ax_c else -2

        def f(*ins):
            x = args(ins)[0]
            a = axis % x.dim()
            n = int(n_c[0]) if n_c else x.shape[a]
            if x.shape[-1] == 2:
                xc = torch.view_as_complex(x.float().contiguous())
            else:
                xc = x[..., 0].float()
            if inverse:
                y = torch.fft.ifft(xc, n=n, dim=a)
            elif onesided and x.shape[-1] == 1:
                y = torch.fft.rfft(xc, n=n, dim=a)
            else:
                y = torch.fft.fft(xc, n=n, dim=a)
                if onesided:
                    y = y.narrow(a, 0, n // 2 + 1)
            return (torch.view_as_real(y.contiguous()).to(x.dtype),)
        kind = "ifft" if inverse else "rfft/fft" if onesided else "fft"
        return f, f"torch.fft.{kind}(dim={axis}) on float32, torch.view_as_real"

    if op == "Gelu":
        approx = attrs.get("approximate", "none")

        def f(*ins):
            return (F.gelu(args(ins)[0], approximate=approx),)
        return f, f"F.gelu(approximate={approx!r})"

    return None, f"no PyTorch implementation of {op} in the bench table"


def _np_contig(a):
    import numpy as np
    a = np.ascontiguousarray(a)
    if a.dtype.name == "bfloat16":
        return a.view(np.uint16)
    return a


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------

def _torch_dtype(torch, name):
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
            "float64": torch.float64, "int8": torch.int8, "uint8": torch.uint8, "int16": torch.int16,
            "int32": torch.int32, "int64": torch.int64, "bool": torch.bool,
            "uint16": getattr(torch, "uint16", None), "uint32": getattr(torch, "uint32", None),
            "uint64": getattr(torch, "uint64", None)}[name]


def _to_torch(torch, arr, dtype_name, device):
    import numpy as np
    a = np.ascontiguousarray(arr)
    if dtype_name == "bfloat16":
        return torch.from_numpy(a.view(np.uint16).astype(np.int16, copy=False)).to(device).view(torch.bfloat16)
    if dtype_name == "bool":
        return torch.from_numpy(a.astype(np.bool_)).to(device)
    return torch.from_numpy(a).to(device)


def make_inputs(torch, node, attrs, slots, binding, seed, device, notes):
    """Graph inputs (list of GPU tensors, by graph index) with the reference data's rules, and the
    generation context (for tolerances). Rule-driven inputs come from reference.py's generators
    (numpy, then copied); the others are drawn on the GPU (standard normal floats, ints in
    [-10, 10], unsigned [0, 20], fair bools), as reference.py's generic rule does."""
    import numpy as np
    from tpat_bridge import reference as R

    rng = np.random.default_rng([seed, 0])
    ctx = R.Ctx(node, attrs, slots, binding, rng, notes)
    gen = R._GENERATORS.get(node.op_type)
    if gen is not None:
        try:
            gen(ctx)
        except R.Infeasible as e:
            raise BridgeError("reference", f"no valid inputs for {node.op_type}: {e}")
    gpu = torch.Generator(device=device)
    gpu.manual_seed(int(seed) * 7919 + 17)
    n_in = len([s for s in slots if s.kind == "input"])
    ins = [None] * n_in
    for s in slots:
        if s.kind != "input":
            continue
        shape = ctx.shape(s.pos)
        if s.pos in ctx.values:
            ins[s.graph_index] = _to_torch(torch, ctx.values[s.pos], s.dtype, device)
            continue
        td = _torch_dtype(torch, s.dtype)
        if s.dtype in FLOAT_NAMES:
            t = torch.randn(shape, generator=gpu, device=device, dtype=torch.float32).to(td)
        elif s.dtype == "bool":
            t = torch.rand(shape, generator=gpu, device=device) < 0.5
        elif s.dtype.startswith("u"):
            t = torch.randint(0, 21, shape, generator=gpu, device=device, dtype=torch.int64).to(td)
        else:
            t = torch.randint(-10, 11, shape, generator=gpu, device=device, dtype=torch.int64).to(td)
        ins[s.graph_index] = t.contiguous()
    return ins, ctx


def tolerance_for(ctx, dtype_name, out_shapes):
    from tpat_bridge import reference as R
    if dtype_name not in R.TOLERANCES:
        return 0.0, 0.0
    atol, rtol = R.TOLERANCES[dtype_name]
    k = R._reduction_length(ctx, out_shapes)
    if k:
        atol *= max(1.0, math.sqrt(k))
    return atol, rtol


def compare(torch, got, exp, atol, rtol):
    """{"pass", "bad", "n", "max_abs"}; floats: |got-exp| <= atol + rtol*|exp| (NaN==NaN)."""
    if tuple(got.shape) != tuple(exp.shape):
        return {"pass": False, "bad": None, "n": int(exp.numel()), "max_abs": None,
                "reason": f"shape {list(got.shape)} != {list(exp.shape)}"}
    if got.dtype.is_floating_point:
        g = got.float()
        e = exp.float()
        both_nan = torch.isnan(g) & torch.isnan(e)
        diff = (g - e).abs()
        ok = (diff <= atol + rtol * e.abs()) | both_nan | (g == e)
        bad = int((~ok).sum().item())
        finite = torch.isfinite(diff)
        max_abs = float(diff[finite].max().item()) if bool(finite.any().item()) else 0.0
    else:
        ok = got == exp
        bad = int((~ok).sum().item())
        max_abs = float((got.long() - exp.long()).abs().max().item()) if got.numel() else 0.0
    return {"pass": bad == 0, "bad": bad, "n": int(exp.numel()), "max_abs": max_abs,
            "atol": atol, "rtol": rtol}


def actual_views(meta, outs, n_node):
    """The node's outputs, data-dependent ones cut to their actual shape (the size tensor's
    value in their dim; docs/kernel-plan.md): reads the size tensors back (after the timing)."""
    views = list(outs[:n_node])
    for k, d in enumerate((meta.get("data_dependent") or [])[:n_node]):
        if d:
            count = int(outs[d["size_output"]].item())
            shape = list(outs[k].shape)
            shape[d["dim"]] = max(0, min(count, shape[d["dim"]]))
            n = 1
            for v in shape:
                n *= v
            views[k] = outs[k].reshape(-1)[:n].reshape(shape)
    return views


def compare_outputs(torch, op, attrs, ins, got, exp, tols):
    """Per-output comparisons; TopK's index output is compared by the values it gathers."""
    res = []
    for j, (g, e) in enumerate(zip(got, exp)):
        atol, rtol = tols[j]
        if op == "TopK" and j == 1 and len(got) > 0:
            x = ins[0]
            axis = int(attrs.get("axis", -1)) % x.dim()
            d = x.shape[axis]
            gi = g.long()
            in_range = (gi >= 0) & (gi < d)
            n_out = int((~in_range).sum().item())
            gathered = torch.gather(x, axis, torch.where(in_range, gi, torch.zeros_like(gi)))
            c = compare(torch, gathered, exp[0], *tols[0])
            if n_out:
                c["pass"] = False
                c["reason"] = f"{n_out} indices out of range"
            c["compared"] = "values gathered at the indices"
            res.append(c)
        else:
            res.append(compare(torch, g, e, atol, rtol))
    return res


# --------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------

class Timer:
    def __init__(self, torch, runs, warmup, flush_bytes):
        self.torch = torch
        self.runs = runs
        self.warmup = warmup
        self.flush = torch.empty(flush_bytes, dtype=torch.uint8, device="cuda") if flush_bytes else None

    def _spin(self, us):
        self.torch.cuda._sleep(int(us * 2000))   # ~2 GHz: never shorter than wanted on an H100

    def capture(self, fn):
        """A CUDA graph of fn() (warm-up on a side stream first, as torch.cuda.graph wants)."""
        torch = self.torch
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(2):
                fn()
        torch.cuda.current_stream().wait_stream(s)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            out = fn()
        torch.cuda.synchronize()
        return g, out

    def kernel_times(self, launch):
        """Per-run microseconds of `launch` (a graph replay or a direct call), between events."""
        torch = self.torch
        for _ in range(max(1, self.warmup)):
            launch()
        torch.cuda.synchronize()
        # estimate, to pick the replays per event pair
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        self._spin(SPIN_US_BASE)
        e0.record()
        launch()
        e1.record()
        torch.cuda.synchronize()
        est = max(e0.elapsed_time(e1) * 1000.0, 0.5)
        inner = 1 if self.flush is not None else int(min(MAX_INNER, max(1, math.ceil(TARGET_RUN_US / est))))
        # a slow kernel gets fewer runs (about MAX_MEASURE_US of timed work, at least MIN_RUNS)
        runs = int(max(MIN_RUNS, min(self.runs, MAX_MEASURE_US // (est * inner))))
        self.last_runs = runs
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
        for i in range(runs):
            if self.flush is not None:
                self.flush.add_(1)   # read + write 256 MiB: the L2 holds nothing useful afterwards
            self._spin(SPIN_US_BASE + SPIN_US_PER_REPLAY * inner)
            starts[i].record()
            for _ in range(inner):
                launch()
            ends[i].record()
            if (i + 1) % 50 == 0:
                torch.cuda.synchronize()
        torch.cuda.synchronize()
        return [s.elapsed_time(e) * 1000.0 / inner for s, e in zip(starts, ends)], inner

    def host_times(self, call):
        """Per-call microseconds from the Python call until the GPU is done (synchronize)."""
        torch = self.torch
        n = min(self.runs, HOST_RUNS_MAX, getattr(self, "last_runs", self.runs))
        call()
        torch.cuda.synchronize()
        ts = []
        for _ in range(n):
            if self.flush is not None:
                self.flush.add_(1)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            call()
            torch.cuda.synchronize()
            ts.append((time.perf_counter() - t0) * 1e6)
        return ts


def _stats(ts):
    ts = sorted(ts)
    n = len(ts)
    q = lambda p: ts[min(n - 1, max(0, int(round(p * (n - 1)))))]
    return {"median_us": statistics.median(ts), "p10_us": q(0.1), "p90_us": q(0.9), "min_us": ts[0], "n": n}


def copy_bandwidth(torch, nbytes=COPY_BYTES, runs=20):
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    src.fill_(1)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    ts = []
    for _ in range(runs):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        dst.copy_(src)
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) * 1e-3)
    t = statistics.median(ts)
    del src, dst
    torch.cuda.empty_cache()
    return {"bytes_copied": nbytes, "bytes_moved": 2 * nbytes, "median_s": t,
            "gbps": 2 * nbytes / t / 1e9, "method": "device-to-device copy_ of 1 GiB, read + written bytes / median time"}


# --------------------------------------------------------------------------------------------
# device info
# --------------------------------------------------------------------------------------------

def device_info(torch):
    p = torch.cuda.get_device_properties(0)
    info = {"name": p.name, "capability": f"sm_{p.major}{p.minor}", "sms": p.multi_processor_count,
            "memory_gib": round(p.total_memory / 2**30, 1),
            "l2_mib": round(getattr(p, "L2_cache_size", 0) / 2**20, 1) or None,
            "torch": torch.__version__, "torch_cuda": torch.version.cuda,
            "python": platform.python_version(), "host": platform.node()}
    drv = None
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,clocks.max.mem",
                            "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        if r.returncode == 0 and r.stdout.strip():
            parts = [x.strip() for x in r.stdout.strip().splitlines()[0].split(",")]
            drv = parts[0]
            if len(parts) >= 3:
                info["max_sm_clock"] = parts[1]
                info["max_mem_clock"] = parts[2]
    except (OSError, subprocess.SubprocessError):
        pass
    if drv is None:
        try:
            v = ctypes.c_int()
            ctypes.CDLL("libcuda.so.1").cuDriverGetVersion(ctypes.byref(v))
            drv = f"CUDA driver API {v.value // 1000}.{(v.value % 1000) // 10}"
        except OSError:
            drv = "unknown"
    info["driver"] = drv
    return info


# --------------------------------------------------------------------------------------------
# one plugin
# --------------------------------------------------------------------------------------------

def _plugin_io(meta, slots, graph_inputs):
    from tpat_bridge import reference as R
    in_dtypes = meta.get("input_dtypes") or [R.ONNX_TO_NAME[vi.type.tensor_type.elem_type] for vi in graph_inputs]
    return in_dtypes


def bench_plugin(torch, timer, out_dir, name, pdir, meta, case, seed, do_compile, copy_gbps):
    import onnx
    from tpat_bridge import reference as R

    res = {"out": os.path.abspath(out_dir), "plugin": name, "case": case["id"] if case else None,
           "status": "ok", "error": None, "notes": []}
    model = onnx.load(os.path.join(pdir, f"{name}.onnx"))
    node, attrs, slots, graph_inputs = R._read_model(model)
    op = node.op_type
    res["op"] = op
    res["attributes"] = {k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in attrs.items()}
    symbols = R._symbols(slots)
    binding = {}
    if symbols:
        binding = R._fix_binding(op, attrs, slots, next(iter(R._candidates(symbols))))
        res["notes"].append(f"symbolic model: benchmarked at the first reference binding {binding}")
    notes = set()
    ins, ctx = make_inputs(torch, node, attrs, slots, binding, seed, "cuda", notes)
    res["notes"].extend(sorted(notes))
    in_shapes = [tuple(t.shape) for t in ins]
    in_dtypes = _plugin_io(meta, slots, graph_inputs)
    res["inputs"] = [{"dtype": d, "shape": list(s)} for d, s in zip(in_dtypes, in_shapes)]

    # ---- TPAT launcher ----
    lib = os.path.join(out_dir, "plugins", "build", "libtpat_kernels.so")
    prefix = meta.get("prefix") or f"tpat_{name}"
    L = Launcher(lib, prefix)
    out_dtypes = meta.get("output_dtypes") or [R.ONNX_TO_NAME[vi.type.tensor_type.elem_type] for vi in model.graph.output]
    n_all = len(out_dtypes)  # the node's outputs, then size tensors of data-dependent ones
    outs_dims = _dims_array([()] * n_all)
    rc = L.output_dims(_dims_array(in_shapes), outs_dims)
    if rc != 0:
        raise BridgeError("launcher", f"{prefix}_output_dims returned {rc} for {in_shapes}")
    out_shapes = [tuple(outs_dims[j].d[k] for k in range(outs_dims[j].nb_dims)) for j in range(n_all)]
    res["outputs"] = [{"dtype": d, "shape": list(s)} for d, s in zip(out_dtypes, out_shapes)]
    ws = ctypes.c_size_t(0)
    rc = L.workspace_size(_dims_array(in_shapes), ctypes.byref(ws))
    if rc != 0:
        raise BridgeError("launcher", f"{prefix}_workspace_size returned {rc}")
    workspace = torch.empty(max(1, ws.value), dtype=torch.uint8, device="cuda") if ws.value else None
    res["workspace_bytes"] = int(ws.value)
    rc = L.initialize()
    if rc != 0:
        raise BridgeError("launcher", f"{prefix}_initialize returned {rc}")
    outs = [torch.empty(s, dtype=_torch_dtype(torch, d), device="cuda") for s, d in zip(out_shapes, out_dtypes)]
    L.bind(in_shapes, [t.data_ptr() for t in ins], [t.data_ptr() for t in outs],
           workspace.data_ptr() if workspace is not None else 0)
    n_tactics = int(L.num_tactics())
    res["num_tactics"] = n_tactics

    # ---- traffic ----
    if case and case.get("traffic", {}).get("code"):
        code, words, src = case["traffic"]["code"], case["traffic"].get("words", ""), "cases.json"
    else:
        code, words, src = default_traffic_code(len(ins), len(outs)), "every input and output once (no case formula)", "default"
    tb = traffic_bytes(code, [(s, d) for s, d in zip(in_shapes, in_dtypes)], [(s, d) for s, d in zip(out_shapes, out_dtypes)])
    res["traffic"] = {"bytes": tb, "code": code, "words": words, "source": src}

    # ---- PyTorch reference (eager) and correctness ----
    n_node = len(model.graph.output)
    fn, desc = torch_impl(op, attrs, slots, torch, "cuda", n_node)
    res["torch_impl"] = desc
    tols = [tolerance_for(ctx, d, out_shapes) for d in out_dtypes]
    exp = None
    if fn is not None:
        try:
            exp = [t.clone() for t in fn(*ins)]
            torch.cuda.synchronize()
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            res["notes"].append(f"PyTorch eager failed: {_short(e)}")
            fn = None
    checks = []
    stream = lambda: torch.cuda.current_stream().cuda_stream
    tactic_rows = []
    for t in range(n_tactics):
        for o in outs:
            o.view(torch.uint8).fill_(0x7F)
        rc = L.enqueue(t, stream())
        torch.cuda.synchronize()
        if rc != 0:
            tactic_rows.append({"tactic": t, "error": f"enqueue returned {rc}"})
            continue
        chk = compare_outputs(torch, op, attrs, ins, actual_views(meta, outs, n_node), exp, tols) if exp is not None else None
        checks.append({"tactic": t, "outputs": chk})
        tactic_rows.append({"tactic": t})
    res["check"] = {"against": "PyTorch eager" if exp is not None else None,
                    "pass": (all(all(c["pass"] for c in k["outputs"]) for k in checks) if exp is not None and checks else None),
                    "tactics": checks}

    # ---- TPAT timing, per tactic ----
    best = None
    for row in tactic_rows:
        if "error" in row:
            continue
        t = row["tactic"]

        def launch_tpat(t=t):
            rc = L.enqueue(t, stream())
            if rc != 0:
                raise BridgeError("launcher", f"{prefix}_enqueue returned {rc} (tactic {t})")
        try:
            g, _ = timer.capture(launch_tpat)
            kt, inner = timer.kernel_times(g.replay)
            row["graph"] = True
        except Exception as e:  # noqa: BLE001
            torch.cuda.synchronize()
            row["notes"] = f"CUDA graph capture failed ({_short(e)}): timed direct launches"
            kt, inner = timer.kernel_times(launch_tpat)
            row["graph"] = False
        row["kernel"] = _stats(kt)
        row["inner"] = inner
        row["host"] = _stats(timer.host_times(launch_tpat))
        if best is None or row["kernel"]["median_us"] < best["kernel"]["median_us"]:
            best = row
    res["tactics"] = tactic_rows
    if best is None:
        raise BridgeError("launcher", "; ".join(r.get("error", "") for r in tactic_rows))
    res["tpat"] = {"tactic": best["tactic"], "kernel_us": best["kernel"]["median_us"], "kernel": best["kernel"],
                   "host_us": best["host"]["median_us"], "graph": best["graph"], "inner": best["inner"]}

    # ---- PyTorch eager / compiled timing ----
    res["eager"] = None
    res["compiled"] = None
    if fn is not None:
        res["eager"] = _time_torch(torch, timer, fn, ins, "eager")
        if do_compile:
            t0 = time.perf_counter()
            try:
                cfn = torch.compile(fn, dynamic=False)
                cout = [x.clone() for x in cfn(*ins)]
                torch.cuda.synchronize()
                compile_s = time.perf_counter() - t0
                cchk = compare_outputs(torch, op, attrs, ins, cout, exp, tols)
                res["compiled"] = _time_torch(torch, timer, cfn, ins, "compiled")
                res["compiled"]["compile_s"] = compile_s
                res["compiled"]["check_vs_eager"] = all(c["pass"] for c in cchk)
                del cout
            except Exception as e:  # noqa: BLE001
                torch.cuda.synchronize()
                res["compiled"] = {"error": _short(e), "compile_s": time.perf_counter() - t0}

    # ---- derived ----
    def gbps(sec):
        return tb / (sec["kernel_us"] * 1e-6) / 1e9 if sec and sec.get("kernel_us") else None
    res["gbps"] = {k: gbps(res[k]) if isinstance(res[k], dict) and "kernel_us" in res[k] else None
                   for k in ("tpat", "eager", "compiled")}
    res["pct_copy"] = {k: (100.0 * v / copy_gbps if v and copy_gbps else None) for k, v in res["gbps"].items()}
    torch_best = [res[k]["kernel_us"] for k in ("eager", "compiled")
                  if isinstance(res[k], dict) and res[k].get("kernel_us")]
    if torch_best:
        res["best_torch_us"] = min(torch_best)
        res["ratio_tpat_over_best"] = res["tpat"]["kernel_us"] / min(torch_best)
        res["tpat_slower"] = res["ratio_tpat_over_best"] > 1.0
    else:
        res["best_torch_us"] = None
        res["ratio_tpat_over_best"] = None
        res["tpat_slower"] = None
    if res["check"]["pass"] is False:
        res["status"] = "mismatch"
    L.terminate()
    return res


def _time_torch(torch, timer, fn, ins, label):
    sec = {}
    try:
        g, _ = timer.capture(lambda: fn(*ins))
        kt, inner = timer.kernel_times(g.replay)
        sec["graph"] = True
        del g
    except Exception as e:  # noqa: BLE001 - not capturable: time direct calls, say so
        torch.cuda.synchronize()
        sec["graph"] = False
        sec["notes"] = f"CUDA graph capture failed ({_short(e)}): timed direct calls (includes launch gaps)"
        kt, inner = timer.kernel_times(lambda: fn(*ins))
    sec["kernel"] = _stats(kt)
    sec["kernel_us"] = sec["kernel"]["median_us"]
    sec["inner"] = inner
    sec["host"] = _stats(timer.host_times(lambda: fn(*ins)))
    sec["host_us"] = sec["host"]["median_us"]
    return sec


def _short(e):
    s = f"{type(e).__name__}: {e}".strip().splitlines()
    return (s[0] if s else type(e).__name__)[:500]


# --------------------------------------------------------------------------------------------
# entry
# --------------------------------------------------------------------------------------------

def run_bench(request: dict) -> dict:
    outs = request.get("outs")
    if not isinstance(outs, list) or not outs or not all(isinstance(o, str) for o in outs):
        raise BridgeError("input", "bench: 'outs' must be a non-empty list of OUT folders")
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
    flush = bool(request.get("flush_l2", False))
    seed = int(request.get("seed") or 0)
    do_compile = bool(request.get("compile", True))
    stem = request.get("name") or "bench"
    budget = request.get("time_budget_s")
    cases = load_cases(request.get("cases"))

    try:
        import torch
    except ImportError as e:
        raise BridgeError("no_device", f"bench needs PyTorch with CUDA: {e}")
    if not torch.cuda.is_available() or torch.cuda.device_count() < 1:
        raise BridgeError("no_device", "bench: no CUDA device (torch.cuda.is_available() is False)")

    t_start = time.perf_counter()
    os.makedirs(report_dir, exist_ok=True)
    torch.manual_seed(seed)
    info = device_info(torch)
    _log(f"device {info['name']} driver {info['driver']} torch {info['torch']}")
    copy = copy_bandwidth(torch, int(request.get("copy_bytes") or COPY_BYTES))
    _log(f"copy bandwidth {copy['gbps']:.0f} GB/s")
    timer = Timer(torch, runs, warmup, int(request.get("flush_bytes") or FLUSH_BYTES) if flush else 0)
    doc = {"format": 1, "tool": "tpat bench", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "device": info, "copy": copy,
           "settings": {"runs": runs, "warmup": warmup, "flush_l2": flush,
                        "flush_bytes": timer.flush.numel() if timer.flush is not None else 0,
                        "compile": do_compile, "seed": seed,
                        "timing": "kernel-only: each side captured in a CUDA graph, CUDA events around graph replays "
                                  "(a spin kernel ahead so host enqueue is not timed), median over runs; "
                                  "host-inclusive: Python call + torch.cuda.synchronize, median"},
           "results": []}
    json_path = os.path.join(report_dir, f"{stem}.json")
    for out_dir in outs:
        try:
            plugins = discover_plugins(out_dir)
        except BridgeError as e:
            doc["results"].append({"out": os.path.abspath(out_dir), "plugin": None, "status": "error", "error": e.reason})
            continue
        if not plugins:
            doc["results"].append({"out": os.path.abspath(out_dir), "plugin": None, "status": "error",
                                   "error": "no plugins in this OUT folder (nothing was converted)"})
        for name, pdir, meta in plugins:
            op = _op_of(pdir, name)
            case = match_case(cases, out_dir, op)
            if budget is not None and time.perf_counter() - t_start > float(budget):
                doc["results"].append({"out": os.path.abspath(out_dir), "plugin": name, "op": op,
                                       "case": case["id"] if case else None, "status": "skipped",
                                       "error": f"time budget of {budget} s spent"})
                continue
            _log(f"{name} ({op})")
            t0 = time.perf_counter()
            try:
                r = bench_plugin(torch, timer, out_dir, name, pdir, meta, case, seed, do_compile, copy["gbps"])
            except BridgeError as e:
                r = {"out": os.path.abspath(out_dir), "plugin": name, "op": op, "case": case["id"] if case else None,
                     "status": "error", "error": f"{e.code}: {e.reason}"}
            except Exception as e:  # noqa: BLE001 - a CUDA error or bench bug: record, go on
                r = {"out": os.path.abspath(out_dir), "plugin": name, "op": op, "case": case["id"] if case else None,
                     "status": "error", "error": _short(e)}
            r["seconds"] = time.perf_counter() - t0
            doc["results"].append(r)
            _log("  " + _one_line(r))
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            with open(json_path, "w") as f:        # partial results survive a kill
                json.dump(doc, f, indent=1)
    doc["seconds"] = time.perf_counter() - t_start
    with open(json_path, "w") as f:
        json.dump(doc, f, indent=1)
    paths = render_report(json_path, report_dir, stem)
    return {"report": paths["report"], "chart": paths["chart"], "results_json": os.path.abspath(json_path),
            "device": info["name"], "copy_gbps": copy["gbps"], "results": doc["results"]}


def _op_of(pdir, name):
    try:
        import onnx
        return onnx.load(os.path.join(pdir, f"{name}.onnx")).graph.node[0].op_type
    except Exception:  # noqa: BLE001
        return None


def _one_line(r):
    if r.get("status") in ("error", "skipped"):
        return f"{r.get('status')}: {r.get('error')}"
    f = lambda s: f"{s['kernel_us']:.1f}us" if isinstance(s, dict) and s.get("kernel_us") else "n/a"
    ratio = r.get("ratio_tpat_over_best")
    return (f"check={'pass' if r['check']['pass'] else r['check']['pass']} tpat={f(r['tpat'])} eager={f(r['eager'])} "
            f"compiled={f(r['compiled'])} ratio={ratio:.2f}" if ratio else
            f"check={r['check']['pass']} tpat={f(r['tpat'])} eager={f(r['eager'])} compiled={f(r['compiled'])}")


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------

def _fmt_us(x):
    if x is None:
        return "n/a"
    if x >= 1000:
        return f"{x / 1000:.3f} ms"
    if x >= 100:
        return f"{x:.0f} µs"
    return f"{x:.1f} µs"


def _sec(r, k):
    s = r.get(k)
    return s if isinstance(s, dict) and s.get("kernel_us") else None


def _label(r):
    return r.get("case") or r.get("plugin") or os.path.basename(r.get("out", "?"))


def render_report(results_json_path, report_dir, stem=None):
    """Writes <stem>.md and <stem>.png (chart) into report_dir from a results JSON."""
    with open(results_json_path) as f:
        doc = json.load(f)
    stem = stem or os.path.splitext(os.path.basename(results_json_path))[0]
    os.makedirs(report_dir, exist_ok=True)
    md_path = os.path.join(report_dir, f"{stem}.md")
    png_path = os.path.join(report_dir, f"{stem}.png")
    chart = write_chart(doc, png_path)
    with open(md_path, "w") as f:
        f.write(render_markdown(doc, os.path.basename(chart) if chart else None))
    return {"report": os.path.abspath(md_path), "chart": os.path.abspath(chart) if chart else None}


def render_markdown(doc, chart_name=None):
    d = doc.get("device", {})
    s = doc.get("settings", {})
    c = doc.get("copy", {})
    copy_gbps = c.get("gbps")
    L = []
    L.append(f"# TPAT benchmark: {d.get('name', '?')}")
    L.append("")
    L.append(f"- device: {d.get('name')} ({d.get('capability')}, {d.get('sms')} SMs, {d.get('memory_gib')} GiB"
             + (f", L2 {d.get('l2_mib')} MiB" if d.get("l2_mib") else "") + ")")
    L.append(f"- driver: {d.get('driver')}; torch {d.get('torch')} (CUDA {d.get('torch_cuda')}); python {d.get('python')}")
    L.append(f"- date: {doc.get('date')}; runs per measurement: {s.get('runs')} (median), warm-up {s.get('warmup')}")
    L.append(f"- L2 flush: " + (f"on ({s.get('flush_bytes', 0) / 2**20:.0f} MiB buffer read+written before every timed run, outside the timed region)"
                               if s.get("flush_l2") else "off (inputs may stay in the 50 MB L2 between runs: small cases can exceed DRAM bandwidth)"))
    if copy_gbps:
        L.append(f"- copy bandwidth: **{copy_gbps:.0f} GB/s** (device-to-device copy of {c.get('bytes_copied', 0) / 2**30:.0f} GiB, bytes read + written / median time)")
    L.append(f"- timing: {s.get('timing', '')}")
    L.append("")
    rows = doc.get("results", [])
    L.append("## Kernel-only medians")
    L.append("")
    L.append("| case | op | check | TPAT | eager | compiled | TPAT / best PyTorch | min traffic | TPAT GB/s (% copy) | eager GB/s (% copy) | compiled GB/s (% copy) |")
    L.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    slower = []
    for r in rows:
        if r.get("status") in ("error", "skipped"):
            L.append(f"| {_label(r)} | {r.get('op') or '?'} | {r.get('status').upper()} | — | — | — | — | — | — | — | — |")
            continue
        chk = r.get("check", {}).get("pass")
        chk_s = "pass" if chk else ("**FAIL**" if chk is False else "n/a")
        ratio = r.get("ratio_tpat_over_best")
        if ratio is None:
            ratio_s = "n/a"
        elif ratio > 1.0:
            ratio_s = f"**{ratio:.2f}x SLOWER**"
            slower.append(r)
        else:
            ratio_s = f"{ratio:.2f}x"
        def bw(k):
            g = r.get("gbps", {}).get(k)
            p = r.get("pct_copy", {}).get(k)
            return "n/a" if g is None else (f"{g:.0f} ({p:.0f}%)" if p is not None else f"{g:.0f}")
        comp = r.get("compiled")
        comp_s = _fmt_us(comp["kernel_us"]) if _sec(r, "compiled") else ("error" if isinstance(comp, dict) and comp.get("error") else "n/a")
        L.append(f"| {_label(r)} | {r.get('op')} | {chk_s} | {_fmt_us(r['tpat']['kernel_us'])} | "
                 f"{_fmt_us(_sec(r, 'eager')['kernel_us']) if _sec(r, 'eager') else 'n/a'} | {comp_s} | {ratio_s} | "
                 f"{r['traffic']['bytes'] / 1e6:.2f} MB | {bw('tpat')} | {bw('eager')} | {bw('compiled')} |")
    L.append("")
    L.append("TPAT / best PyTorch = TPAT kernel-only median / min(eager, compiled); above 1 TPAT is slower (bold).")
    L.append("")
    L.append("## Host-inclusive medians (Python call until the GPU is done)")
    L.append("")
    L.append("| case | TPAT (ctypes enqueue + sync) | eager (call + sync) | compiled (call + sync) | compile time |")
    L.append("|---|---:|---:|---:|---:|")
    for r in rows:
        if r.get("status") in ("error", "skipped"):
            continue
        e, cp = _sec(r, "eager"), _sec(r, "compiled")
        cs = r.get("compiled") or {}
        ctime = f"{cs['compile_s']:.1f} s" if cs.get("compile_s") else "n/a"
        L.append(f"| {_label(r)} | {_fmt_us(r['tpat'].get('host_us'))} | {_fmt_us(e.get('host_us')) if e else 'n/a'} | "
                 f"{_fmt_us(cp.get('host_us')) if cp else 'n/a'} | {ctime} |")
    L.append("")
    if chart_name:
        L.append(f"![kernel-only medians]({chart_name})")
        L.append("")
    L.append("## Where TPAT is slower")
    L.append("")
    if slower:
        for r in slower:
            best = "eager" if _sec(r, "eager") and r["best_torch_us"] == r["eager"]["kernel_us"] else "torch.compile"
            L.append(f"- **{_label(r)}** ({r['op']}): TPAT {_fmt_us(r['tpat']['kernel_us'])} vs {best} "
                     f"{_fmt_us(r['best_torch_us'])}: {r['ratio_tpat_over_best']:.2f}x slower")
    else:
        L.append("- none among the cases that ran")
    L.append("")
    errs = [r for r in rows if r.get("status") in ("error", "skipped", "mismatch")]
    L.append("## Errors, mismatches, skipped cases")
    L.append("")
    if errs:
        for r in errs:
            if r.get("status") == "mismatch":
                bad = []
                for t in r["check"]["tactics"]:
                    for j, o in enumerate(t["outputs"] or []):
                        if not o["pass"]:
                            bad.append(f"tactic {t['tactic']} out{j}: {o.get('bad')}/{o.get('n')} bad, max_abs {o.get('max_abs')}"
                                       + (f" ({o['reason']})" if o.get("reason") else ""))
                L.append(f"- {_label(r)} ({r.get('op')}): output differs from PyTorch eager: " + "; ".join(bad))
            else:
                L.append(f"- {_label(r)} ({r.get('op')}): {r.get('status')}: {r.get('error')}")
    else:
        L.append("- none")
    L.append("")
    L.append("## Cases")
    L.append("")
    L.append("| case | plugin | inputs | outputs | PyTorch implementation | minimal traffic (formula) | tactics | notes |")
    L.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r.get("status") in ("error", "skipped"):
            continue
        io = lambda ts: ", ".join(f"{t['dtype']}{t['shape']}" for t in ts)
        notes = list(r.get("notes", []))
        for k in ("eager", "compiled"):
            sec = r.get(k)
            if isinstance(sec, dict) and sec.get("notes"):
                notes.append(f"{k}: {sec['notes']}")
            if isinstance(sec, dict) and sec.get("error"):
                notes.append(f"{k}: {sec['error']}")
            if isinstance(sec, dict) and sec.get("check_vs_eager") is False:
                notes.append(f"{k}: output differs from eager")
        tr = r["traffic"]
        L.append(f"| {_label(r)} | {r['plugin']} | {io(r['inputs'])} | {io(r['outputs'])} | `{r.get('torch_impl')}` | "
                 f"{tr['words']}: `{tr['code']}` = {tr['bytes']:,} B | {r.get('num_tactics')} (best {r['tpat']['tactic']}) | "
                 f"{'; '.join(n.replace('|', '/') for n in notes)} |")
    L.append("")
    L.append("B(t) = bytes of tensor t; in<i> are the plugin's non-constant inputs in node order, out<j> its outputs. "
             "Effective GB/s = minimal traffic / kernel-only median; % copy = that / measured copy bandwidth.")
    L.append("")
    return "\n".join(L)


# --------------------------------------------------------------------------------------------
# chart: matplotlib when importable, else a small PNG writer (numpy + zlib, 5x7 bitmap font)
# --------------------------------------------------------------------------------------------

SERIES = (("tpat", "TPAT", (214, 39, 40)), ("eager", "PyTorch eager", (31, 119, 180)),
          ("compiled", "torch.compile", (44, 160, 44)))


def chart_data(doc):
    labels, values, slower = [], [], []
    for r in doc.get("results", []):
        if r.get("status") in ("error", "skipped") or not isinstance(r.get("tpat"), dict):
            continue
        labels.append(_label(r))
        values.append([(_sec(r, k) or {}).get("kernel_us") for k, _, _ in SERIES])
        slower.append(bool(r.get("tpat_slower")))
    return labels, values, slower


def write_chart(doc, png_path):
    labels, values, slower = chart_data(doc)
    if not labels:
        return None
    flushed = "L2 flushed" if doc.get("settings", {}).get("flush_l2") else "L2 not flushed"
    title = f"Kernel-only median time per op (log scale, lower is better, {flushed}) - {doc.get('device', {}).get('name', '')}"
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # noqa: BLE001 - fall back to the built-in writer
        plt = None
    if plt is not None:
        import numpy as np
        fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(labels) + 2), 5.5))
        x = np.arange(len(labels))
        w = 0.27
        for i, (k, name, rgb) in enumerate(SERIES):
            vals = [v[i] if v[i] else np.nan for v in values]
            ax.bar(x + (i - 1) * w, vals, w, label=name, color=[c / 255 for c in rgb])
        for xi, s, v in zip(x, slower, values):
            if s and v[0]:
                ax.annotate("slower", (xi - w, v[0]), textcoords="offset points", xytext=(0, 3),
                            ha="center", fontsize=7, color="darkred")
        ax.set_yscale("log")
        ax.set_ylabel("µs (median)")
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=30, ha="right")
        ax.set_title(title, fontsize=10)
        ax.legend()
        ax.grid(axis="y", which="major", alpha=0.3)
        fig.tight_layout()
        fig.savefig(png_path, dpi=110)
        plt.close(fig)
        return png_path
    img = _draw_chart(labels, values, slower, title)
    write_png(png_path, img)
    return png_path


_FONT = {
    "A": "01110 10001 10001 11111 10001 10001 10001", "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110", "D": "11110 10001 10001 10001 10001 10001 11110",
    "E": "11111 10000 10000 11110 10000 10000 11111", "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111", "H": "10001 10001 10001 11111 10001 10001 10001",
    "I": "01110 00100 00100 00100 00100 00100 01110", "J": "00111 00010 00010 00010 00010 10010 01100",
    "K": "10001 10010 10100 11000 10100 10010 10001", "L": "10000 10000 10000 10000 10000 10000 11111",
    "M": "10001 11011 10101 10101 10001 10001 10001", "N": "10001 10001 11001 10101 10011 10001 10001",
    "O": "01110 10001 10001 10001 10001 10001 01110", "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101", "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110", "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110", "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010", "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 01010 00100 00100 00100 00100", "Z": "11111 00001 00010 00100 01000 10000 11111",
    "0": "01110 10001 10011 10101 11001 10001 01110", "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111", "3": "11111 00010 00100 00010 00001 10001 01110",
    "4": "00010 00110 01010 10010 11111 00010 00010", "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110", "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110", "9": "01110 10001 10001 01111 00001 00010 01100",
    " ": "00000 00000 00000 00000 00000 00000 00000", ".": "00000 00000 00000 00000 00000 01100 01100",
    "-": "00000 00000 00000 11111 00000 00000 00000", "_": "00000 00000 00000 00000 00000 00000 11111",
    "/": "00001 00010 00010 00100 01000 01000 10000", "(": "00010 00100 01000 01000 01000 00100 00010",
    ")": "01000 00100 00010 00010 00010 00100 01000", "%": "11001 11010 00010 00100 01000 01011 10011",
    ":": "00000 01100 01100 00000 01100 01100 00000", ",": "00000 00000 00000 00000 01100 00100 01000",
    "=": "00000 00000 11111 00000 11111 00000 00000", "*": "00000 00100 10101 01110 10101 00100 00000",
    "+": "00000 00100 00100 11111 00100 00100 00000", "<": "00010 00100 01000 10000 01000 00100 00010",
    ">": "01000 00100 00010 00001 00010 00100 01000", "?": "01110 10001 00001 00010 00100 00000 00100",
}


def _text(img, x, y, s, color, scale=1):
    h, w = img.shape[:2]
    for ch in str(s).upper():
        g = _FONT.get(ch, _FONT["?"]).split()
        for r, row in enumerate(g):
            for c, bit in enumerate(row):
                if bit == "1":
                    y0, x0 = y + r * scale, x + c * scale
                    if 0 <= y0 and y0 + scale <= h and 0 <= x0 and x0 + scale <= w:
                        img[y0:y0 + scale, x0:x0 + scale] = color
        x += 6 * scale
    return x


def _text_width(s, scale=1):
    return 6 * scale * len(str(s))


def _draw_chart(labels, values, slower, title):
    import numpy as np
    slot = 126
    left, right, top, bottom = 70, 20, 60, 60
    plot_h = 320
    W = left + right + slot * len(labels)
    W = max(W, _text_width(title) + 40)
    H = top + plot_h + bottom
    img = np.full((H, W, 3), 255, dtype=np.uint8)
    vals = [v for row in values for v in row if v]
    lo = math.floor(math.log10(min(vals)))
    hi = math.ceil(math.log10(max(vals)))
    if hi == lo:
        hi = lo + 1
    y_of = lambda v: top + plot_h - int(round((math.log10(v) - lo) / (hi - lo) * plot_h))
    grey, black = (200, 200, 200), (0, 0, 0)
    for e in range(lo, hi + 1):
        y = y_of(10.0 ** e)
        img[y, left:W - right] = grey
        lab = f"{10 ** e:g}" if -3 <= e <= 4 else f"1E{e}"
        _text(img, left - 8 - _text_width(lab), y - 3, lab, black)
    img[top:top + plot_h + 1, left] = black
    img[top + plot_h, left:W - right] = black
    _text(img, 8, top - 14, "US", black)
    _text(img, 10, 8, title, black)
    lx = 10
    for k, name, rgb in SERIES:
        img[26:33, lx:lx + 7] = rgb
        lx = _text(img, lx + 10, 26, name, black) + 16
    _text(img, lx, 26, "* = TPAT SLOWER", (150, 0, 0))
    bw = 30
    for i, (lab, row, slow) in enumerate(zip(labels, values, slower)):
        x0 = left + i * slot + (slot - 3 * bw - 8) // 2
        for k, v in enumerate(row):
            xb = x0 + k * (bw + 4)
            if not v:
                _text(img, xb + 6, top + plot_h - 10, "NA", (120, 120, 120))
                continue
            y = max(top, y_of(v))
            img[y:top + plot_h, xb:xb + bw] = SERIES[k][2]
            if k == 0 and slow:
                _text(img, xb + bw // 2 - 2, max(top - 9, y - 10), "*", (150, 0, 0))
        lab = lab if _text_width(lab) <= slot - 4 else lab[: (slot - 4) // 6]
        _text(img, left + i * slot + (slot - _text_width(lab)) // 2, top + plot_h + 10, lab, black)
    return img


def write_png(path, img):
    """Writes an RGB uint8 image (H, W, 3) as a PNG (8-bit truecolor, no filtering)."""
    import numpy as np
    img = np.ascontiguousarray(img, dtype=np.uint8)
    h, w = img.shape[:2]
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))
    return path

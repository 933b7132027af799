"""Reference data for a generated plugin: op-aware inputs + ONNX Runtime (CPU) outputs.

Public entry: make_reference(request) -> {"cases", "manifest", "notes", "bytes"}.

Request:
  {"command": "reference", "model_path": <one-node canonical model>, "out_dir": <folder>,
   "prefix": "tpat_<P>", "plugin": "<P>", "cases": null | [{"s0": 4, ...}, ...], "seed": 0,
   "max_case_bytes": optional hard cap per case (default 8 MiB)}

The model is in canonical form: graph inputs in0, in1, ... (the node's non-constant inputs),
initializers const0, ... (its constant inputs), outputs out0, ...; symbolic dims s0, s1, ...

Written into out_dir (case<k>/ folders and manifest.* are replaced, nothing else is touched):
  manifest.json, manifest.txt (line based, read by plugin-runtime/check/tpat_check.cpp),
  case<k>/in<i>.bin, case<k>/out<j>.bin  (raw little-endian, row-major; bool = 1 byte,
  float16/bfloat16 = their 16-bit patterns).
The format and the per-op input rules are described in docs/reference-data.md.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from tpat_bridge.errors import BridgeError
from tpat_bridge.planning.values import bad_value

FORMAT_VERSION = 1
DEFAULT_MAX_CASE_BYTES = 8 << 20  # hard cap: a case over this is an error
TARGET_CASE_BYTES = 3 << 20  # soft cap used when picking symbolic bindings
MAX_TENSOR_ELEMENTS = 4 << 20

try:
    import ml_dtypes

    _BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - ml_dtypes is in the lock file
    ml_dtypes = None
    _BF16 = None

ONNX_TO_NAME = {
    TP.FLOAT: "float32",
    TP.FLOAT16: "float16",
    TP.BFLOAT16: "bfloat16",
    TP.DOUBLE: "float64",
    TP.INT8: "int8",
    TP.UINT8: "uint8",
    TP.INT16: "int16",
    TP.UINT16: "uint16",
    TP.INT32: "int32",
    TP.UINT32: "uint32",
    TP.INT64: "int64",
    TP.UINT64: "uint64",
    TP.BOOL: "bool",
}
NAME_TO_NP = {
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "float64": np.dtype(np.float64),
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "int16": np.dtype(np.int16),
    "uint16": np.dtype(np.uint16),
    "int32": np.dtype(np.int32),
    "uint32": np.dtype(np.uint32),
    "int64": np.dtype(np.int64),
    "uint64": np.dtype(np.uint64),
    "bool": np.dtype(np.bool_),
}
if _BF16 is not None:
    NAME_TO_NP["bfloat16"] = _BF16

FLOATS = ("float32", "float16", "bfloat16", "float64")

# Tolerances per output dtype: (atol, rtol). Integers and bool are compared exactly.
TOLERANCES = {
    "float32": (1e-4, 1e-3),
    "float16": (1e-2, 1e-2),
    "bfloat16": (5e-2, 5e-2),
    "float64": (1e-6, 1e-5),
}

# Values used for symbolic dims, one list per candidate binding: symbol k takes values[k % len].
# Odd, non power-of-two sizes first (they expose tiling/bounds bugs); smaller fallbacks later.
_CANDIDATE_VALUES = [
    [3, 5, 4, 6, 2],
    [7, 11, 9, 13, 5],
    [5, 3, 6, 4, 2],
    [3],
    [7],
    [5],
    [4],
    [2],
    [6],
    [9],
    [2, 3],
    [3, 2],
    [1],
]


class Infeasible(Exception):
    """The op's input rules cannot be met for this binding (try another one)."""


def _np_dtype(name):
    if name not in NAME_TO_NP:
        raise BridgeError("model", f"unsupported element type {name} for reference data")
    return NAME_TO_NP[name]


def _dtype_name(arr) -> str:
    dt = np.dtype(arr.dtype)
    if _BF16 is not None and dt == _BF16:
        return "bfloat16"
    for k, v in NAME_TO_NP.items():
        if v == dt:
            return k
    raise BridgeError("model", f"unsupported output element type {dt}")


# --------------------------------------------------------------------------------------------
# model reading
# --------------------------------------------------------------------------------------------


class Slot:
    """One input position of the node: a graph input, a constant (initializer) or absent."""

    def __init__(self, pos, name, kind, dtype=None, dims=None, value=None, graph_index=None):
        self.pos = pos
        self.name = name
        self.kind = kind  # "input" | "const" | "absent"
        self.dtype = dtype  # dtype name
        self.dims = dims  # list of int | str (symbol) for inputs
        self.value = value  # np array for constants
        self.graph_index = graph_index


def _load(path):
    if not isinstance(path, str) or not os.path.isfile(path):
        raise BridgeError("input", f"no such model file: {path}")
    try:
        return onnx.load(path, load_external_data=False)  # TPAT writes node models inline
    except Exception as e:
        raise BridgeError("model", f"onnx cannot load {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")


def _read_model(model):
    g = model.graph
    if len(g.node) != 1:
        raise BridgeError("model", f"reference data needs a one-node model, this one has {len(g.node)} nodes")
    node = g.node[0]
    inits = {t.name: t for t in g.initializer}
    graph_inputs = [vi for vi in g.input if vi.name not in inits]
    gi_index = {vi.name: i for i, vi in enumerate(graph_inputs)}
    anon = itertools.count()
    input_dims = []
    for vi in graph_inputs:
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or tt.elem_type not in ONNX_TO_NAME:
            raise BridgeError("model", f"graph input {vi.name}: unsupported type for reference data")
        dims = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                if d.dim_value < 1:  # ONNX Runtime kernels divide by empty dims (DFT: SIGFPE)
                    raise BridgeError(
                        "model",
                        f"graph input {vi.name}: dim {d.dim_value}; reference data "
                        "needs dims >= 1 (the planner refuses empty tensors: zero_size_tensor)",
                    )
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param") and d.dim_param:
                dims.append(d.dim_param)
            else:
                dims.append(f"_anon{next(anon)}")
        input_dims.append((ONNX_TO_NAME[tt.elem_type], dims))
    slots = []
    for pos, name in enumerate(node.input):
        if not name:
            slots.append(Slot(pos, name, "absent"))
        elif name in inits:
            t = inits[name]
            if t.data_type not in ONNX_TO_NAME:
                raise BridgeError("model", f"constant {name}: unsupported type")
            slots.append(Slot(pos, name, "const", ONNX_TO_NAME[t.data_type], value=numpy_helper.to_array(t)))
        elif name in gi_index:
            i = gi_index[name]
            dt, dims = input_dims[i]
            slots.append(Slot(pos, name, "input", dt, dims, graph_index=i))
        else:
            raise BridgeError("model", f"node input {name!r} is neither a graph input nor an initializer")
    used = {s.graph_index for s in slots if s.kind == "input"}
    if used != set(range(len(graph_inputs))):
        raise BridgeError("model", "every graph input must feed the node")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attrs = {k: (v.decode(errors="replace") if isinstance(v, bytes) else v) for k, v in attrs.items()}
    # values ONNX does not allow, before ONNX Runtime runs (some crash it: planning/values.py)
    why = bad_value(
        node.op_type,
        attrs,
        [s.dims if s.kind == "input" else list(s.value.shape) if s.kind == "const" else None for s in slots],
        {s.pos: s.value for s in slots if s.kind == "const"},
    )
    if why:
        raise BridgeError("model", why)
    return node, attrs, slots, graph_inputs


def _symbols(slots):
    seen = []
    for s in slots:
        if s.kind == "input":
            for d in s.dims:
                if isinstance(d, str) and d not in seen:
                    seen.append(d)

    def key(sym):
        m = re.fullmatch(r"s(\d+)", sym)
        return (0, int(m.group(1)), sym) if m else (1, 0, sym)

    return sorted(seen, key=key)


# --------------------------------------------------------------------------------------------
# generation context
# --------------------------------------------------------------------------------------------


class Ctx:
    def __init__(self, node, attrs, slots, binding, rng, notes):
        self.node = node
        self.op = node.op_type
        self.attrs = attrs
        self.slots = slots
        self.binding = binding
        self.rng = rng
        self.notes = notes  # a set: rules applied (deduplicated across cases)
        self.values = {}  # pos -> np array (generated inputs)
        self.shapes = {}
        for s in slots:
            if s.kind == "input":
                self.shapes[s.pos] = tuple(int(binding[d]) if isinstance(d, str) else int(d) for d in s.dims)
            elif s.kind == "const":
                self.shapes[s.pos] = tuple(s.value.shape)

    def n(self):
        return len(self.slots)

    def has(self, pos):
        return pos < len(self.slots) and self.slots[pos].kind != "absent"

    def is_input(self, pos):
        return pos < len(self.slots) and self.slots[pos].kind == "input"

    def shape(self, pos):
        return self.shapes[pos]

    def dtype(self, pos):
        return self.slots[pos].dtype

    def value(self, pos):
        """The constant value or the value generated so far (None if neither)."""
        s = self.slots[pos]
        if s.kind == "const":
            return s.value
        return self.values.get(pos)

    def set(self, pos, arr):
        if self.is_input(pos):
            arr = np.asarray(arr)
            self.values[pos] = _cast(arr, self.dtype(pos)).reshape(self.shape(pos))

    def note(self, text):
        self.notes.add(text)


def _cast(arr, dtype_name):
    dt = _np_dtype(dtype_name)
    if dtype_name == "bool":
        return np.asarray(arr).astype(np.bool_)
    return np.asarray(arr).astype(dt)


def _random(rng, dtype_name, shape, kind="normal"):
    shape = tuple(shape)
    if dtype_name == "bool":
        return rng.random(shape) < 0.5
    if dtype_name in FLOATS:
        if kind == "uniform":
            x = rng.uniform(-1.0, 1.0, shape)
        else:
            x = rng.standard_normal(shape)
        return _cast(x, dtype_name)
    dt = _np_dtype(dtype_name)
    if np.issubdtype(dt, np.signedinteger):
        return rng.integers(-10, 11, shape).astype(dt)
    return rng.integers(0, 21, shape).astype(dt)


def _nonzero_ints(rng, shape, lo=1, hi=10, signed=True):
    mag = rng.integers(lo, hi + 1, shape)
    if signed:
        mag = np.where(rng.random(shape) < 0.5, -mag, mag)
    return mag


def _maybe_negative(rng, idx, dims, frac=0.25):
    """Turns about `frac` of the (non-negative, in-range) indices into their negative alias."""
    idx = np.asarray(idx, dtype=np.int64)
    neg = rng.random(idx.shape) < frac
    return np.where(neg, idx - np.asarray(dims, dtype=np.int64), idx)


def _norm_axis(axis, rank):
    axis = int(axis)
    if axis < 0:
        axis += rank
    if not 0 <= axis < max(rank, 1):
        raise Infeasible(f"axis {axis} out of range for rank {rank}")
    return axis


def _index_dtype_ok_signed(ctx, pos):
    return np.issubdtype(_np_dtype(ctx.dtype(pos)), np.signedinteger)


# --------------------------------------------------------------------------------------------
# per-op input rules; each sets some positions with ctx.set, the rest gets generic random data
# --------------------------------------------------------------------------------------------


def _gen_gather(ctx):
    """Gather and GatherElements: indices along `axis`."""
    data, ind = ctx.shape(0), ctx.shape(1)
    axis = _norm_axis(ctx.attrs.get("axis", 0), len(data))
    d = data[axis]
    if d == 0 and int(np.prod(ind)) > 0:
        raise Infeasible("gather from an empty axis")
    idx = ctx.rng.integers(0, max(d, 1), ind)
    if _index_dtype_ok_signed(ctx, 1):
        idx = _maybe_negative(ctx.rng, idx, d)
    ctx.set(1, idx)
    ctx.note(f"{ctx.op}: indices uniform in [-d, d) along axis (about 25% negative)")


def _gen_gather_nd(ctx):
    data, ind = ctx.shape(0), ctx.shape(1)
    b = int(ctx.attrs.get("batch_dims", 0))
    if len(ind) < 1:
        raise Infeasible("GatherND indices need rank >= 1")
    k = ind[-1]
    if k > len(data) - b:
        raise Infeasible("GatherND: indices.shape[-1] > rank(data) - batch_dims")
    if tuple(ind[:b]) != tuple(data[:b]):
        raise Infeasible("GatherND: batch dims differ")
    dims = np.asarray(data[b : b + k], dtype=np.int64)
    if k and (dims == 0).any():
        raise Infeasible("GatherND: empty indexed dim")
    u = ctx.rng.random(ind)
    idx = np.floor(u * dims).astype(np.int64) if k else np.zeros(ind, np.int64)
    ctx.set(1, _maybe_negative(ctx.rng, idx, dims))
    ctx.note(f"GatherND: index tuples in range per indexed dim (batch_dims={b}, about 25% negative)")


def _gen_scatter_nd(ctx):
    data, ind = ctx.shape(0), ctx.shape(1)
    red = ctx.attrs.get("reduction", "none")
    if len(ind) < 1:
        raise Infeasible("ScatterND indices need rank >= 1")
    k = ind[-1]
    if k > len(data) or k < 1:
        raise Infeasible("ScatterND: bad index depth")
    dims = data[:k]
    slots = int(np.prod(dims))
    m = int(np.prod(ind[:-1]))
    if ctx.has(2) and tuple(ctx.shape(2)) != tuple(ind[:-1]) + tuple(data[k:]):
        raise Infeasible("ScatterND: updates shape mismatch")
    if red == "none":
        if m > slots:
            raise Infeasible(f"ScatterND: {m} unique updates do not fit {slots} slots")
        flat = ctx.rng.choice(slots, size=m, replace=False) if m else np.zeros(0, np.int64)
        ctx.note("ScatterND reduction=none: index tuples without duplicates")
    else:
        if slots == 0 and m:
            raise Infeasible("ScatterND: no slots")
        pool = max(1, min(slots, (m + 1) // 2))
        targets = ctx.rng.choice(slots, size=pool, replace=False)
        flat = targets[ctx.rng.integers(0, pool, m)]
        if m >= 2:
            flat[-1] = flat[0]  # at least one duplicate
        ctx.note(f"ScatterND reduction={red}: index tuples with duplicates")
    idx = (
        np.stack(np.unravel_index(flat.astype(np.int64), dims), axis=-1).reshape(ind) if m else np.zeros(ind, np.int64)
    )
    ctx.set(1, _maybe_negative(ctx.rng, idx, np.asarray(dims, dtype=np.int64)))
    if red == "mul" and ctx.is_input(2) and ctx.dtype(2) in FLOATS:
        ctx.set(2, ctx.rng.uniform(0.5, 1.5, ctx.shape(2)))
        ctx.note("ScatterND reduction=mul: updates in [0.5, 1.5]")


def _gen_scatter_elements(ctx):
    data, ind = ctx.shape(0), ctx.shape(1)
    red = ctx.attrs.get("reduction", "none")
    axis = _norm_axis(ctx.attrs.get("axis", 0), len(data))
    if len(ind) != len(data) or any(i > d for a, (i, d) in enumerate(zip(ind, data)) if a != axis):
        raise Infeasible("ScatterElements: indices shape does not fit data")
    if ctx.has(2) and tuple(ctx.shape(2)) != tuple(ind):
        raise Infeasible("ScatterElements: updates shape differs from indices")
    d = data[axis]
    n = ind[axis]
    moved = list(ind)
    moved.pop(axis)
    fibers = int(np.prod(moved)) if moved else 1
    if n and d == 0:
        raise Infeasible("ScatterElements: empty axis")
    if red == "none":
        if n > d:
            raise Infeasible(f"ScatterElements: {n} unique indices do not fit axis of {d}")
        keys = ctx.rng.random((fibers, d))
        idx = np.argsort(keys, axis=1)[:, :n]
        ctx.note("ScatterElements reduction=none: indices distinct along axis within every fiber")
    else:
        pool = max(1, min(d, (n + 1) // 2))
        idx = ctx.rng.integers(0, pool, (fibers, n))
        if n >= 2:
            idx[:, -1] = idx[:, 0]
        ctx.note(f"ScatterElements reduction={red}: indices with duplicates along axis")
    idx = idx.reshape(tuple(moved) + (n,))
    idx = np.moveaxis(idx, -1, axis)
    ctx.set(1, _maybe_negative(ctx.rng, idx, d))
    if red == "mul" and ctx.is_input(2) and ctx.dtype(2) in FLOATS:
        ctx.set(2, ctx.rng.uniform(0.5, 1.5, ctx.shape(2)))


def _scalar_of(arr):
    a = np.asarray(arr).reshape(-1)
    if a.size != 1:
        raise Infeasible("expected a one-element tensor")
    return a[0]


def _gen_onehot(ctx):
    if ctx.is_input(1):
        ctx.set(1, np.full(ctx.shape(1), 10))
        ctx.note("OneHot: non-constant depth set to 10")
    depth = int(_scalar_of(ctx.value(1)))
    if depth <= 0:
        raise Infeasible("OneHot: depth must be positive")
    ind = ctx.shape(0)
    signed = ctx.dtype(0) in FLOATS or _index_dtype_ok_signed(ctx, 0)
    lo = -depth if signed else 0
    ctx.set(0, ctx.rng.integers(lo, depth, ind))
    ctx.note("OneHot: indices in [-depth, depth)" if signed else "OneHot: indices in [0, depth)")
    if ctx.is_input(2):
        ctx.set(2, np.array([0, 1]) if ctx.dtype(2) not in FLOATS else ctx.rng.standard_normal(2))


def _distinct_along(rng, dtype_name, shape, axis):
    """Values distinct along `axis` within every fiber (no ties)."""
    shape = tuple(shape)
    n = shape[axis]
    others = shape[:axis] + shape[axis + 1 :]
    fibers = int(np.prod(others)) if others else 1
    limit_int = {"float16": 2048, "bfloat16": 256, "float32": 1 << 24, "float64": 1 << 50}
    if dtype_name in FLOATS and n <= limit_int[dtype_name]:
        perm = np.argsort(rng.random((fibers, n)), axis=1)
        scale = 2.0 ** -max(0, math.ceil(math.log2(max(n, 1) / 8))) if n > 8 else 1.0
        vals = (perm - n // 2).astype(np.float64) * scale
    elif dtype_name in ("float16", "bfloat16"):
        bits = np.arange(1 << 16, dtype=np.uint16)
        pool = bits.view(np.float16 if dtype_name == "float16" else _BF16).astype(np.float64)
        pool = np.unique(pool[np.isfinite(pool) & (np.abs(pool) <= 1e4)])
        if n > pool.size:
            raise Infeasible(f"{dtype_name} cannot hold {n} distinct values")
        vals = np.stack([rng.choice(pool, n, replace=False) for _ in range(fibers)]) if fibers else np.zeros((0, n))
    elif dtype_name == "bool":
        if n > 2:
            raise Infeasible("bool cannot hold distinct values")
        vals = np.argsort(rng.random((fibers, n)), axis=1)
    else:
        info = np.iinfo(_np_dtype(dtype_name))
        if n > int(info.max) - int(info.min) + 1:
            raise Infeasible(f"{dtype_name} cannot hold {n} distinct values")
        perm = np.argsort(rng.random((fibers, n)), axis=1)
        vals = perm - (min(n // 2, -int(info.min)) if info.min < 0 else 0)
    vals = vals.reshape(others + (n,))
    return _cast(np.moveaxis(vals, -1, axis), dtype_name)


def _gen_topk(ctx):
    x = ctx.shape(0)
    axis = _norm_axis(ctx.attrs.get("axis", -1), len(x))
    if ctx.is_input(1):
        ctx.set(1, np.full(ctx.shape(1), max(1, x[axis] // 2)))
        ctx.note("TopK: non-constant K set to dim // 2")
    k = int(_scalar_of(ctx.value(1)))
    if k > x[axis]:
        raise Infeasible(f"TopK: K={k} > axis dim {x[axis]}")
    ctx.set(0, _distinct_along(ctx.rng, ctx.dtype(0), x, axis))
    ctx.note("TopK: values distinct along the axis (no ties: index output is deterministic)")


def _gen_bitshift(ctx):
    for pos in (0, 1):
        if ctx.is_input(pos):
            dt = _np_dtype(ctx.dtype(pos))
            bits = dt.itemsize * 8
            if pos == 0:
                ctx.set(0, ctx.rng.integers(0, np.iinfo(dt).max, ctx.shape(0), dtype=dt, endpoint=True))
            else:
                ctx.set(1, ctx.rng.integers(0, bits, ctx.shape(1)))
    ctx.note("BitShift: X over the full unsigned range, shift amounts in [0, bit width)")


def _gen_div_mod(ctx):
    fmod = int(ctx.attrs.get("fmod", 0))
    for pos in (0, 1):
        if not ctx.is_input(pos):
            continue
        dtn = ctx.dtype(pos)
        shp = ctx.shape(pos)
        if dtn in FLOATS:
            if pos == 0:
                ctx.set(0, ctx.rng.uniform(-10, 10, shp))
            else:
                ctx.set(1, np.where(ctx.rng.random(shp) < 0.5, -1, 1) * ctx.rng.uniform(0.5, 3.0, shp))
        else:
            signed = np.issubdtype(_np_dtype(dtn), np.signedinteger)
            if pos == 0:
                ctx.set(0, ctx.rng.integers(-100 if signed else 0, 101, shp))
            else:
                ctx.set(1, _nonzero_ints(ctx.rng, shp, 1, 9, signed))
    if ctx.op == "Mod":
        ctx.note(f"Mod (fmod={fmod}): non-zero divisors of both signs, floats |b| in [0.5, 3]")
    else:
        ctx.note("Div: non-zero divisors (ints in [-9, 9] \\ {0}, floats |b| in [0.5, 3])")


def _gen_maxunpool(ctx):
    x = ctx.shape(0)
    if len(x) < 3:
        raise Infeasible("MaxUnpool needs rank >= 3")
    nsp = len(x) - 2
    k = list(ctx.attrs.get("kernel_shape", [1] * nsp))
    s = list(ctx.attrs.get("strides", [1] * nsp))
    p = list(ctx.attrs.get("pads", [0] * (2 * nsp)))
    out_sp = [(x[2 + i] - 1) * s[i] + k[i] - p[i] - p[i + nsp] for i in range(nsp)]
    if ctx.has(2):
        if ctx.is_input(2):
            ctx.set(2, np.asarray([x[0], x[1]] + out_sp))
            ctx.note("MaxUnpool: non-constant output_shape set to the default shape")
        os_ = [int(v) for v in np.asarray(ctx.value(2)).reshape(-1)]
        out_sp = os_[2:]
    if any(o <= 0 for o in out_sp):
        raise Infeasible("MaxUnpool: empty output")
    N, C = x[0], x[1]
    plane = int(np.prod(out_sp))
    in_sp = x[2:]
    nin = int(np.prod(in_sp))
    if nin > plane:
        raise Infeasible("MaxUnpool: more inputs than outputs per plane")
    rng = ctx.rng
    # a random position inside each input element's pooling window, clipped to the output
    grids = np.meshgrid(*[np.arange(d) for d in in_sp], indexing="ij")
    coords = []
    for i in range(nsp):
        start = grids[i] * s[i] - p[i]
        off = rng.integers(0, k[i], (N, C) + tuple(in_sp))
        coords.append(np.clip(start[None, None] + off, 0, out_sp[i] - 1))
    local = np.ravel_multi_index(coords, out_sp)  # (N, C, *in_sp)
    local = local.reshape(N * C, nin)
    used = np.zeros((N * C, plane), dtype=bool)
    for r in range(N * C):
        row = local[r]
        order = rng.permutation(nin)
        for e in order:
            v = row[e]
            if not used[r, v]:
                used[r, v] = True
                continue
            # duplicate: another free spot in the window, else any free spot in the plane
            pos = np.unravel_index(e, in_sp)
            ranges = [
                range(max(0, pos[i] * s[i] - p[i]), min(out_sp[i], pos[i] * s[i] - p[i] + k[i])) for i in range(nsp)
            ]
            cands = [int(np.ravel_multi_index(c, out_sp)) for c in itertools.product(*ranges)]
            cands = [c for c in cands if not used[r, c]]
            if not cands:
                cands = np.flatnonzero(~used[r]).tolist()
            v = cands[int(rng.integers(0, len(cands)))]
            used[r, v] = True
            row[e] = v
    flat = local + (np.arange(N * C, dtype=np.int64) * plane)[:, None]
    ctx.set(1, flat.reshape(x))
    ctx.note("MaxUnpool: indices = flat output positions inside each pooling window, unique per output")


def _gen_grid_sample(ctx):
    x, gshape = ctx.shape(0), ctx.shape(1)
    nsp = gshape[-1]
    if nsp != len(x) - 2:
        raise Infeasible("GridSample: grid last dim != spatial rank")
    g = ctx.rng.uniform(-1.1, 1.1, gshape)
    mode = ctx.attrs.get("mode", "linear")
    align = int(ctx.attrs.get("align_corners", 0))
    if mode == "nearest":
        # keep the unnormalized coordinate away from .5 (rounding ties differ between libraries)
        for i in range(nsp):
            L = x[-1 - i]  # grid[..., 0] indexes the last (W) dim
            gi = g[..., i]
            u = (gi + 1) / 2 * (L - 1) if align else ((gi + 1) * L - 1) / 2
            frac = u - np.floor(u)
            bad = np.abs(frac - 0.5) < 0.02
            u = np.where(bad, np.floor(u) + np.where(frac < 0.5, 0.45, 0.55), u)
            g[..., i] = (2 * u / (L - 1) - 1 if L > 1 else gi) if align else (2 * u + 1) / L - 1
        ctx.note("GridSample nearest: coordinates kept away from rounding ties")
    ctx.set(1, g)
    ctx.note("GridSample: grid uniform in [-1.1, 1.1]")


def _gen_cumsum(ctx):
    if ctx.is_input(1):
        r = len(ctx.shape(0))
        ctx.set(1, np.full(ctx.shape(1), int(ctx.rng.integers(-r, r))))
        ctx.note("CumSum: non-constant axis drawn in [-rank, rank)")


def _gen_roialign(ctx):
    x = ctx.shape(0)
    N, H, W = x[0], x[2], x[3]
    ss = float(ctx.attrs.get("spatial_scale", 1.0))
    if ctx.is_input(1):
        r = ctx.shape(1)[0]
        x1 = ctx.rng.uniform(0, W * 0.7, r) / ss
        y1 = ctx.rng.uniform(0, H * 0.7, r) / ss
        x2 = x1 + ctx.rng.uniform(1, max(1.5, W * 0.3), r) / ss
        y2 = y1 + ctx.rng.uniform(1, max(1.5, H * 0.3), r) / ss
        ctx.set(1, np.stack([x1, y1, x2, y2], axis=1))
    if ctx.is_input(2):
        ctx.set(2, ctx.rng.integers(0, max(N, 1), ctx.shape(2)))
    ctx.note("RoiAlign: boxes inside the image (x1<x2, y1<y2), batch indices in [0, N)")


def _gen_loss(ctx):
    """NegativeLogLikelihoodLoss / SoftmaxCrossEntropyLoss: targets in [0, C) (ONNX Runtime refuses
    others), every third one ignore_index when the node has one; positive weights."""
    x = ctx.shape(0)
    if len(x) < 2 or x[1] <= 0:
        raise Infeasible("loss: scores need a class dim")
    if ctx.is_input(1):
        t = ctx.rng.integers(0, x[1], ctx.shape(1))
        if "ignore_index" in ctx.attrs:
            t.reshape(-1)[::3] = int(ctx.attrs["ignore_index"])
        ctx.set(1, t.astype(_np_dtype(ctx.dtype(1))))
        ctx.note("loss: targets in [0, C), every third one ignore_index when set")
    if ctx.has(2) and ctx.is_input(2):
        ctx.set(2, ctx.rng.uniform(0.2, 2.0, ctx.shape(2)).astype(_np_dtype(ctx.dtype(2))))


def _gen_trilu(ctx):
    if ctx.is_input(1):
        ctx.set(1, np.full(ctx.shape(1), int(ctx.rng.integers(-2, 3))))


_UNARY_DOMAINS = {
    "Log": (0.1, 4.0),
    "Sqrt": (0.0, 4.0),
    "Rsqrt": (0.1, 4.0),
    "Asin": (-0.95, 0.95),
    "Acos": (-0.95, 0.95),
    "Atanh": (-0.95, 0.95),
    "Acosh": (1.05, 4.0),
}


def _gen_domain(ctx):
    lo, hi = _UNARY_DOMAINS[ctx.op]
    if ctx.is_input(0) and ctx.dtype(0) in FLOATS:
        ctx.set(0, ctx.rng.uniform(lo, hi, ctx.shape(0)))
        ctx.note(f"{ctx.op}: inputs uniform in [{lo}, {hi}] (the op's domain)")


def _gen_reciprocal(ctx):
    if ctx.is_input(0) and ctx.dtype(0) in FLOATS:
        shp = ctx.shape(0)
        ctx.set(0, np.where(ctx.rng.random(shp) < 0.5, -1, 1) * ctx.rng.uniform(0.5, 3.0, shp))
        ctx.note("Reciprocal: |x| in [0.5, 3]")


def _gen_pow(ctx):
    if ctx.is_input(0) and ctx.dtype(0) in FLOATS:
        ctx.set(0, ctx.rng.uniform(0.5, 2.0, ctx.shape(0)))
    if ctx.is_input(1):
        if ctx.dtype(1) in FLOATS:
            ctx.set(1, ctx.rng.uniform(-2.0, 2.0, ctx.shape(1)))
        else:
            ctx.set(1, ctx.rng.integers(0, 4, ctx.shape(1)))
    if ctx.is_input(0) and ctx.dtype(0) not in FLOATS:
        ctx.set(0, ctx.rng.integers(-4, 5, ctx.shape(0)))
    ctx.note("Pow: float bases in [0.5, 2], small exponents")


def _gen_nonzero(ctx):
    """About half the elements zero (random data of a float dtype has none)."""
    if ctx.is_input(0):
        x = _random(ctx.rng, ctx.dtype(0), ctx.shape(0))
        keep = ctx.rng.random(ctx.shape(0)) < 0.5
        ctx.set(0, np.where(keep, x, np.zeros_like(x)))
        ctx.note("NonZero: about half the input elements are zero")


def _gen_unique(ctx):
    """Repeated values (slices along an axis: 0/1 elements, so slices repeat too)."""
    if ctx.is_input(0):
        hi = 2 if ctx.attrs.get("axis") is not None else 6
        ctx.set(0, ctx.rng.integers(0 if hi == 2 else -5, hi, ctx.shape(0)))
        ctx.note("Unique: small integer values, so values (or slices) repeat")


def _gen_compress(ctx):
    if ctx.is_input(1):
        ctx.set(1, ctx.rng.random(ctx.shape(1)) < 0.5)


def _gen_nms(ctx):
    """Boxes that overlap (clustered corners, some flipped, some repeated), distinct scores in (0, 1),
    thresholds in their domains: suppression, ties and the score filter all take part."""
    center = int(ctx.attrs.get("center_point_box", 0) or 0)
    if ctx.is_input(0):
        b, n, _ = ctx.shape(0)
        xy = ctx.rng.uniform(0.0, 4.0, (b, n, 2))
        wh = ctx.rng.uniform(0.2, 1.5, (b, n, 2))
        if center == 1:
            arr = np.concatenate([xy, wh], axis=-1)
        else:
            arr = np.concatenate([xy, xy + wh], axis=-1)[..., [1, 0, 3, 2]]  # [y1, x1, y2, x2]
            flip = ctx.rng.random((b, n)) < 0.2
            arr[flip] = arr[flip][:, [2, 3, 0, 1]]
        if n > 1:
            arr[:, n // 2] = arr[:, 0]  # a repeated box
        ctx.set(0, arr)
    if ctx.is_input(1):  # distinct within a class (PyTorch baselines order ties differently)
        b, c, n = ctx.shape(1)
        ranks = np.argsort(ctx.rng.random((b, c, n)), axis=-1)
        ctx.set(1, (ranks + 0.5) / max(n, 1))
    if ctx.is_input(2):
        ctx.set(2, np.full(ctx.shape(2), 3))
    if ctx.is_input(3):
        ctx.set(3, np.full(ctx.shape(3), ctx.rng.uniform(0.2, 0.7)))
    if ctx.is_input(4):
        ctx.set(4, np.full(ctx.shape(4), ctx.rng.uniform(0.0, 0.5)))
    ctx.note("NonMaxSuppression: overlapping boxes, distinct scores, thresholds in their domains")


_GENERATORS = {
    "NonMaxSuppression": _gen_nms,
    "NonZero": _gen_nonzero,
    "Unique": _gen_unique,
    "Compress": _gen_compress,
    "Gather": _gen_gather,
    "GatherElements": _gen_gather,
    "GatherND": _gen_gather_nd,
    "ScatterND": _gen_scatter_nd,
    "ScatterElements": _gen_scatter_elements,
    "Scatter": _gen_scatter_elements,
    "OneHot": _gen_onehot,
    "TopK": _gen_topk,
    "BitShift": _gen_bitshift,
    "Mod": _gen_div_mod,
    "Div": _gen_div_mod,
    "MaxUnpool": _gen_maxunpool,
    "GridSample": _gen_grid_sample,
    "CumSum": _gen_cumsum,
    "RoiAlign": _gen_roialign,
    "Trilu": _gen_trilu,
    "NegativeLogLikelihoodLoss": _gen_loss,
    "SoftmaxCrossEntropyLoss": _gen_loss,
    "Reciprocal": _gen_reciprocal,
    "Pow": _gen_pow,
}
for _op in _UNARY_DOMAINS:
    _GENERATORS[_op] = _gen_domain

# ops whose inputs are plain random data by design (no note about a missing rule)
_PLAIN_RANDOM = {
    "Resize",
    "Upsample",
    "Col2Im",
    "DFT",
    "CumSum",
    "LayerNormalization",
    "Einsum",
    "Add",
    "Sub",
    "Mul",
    "Where",
    "Relu",
    "Sigmoid",
    "Tanh",
    "Exp",
    "Neg",
    "Abs",
    "Erf",
    "Gelu",
    "Softmax",
    "LogSoftmax",
    "MatMul",
    "Gemm",
    "Conv",
    "ConvTranspose",
    "ReduceSum",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "Transpose",
    "Concat",
    "Split",
    "Slice",
    "Reshape",
    "Expand",
    "Tile",
    "Pad",
    "InstanceNormalization",
    "GroupNormalization",
    "BatchNormalization",
    "Clip",
    "Max",
    "Min",
    "Sin",
    "Cos",
    "Tan",
    "Atan",
    "Sinh",
    "Cosh",
    "Asinh",
    "Sign",
    "Floor",
    "Ceil",
    "Round",
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "And",
    "Or",
    "Xor",
    "Not",
    "Cast",
    "CastLike",
    "Identity",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "DepthToSpace",
    "SpaceToDepth",
    "AveragePool",
    "MaxPool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "LpPool",
    "HardSigmoid",
    "HardSwish",
    "LeakyRelu",
    "Elu",
    "Selu",
    "Celu",
    "Softplus",
    "Softsign",
    "PRelu",
    "ThresholdedRelu",
    "Mish",
    "Shrink",
    "IsNaN",
    "IsInf",
    "ReverseSequence",
    "ArgMax",
    "ArgMin",
    "Hardmax",
    "LpNormalization",
    "MeanVarianceNormalization",
    "DFT",
    "STFT",
    "AffineGrid",
    "Sum",
    "Mean",
    "BitwiseAnd",
    "BitwiseOr",
    "BitwiseXor",
    "BitwiseNot",
}


# --------------------------------------------------------------------------------------------
# binding fixups (shape relations that a plain binding cannot know)
# --------------------------------------------------------------------------------------------


def _same_dim(b, x, y):
    """Two dims ONNX says are equal (each an int or a symbol bound in b): the symbol takes the
    other's value (the first's when both are symbols)."""
    if isinstance(x, str) and isinstance(y, str):
        b[y] = b[x]
    elif isinstance(x, str):
        b[x] = int(y)
    elif isinstance(y, str):
        b[y] = int(x)


def _fix_binding(op, attrs, slots, binding):
    b = dict(binding)
    if (
        op == "Col2Im"
        and len(slots) >= 3
        and slots[0].kind == "input"
        and slots[1].kind == "const"
        and slots[2].kind == "const"
    ):
        img = [int(v) for v in slots[1].value.reshape(-1)]
        blk = [int(v) for v in slots[2].value.reshape(-1)]
        n = len(img)
        dil = list(attrs.get("dilations", [1] * n))
        st = list(attrs.get("strides", [1] * n))
        pads = list(attrs.get("pads", [0] * (2 * n)))
        L = 1
        for i in range(n):
            L *= (img[i] + pads[i] + pads[i + n] - dil[i] * (blk[i] - 1) - 1) // st[i] + 1
        dims = slots[0].dims
        if len(dims) == 3:
            if isinstance(dims[2], str):
                b[dims[2]] = L
            if isinstance(dims[1], str):
                b[dims[1]] = max(1, int(b[dims[1]])) * int(np.prod(blk))  # C * prod(block_shape)
    if op in ("ScatterElements", "Scatter") and len(slots) >= 3 and "absent" not in (slots[1].kind, slots[2].kind):
        # indices and updates have one shape (ONNX): a symbol of one takes the other's dim, a
        # constant's when one is constant (GCN models scatter constant ones by runtime indices).
        a = slots[1].dims if slots[1].kind == "input" else list(slots[1].value.shape)
        u = slots[2].dims if slots[2].kind == "input" else list(slots[2].value.shape)
        if len(a) == len(u):
            for x, y in zip(a, u):
                _same_dim(b, x, y)
            d = slots[0].dims if slots[0].kind == "input" else list(slots[0].value.shape)
            if len(d) == len(a):  # every indices dim fits the data's (distinct indices on the axis)
                for x, y in zip(d, a):
                    n = int(b[y]) if isinstance(y, str) else int(y)
                    if isinstance(x, str) and int(b[x]) < n:
                        b[x] = n + int(b[x]) - 1
    if op == "NonMaxSuppression" and len(slots) >= 2 and slots[0].kind == slots[1].kind == "input":
        # boxes [B, N, 4] and scores [B, C, N]: a symbolic box width is 4, the two share B and N
        bd, sd = slots[0].dims, slots[1].dims
        if len(bd) == 3 and len(sd) == 3:
            if isinstance(bd[2], str):
                b[bd[2]] = 4
            for x, y in ((bd[0], sd[0]), (bd[1], sd[2])):
                _same_dim(b, x, y)
    if op == "TopK" and len(slots) >= 2 and slots[0].kind == "input" and slots[1].kind == "const":
        dims = slots[0].dims
        k = int(_scalar_of(slots[1].value))
        axis = int(attrs.get("axis", -1))
        axis = axis + len(dims) if axis < 0 else axis
        if 0 <= axis < len(dims) and isinstance(dims[axis], str) and int(b[dims[axis]]) < k:
            b[dims[axis]] = k + int(b[dims[axis]]) - 1  # K <= axis dim, still varying per case
    return b


# --------------------------------------------------------------------------------------------
# tolerances
# --------------------------------------------------------------------------------------------


def _einsum_contraction(eq, shapes):
    eq = eq.replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    sizes = {}
    for term, shp in zip(terms, shapes):
        if "..." in term:
            pre, post = term.split("...")
            for c, d in zip(pre, shp[: len(pre)]):
                sizes[c] = d
            for c, d in zip(post, shp[len(shp) - len(post) :] if post else []):
                sizes[c] = d
        else:
            for c, d in zip(term, shp):
                sizes[c] = d
    if not _:
        counts = {}
        for c in lhs.replace(",", "").replace(".", ""):
            counts[c] = counts.get(c, 0) + 1
        rhs = "".join(sorted(c for c, k in counts.items() if k == 1))
    return int(np.prod([sizes[c] for c in sizes if c not in rhs])) if sizes else 1


def _reduction_length(ctx, out_shapes):
    """Number of terms summed per output element for sum-like ops (None when not sum-like)."""
    op = ctx.op
    try:
        if op == "CumSum":
            axis = int(_scalar_of(ctx.value(1)))
            shp = ctx.shape(0)
            return shp[_norm_axis(axis, len(shp))]
        if op == "Einsum":
            return _einsum_contraction(ctx.attrs["equation"], [ctx.shape(i) for i in range(ctx.n()) if ctx.has(i)])
        if op == "MatMul":
            return ctx.shape(0)[-1] if ctx.shape(0) else 1
        if op == "Gemm":
            a = ctx.shape(0)
            return a[0] if ctx.attrs.get("transA", 0) else a[-1]
        if op in (
            "ReduceSum",
            "ReduceMean",
            "ReduceL1",
            "ReduceL2",
            "ReduceSumSquare",
            "ReduceLogSum",
            "ReduceLogSumExp",
        ):
            nin = int(np.prod(ctx.shape(0)))
            nout = max(1, int(np.prod(out_shapes[0])))
            return max(1, nin // nout)
        if op == "DFT":  # every output sums the signal's terms (an FFT's error differs from a direct sum's)
            shp = ctx.shape(0)
            if "axis" in ctx.attrs:
                return shp[_norm_axis(int(ctx.attrs["axis"]), len(shp))]
            if ctx.has(2):
                return shp[_norm_axis(int(_scalar_of(ctx.value(2))), len(shp))]
            return max(shp[1], shp[-2])  # default: 1 (opset 17) or -2 (opset 20)
        if op in ("Conv", "ConvTranspose"):
            w = ctx.shape(1)
            return int(np.prod(w[1:])) if op == "Conv" else int(w[0] * np.prod(w[2:]))
    except (KeyError, Infeasible, ValueError, IndexError):
        return None
    return None


def _tolerances(ctx, outputs):
    out_shapes = [o.shape for o in outputs]
    k = _reduction_length(ctx, out_shapes)
    scale = max(1.0, math.sqrt(k)) if k else 1.0
    tols = []
    for arr in outputs:
        name = _dtype_name(arr)
        if name not in TOLERANCES:
            tols.append((0.0, 0.0))
            continue
        atol, rtol = TOLERANCES[name]
        tols.append((atol * scale, rtol))
    if scale > 1.0:
        ctx.note(f"{ctx.op}: float atol scaled by sqrt(reduction length) (x{scale:.3g} in some case)")
    return tols


# --------------------------------------------------------------------------------------------
# onnxruntime
# --------------------------------------------------------------------------------------------

_LOW = {TP.FLOAT16, TP.BFLOAT16}


def _float_twin(model, low=None, to=TP.FLOAT):
    """The model with float16/bfloat16 tensors (or the types `low`) turned into `to` (float32: for
    ops ORT's CPU lacks; float64 for the spectral ops; the unsigned twins of BitShift and TopK)."""
    low = _LOW if low is None else low
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph

    def fix_vi(vi):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type in low:
            vi.type.tensor_type.elem_type = to

    for vi in itertools.chain(g.input, g.output, g.value_info):
        fix_vi(vi)
    for i, t in enumerate(g.initializer):
        if t.data_type in low:
            arr = numpy_helper.to_array(t).astype(helper.tensor_dtype_to_np_dtype(to))
            g.initializer[i].CopyFrom(numpy_helper.from_array(arr, t.name))
    for node in g.node:
        for a in node.attribute:
            if (
                a.name in ("to", "stash_type", "dtype", "output_dtype")
                and a.type == onnx.AttributeProto.INT
                and a.i in low
            ):
                a.i = to
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type in low:
                arr = numpy_helper.to_array(a.t).astype(helper.tensor_dtype_to_np_dtype(to))
                a.t.CopyFrom(numpy_helper.from_array(arr, a.t.name))
    return m


_UNSIGNED = {TP.UINT16: (TP.INT16, np.int16), TP.UINT32: (TP.INT32, np.int32), TP.UINT64: (TP.INT64, np.int64)}


def _older_opset_twin(model, error):
    """The model at the op's previous schema version, when ONNX Runtime has no kernel for this one
    (RoiAlign-22 adds only float16/bfloat16 types to RoiAlign-16) and the model still checks."""
    if "NOT_IMPLEMENTED" not in str(error):
        return None
    n = model.graph.node[0]
    if n.domain not in ("", "ai.onnx"):
        return None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    try:
        since = onnx.defs.get_schema(n.op_type, opset).since_version
        prev = onnx.defs.get_schema(n.op_type, since - 1)
    except Exception:  # noqa: BLE001 - no older version
        return None
    if set(prev.attributes) < {a.name for a in n.attribute}:
        return None
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = since - 1
    try:
        onnx.checker.check_model(m)
    except Exception:  # noqa: BLE001
        return None
    return m


def _uint16_bitshift(model):
    """BitShift on uint16: ONNX Runtime's CPU has uint8/32/64 kernels only."""
    return model.graph.node[0].op_type == "BitShift" and model.graph.output[0].type.tensor_type.elem_type == TP.UINT16


def _run_uint16_bitshift(runner, feeds):
    """uint16 BitShift through ORT's uint32 kernel; the result wraps back to 16 bits (a left shift
    modulo 2^16, as the uint16 op computes)."""
    if runner._twin is None:
        runner._twin = runner._session(_float_twin(runner.model, {TP.UINT16}, TP.UINT32))
    wide = {k: (v.astype(np.uint32) if v.dtype == np.uint16 else v) for k, v in feeds.items()}
    return [np.asarray(runner._twin.run(None, wide)[0]).astype(np.uint16)]


def _unsigned_topk(model):
    """TopK on uint16/32/64: ONNX Runtime's CPU has no kernel (NOT_IMPLEMENTED)."""
    n = model.graph.node[0]
    return n.op_type == "TopK" and model.graph.input and model.graph.input[0].type.tensor_type.elem_type in _UNSIGNED


def _run_unsigned_topk(runner, feeds):
    """TopK of unsigned values through ONNX Runtime's signed kernel: x XOR the sign bit maps the
    unsigned order onto the signed one exactly, so the indices are ORT's and the values map back."""
    if runner._twin is None:
        unsigned = runner.model.graph.input[0].type.tensor_type.elem_type
        runner._twin = runner._session(_float_twin(runner.model, {unsigned}, _UNSIGNED[unsigned][0]))
    name = runner.model.graph.input[0].name
    x = feeds[name]
    bits = x.dtype.itemsize * 8
    flip = np.array(1 << (bits - 1), dtype=x.dtype)
    sdt = _UNSIGNED[runner.model.graph.input[0].type.tensor_type.elem_type][1]
    f = dict(feeds)
    f[name] = (x ^ flip).view(sdt)
    vals, idx = runner._twin.run(None, f)
    return [np.asarray(vals).view(x.dtype) ^ flip, np.asarray(idx)]


def _col2im_ort_wrong(model):
    """Col2Im that ONNX Runtime (1.24) computes wrongly or not at all: a spatial rank other than 2
    with strides, pads or dilations (it returns uninitialized memory: 1e29, NaN), or an element type
    other than float32/float16 (no kernel). ONNX's reference implementation computes these
    (docs/lowerings.md: where the two disagree)."""
    n = model.graph.node[0]
    if n.op_type != "Col2Im" or len(n.input) < 3:
        return False
    if model.graph.input and model.graph.input[0].type.tensor_type.elem_type not in (TP.FLOAT, TP.FLOAT16):
        return True
    img = next((t for t in model.graph.initializer if t.name == n.input[1]), None)
    rank = int(numpy_helper.to_array(img).size) if img is not None else 2
    attrs = {a.name: list(a.ints) for a in n.attribute}
    plain = all(v == 1 for v in attrs.get("strides", [])) and all(v == 1 for v in attrs.get("dilations", []))
    return rank != 2 and not (plain and not any(attrs.get("pads", [])))


def _run_onnx_reference(runner, feeds):
    from onnx.reference import ReferenceEvaluator  # lazy: only for the Col2Im nodes ONNX Runtime gets wrong

    return [np.asarray(o) for o in ReferenceEvaluator(runner.model).run(None, feeds)]


def _spectral(model):
    """DFT and STFT on float32 inputs: ONNX Runtime's float32 kernels sum the
    definition directly for lengths that are not powers of two, with twiddle angles from float32
    products, and drift far from the transform (0.8 at a 4-kernel Bluestein length): their
    reference data come from a float64 twin of the model, rounded once to the output type."""
    n = model.graph.node[0]
    if n.op_type not in ("DFT", "STFT") or not model.graph.input:
        return False
    return model.graph.input[0].type.tensor_type.elem_type == TP.FLOAT


def _widened(feeds):
    """Float feeds (float32, float16, bfloat16) as float64, for a float64 twin."""
    return {k: (v.astype(np.float64) if v.dtype in (np.float32, np.float16, _BF16) else v) for k, v in feeds.items()}


def _run_spectral_f64(runner, feeds):
    if runner._twin is None:
        runner._twin = runner._session(_float_twin(runner.model, {TP.FLOAT}, TP.DOUBLE))
    return [np.asarray(o).astype(np.float32) for o in runner._twin.run(None, _widened(feeds))]


def _irfft(model):
    """DFT with inverse=1 and onesided=1 (IRFFT, defined by ONNX 1.21; ONNX Runtime 1.24 refuses it)."""
    n = model.graph.node[0]
    if n.op_type != "DFT" or not model.graph.input:
        return False
    attrs = {a.name: a.i for a in n.attribute}
    return bool(attrs.get("inverse", 0) and attrs.get("onesided", 0))


def _run_irfft(runner, feeds):
    """numpy.fft.irfft in float64 (ONNX 1.21's reference implementation does the same), rounded
    once to the output type: [..., L, ..., 2] -> [..., n, ..., 1], n = dft_length or 2 (L - 1)."""
    m, n = runner.model, runner.model.graph.node[0]
    consts = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}

    def operand(i):
        if i >= len(n.input) or not n.input[i]:
            return None
        return feeds[n.input[i]] if n.input[i] in feeds else consts[n.input[i]]

    x, length, axis_in = (operand(i) for i in range(3))
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), 17)
    attrs = {a.name: a.i for a in n.attribute}
    axis = int(np.asarray(axis_in).reshape(-1)[0]) if opset >= 20 and axis_in is not None else None
    if axis is None:
        axis = -2 if opset >= 20 else int(attrs.get("axis", 1))
    axis %= x.ndim
    size = int(np.asarray(length).reshape(-1)[0]) if length is not None else 2 * (x.shape[axis] - 1)
    xc = x[..., 0].astype(np.float64) + 1j * x[..., 1].astype(np.float64)
    y = np.fft.irfft(xc, n=size, axis=axis)[..., None]
    return [y.astype(x.dtype)]


def _complex_stft(model):
    """STFT of a complex signal (last dim 2, a graph input): ONNX Runtime 1.24.4 returns values near
    1e37 and NaN."""
    n = model.graph.node[0]
    if n.op_type != "STFT" or not model.graph.input or model.graph.input[0].name != n.input[0]:
        return False
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return bool(dims) and dims[-1].HasField("dim_value") and dims[-1].dim_value == 2


def _run_complex_stft(runner, feeds):
    """Complex STFT by linearity, STFT(re + i im) = STFT(re) + i STFT(im): two real-signal STFTs
    (which ONNX Runtime computes) of the model's float64 twin with a signal of last dim 1, two-sided,
    rounded once to the output type."""
    signal = runner.model.graph.input[0]
    if runner._twin is None:
        m = _float_twin(runner.model, _LOW | {TP.FLOAT}, TP.DOUBLE)
        m.graph.input[0].type.tensor_type.shape.dim[-1].dim_value = 1
        for a in m.graph.node[0].attribute:
            if a.name == "onesided":
                a.i = 0  # a complex signal's spectrum is two-sided
        runner._twin = runner._session(m)
    wide = _widened(feeds)
    x = wide[signal.name]
    re, im = (np.asarray(runner._twin.run(None, {**wide, signal.name: x[..., k : k + 1]})[0]) for k in (0, 1))
    y = np.stack([re[..., 0] - im[..., 1], re[..., 1] + im[..., 0]], -1)
    return [y.astype(feeds[signal.name].dtype)]


class _Runner:
    def __init__(self, model):
        import onnxruntime as ort  # lazy: ONNX Runtime loads only when reference data is computed

        self.ort = ort
        self.model = model
        self.input_names = [
            vi.name for vi in model.graph.input if vi.name not in {t.name for t in model.graph.initializer}
        ]
        self.out_types = [vi.type.tensor_type.elem_type for vi in model.graph.output]
        self.has_low = (
            any(t in _LOW for t in self.out_types)
            or any(vi.type.tensor_type.elem_type in _LOW for vi in model.graph.input)
            or any(t.data_type in _LOW for t in model.graph.initializer)
        )
        self.has_bf16 = (
            TP.BFLOAT16 in self.out_types
            or any(vi.type.tensor_type.elem_type == TP.BFLOAT16 for vi in model.graph.input)
            or any(t.data_type == TP.BFLOAT16 for t in model.graph.initializer)
        )
        self._native = None
        self._twin = None
        self.used_twin = False

    def _session(self, model):
        # TopK sorted=0 leaves the order unspecified; the plugin returns it sorted, which is a
        # valid answer, so the reference is computed sorted too.
        for n in model.graph.node:
            if n.op_type == "TopK":
                for a in n.attribute:
                    if a.name == "sorted" and a.i == 0:
                        model = onnx.ModelProto.FromString(model.SerializeToString())
                        for m in model.graph.node:
                            for b in m.attribute:
                                if m.op_type == "TopK" and b.name == "sorted":
                                    b.i = 1
                        break
        so = self.ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        return self.ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])

    def run(self, feeds):
        if _irfft(self.model):
            return _run_irfft(self, feeds), False
        if _complex_stft(self.model):
            return _run_complex_stft(self, feeds), False
        if _spectral(self.model):
            return _run_spectral_f64(self, feeds), False
        if _unsigned_topk(self.model):
            return _run_unsigned_topk(self, feeds), False
        if _uint16_bitshift(self.model):
            return _run_uint16_bitshift(self, feeds), False
        if _col2im_ort_wrong(self.model):
            return _run_onnx_reference(self, feeds), False
        native_error = None
        if not self.has_bf16:  # ORT's CPU has (almost) no bfloat16 kernels, and numpy feeds cannot carry it
            try:
                if self._native is None:
                    self._native = self._session(self.model)
                return [np.asarray(o) for o in self._native.run(None, feeds)], False
            except Exception as e:
                native_error = e
                if not self.has_low:
                    older = _older_opset_twin(self.model, e)
                    if older is None:
                        raise
                    self._native = self._session(older)  # the same op at its previous version
                    return [np.asarray(o) for o in self._native.run(None, feeds)], False
        if not self.has_low:
            raise native_error
        if self._twin is None:
            self._twin = self._session(_float_twin(self.model))
        tfeeds = {k: (v.astype(np.float32) if v.dtype in (np.float16, _BF16) else v) for k, v in feeds.items()}
        outs = self._twin.run(None, tfeeds)
        res = []
        for o, t in zip(outs, self.out_types):
            o = np.asarray(o)
            if t == TP.FLOAT16:
                o = o.astype(np.float16)
            elif t == TP.BFLOAT16:
                o = o.astype(_BF16)
            res.append(o)
        self.used_twin = True
        return res, True


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _raw(arr):
    name = _dtype_name(arr)
    a = np.ascontiguousarray(arr)
    if name == "bool":
        a = a.astype(np.uint8)
    elif name == "bfloat16":
        a = a.view(np.uint16)
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and not np.little_endian):
        a = a.byteswap().view(a.dtype.newbyteorder("<"))
    return a.tobytes()


def _case_bytes(arrays):
    return sum(int(a.size) * a.dtype.itemsize for a in arrays)


def _clear_out_dir(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for entry in os.listdir(out_dir):
        p = os.path.join(out_dir, entry)
        if re.fullmatch(r"case\d+", entry) and os.path.isdir(p):
            shutil.rmtree(p)
        elif entry in ("manifest.json", "manifest.txt"):
            os.remove(p)


def _fmt_float(x):
    return repr(float(x))


# --------------------------------------------------------------------------------------------
# entry
# --------------------------------------------------------------------------------------------

# What reading a hostile attribute or constant raises (int() of a list, nan or inf, an empty
# constant indexed, an axis out of range, a huge size): a case or model the rules cannot use.
_BAD_VALUE = (ValueError, TypeError, IndexError, OverflowError, KeyError, ZeroDivisionError)


def _build_case(node, attrs, slots, binding, rng, runner, notes, max_bytes):
    for s in slots:
        if s.kind == "input":
            for d in s.dims:
                if isinstance(d, str) and (d not in binding or int(binding[d]) < 0):
                    raise BridgeError("input", f"case binding misses symbol {d}")
    ctx = Ctx(node, attrs, slots, binding, rng, notes)
    est = 0
    for s in slots:
        if s.kind == "input":
            n = math.prod(ctx.shape(s.pos))  # exact: np.prod wraps in int64 on hostile dims
            if n > max(MAX_TENSOR_ELEMENTS, max_bytes):
                raise Infeasible(f"input {s.name} has {n} elements (> {max(MAX_TENSOR_ELEMENTS, max_bytes)})")
            est += n * _np_dtype(s.dtype).itemsize
    if est > max_bytes:
        raise Infeasible(f"inputs take {est} bytes (> {max_bytes})")
    gen = _GENERATORS.get(node.op_type)
    if gen is not None:
        try:
            gen(ctx)
        except _BAD_VALUE as e:  # an attribute or constant of the model the rule cannot use
            raise Infeasible(f"{node.op_type}: the input rule cannot use the model's values ({type(e).__name__}: {e})")
    elif node.op_type not in _PLAIN_RANDOM:
        ctx.note(f"{node.op_type}: no input rule for this op, inputs are generic random data of their dtype")
    for s in slots:
        if s.kind == "input" and s.pos not in ctx.values:
            ctx.values[s.pos] = _random(rng, s.dtype, ctx.shape(s.pos))
    inputs = [None] * len(runner.input_names)
    for s in slots:
        if s.kind == "input":
            inputs[s.graph_index] = ctx.values[s.pos]
    feeds = {name: arr for name, arr in zip(runner.input_names, inputs)}
    _check_output_sizes(runner.model, feeds, max_bytes)
    try:
        outputs, twin = runner.run(feeds)
    except Exception as e:
        msg = str(e).strip().splitlines()
        raise Infeasible(f"onnxruntime: {msg[0] if msg else type(e).__name__}")
    for o in outputs:
        if o.size > max(MAX_TENSOR_ELEMENTS, max_bytes):
            raise Infeasible(f"an output has {o.size} elements")
        _dtype_name(o)
    total = _case_bytes(inputs) + _case_bytes(outputs)
    if total > max_bytes:
        raise Infeasible(f"case takes {total} bytes (> {max_bytes})")
    if twin:
        notes.add(
            "float16/bfloat16: onnxruntime CPU lacks the kernel, outputs computed on a float32 copy of the model and rounded"
        )
    tols = _tolerances(ctx, outputs)
    return inputs, outputs, tols


# Ops whose output shape comes from input values: if shape inference cannot size their outputs for
# the case's input shapes, ONNX Runtime is not run (it might allocate anything, e.g. OneHot depth 2^28).
# (Ops whose outputs are bounded by their inputs' sizes, such as TopK, Slice or NonZero, are not here.)
_VALUE_SHAPED = {
    "OneHot",
    "Expand",
    "Tile",
    "ConstantOfShape",
    "Range",
    "Resize",
    "Upsample",
    "Pad",
    "CenterCropPad",
    "Col2Im",
    "DFT",
    "MaxUnpool",
    "Loop",
    "Scan",
    "If",
}


def _check_output_sizes(model, feeds, max_bytes):
    """Sizes every output from the feeds' shapes (ONNX shape inference with the constant inputs'
    values) before ONNX Runtime runs; raises Infeasible("too_large: ...") when an output or the
    case would exceed `max_bytes`, or when a value-shaped op's outputs cannot be sized."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {t.name for t in m.graph.initializer}
    for vi in m.graph.input:
        if vi.name in inits or vi.name not in feeds:
            continue
        shape = vi.type.tensor_type.shape
        del shape.dim[:]
        for d in feeds[vi.name].shape:
            shape.dim.add().dim_value = int(d)
    for vi in m.graph.output:
        vi.type.tensor_type.ClearField("shape")
    # lazy: ONNX's inference plus TPAT's rules (DFT's IRFFT), only for models ONNX leaves untyped
    from ..planning.shapes import infer_model

    try:
        inferred, notes = infer_model(m, data_prop=True)
        failed = [w for w in notes if w.startswith("shape inference failed")]
        if failed:
            inferred, why = None, failed[0]
    except Exception as e:  # noqa: BLE001 - an inference error is not a size; ORT decides
        inferred = None
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
    op = model.graph.node[0].op_type if model.graph.node else "?"
    total = sum(int(a.size) * a.dtype.itemsize for a in feeds.values())
    for k, vi in enumerate(model.graph.output):
        out = inferred.graph.output[k] if inferred is not None else None
        tt = out.type.tensor_type if out is not None else None
        dims = (
            [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            if tt is not None and tt.HasField("shape")
            else None
        )
        if dims is None or any(d is None for d in dims):
            if op in _VALUE_SHAPED:
                detail = f" ({why})" if inferred is None else ""
                raise Infeasible(
                    f"too_large: output {vi.name} of {op} cannot be sized before running ONNX Runtime{detail}"
                )
            continue
        n = math.prod(dims)
        et = tt.elem_type or vi.type.tensor_type.elem_type
        size = NAME_TO_NP[ONNX_TO_NAME[et]].itemsize if et in ONNX_TO_NAME else 8
        if n * size > max_bytes:
            raise Infeasible(f"too_large: output {vi.name} would take {n * size} bytes ({dims}) > {max_bytes}")
        total += n * size
    if total > max_bytes:
        raise Infeasible(f"too_large: the case would take {total} bytes > {max_bytes}")


def _candidates(symbols):
    seen = set()
    for vals in _CANDIDATE_VALUES:
        b = {s: vals[i % len(vals)] for i, s in enumerate(symbols)}
        key = tuple(b[s] for s in symbols)
        if key not in seen:
            seen.add(key)
            yield b


def make_reference(request: dict) -> dict:
    req = _parse_request(request)
    model = _load(req["model_path"])
    node, attrs, slots, _ = _read_model(model)
    symbols = _symbols(slots)
    runner = _Runner(model)
    notes = set()
    if req["cases"] is not None:
        results = _requested_cases(req, node, attrs, slots, symbols, runner, notes)
    else:
        results = _searched_cases(req, node, attrs, slots, symbols, runner, notes)
    return _write_reference(req, node, symbols, results, sorted(notes))


def _parse_request(request):
    """The checked request: model_path, out_dir, plugin, prefix, seed, max_bytes, cases."""
    out_dir = request.get("out_dir")
    plugin = request.get("plugin")
    prefix = request.get("prefix") or (f"tpat_{plugin}" if plugin else None)
    if not isinstance(out_dir, str) or not out_dir:
        raise BridgeError("input", "reference: 'out_dir' is required")
    if not isinstance(plugin, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", plugin or ""):
        raise BridgeError("input", "reference: 'plugin' must be a C identifier")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise BridgeError("input", "reference: 'prefix' must be a C identifier")
    seed = request.get("seed", 0)
    cases = request.get("cases")
    if cases is not None and (not isinstance(cases, list) or not all(isinstance(c, dict) for c in cases)):
        raise BridgeError("input", "reference: 'cases' must be null or a list of {symbol: size} objects")
    return {
        "model_path": request.get("model_path"),
        "out_dir": out_dir,
        "plugin": plugin,
        "prefix": prefix,
        "seed": 0 if seed is None else int(seed),
        "cases": cases,
        "max_bytes": int(request.get("max_case_bytes") or DEFAULT_MAX_CASE_BYTES),
    }


def _requested_cases(req, node, attrs, slots, symbols, runner, notes):
    """One case per requested binding; any infeasible one is an error. [(binding, ins, outs, tols)]"""
    if not req["cases"]:
        raise BridgeError("input", "reference: 'cases' is empty")
    results = []
    for k, c in enumerate(req["cases"]):
        unknown = set(c) - set(symbols)
        if unknown:
            raise BridgeError("input", f"case {k}: unknown symbols {sorted(unknown)} (model has {symbols})")
        try:
            b = {s: int(v) for s, v in c.items()}
        except (TypeError, ValueError):
            raise BridgeError("input", f"case {k}: sizes must be integers")
        rng = np.random.default_rng([req["seed"], k])
        try:
            results.append((b,) + _build_case(node, attrs, slots, b, rng, runner, notes, req["max_bytes"]))
        except Infeasible as e:
            raise BridgeError("reference", f"case {k} {b}: {e}")
    return results


def _searched_cases(req, node, attrs, slots, symbols, runner, notes):
    """Two cases at distinct shapes for a symbolic model (one for a static one), trying the
    candidate bindings in order. [(binding, ins, outs, tols)]"""
    want = 2 if symbols else 1
    last = None
    tried = 0
    shapes_seen = set()
    results = []
    for cand in _candidates(symbols) if symbols else [{}]:
        try:
            b = _fix_binding(node.op_type, attrs, slots, cand)
        except (Infeasible, *_BAD_VALUE) as e:
            raise BridgeError(
                "reference", f"{node.op_type}: the model's values do not fit its shapes ({type(e).__name__}: {e})"
            ) from None
        rng = np.random.default_rng([req["seed"], tried])
        tried += 1
        shape_key = tuple(
            tuple(int(b[d]) if isinstance(d, str) else d for d in s.dims) for s in slots if s.kind == "input"
        )
        if shape_key in shapes_seen:
            continue
        try:
            limit = min(req["max_bytes"], TARGET_CASE_BYTES) if symbols else req["max_bytes"]
            case_notes = set()
            r = _build_case(node, attrs, slots, b, rng, runner, case_notes, limit)
        except Infeasible as e:
            last = f"{b}: {e}" if symbols else str(e)
            continue
        notes |= case_notes
        shapes_seen.add(shape_key)
        results.append((b,) + r)
        if len(results) == want:
            break
    if not results:
        code = "too_large" if last and ("too_large" in last or ("bytes" in last and not symbols)) else "reference"
        raise BridgeError(code, f"no valid reference case for {node.op_type}: {last}")
    if len(results) < want:
        notes.add(f"only one valid binding found for the symbolic dims ({last})")
    return results


def _write_tensor(out_dir, rel, arr):
    data = _raw(arr)
    with open(os.path.join(out_dir, rel), "wb") as f:
        f.write(data)
    return len(data)


def _write_case(out_dir, k, b, inputs, outputs, tols, lines):
    """case<k>/in<i>.bin, out<j>.bin; appends the manifest.txt lines; returns (json entry, bytes)."""
    os.makedirs(os.path.join(out_dir, f"case{k}"), exist_ok=True)
    lines.append(f"case {k}")
    if b:
        lines.append("# bindings " + " ".join(f"{s}={v}" for s, v in b.items()))
    total, jin, jout = 0, [], []
    for i, arr in enumerate(inputs):
        rel = f"case{k}/in{i}.bin"
        n = _write_tensor(out_dir, rel, arr)
        total += n
        dt = _dtype_name(arr)
        lines.append(f"input {i} {dt} {arr.ndim}{''.join(' ' + str(d) for d in arr.shape)} {rel}")
        jin.append({"index": i, "name": f"in{i}", "dtype": dt, "shape": list(arr.shape), "file": rel, "bytes": n})
    for j, (arr, (atol, rtol)) in enumerate(zip(outputs, tols)):
        rel = f"case{k}/out{j}.bin"
        n = _write_tensor(out_dir, rel, arr)
        total += n
        dt = _dtype_name(arr)
        lines.append(
            f"output {j} {dt} {arr.ndim}{''.join(' ' + str(d) for d in arr.shape)} {rel} {_fmt_float(atol)} {_fmt_float(rtol)}"
        )
        jout.append(
            {
                "index": j,
                "name": f"out{j}",
                "dtype": dt,
                "shape": list(arr.shape),
                "file": rel,
                "bytes": n,
                "atol": float(atol),
                "rtol": float(rtol),
            }
        )
    lines.append("end")
    return {"index": k, "bindings": b, "inputs": jin, "outputs": jout}, total


def _write_reference(req, node, symbols, results, note_list):
    """Replaces the case folders and writes manifest.json + manifest.txt."""
    out_dir = req["out_dir"]
    _clear_out_dir(out_dir)
    total = 0
    jcases = []
    lines = [
        "# TPAT reference data (docs/reference-data.md); paths are relative to this file",
        f"format {FORMAT_VERSION}",
        f"plugin {req['plugin']}",
        f"prefix {req['prefix']}",
        f"op {node.op_type}",
        f"seed {req['seed']}",
    ]
    for k, (b, inputs, outputs, tols) in enumerate(results):
        entry, n = _write_case(out_dir, k, b, inputs, outputs, tols, lines)
        jcases.append(entry)
        total += n
    manifest = {
        "format": FORMAT_VERSION,
        "plugin": req["plugin"],
        "prefix": req["prefix"],
        "op": node.op_type,
        "domain": node.domain or "",
        "seed": req["seed"],
        "symbols": symbols,
        "cases": jcases,
        "notes": note_list,
    }
    jtext = json.dumps(manifest, indent=2) + "\n"
    ttext = "\n".join(lines) + "\n"
    tpath = os.path.join(out_dir, "manifest.txt")
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        f.write(jtext)
    with open(tpath, "w") as f:
        f.write(ttext)
    total += len(jtext.encode()) + len(ttext.encode())
    return {"cases": len(results), "manifest": os.path.abspath(tpath), "notes": note_list, "bytes": total}


def read_case_arrays(manifest_json_path):
    """Reads back every case of a manifest.json: [(bindings, [inputs], [(output, atol, rtol)])]."""
    base = os.path.dirname(os.path.abspath(manifest_json_path))
    with open(manifest_json_path) as f:
        m = json.load(f)
    res = []
    for c in m["cases"]:

        def load(e):
            dt = _np_dtype(e["dtype"])
            raw = np.fromfile(os.path.join(base, e["file"]), dtype=np.uint8)
            if e["dtype"] == "bool":
                return raw.astype(np.bool_).reshape(e["shape"])
            return (
                raw.view(dt.newbyteorder("<") if dt.itemsize > 1 and dt != _BF16 else dt).astype(dt).reshape(e["shape"])
            )

        res.append(
            (c["bindings"], [load(e) for e in c["inputs"]], [(load(e), e["atol"], e["rtol"]) for e in c["outputs"]])
        )
    return res

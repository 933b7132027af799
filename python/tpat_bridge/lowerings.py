"""TPAT's own TVM lowerings, used by the planner instead of the ONNX frontend's legalization.

This module holds the scatter lowerings (below) and the dispatch to the others (`TE_LOWERINGS`:
TopK, Resize, CumSum, LayerNormalization, RMSNormalization, DFT, GatherND, Gather,
GatherElements, OneHot, Gelu in lowering_*.py; docs/lowerings.md).

TVM 0.27 legalizes ScatterND and ScatterElements to `te.extern` IR that loops over the indices
serially (one thread walks all updates), which is 10-25x slower than PyTorch on the H100.
This module defines fully parallel replacements as TIR (TVMScript generated for the node's ranks,
shapes and dtypes); they still go through TVM's pipeline (Relax `call_tir`, lowering, CUDA codegen),
nothing here is hand-written CUDA except the small atomic helpers of the prelude.

Each lowering is one PrimFunc with two kernels:
  1. copy:    out[i] = data[i] for every element (vectorized by 16 bytes when the element count
              is statically divisible);
  2. scatter: one thread per (update index, element within the slice) pair. Reduction "none" is a
              plain store (ONNX leaves duplicate indices undefined); add/mul/max/min call device
              helpers `tpat_atomic_<op>_<dtype>(T* addr, T v)` through `call_extern` with
              `address_of(out[...])`: add is CUDA atomicAdd, max/min/mul are compare-and-swap loops
              (16-bit types CAS on unsigned short, sm_70+).
The helpers are defined in PRELUDE, prepended to TVM's CUDA source (`with_prelude`): the plan's
`cuda_source` is then `TPAT prelude + TVM's source`. A `tvm_callback_cuda_postproc` hook does the
same inside TVM's own CUDA build, so TVM's NVRTC/nvcc compile on a GPU machine sees the helpers too.

Negative indices are wrapped (index + dim size); indices still out of range after that are skipped
(ONNX calls them an error; skipping keeps the plugin from writing out of bounds).

Symbolic dims stay symbolic: every buffer gets its own int64 shape variables, bound by Relax's
call_tir from the node's input shapes, and the kernels take the ones they use as int64 scalars.

`mode="cpu"` builds the same index arithmetic for LLVM with serial loops and plain
read-modify-write instead of atomics (used by the tests to compare with ONNX Runtime).

Entry point for the planner: `tpat_module(info)` -> (IRModule, lowering name) or None.
"""
from __future__ import annotations

import re

import numpy as np

REDUCTIONS = ("none", "add", "mul", "max", "min")


def _resize():
    from . import lowering_resize

    return lowering_resize


def _topk():
    from . import lowering_topk

    return lowering_topk


# op -> module with select(node, ops, info, attr) and emit(bb, params, det), emitting into Relax:
# Resize is a TE compute left unscheduled (dlight / MetaSchedule schedule it); TopK is TIR written
# with TVM's IR builder in te.extern stages (like topi.gpu.sort), CumSum and LayerNormalization likewise.
def _cumsum():
    from . import lowering_cumsum

    return lowering_cumsum


def _layernorm():
    from . import lowering_layernorm

    return lowering_layernorm


def _rmsnorm():
    from . import lowering_rmsnorm

    return lowering_rmsnorm


def _dft():
    from . import lowering_dft

    return lowering_dft


def _gathernd():
    from . import lowering_indexing

    return lowering_indexing.GATHER_ND


def _gather():
    from . import lowering_indexing

    return lowering_indexing.GATHER


def _gather_elements():
    from . import lowering_indexing

    return lowering_indexing.GATHER_ELEMENTS


def _onehot():
    from . import lowering_indexing

    return lowering_indexing.ONE_HOT


def _gelu():
    from . import lowering_elementwise

    return lowering_elementwise


def _nonzero():
    from . import lowering_nonzero

    return lowering_nonzero


def _compress():
    from . import lowering_compress

    return lowering_compress


def _unique():
    from . import lowering_unique

    return lowering_unique


TE_LOWERINGS = {"NonZero": _nonzero, "Compress": _compress, "Unique": _unique, "Resize": _resize, "TopK": _topk, "CumSum": _cumsum,
                "LayerNormalization": _layernorm, "GatherND": _gathernd, "OneHot": _onehot,
                "Gelu": _gelu, "Gather": _gather, "GatherElements": _gather_elements,
                "RMSNormalization": _rmsnorm, "DFT": _dft}
TPAT_OPS = ("ScatterND", "ScatterElements") + tuple(TE_LOWERINGS)

# dtype -> helper suffix, for the reductions (atomics).
ATOMIC_DTYPES = {
    "float32": "f32", "float16": "f16", "bfloat16": "bf16", "float64": "f64",
    "int32": "i32", "int64": "i64",
}
# reduction "none" is a plain store: any of these element types.
PLAIN_DTYPES = set(ATOMIC_DTYPES) | {"int8", "uint8", "int16", "uint16", "uint32", "uint64"}

THREADS = 256
PRELUDE_MARK = "// ---- TPAT prelude"

# --------------------------------------------------------------------------------------------
# CUDA prelude: atomic read-modify-write helpers (sm_70+; TPAT targets sm_80..sm_90).

_HELPERS = {}


def _helper(name, code, needs=()):
    _HELPERS[name] = (code.strip("\n"), tuple(needs))


def _cas32_float(op, name, expr, early):
    body = f"""
__device__ __forceinline__ float {name}(float* addr, float v) {{
  unsigned int* a = reinterpret_cast<unsigned int*>(addr);
  unsigned int old = *a, assumed;
  do {{
    assumed = old;
    const float cur = __uint_as_float(assumed);
    {early}
    old = atomicCAS(a, assumed, __float_as_uint({expr}));
  }} while (old != assumed);
  return __uint_as_float(old);
}}"""
    _helper(name, body)


def _cas64_double(name, expr, early):
    body = f"""
__device__ __forceinline__ double {name}(double* addr, double v) {{
  unsigned long long* a = reinterpret_cast<unsigned long long*>(addr);
  unsigned long long old = *a, assumed;
  do {{
    assumed = old;
    const double cur = __longlong_as_double((long long)assumed);
    {early}
    old = atomicCAS(a, assumed, (unsigned long long)__double_as_longlong({expr}));
  }} while (old != assumed);
  return __longlong_as_double((long long)old);
}}"""
    _helper(name, body)


def _cas16(name, ctype, to_f, from_f, as_us, from_us, expr, early, inc):
    body = f"""
__device__ __forceinline__ {ctype} {name}({ctype}* addr, {ctype} v) {{
  unsigned short* a = reinterpret_cast<unsigned short*>(addr);
  const float fv = {to_f}(v);
  unsigned short old = *a, assumed;
  do {{
    assumed = old;
    const float cur = {to_f}({from_us}(assumed));
    {early}
    old = atomicCAS(a, assumed, {as_us}({expr}));
  }} while (old != assumed);
  return {from_us}(old);
}}"""
    _helper(name, body, (inc,))


def _build_helpers():
    # ---- float32
    _helper("tpat_atomic_add_f32",
            "__device__ __forceinline__ float tpat_atomic_add_f32(float* a, float v) "
            "{ return atomicAdd(a, v); }")
    # max/min: a NaN update never replaces, a NaN already there stays (std::max(cur, v) order).
    _cas32_float("max", "tpat_atomic_max_f32", "v", "if (!(v > cur)) break;")
    _cas32_float("min", "tpat_atomic_min_f32", "v", "if (!(v < cur)) break;")
    _cas32_float("mul", "tpat_atomic_mul_f32", "cur * v", "")
    # ---- float64
    _helper("tpat_atomic_add_f64",
            "__device__ __forceinline__ double tpat_atomic_add_f64(double* a, double v) "
            "{ return atomicAdd(a, v); }")
    _cas64_double("tpat_atomic_max_f64", "v", "if (!(v > cur)) break;")
    _cas64_double("tpat_atomic_min_f64", "v", "if (!(v < cur)) break;")
    _cas64_double("tpat_atomic_mul_f64", "cur * v", "")
    # ---- float16 / bfloat16 (16-bit CAS, sm_70+); arithmetic in float, rounded to nearest
    h = ("__half", "__half2float", "__float2half_rn", "__half_as_ushort", "__ushort_as_half",
         "#include <cuda_fp16.h>")
    b = ("__nv_bfloat16", "__bfloat162float", "__float2bfloat16_rn", "__bfloat16_as_ushort",
         "__ushort_as_bfloat16", "#include <cuda_bf16.h>")
    for suf, (ct, to_f, from_f, as_us, from_us, inc) in (("f16", h), ("bf16", b)):
        _helper(f"tpat_atomic_add_{suf}",
                f"__device__ __forceinline__ {ct} tpat_atomic_add_{suf}({ct}* a, {ct} v) "
                "{ return atomicAdd(a, v); }", (inc,))
        _cas16(f"tpat_atomic_max_{suf}", ct, to_f, from_f, as_us, from_us, "v",
               "if (!(fv > cur)) break;", inc)
        _cas16(f"tpat_atomic_min_{suf}", ct, to_f, from_f, as_us, from_us, "v",
               "if (!(fv < cur)) break;", inc)
        _cas16(f"tpat_atomic_mul_{suf}", ct, to_f, from_f, as_us, from_us, f"{from_f}(cur * fv)",
               "", inc)
    # ---- int32 (TVM's int32_t is int)
    _helper("tpat_atomic_add_i32",
            "__device__ __forceinline__ int tpat_atomic_add_i32(int* a, int v) { return atomicAdd(a, v); }")
    _helper("tpat_atomic_max_i32",
            "__device__ __forceinline__ int tpat_atomic_max_i32(int* a, int v) { return atomicMax(a, v); }")
    _helper("tpat_atomic_min_i32",
            "__device__ __forceinline__ int tpat_atomic_min_i32(int* a, int v) { return atomicMin(a, v); }")
    _helper("tpat_atomic_mul_i32", """
__device__ __forceinline__ int tpat_atomic_mul_i32(int* a, int v) {
  int old = *a, assumed;
  do {
    assumed = old;
    old = atomicCAS(a, assumed, (int)((unsigned int)assumed * (unsigned int)v));
  } while (old != assumed);
  return old;
}""")
    # ---- int64: TVM spells it int64_t (long or long long by toolchain): templates over the
    # pointer type, reinterpreted as (unsigned) long long.
    _helper("tpat_atomic_add_i64", """
template <typename T>
__device__ __forceinline__ T tpat_atomic_add_i64(T* a, T v) {
  static_assert(sizeof(T) == 8, "int64 helper");
  return (T)atomicAdd(reinterpret_cast<unsigned long long*>(a), (unsigned long long)v);
}""")
    _helper("tpat_atomic_max_i64", """
template <typename T>
__device__ __forceinline__ T tpat_atomic_max_i64(T* a, T v) {
  static_assert(sizeof(T) == 8, "int64 helper");
  return (T)atomicMax(reinterpret_cast<long long*>(a), (long long)v);
}""")
    _helper("tpat_atomic_min_i64", """
template <typename T>
__device__ __forceinline__ T tpat_atomic_min_i64(T* a, T v) {
  static_assert(sizeof(T) == 8, "int64 helper");
  return (T)atomicMin(reinterpret_cast<long long*>(a), (long long)v);
}""")
    _helper("tpat_atomic_mul_i64", """
template <typename T>
__device__ __forceinline__ T tpat_atomic_mul_i64(T* a, T v) {
  static_assert(sizeof(T) == 8, "int64 helper");
  unsigned long long* p = reinterpret_cast<unsigned long long*>(a);
  unsigned long long old = *p, assumed;
  do {
    assumed = old;
    old = atomicCAS(p, assumed, assumed * (unsigned long long)v);
  } while (old != assumed);
  return (T)old;
}""")


_build_helpers()

_HELPER_RE = re.compile(r"\btpat_atomic_[a-z]+_[a-z0-9]+\b")


def prelude_for(source: str) -> str:
    """The prelude defining exactly the helpers `source` calls ('' when it calls none)."""
    names = sorted(set(_HELPER_RE.findall(source)) & set(_HELPERS))
    if not names:
        return ""
    incs = []
    for n in names:
        for inc in _HELPERS[n][1]:
            if inc not in incs:
                incs.append(inc)
    parts = [f"{PRELUDE_MARK}: atomic helpers called by TPAT's scatter lowerings "
             "(python/tpat_bridge/lowerings.py) ----"]
    parts += incs
    parts += [_HELPERS[n][0] for n in names]
    parts.append("// ---- end of TPAT prelude; TVM's generated source follows ----\n")
    return "\n".join(parts) + "\n"


def with_prelude(source: str) -> str:
    """TPAT prelude + TVM's source (idempotent; unchanged when no helper is called)."""
    if PRELUDE_MARK in source:
        return source
    return prelude_for(source) + source


_POSTPROC_INSTALLED = False


def install_cuda_postproc():
    """Let TVM's own CUDA build (NVRTC/nvcc on a GPU machine) see the helpers too."""
    global _POSTPROC_INSTALLED
    if _POSTPROC_INSTALLED:
        return
    import tvm_ffi

    prev = tvm_ffi.get_global_func("tvm_callback_cuda_postproc", allow_missing=True)

    def postproc(code, target=None):
        if prev is not None:
            code = prev(code, target)
        return with_prelude(str(code))

    tvm_ffi.register_global_func("tvm_callback_cuda_postproc", postproc, override=True)
    _POSTPROC_INSTALLED = True


# --------------------------------------------------------------------------------------------
# TVMScript generation


def _i64(x):
    return f"T.int64({x})" if isinstance(x, int) else x


def _prod(items):
    items = list(items)
    if not items:
        return "T.int64(1)"
    const = 1
    syms = []
    for x in items:
        if isinstance(x, int):
            const *= x
        else:
            syms.append(x)
    terms = syms + ([f"T.int64({const})"] if const != 1 or not syms else [])
    return "(" + " * ".join(terms) + ")" if len(terms) > 1 else terms[0]


def _static_factor(items):
    c = 1
    for x in items:
        if isinstance(x, int):
            c *= x
    return c


def _dims(shape, prefix):
    """shape items (int or symbol) -> TVMScript dim exprs; symbols get per-buffer vars."""
    out, decls = [], []
    for d, x in enumerate(shape):
        if isinstance(x, int):
            out.append(x)
        else:
            v = f"{prefix}{d}"
            decls.append(f"    {v} = T.int64()")
            out.append(v)
    return out, decls


_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1, "uint8": 1,
                "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "int64": 8, "uint64": 8}


def _header(name, dtype, idx_dtype, ddims, qdims, udims, decls, mode):
    lines = [
        "@T.prim_func(private=True)",
        f"def {name}(var_data: T.handle, var_indices: T.handle, var_updates: T.handle, var_out: T.handle):",
    ]
    attrs = '"tirx.noalias": True'
    if mode == "gpu":
        attrs = '"tirx.is_scheduled": True, ' + attrs
    lines.append(f"    T.func_attr({{{attrs}}})")
    lines += decls

    def shp(ds):
        return "(" + ", ".join(_i64(x) for x in ds) + ("," if len(ds) == 1 else "") + ")"

    lines += [
        f'    data = T.match_buffer(var_data, {shp(ddims)}, "{dtype}")',
        f'    indices = T.match_buffer(var_indices, {shp(qdims)}, "{idx_dtype}")',
        f'    updates = T.match_buffer(var_updates, {shp(udims)}, "{dtype}")',
        f'    out = T.match_buffer(var_out, {shp(ddims)}, "{dtype}")',
        f'    data_f = T.decl_buffer(({_prod(ddims)},), "{dtype}", data=data.data)',
        f'    out_f = T.decl_buffer(({_prod(ddims)},), "{dtype}", data=out.data)',
        f'    idx_f = T.decl_buffer(({_prod(qdims)},), "{idx_dtype}", data=indices.data)',
        f'    upd_f = T.decl_buffer(({_prod(udims)},), "{dtype}", data=updates.data)',
    ]
    return lines


def _copy_nest(ddims, dtype, mode):
    total = _prod(ddims)
    if mode == "cpu":
        return [f"    for i in T.serial({total}):", "        out_f[i] = data_f[i]"]
    vec = max(1, 16 // _DTYPE_BYTES.get(dtype, 4))
    if _static_factor(ddims) % vec != 0:
        vec = 1
    if vec == 1:
        groups = total
        return [
            f"    for bx in T.thread_binding(({groups} + T.int64({THREADS - 1})) // T.int64({THREADS}), thread=\"blockIdx.x\"):",
            f"        for tx in T.thread_binding(T.int64({THREADS}), thread=\"threadIdx.x\"):",
            f"            if bx * T.int64({THREADS}) + tx < {groups}:",
            f"                out_f[bx * T.int64({THREADS}) + tx] = data_f[bx * T.int64({THREADS}) + tx]",
        ]
    groups = f"({total} // T.int64({vec}))"
    return [
        f"    for bx in T.thread_binding(({groups} + T.int64({THREADS - 1})) // T.int64({THREADS}), thread=\"blockIdx.x\"):",
        f"        for tx in T.thread_binding(T.int64({THREADS}), thread=\"threadIdx.x\"):",
        f"            if bx * T.int64({THREADS}) + tx < {groups}:",
        f"                for v in T.vectorized(T.int64({vec})):",
        f"                    out_f[(bx * T.int64({THREADS}) + tx) * T.int64({vec}) + v] = "
        f"data_f[(bx * T.int64({THREADS}) + tx) * T.int64({vec}) + v]",
    ]


def _update_stmt(reduction, dtype, off, val, mode, ind):
    """The read-modify-write of out_f[off] with value expression `val`."""
    if reduction == "none":
        return [f"{ind}out_f[{off}] = {val}"]
    if mode == "gpu":
        h = f"tpat_atomic_{reduction}_{ATOMIC_DTYPES[dtype]}"
        return [f'{ind}T.evaluate(T.call_extern("{dtype}", "{h}", T.address_of(out_f[{off}]), {val}))']
    cur = f"out_f[{off}]"
    if reduction == "add":
        e = f"{cur} + {val}"
    elif reduction == "mul":
        e = f"{cur} * {val}"
    elif reduction == "max":
        e = f"T.if_then_else({val} > {cur}, {val}, {cur})"
    else:
        e = f"T.if_then_else({val} < {cur}, {val}, {cur})"
    return [f"{ind}out_f[{off}] = {e}"]


def _scatter_loop_open(total, mode):
    """Opens the per-update-element loop; returns (lines, index var, indent)."""
    if mode == "cpu":
        return [f"    for i in T.serial({total}):"], "i", " " * 8
    return [
        f"    for bx in T.thread_binding(({total} + T.int64({THREADS - 1})) // T.int64({THREADS}), thread=\"blockIdx.x\"):",
        f"        for tx in T.thread_binding(T.int64({THREADS}), thread=\"threadIdx.x\"):",
        f"            i = bx * T.int64({THREADS}) + tx",
        f"            if i < {total}:",
    ], "i", " " * 16


def _wrap_index(raw_expr, dim, var, ind):
    d = _i64(dim)
    return [
        f"{ind}{var}_r = T.Cast(\"int64\", {raw_expr})",
        f"{ind}{var} = T.if_then_else({var}_r < T.int64(0), {var}_r + {d}, {var}_r)",
    ]


def scatter_nd_source(data_shape, idx_shape, upd_shape, dtype, idx_dtype, reduction, mode="gpu",
                      name="tpat_scatter_nd"):
    """TVMScript of ScatterND: out = data; out[idx[u, :]] (op)= updates[u, ...]."""
    k = idx_shape[-1]
    assert isinstance(k, int)
    ddims, dd = _dims(data_shape, "d")
    qdims, qd = _dims(idx_shape, "q")
    udims, ud = _dims(upd_shape, "u")
    lines = _header(name, dtype, idx_dtype, ddims, qdims, udims, dd + qd + ud, mode)
    lines += _copy_nest(ddims, dtype, mode)
    slice_ = _prod(ddims[k:])
    n_upd = _prod(qdims[:-1])
    total = f"({n_upd} * {slice_})"
    open_, i, ind = _scatter_loop_open(total, mode)
    lines += open_
    lines.append(f"{ind}s = {i} // {slice_}")
    lines.append(f"{ind}e = {i} % {slice_}")
    conds = []
    off_terms = []
    for j in range(k):
        lines += _wrap_index(f"idx_f[s * T.int64({k}) + T.int64({j})]", ddims[j], f"x{j}", ind)
        conds.append(f"x{j} >= T.int64(0) and x{j} < {_i64(ddims[j])}")
        off_terms.append(f"x{j} * {_prod(ddims[j + 1:])}")
    off = " + ".join(off_terms + ["e"])
    if conds:
        lines.append(f"{ind}if {' and '.join(conds)}:")
        ind2 = ind + "    "
    else:
        ind2 = ind
    lines += _update_stmt(reduction, dtype, f"{off}", f"upd_f[{i}]", mode, ind2)
    return "\n".join(lines) + "\n"


def scatter_elements_source(data_shape, idx_shape, upd_shape, axis, dtype, idx_dtype, reduction,
                            mode="gpu", name="tpat_scatter_elements"):
    """TVMScript of ScatterElements: out[.., idx[p], ..] (op)= updates[p] for every position p."""
    r = len(data_shape)
    ddims, dd = _dims(data_shape, "d")
    qdims, qd = _dims(idx_shape, "q")
    udims, ud = _dims(upd_shape, "u")
    lines = _header(name, dtype, idx_dtype, ddims, qdims, udims, dd + qd + ud, mode)
    lines += _copy_nest(ddims, dtype, mode)
    total = _prod(qdims)
    open_, i, ind = _scatter_loop_open(total, mode)
    lines += open_
    # unravel i over the indices' shape (last dim fastest)
    rem = i
    for j in range(r - 1, -1, -1):
        if j == 0:
            lines.append(f"{ind}c0 = {rem}")
        else:
            lines.append(f"{ind}c{j} = {rem} % {_i64(qdims[j])}")
            lines.append(f"{ind}t{j} = {rem} // {_i64(qdims[j])}")
            rem = f"t{j}"
    lines += _wrap_index(f"idx_f[{i}]", ddims[axis], "x", ind)
    terms = []
    for j in range(r):
        c = "x" if j == axis else f"c{j}"
        terms.append(f"{c} * {_prod(ddims[j + 1:])}")
    off = " + ".join(terms)
    lines.append(f"{ind}if x >= T.int64(0) and x < {_i64(ddims[axis])}:")
    lines += _update_stmt(reduction, dtype, off, f"upd_f[{i}]", mode, ind + "    ")
    return "\n".join(lines) + "\n"


def parse_primfunc(source: str):
    import tvm.script
    from tvm.script import tirx as T  # noqa: F401

    return tvm.script.from_source("# from tvm.script import tirx as T\n" + source)


# --------------------------------------------------------------------------------------------
# Selection and the Relax module


def _attr(node, name, default):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def _node_operands(info):
    """node inputs -> [("param", k, shape, dtype) | ("const", ndarray, shape, dtype)]."""
    from onnx import numpy_helper

    g = info.model.graph
    node = g.node[0]
    inits = {t.name: t for t in g.initializer}
    by_name = {x["name"]: (k, x) for k, x in enumerate(info.inputs)}
    ops = []
    for nm in node.input:
        if nm == "":
            ops.append(("absent", None, None, None))  # an omitted optional input
        elif nm in by_name:
            k, x = by_name[nm]
            ops.append(("param", k, list(x["shape"]), x["dtype"]))
        elif nm in inits:
            arr = numpy_helper.to_array(inits[nm])
            from .planner import _onnx_dtype

            ops.append(("const", arr, [int(s) for s in arr.shape], _onnx_dtype(inits[nm].data_type)))
        else:
            return None
    return ops


def select(info):
    """(lowering name, details) when a TPAT lowering applies to the node, else (None, reason)."""
    g = info.model.graph
    node = g.node[0]
    op = node.op_type
    if node.domain not in ("", "ai.onnx") or op not in TPAT_OPS:
        return None, "no TPAT lowering for this op"
    if op in TE_LOWERINGS:
        if len([o for o in node.output if o]) != len(info.outputs):  # "" = an omitted optional output
            return None, "unexpected arity"
        ops = _node_operands(info)
        if ops is None:
            return None, "an input is neither a graph input nor an initializer"
        return TE_LOWERINGS[op]().select(node, ops, info, _attr)
    if len(node.input) != 3 or len(node.output) != 1:
        return None, "unexpected arity"
    ops = _node_operands(info)
    if ops is None:
        return None, "an input is neither a graph input nor an initializer"
    (_, _, dshape, dtype), (_, _, qshape, qdtype), (_, _, ushape, udtype) = ops
    red = _attr(node, "reduction", "none")
    if red not in REDUCTIONS:
        return None, f"reduction {red}"
    if udtype != dtype or info.outputs[0]["dtype"] != dtype:
        return None, "dtype mismatch"
    if qdtype not in ("int32", "int64"):
        return None, f"index dtype {qdtype}"
    allowed = PLAIN_DTYPES if red == "none" else set(ATOMIC_DTYPES)
    if dtype not in allowed:
        return None, f"dtype {dtype} with reduction {red}"
    if op == "ScatterND":
        if not qshape or not isinstance(qshape[-1], int):
            return None, "ScatterND needs a static last index dim"
        k = qshape[-1]
        if k < 1 or k > len(dshape) or len(ushape) != len(qshape) - 1 + len(dshape) - k:
            return None, "ScatterND ranks"
        det = {"op": op, "reduction": red, "ops": ops}
        return f"scatter_nd ({'reduction=' + red})", det
    axis = int(_attr(node, "axis", 0))
    r = len(dshape)
    if r == 0 or len(qshape) != r or len(ushape) != r or not -r <= axis < r:
        return None, "ScatterElements ranks/axis"
    det = {"op": op, "reduction": red, "ops": ops, "axis": axis % r}
    return f"scatter_elements (axis={axis % r}, reduction={red})", det


def _main_params(info):
    """(Relax parameters of `main`, one per graph input, symbolic dims as shared int64 vars; dim())."""
    from tvm import relax, tirx

    syms = {}

    def dim(x):
        if isinstance(x, int):
            return x
        if x not in syms:
            syms[x] = tirx.Var(x, "int64")
        return syms[x]

    params = [relax.Var(x["name"], relax.TensorType([dim(s) for s in x["shape"]], x["dtype"]))
              for x in info.inputs]
    return params, dim


def _te_module(info, det, mode="gpu"):
    """Relax `main(graph inputs...)` = emit_te(TPAT's TE compute) for the TE-based lowerings."""
    from tvm import relax

    params, _ = _main_params(info)
    mod = TE_LOWERINGS[det["op"]]()
    bb = relax.BlockBuilder()
    with bb.function("main", params):
        with bb.dataflow():
            out = mod.emit(bb, params, det, mode)
            res = bb.emit_output(out)
        bb.emit_func_output(res)
    built = bb.get()
    if mode == "gpu" and hasattr(mod, "schedule"):  # a TPAT schedule (else dlight schedules it)
        from .planner import narrowing_applies

        built = _tpat_schedule(built, mod, det, narrowing_applies(info))
    return built


def _tpat_schedule(built, low, det, narrow):
    """Apply a lowering's GPU schedule to its PrimFunc `low.PRIMFUNC`: indices narrowed to int32
    first when `narrow` (the planner's narrowing skips scheduled functions), then
    `low.schedule(sch, block, det)`; the result is marked tirx.is_scheduled. Unchanged when the
    lowering declines (schedule returns False): dlight schedules it then."""
    import tvm
    from tvm import s_tir, tirx

    gv = next(g for g in built.get_global_vars() if g.name_hint == low.PRIMFUNC)
    func = built[gv]
    if narrow:
        func = tirx.transform.ForceNarrowIndexToInt32()(tvm.IRModule({gv: func}))[gv]
    sch = s_tir.Schedule(func)
    if not low.schedule(sch, sch.get_sblock(low.PRIMFUNC), det):
        return built
    built[gv] = sch.mod["main"].with_attr("tirx.is_scheduled", True)
    return built


def primfunc_for(det, mode="gpu"):
    (_, _, dshape, dtype), (_, _, qshape, qdtype), (_, _, ushape, _) = det["ops"]
    if det["op"] == "ScatterND":
        src = scatter_nd_source(dshape, qshape, ushape, dtype, qdtype, det["reduction"], mode)
    else:
        src = scatter_elements_source(dshape, qshape, ushape, det["axis"], dtype, qdtype,
                                      det["reduction"], mode)
    return parse_primfunc(src), src


def build_module(info, det, mode="gpu"):
    """Relax `main(graph inputs...)` = call_tir(TPAT PrimFunc, [data, indices, updates])."""
    from tvm import relax

    params, dim = _main_params(info)
    func, _ = primfunc_for(det, mode)
    fname = "tpat_scatter_nd" if det["op"] == "ScatterND" else "tpat_scatter_elements"
    bb = relax.BlockBuilder()
    with bb.function("main", params):
        with bb.dataflow():
            gv = bb.add_func(func, fname)
            args = []
            for o in det["ops"]:
                if o[0] == "param":
                    args.append(params[o[1]])
                else:
                    args.append(relax.const(np.ascontiguousarray(o[1]), o[3]))
            out_shape = [dim(s) for s in det["ops"][0][2]]
            out = bb.emit(relax.call_tir(gv, relax.Tuple(args),
                                         out_ty=relax.TensorType(out_shape, det["ops"][0][3])))
            res = bb.emit_output(out)
        bb.emit_func_output(res)
    return bb.get()


def tpat_module(info, mode="gpu"):
    """(IRModule, lowering name) when a TPAT lowering applies to the node, else None."""
    name, det = select(info)
    if name is None:
        return None
    if det["op"] in TE_LOWERINGS:
        info.data_dependent = list(det.get("data_dependent", ()))  # size-tensor outputs (NonZero)
        return _te_module(info, det, mode), name
    mod = build_module(info, det, mode)
    if mode == "gpu":
        install_cuda_postproc()
    return mod, name

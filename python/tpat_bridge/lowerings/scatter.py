"""TPAT's own TVM lowerings of ScatterND and ScatterElements (reductions none/add/mul/max/min).

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
The helpers are defined in the prelude (prelude.py), prepended to TVM's CUDA source (`with_prelude`): the plan's
`cuda_source` is then `TPAT prelude + TVM's source`. A `tvm_callback_cuda_postproc` hook does the
same inside TVM's own CUDA build, so TVM's NVRTC/nvcc compile on a GPU machine sees the helpers too.

Negative indices are wrapped (index + dim size); indices still out of range after that are skipped
(ONNX calls them an error; skipping keeps the plugin from writing out of bounds).

Symbolic dims stay symbolic: every buffer gets its own int64 shape variables, bound by Relax's
call_tir from the node's input shapes, and the kernels take the ones they use as int64 scalars.

`mode="cpu"` builds the same index arithmetic for LLVM with serial loops and plain
read-modify-write instead of atomics (used by the tests to compare with ONNX Runtime).
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import relax
from tvm.script import tirx as T  # noqa: F401  (the TVMScript sources below name it)

from .. import dtypes
from .ir import main_dims, relax_arg
from .prelude import ATOMIC_DTYPES, install_cuda_postproc
from .protocol import Decline, FunctionLowering, NodeView, Operand, Selection
from .tvmscript import Script, parse_primfunc, static_factor

REDUCTIONS = ("none", "add", "mul", "max", "min")
# reduction "none" is a plain store: any of these element types.
PLAIN_DTYPES = set(ATOMIC_DTYPES) | {"int8", "uint8", "int16", "uint16", "uint32", "uint64"}

THREADS = 256

# --------------------------------------------------------------------------------------------
# TVMScript generation


def _header(s, name, dtype, idx_dtype, ddims, qdims, udims, mode):
    lines = [
        "@T.prim_func(private=True)",
        f"def {name}(var_data: T.handle, var_indices: T.handle, var_updates: T.handle, var_out: T.handle):",
    ]
    attrs = '"tirx.noalias": True'
    if mode == "gpu":
        attrs = '"tirx.is_scheduled": True, ' + attrs
    lines.append(f"    T.func_attr({{{attrs}}})")
    lines += s.decls

    def shp(ds):
        return Script.shp(ds, s.c)

    lines += [
        f'    data = T.match_buffer(var_data, {shp(ddims)}, "{dtype}")',
        f'    indices = T.match_buffer(var_indices, {shp(qdims)}, "{idx_dtype}")',
        f'    updates = T.match_buffer(var_updates, {shp(udims)}, "{dtype}")',
        f'    out = T.match_buffer(var_out, {shp(ddims)}, "{dtype}")',
        f'    data_f = T.decl_buffer(({s.prod(ddims)},), "{dtype}", data=data.data)',
        f'    out_f = T.decl_buffer(({s.prod(ddims)},), "{dtype}", data=out.data)',
        f'    idx_f = T.decl_buffer(({s.prod(qdims)},), "{idx_dtype}", data=indices.data)',
        f'    upd_f = T.decl_buffer(({s.prod(udims)},), "{dtype}", data=updates.data)',
    ]
    return lines


def _copy_nest(s, ddims, dtype, mode):
    total = s.prod(ddims)
    if mode == "cpu":
        return [f"    for i in T.serial({total}):", "        out_f[i] = data_f[i]"]
    vec = max(1, 16 // (dtypes.size(dtype) if dtype in dtypes.DTYPES else 4))
    if static_factor(ddims) % vec != 0:
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
    return (
        [
            f"    for bx in T.thread_binding(({total} + T.int64({THREADS - 1})) // T.int64({THREADS}), thread=\"blockIdx.x\"):",
            f"        for tx in T.thread_binding(T.int64({THREADS}), thread=\"threadIdx.x\"):",
            f"            i = bx * T.int64({THREADS}) + tx",
            f"            if i < {total}:",
        ],
        "i",
        " " * 16,
    )


def _wrap_index(s, raw_expr, dim, var, ind):
    d = s.c(dim)
    return [
        f"{ind}{var}_r = T.Cast(\"int64\", {raw_expr})",
        f"{ind}{var} = T.if_then_else({var}_r < T.int64(0), {var}_r + {d}, {var}_r)",
    ]


def scatter_nd_source(
    data_shape, idx_shape, upd_shape, dtype, idx_dtype, reduction, mode="gpu", name="tpat_scatter_nd"
):
    """TVMScript of ScatterND: out = data; out[idx[u, :]] (op)= updates[u, ...]."""
    k = idx_shape[-1]
    assert isinstance(k, int)
    s = Script("int64")
    ddims, qdims, udims = s.dims(data_shape, "d"), s.dims(idx_shape, "q"), s.dims(upd_shape, "u")
    lines = _header(s, name, dtype, idx_dtype, ddims, qdims, udims, mode)
    lines += _copy_nest(s, ddims, dtype, mode)
    slice_ = s.prod(ddims[k:])
    n_upd = s.prod(qdims[:-1])
    # reduction none, slices a whole number of 16-byte vectors (e.g. whole rows): a thread moves one
    # vector (the slice offset and the update offset are then multiples of the width)
    vec = max(1, 16 // (dtypes.size(dtype) if dtype in dtypes.DTYPES else 4))
    # (the LLVM build for the tests takes the same path, so they check its index arithmetic)
    if reduction != "none" or static_factor(ddims[k:]) % vec != 0:
        vec = 1
    total = f"({n_upd} * {slice_})" if vec == 1 else f"({n_upd} * {slice_} // T.int64({vec}))"
    open_, i, ind = _scatter_loop_open(total, mode)
    lines += open_
    upd = i
    if vec > 1:
        upd = f"{i} * T.int64({vec})"  # an expression, not a variable: the vector load stays visible
        lines.append(f"{ind}i0 = {upd}")
        i = "i0"
    lines.append(f"{ind}s = {i} // {slice_}")
    lines.append(f"{ind}e = {i} % {slice_}")
    conds = []
    off_terms = []
    for j in range(k):
        lines += _wrap_index(s, f"idx_f[s * T.int64({k}) + T.int64({j})]", ddims[j], f"x{j}", ind)
        conds.append(f"x{j} >= T.int64(0) and x{j} < {s.c(ddims[j])}")
        off_terms.append(f"x{j} * {s.prod(ddims[j + 1 :])}")
    off = " + ".join(off_terms + ["e"])
    if conds:
        lines.append(f"{ind}if {' and '.join(conds)}:")
        ind2 = ind + "    "
    else:
        ind2 = ind
    if vec > 1:
        lines.append(f"{ind2}for v in T.vectorized(T.int64({vec})):")
        lines += _update_stmt(reduction, dtype, f"{off} + v", f"upd_f[{upd} + v]", mode, ind2 + "    ")
    else:
        lines += _update_stmt(reduction, dtype, f"{off}", f"upd_f[{i}]", mode, ind2)
    return "\n".join(lines) + "\n"


def scatter_elements_source(
    data_shape, idx_shape, upd_shape, axis, dtype, idx_dtype, reduction, mode="gpu", name="tpat_scatter_elements"
):
    """TVMScript of ScatterElements: out[.., idx[p], ..] (op)= updates[p] for every position p."""
    r = len(data_shape)
    s = Script("int64")
    ddims, qdims, udims = s.dims(data_shape, "d"), s.dims(idx_shape, "q"), s.dims(upd_shape, "u")
    lines = _header(s, name, dtype, idx_dtype, ddims, qdims, udims, mode)
    lines += _copy_nest(s, ddims, dtype, mode)
    total = s.prod(qdims)
    open_, i, ind = _scatter_loop_open(total, mode)
    lines += open_
    # unravel i over the indices' shape (last dim fastest)
    rem = i
    for j in range(r - 1, -1, -1):
        if j == 0:
            lines.append(f"{ind}c0 = {rem}")
        else:
            lines.append(f"{ind}c{j} = {rem} % {s.c(qdims[j])}")
            lines.append(f"{ind}t{j} = {rem} // {s.c(qdims[j])}")
            rem = f"t{j}"
    lines += _wrap_index(s, f"idx_f[{i}]", ddims[axis], "x", ind)
    terms = []
    for j in range(r):
        c = "x" if j == axis else f"c{j}"
        terms.append(f"{c} * {s.prod(ddims[j + 1 :])}")
    off = " + ".join(terms)
    lines.append(f"{ind}if x >= T.int64(0) and x < {s.c(ddims[axis])}:")
    lines += _update_stmt(reduction, dtype, off, f"upd_f[{i}]", mode, ind + "    ")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Selection and the Relax module


@dataclass(frozen=True)
class ScatterSelection(Selection):
    op: str  # "ScatterND" or "ScatterElements"
    data: Operand
    indices: Operand
    updates: Operand
    reduction: str
    axis: int | None = None  # ScatterElements

    def describe(self) -> str:
        if self.op == "ScatterND":
            return f"scatter_nd ({'reduction=' + self.reduction})"
        return f"scatter_elements (axis={self.axis}, reduction={self.reduction})"


def select(node: NodeView) -> ScatterSelection | Decline:
    if len(node.node.input) != 3 or len(node.node.output) != 1:
        return Decline("unexpected arity")
    op = node.op_type
    data, indices, updates = node.operands
    dshape, dtype, qshape, qdtype, ushape = data.shape, data.dtype, indices.shape, indices.dtype, updates.shape
    red = node.attr("reduction", "none")
    if red not in REDUCTIONS:
        return Decline(f"reduction {red}")
    if updates.dtype != dtype or node.outputs[0]["dtype"] != dtype:
        return Decline("dtype mismatch")
    if qdtype not in ("int32", "int64"):
        return Decline(f"index dtype {qdtype}")
    allowed = PLAIN_DTYPES if red == "none" else set(ATOMIC_DTYPES)
    if dtype not in allowed:
        return Decline(f"dtype {dtype} with reduction {red}")
    if op == "ScatterND":
        if not qshape or not isinstance(qshape[-1], int):
            return Decline("ScatterND needs a static last index dim")
        k = qshape[-1]
        if k < 1 or k > len(dshape) or len(ushape) != len(qshape) - 1 + len(dshape) - k:
            return Decline("ScatterND ranks")
        return ScatterSelection(op=op, data=data, indices=indices, updates=updates, reduction=red)
    axis = int(node.attr("axis", 0))
    r = len(dshape)
    if r == 0 or len(qshape) != r or len(ushape) != r or not -r <= axis < r:
        return Decline("ScatterElements ranks/axis")
    return ScatterSelection(op=op, data=data, indices=indices, updates=updates, reduction=red, axis=axis % r)


def primfunc_for(sel: ScatterSelection, mode="gpu"):
    """(PrimFunc, its TVMScript source) of the selection."""
    d, q, u = sel.data, sel.indices, sel.updates
    if sel.op == "ScatterND":
        src = scatter_nd_source(d.shape, q.shape, u.shape, d.dtype, q.dtype, sel.reduction, mode)
    else:
        src = scatter_elements_source(d.shape, q.shape, u.shape, sel.axis, d.dtype, q.dtype, sel.reduction, mode)
    return parse_primfunc(src), src


def emit(bb, params, sel: ScatterSelection, mode="gpu"):
    """call_tir(TPAT PrimFunc, [data, indices, updates]) into main's dataflow block."""
    func, _ = primfunc_for(sel, mode)
    gv = bb.add_func(func, "tpat_scatter_nd" if sel.op == "ScatterND" else "tpat_scatter_elements")
    args = [relax_arg(params, o) for o in (sel.data, sel.indices, sel.updates)]
    dim = main_dims(params)
    out = bb.emit(
        relax.call_tir(gv, relax.Tuple(args), out_ty=relax.TensorType([dim(s) for s in sel.data.shape], sel.data.dtype))
    )
    if mode == "gpu":
        install_cuda_postproc()  # TVM's own CUDA build must see the atomic helpers too
    return out


SCATTER_ND = FunctionLowering("scatter_nd", ["ScatterND"], select, emit)
SCATTER_ELEMENTS = FunctionLowering("scatter_elements", ["ScatterElements"], select, emit)

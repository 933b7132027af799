"""TPAT's own TVM lowering of OneHot (any axis, any depth): a streaming store of the whole output.

out[o.., d, i..] = on if wrap(indices[o.., i..]) == d else off, with depth a constant and values
constant or a runtime input; negative indices are wrapped once (+ depth), indices still out of
range give an all-`off` line (ONNX). TVM 0.27's frontend lowers OneHot to a float64 one-hot plus a
cast (two kernels, double the bytes). Here one kernel (TIR written as TVMScript) writes every output
element exactly once, one compare per element, V elements per 16-byte vector store. The output is
seen as (outer, depth, inner) with outer = prod(indices.shape[:axis]), inner = the rest:

- **row** (inner = 1: the last axis, the common case): the output is one stream of outer x depth
  elements cut into vectors; a thread finds its row with one division per vector, loads that
  row's index (and the next row's when depth is not a multiple of V, so a vector may straddle two
  rows) and stores V compares; large static outputs give each thread U = 4 vectors (`row_vectors`:
  its U index loads issued together, then U stores);
- **column** (any other axis): a thread loads V consecutive indices once (V x 8 bytes, kept in
  registers) and stores a vector for each of DC consecutive depth values (blockIdx.y walks the
  depth in chunks of DC), so the indices are read depth / DC times from cache, not depth times.

Indexing is int32 when every dim is static and the output has fewer than 2^31 elements. Small
outputs get smaller blocks (at least two per SM). `mode="cpu"` builds the same arithmetic with
serial loops for LLVM (the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import relax

from .. import dtypes
from .gather import (
    GRID_Y,
    INT32_LIMIT,
    MAX_THREADS,
    MIN_THREADS,
    TARGET_BLOCKS,
    all_static,
    numel,
    vector_width,
)
from .ir import main_dims
from .protocol import Decline, FunctionLowering, NodeView, Operand, Selection
from .tvmscript import Script, parse_primfunc, static_factor

INDEX_DTYPES = ("int32", "int64", "float32")
DEPTH_CHUNK = 16  # depth values per thread in the column form


@dataclass(frozen=True)
class OneHotSelection(Selection):
    indices: Operand  # a graph input
    values_op: Operand  # [off, on], a constant or a graph input
    depth: int
    axis: int
    dtype: str
    values: list | None  # [off, on] when constant
    form: str = "row"  # "row" (inner = 1) or "column"
    vec: int = 1
    ity: str = "int64"

    def describe(self) -> str:
        ib = "32" if self.ity == "int32" else "64"
        u = self.vectors_per_thread()
        per = f", {u} vectors per thread" if u > 1 else ""
        return (
            f"one_hot (depth={self.depth}, axis={self.axis}, {self.form} form, "
            f"{self.vec}-element vector stores{per}, int{ib} indexing)"
        )

    def vectors_per_thread(self) -> int:
        if self.form != "row" or not all_static(self.indices.shape):
            return 1
        items = numel(self.indices.shape[: self.axis]) * self.depth // self.vec
        return row_vectors(items, _threads(items, True))


def select(n: NodeView) -> OneHotSelection | Decline:
    ops = n.operands
    if len(ops) != 3 or not ops[0].is_param or ops[2].is_absent:
        return Decline("OneHot needs runtime indices")
    indices, depth_op, values_op = ops
    if indices.dtype not in INDEX_DTYPES:
        return Decline(f"indices dtype {indices.dtype}")
    if not depth_op.is_const:
        return Decline("depth must be a constant")
    depth = depth_op.scalar_int("depth")
    if not 1 <= depth < 2**31:
        return Decline(f"depth {depth}")
    odtype = n.outputs[0]["dtype"]
    if odtype != values_op.dtype:
        return Decline("output dtype")
    if values_op.is_const and np.asarray(values_op.value).size != 2:
        return Decline("values must hold two elements")
    if values_op.is_param and values_op.shape != [2]:
        return Decline("values must have the static shape [2]")
    ishape = indices.shape
    r = len(ishape)
    axis = int(n.attr("axis", -1))
    if not -r - 1 <= axis <= r:
        return Decline("axis")
    axis %= r + 1
    values = None  # read from the values buffer (a runtime input, or a constant that is not finite)
    if values_op.is_const:
        arr = np.asarray(values_op.value).reshape(-1)
        if arr.dtype.kind != "f" or np.all(np.isfinite(arr.astype(np.float64))):
            values = [x.item() for x in arr]
    inner = ishape[axis:]
    oshape = ishape[:axis] + [depth] + inner
    static = all_static(ishape)
    ity = "int32" if static and numel(oshape) <= INT32_LIMIT else "int64"
    if static and numel(inner) == 1:
        form = "row"
        vec = vector_width(odtype, [static_factor(ishape[:axis]) * depth])
        while vec > depth:
            vec //= 2
    elif not inner:
        form = "row"
        vec = vector_width(odtype, [static_factor(ishape) * depth])
        while vec > depth:
            vec //= 2
    else:
        form = "column"
        vec = vector_width(odtype, inner)
    return OneHotSelection(
        indices=indices,
        values_op=values_op,
        depth=depth,
        axis=axis,
        dtype=odtype,
        values=values,
        form=form,
        vec=vec,
        ity=ity,
    )


def _literal(v, dtype: str) -> str:
    if dtype == "bool":
        return f"T.bool({bool(v)})"
    if dtype.startswith("float") or dtype == "bfloat16":
        return f"T.{dtype}({float(v)!r})"  # finite (select reads non-finite values from a buffer)
    return f'T.{dtype}({int(v)})'


def _threads(items, static: bool) -> int:
    t = MAX_THREADS
    if static:
        while t > MIN_THREADS and items < TARGET_BLOCKS * t:
            t //= 2
    return t


ROW_VECTORS = 4  # vectors per thread of the row form on large static outputs (row_vectors)


def row_vectors(items: int, threads: int) -> int:
    """Vectors per thread of the row form: ROW_VECTORS when the output (`items` vectors, 0 when
    symbolic) still gives TARGET_BLOCKS x 4 blocks (8 per SM) of `threads` x ROW_VECTORS vectors,
    else 1.
    A thread issues its U index loads (dependent round trips to L2 before any store) together,
    then U 16-byte stores: a block writes U x 4 KB per index round trip instead of 4 KB."""
    return ROW_VECTORS if items >= TARGET_BLOCKS * 4 * threads * ROW_VECTORS else 1


def _bits(values, dtype: str) -> list:
    """[off, on] as unsigned integers of the element's bit pattern (1- and 2-byte types)."""
    arr = np.ascontiguousarray(np.asarray(values).reshape(-1)[:2])
    return [int(x) for x in arr.view(np.uint8 if arr.itemsize == 1 else np.uint16)]


def onehot_source(sel: OneHotSelection, mode: str = "gpu", const_bits: list | None = None) -> str:
    """TVMScript of the kernel. 1- and 2-byte outputs are written through an unsigned view of
    their bits (uint32 words of 4 / es elements when the vector allows: CUDA has no 8- or
    16-lane bool vectors), `const_bits` = [off, on] of a constant `values`."""
    s = Script(sel.ity)
    c = s.c
    ishape = s.dims(sel.indices.shape, "q")
    a, depth, v, dt = sel.axis, sel.depth, sel.vec, sel.dtype
    odims = ishape[:a] + [depth] + ishape[a:]
    OUT, IN = s.prod(ishape[:a]), s.prod(ishape[a:])
    static = all_static(sel.indices.shape)
    runtime_vals = sel.values is None
    es = 1 if dt == "bool" else dtypes.size(dt)
    if es <= 2:
        pack = 4 // es if v * es >= 4 else 1
        word = "uint32" if pack > 1 else ("uint8" if es == 1 else "uint16")
    else:
        pack, word = 1, dt
    lines = [
        "@T.prim_func(private=True)",
        "def tpat_one_hot(var_ind: T.handle, "
        + ("var_vals: T.handle, " if runtime_vals else "")
        + "var_out: T.handle):",
        '    T.func_attr({"tirx.is_scheduled": True, "tirx.noalias": True, "op_pattern": 8})',
        *s.decls,
        f'    ind = T.match_buffer(var_ind, {s.shp(ishape, c)}, "{sel.indices.dtype}")',
    ]
    if runtime_vals:
        lines.append(f'    vals = T.match_buffer(var_vals, (T.int64(2),), "{dt}")')
    lines += [
        f'    out = T.match_buffer(var_out, {s.shp(odims, c)}, "{dt}")',
        f'    ind_f = T.decl_buffer(({s.prod(ishape)},), "{sel.indices.dtype}", data=ind.data)',
        f'    out_w = T.decl_buffer(({s.prod(odims)} // {c(pack)},), "{word}", data=out.data)',
    ]
    dep = c(depth)

    def wrapped(raw, var, ind):
        """var (index type) = the wrapped index, or -1 when out of range (matches no d)."""
        return [
            f'{ind}{var}_r = T.Cast("int64", {raw})',
            f"{ind}{var}_w = T.if_then_else({var}_r < T.int64(0), {var}_r + T.int64({depth}), {var}_r)",
            f"{ind}{var} = T.if_then_else({var}_w >= T.int64(0) and {var}_w < T.int64({depth}), "
            f'T.Cast("{sel.ity}", {var}_w), {c(-1)})',
        ]

    def vals_lines(ind):
        """(lines, on, off): the two values as `word` expressions."""
        if es > 2:
            if runtime_vals:
                return [f"{ind}off = vals[T.int64(0)]", f"{ind}on = vals[T.int64(1)]"], "on", "off"
            return [], _literal(sel.values[1], dt), _literal(sel.values[0], dt)
        if runtime_vals:

            def bits(k):
                x = f"vals[T.int64({k})]"
                if dt == "bool":
                    return f'T.Cast("{word}", {x})'
                return f'T.Cast("{word}", T.reinterpret("uint{8 * es}", {x}))'

            return [f"{ind}off = {bits(0)}", f"{ind}on = {bits(1)}"], "on", "off"
        off_b, on_b = const_bits
        return [], f"T.{word}({on_b})", f"T.{word}({off_b})"

    def store(ind, base, cond, on, off):
        """Vector store of V elements from element `base` (a multiple of V); cond(lane) -> bool.
        T.Select (both sides evaluated) vectorizes; T.if_then_else would scalarize the store."""
        if pack == 1:
            return [
                f"{ind}for v in T.vectorized({c(v)}):",
                f"{ind}    out_w[{base} + v] = T.Select({cond('v')}, {on}, {off})",
            ]
        terms = []
        for p in range(pack):
            lane = f"(j * {c(pack)} + {c(p)})"
            t = f"T.Select({cond(lane)}, {on}, {off})"
            terms.append(t if p == 0 else f"({t} << T.uint32({8 * es * p}))")
        return [
            f"{ind}for j in T.vectorized({c(v // pack)}):",
            f"{ind}    out_w[{base} // {c(pack)} + j] = " + " | ".join(terms),
        ]

    if sel.form == "row":
        n_vec = f"({OUT} * {dep} // {c(v)})" if v > 1 else f"({OUT} * {dep})"
        items = numel(sel.indices.shape[:a]) * depth // v if static else 0
        t = _threads(items, static)
        u = sel.vectors_per_thread()
        nb = f"({n_vec} + {c(t * u - 1)}) // {c(t * u)}"
        if mode == "gpu":
            lines += [
                f'    for bx in T.thread_binding({nb}, thread="blockIdx.x"):',
                f'        for tx in T.thread_binding({c(t)}, thread="threadIdx.x"):',
            ]
        else:
            lines += [f"    for bx in T.serial({nb}):", f"        for tx in T.serial({c(t)}):"]
        ind = " " * 12
        straddle = depth % v != 0  # a vector may straddle two rows (V <= depth)
        vl, on, off = vals_lines(ind)
        lines += vl
        # U vectors per thread, a block's U x T vectors contiguous (vector k of a thread at
        # k x T + tx: every store of a warp one contiguous run); all U index loads first
        if u > 1:
            lines.append(f'{ind}w0s = T.alloc_buffer(({u},), "{sel.ity}", scope="local")')
            if straddle:
                lines.append(f'{ind}w1s = T.alloc_buffer(({u},), "{sel.ity}", scope="local")')
            lines.append(f"{ind}for k in T.unroll({u}):")
            ind_k = ind + "    "
            g = f"(bx * {c(t * u)} + k * {c(t)} + tx)"
        else:
            ind_k = ind
            g = f"(bx * {c(t)} + tx)"
        e = f"({g} * {c(v)})" if v > 1 else g
        o, r = f"({e} // {dep})", f"({e} % {dep})"
        lines.append(f"{ind_k}if {g} < {n_vec}:")
        body = ind_k + "    "
        lines += wrapped(f"ind_f[{o}]", "w0", body)
        if straddle:
            lines += wrapped(f"ind_f[T.min({o} + {c(1)}, {OUT} - {c(1)})]", "w1", body)
        w0, w1 = "w0", "w1"
        if u > 1:
            lines.append(f"{body}w0s[k] = w0")
            if straddle:
                lines.append(f"{body}w1s[k] = w1")
            lines.append(f"{ind}for k in T.unroll({u}):")
            lines.append(f"{ind_k}if {g} < {n_vec}:")
            w0, w1 = "w0s[k]", "w1s[k]"
        if straddle:

            def cond(lane):
                return f"T.Select({r} + {lane} < {dep}, {w0} == {r} + {lane}, {w1} == {r} + {lane} - {dep})"

        else:

            def cond(lane):
                return f"{w0} == {r} + {lane}"

        lines += store(body, e, cond, on, off)
        return "\n".join(lines) + "\n"

    # column form
    W = f"({IN} // {c(v)})" if v > 1 else IN
    n_vec = f"({OUT} * {W})"
    dc = max(min(depth, DEPTH_CHUNK), -(-depth // GRID_Y))
    ny = -(-depth // dc)
    t = _threads(numel(sel.indices.shape) // v * ny if static else 0, static)
    nb = f"({n_vec} + {c(t - 1)}) // {c(t)}"
    if mode == "gpu":
        lines += [
            f'    for by in T.thread_binding({c(ny)}, thread="blockIdx.y"):',
            f'        for bx in T.thread_binding({nb}, thread="blockIdx.x"):',
            f'            for tx in T.thread_binding({c(t)}, thread="threadIdx.x"):',
        ]
    else:
        lines += [
            f"    for by in T.serial({c(ny)}):",
            f"        for bx in T.serial({nb}):",
            f"            for tx in T.serial({c(t)}):",
        ]
    ind = " " * 16
    g = f"(bx * {c(t)} + tx)"
    lines.append(f"{ind}if {g} < {n_vec}:")
    ind += "    "
    o, iv = f"({g} // {W})", f"({g} % {W})"
    src = f"{o} * {IN} + {iv} * {c(v)}"
    vl, on, off = vals_lines(ind)
    lines += vl
    lines.append(f'{ind}wl = T.alloc_buffer(({v},), "{sel.ity}", scope="local")')
    lines.append(f"{ind}for v in T.unroll({v}):")
    lines += wrapped(f"ind_f[{src} + v]", "wv", ind + "    ")
    lines.append(f"{ind}    wl[v] = wv")
    lines.append(f"{ind}for dd in T.unroll({dc}):")
    dv = f"(by * {c(dc)} + dd)"
    lines.append(f"{ind}    if {dv} < {dep}:")
    lines += store(
        ind + "        ", f"(({o} * {dep} + {dv}) * {IN} + {iv} * {c(v)})", lambda lane: f"wl[{lane}] == {dv}", on, off
    )
    return "\n".join(lines) + "\n"


def emit(bb, params, sel: OneHotSelection, mode="gpu"):
    bits = None
    if sel.values is not None and sel.dtype in dtypes.DTYPES and dtypes.size(sel.dtype) <= 2:
        bits = _bits(sel.values_op.value, sel.dtype)
    func = parse_primfunc(onehot_source(sel, mode, bits))
    gv = bb.add_func(func, "tpat_one_hot")
    args = [params[sel.indices.index]]
    if sel.values is None:
        vo = sel.values_op
        args.append(
            params[vo.index] if vo.is_param else relax.const(np.ascontiguousarray(vo.value).reshape(2), vo.dtype)
        )
    dim = main_dims(params)
    ish = sel.indices.shape
    oshape = ish[: sel.axis] + [sel.depth] + ish[sel.axis :]
    # returned unbound: the registry binds it as main's output. A dataflow binding of a one-input
    # call_tir is offered to Relax's RewriteDataflowReshape, whose reshape check asserts on TIR
    # without blocks (this kernel is plain loops).
    return relax.call_tir(gv, relax.Tuple(args), out_ty=relax.TensorType([dim(x) for x in oshape], sel.dtype))


ONE_HOT = FunctionLowering("one_hot", ["OneHot"], select, emit)

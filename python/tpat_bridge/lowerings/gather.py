"""TPAT's own TVM lowerings of Gather and GatherND: contiguous slices copied as 16-byte vectors.

Both ops copy whole slices of `data`: Gather (any axis a, any index rank, 0-D included) copies
the `inner = prod(data.shape[a+1:])` elements after the indexed position, GatherND (any
batch_dims b, any tuple length k) the `inner = prod(data.shape[b+k:])` elements after the indexed
tuple. The output is `S` slices of `inner` elements, one after the other. One kernel (TIR written
as TVMScript, like the scatters):

- a thread moves one vector of V elements (V = 16 bytes / element size, smaller when `inner` is
  not a multiple: the largest power of two that divides its static factor; 1 for bool);
- a 2-D grid: threadIdx.x and blockIdx.x walk the vectors of a slice, blockIdx.y the slices
  (TS = T / TW slices per block when a slice has fewer than T vectors, TW a power of two, so the
  split of threadIdx.x is a shift and a mask; no per-element div/mod). blockIdx.y is capped at
  65535 with a loop over the rest;
- the source offset of a slice is computed once per thread from its index values: wrapped when
  negative (+ dim), clamped into range (ONNX leaves out-of-range indices undefined; the clamp keeps
  the read in bounds), in int64, then cast to the kernel's index type;
- the kernel indexes in int32 when every dim is static and every tensor has fewer than 2^31
  elements (64-bit integer division is emulated on NVIDIA GPUs), else in int64 with symbolic dims;
- small outputs get smaller blocks (down to 32 threads) so that at least two blocks per SM run.

`mode="cpu"` builds the same index arithmetic with serial loops (the tests and the cross-check on
LLVM).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tvm import relax

from .. import dtypes
from .ir import main_dims, relax_arg
from .protocol import Decline, FunctionLowering, NodeView, Operand, Selection
from .tvmscript import Script, parse_primfunc, static_factor

INDEX_DTYPES = ("int32", "int64")
MAX_THREADS = 256
MIN_THREADS = 32
TARGET_BLOCKS = 264  # two per SM of an H100 / H200 (132 SMs)
GRID_Y = 65535
UNROLL_BLOCKS = 2112  # two full waves of 256-thread blocks on 132 SMs (8 per SM): below that, U = 1
INT32_LIMIT = 2**31 - 1


# --------------------------------------------------------------------------------------------
# shape helpers (dims are ints or symbol names)


def all_static(*shapes) -> bool:
    return all(isinstance(x, int) for s in shapes for x in s)


def numel(dims) -> int:
    n = 1
    for x in dims:
        n *= x  # Python ints: no wrap-around
    return n


def vector_width(dtype: str, dims) -> int:
    """Elements per 16-byte vector that divide the static factor of `dims` (1 for bool)."""
    if dtype == "bool" or dtype not in dtypes.DTYPES:
        return 1
    v = max(1, 16 // dtypes.size(dtype))
    f = static_factor(dims)
    while v > 1 and f % v:
        v //= 2
    return v


def pow2_ceil(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def wrap_clamp(raw: str, dim, s: Script, ind: str, var: str) -> list:
    """Lines binding `var` (kernel index type) to raw wrapped once (+ dim when negative) and
    clamped into [0, dim): the read stays in bounds whatever the index."""
    d = f"T.int64({dim})" if isinstance(dim, int) else f'T.Cast("int64", {dim})'
    return [
        f'{ind}{var}_r = T.Cast("int64", {raw})',
        f"{ind}{var}_w = T.if_then_else({var}_r < T.int64(0), {var}_r + {d}, {var}_r)",
        f'{ind}{var} = T.Cast("{s.ity}", T.max(T.int64(0), T.min({var}_w, {d} - T.int64(1))))',
    ]


def launch_shape(n_slices, n_vec, static: bool):
    """(threads per block T, threads per slice TW, slices per block TS, slices per thread U): TW
    covers a slice's vectors (a power of two up to T); small static outputs get smaller blocks;
    large static ones give a thread U = 2 or 4 slices whose loads are all issued before the
    first store (more bytes in flight behind the dependent index load), when U divides evenly
    and at least UNROLL_BLOCKS blocks remain."""
    t = MAX_THREADS
    if static:
        items = n_slices * pow2_ceil(n_vec) if n_vec < MAX_THREADS else n_slices * n_vec
        while t > MIN_THREADS and items < TARGET_BLOCKS * t:
            t //= 2
    tw = min(t, pow2_ceil(n_vec)) if isinstance(n_vec, int) else t
    ts = t // tw
    u = 1
    if static and n_vec % tw == 0:
        blocks = (n_vec // tw) * -(-n_slices // ts)
        for cand in (4, 2):
            if n_slices % (ts * cand) == 0 and blocks // cand >= UNROLL_BLOCKS:
                u = cand
                break
    return t, tw, ts, u


def slice_copy_source(name, dtype, idx_dtype, ddims_in, qdims_in, odims_fn, s_terms, w_vec, offset_fn, mode, ity):
    """TVMScript of a slice gather. `odims_fn(ddims, qdims)` gives the output dims, `s_terms`
    (ddims, qdims) -> (number of slices S, elements per slice inner), `offset_fn(s, ddims, qdims,
    script, ind)` -> (lines, source offset expression of slice `s`)."""
    s = Script(ity)
    ddims = s.dims(ddims_in, "d")
    qdims = s.dims(qdims_in, "q")
    odims = odims_fn(ddims, qdims)
    n_sl, inner = s_terms(ddims, qdims)
    v = w_vec
    S, IN = s.prod(n_sl), s.prod(inner)
    W = IN if v == 1 else f"({IN} // {s.c(v)})"
    static = all_static(ddims_in, qdims_in)
    n_vec = numel(inner) // v if all(isinstance(x, int) for x in inner) else None
    t, tw, ts, u = launch_shape(numel(n_sl) if static else None, n_vec if n_vec is not None else MAX_THREADS, static)
    if n_vec is None:
        tw, ts, u = t, 1, 1
    c = s.c
    lines = [
        "@T.prim_func(private=True)",
        f"def {name}(var_data: T.handle, var_indices: T.handle, var_out: T.handle):",
        '    T.func_attr({"tirx.is_scheduled": True, "tirx.noalias": True, "op_pattern": 8})',
        *s.decls,
        f'    data = T.match_buffer(var_data, {s.shp(ddims, c)}, "{dtype}")',
        f'    indices = T.match_buffer(var_indices, {s.shp(qdims, c)}, "{idx_dtype}")',
        f'    out = T.match_buffer(var_out, {s.shp(odims, c)}, "{dtype}")',
        f'    data_f = T.decl_buffer(({s.prod(ddims)},), "{dtype}", data=data.data)',
        f'    idx_f = T.decl_buffer(({s.prod(qdims)},), "{idx_dtype}", data=indices.data)',
        f'    out_f = T.decl_buffer(({s.prod(odims)},), "{dtype}", data=out.data)',
    ]
    nx = f"({W} + {c(tw - 1)}) // {c(tw)}"
    ny = f"({S} + {c(ts * u - 1)}) // {c(ts * u)}"
    static_ny = -(-numel(n_sl) // (ts * u)) if static else None
    loop_y = static_ny is None or static_ny > GRID_Y
    gy = f"T.min({ny}, {c(GRID_Y)})" if loop_y else ny
    if mode == "gpu":
        lines += [
            f'    for by in T.thread_binding({gy}, thread="blockIdx.y"):',
            f'        for bx in T.thread_binding({nx}, thread="blockIdx.x"):',
            f'            for tx in T.thread_binding({c(t)}, thread="threadIdx.x"):',
        ]
    else:
        lines += [
            f"    for by in T.serial({gy}):",
            f"        for bx in T.serial({nx}):",
            f"            for tx in T.serial({c(t)}):",
        ]
    ind = " " * 16
    if loop_y:
        lines.append(f"{ind}for yo in T.serial(({ny} + {c(GRID_Y - 1)}) // {c(GRID_Y)}):")
        ind += "    "
        sy = f"(yo * {c(GRID_Y)} + by)"
    else:
        sy = "by"
    # expressions, not assignments: TVM keeps knowing they are non-negative (plain shifts and
    # divisions, no sign fix-ups)
    wv = f"(bx * {c(tw)} + tx % {c(tw)})" if tw > 1 else "bx"
    if u == 1:
        sv = f"({sy} * {c(ts)} + tx // {c(tw)})" if ts > 1 else sy
        lines.append(f"{ind}if {sv} < {S} and {wv} < {W}:")
        ind += "    "
        off_lines, src = offset_fn(sv, ddims, qdims, s, ind)
        lines += off_lines
        lines.append(f"{ind}for v in T.vectorized({c(v)}):")
        lines.append(f"{ind}    out_f[({sv} * {W} + {wv}) * {c(v)} + v] = data_f[{src} + {wv} * {c(v)} + v]")
    else:
        # U slices per thread, divisible (no guards): every load into registers, then the stores
        sv = f"(({sy} * {c(u)} + u) * {c(ts)} + tx // {c(tw)})" if ts > 1 else f"({sy} * {c(u)} + u)"
        lines.append(f'{ind}stage = T.alloc_buffer(({u * v},), "{dtype}", scope="local")')
        lines.append(f"{ind}for u in T.unroll({u}):")
        off_lines, src = offset_fn(sv, ddims, qdims, s, ind + "    ")
        lines += off_lines
        lines.append(f"{ind}    for v in T.vectorized({c(v)}):")
        lines.append(f"{ind}        stage[u * {v} + v] = data_f[{src} + {wv} * {c(v)} + v]")
        lines.append(f"{ind}for u in T.unroll({u}):")
        lines.append(f"{ind}    for v in T.vectorized({c(v)}):")
        lines.append(f"{ind}        out_f[({sv} * {W} + {wv}) * {c(v)} + v] = stage[u * {v} + v]")
    return "\n".join(lines) + "\n", (t, tw, ts, u)


# --------------------------------------------------------------------------------------------
# Gather (any axis, any index rank)


@dataclass(frozen=True)
class GatherSelection(Selection):
    op: str  # "Gather" or "GatherND"
    data: Operand
    indices: Operand
    dtype: str
    axis: int = 0  # Gather
    b: int = 0  # GatherND batch_dims
    k: int = 0  # GatherND tuple length
    vec: int = 1
    ity: str = "int64"
    per_thread: int = 1  # slices per thread (U), set by `_with_launch`

    def describe(self) -> str:
        ib = "32" if self.ity == "int32" else "64"
        if self.op == "Gather":
            what = f"gather (axis={self.axis}"
        else:
            what = f"gather_nd (batch_dims={self.b}, k={self.k}"
        return (
            f"{what}, slices as {self.vec}-element vectors, {self.per_thread} per thread, 2-D grid, "
            f"int{ib} indexing, indices clamped)"
        )


def _with_launch(sel: GatherSelection) -> GatherSelection:
    """The selection with the launch shape's slices per thread (for the plan's detail)."""
    _, (_, _, _, u) = gather_source(sel)
    return replace(sel, per_thread=u)


def _index_type(*shapes) -> str:
    if all_static(*shapes) and all(numel(s) <= INT32_LIMIT for s in shapes):
        return "int32"
    return "int64"


def _out_dtype_ok(n: NodeView, dtype) -> bool:
    return n.outputs[0]["dtype"] == dtype


def select_gather(n: NodeView) -> GatherSelection | Decline:
    ops = n.operands
    if len(ops) != 2 or ops[0].is_absent or ops[1].is_absent:
        return Decline("Gather arity")
    data, indices = ops
    dshape, dtype, qshape = data.shape, data.dtype, indices.shape
    if indices.dtype not in INDEX_DTYPES:
        return Decline(f"index dtype {indices.dtype}")
    if dtype not in dtypes.DTYPES:
        return Decline(f"dtype {dtype}")
    r = len(dshape)
    axis = int(n.attr("axis", 0))
    if r == 0 or not -r <= axis < r:
        return Decline("Gather axis")
    if not _out_dtype_ok(n, dtype):
        return Decline("output dtype")
    axis %= r
    oshape = dshape[:axis] + qshape + dshape[axis + 1 :]
    return _with_launch(
        GatherSelection(
            op="Gather",
            data=data,
            indices=indices,
            dtype=dtype,
            axis=axis,
            vec=vector_width(dtype, dshape[axis + 1 :]),
            ity=_index_type(dshape, qshape, oshape),
        )
    )


def select_gathernd(n: NodeView) -> GatherSelection | Decline:
    ops = n.operands
    if len(ops) != 2 or ops[0].is_absent or ops[1].is_absent:
        return Decline("GatherND arity")
    data, indices = ops
    dshape, dtype, qshape = data.shape, data.dtype, indices.shape
    if indices.dtype not in INDEX_DTYPES:
        return Decline(f"index dtype {indices.dtype}")
    if dtype not in dtypes.DTYPES:
        return Decline(f"dtype {dtype}")
    b = int(n.attr("batch_dims", 0))
    if not qshape or not isinstance(qshape[-1], int):
        return Decline("the last index dim must be static")
    k = qshape[-1]
    if b < 0 or k < 1 or b + k > len(dshape) or b >= len(qshape):
        return Decline("GatherND ranks")
    if not _out_dtype_ok(n, dtype):
        return Decline("output dtype")
    oshape = qshape[:-1] + dshape[b + k :]
    return _with_launch(
        GatherSelection(
            op="GatherND",
            data=data,
            indices=indices,
            dtype=dtype,
            b=b,
            k=k,
            vec=vector_width(dtype, dshape[b + k :]),
            ity=_index_type(dshape, qshape, oshape),
        )
    )


def gather_source(sel: GatherSelection, mode: str = "gpu"):
    """(TVMScript source, (T, TW, TS)) of the selection's kernel."""
    d, q = sel.data, sel.indices
    if sel.op == "Gather":
        a = sel.axis

        def odims(dd, qd):
            return dd[:a] + qd + dd[a + 1 :]

        def terms(dd, qd):
            return dd[:a] + qd, dd[a + 1 :]

        def offset(sv, dd, qd, s, ind):
            Q = s.prod(qd)
            qn = numel(qd) if all(isinstance(x, int) for x in qd) else None
            lines = []
            if not dd[:a]:
                qi, o = sv, None
            elif qn == 1:
                qi, o = s.c(0), sv
            else:
                qi, o = f"{sv} % {Q}", f"({sv} // {Q})"
            lines += wrap_clamp(f"idx_f[{qi}]", dd[a], s, ind, "x")
            row = "x" if o is None else f"({o} * {s.c(dd[a])} + x)"
            return lines, f"{row} * {s.prod(dd[a + 1 :])}"

        return slice_copy_source(
            "tpat_gather", sel.dtype, q.dtype, d.shape, q.shape, odims, terms, sel.vec, offset, mode, sel.ity
        )
    b, k = sel.b, sel.k

    def odims(dd, qd):
        return qd[:-1] + dd[b + k :]

    def terms(dd, qd):
        return qd[:-1], dd[b + k :]

    def offset(sv, dd, qd, s, ind):
        lines = []
        parts = []
        for j in range(k):
            lines += wrap_clamp(f"idx_f[{sv} * {s.c(k)} + {s.c(j)}]", dd[b + j], s, ind, f"x{j}")
            parts.append(f"x{j} * {s.prod(dd[b + j + 1 :])}")
        if b:
            per_batch = qd[b:-1]
            M = s.prod(per_batch)
            mn = numel(per_batch) if all(isinstance(x, int) for x in per_batch) else None
            bb = sv if mn == 1 else f"({sv} // {M})"
            parts.append(f"{bb} * {s.prod(dd[b:])}")
        return lines, "(" + " + ".join(parts) + ")"

    return slice_copy_source(
        "tpat_gather_nd", sel.dtype, q.dtype, d.shape, q.shape, odims, terms, sel.vec, offset, mode, sel.ity
    )


def emit(bb, params, sel: GatherSelection, mode="gpu"):
    """call_tir(TPAT PrimFunc, [data, indices]) into main's dataflow block."""
    src, _ = gather_source(sel, mode)
    func = parse_primfunc(src)
    name = "tpat_gather" if sel.op == "Gather" else "tpat_gather_nd"
    gv = bb.add_func(func, name)
    args = [relax_arg(params, o) for o in (sel.data, sel.indices)]
    dim = main_dims(params)
    ds, qs = sel.data.shape, sel.indices.shape
    if sel.op == "Gather":
        oshape = ds[: sel.axis] + qs + ds[sel.axis + 1 :]
    else:
        oshape = qs[:-1] + ds[sel.b + sel.k :]
    return bb.emit(relax.call_tir(gv, relax.Tuple(args), out_ty=relax.TensorType([dim(x) for x in oshape], sel.dtype)))


GATHER = FunctionLowering("gather", ["Gather"], select_gather, emit)
GATHER_ND = FunctionLowering("gather_nd", ["GatherND"], select_gathernd, emit)

"""TPAT's own TVM lowering of the ONNX reductions: ReduceMax, ReduceMin, ReduceSum, ReduceMean,
ReduceProd, ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum, ReduceLogSumExp.

TVM's legalization scheduled by dlight gives one thread (or one small block) per output element
and is catastrophically slow when few outputs each reduce many elements (627x PyTorch on axes
[1, 2] of (64, 512, 512)). Here the input is canonicalized: static size-1 dims are dropped,
adjacent reduced / kept dims merged, and each run of reduced dims becomes one pass over a view
(O outer, R reduced, I inner), innermost run first (a non-contiguous axes set, e.g. [0, 2], is
two passes; the intermediate lives in the plan's workspace, in the accumulator type). A pass is
one of two kernels:

- I == 1 (rows): a warp per row (short rows) or a block of 256/512 threads per row; 16-byte
  vector loads, UNROLL loads in flight per thread, a warp-shuffle tree (+ shared memory across
  the block's warps). When the rows are too few to fill the GPU, each row is cut into S segments,
  each a group of its own, writing a partial state; a second pass reduces the (O, S, 1) partials.
- I > 1 (columns): a block of 256 threads = CX lanes across the columns (16-byte vectors along
  I where I allows) x RY lanes along R, a shared-memory tree over RY; R cut across S blocks (and
  a second pass over (O, S, I) partials) when O x I is too small to fill the GPU.

No atomics: the result is deterministic (the same order every run). Arithmetic: float16 and
bfloat16 accumulate in float32, small ints in (u)int32, everything else in its own type;
ReduceLogSumExp keeps a (max, sum of exp(x - max)) pair (ONNX Runtime's stable form, one exp per
element), float64 for integer inputs. Max/Min propagate NaN (numpy, PyTorch; ONNX Runtime keeps a
NaN only when it is the first element). Empty reductions (a runtime 0 in a reduced dim) give
ONNX Runtime's values: Sum/L1/L2/SumSquare/Mean 0, Prod 1, Max -inf, Min +inf, LogSum and
LogSumExp -inf; integer Max/Min 0. `mode="cpu"` runs the same kernels with serial loops for the
blocks and threads (the loads and index arithmetic are the GPU's; the warp shuffles are replaced
by a serial combination) for the LLVM tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import tvm
from tvm import relax, te, tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .. import dtypes
from .ir import Threads, assign, ceil_div, dtype_of, i32, i64, shuffle_down
from .protocol import BadValue, Decline, Lowering, NodeView, Selection

# op -> (combine, map, finalize)
OPS = {
    "ReduceSum": ("sum", "id", "id"),
    "ReduceMean": ("sum", "id", "mean"),
    "ReduceMax": ("max", "id", "id"),
    "ReduceMin": ("min", "id", "id"),
    "ReduceProd": ("prod", "id", "id"),
    "ReduceL1": ("sum", "abs", "id"),
    "ReduceL2": ("sum", "sq", "sqrt"),
    "ReduceSumSquare": ("sum", "sq", "id"),
    "ReduceLogSum": ("sum", "id", "log"),
    "ReduceLogSumExp": ("lse", "id", "lse"),
}
INTS = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")
DTYPES = ("float32", "float16", "bfloat16", "float64") + INTS
# opset from which `axes` is an input (else an attribute)
AXES_INPUT_OPSET = {op: (13 if op == "ReduceSum" else 18) for op in OPS}

_ANALYZER = tvm.sym.analyzer.Analyzer()
UNROLL = 4  # vector loads in flight per thread and loop trip
SMS = 132  # H100 / H200 SXM
TARGET_THREADS = SMS * 2048  # threads that fill the GPU (2048 per SM)
MIN_LOADS = 8  # a segment of a split row / column gives each thread at least this many loads (2 trips)
MAX_SEGMENTS = 256
SPLIT_BYTES = 8 << 20  # passes reading less never split R (the second launch would cost more)
ROW_BLOCK = 256  # threads per block of the row kernel with warp groups, and of the column kernel
SYMBOLIC_OUTER = 16  # the outer size assumed when it is symbolic (for the split decision)
COL_BLOCKS_16BIT = 6  # blocks per SM of the column kernel on 16-bit inputs (see _col_blocks_per_sm)


def _col_blocks_per_sm(vec, elem):
    """Blocks of ROW_BLOCK threads per SM the column kernel fits, for the segment choice: 16-bit
    inputs (8-wide vectors: 8 float32 accumulators and 4 x 16 bytes loaded per thread) take 38
    registers, 6 blocks per SM (ncu, membw3-1: 960 blocks planned for 8 per SM ran as 1.21 waves,
    30.4 us; planned for 6 per SM, 768 blocks: 28.6 us, membw3-2; capping the registers at 32
    for 8 blocks per SM instead spilled and took 31.2 us); 8 otherwise (float32: 26 registers)."""
    return COL_BLOCKS_16BIT if elem == 2 and vec == 8 else 2048 // ROW_BLOCK


def _acc_dtype(dtype, kind, fin):
    if kind == "lse" and dtype in INTS:
        return "float64"
    if dtype in ("float16", "bfloat16"):
        return "float32"
    if dtype in ("int8", "int16"):
        return "int32"
    if dtype in ("uint8", "uint16"):
        return "uint32"
    return dtype


def _pow2ceil(n):
    p = 1
    while p < n:
        p *= 2
    return p


@dataclass(frozen=True)
class Size:
    """A product of the input's dims `dims` (indices) times `const`; `static`: its value or None."""

    dims: tuple
    const: int = 1
    static: int | None = None


@dataclass(frozen=True)
class Pass:
    """One reduction of (O, R, I) views: `kernel` "row" (I == 1) or "col"; `vec` elements per
    load; `g`: threads per row group (row) or column lanes CX (col); `s` segments of R (each its
    own group or blocks, writing partial states); `src` "x" or "state"; `dst` "out" or "state"."""

    o: Size
    r: Size
    i: Size
    kernel: str
    vec: int
    g: int
    s: int
    src: str
    dst: str


@dataclass(frozen=True)
class ReduceSelection(Selection):
    op: str
    kind: str  # sum / max / min / prod / lse
    mapf: str  # id / abs / sq
    fin: str  # id / mean / sqrt / log / lse
    dtype: str
    acc: str
    xshape: list
    axes: tuple  # normalized, sorted; () with noop: elementwise
    keepdims: bool
    noop: bool
    count: Size  # elements per output (ReduceMean's divisor)
    passes: list = field(default_factory=list)
    x_index: int = 0

    @property
    def nstate(self):
        return 2 if self.kind == "lse" else 1

    def describe(self) -> str:
        parts = []
        for p in self.passes:
            what = (
                ("warp" if p.g == 32 else f"{p.g} lane(s)" if p.g < 32 else f"block of {p.g}") + " per row"
                if p.kernel == "row"
                else f"columns: {p.g} lanes x {ROW_BLOCK // p.g} along R"
            )
            seg = f", R in {p.s} segments" if p.s > 1 else ""
            parts.append(
                f"(O={_fmt(p.o)}, R={_fmt(p.r)}, I={_fmt(p.i)}) {what}, {p.vec}-wide{seg}"
                + (" [partials]" if p.src == "state" else "")
            )
        ax = "noop" if self.noop else f"axes={list(self.axes)}"
        return f"reduce ({self.op}, {ax}, keepdims={int(self.keepdims)}, acc {self.acc}: " + "; ".join(parts) + ")"


def _fmt(s: Size):
    return str(s.static) if s.static is not None else "sym"


def _size(xshape, dims, const=1):
    st = const
    for d in dims:
        v = xshape[d]
        st = st * v if isinstance(v, int) and st is not None else None
    return Size(tuple(dims), const, st)


def _read_axes(node: NodeView, rank: int):
    """The axes (list of ints, possibly empty) or a Decline."""
    op = node.op_type
    ops = node.operands
    if node.opset(18) >= AXES_INPUT_OPSET[op]:
        if len(ops) > 2:
            return Decline(f"{op} arity")
        if len(ops) == 2 and not ops[1].is_absent:
            if not ops[1].is_const:
                return Decline("axes is a runtime input (only constant axes are lowered)")
            v = ops[1].value
            if v is None or v.ndim > 1 or v.dtype.kind not in "iu":
                raise BadValue(f"axes {ops[1].shape} {ops[1].dtype}: expected a 1-D int64 tensor")
            return [int(a) for a in v.reshape(-1).tolist()]
        return []
    if len(ops) != 1:
        return Decline(f"{op} arity")
    axes = node.attr("axes", [])
    if not all(isinstance(a, int) for a in axes):
        raise BadValue("axes must be ints")
    return list(axes)


def _segments(r, unit, smax, blocks_of, slots):
    """Segments S of R (whole multiples of `unit` elements each, every one non-empty): the smallest
    S <= smax whose grid fills the GPU's block slots in whole waves (>= 90 % of the last wave
    used), else the S of the best wave efficiency. blocks_of(S) = blocks launched."""

    def rounded(s):
        seg = -(-(-(-r // s)) // unit) * unit
        return -(-r // seg)

    best, best_eff = 1, 0.0
    for s0 in range(1, max(1, smax) + 1):
        s = rounded(s0)
        b = blocks_of(s)
        if b <= 0:  # an empty outer extent (a 0 dim): nothing to launch, any S does
            return s
        eff = b / (-(-b // slots) * slots)
        if eff >= 0.9:
            return s
        if eff > best_eff + 1e-9:
            best, best_eff = s, eff
    return best


def _row_plan(r_static, elem, o_static, split_ok=True):
    """(vec, G, S) of a row pass."""
    vec = 16 // elem
    while vec > 1 and (r_static is None or r_static % vec):
        vec //= 2
    nvec = -(-r_static // vec) if r_static is not None else 1 << 20
    # short rows: G = pow2ceil(vectors) lanes (a group per row inside a warp, no idle lanes)
    g = min(32, _pow2ceil(nvec)) if nvec <= 32 * 16 else 256 if nvec <= 256 * 32 else 512
    o = o_static if o_static is not None else SYMBOLIC_OUTER
    s = 1
    if split_ok and r_static is not None and 2 * o * g <= TARGET_THREADS:
        b = ROW_BLOCK if g <= 32 else g
        smax = min(max(1, nvec // (g * MIN_LOADS)), MAX_SEGMENTS)
        s = _segments(r_static, g * vec, smax, lambda s: -(-o * s // (b // g)), SMS * (2048 // b))
    return vec, g, s


def _col_plan(r_static, i_static, elem, o_static, split_ok=True):
    """(vec, CX, S) of a column pass: CX lanes over (o, column) pairs (at least a warp's worth of
    a row's columns when it has them), RY = 256 / CX lanes along R, no more than R needs."""
    vec = 16 // elem
    while vec > 1 and (i_static is None or i_static % vec):
        vec //= 2
    cols = i_static // vec if i_static is not None else 1 << 20
    cx = min(32, _pow2ceil(cols))
    ry = ROW_BLOCK // cx
    if r_static is not None:
        ry = max(1, min(ry, _pow2ceil(r_static)))
    cx = ROW_BLOCK // ry
    o = o_static if o_static is not None else SYMBOLIC_OUTER
    jblocks = -(-o * cols // cx)
    s = 1
    if split_ok and r_static is not None and 2 * jblocks * ROW_BLOCK <= TARGET_THREADS:
        smax = min(max(1, r_static // (ry * MIN_LOADS)), MAX_SEGMENTS)
        s = _segments(r_static, ry, smax, lambda s: jblocks * s, SMS * _col_blocks_per_sm(vec, elem))
    return vec, cx, s


def _passes(xshape, axes, dtype, acc):
    """The passes of the reduction (see the module docstring)."""
    rank = len(xshape)
    red = set(axes)
    groups = []  # [kind ("r"/"k"), [dims]]
    for d in range(rank):
        if xshape[d] == 1:
            continue
        kind = "r" if d in red else "k"
        if groups and groups[-1][0] == kind:
            groups[-1][1].append(d)
        else:
            groups.append([kind, [d]])
    passes = []
    src = "x"
    if not any(k == "r" for k, _ in groups):  # elementwise (noop, or only size-1 dims reduced)
        alld = [d for _, ds in groups for d in ds]
        o, r, i = _size(xshape, []), _size(xshape, []), _size(xshape, alld)
        vec, cx, s = _col_plan(1, i.static, dtypes.size(dtype), 1)
        return [Pass(o, r, i, "col", vec, cx, 1, src, "out")]
    while any(k == "r" for k, _ in groups):
        j = max(n for n, (k, _) in enumerate(groups) if k == "r")
        o = _size(xshape, [d for _, ds in groups[:j] for d in ds])
        r = _size(xshape, groups[j][1])
        i = _size(xshape, [d for _, ds in groups[j + 1 :] for d in ds])
        del groups[j]
        if 0 < j < len(groups) and groups[j - 1][0] == groups[j][0] == "k":
            groups[j - 1][1].extend(groups[j][1])
            del groups[j]
        last = not any(k == "r" for k, _ in groups)
        elem = dtypes.size(dtype if src == "x" else acc)
        sizes = [x.static for x in (o, r, i)]
        # a split costs a launch: only where the pass moves enough data to pay for it
        split_ok = None in sizes or sizes[0] * sizes[1] * sizes[2] * elem >= SPLIT_BYTES
        if i.static == 1:
            vec, g, s = _row_plan(r.static, elem, o.static, split_ok)
            kern = "row"
        else:
            vec, g, s = _col_plan(r.static, i.static, elem, o.static, split_ok)
            kern = "col"
        if s > 1:
            passes.append(Pass(o, r, i, kern, vec, g, s, src, "state"))
            rs = Size((), s, s)
            ae = dtypes.size(acc)
            if i.static == 1:
                v2, g2, _ = _row_plan(s, ae, o.static)
                passes.append(Pass(o, rs, i, "row", v2, g2, 1, "state", "out" if last else "state"))
            else:
                v2, g2, _ = _col_plan(s, i.static, ae, o.static)
                passes.append(Pass(o, rs, i, "col", v2, g2, 1, "state", "out" if last else "state"))
        else:
            passes.append(Pass(o, r, i, kern, vec, g, 1, src, "out" if last else "state"))
        src = "state"
    return passes


def select(node: NodeView) -> ReduceSelection | Decline:
    op = node.op_type
    ops = node.operands
    if not ops or not ops[0].is_param:
        return Decline(f"{op} needs a runtime data input")
    if len(node.outputs) != 1:
        return Decline(f"{op} has one output")
    xshape, dtype = ops[0].shape, ops[0].dtype
    if dtype not in DTYPES:
        return Decline(f"dtype {dtype}")
    if node.outputs[0]["dtype"] != dtype:
        return Decline(f"output dtype {node.outputs[0]['dtype']} differs from the input's {dtype}")
    rank = len(xshape)
    axes = _read_axes(node, rank)
    if isinstance(axes, Decline):
        return axes
    keepdims = int(node.attr("keepdims", 1))
    noop_flag = int(node.attr("noop_with_empty_axes", 0))
    if keepdims not in (0, 1) or noop_flag not in (0, 1):
        return Decline(f"keepdims={keepdims}, noop_with_empty_axes={noop_flag}: 0 or 1 expected")
    norm = []
    for a in axes:
        if not -rank <= a < max(rank, 1) or (rank == 0 and a not in (0, -1)):
            return Decline(f"axis {a} out of range for rank {rank}")
        norm.append(a % rank if rank else 0)
    if len(set(norm)) != len(norm):
        return Decline(f"axes {axes} repeat an axis")
    noop = not norm and bool(noop_flag)
    if not norm and not noop:
        norm = list(range(rank))
    norm = tuple(sorted(set(norm))) if rank else ()
    for d in xshape:
        if isinstance(d, int) and not 0 <= d < 2**31:
            return Decline(f"dim {d} (TPAT lowers dims below 2^31)")
    total = 1
    for d in xshape:
        if isinstance(d, int):
            total *= d
    if total >= 2**40:
        return Decline("more than 2^40 elements")
    kind, mapf, fin = OPS[op]
    acc = _acc_dtype(dtype, kind, fin)
    passes = _passes(xshape, norm, dtype, acc)
    return ReduceSelection(
        op=op,
        kind=kind,
        mapf=mapf,
        fin=fin,
        dtype=dtype,
        acc=acc,
        xshape=xshape,
        axes=norm,
        keepdims=bool(keepdims),
        noop=noop,
        count=_size(xshape, list(norm)),
        passes=passes,
        x_index=ops[0].index,
    )


# ------------------------------------------------------------------------------------------------
# arithmetic on states (tuples of 1 or 2 values of the accumulator type)
# ------------------------------------------------------------------------------------------------


class Algebra:
    def __init__(self, sel: ReduceSelection):
        self.sel, self.acc, self.kind = sel, sel.acc, sel.kind
        self.is_float = sel.acc.startswith("float")

    def c(self, v, dt=None):
        return tirx.const(v, dt or self.acc)

    def identity(self):
        k, a = self.kind, self.acc
        if k == "sum":
            return (self.c(0),)
        if k == "prod":
            return (self.c(1),)
        if k == "lse":
            return (self.c(float("-inf")), self.c(0))
        if self.is_float:
            return (self.c(float("-inf") if k == "max" else float("inf")),)
        return (tvm.tirx.min_value(a) if k == "max" else tvm.tirx.max_value(a),)

    def lift(self, x):
        """An element of the input type -> the accumulator type with the map applied."""
        v = x if dtype_of(x) == self.acc else tirx.Cast(self.acc, x)
        if self.sel.mapf == "abs":
            v = tirx.abs(v) if not self.acc.startswith("uint") else v
        elif self.sel.mapf == "sq":
            v = v * v
        return v

    def _max(self, a, b):
        if self.is_float:
            return tirx.Select(tirx.Or(a > b, tirx.isnan(a)), a, b)
        return tirx.max(a, b)

    def _min(self, a, b):
        if self.is_float:
            return tirx.Select(tirx.Or(a < b, tirx.isnan(a)), a, b)
        return tirx.min(a, b)

    def absorb(self, st, x):
        """State after one more input element x (input dtype)."""
        v = self.lift(x)
        k = self.kind
        if k == "sum":
            return (st[0] + v,)
        if k == "prod":
            return (st[0] * v,)
        if k == "max":
            return (self._max(st[0], v),)
        if k == "min":
            return (self._min(st[0], v),)
        m, s = st
        e = tirx.Select(v == m, self.c(1), tirx.exp(-tirx.abs(v - m)))
        up = v > m
        return (tirx.Select(up, v, m), tirx.Select(up, s * e + self.c(1), s + e))

    def combine(self, a, b):
        k = self.kind
        if k == "sum":
            return (a[0] + b[0],)
        if k == "prod":
            return (a[0] * b[0],)
        if k == "max":
            return (self._max(a[0], b[0]),)
        if k == "min":
            return (self._min(a[0], b[0]),)
        m = self._max(a[0], b[0])
        fa = tirx.Select(a[0] == m, self.c(1), tirx.exp(a[0] - m))
        fb = tirx.Select(b[0] == m, self.c(1), tirx.exp(b[0] - m))
        return (m, a[1] * fa + b[1] * fb)

    def finalize(self, st, count, odtype):
        """The output value (odtype) of a final state; count: elements reduced (int64)."""
        fin, acc = self.sel.fin, self.acc
        v = st[0]
        f64 = "float64"
        if fin == "mean":
            if self.is_float:
                v = tirx.Select(count > 0, v / tirx.Cast(acc, count), self.c(0))
            else:
                v = tirx.Select(count > 0, tirx.Div(st[0], tirx.Cast(acc, tirx.max(count, 1))), self.c(0))
        elif fin in ("sqrt", "log"):
            fn = tirx.sqrt if fin == "sqrt" else tirx.log
            v = fn(v) if self.is_float else fn(tirx.Cast(f64, v))
        elif fin == "lse":
            v = st[0] + tirx.log(st[1])
        elif self.kind in ("max", "min") and not self.is_float:
            v = tirx.Select(count > 0, v, self.c(0))
        return v if dtype_of(v) == odtype else tirx.Cast(odtype, v)


# ------------------------------------------------------------------------------------------------
# kernels
# ------------------------------------------------------------------------------------------------


def _row_ir(p: Pass, alg: Algebra, sizes, src, dst, count, odtype, mode):
    """I == 1: a group of G threads per (row, segment)."""
    O, R = sizes
    G, vec, S = p.g, p.vec, p.s
    n = alg.sel.nstate
    raw = p.src == "x"
    gpu = mode == "gpu"
    B = ROW_BLOCK if G <= 32 else G
    gpb = B // G
    step = G * vec
    if S > 1:
        L = -(-(-(-p.r.static // S)) // step) * step
        Lx = i64(L)
    else:
        Lx = R
    trips = ceil_div(Lx, step * UNROLL) if S == 1 else i64(-(-L // (step * UNROLL)))
    nblocks = ceil_div(O * i64(S), gpb)
    ident = alg.identity()
    with IRBuilder() as ib:
        th = Threads(mode, nblocks, B)
        with th as bx:
            srcs = [T.decl_buffer([O * R], b.dtype, data=b.data, elem_offset=0) for b in src]
            dsts = [
                T.decl_buffer([O * i64(S)] if p.dst == "state" else [O], b.dtype, data=b.data, elem_offset=0)
                for b in dst
            ]
            red = None if gpu else T.decl_buffer([n, B], alg.acc, scope="global")
            wred = T.decl_buffer([n, B // 32], alg.acc, scope="shared") if gpu and G > 32 else None
            accs = T.decl_buffer([n], alg.acc, scope="local") if gpu else None
            shf = T.decl_buffer([n], alg.acc, scope="local") if gpu else None

            def gidx(tx):
                t = tirx.Cast("int64", tx)
                gid = tirx.Cast("int64", bx) * i64(gpb) + t // i64(G)
                lane = t % i64(G)
                return gid // i64(S), gid % i64(S), lane

            def accumulate(tx):
                row, seg, lane = gidx(tx)
                acc = accs if gpu else T.decl_buffer([n], alg.acc, scope="global")
                for k in range(n):
                    T.buffer_store(acc, ident[k], [k])
                buf = T.decl_buffer([len(srcs), UNROLL * vec], srcs[0].dtype, scope="local" if gpu else "global")
                start = seg * Lx
                end = tirx.min(R, start + Lx)
                base = row * R
                ok = row < O
                with T.serial(0, trips) as k0:

                    def pos(u):
                        return start + (tirx.Cast("int64", k0) * i64(UNROLL) + i64(u)) * i64(step) + lane * i64(vec)

                    for u in range(UNROLL):
                        with T.If(tirx.And(ok, pos(u) < end)):
                            with T.Then():
                                for a, sb in enumerate(srcs):
                                    with T.vectorized(0, vec) as v:
                                        T.buffer_store(buf, sb[base + pos(u) + tirx.Cast("int64", v)], [a, u * vec + v])
                    for u in range(UNROLL):
                        with T.If(tirx.And(ok, pos(u) < end)):
                            with T.Then():
                                for v in range(vec):
                                    st = tuple(acc[k] for k in range(n))
                                    if raw:
                                        new = alg.absorb(st, buf[0, u * vec + v])
                                    else:
                                        new = alg.combine(st, tuple(buf[a, u * vec + v] for a in range(n)))
                                    assign(acc, new, lambda k: [k], gpu)
                if not gpu:
                    for k in range(n):
                        T.buffer_store(red, acc[k], [k, tirx.Cast("int32", tx)])

            def write(row, seg, st):
                with T.If(row < O):
                    with T.Then():
                        if p.dst == "state":
                            for k in range(n):
                                T.buffer_store(dsts[k], st[k], [row * i64(S) + seg])
                        else:
                            T.buffer_store(dsts[0], alg.finalize(st, count, odtype), [row])

            th.each_thread(accumulate)
            if gpu:
                tx = th.tx
                row, seg, lane = gidx(tx)
                for d in (16, 8, 4, 2, 1):
                    if d >= min(G, 32):
                        continue
                    st = tuple(accs[k] for k in range(n))
                    for k in range(n):
                        T.buffer_store(shf, shuffle_down(accs[k], d, min(G, 32)), [k])
                    new = alg.combine(st, tuple(shf[k] for k in range(n)))
                    assign(accs, new, lambda k: [k], gpu)
                w = tirx.Cast("int32", tx) // i32(32)
                l32 = tirx.Cast("int32", tx) % i32(32)
                if G <= 32:
                    with T.If(tirx.Cast("int32", lane) == i32(0)):
                        with T.Then():
                            write(row, seg, tuple(accs[k] for k in range(n)))
                else:
                    with T.If(l32 == i32(0)):
                        with T.Then():
                            for k in range(n):
                                T.buffer_store(wred, accs[k], [k, w])
                    th.barrier()
                    with T.If(w == i32(0)):
                        with T.Then():
                            for k in range(n):
                                T.buffer_store(
                                    accs,
                                    tirx.Select(l32 < i32(B // 32), wred[k, tirx.min(l32, i32(B // 32 - 1))], ident[k]),
                                    [k],
                                )
                            for d in (16, 8, 4, 2, 1):
                                if d >= B // 32:
                                    continue
                                st = tuple(accs[k] for k in range(n))
                                for k in range(n):
                                    T.buffer_store(shf, shuffle_down(accs[k], d), [k])
                                new = alg.combine(st, tuple(shf[k] for k in range(n)))
                                assign(accs, new, lambda k: [k], gpu)
                            with T.If(l32 == i32(0)):
                                with T.Then():
                                    write(row, seg, tuple(accs[k] for k in range(n)))
            else:
                with T.serial(0, gpb) as gq:
                    tx0 = gq * G
                    row, seg, _ = gidx(tx0)
                    tot = T.decl_buffer([n], alg.acc, scope="global")
                    for k in range(n):
                        T.buffer_store(tot, ident[k], [k])
                    with T.serial(0, G) as j:
                        new = alg.combine(tuple(tot[k] for k in range(n)), tuple(red[k, tx0 + j] for k in range(n)))
                        assign(tot, new, lambda k: [k], gpu)
                    write(row, seg, tuple(tot[k] for k in range(n)))
    return ib.get()


def _col_ir(p: Pass, alg: Algebra, sizes, src, dst, count, odtype, mode):
    """I > 1: blocks of CX lanes over the (o, vector column) pairs x RY lanes along R, per (block of
    CX pairs, segment); o and the column are split from the pair index once per thread."""
    O, R, I = sizes
    CX, vec, S = p.g, p.vec, p.s
    RY = ROW_BLOCK // CX
    n = alg.sel.nstate
    raw = p.src == "x"
    gpu = mode == "gpu"
    cols = I // i64(vec) if vec > 1 else I
    J = O * cols
    jblocks = ceil_div(J, CX)
    if S > 1:
        L = -(-(-(-p.r.static // S)) // RY) * RY
        Lx = i64(L)
        trips = i64(-(-L // (RY * UNROLL)))
    else:
        Lx = R
        trips = ceil_div(R, RY * UNROLL)
    nblocks = jblocks * i64(S)
    ident = alg.identity()
    W = CX * vec
    with IRBuilder() as ib:
        th = Threads(mode, nblocks, ROW_BLOCK)
        with th as bx:
            srcs = [T.decl_buffer([O * R * I], b.dtype, data=b.data, elem_offset=0) for b in src]
            dsts = [
                T.decl_buffer([O * i64(S) * I] if p.dst == "state" else [O * I], b.dtype, data=b.data, elem_offset=0)
                for b in dst
            ]
            # ping-pong buffers of the tree over RY: a step reads one, writes the other (no hazard
            # inside a step, so the only barriers are the ones between steps)
            reds = [T.decl_buffer([n, RY, W], alg.acc, scope="shared" if gpu else "global") for _ in range(2)]
            red = reds[0]
            b64 = tirx.Cast("int64", bx)
            seg = b64 % i64(S)
            jb = b64 // i64(S)

            def lanes(tx):
                t32 = tirx.Cast("int32", tx)
                return t32 % i32(CX), t32 // i32(CX)

            def pair(cx):
                """(o, vector column, valid) of lane cx."""
                j = jb * i64(CX) + tirx.Cast("int64", cx)
                return j // cols, j % cols, j < J

            def accumulate(tx):
                cx, ry = lanes(tx)
                o, c, okj = pair(cx)
                acc = T.decl_buffer([n, vec], alg.acc, scope="local" if gpu else "global")
                for k in range(n):
                    with T.unroll(0, vec) as v:
                        T.buffer_store(acc, ident[k], [k, v])
                buf = T.decl_buffer([len(srcs), UNROLL * vec], srcs[0].dtype, scope="local" if gpu else "global")
                start = seg * Lx
                end = tirx.min(R, start + Lx)
                ok = okj
                col0 = c * i64(vec)

                with T.serial(0, trips) as k0:

                    def r_of(u):
                        return (
                            start + (tirx.Cast("int64", k0) * i64(UNROLL) + i64(u)) * i64(RY) + tirx.Cast("int64", ry)
                        )

                    for u in range(UNROLL):
                        with T.If(tirx.And(ok, r_of(u) < end)):
                            with T.Then():
                                off = (o * R + r_of(u)) * I + col0
                                for a, sb in enumerate(srcs):
                                    with T.vectorized(0, vec) as v:
                                        T.buffer_store(buf, sb[off + tirx.Cast("int64", v)], [a, u * vec + v])
                    for u in range(UNROLL):
                        with T.If(tirx.And(ok, r_of(u) < end)):
                            with T.Then():
                                for v in range(vec):
                                    st = tuple(acc[k, v] for k in range(n))
                                    if raw:
                                        new = alg.absorb(st, buf[0, u * vec + v])
                                    else:
                                        new = alg.combine(st, tuple(buf[a, u * vec + v] for a in range(n)))
                                    assign(acc, new, lambda k, v=v: [k, v], gpu)
                for k in range(n):
                    with T.unroll(0, vec) as v:
                        T.buffer_store(red, acc[k, v], [k, ry, cx * i32(vec) + v])

            th.each_thread(accumulate)
            th.barrier()
            half, cur = RY // 2, 0
            while half >= 1:

                def step(tx, half=half, src=reds[cur], dst=reds[1 - cur]):
                    cx, ry = lanes(tx)
                    with T.If(ry < i32(half)):
                        with T.Then():
                            for v in range(vec):
                                col = cx * i32(vec) + i32(v)
                                new = alg.combine(
                                    tuple(src[k, ry, col] for k in range(n)),
                                    tuple(src[k, ry + i32(half), col] for k in range(n)),
                                )
                                for k in range(n):
                                    T.buffer_store(dst, new[k], [k, ry, col])

                th.each_thread(step)
                th.barrier()
                half //= 2
                cur = 1 - cur
            red = reds[cur]

            def write(tx):
                cx, ry = lanes(tx)
                o, c, okj = pair(cx)
                with T.If(tirx.And(ry == i32(0), okj)):
                    with T.Then():
                        with T.unroll(0, vec) as v:
                            col = cx * i32(vec) + v
                            st = tuple(red[k, 0, col] for k in range(n))
                            gc = c * i64(vec) + tirx.Cast("int64", v)
                            if p.dst == "state":
                                for k in range(n):
                                    T.buffer_store(dsts[k], st[k], [(o * i64(S) + seg) * I + gc])
                            else:
                                T.buffer_store(dsts[0], alg.finalize(st, count, odtype), [o * I + gc])

            th.each_thread(write)
    return ib.get()


def _size_expr(shape, s: Size):
    v = i64(s.const)
    for d in s.dims:
        v = v * (tirx.Cast("int64", shape[d]) if dtype_of(shape[d]) != "int64" else shape[d])
    return _ANALYZER.simplify(v)


def out_shape(sel: ReduceSelection, shape):
    if sel.noop:
        return list(shape)
    if sel.keepdims:
        return [1 if d in sel.axes else s for d, s in enumerate(shape)]
    return [s for d, s in enumerate(shape) if d not in sel.axes]


def emit(bb, params, sel: ReduceSelection, mode="gpu"):
    alg = Algebra(sel)
    n = sel.nstate
    name = "tpat_reduce"

    def stage(xt):
        shape = list(xt.shape)
        oshape = out_shape(sel, shape)
        count = _size_expr(shape, sel.count)
        # workspace: the state arrays of every pass that writes states
        ws_shapes, ws_of = [], []
        for p in sel.passes:
            if p.dst == "state":
                size = _size_expr(shape, p.o) * i64(p.s) * _size_expr(shape, p.i)
                ws_of.append(list(range(1 + len(ws_shapes), 1 + len(ws_shapes) + n)))
                ws_shapes += [[size]] * n
            else:
                ws_of.append(None)

        def body(ins, outs):
            stmts = []
            src = [ins[0]]
            for p, ws in zip(sel.passes, ws_of):
                dst = [outs[j] for j in ws] if ws is not None else [outs[0]]
                if p.kernel == "row":
                    sizes = (_size_expr(shape, p.o), _size_expr(shape, p.r))
                    stmts.append(_row_ir(p, alg, sizes, src, dst, count, sel.dtype, mode))
                else:
                    sizes = (_size_expr(shape, p.o), _size_expr(shape, p.r), _size_expr(shape, p.i))
                    stmts.append(_col_ir(p, alg, sizes, src, dst, count, sel.dtype, mode))
                src = dst
            return tirx.SeqStmt(stmts) if len(stmts) > 1 else stmts[0]

        shapes = [oshape] + ws_shapes
        dts = [sel.dtype] + [sel.acc] * len(ws_shapes)
        xb = tirx.decl_buffer(xt.shape, xt.dtype, name="x", elem_offset=0)
        obufs = [tirx.decl_buffer(s, dt, name=f"o{k}", elem_offset=0) for k, (s, dt) in enumerate(zip(shapes, dts))]
        return te.extern(shapes, [xt], body, dtype=dts, name=name, in_buffers=[xb], out_buffers=obufs)

    res = bb.emit_te(stage, params[sel.x_index], primfunc_name_hint=name)
    if any(p.dst == "state" for p in sel.passes):
        return bb.emit(relax.TupleGetItem(res, 0))
    return res


class ReduceLowering(Lowering):
    name = "reduce"
    ops = tuple(OPS)

    def select(self, node):
        return select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)


REDUCE = ReduceLowering()

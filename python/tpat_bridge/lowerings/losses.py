"""TPAT's own lowering of the ONNX loss ops NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss
(opset 12/13): TVM 0.27 has no importer for them.

Input x (N, C, d...), target (N, d...), optional weight (C); a "pixel" is one (n, d...) position,
P = N * prod(d) of them. Per pixel, with t its target:

    valid = t != ignore_index and 0 <= t < C;  w = valid ? (weight[t] or 1) : 0
    logp  = x                                      (NegativeLogLikelihoodLoss)
          = x - (max_c x + log sum_c exp(x - max))  (SoftmaxCrossEntropyLoss; its optional 2nd output)
    loss  = valid ? -logp[t] * w : 0               reduction none: (N, d...)
          sum(loss), or sum(loss) / sum(w)         reduction sum / mean: a scalar

Kernels (TIR written with TVM's IR builder, one te.extern stage):
- "row" form (SoftmaxCrossEntropyLoss with C >= ROW_MIN_C, static trailing dims and, beyond 2-D,
  few pixels): one block per pixel; its threads read the C scores once (16-byte vector loads when
  the class axis is contiguous, UNROLL in flight), each keeping an online (max, sum of exp(x - max))
  pair (one exp per element), combined by a shared-memory tree; thread 0 reads x[t]. log_prob, when
  used, is a second pass over the row.
- "pixel" form (every other case, all NegativeLogLikelihoodLoss): one thread per pixel, coalesced
  over the pixel axis: NLL reads the target, weight[t] and one log-probability; the softmax form
  walks the C scores of its pixel (stride prod(d), coalesced across the threads) with the same
  online pair.
- sum / mean: the first kernel leaves one (loss, weight) partial per row or per block of pixels
  (a shared-memory tree inside the block), a second kernel of one block sums them in a fixed order
  and divides: deterministic, no atomics.

float16/bfloat16 are computed in float32 (float64 in float64) and rounded once. A target outside
[0, C) that is not ignore_index is an error in ONNX (ONNX Runtime refuses it at run time); here it
counts as ignored (weight 0), so the plugin never reads outside its input. `mean` divides by the
summed weights of the targets kept, as ONNX Runtime does (ONNX's reference divides by the element
count when ignore_index is -1 and there is no weight input: a quirk of `elif ignore_index != -1`,
not followed). The class axis C must be static; every other dim may be symbolic. `mode="cpu"` runs
the same kernels with serial loops for blocks and threads (the LLVM tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tvm
from tvm import relax, te, tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .. import dtypes
from .ir import Threads, relax_arg
from .protocol import Decline, Lowering, NodeView, Selection

FLOATS = ("float32", "float16", "bfloat16", "float64")
REDUCTIONS = ("none", "sum", "mean")
THREADS = 256  # threads per block of the first kernel
FEW_PIXELS = 132  # the row form's pixels (static) up to which its blocks take BIG_THREADS threads
BIG_THREADS = 1024
RED_THREADS = 1024  # the one block of the final sum
UNROLL = 4  # vector loads in flight per thread in the row form
ROW_MIN_C = 256  # the row form needs at least this many classes
ROW_MAX_PIXELS = 16384  # beyond 2-D (strided classes), the row form only up to this many pixels


@dataclass(frozen=True)
class LossSelection(Selection):
    softmax: bool  # SoftmaxCrossEntropyLoss (log_softmax first)
    dtype: str
    classes: int
    reduction: str
    ignore_index: int | None
    x: object  # Operand
    target: object
    weight: object | None
    log_prob: bool  # the log_prob output is used
    form: str = "pixel"  # "row": a block per pixel; "pixel": a thread per pixel
    vec: int = 1  # elements per vector load in the row form
    threads: int = THREADS

    @property
    def acc(self) -> str:
        return "float64" if self.dtype == "float64" else "float32"

    def describe(self) -> str:
        op = "softmax_cross_entropy" if self.softmax else "nll"
        ii = "" if self.ignore_index is None else f", ignore_index={self.ignore_index}"
        w = ", weighted" if self.weight is not None else ""
        how = (
            f"block of {self.threads} per pixel, {self.vec}-element loads" if self.form == "row" else "thread per pixel"
        )
        return f"loss ({op}, reduction={self.reduction}, C={self.classes}{w}{ii}; {how})"


def select(node: NodeView) -> LossSelection | Decline:
    ops = node.operands
    softmax = node.op_type == "SoftmaxCrossEntropyLoss"
    if len(ops) not in (2, 3) or not 1 <= len(node.outputs) <= (2 if softmax else 1):
        return Decline(f"{node.op_type} arity")
    x, t = ops[0], ops[1]
    w = ops[2] if len(ops) == 3 and not ops[2].is_absent else None
    if not x.is_param or not t.is_param:
        return Decline("constant scores/target (a graph input is expected)")
    if x.dtype not in FLOATS or any(o["dtype"] != x.dtype for o in node.outputs):
        return Decline(f"dtype {x.dtype}")
    if t.dtype not in ("int32", "int64"):
        return Decline(f"target dtype {t.dtype}")
    if len(x.shape) < 2 or len(t.shape) != len(x.shape) - 1:
        return Decline(f"input rank {len(x.shape)}, target rank {len(t.shape)} (expected (N, C, d...) and (N, d...))")
    c = x.shape[1]
    if not isinstance(c, int) or not 0 < c < 2**31:
        return Decline(f"class dim {c} (must be static)")
    if w is not None and (w.dtype != x.dtype or w.shape != [c]):
        return Decline(f"weight {w.dtype} {w.shape} (expected {x.dtype} [{c}])")
    reduction = node.attr("reduction", "mean")
    if reduction not in REDUCTIONS:
        return Decline(f"reduction {reduction}")
    ii = None
    if any(a.name == "ignore_index" for a in node.node.attribute):
        ii = node.attr("ignore_index", 0)
        if not -(2**63) <= ii < 2**63:
            return Decline(f"ignore_index {ii}")
    form, vec, threads = "pixel", 1, THREADS
    rest = x.shape[2:]
    if softmax and c >= ROW_MIN_C and all(isinstance(d, int) for d in rest):
        dd = math.prod(rest)
        pixels = x.shape[0] * dd if isinstance(x.shape[0], int) else None
        if dd == 1 or (pixels is not None and pixels <= ROW_MAX_PIXELS):
            form = "row"
            if dd == 1:
                vec = 16 // dtypes.size(x.dtype)
                while c % vec:
                    vec //= 2
            if pixels is not None and pixels <= FEW_PIXELS:
                threads = BIG_THREADS
    return LossSelection(
        form=form,
        vec=vec,
        threads=threads,
        softmax=softmax,
        dtype=x.dtype,
        classes=c,
        reduction=reduction,
        ignore_index=ii,
        x=x,
        target=t,
        weight=w,
        log_prob=len(node.outputs) == 2,
    )


def _i64(v):
    return tirx.const(v, "int64")


def _dt(e):
    return str(e.ty)


def _as64(d):
    """A dim as an int64 expression."""
    if isinstance(d, int):
        return _i64(d)
    return d if str(d.ty) == "int64" else tirx.Cast("int64", d)


_ANALYZER = tvm.sym.analyzer.Analyzer()


def _var(t):
    """A thread or block index as an expression (the GPU's IterVar, or the CPU's loop var)."""
    return t.var if hasattr(t, "var") else t


def _each(th, body):
    """th.each_thread with the thread index as an expression."""
    th.each_thread(lambda tx: body(_var(tx)))


class _Math:
    """The arithmetic of one selection: accumulator constants, the online (max, sum) pair."""

    def __init__(self, sel):
        self.sel, self.acc = sel, sel.acc

    def c(self, v):
        return tirx.const(v, self.acc)

    def lift(self, v):
        return v if _dt(v) == self.acc else tirx.Cast(self.acc, v)

    def out(self, v):
        return v if self.sel.dtype == self.acc else tirx.Cast(self.sel.dtype, v)

    def lowest(self):
        # the running max starts at the lowest finite value, not -inf: exp(-inf - -inf) never occurs
        return tirx.min_value(self.acc)

    def absorb(self, st, v):
        """st (a 2-element buffer: max, sum of exp(x - max)) takes the element v: one exp."""
        m, s = st[0], st[1]
        e = tirx.Select(v == m, self.c(1), tirx.exp(-tirx.abs(v - m)))
        T.buffer_store(st, tirx.Select(v > m, s * e + self.c(1), s + e), [1])
        T.buffer_store(st, tirx.max(m, v), [0])

    def combine(self, m1, s1, m2, s2):
        """(max, sum) of two pairs."""
        m = tirx.max(m1, m2)
        e1 = tirx.Select(m1 == m, self.c(1), tirx.exp(m1 - m))
        e2 = tirx.Select(m2 == m, self.c(1), tirx.exp(m2 - m))
        return m, s1 * e1 + s2 * e2

    def picked(self, tgt, wt):
        """(valid, clipped target as int64, weight as acc) of a target value."""
        sel = self.sel
        t = tirx.Cast("int64", tgt)
        valid = tirx.all(t >= _i64(0), t < _i64(sel.classes))
        if sel.ignore_index is not None:
            valid = tirx.all(valid, t != _i64(sel.ignore_index))
        tc = tirx.max(tirx.min(t, _i64(sel.classes - 1)), _i64(0))
        w = self.lift(wt[tc]) if wt is not None else self.c(1)
        return valid, tc, tirx.Select(valid, w, self.c(0))


def _reds(B, acc, gpu):
    """The two [2, B] buffers of a tree (shared on the GPU): each step reads one, writes the other."""
    return [T.decl_buffer([2, B], acc, scope="shared" if gpu else "global") for _ in range(2)]


def _tree(th, reds, nthreads, combine):
    """A shared-memory tree over reds[0][k, 0..nthreads) (ping-pong between the two buffers, a
    barrier after every step); returns the buffer whose [k, 0] holds the block's result. A fixed
    order: deterministic."""
    th.barrier()
    half, cur = nthreads // 2, 0
    while half >= 1:

        def step(tx, half=half, src=reds[cur], dst=reds[1 - cur]):
            with T.If(tx < half):
                with T.Then():
                    new = combine(src, tx, tx + half)
                    for k, v in enumerate(new):
                        T.buffer_store(dst, v, [k, tx])

        _each(th, step)
        th.barrier()
        half //= 2
        cur = 1 - cur
    return reds[cur]


def _views(sel, P, C, ins, outs, nparts):
    """Flat views of the operands (scores x, targets, optional weights) and outputs (loss, optional
    log_prob, then the per-part (loss, weight) partials of sum/mean: nparts each, or None)."""

    def view(t, n):
        return T.decl_buffer([n], t.dtype, data=t.data, elem_offset=0)

    x, tg = view(ins[0], P * _i64(C)), view(ins[1], P)
    wt = view(ins[2], C) if len(ins) > 2 else None
    out = view(outs[0], P if sel.reduction == "none" else 1)
    lp = view(outs[1], P * _i64(C)) if sel.log_prob else None
    ws = outs[2:] if sel.log_prob else outs[1:]
    ploss, pw = [view(b, nparts) for b in ws] if ws else (None, None)
    return x, tg, wt, out, lp, ploss, pw


def _write_pixel(sel, mth, p, logp_t, valid, w, out, ploss, pw):
    """The loss of pixel p (reduction none), else its (loss, weight) into the partial buffers."""
    loss = tirx.Select(valid, -logp_t * w, mth.c(0))
    if sel.reduction == "none":
        T.buffer_store(out, mth.out(loss), [p])
    else:
        T.buffer_store(ploss, loss, [p])
        T.buffer_store(pw, w, [p])


def _row_ir(sel, N, D, ins, outs, mode):
    """Row form: one block of sel.threads per pixel, its C scores read once (vectors of sel.vec)."""
    gpu = mode == "gpu"
    mth = _Math(sel)
    C, V, B = sel.classes, sel.vec, sel.threads
    P = N * D if D is not None else N
    nvec = C // V
    trips = -(-nvec // (B * UNROLL))
    with IRBuilder() as ib:
        th = Threads(mode, P, B)
        with th as bx:
            bx = _var(bx)
            x, tg, wt, out, lp, ploss, pw = _views(sel, P, C, ins, outs, P)
            reds = _reds(B, mth.acc, gpu)
            red = reds[0]
            row = tirx.Cast("int64", bx)
            base = (row // D) * _i64(C) * D + row % D if D is not None else row * _i64(C)
            dd = D if D is not None else _i64(1)

            def elem(j, v):
                """The flat index of element v of vector j of the row."""
                return base + (j * _i64(V) + _i64(v)) * dd if V == 1 else base + j * _i64(V) + _i64(v)

            def each_vector(tx, body):
                """body(buf, u, j) for the thread's vectors, UNROLL loads in flight."""
                buf = T.decl_buffer([UNROLL * V], ins[0].dtype, scope="local" if gpu else "global")
                with T.serial(0, trips) as k0:
                    js = [
                        (tirx.Cast("int64", k0) * _i64(UNROLL) + _i64(u)) * _i64(B) + tirx.Cast("int64", tx)
                        for u in range(UNROLL)
                    ]
                    for u in range(UNROLL):
                        with T.If(js[u] < _i64(nvec)):
                            with T.Then():
                                with T.vectorized(0, V) as v:
                                    T.buffer_store(
                                        buf,
                                        x[elem(js[u], 0) + tirx.Cast("int64", v) * (dd if V == 1 else _i64(1))],
                                        [u * V + v],
                                    )
                    for u in range(UNROLL):
                        with T.If(js[u] < _i64(nvec)):
                            with T.Then():
                                body(buf, u, js[u])

            def accumulate(tx):
                st = T.decl_buffer([2], mth.acc, scope="local" if gpu else "global")
                T.buffer_store(st, mth.lowest(), [0])
                T.buffer_store(st, mth.c(0), [1])

                def body(buf, u, j):
                    for v in range(V):
                        mth.absorb(st, mth.lift(buf[u * V + v]))

                each_vector(tx, body)
                T.buffer_store(red, st[0], [0, tx])
                T.buffer_store(red, st[1], [1, tx])

            _each(th, accumulate)
            red = _tree(th, reds, B, lambda r, a, b: mth.combine(r[0, a], r[1, a], r[0, b], r[1, b]))

            def lse():
                return red[0, 0] + tirx.log(red[1, 0])

            def finish(tx):
                with T.If(tx == 0):
                    with T.Then():
                        valid, tc, w = mth.picked(tg[row], wt)
                        xt = mth.lift(x[base + tc * dd])
                        _write_pixel(sel, mth, row, xt - lse(), valid, w, out, ploss, pw)

            _each(th, finish)
            if sel.log_prob:

                def write_logp(tx):
                    def body(buf, u, j):
                        with T.vectorized(0, V) as v:
                            T.buffer_store(
                                lp,
                                mth.out(mth.lift(buf[u * V + v]) - lse()),
                                [elem(j, 0) + tirx.Cast("int64", v) * (dd if V == 1 else _i64(1))],
                            )

                    each_vector(tx, body)

                _each(th, write_logp)
    return ib.get()


def _pixel_ir(sel, N, D, ins, outs, mode):
    """Pixel form: one thread per pixel; the block's (loss, weight) sums left as one partial."""
    gpu = mode == "gpu"
    mth = _Math(sel)
    C, B = sel.classes, THREADS
    P = N * D
    nblocks = (P + _i64(B - 1)) // _i64(B)
    with IRBuilder() as ib:
        th = Threads(mode, nblocks, B)
        with th as bx:
            bx = _var(bx)
            x, tg, wt, out, lp, ploss, pw = _views(sel, P, C, ins, outs, nblocks)
            reds = _reds(B, mth.acc, gpu) if ploss is not None else None
            red = reds[0] if ploss is not None else None

            def pixel(tx):
                p = tirx.Cast("int64", bx) * _i64(B) + tirx.Cast("int64", tx)
                ok = p < P
                base = (p // D) * _i64(C) * D + p % D
                lw = T.decl_buffer([2], mth.acc, scope="local" if gpu else "global")
                T.buffer_store(lw, mth.c(0), [0])
                T.buffer_store(lw, mth.c(0), [1])
                with T.If(ok):
                    with T.Then():
                        valid, tc, w = mth.picked(tg[p], wt)
                        xt = mth.lift(x[base + tc * D])
                        if sel.softmax:
                            st = T.decl_buffer([2], mth.acc, scope="local" if gpu else "global")
                            T.buffer_store(st, mth.lowest(), [0])
                            T.buffer_store(st, mth.c(0), [1])
                            with T.serial(0, C) as c:
                                mth.absorb(st, mth.lift(x[base + tirx.Cast("int64", c) * D]))
                            lse = st[0] + tirx.log(st[1])
                            if sel.log_prob:
                                with T.serial(0, C) as c:
                                    k = base + tirx.Cast("int64", c) * D
                                    T.buffer_store(lp, mth.out(mth.lift(x[k]) - lse), [k])
                            xt = xt - lse
                        if sel.reduction == "none":
                            _write_pixel(sel, mth, p, xt, valid, w, out, None, None)
                        else:
                            T.buffer_store(lw, tirx.Select(valid, -xt * w, mth.c(0)), [0])
                            T.buffer_store(lw, w, [1])
                if ploss is not None:
                    T.buffer_store(red, lw[0], [0, tx])
                    T.buffer_store(red, lw[1], [1, tx])

            _each(th, pixel)
            if ploss is not None:
                red = _tree(th, reds, B, lambda r, a, b: (r[0, a] + r[0, b], r[1, a] + r[1, b]))

                def partial(tx):
                    with T.If(tx == 0):
                        with T.Then():
                            T.buffer_store(ploss, red[0, 0], [bx])
                            T.buffer_store(pw, red[1, 0], [bx])

                _each(th, partial)
    return ib.get()


def _final_ir(sel, nparts, outs, mode):
    """One block: the partials summed in a fixed order; sum, or sum / summed weights."""
    gpu = mode == "gpu"
    mth = _Math(sel)
    B = RED_THREADS
    trips = (nparts + _i64(B - 1)) // _i64(B)
    ws = outs[2:] if sel.log_prob else outs[1:]
    with IRBuilder() as ib:
        th = Threads(mode, 1, B)
        with th:
            out = T.decl_buffer([1], outs[0].dtype, data=outs[0].data, elem_offset=0)
            ploss, pw = [T.decl_buffer([nparts], b.dtype, data=b.data, elem_offset=0) for b in ws]
            reds = _reds(B, mth.acc, gpu)
            red = reds[0]

            def gather(tx):
                acc = T.decl_buffer([2], mth.acc, scope="local" if gpu else "global")
                T.buffer_store(acc, mth.c(0), [0])
                T.buffer_store(acc, mth.c(0), [1])
                with T.serial(0, trips) as k:
                    j = tirx.Cast("int64", k) * _i64(B) + tirx.Cast("int64", tx)
                    with T.If(j < nparts):
                        with T.Then():
                            T.buffer_store(acc, acc[0] + ploss[j], [0])
                            T.buffer_store(acc, acc[1] + pw[j], [1])
                T.buffer_store(red, acc[0], [0, tx])
                T.buffer_store(red, acc[1], [1, tx])

            _each(th, gather)
            red = _tree(th, reds, B, lambda r, a, b: (r[0, a] + r[0, b], r[1, a] + r[1, b]))

            def finish(tx):
                with T.If(tx == 0):
                    with T.Then():
                        v = red[0, 0] if sel.reduction == "sum" else red[0, 0] / red[1, 0]
                        T.buffer_store(out, mth.out(v), [0])

            _each(th, finish)
    return ib.get()


PRIMFUNC = "tpat_loss"


def emit(bb, params, sel, mode="gpu"):
    args = [relax_arg(params, sel.x), relax_arg(params, sel.target)]
    if sel.weight is not None:
        args.append(relax_arg(params, sel.weight))

    def stage(*ts):
        xs = list(ts[0].shape)
        N = _as64(xs[0])
        D = _i64(1)
        for d in xs[2:]:
            D = _ANALYZER.simplify(D * _as64(d))
        P = _ANALYZER.simplify(N * D)
        shapes = [[xs[0], *xs[2:]] if sel.reduction == "none" else []]
        dts = [sel.dtype]
        if sel.log_prob:
            shapes.append(xs)
            dts.append(sel.dtype)
        if sel.reduction != "none":
            nparts = P if sel.form == "row" else _ANALYZER.simplify((P + _i64(THREADS - 1)) // _i64(THREADS))
            shapes += [[nparts], [nparts]]
            dts += [sel.acc, sel.acc]

        def body(ins, outs):
            ins, outs = list(ins), list(outs)
            if sel.form == "row":
                first = _row_ir(sel, N, None if len(xs) == 2 else D, ins, outs, mode)
            else:
                first = _pixel_ir(sel, N, D, ins, outs, mode)
            if sel.reduction == "none":
                return first
            return tirx.SeqStmt([first, _final_ir(sel, nparts, outs, mode)])

        bufs = [tirx.decl_buffer(t.shape, t.dtype, name=f"b{k}", elem_offset=0) for k, t in enumerate(ts)]
        obufs = [tirx.decl_buffer(s_, dt, name=f"o{k}", elem_offset=0) for k, (s_, dt) in enumerate(zip(shapes, dts))]
        return te.extern(shapes, list(ts), body, dtype=dts, name=PRIMFUNC, in_buffers=bufs, out_buffers=obufs)

    res = bb.emit_te(stage, *args, primfunc_name_hint=PRIMFUNC)
    nout = 2 if sel.log_prob else 1
    if nout == 1 and sel.reduction == "none":
        return res
    items = [bb.emit(relax.TupleGetItem(res, k)) for k in range(nout)]
    return items[0] if nout == 1 else relax.Tuple(items)


class LossLowering(Lowering):
    name = "loss"
    ops = ("NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss")

    def select(self, node):
        return select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)


LOSS = LossLowering()

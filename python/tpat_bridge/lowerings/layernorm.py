"""TPAT's own TVM lowering of ONNX LayerNormalization (Y, Mean, InvStdDev; any axis): a warp per row.

TVM's legalization scheduled by dlight reads the row three times with 2-byte loads (fp16) and
reduces across a 256-thread block, and TVM 0.27 returns a scalar placeholder for Mean/InvStdDev.
Here the tensor is seen as (rows, N) with rows = prod(X.shape[:axis]) and N = prod(X.shape[axis:])
(flat views of the same buffers), and a warp owns a row, keeping it in registers (rows where a
lane would keep more than LANE_ELEMS elements get 2, 4 or 8 warps: the warps' partial sums meet in
shared memory behind a barrier, so each lane keeps at most LANE_ELEMS elements and the SM keeps
enough warps resident to hide DRAM latency):

  1. each lane loads its ceil(N/32) elements with up to 16-byte vector loads (8 x fp16 / 4 x fp32),
     guarded (zero-filled) when N is not a multiple of 32 x vector width;
  2. mean: per-lane float32 sum, warp shuffle reduction (`tvm_warp_shuffle_down`), broadcast;
  3. variance: the same over (x - mean)^2 from registers (two-pass, in float32 = stash_type 1);
  4. y = (x - mean) * rsqrt(var + epsilon) * scale + bias, vector stores; lane 0 writes Mean and
     InvStdDev (float32, shape X.shape[:axis] + [1] * (rank - axis)) when the node uses them.

Scale and B may have N elements (vector loads) or any shape broadcastable to X.shape[axis:] (one
element at a time through a static index map). RMSNormalization (rmsnorm.py) is the same
kernel with `rms` set: no mean, y = x * rsqrt(mean(x^2) + epsilon) * scale.

Blocks hold 8 warps (8 / group rows). Everything is TIR written with TVM's IR builder inside a
`te.extern` stage and goes through TVM's pipeline and CUDA codegen; `mode="cpu"` runs the same
formulas with serial loops (no shuffles) for the LLVM tests. N > MAX_N: `_block_norm_ir`, a block
per row (its IR runs on the CPU as well). Lowered when: N is static, Scale/B are static-shaped and broadcastable to X.shape[axis:], stash_type is 1, float16 /
bfloat16 / float32. Leading dimensions (rows) may be symbolic.
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm import te, tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .. import dtypes
from .ir import Threads, relax_arg
from .protocol import Decline, Lowering, NodeView, Selection

DTYPES = dtypes.sizes(*dtypes.FLOATS)
WARPS_PER_BLOCK = 8
MAX_N = 8192  # up to 8 warps x 32 elements per lane in registers; longer rows: a block per row
LANE_ELEMS = 64  # elements per lane above which a row gets more warps (2, 4, 8: shared-memory sums)
BLOCK_THREADS = 1024  # the block-per-row kernel (N > MAX_N)
MAX_BLOCK_N = 2**31 - 1


def _prod(xs):
    p = 1
    for x in xs:
        p *= x
    return p


def _param_map(pshape, norm):
    """Scale/B shape -> ("full", None) when it has the normalized shape's N elements laid out the
    same way, ("bcast", [(inner, dim, stride)]) when it broadcasts, else None."""
    if any(not isinstance(d, int) for d in pshape) or len(pshape) > len(norm):
        return None
    p = [1] * (len(norm) - len(pshape)) + list(pshape)
    if any(a not in (1, b) for a, b in zip(p, norm)):
        return None
    if p == list(norm) or _prod(p) == _prod(norm) and all(a == b for a, b in zip(p, norm) if a != 1):
        return "full", None
    terms = []
    for i, (a, b) in enumerate(zip(p, norm)):
        if a != 1:
            terms.append((_prod(norm[i + 1 :]), b, _prod(p[i + 1 :])))
    return "bcast", terms


@dataclass(frozen=True)
class NormSelection(Selection):
    op: str  # "LayerNormalization" or "RMSNormalization"
    rms: bool
    dtype: str  # X
    sdtype: str  # Scale (and B)
    ydtype: str
    xshape: list
    axis: int
    n: int  # elements per row: prod(X.shape[axis:])
    vec: int  # X / Y vector width
    svec: int  # Scale / B vector width (1 when one broadcasts)
    eps: float
    ops: list  # [Operand]: X, Scale[, B]
    maps: list  # per Scale / B: ("full", None), ("bcast", terms) or None (absent)
    stats: int  # Mean / InvStdDev outputs asked for (0..2)
    group: int = 1  # warps per row (N <= MAX_N): each lane keeps at most LANE_ELEMS elements

    def describe(self) -> str:
        what = "rms_norm" if self.rms else "layer_norm"
        stats = " + Mean/InvStdDev" if self.stats == 2 else " + Mean" if self.stats == 1 else ""
        if self.n > MAX_N:
            who = f"block of {BLOCK_THREADS} per row, shifted sums"
        else:
            who = "warp per row" if self.group == 1 else f"{self.group} warps per row"
        return f"{what} (axis={self.axis}, N={self.n}, {who}, {self.vec}-wide vectors{stats})"


def select_norm(n: NodeView, rms: bool) -> NormSelection | Decline:
    """Shared selection of LayerNormalization (rms False) and RMSNormalization (rms True)."""
    ops, info = n.operands, n.info
    name = "RMSNormalization" if rms else "LayerNormalization"
    nparams = (2,) if rms else (2, 3)
    if len(ops) not in nparams or not ops[0].is_param or ops[1].is_absent:
        return Decline(f"{name} arity")
    if rms and len(info.outputs) != 1:
        return Decline(f"{name} has one output")
    xshape, dtype = ops[0].shape, ops[0].dtype
    if dtype not in DTYPES:
        return Decline(f"dtype {dtype}")
    sdtype = ydtype = ops[1].dtype
    if sdtype != dtype or info.outputs[0]["dtype"] != dtype:
        # RMSNormalization-23 allows Scale (and Y) of another type V, but its function body
        # multiplies X's type by V (ONNX Runtime refuses the model): declined, not guessed
        return Decline(f"X {dtype}, Scale {sdtype}, Y {info.outputs[0]['dtype']}: types differ")
    r = len(xshape)
    axis = int(n.attr("axis", -1))
    if r == 0 or not -r <= axis < r:
        return Decline(f"axis {axis} of a rank-{r} input")
    axis %= r
    stash = int(n.attr("stash_type", 1))
    if stash != 1:
        return Decline(f"stash_type={stash} (only 1, float32, is implemented)")
    norm = xshape[axis:]
    if any(not isinstance(d, int) for d in norm):
        return Decline("normalized dims must be static")
    size = _prod(norm)
    if size == 0 or size > MAX_BLOCK_N:
        return Decline(f"normalized size {size} (TPAT lowers 1..{MAX_BLOCK_N})")
    for k, o in enumerate(info.outputs[1:], 1):
        if o["dtype"] != "float32":
            return Decline(f"output {k} dtype {o['dtype']} (stash_type 1 gives float32)")
    maps = []
    for o in ops[1:]:
        if o.is_absent:
            maps.append(None)
            continue
        if o.dtype != sdtype:
            return Decline("Scale/B dtypes differ")
        m = _param_map(o.shape, norm)
        if m is None:
            return Decline(f"Scale/B shape {o.shape} does not broadcast to {norm}")
        maps.append(m)
    vec = 16 // DTYPES[dtype]
    while vec > 1 and size % vec:
        vec //= 2
    if any(m is not None and m[0] == "bcast" for m in maps):
        svec = 1
    else:
        svec = vec
    group = 1
    while group < WARPS_PER_BLOCK and -(-size // (32 * group * vec)) * vec > LANE_ELEMS:
        group *= 2
    return NormSelection(
        op=n.op_type,
        rms=rms,
        dtype=dtype,
        sdtype=sdtype,
        ydtype=ydtype,
        xshape=xshape,
        axis=axis,
        n=size,
        vec=vec,
        svec=svec,
        eps=float(n.attr("epsilon", 1e-5)),
        ops=ops,
        maps=maps,
        stats=len(info.outputs) - 1,
        group=group,
    )


def select(n: NodeView) -> NormSelection | Decline:
    return select_norm(n, rms=False)


def _norm_ir(det, rows, ins, outs, mode="gpu"):
    """IR of one normalization: ins = [x, scale, bias?] (flat views made here), outs = [y, mean?,
    invstddev?]."""
    n, vec, svec, dtype, ydtype = det.n, det.vec, det.svec, det.dtype, det.ydtype
    rms = det.rms
    lanes = 32 * det.group  # threads per row
    chunks = -(-n // (lanes * vec))
    per = chunks * vec
    guard = n % (lanes * vec) != 0
    f32 = lambda v: tirx.const(v, "float32")  # noqa: E731
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731

    def cvt(v, dt):
        return v if dt == "float32" else tirx.Cast("float32", v)

    def out_cast(v, dt):
        return v if dt == "float32" else tirx.Cast(dt, v)

    with IRBuilder() as ib:

        def views():
            """Flat views (x, y, stats, params) of the stage's buffers; opened inside a frame."""

            def flat(buf, size):
                return T.decl_buffer([size], buf.dtype, data=buf.data, elem_offset=0)

            x = flat(ins[0], rows * i64(n))
            y = flat(outs[0], rows * i64(n))
            stats = [flat(o, rows) for o in outs[1:]]
            params = []
            for k, m in enumerate(det.maps):
                if m is None:
                    params.append(None)
                    continue
                b = ins[1 + sum(1 for mm in det.maps[:k] if mm is not None)]
                size = 1
                for d in b.shape:
                    size = size * d
                params.append((flat(b, size), m))
            params += [None] * (2 - len(params))
            return x, y, stats, params

        def pidx(m, c):
            """Index into a Scale/B flat view for column c (int64)."""
            if m[0] == "full":
                return c
            idx = i64(0)
            for inner, dim, stride in m[1]:
                idx = idx + (c // i64(inner)) % i64(dim) * i64(stride)
            return idx

        def finish(v, c, load_param, params):
            """The output value in float32 of normalized v at column c."""
            scale, bias = params
            if scale is not None:
                v = v * cvt(load_param(0, c), det.sdtype)
            if bias is not None:
                v = v + cvt(load_param(1, c), det.sdtype)
            return v

        if mode != "gpu":
            with T.serial(0, rows) as row:
                x, y, stats, params = views()
                base = tirx.Cast("int64", row) * i64(n)
                acc = T.decl_buffer([2], "float32", scope="global")
                T.buffer_store(acc, f32(0), [0])
                T.buffer_store(acc, f32(0), [1])
                mean = f32(0)
                if not rms:
                    with T.serial(0, n) as e:
                        T.buffer_store(acc, acc[0] + cvt(x[base + e], dtype), [0])
                    mean = acc[0] / f32(n)
                with T.serial(0, n) as e:
                    d = cvt(x[base + e], dtype) - mean
                    T.buffer_store(acc, acc[1] + d * d, [1])
                rstd = tirx.rsqrt(acc[1] / f32(n) + f32(det.eps))
                with T.serial(0, n) as e:
                    c = tirx.Cast("int64", e)
                    v = finish(
                        (cvt(x[base + c], dtype) - mean) * rstd,
                        c,
                        lambda k, cc: params[k][0][pidx(params[k][1], cc)],
                        params,
                    )
                    T.buffer_store(y, out_cast(v, ydtype), [base + c])
                for buf, val in zip(stats, (mean, rstd)):
                    T.buffer_store(buf, val, [tirx.Cast("int64", row)])
            return ib.get()

        wpb = WARPS_PER_BLOCK
        G = det.group  # warps per row
        gpb = wpb // G  # rows per block
        nb = (rows + i64(gpb - 1)) // i64(gpb)
        th = Threads("gpu", nb, 32 * wpb)
        with th as bx:
            x, y, stats, params = views()
            scale, bias = params
            tx = th.tx
            t32 = tirx.Cast("int32", tx)
            lane = t32 % 32
            warp = t32 // 32
            glane = (warp % G) * 32 + lane  # the thread's lane within its row's group
            row = tirx.Cast("int64", bx) * i64(gpb) + tirx.Cast("int64", warp // G)
            ok = row < rows
            loc = T.decl_buffer([per], dtype, scope="local")
            auxs = T.decl_buffer([per], det.sdtype, scope="local") if scale is not None else None
            auxb = T.decl_buffer([per], det.sdtype, scope="local") if bias is not None else None
            yl = T.decl_buffer([per], ydtype, scope="local") if ydtype != dtype else loc
            acc = T.decl_buffer([3], "float32", scope="local")
            reds = [T.decl_buffer([wpb], "float32", scope="shared") for _ in range(2)] if G > 1 else None
            mask = tvm.ir.Call("tirx.tvm_warp_activemask", [], ret_ty="uint32")

            def group_sum(k):
                """acc[k] summed over the row's lanes (warp shuffles, then shared memory across
                the row's G warps), in every lane. Every thread of the block comes here."""
                for s in (16, 8, 4, 2, 1):
                    sh = tvm.ir.Call(
                        "tirx.tvm_warp_shuffle_down",
                        [mask, acc[k], tirx.const(s, "int32"), tirx.const(32, "int32"), tirx.const(32, "int32")],
                        ret_ty="float32",
                    )
                    T.buffer_store(acc, acc[k] + sh, [k])
                T.buffer_store(
                    acc,
                    tvm.ir.Call(
                        "tirx.tvm_warp_shuffle",
                        [mask, acc[k], tirx.const(0, "int32"), tirx.const(32, "int32"), tirx.const(32, "int32")],
                        ret_ty="float32",
                    ),
                    [k],
                )
                if G == 1:
                    return
                red = reds[k]
                with T.If(lane == 0):
                    with T.Then():
                        T.buffer_store(red, acc[k], [warp])
                th.barrier()
                first = (warp // G) * G
                total = red[first]
                for w in range(1, G):
                    total = total + red[first + w]
                T.buffer_store(acc, total, [k])

            def col0(j):
                """First column (int64) of this lane's chunk j."""
                return tirx.Cast("int64", (j * (32 * G) + glane) * vec)

            def valid(e):
                return col0(e // vec) < i64(n)

            def chunked(body, rows_ok=True):
                """body(j, v) over this lane's chunks, vectorized by v; guarded when N is ragged
                (and, for loads and stores, on the row existing)."""
                with T.unroll(0, chunks) as j:
                    cond = col0(j) < i64(n) if guard else None
                    if rows_ok:
                        cond = ok if cond is None else tirx.And(ok, cond)
                    if cond is not None:
                        with T.If(cond):
                            with T.Then():
                                with T.vectorized(0, vec) as v:
                                    body(j, v)
                    else:
                        with T.vectorized(0, vec) as v:
                            body(j, v)

            # Loads and stores are guarded on the row; the sums run in every thread (a missing
            # row sums zeros) so that the block's barriers are reached by all of its threads.
            base = row * i64(n)
            with T.unroll(0, per) as e:
                T.buffer_store(loc, tirx.const(0, dtype), [e])
            chunked(lambda j, v: T.buffer_store(loc, x[base + col0(j) + v], [j * vec + v]))
            mean = f32(0)
            if not rms:
                T.buffer_store(acc, f32(0), [0])
                with T.unroll(0, per) as e:
                    T.buffer_store(acc, acc[0] + cvt(loc[e], dtype), [0])
                group_sum(0)
                mean = acc[0] / f32(n)
            T.buffer_store(acc, f32(0), [1])
            with T.unroll(0, per) as e:
                d = cvt(loc[e], dtype) - mean
                if guard and not rms:  # padding is 0, not 0 - mean
                    T.buffer_store(acc, tirx.if_then_else(valid(e), d, f32(0)), [2])
                    d = acc[2]
                T.buffer_store(acc, acc[1] + d * d, [1])
            group_sum(1)
            rstd = tirx.rsqrt(acc[1] / f32(n) + f32(det.eps))
            with T.If(ok):
                with T.Then():
                    # Scale and B into registers (vector loads when they have N elements)
                    for p, dst in ((scale, auxs), (bias, auxb)):
                        if p is None:
                            continue
                        buf, m = p
                        if svec == vec:
                            chunked(
                                lambda j, v, buf=buf, dst=dst: T.buffer_store(dst, buf[col0(j) + v], [j * vec + v]),
                                rows_ok=False,
                            )
                        else:

                            def one(j, v, buf=buf, dst=dst, m=m):
                                T.buffer_store(dst, buf[pidx(m, col0(j) + v)], [j * vec + v])

                            with T.unroll(0, chunks) as j:
                                with T.If(col0(j) < i64(n)):
                                    with T.Then():
                                        with T.serial(0, vec) as v:
                                            one(j, v)
                    with T.unroll(0, per) as e:
                        val = finish(
                            (cvt(loc[e], dtype) - mean) * rstd, e, lambda k, ee: (auxs if k == 0 else auxb)[ee], params
                        )
                        T.buffer_store(yl, out_cast(val, ydtype), [e])
                    chunked(lambda j, v: T.buffer_store(y, yl[j * vec + v], [base + col0(j) + v]), rows_ok=False)
                    if stats:
                        with T.If(glane == 0):
                            with T.Then():
                                for buf, val in zip(stats, (mean, rstd)):
                                    T.buffer_store(buf, val, [row])
    return ib.get()


def _block_norm_ir(det, rows, ins, outs, mode="gpu"):
    """N > MAX_N: a block of BLOCK_THREADS threads per row (the row does not fit in a warp's
    registers). Pass 1: each thread sums d = x - x[row, 0] and d^2 over its vectors (consecutive
    threads on consecutive vectors: coalesced, up to 16-byte loads), a shared-memory tree reduces
    both; mean = x0 + S1/N, var = S2/N - (S1/N)^2 (the shift keeps the cancellation small; RMS: no
    shift, S2 only). Pass 2 re-reads the row (from L2 when it is still there) and writes y.
    2 reads + 1 write of X/Y; Scale/B are read per row from L2. The same IR runs on the CPU with
    serial loops for the threads (the LLVM tests)."""
    n, vec, dtype, ydtype, tb = det.n, det.vec, det.dtype, det.ydtype, BLOCK_THREADS
    nvec = n // vec  # vec divides n (selection)
    iters = -(-nvec // tb)
    gpu = mode == "gpu"
    f32 = lambda v: tirx.const(v, "float32")  # noqa: E731
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731

    def cvt(v, dt):
        return v if dt == "float32" else tirx.Cast("float32", v)

    with IRBuilder() as ib:
        th = Threads(mode, rows, tb)
        with th as bx:

            def flat(buf, size):
                return T.decl_buffer([size], buf.dtype, data=buf.data, elem_offset=0)

            x = flat(ins[0], rows * i64(n))
            y = flat(outs[0], rows * i64(n))
            stats = [flat(o, rows) for o in outs[1:]]
            params = []
            k_in = 1
            for m in det.maps:
                if m is None:
                    params.append(None)
                    continue
                b = ins[k_in]
                k_in += 1
                size = 1
                for d in b.shape:
                    size = size * d
                params.append((flat(b, size), m))
            params += [None] * (2 - len(params))
            row = tirx.Cast("int64", bx)
            base = row * i64(n)
            reds = [T.decl_buffer([tb], "float32", scope="shared" if gpu else "global") for _ in range(2)]
            loc = "local" if gpu else "global"
            acc = T.decl_buffer([2] if gpu else [2, tb], "float32", scope=loc)
            xv = T.decl_buffer([vec], dtype, scope=loc)
            yv = T.decl_buffer([vec], ydtype, scope=loc)

            def A(k, tx):
                return [k] if gpu else [k, tirx.Cast("int32", tx)]

            shift = f32(0) if det.rms else cvt(x[base], dtype)

            def each_vec(tx, body):
                with T.serial(0, iters) as it:
                    iv = it * i32(tb) + tirx.Cast("int32", tx)
                    with T.If(iv < i32(nvec)):
                        with T.Then():
                            c0 = tirx.Cast("int64", iv) * i64(vec)
                            with T.vectorized(0, vec) as v:
                                T.buffer_store(xv, x[base + c0 + v], [v])
                            body(c0)

            def sums(tx):
                T.buffer_store(acc, f32(0), A(0, tx))
                T.buffer_store(acc, f32(0), A(1, tx))

                def body(c0):
                    with T.unroll(0, vec) as v:
                        d = cvt(xv[v], dtype) - shift
                        T.buffer_store(acc, acc[tuple(A(0, tx))] + d, A(0, tx))
                        T.buffer_store(acc, acc[tuple(A(1, tx))] + d * d, A(1, tx))

                each_vec(tx, body)
                T.buffer_store(reds[0], acc[tuple(A(0, tx))], [tirx.Cast("int32", tx)])
                T.buffer_store(reds[1], acc[tuple(A(1, tx))], [tirx.Cast("int32", tx)])

            th.each_thread(sums)
            th.barrier()
            half = tb // 2
            while half >= 1:

                def step(tx, half=half):
                    t = tirx.Cast("int32", tx)
                    with T.If(t < i32(half)):
                        with T.Then():
                            for r in reds:
                                T.buffer_store(r, r[t] + r[t + i32(half)], [t])

                th.each_thread(step)
                th.barrier()
                half //= 2

            def fetch(tx):  # the block's sums into every thread's registers (no shared reads later)
                T.buffer_store(acc, reds[0][0], A(0, tx))
                T.buffer_store(acc, reds[1][0], A(1, tx))

            th.each_thread(fetch)

            def moments(tx):
                m1 = acc[tuple(A(0, tx))] / f32(n)
                s2 = acc[tuple(A(1, tx))] / f32(n)
                mean = f32(0) if det.rms else shift + m1
                var = s2 if det.rms else tirx.max(s2 - m1 * m1, f32(0))
                return mean, tirx.rsqrt(var + f32(det.eps))

            scale, bias = params

            def pidx(m, c):
                if m[0] == "full":
                    return c
                idx = i64(0)
                for inner, dim, stride in m[1]:
                    idx = idx + (c // i64(inner)) % i64(dim) * i64(stride)
                return idx

            def normalize(tx):
                mean, rstd = moments(tx)

                def body(c0):
                    with T.unroll(0, vec) as v:
                        c = c0 + tirx.Cast("int64", v)
                        val = (cvt(xv[v], dtype) - mean) * rstd
                        if scale is not None:
                            val = val * cvt(scale[0][pidx(scale[1], c)], det.sdtype)
                        if bias is not None:
                            val = val + cvt(bias[0][pidx(bias[1], c)], det.sdtype)
                        T.buffer_store(yv, val if ydtype == "float32" else tirx.Cast(ydtype, val), [v])
                    with T.vectorized(0, vec) as v:
                        T.buffer_store(y, yv[v], [base + c0 + v])

                each_vec(tx, body)
                if stats:
                    with T.If(tirx.Cast("int32", tx) == i32(0)):
                        with T.Then():
                            for buf, val in zip(stats, (mean, rstd)):
                                T.buffer_store(buf, val, [row])

            th.each_thread(normalize)
    return ib.get()


def emit(bb, params, det, mode="gpu"):
    """Emit the normalization into main's dataflow block: Y, or (Y, Mean[, InvStdDev])."""
    args = [relax_arg(params, o) for o in det.ops if not o.is_absent]
    axis, nstats = det.axis, det.stats
    name = "tpat_rms_norm" if det.rms else "tpat_layer_norm"

    def stage(*ts):
        xs = list(ts[0].shape)
        rows = tirx.const(1, "int64")
        for d in xs[:axis]:
            rows = rows * d
        stat_shape = xs[:axis] + [1] * (len(xs) - axis)
        shapes = [xs] + [stat_shape] * nstats
        dtypes = [det.ydtype] + ["float32"] * nstats

        def body(ins, outs):
            if det.n > MAX_N:
                return _block_norm_ir(det, rows, list(ins), list(outs), mode)
            return _norm_ir(det, rows, list(ins), list(outs), mode)

        # Buffers without elem_offset (compact), so 16-byte vector access is plain indexing.
        bufs = [tirx.decl_buffer(t.shape, t.dtype, name=f"b{k}", elem_offset=0) for k, t in enumerate(ts)]
        obufs = [tirx.decl_buffer(s, dt, name=f"o{k}", elem_offset=0) for k, (s, dt) in enumerate(zip(shapes, dtypes))]
        res = te.extern(shapes, list(ts), body, dtype=dtypes, name=name, in_buffers=bufs, out_buffers=obufs)
        return res

    return bb.emit_te(stage, *args, primfunc_name_hint=name)


class NormLowering(Lowering):
    """LayerNormalization, and RMSNormalization (rmsnorm.py) with `rms` set."""

    def __init__(self, name, op, rms):
        self.name, self.ops, self.rms = name, (op,), rms

    def select(self, node):
        return select_norm(node, rms=self.rms)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)


LAYER_NORM = NormLowering("layer_norm", "LayerNormalization", rms=False)

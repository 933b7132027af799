"""TPAT's own TVM lowering of ONNX TopK along the last axis: no sort of the whole row.

TVM 0.27 legalizes TopK by sorting every row completely (a multi-pass merge sort, 6 kernels) and
slicing the first K; for a large row that is several times slower than PyTorch's radix select.
This lowering keeps only what can reach the answer:

  1. chunk sort: each row is cut into chunks of CH elements (CH = 4096 for 4-byte values, 2048 for
     8-byte ones, less for short rows); one thread block sorts a chunk in shared memory with a
     bitonic network and writes its first min(CH, K) entries (value, int32 index);
  2. merge tree: pairs of sorted lists are merged, each output list truncated to K entries (the
     top K of a union is in the union of the top Ks). One thread per element finds its place by
     a binary search in the partner list ("merge path"), so a level is one fully parallel kernel.
     The last level writes the outputs (values, int64 indices).

Order: values descending (largest=1) or ascending (largest=0); equal values by ascending index,
which is what ONNX asks for; NaN counts as larger than every number (like PyTorch and NumPy), so it
comes first for largest=1 and last for largest=0. Padding entries (past the row's end) carry index
>= N and sort after every real entry. `sorted=0` gets the same sorted answer (a valid one).

Everything is TIR written with TVM's IR builder inside `te.extern` stages (the way TVM's own
topi.gpu.sort is written) and goes through TVM's normal pipeline and CUDA codegen. Leading
dimensions may be symbolic (rows); the axis length N and K must be static.
"""
from __future__ import annotations

import numpy as np

DTYPES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int32": 4, "int64": 8}
MAX_THREADS = 1024
MERGE_THREADS = 256


def _pow2ceil(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def select(node, ops, info, attr):
    if len(ops) != 2 or ops[0][0] != "param":
        return None, "TopK needs a runtime X"
    if ops[1][0] != "const":
        return None, "K must be a constant"
    xshape, dtype = ops[0][2], ops[0][3]
    if dtype not in DTYPES:
        return None, f"dtype {dtype}"
    r = len(xshape)
    if r == 0:
        return None, "scalar input"
    axis = int(attr(node, "axis", -1))
    if axis % r != r - 1:
        return None, "only the last axis is lowered by TPAT"
    n = xshape[-1]
    if not isinstance(n, int):
        return None, "axis length must be static"
    k = int(np.asarray(ops[1][1]).reshape(-1)[0])
    if k < 1 or k > n or n >= 2**31 - 2**20:
        return None, f"K={k} for axis length {n}"
    if len(info.outputs) != 2 or info.outputs[0]["dtype"] != dtype or info.outputs[1]["dtype"] != "int64":
        return None, "outputs"
    largest = int(attr(node, "largest", 1))
    ch = min(4096 if DTYPES[dtype] <= 4 else 2048, _pow2ceil(max(n, 2)))
    det = {"op": "TopK", "dtype": dtype, "xshape": xshape, "n": n, "k": k,
           "largest": bool(largest), "ch": ch, "x_index": ops[0][1]}
    chunks = _pow2ceil(-(-n // ch))
    return (f"topk (K={k}, {'largest' if largest else 'smallest'}, chunks of {ch}, "
            f"{chunks} chunk(s), {int(np.log2(chunks))} merge level(s))"), det


# --------------------------------------------------------------------------------------------
# order


def _before(det, av, ai, bv, bi):
    """Entry (av, ai) comes strictly before (bv, bi) in the output order (a total order)."""
    from tvm import tirx

    n = tirx.const(det["n"], "int32")
    dtype = det["dtype"]
    a_ok, b_ok = ai < n, bi < n
    if dtype.startswith(("float", "bfloat")):
        a = tirx.Cast("float32", av) if dtype != "float64" else av
        b = tirx.Cast("float32", bv) if dtype != "float64" else bv
        an, bn = tirx.isnan(a), tirx.isnan(b)
        if det["largest"]:
            first = tirx.Or(tirx.And(an, tirx.Not(bn)), tirx.And(tirx.Not(bn), a > b))
        else:
            first = tirx.Or(tirx.And(tirx.Not(an), bn), tirx.And(tirx.Not(an), a < b))
        same = tirx.Or(tirx.And(an, bn), a == b)
    else:
        first = av > bv if det["largest"] else av < bv
        same = av == bv
    real = tirx.And(a_ok, tirx.Or(tirx.Not(b_ok), tirx.Or(first, tirx.And(same, ai < bi))))
    pads = tirx.And(tirx.Not(a_ok), tirx.And(tirx.Not(b_ok), ai < bi))
    return tirx.Or(real, pads)


def _unravel(row, lead):
    """Row number -> index expressions over the leading dims (last fastest)."""
    from tvm import tirx

    out = []
    rem = row
    for d in reversed(lead[1:]):
        dd = tirx.Cast("int64", d) if not isinstance(d, int) else tirx.const(d, "int64")
        out.append(rem % dd)
        rem = rem // dd
    out.append(rem)
    return list(reversed(out)) if lead else []


def _sync():
    import tvm

    from tvm.script.ir_builder import tirx as T

    T.evaluate(tvm.ir.Call("tirx.tvm_storage_sync", [tvm.ir.StringImm("shared")], ret_ty="void"))


# --------------------------------------------------------------------------------------------
# stage 1: chunk sort


class _Threads:
    """GPU: thread_extent scopes (one block, its threads). CPU (mode "cpu", for the LLVM tests):
    serial loops, the thread loop opened anew inside every phase between barriers."""

    def __init__(self, mode, nblocks, nthreads):
        self.mode, self.nblocks, self.nthreads = mode, nblocks, nthreads

    def __enter__(self):
        from tvm import te
        from tvm.script.ir_builder import tirx as T

        if self.mode == "gpu":
            bx, self.tx = te.thread_axis("blockIdx.x"), te.thread_axis("threadIdx.x")
            self._f = T.frame_scope([T.attr(bx, "thread_extent", self.nblocks),
                                     T.attr(self.tx, "thread_extent", self.nthreads)])
            self._f.__enter__()
            return bx
        self._f = T.serial(0, self.nblocks)
        return self._f.__enter__()

    def __exit__(self, *a):
        return self._f.__exit__(*a)

    def each_thread(self, body):
        """Run body(tx) for every thread of the block (then a barrier on the GPU)."""
        from tvm.script.ir_builder import tirx as T

        if self.mode == "gpu":
            body(self.tx)
            return
        with T.serial(0, self.nthreads) as tx:
            body(tx)

    def barrier(self):
        if self.mode == "gpu":
            _sync()


def _chunk_sort_ir(det, rows, lead, x, outs, final, mode="gpu"):
    """x: the input. outs: (values (rows, C, L0), int32 idx (rows, C, L0)), or when there is a
    single chunk (final) the outputs (lead..., K) with int64 indices."""
    from tvm import tirx
    from tvm.script.ir_builder import IRBuilder
    from tvm.script.ir_builder import tirx as T

    n, k, ch, dtype = det["n"], det["k"], det["ch"], det["dtype"]
    chunks = _pow2ceil(-(-n // ch))
    keep = min(ch, k)
    tb = min(MAX_THREADS, ch // 2)
    logc = int(np.log2(ch))
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    scope = "shared" if mode == "gpu" else "global"
    with IRBuilder() as ib:
        th = _Threads(mode, rows * chunks, tb)
        with th as bx:
            sv = T.decl_buffer([ch], dtype, scope=scope)
            si = T.decl_buffer([ch], "int32", scope=scope)
            tv = T.decl_buffer([2], dtype, scope="local")
            ti = T.decl_buffer([2], "int32", scope="local")
            row = tirx.Cast("int64", bx) // tirx.const(chunks, "int64")
            c = tirx.Cast("int32", tirx.Cast("int64", bx) % tirx.const(chunks, "int64"))

            def load(tx):
                with T.serial(0, ch // tb) as q:
                    e = q * i32(tb) + tirx.Cast("int32", tx)
                    g = c * i32(ch) + e
                    with T.If(g < i32(n)):
                        with T.Then():
                            T.buffer_store(sv, x[tuple(_unravel(row, lead) + [tirx.Cast("int64", g)])], [e])
                        with T.Else():
                            T.buffer_store(sv, tirx.const(0, dtype), [e])
                    T.buffer_store(si, g, [e])  # >= N: padding, sorts last

            th.each_thread(load)
            th.barrier()
            with T.serial(0, logc) as s:
                with T.serial(0, s + 1) as t:
                    j = tirx.shift_right(tirx.shift_left(i32(1), s), t)
                    blk = tirx.shift_left(i32(2), s)

                    def stage(tx):
                        with T.serial(0, max(1, ch // 2 // tb)) as q:
                            p = q * i32(tb) + tirx.Cast("int32", tx)
                            i = (p // j) * (j * i32(2)) + p % j
                            T.buffer_store(tv, sv[i], [0])
                            T.buffer_store(ti, si[i], [0])
                            T.buffer_store(tv, sv[i + j], [1])
                            T.buffer_store(ti, si[i + j], [1])
                            up = tirx.bitwise_and(i, blk) == i32(0)
                            b_first = _before(det, tv[1], ti[1], tv[0], ti[0])
                            a_first = _before(det, tv[0], ti[0], tv[1], ti[1])
                            swap = tirx.Or(tirx.And(up, b_first), tirx.And(tirx.Not(up), a_first))
                            with T.If(swap):
                                with T.Then():
                                    T.buffer_store(sv, tv[1], [i])
                                    T.buffer_store(si, ti[1], [i])
                                    T.buffer_store(sv, tv[0], [i + j])
                                    T.buffer_store(si, ti[0], [i + j])

                    th.each_thread(stage)
                    th.barrier()

            def store(tx):
                with T.serial(0, ch // tb) as q:
                    e = q * i32(tb) + tirx.Cast("int32", tx)
                    with T.If(e < i32(keep)):
                        with T.Then():
                            if final:
                                dst = _unravel(row, lead) + [tirx.Cast("int64", e)]
                                T.buffer_store(outs[0], sv[e], dst)
                                T.buffer_store(outs[1], tirx.Cast("int64", si[e]), dst)
                            else:
                                dst = [row, tirx.Cast("int64", c), tirx.Cast("int64", e)]
                                T.buffer_store(outs[0], sv[e], dst)
                                T.buffer_store(outs[1], si[e], dst)

            th.each_thread(store)
    return ib.get()


# --------------------------------------------------------------------------------------------
# stage 2: one merge level


def _merge_ir(det, rows, lead, m, length, inv, ini, outs, final, mode="gpu"):
    """Merge list pairs (2p, 2p+1) of (rows, m, length) into (rows, m/2, min(2*length, K));
    final: into the outputs (rows, K) with int64 indices."""
    from tvm import tirx
    from tvm.script.ir_builder import IRBuilder
    from tvm.script.ir_builder import tirx as T

    out_len = min(2 * length, det["k"])
    steps = int(np.ceil(np.log2(length + 1))) + 1
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    with IRBuilder() as ib:
        total = rows * i64(m * length)
        nb = (total + i64(MERGE_THREADS - 1)) // i64(MERGE_THREADS)
        th = _Threads(mode, nb, MERGE_THREADS)
        with th as bx:
            lo = T.decl_buffer([2], "int32", scope="local")
            th.each_thread(lambda tx: _merge_one(det, bx, tx, total, m, length, out_len, steps,
                                                 lo, lead, inv, ini, outs, final))
    return ib.get()


def _merge_one(det, bx, tx, total, m, length, out_len, steps, lo, lead, inv, ini, outs, final):
    """One merge thread: place entry `gid` of its list in the merged output."""
    from tvm import tirx
    from tvm.script.ir_builder import tirx as T

    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    gid = tirx.Cast("int64", bx) * i64(MERGE_THREADS) + tirx.Cast("int64", tx)
    with T.If(gid < total):
        with T.Then():
            row = gid // i64(m * length)
            rem = gid % i64(m * length)
            lst = rem // i64(length)
            i = tirx.Cast("int32", rem % i64(length))
            other = tirx.bitwise_xor(lst, i64(1))
            v = inv[row, lst, tirx.Cast("int64", i)]
            vi = ini[row, lst, tirx.Cast("int64", i)]
            T.buffer_store(lo, i32(0), [0])
            T.buffer_store(lo, i32(length), [1])
            with T.serial(0, steps):
                with T.If(lo[0] < lo[1]):
                    with T.Then():
                        mid = tirx.shift_right(lo[0] + lo[1], i32(1))
                        pv = inv[row, other, tirx.Cast("int64", mid)]
                        pi = ini[row, other, tirx.Cast("int64", mid)]
                        with T.If(_before(det, pv, pi, v, vi)):
                            with T.Then():
                                T.buffer_store(lo, mid + i32(1), [0])
                            with T.Else():
                                T.buffer_store(lo, mid, [1])
            pos = i + lo[0]
            with T.If(pos < i32(out_len)):
                with T.Then():
                    if final:
                        dst = _unravel(row, lead) + [tirx.Cast("int64", pos)]
                        T.buffer_store(outs[0], v, dst)
                        T.buffer_store(outs[1], tirx.Cast("int64", vi), dst)
                    else:
                        dst = [row, lst // i64(2), tirx.Cast("int64", pos)]
                        T.buffer_store(outs[0], v, dst)
                        T.buffer_store(outs[1], vi, dst)


# --------------------------------------------------------------------------------------------
# Relax


def emit(bb, params, det, mode="gpu"):
    """Emit chunk sort -> merge levels into main's dataflow block; returns (values, indices)."""
    from tvm import relax, te, tirx

    x = params[det["x_index"]]
    lead = list(x.ty.shape.values)[:-1]
    rows = tirx.const(1, "int64")
    for d in lead:
        rows = rows * d
    n, k, ch, dtype = det["n"], det["k"], det["ch"], det["dtype"]
    chunks = _pow2ceil(-(-n // ch))
    keep = min(ch, k)
    oshape = lead + [k]

    def chunk_stage(xt, final):
        if final:
            return te.extern([oshape, oshape], [xt],
                             lambda ins, outs: _chunk_sort_ir(det, rows, lead, ins[0], outs, True, mode),
                             dtype=[dtype, "int64"], name="tpat_topk_sort")
        return te.extern([(rows, chunks, keep), (rows, chunks, keep)], [xt],
                         lambda ins, outs: _chunk_sort_ir(det, rows, lead, ins[0], outs, False, mode),
                         dtype=[dtype, "int32"], name="tpat_topk_sort")

    final = chunks == 1
    res = bb.emit_te(chunk_stage, x, final, primfunc_name_hint="tpat_topk_sort")
    m, length = chunks, keep
    level = 0
    while not final:
        final = m == 2
        out_len = k if final else min(2 * length, k)
        vals = bb.emit(relax.TupleGetItem(res, 0))
        idxs = bb.emit(relax.TupleGetItem(res, 1))

        def merge_stage(vt, it, m=m, length=length, final=final, out_len=out_len):
            if final:
                shp, dts = [oshape, oshape], [dtype, "int64"]
            else:
                shp = [(rows, m // 2, out_len), (rows, m // 2, out_len)]
                dts = [dtype, "int32"]
            return te.extern(
                shp, [vt, it],
                lambda ins, outs: _merge_ir(det, rows, lead, m, length, ins[0], ins[1], outs, final, mode),
                dtype=dts, name="tpat_topk_merge")

        level += 1
        res = bb.emit_te(merge_stage, vals, idxs, primfunc_name_hint=f"tpat_topk_merge{level}")
        m, length = m // 2, out_len
    return res

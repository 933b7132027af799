"""TPAT's own TVM lowering of ONNX TopK along the last axis: no sort of the whole row.

TVM 0.27 legalizes TopK by sorting every row completely (a multi-pass merge sort, 6 kernels) and
slicing the first K; for a large row that is several times slower than PyTorch's radix select.
This lowering keeps only what can reach the answer.

Every element becomes one unsigned 64-bit sort key, compared with a single instruction:
    key = (ordered 32-bit image of the value) << 32 | (0xFFFFFFFF - index)
where the ordered image is the IEEE bit pattern made monotonic (negatives inverted, positives with
the sign bit set; int32 with the sign bit flipped) and inverted again for largest=0. Sorting keys
in descending order gives values in the requested order and equal values by ascending index, as
ONNX asks. NaN (canonicalized at load) counts as larger than every number, like PyTorch and NumPy:
first for largest=1, last for largest=0. Padding entries past the row's end get keys below every
real key. -0.0 and +0.0 are equal (ties by index). The output values are read back from X by
index, bit for bit.

K <= SMALL_K (32): `_small_k_ir`, one kernel with no sort at all: each thread keeps a sorted top-K
of its strided elements in registers, warps merge their lanes' lists by shuffles (see there).
Larger K:

  1. chunk sort: each row is cut into chunks of CH keys (CH = 4096, less for short rows); one
     thread block sorts a chunk in shared memory with a bitonic network (32 KB) and writes its
     first min(CH, K) keys;
  2. merge tree: pairs of sorted lists are merged, each output list truncated to K keys (the top
     K of a union is in the union of the top Ks). One thread per key finds its place by a binary
     search in the partner list ("merge path"), so a level is one fully parallel kernel. The last
     level writes the outputs (values gathered from X, int64 indices).

Everything is TIR written with TVM's IR builder inside `te.extern` stages (the way TVM's own
topi.gpu.sort is written) and goes through TVM's normal pipeline and CUDA codegen. Leading
dimensions may be symbolic (rows); the axis length N and K must be static. Value types: float32,
float16, bfloat16, int32 (a 32-bit image); 64-bit values keep TVM's lowering. `sorted=0` gets the
same sorted answer (a valid one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax, te, tirx, topi
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .. import dtypes
from .ir import Threads, lead_rows, unravel
from .protocol import Decline, FunctionLowering, NodeView, Selection

DTYPES = dtypes.sizes(*dtypes.FLOATS, "int32")
MAX_THREADS = 1024
MERGE_THREADS = 256
# K up to SMALL_K: selection in registers (`_small_k_ir`), blocks of SMALL_BLOCK threads, up to
# 8 warps per row (one per SMALL_PER elements), SMALL_LOADS loads in flight per thread.
SMALL_K = 32
SMALL_BLOCK = 256
SMALL_PER = 64
SMALL_LOADS = 8


def _pow2ceil(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


@dataclass(frozen=True)
class TopKSelection(Selection):
    dtype: str
    xshape: list
    n: int  # the axis length
    k: int
    largest: bool
    ch: int  # chunk length (keys sorted per block)
    chunks: int  # lists at merge level 0 (a power of two)
    x_index: int
    axis: int = -1  # normalized; not the last: X is transposed to put it last, the outputs back
    warps: int = 0  # > 0: K <= SMALL_K, selection in registers by `warps` warps per row

    def describe(self) -> str:
        moved = f"axis {self.axis} moved last by a transpose, " if self.axis != len(self.xshape) - 1 else ""
        if self.warps:
            return (
                f"topk ({moved}K={self.k}, {'largest' if self.largest else 'smallest'}, selection in registers, "
                f"{self.warps} warp(s) per row, warp-shuffle merge)"
            )
        return (
            f"topk ({moved}K={self.k}, {'largest' if self.largest else 'smallest'}, chunks of {self.ch}, "
            f"{self.chunks} chunk(s), {int(np.log2(self.chunks))} merge level(s))"
        )


def select(node: NodeView) -> TopKSelection | Decline:
    ops = node.operands
    if len(ops) != 2 or not ops[0].is_param:
        return Decline("TopK needs a runtime X")
    if not ops[1].is_const:
        return Decline("K must be a constant")
    xshape, dtype = ops[0].shape, ops[0].dtype
    if dtype not in DTYPES:
        return Decline(f"dtype {dtype}")
    r = len(xshape)
    if r == 0:
        return Decline("scalar input")
    axis = int(node.attr("axis", -1))
    if not -r <= axis < r:
        return Decline(f"axis {axis} out of range for rank {r}")
    axis %= r
    n = xshape[axis]
    if not isinstance(n, int):
        return Decline("axis length must be static")
    k = ops[1].scalar_int("K")
    if k < 1 or k > n or n >= 2**31 - 2**20:
        return Decline(f"K={k} for axis length {n}")
    outs = node.outputs
    if len(outs) != 2 or outs[0]["dtype"] != dtype or outs[1]["dtype"] != "int64":
        return Decline("outputs")
    largest = int(node.attr("largest", 1))
    ch = min(4096, _pow2ceil(max(n, 2)))
    chunks = _pow2ceil(-(-n // ch))  # lists at level 0 (padding chunks make a power of two)
    warps = 0
    if k <= SMALL_K:
        warps = 1
        while warps < SMALL_BLOCK // 32 and warps * 32 * SMALL_PER < n:
            warps *= 2
    return TopKSelection(
        dtype=dtype,
        xshape=xshape,
        n=n,
        k=k,
        largest=bool(largest),
        ch=ch,
        chunks=chunks,
        x_index=ops[0].index,
        axis=axis,
        warps=warps,
    )


# --------------------------------------------------------------------------------------------
# order


def _key(det, v, g):
    """The uint64 sort key of value v at row position g (int32); descending key order = output order."""
    dtype = det.dtype
    u32 = lambda c: tirx.const(c, "uint32")  # noqa: E731
    if dtype == "int32":
        u = tirx.bitwise_xor(tirx.reinterpret("uint32", v), u32(0x80000000))
    else:
        f = tirx.Cast("float32", v) if dtype != "float32" else v
        bits = tirx.reinterpret("uint32", f)
        bits = tirx.Select(tirx.isnan(f), u32(0x7FC00000), bits)  # one NaN, the largest
        bits = tirx.Select(f == tirx.const(0.0, "float32"), u32(0), bits)  # -0.0 ties with +0.0
        neg = tirx.bitwise_and(bits, u32(0x80000000)) != u32(0)
        u = tirx.Select(neg, tirx.bitwise_not(bits), tirx.bitwise_or(bits, u32(0x80000000)))
    if not det.largest:
        u = tirx.bitwise_not(u)
    lo = u32(0xFFFFFFFF) - tirx.Cast("uint32", g)
    return tirx.bitwise_or(tirx.shift_left(tirx.Cast("uint64", u), tirx.const(32, "uint64")), tirx.Cast("uint64", lo))


def _pad_key(g):
    """Key of padding position g >= N: below every real key (their high word is never 0)."""
    return tirx.Cast("uint64", tirx.const(0xFFFFFFFF, "uint32") - tirx.Cast("uint32", g))


def _index_of(key):
    """Row position (int64) from a key."""
    low = tirx.Cast("uint32", tirx.bitwise_and(key, tirx.const(0xFFFFFFFF, "uint64")))
    return tirx.Cast("int64", tirx.const(0xFFFFFFFF, "uint32") - low)


# --------------------------------------------------------------------------------------------
# stage 1: chunk sort


def _chunk_sort_ir(det, rows, lead, x, outs, final, mode="gpu"):
    """x: the input. outs: (keys (rows, C, L0),) or, with a single chunk (final), the outputs
    (values, int64 indices) of shape (lead..., K)."""
    n, k, ch, chunks = det.n, det.k, det.ch, det.chunks
    keep = min(ch, k)
    tb = min(MAX_THREADS, ch // 2)
    logc = int(np.log2(ch))
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    scope = "shared" if mode == "gpu" else "global"
    with IRBuilder() as ib:
        th = Threads(mode, rows * chunks, tb)
        with th as bx:
            sk = T.decl_buffer([ch], "uint64", scope=scope)
            tmp = T.decl_buffer([2], "uint64", scope="local")
            row = tirx.Cast("int64", bx) // tirx.const(chunks, "int64")
            c = tirx.Cast("int32", tirx.Cast("int64", bx) % tirx.const(chunks, "int64"))

            def load(tx):
                with T.serial(0, ch // tb) as q:
                    e = q * i32(tb) + tirx.Cast("int32", tx)
                    g = c * i32(ch) + e
                    with T.If(g < i32(n)):
                        with T.Then():
                            v = x[tuple(unravel(row, lead) + [tirx.Cast("int64", g)])]
                            T.buffer_store(sk, _key(det, v, g), [e])
                        with T.Else():
                            T.buffer_store(sk, _pad_key(g), [e])

            th.each_thread(load)
            th.barrier()
            with T.serial(0, logc) as s:
                with T.serial(0, s + 1) as t:
                    lj = s - t  # partner distance j = 2^lj; blocks of 2^(s+1) alternate direction

                    def stage(tx):
                        with T.serial(0, max(1, ch // 2 // tb)) as q:
                            p = q * i32(tb) + tirx.Cast("int32", tx)
                            i = tirx.bitwise_or(
                                tirx.shift_left(tirx.shift_right(p, lj), lj + i32(1)),
                                tirx.bitwise_and(p, tirx.shift_left(i32(1), lj) - i32(1)),
                            )
                            j = tirx.shift_left(i32(1), lj)
                            T.buffer_store(tmp, sk[i], [0])
                            T.buffer_store(tmp, sk[i + j], [1])
                            a, b = tmp[0], tmp[1]
                            down = tirx.bitwise_and(tirx.shift_right(i, s + i32(1)), i32(1)) == i32(0)
                            # descending (largest key first) where `down`, ascending elsewhere
                            swap = tirx.Select(down, a < b, a > b)
                            with T.If(swap):
                                with T.Then():
                                    T.buffer_store(sk, b, [i])
                                    T.buffer_store(sk, a, [i + j])

                    th.each_thread(stage)
                    th.barrier()

            def store(tx):
                with T.serial(0, ch // tb) as q:
                    e = q * i32(tb) + tirx.Cast("int32", tx)
                    with T.If(e < i32(keep)):
                        with T.Then():
                            if final:
                                dst = unravel(row, lead) + [tirx.Cast("int64", e)]
                                gi = _index_of(sk[e])
                                T.buffer_store(outs[0], x[tuple(unravel(row, lead) + [gi])], dst)
                                T.buffer_store(outs[1], gi, dst)
                            else:
                                dst = [row, tirx.Cast("int64", c), tirx.Cast("int64", e)]
                                T.buffer_store(outs[0], sk[e], dst)

            th.each_thread(store)
    return ib.get()


# --------------------------------------------------------------------------------------------
# stage 2: one merge level


def _merge_ir(det, rows, lead, m, length, keys, x, outs, final, mode="gpu"):
    """Merge list pairs (2p, 2p+1) of keys (rows, m, length) into (rows, m/2, min(2*length, K));
    final: into the outputs (values gathered from x, int64 indices) of shape (lead..., K)."""
    out_len = min(2 * length, det.k)
    steps = int(np.ceil(np.log2(length + 1))) + 1
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    with IRBuilder() as ib:
        total = rows * i64(m * length)
        nb = (total + i64(MERGE_THREADS - 1)) // i64(MERGE_THREADS)
        th = Threads(mode, nb, MERGE_THREADS)
        with th as bx:
            lo = T.decl_buffer([2], "int32", scope="local")
            th.each_thread(
                lambda tx: _merge_one(bx, tx, total, m, length, out_len, steps, lo, lead, keys, x, outs, final)
            )
    return ib.get()


def _merge_one(bx, tx, total, m, length, out_len, steps, lo, lead, keys, x, outs, final):
    """One merge thread: place key `gid` of its list in the merged output (keys are unique, so
    position = own index + number of larger keys in the partner list)."""
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
            me = keys[row, lst, tirx.Cast("int64", i)]
            T.buffer_store(lo, i32(0), [0])
            T.buffer_store(lo, i32(length), [1])
            with T.serial(0, steps):
                with T.If(lo[0] < lo[1]):
                    with T.Then():
                        mid = tirx.shift_right(lo[0] + lo[1], i32(1))
                        with T.If(keys[row, other, tirx.Cast("int64", mid)] > me):
                            with T.Then():
                                T.buffer_store(lo, mid + i32(1), [0])
                            with T.Else():
                                T.buffer_store(lo, mid, [1])
            pos = i + lo[0]
            with T.If(pos < i32(out_len)):
                with T.Then():
                    if final:
                        dst = unravel(row, lead) + [tirx.Cast("int64", pos)]
                        gi = _index_of(me)
                        T.buffer_store(outs[0], x[tuple(unravel(row, lead) + [gi])], dst)
                        T.buffer_store(outs[1], gi, dst)
                    else:
                        T.buffer_store(outs[0], me, [row, lst // i64(2), tirx.Cast("int64", pos)])


# --------------------------------------------------------------------------------------------
# small K: selection in registers


def _small_k_ir(det, rows, lead, x, outs, mode="gpu"):
    """K <= SMALL_K: W warps own a row (SMALL_BLOCK / (32 W) rows per block). Every thread walks
    its strided elements (coalesced: consecutive threads, consecutive positions) keeping the K
    largest keys seen in registers, sorted (a new key enters only when above the K-th: a
    compare-exchange chain, branch-free). A warp merges its 32 sorted lists in K rounds: the
    largest head by a shuffle reduction, its owner pops it, lane r keeps round r's key. With W > 1
    each warp's K keys go to shared memory and the row's first warp merges those W lists the same
    way. Lanes < K write values (read back from X by index) and int64 indices. CPU mode: serial
    loops, the lists of all the row's threads merged in K rounds by serial maxima."""
    n, k, W = det.n, det.k, det.warps
    TT = 32 * W  # threads per row
    RB = SMALL_BLOCK // TT  # rows per block
    per = -(-n // TT)
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    u64 = lambda v: tirx.const(v, "uint64")  # noqa: E731
    gpu = mode == "gpu"

    U = min(SMALL_LOADS, per)

    def scan(lst, off, row, t, cur, kb, vb, kof):
        """lst[off : off + K] = the K largest keys (descending, 0 = none) of thread t's elements."""
        with T.unroll(0, k) as j:
            T.buffer_store(lst, u64(0), [off + j])
        with T.serial(0, -(-per // U)) as qb:  # U loads in flight, then their insertions
            with T.unroll(0, U) as u:  # raw values first (one load each), then their keys
                g = (qb * i32(U) + u) * i32(TT) + t
                with T.If(g < i32(n)):
                    with T.Then():
                        T.buffer_store(vb, x[tuple(unravel(row, lead) + [tirx.Cast("int64", g)])], [kof + u])
            with T.unroll(0, U) as u:
                g = (qb * i32(U) + u) * i32(TT) + t
                T.buffer_store(kb, tirx.Select(g < i32(n), _key(det, vb[kof + u], g), u64(0)), [kof + u])
            with T.unroll(0, U) as u:
                T.buffer_store(cur, kb[kof + u], [0])
                with T.If(cur[0] > lst[off + i32(k - 1)]):
                    with T.Then():
                        with T.unroll(0, k) as j:
                            a = lst[off + j]
                            T.buffer_store(cur, tirx.Select(a > cur[0], cur[0], a), [1])
                            T.buffer_store(lst, tirx.max(a, cur[0]), [off + j])
                            T.buffer_store(cur, cur[1], [0])

    def write(row, r, key):
        dst = unravel(row, lead) + [tirx.Cast("int64", r)]
        gi = _index_of(key)
        T.buffer_store(outs[0], x[tuple(unravel(row, lead) + [gi])], dst)
        T.buffer_store(outs[1], gi, dst)

    with IRBuilder() as ib:
        if not gpu:
            with T.serial(0, rows) as r:
                row = tirx.Cast("int64", r)
                lst = T.decl_buffer([TT * k], "uint64", scope="global")
                cur = T.decl_buffer([3], "uint64", scope="global")
                head = T.decl_buffer([TT], "int32", scope="global")
                kb = T.decl_buffer([TT * U], "uint64", scope="global")
                vb = T.decl_buffer([TT * U], det.dtype, scope="global")
                with T.serial(0, TT) as t:
                    scan(lst, t * i32(k), row, t, cur, kb, vb, t * i32(U))
                    T.buffer_store(head, i32(0), [t])
                with T.serial(0, k) as rr:
                    T.buffer_store(cur, u64(0), [2])
                    with T.serial(0, TT) as t:
                        with T.If(head[t] < i32(k)):
                            with T.Then():
                                T.buffer_store(cur, tirx.max(cur[2], lst[t * i32(k) + head[t]]), [2])
                    with T.serial(0, TT) as t:
                        with T.If(head[t] < i32(k)):
                            with T.Then():
                                with T.If(lst[t * i32(k) + head[t]] == cur[2]):
                                    with T.Then():
                                        T.buffer_store(head, head[t] + i32(1), [t])
                    write(row, rr, cur[2])
            return ib.get()
        nb = (rows + i64(RB - 1)) // i64(RB)
        th = Threads("gpu", nb, SMALL_BLOCK)
        with th as bx:
            t32 = tirx.Cast("int32", th.tx)
            lane = t32 % i32(32)
            if RB > 1:
                t = t32 % i32(TT)
                row = tirx.Cast("int64", bx) * i64(RB) + tirx.Cast("int64", t32 // i32(TT))
            else:  # one row per block (spelled out: TVM's bound estimation trips over t32 // 256)
                t, row = t32, tirx.Cast("int64", bx)
            lst = T.decl_buffer([k], "uint64", scope="local")
            cur = T.decl_buffer([3], "uint64", scope="local")  # [key, spill, round maximum]
            res = T.decl_buffer([1], "uint64", scope="local")
            kb = T.decl_buffer([U], "uint64", scope="local")
            vb = T.decl_buffer([U], det.dtype, scope="local")
            mask = tirx.const(0xFFFFFFFF, "uint32")

            def shfl(op, v, d):
                return tvm.ir.Call(op, [mask, v, d, i32(32), i32(32)], ret_ty="uint64")

            def merge():
                """res (lane r) = round r's key: the r-th largest of the warp's 32 lists."""
                T.buffer_store(res, u64(0), [0])
                with T.unroll(0, k) as rr:
                    T.buffer_store(cur, lst[0], [2])
                    for s in (16, 8, 4, 2, 1):
                        T.buffer_store(cur, tirx.max(cur[2], shfl("tirx.tvm_warp_shuffle_down", cur[2], i32(s))), [2])
                    T.buffer_store(cur, shfl("tirx.tvm_warp_shuffle", cur[2], i32(0)), [2])
                    with T.If(lane == rr):
                        with T.Then():
                            T.buffer_store(res, cur[2], [0])
                    with T.If(tirx.And(lst[0] == cur[2], cur[2] != u64(0))):
                        with T.Then():  # keys are unique: one lane pops its head
                            for j in range(k - 1):
                                T.buffer_store(lst, lst[j + 1], [j])
                            T.buffer_store(lst, u64(0), [k - 1])

            with T.If(row < rows):
                with T.Then():
                    scan(lst, i32(0), row, t, cur, kb, vb, i32(0))
                with T.Else():
                    with T.unroll(0, k) as j:
                        T.buffer_store(lst, u64(0), [j])
            merge()
            if W > 1:
                sh = T.decl_buffer([SMALL_BLOCK // 32 * k], "uint64", scope="shared")
                warp = t32 // i32(32)
                with T.If(lane < i32(k)):
                    with T.Then():
                        T.buffer_store(sh, res[0], [warp * i32(k) + lane])
                th.barrier()
                src = ((warp - t // i32(32) + lane) if RB > 1 else lane) * i32(k)  # list `lane` of the row's warps
                with T.If(lane < i32(W)):
                    with T.Then():
                        with T.unroll(0, k) as j:
                            T.buffer_store(lst, sh[src + j], [j])
                    with T.Else():
                        with T.unroll(0, k) as j:
                            T.buffer_store(lst, u64(0), [j])
                merge()
            with T.If(tirx.And(row < rows, t < i32(k))):  # the row's first warp (K <= 32)
                with T.Then():
                    write(row, t, res[0])
    return ib.get()


# --------------------------------------------------------------------------------------------
# Relax


def emit(bb, params, det, mode="gpu"):
    """(values, indices); a non-last axis goes last through a transpose and the outputs come back."""
    r = len(det.xshape)
    if det.axis == r - 1:
        return _emit_last(bb, params[det.x_index], det, mode)
    perm = [d for d in range(r) if d != det.axis] + [det.axis]
    inv = [perm.index(d) for d in range(r)]
    xt = bb.emit_te(topi.transpose, params[det.x_index], perm, primfunc_name_hint="tpat_topk_transpose")
    both = _emit_last(bb, xt, det, mode)
    outs = [
        bb.emit_te(topi.transpose, bb.emit(relax.TupleGetItem(both, j)), inv, primfunc_name_hint="tpat_topk_transpose")
        for j in range(2)
    ]
    return relax.Tuple(outs)


def _emit_last(bb, x, det, mode="gpu"):
    """Emit chunk sort -> merge levels into main's dataflow block; returns (values, indices)."""
    k, ch, chunks, dtype = det.k, det.ch, det.chunks, det.dtype
    keep = min(ch, k)
    if det.warps:

        def small_stage(xt):
            lead, rows = lead_rows(xt)
            oshape = lead + [k]
            return te.extern(
                [oshape, oshape],
                [xt],
                lambda ins, outs: _small_k_ir(det, rows, lead, ins[0], outs, mode),
                dtype=[dtype, "int64"],
                name="tpat_topk_select",
            )

        return bb.emit_te(small_stage, x, primfunc_name_hint="tpat_topk_select")

    def sort_stage(xt, final):
        lead, rows = lead_rows(xt)
        if final:
            oshape = lead + [k]
            return te.extern(
                [oshape, oshape],
                [xt],
                lambda ins, outs: _chunk_sort_ir(det, rows, lead, ins[0], outs, True, mode),
                dtype=[dtype, "int64"],
                name="tpat_topk_sort",
            )
        return te.extern(
            [(rows, chunks, keep)],
            [xt],
            lambda ins, outs: _chunk_sort_ir(det, rows, lead, ins[0], outs, False, mode),
            dtype="uint64",
            name="tpat_topk_sort",
        )

    if chunks == 1:
        return bb.emit_te(sort_stage, x, True, primfunc_name_hint="tpat_topk_sort")
    keys = bb.emit_te(sort_stage, x, False, primfunc_name_hint="tpat_topk_sort")
    m, length, level = chunks, keep, 0
    while True:
        final = m == 2
        out_len = min(2 * length, k)
        level += 1

        def merge_stage(kt, xt, m=m, length=length, final=final, out_len=out_len):
            lead, rows = lead_rows(xt)
            if final:
                oshape = lead + [k]
                return te.extern(
                    [oshape, oshape],
                    [kt, xt],
                    lambda ins, outs: _merge_ir(det, rows, lead, m, length, ins[0], ins[1], outs, True, mode),
                    dtype=[dtype, "int64"],
                    name="tpat_topk_merge",
                )
            return te.extern(
                [(rows, m // 2, out_len)],
                [kt, xt],
                lambda ins, outs: _merge_ir(det, rows, lead, m, length, ins[0], ins[1], outs, False, mode),
                dtype="uint64",
                name="tpat_topk_merge",
            )

        res = bb.emit_te(merge_stage, keys, x, primfunc_name_hint=f"tpat_topk_merge{level}")
        if final:
            return res
        keys, m, length = res, m // 2, out_len


TOPK = FunctionLowering("topk", ["TopK"], select, emit)

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
from tvm import relax, te, tirx, topi
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .. import dtypes
from .ir import Threads, lead_rows, unravel
from .protocol import Decline, Lowering, NodeView, Selection

DTYPES = dtypes.sizes(*dtypes.FLOATS, "int32")
MAX_THREADS = 1024
MERGE_THREADS = 256


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

    def describe(self) -> str:
        moved = f"axis {self.axis} moved last by a transpose, " if self.axis != len(self.xshape) - 1 else ""
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


class TopKLowering(Lowering):
    name = "topk"
    ops = ("TopK",)

    def select(self, node):
        return select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)


TOPK = TopKLowering()

"""TPAT's own TVM lowering of ONNX CumSum along any axis.

Non-last axis: `_column_ir` (a column scan, see there). Last axis, rows up to SEG_MAX_N (1024):
`_seg_ir`, a segment of up to 32 lanes per row, registers and warp shuffles only. Longer rows:
`_scan_ir`, a block scans a tile of T threads x E elements at a time (registers, warp shuffles, warp
totals in shared memory); rows of 2 to MAX_PARALLEL_TILES tiles get a block per tile (which first
sums the row before its tile); rows of more tiles take three kernels (`_tile_sums_ir`: tile sums,
their scan per row; then the tile scan with the scanned sum as its carry).

TVM 0.27 legalizes CumSum to a multi-kernel scan with host loops (4 kernels, int64 indexing).
Accumulator: float32 for 16-bit floats, else the element type.

`exclusive` and `reverse` are index mappings of the same scan. Everything is TIR written with
TVM's IR builder inside a `te.extern` stage (like topi's scans), through TVM's normal pipeline
and CUDA codegen; `mode="cpu"` runs the same IR with serial loops for the LLVM tests (the
shuffles and shared-memory sums there are serial scans over the threads).
The axis (a constant) must have a static length (and static dims after it when not the last).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tvm
from tvm import relax, te, tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .ir import Threads, lead_rows, unravel
from .protocol import Decline, FunctionLowering, NodeView, Selection

DTYPES = ("float32", "float16", "bfloat16", "float64", "int32", "int64")
MAX_THREADS = 1024
MIN_PER_THREAD = 4  # E: elements per thread and tile
# Up to this many tiles per row, every tile gets its own block, which first sums the row before
# its tile (re-reading at most MAX_PARALLEL_TILES - 1 tiles); longer rows loop over their tiles.
MAX_PARALLEL_TILES = 8
# Column scans (a non-last axis): one thread per (column, chunk of the axis); the axis is cut into
# chunks (at least MIN_CHUNK long) until about COLUMN_THREADS threads run (132 SMs x 2048).
COLUMN_BLOCK = 256
COLUMN_THREADS = 132 * 2048
MIN_CHUNK = 16
CARRY_BATCH = 32  # loads in flight per thread in the scan of the chunk sums
# Last axis, rows up to SEG_MAX_N: a segment of L lanes (L a power of two <= 32) per row, each lane
# scanning up to SEG_PER elements in registers (up to 32 when L = 32), shuffles across the lanes.
SEG_MAX_N = 1024
SEG_PER = 8
SEG_BLOCK = 256
ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int32": 4, "int64": 8}


@dataclass(frozen=True)
class CumSumSelection(Selection):
    dtype: str
    xshape: list
    n: int  # the axis length
    exclusive: bool
    reverse: bool
    threads: int  # T
    per: int  # E
    tiles: int  # tiles per row
    parallel_tiles: bool  # a block per tile (else a block per row)
    x_index: int
    axis: int = -1  # normalized; not the last one: a column scan
    inner: int = 1  # product of the dims after the axis (column scan)
    chunks: int = 1  # column scan: chunks of the axis scanned in parallel (3 kernels when > 1)
    three_phase: bool = False  # last axis, many tiles: tile sums, their scan per row, tile scans
    lanes: int = 0  # > 0: short rows, a segment of `lanes` lanes per row (`_seg_ir`)
    vec: int = 1  # short rows: elements per vector load/store (rows split evenly over the lanes)

    def describe(self) -> str:
        flags = ", ".join(f for f, on in (("exclusive", self.exclusive), ("reverse", self.reverse)) if on)
        if self.axis != len(self.xshape) - 1:
            how = (
                f"{self.chunks} chunks of {-(-self.n // self.chunks)}: chunk sums, their scan, chunk scans"
                if self.chunks > 1
                else "one thread per column"
            )
            return (
                f"cumsum (axis {self.axis}, column scan, {self.inner} column(s) per outer index, {how}"
                + (f", {flags}" if flags else "")
                + ")"
            )
        if self.lanes:
            return (
                f"cumsum (last axis, {self.lanes} lane(s) per row x {self.per}, warp shuffles"
                + (f", {self.vec}-wide vector loads" if self.vec > 1 else "")
                + (f", {flags}" if flags else "")
                + ")"
            )
        how = (
            "tile sums, their scan, one block per tile"
            if self.three_phase
            else "one block per tile"
            if self.parallel_tiles
            else "one block per row"
        )
        return (
            f"cumsum (last axis, {self.threads} threads x {self.per}, {self.tiles} tile(s) per row, {how}"
            + (f", {self.vec}-wide vector loads" if self.vec > 1 else "")
            + (f", {flags}" if flags else "")
            + ")"
        )


def select(node: NodeView) -> CumSumSelection | Decline:
    ops = node.operands
    if len(ops) != 2 or not ops[0].is_param or not ops[1].is_const:
        return Decline("CumSum needs a runtime X and a constant axis")
    xshape, dtype = ops[0].shape, ops[0].dtype
    if dtype not in DTYPES or node.outputs[0]["dtype"] != dtype:
        return Decline(f"dtype {dtype}")
    r = len(xshape)
    if r == 0:
        return Decline("scalar input")
    axis = ops[1].scalar_int("axis")
    if not -r <= axis < r:
        return Decline(f"axis {axis} out of range for rank {r}")
    axis %= r
    n = xshape[axis]
    if not isinstance(n, int) or n < 1 or n >= 2**31:
        return Decline("axis length must be static")
    exclusive, reverse = bool(int(node.attr("exclusive", 0))), bool(int(node.attr("reverse", 0)))
    if axis != r - 1:  # a column scan: (outer, n, inner), consecutive threads on consecutive columns
        rest = xshape[axis + 1 :]
        if not all(isinstance(d, int) for d in rest):
            return Decline("the dims after a non-last axis must be static")
        inner = math.prod(rest)  # exact: np.prod wraps in int64 on hostile dims
        outer = math.prod(xshape[:axis]) if all(isinstance(d, int) for d in xshape[:axis]) else 1
        cols = outer * inner
        if cols < 1:
            return Decline("a zero-size dim: nothing to scan")
        chunks = 1
        if n >= 2 * MIN_CHUNK and cols < COLUMN_THREADS:
            chunks = min(-(-n // MIN_CHUNK), -(-COLUMN_THREADS // cols))
            chunks = -(-n // -(-n // chunks))  # every chunk non-empty
        return CumSumSelection(
            dtype=dtype,
            xshape=xshape,
            n=n,
            exclusive=exclusive,
            reverse=reverse,
            threads=COLUMN_BLOCK,
            per=1,
            tiles=1,
            parallel_tiles=False,
            x_index=ops[0].index,
            axis=axis,
            inner=inner,
            chunks=chunks,
        )
    if n <= SEG_MAX_N:
        lanes = 1
        while lanes < 32 and lanes * SEG_PER < n:
            lanes *= 2
        per = -(-n // lanes)
        vec = 1
        if n == lanes * per:
            while vec * 2 * ITEMSIZE[dtype] <= 16 and per % (vec * 2) == 0:
                vec *= 2
        return CumSumSelection(
            dtype=dtype,
            xshape=xshape,
            n=n,
            exclusive=exclusive,
            reverse=reverse,
            axis=axis,
            threads=SEG_BLOCK,
            per=per,
            tiles=1,
            parallel_tiles=False,
            x_index=ops[0].index,
            lanes=lanes,
            vec=vec,
        )
    per = max(MIN_PER_THREAD, 16 // ITEMSIZE[dtype])  # 16-byte vectors (two for 64-bit types)
    threads = 32
    while threads < MAX_THREADS and threads * per < n:
        threads *= 2
    tiles = -(-n // (threads * per))
    vec = min(per, 16 // ITEMSIZE[dtype]) if n % (threads * per) == 0 else 1
    return CumSumSelection(
        dtype=dtype,
        xshape=xshape,
        n=n,
        exclusive=exclusive,
        reverse=reverse,
        axis=axis,
        threads=threads,
        per=per,
        tiles=tiles,
        parallel_tiles=tiles > 1,
        three_phase=tiles > MAX_PARALLEL_TILES,
        x_index=ops[0].index,
        vec=vec,
    )


def _acc_dtype(dtype):
    return "float32" if dtype in ("float16", "bfloat16") else dtype


def _tile_sums_ir(det, rows, lead, x, part, mode="gpu"):
    """Three-phase kernels 1 and 2: a block per (row, tile) sums its tile (coalesced loads, block
    reduction through the thread totals) into part[row, tile]; then a thread per row scans its
    tile sums exclusively (CARRY_BATCH loads in flight)."""
    tb, per, tiles, dtype, n = det.threads, det.per, det.tiles, det.dtype, det.n
    acc = _acc_dtype(dtype)
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    gpu = mode == "gpu"
    loc = "local" if gpu else "global"
    zero = tirx.const(0, acc)
    with IRBuilder() as ib1:
        th = Threads(mode, rows * tiles, tb)
        with th as bx:
            pf = T.decl_buffer([rows * i64(tiles)], acc, data=part.data)
            row = tirx.Cast("int64", bx) // i64(tiles)
            tile = tirx.Cast("int32", tirx.Cast("int64", bx) % i64(tiles))
            lead_idx = unravel(row, lead)
            red = T.decl_buffer([tb], acc, scope="shared" if gpu else "global")
            run = T.decl_buffer([1] if gpu else [tb], acc, scope=loc)

            def R(tx):
                return [0] if gpu else [tirx.Cast("int32", tx)]

            def partial(tx):
                t32 = tirx.Cast("int32", tx)
                T.buffer_store(run, zero, R(tx))
                with T.unroll(0, per) as q:
                    p = tile * i32(tb * per) + q * i32(tb) + t32
                    e = tirx.Cast("int64", (i32(n - 1) - p) if det.reverse else p)
                    with T.If(p < i32(n)):
                        with T.Then():
                            v = x[tuple(lead_idx + [e])]
                            v = tirx.Cast(acc, v) if acc != dtype else v
                            T.buffer_store(run, run[tuple(R(tx))] + v, R(tx))
                T.buffer_store(red, run[tuple(R(tx))], [t32])

            th.each_thread(partial)
            th.barrier()
            half = tb // 2
            while half >= 1:  # tree reduction in shared memory

                def step(tx, half=half):
                    t32 = tirx.Cast("int32", tx)
                    with T.If(t32 < i32(half)):
                        with T.Then():
                            T.buffer_store(red, red[t32] + red[t32 + i32(half)], [t32])

                th.each_thread(step)
                th.barrier()
                half //= 2

            def write(tx):
                with T.If(tirx.Cast("int32", tx) == i32(0)):
                    with T.Then():
                        T.buffer_store(pf, red[0], [tirx.Cast("int64", bx)])

            th.each_thread(write)
    with IRBuilder() as ib2:
        nb = (rows + i64(COLUMN_BLOCK - 1)) // i64(COLUMN_BLOCK)
        th = Threads(mode, nb, COLUMN_BLOCK)
        with th as bx:
            pf = T.decl_buffer([rows * i64(tiles)], acc, data=part.data)

            def carries(tx):
                r = tirx.Cast("int64", bx) * i64(COLUMN_BLOCK) + tirx.Cast("int64", tx)
                with T.If(r < rows):
                    with T.Then():
                        run = T.decl_buffer([1], acc, scope=loc)
                        tmp = T.decl_buffer([CARRY_BATCH], acc, scope=loc)
                        T.buffer_store(run, zero, [0])
                        with T.serial(0, -(-tiles // CARRY_BATCH)) as b:
                            with T.unroll(0, CARRY_BATCH) as j:
                                with T.If(b * CARRY_BATCH + j < tiles):
                                    with T.Then():
                                        T.buffer_store(
                                            tmp, pf[r * i64(tiles) + tirx.Cast("int64", b * CARRY_BATCH + j)], [j]
                                        )
                            with T.unroll(0, CARRY_BATCH) as j:
                                with T.If(b * CARRY_BATCH + j < tiles):
                                    with T.Then():
                                        T.buffer_store(
                                            pf, run[0], [r * i64(tiles) + tirx.Cast("int64", b * CARRY_BATCH + j)]
                                        )
                                        T.buffer_store(run, run[0] + tmp[j], [0])

            th.each_thread(carries)
    return [ib1.get(), ib2.get()]


def _scan_ir(det, rows, lead, x, out, mode="gpu", part=None):
    """Rows longer than SEG_MAX_N: a block of T threads scans a tile of T x E positions at a time,
    thread t owning E consecutive elements of the tile in registers (16-byte vector loads/stores
    when every tile is full): (1) each thread scans its elements; (2) each warp scans the thread
    totals by shuffles, its last lane (in scan order) puts the warp total in shared memory
    (double-buffered by tile parity: one barrier per tile); (3) every thread adds the warp totals
    before its warp (at most 32 broadcast reads), the thread prefix and the carry (earlier tiles),
    and stores. The carry of a block's first tile: 0 (a block per row), the sum of the row before
    the tile (a block per tile: each thread sums its elements of the earlier tiles, then a shuffle
    + shared block sum), or the
    scanned tile sums of the three-phase kernels. `reverse`: the tiles, warps, lanes and each
    thread's elements are taken backwards. CPU mode: serial loops over blocks and threads, the
    thread totals scanned serially in place of shuffles and shared memory."""
    n, tb, per, tiles, dtype = det.n, det.threads, det.per, det.tiles, det.dtype
    te_ = tb * per  # positions per tile
    nw = tb // 32
    acc = _acc_dtype(dtype)
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    zero = tirx.const(0, acc)
    gpu = mode == "gpu"
    par = det.parallel_tiles
    vec = det.vec
    full = vec > 1  # every tile full and 16-byte aligned: vector access, no guards

    def cvt(v):
        return tirx.Cast(acc, v) if acc != dtype else v

    def ebase(tt):
        """First element (int32, negative for a reverse partial tile) of tile tt."""
        return (i32(n) - (tt + i32(1)) * i32(te_)) if det.reverse else tt * i32(te_)

    def load(xf, raw, off, rbase, e0):
        if full:
            with T.unroll(0, per // vec) as j:
                with T.vectorized(0, vec) as v:
                    T.buffer_store(raw, xf[rbase + tirx.Cast("int64", e0 + j * vec + v)], [off + j * vec + v])
            return
        with T.unroll(0, per) as e:
            with T.If(tirx.And(e0 + e >= i32(0), e0 + e < i32(n))):
                with T.Then():
                    T.buffer_store(raw, xf[rbase + tirx.Cast("int64", e0 + e)], [off + e])
                with T.Else():
                    T.buffer_store(raw, tirx.const(0, dtype), [off + e])

    def local_scan(raw, loc, off, tot, ti):
        T.buffer_store(tot, zero, [ti])
        with T.unroll(0, per) as q:
            e = (i32(per - 1) - q) if det.reverse else q
            v = cvt(raw[off + e])
            if det.exclusive:
                T.buffer_store(loc, tot[ti], [off + e])
                T.buffer_store(tot, tot[ti] + v, [ti])
            else:
                T.buffer_store(tot, tot[ti] + v, [ti])
                T.buffer_store(loc, tot[ti], [off + e])

    def store(of, raw, loc, off, rbase, e0, pre):
        with T.unroll(0, per) as e:
            s = loc[off + e] + pre
            T.buffer_store(raw, tirx.Cast(dtype, s) if acc != dtype else s, [off + e])
        if full:
            with T.unroll(0, per // vec) as j:
                with T.vectorized(0, vec) as v:
                    T.buffer_store(of, raw[off + j * vec + v], [rbase + tirx.Cast("int64", e0 + j * vec + v)])
            return
        with T.unroll(0, per) as e:
            with T.If(tirx.And(e0 + e >= i32(0), e0 + e < i32(n))):
                with T.Then():
                    T.buffer_store(of, raw[off + e], [rbase + tirx.Cast("int64", e0 + e)])

    def views():
        xf = T.decl_buffer([rows * i64(n)], dtype, data=x.data)
        of = T.decl_buffer([rows * i64(n)], dtype, data=out.data)
        pf = T.decl_buffer([rows * i64(tiles)], acc, data=part.data) if det.three_phase else None
        return xf, of, pf

    def block_of(bx):
        """(row (int64), this block's tile (int32) or None, flat block index)."""
        if not par:
            return tirx.Cast("int64", bx), None, None
        b64 = tirx.Cast("int64", bx)
        if det.three_phase and gpu:  # last blocks first: their tiles were read last (L2)
            b64 = rows * i64(tiles) - i64(1) - b64
        return b64 // i64(tiles), tirx.Cast("int32", b64 % i64(tiles)), b64

    with IRBuilder() as ib:
        nblocks = rows * i64(tiles) if par else rows
        if not gpu:
            with T.serial(0, nblocks) as b:
                xf, of, pf = views()
                raw = T.decl_buffer([te_], dtype, scope="global")
                loc = T.decl_buffer([te_], acc, scope="global")
                tot = T.decl_buffer([tb], acc, scope="global")
                pre = T.decl_buffer([tb + 1], acc, scope="global")  # pre[T]: the tile total
                carry = T.decl_buffer([1], acc, scope="global")
                row, my_tile, bflat = block_of(b)
                rbase = row * i64(n)
                T.buffer_store(carry, zero, [0])
                if det.three_phase:
                    T.buffer_store(carry, pf[bflat], [0])
                elif par:
                    with T.serial(0, tb) as t:
                        with T.serial(0, my_tile) as q:
                            load(xf, raw, t * i32(per), rbase, ebase(q) + t * i32(per))
                            with T.serial(0, per) as e:
                                T.buffer_store(carry, carry[0] + cvt(raw[t * i32(per) + e]), [0])
                with T.serial(0, 1 if par else tiles) as tl:
                    tt = my_tile if par else tl
                    with T.serial(0, tb) as t:
                        load(xf, raw, t * i32(per), rbase, ebase(tt) + t * i32(per))
                        local_scan(raw, loc, t * i32(per), tot, t)
                    T.buffer_store(pre, zero, [tb])
                    with T.serial(0, tb) as q:  # exclusive scan of the thread totals in scan order
                        k = (i32(tb - 1) - q) if det.reverse else q
                        T.buffer_store(pre, pre[tb], [k])
                        T.buffer_store(pre, pre[tb] + tot[k], [tb])
                    with T.serial(0, tb) as t:
                        store(of, raw, loc, t * i32(per), rbase, ebase(tt) + t * i32(per), pre[t] + carry[0])
                    T.buffer_store(carry, carry[0] + pre[tb], [0])
            return ib.get()
        th = Threads("gpu", nblocks, tb)
        with th as bx:
            xf, of, pf = views()
            t = tirx.Cast("int32", th.tx)
            lane, w = t % i32(32), t // i32(32)
            row, my_tile, bflat = block_of(bx)
            rbase = row * i64(n)
            raw = T.decl_buffer([per], dtype, scope="local")
            loc = T.decl_buffer([per], acc, scope="local")
            s = T.decl_buffer([5], acc, scope="local")  # [thread scan, shuffled, carry, before, total]
            wt = T.decl_buffer([2 * nw], acc, scope="shared")  # warp totals, by tile parity
            mask = tirx.const(0xFFFFFFFF, "uint32")

            def shfl(op, v, d, width=32):
                return tvm.ir.Call(op, [mask, v, d, i32(width), i32(32)], ret_ty=acc)

            def warps_sum(k, par_off, before):
                """s[k] = sum of wt[par_off + j] over the warps j before this one in scan order
                (before) or over all warps."""
                T.buffer_store(s, zero, [k])
                with T.unroll(0, nw) as j:
                    v = wt[par_off + j]
                    if before:
                        cond = (j > w) if det.reverse else (j < w)
                        v = tirx.Select(cond, v, zero)
                    T.buffer_store(s, s[k] + v, [k])

            T.buffer_store(s, zero, [2])
            if det.three_phase:
                T.buffer_store(s, pf[bflat], [2])
            elif par:  # the sum of the row before this tile: partial sums, warp + shared reduction
                with T.serial(0, my_tile) as q:  # this thread's elements of the earlier tiles
                    load(xf, raw, 0, rbase, ebase(q) + t * i32(per))
                    with T.unroll(0, per) as e:
                        T.buffer_store(s, s[2] + cvt(raw[e]), [2])
                for d in (16, 8, 4, 2, 1):
                    T.buffer_store(s, s[2] + shfl("tirx.tvm_warp_shuffle_down", s[2], i32(d)), [2])
                with T.If(lane == i32(0)):
                    with T.Then():
                        T.buffer_store(wt, s[2], [nw + w])  # parity 1: tile parity 0 comes first
                th.barrier()
                warps_sum(2, nw, False)
            with T.serial(0, 1 if par else tiles) as tl:
                tt = my_tile if par else tl
                po = (tl % i32(2)) * i32(nw)
                e0 = ebase(tt) + t * i32(per)
                load(xf, raw, 0, rbase, e0)
                local_scan(raw, loc, 0, s, 0)
                up = not det.reverse
                op = "tirx.tvm_warp_shuffle_up" if up else "tirx.tvm_warp_shuffle_down"
                d = 1
                while d < 32:
                    T.buffer_store(s, shfl(op, s[0], i32(d)), [1])
                    with T.If((lane >= i32(d)) if up else (lane + i32(d) < i32(32))):
                        with T.Then():
                            T.buffer_store(s, s[0] + s[1], [0])
                    d *= 2
                with T.If(lane == (i32(31) if up else i32(0))):
                    with T.Then():
                        T.buffer_store(wt, s[0], [po + w])
                T.buffer_store(s, shfl(op, s[0], i32(1)), [1])
                with T.If(lane == (i32(0) if up else i32(31))):
                    with T.Then():
                        T.buffer_store(s, zero, [1])
                th.barrier()
                warps_sum(3, po, True)
                store(of, raw, loc, 0, rbase, e0, s[2] + s[3] + s[1])
                if not par:
                    warps_sum(4, po, False)
                    T.buffer_store(s, s[2] + s[4], [2])
    return ib.get()


def _flat_threads(mode, total, body, reverse_blocks=False):
    """body(i) for i in [0, total): a kernel of COLUMN_BLOCK-thread blocks (guarded) or a serial loop."""
    if mode != "gpu":
        with T.serial(0, total) as i:
            body(tirx.Cast("int64", i))
        return
    bx, tx = te.thread_axis("blockIdx.x"), te.thread_axis("threadIdx.x")
    nb = (total + tirx.const(COLUMN_BLOCK - 1, "int64")) // tirx.const(COLUMN_BLOCK, "int64")
    with T.frame_scope(
        [T.attr(bx, "thread_extent", tirx.Cast("int32", nb)), T.attr(tx, "thread_extent", COLUMN_BLOCK)]
    ):
        b = tirx.Cast("int64", bx)
        if reverse_blocks:  # the last blocks of the previous kernel's data are likeliest in L2
            b = nb - tirx.const(1, "int64") - b
        i = b * tirx.const(COLUMN_BLOCK, "int64") + tirx.Cast("int64", tx)
        with T.If(i < total):
            with T.Then():
                body(i)


def _column_ir(det, outer, x, out, part, mode="gpu"):
    """CumSum along a non-last axis of X seen as (outer, n, inner): a thread per column scans it
    serially, reading and writing whole rows coalesced (consecutive threads, consecutive columns).
    With chunks C > 1 (too few columns to fill the GPU): (1) a thread per (outer, chunk, column)
    sums its chunk into part; (2) a thread per column scans part exclusively over the chunks;
    (3) a thread per (outer, chunk, column) rescans its chunk from that carry. 2 reads + 1 write."""
    n, inner, C, dtype = det.n, det.inner, det.chunks, det.dtype
    acc = _acc_dtype(dtype)
    L = -(-n // C)
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    flat = {}  # flat views of X, Y and the chunk sums, declared in every kernel's builder

    class _View:
        def __init__(self, key):
            self.key = key

        def __getitem__(self, i):
            return flat[self.key][i]

    xflat, oflat, pflat = _View("x"), _View("o"), _View("p")

    def store(view, v, idx):
        T.buffer_store(flat[view.key], v, idx)

    def pos(o, p, col):  # flat index of scan position p (reverse maps it) of column col
        e = (i64(n - 1) - p) if det.reverse else p
        return (o * i64(n) + e) * i64(inner) + col

    def load(o, p, col):
        v = xflat[pos(o, p, col)]
        return tirx.Cast(acc, v) if acc != dtype else v

    def scan_chunk(o, c, col, carry0):
        run = T.decl_buffer([1], acc, scope="local" if mode == "gpu" else "global")
        T.buffer_store(run, carry0, [0])
        lo = c * i64(L)
        with T.serial(0, tirx.Cast("int32", tirx.min(i64(L), i64(n) - lo))) as q:
            p = lo + tirx.Cast("int64", q)
            v = load(o, p, col)
            if det.exclusive:
                res = run[0]
                store(oflat, tirx.Cast(dtype, res) if acc != dtype else res, [pos(o, p, col)])
                T.buffer_store(run, run[0] + v, [0])
            else:
                T.buffer_store(run, run[0] + v, [0])
                res = run[0]
                store(oflat, tirx.Cast(dtype, res) if acc != dtype else res, [pos(o, p, col)])

    cols = outer * i64(inner)

    def kernel(total, body, reverse_blocks=False):  # one IRBuilder per kernel; the stage is their sequence
        def declared(i):
            flat["x"] = T.decl_buffer([outer * i64(n * inner)], dtype, data=x.data)
            flat["o"] = T.decl_buffer([outer * i64(n * inner)], dtype, data=out.data)
            flat["p"] = T.decl_buffer([outer * i64(C * inner)], acc, data=part.data)
            body(i)

        with IRBuilder() as ib:
            _flat_threads(mode, total, declared, reverse_blocks)
        return ib.get()

    if C == 1:
        return kernel(cols, lambda i: scan_chunk(i // i64(inner), i64(0), i % i64(inner), tirx.const(0, acc)))

    def sums(i):  # i = (o * C + c) * inner + col
        col, oc = i % i64(inner), i // i64(inner)
        o, c = oc // i64(C), oc % i64(C)
        run = T.decl_buffer([1], acc, scope="local" if mode == "gpu" else "global")
        T.buffer_store(run, tirx.const(0, acc), [0])
        lo = c * i64(L)
        with T.serial(0, tirx.Cast("int32", tirx.min(i64(L), i64(n) - lo))) as q:
            T.buffer_store(run, run[0] + load(o, lo + tirx.Cast("int64", q), col), [0])
        store(pflat, run[0], [i])

    def carries(i):  # i = o * inner + col: exclusive scan of part over the chunks, CARRY_BATCH
        # independent loads in flight at a time (the chain of adds stays in registers)
        col, o = i % i64(inner), i // i64(inner)
        loc = "local" if mode == "gpu" else "global"
        run = T.decl_buffer([1], acc, scope=loc)
        tmp = T.decl_buffer([CARRY_BATCH], acc, scope=loc)
        T.buffer_store(run, tirx.const(0, acc), [0])
        nbatch = -(-C // CARRY_BATCH)
        with T.serial(0, nbatch) as b:

            def k(j):
                return (o * i64(C) + tirx.Cast("int64", b * CARRY_BATCH + j)) * i64(inner) + col

            with T.unroll(0, CARRY_BATCH) as j:
                with T.If(b * CARRY_BATCH + j < C):
                    with T.Then():
                        T.buffer_store(tmp, pflat[k(j)], [j])
            with T.unroll(0, CARRY_BATCH) as j:
                with T.If(b * CARRY_BATCH + j < C):
                    with T.Then():
                        store(pflat, run[0], [k(j)])
                        T.buffer_store(run, run[0] + tmp[j], [0])

    def rescan(i):
        col, oc = i % i64(inner), i // i64(inner)
        scan_chunk(oc // i64(C), oc % i64(C), col, pflat[i])

    return tirx.SeqStmt([kernel(cols * i64(C), sums), kernel(cols, carries), kernel(cols * i64(C), rescan, True)])


def _seg_ir(det, rows, x, out, mode="gpu"):
    """Short rows (n <= SEG_MAX_N): a segment of L lanes (a power of two up to a warp) owns a row,
    each lane `per` consecutive elements in registers (vector loads/stores of `vec` elements when
    the row splits evenly): (1) each lane scans its elements serially; (2) the segment scans the
    lane totals with warp shuffles of width L (log2(L) steps, no shared memory, no barrier) and
    shifts them by one lane; (3) each lane adds that prefix and stores. A block of SEG_BLOCK
    threads holds SEG_BLOCK / L rows. `reverse` scans the lane's elements and the lanes backwards
    (shuffles down instead of up). CPU mode: serial loops over rows and lanes, the lane totals
    scanned serially in place of the shuffles."""
    n, L, per, vec, dtype = det.n, det.lanes, det.per, det.vec, det.dtype
    acc = _acc_dtype(dtype)
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    zero = tirx.const(0, acc)
    even = n == L * per  # every lane has `per` valid elements: no guards, vector access
    gpu = mode == "gpu"

    def views():
        xf = T.decl_buffer([rows * i64(n)], dtype, data=x.data)
        of = T.decl_buffer([rows * i64(n)], dtype, data=out.data)
        return xf, of

    def load(xf, raw, off, row, lane, ok):
        """raw[off + e] = this lane's elements (zero where outside the row or past the rows)."""
        base = row * i64(n) + tirx.Cast("int64", lane * i32(per))
        with T.If(ok):
            with T.Then():
                if even:
                    with T.unroll(0, per // vec) as j:
                        with T.vectorized(0, vec) as v:
                            T.buffer_store(raw, xf[base + tirx.Cast("int64", j * vec + v)], [off + j * vec + v])
                else:
                    with T.unroll(0, per) as e:
                        with T.If(lane * i32(per) + e < i32(n)):
                            with T.Then():
                                T.buffer_store(raw, xf[base + tirx.Cast("int64", e)], [off + e])
                            with T.Else():
                                T.buffer_store(raw, tirx.const(0, dtype), [off + e])
            with T.Else():
                with T.unroll(0, per) as e:
                    T.buffer_store(raw, tirx.const(0, dtype), [off + e])

    def local_scan(raw, loc, off, tot, t):
        """loc[off + e] = scan of the lane's elements in scan order; tot[t] = their total."""
        T.buffer_store(tot, zero, [t])
        with T.unroll(0, per) as q:
            e = (i32(per - 1) - q) if det.reverse else q
            v = raw[off + e]
            v = tirx.Cast(acc, v) if acc != dtype else v
            if det.exclusive:
                T.buffer_store(loc, tot[t], [off + e])
                T.buffer_store(tot, tot[t] + v, [t])
            else:
                T.buffer_store(tot, tot[t] + v, [t])
                T.buffer_store(loc, tot[t], [off + e])

    def store(of, raw, loc, off, row, lane, ok, pre):
        base = row * i64(n) + tirx.Cast("int64", lane * i32(per))
        with T.unroll(0, per) as e:
            s = loc[off + e] + pre
            T.buffer_store(raw, tirx.Cast(dtype, s) if acc != dtype else s, [off + e])
        with T.If(ok):
            with T.Then():
                if even:
                    with T.unroll(0, per // vec) as j:
                        with T.vectorized(0, vec) as v:
                            T.buffer_store(of, raw[off + j * vec + v], [base + tirx.Cast("int64", j * vec + v)])
                else:
                    with T.unroll(0, per) as e:
                        with T.If(lane * i32(per) + e < i32(n)):
                            with T.Then():
                                T.buffer_store(of, raw[off + e], [base + tirx.Cast("int64", e)])

    with IRBuilder() as ib:
        if not gpu:
            with T.serial(0, rows) as r:
                xf, of = views()
                raw = T.decl_buffer([L * per], dtype, scope="global")
                loc = T.decl_buffer([L * per], acc, scope="global")
                tot = T.decl_buffer([L], acc, scope="global")
                pre = T.decl_buffer([L + 1], acc, scope="global")  # pre[L]: the running total
                row = tirx.Cast("int64", r)
                ok = row < rows
                with T.serial(0, L) as lane:
                    load(xf, raw, lane * i32(per), row, lane, ok)
                    local_scan(raw, loc, lane * i32(per), tot, lane)
                T.buffer_store(pre, zero, [L])
                with T.serial(0, L) as q:  # exclusive scan of the lane totals in scan order
                    k = (i32(L - 1) - q) if det.reverse else q
                    T.buffer_store(pre, pre[L], [k])
                    T.buffer_store(pre, pre[L] + tot[k], [L])
                with T.serial(0, L) as lane:
                    store(of, raw, loc, lane * i32(per), row, lane, ok, pre[lane])
            return ib.get()
        nb = (rows + i64(SEG_BLOCK // L - 1)) // i64(SEG_BLOCK // L)
        th = Threads("gpu", nb, SEG_BLOCK)
        with th as bx:
            xf, of = views()
            t32 = tirx.Cast("int32", th.tx)
            lane = t32 % i32(L)
            row = tirx.Cast("int64", bx) * i64(SEG_BLOCK // L) + tirx.Cast("int64", t32 // i32(L))
            ok = row < rows
            raw = T.decl_buffer([per], dtype, scope="local")
            loc = T.decl_buffer([per], acc, scope="local")
            tot = T.decl_buffer([2], acc, scope="local")  # [lane total -> inclusive scan, prefix]
            load(xf, raw, i32(0), row, lane, ok)
            local_scan(raw, loc, i32(0), tot, 0)
            if L == 1:
                T.buffer_store(tot, zero, [1])
            else:
                mask = tirx.const(0xFFFFFFFF, "uint32")  # every lane runs the shuffles
                op = "tirx.tvm_warp_shuffle_down" if det.reverse else "tirx.tvm_warp_shuffle_up"

                def shfl(v, d):
                    return tvm.ir.Call(op, [mask, v, i32(d), i32(L), i32(32)], ret_ty=acc)

                def has(d):  # the lane d places earlier in scan order is in the same segment
                    return (lane + i32(d) < i32(L)) if det.reverse else (lane >= i32(d))

                d = 1
                while d < L:
                    T.buffer_store(tot, shfl(tot[0], d), [1])
                    with T.If(has(d)):
                        with T.Then():
                            T.buffer_store(tot, tot[0] + tot[1], [0])
                    d *= 2
                T.buffer_store(tot, shfl(tot[0], 1), [1])
                with T.If(tirx.Not(has(1))):
                    with T.Then():
                        T.buffer_store(tot, zero, [1])
            store(of, raw, loc, i32(0), row, lane, ok, tot[1])
    return ib.get()


def emit(bb, params, det, mode="gpu"):
    if det.axis != len(det.xshape) - 1:

        def cstage(xt):
            outer = tirx.const(1, "int64")
            for d in xt.shape[: det.axis]:
                outer = outer * d
            outs = te.extern(
                [xt.shape, [outer, det.chunks, det.inner]],
                [xt],
                lambda ins, outs: _column_ir(det, outer, ins[0], outs[0], outs[1], mode),
                dtype=[det.dtype, _acc_dtype(det.dtype)],
                name="tpat_cumsum",
            )
            return outs

        both = bb.emit_te(cstage, params[det.x_index], primfunc_name_hint="tpat_cumsum")
        return bb.emit(relax.TupleGetItem(both, 0))

    def stage3(xt):
        lead, rows = lead_rows(xt)
        return te.extern(
            [xt.shape, [rows, det.tiles]],
            [xt],
            lambda ins, outs: tirx.SeqStmt(
                _tile_sums_ir(det, rows, lead, ins[0], outs[1], mode)
                + [_scan_ir(det, rows, lead, ins[0], outs[0], mode, outs[1])]
            ),
            dtype=[det.dtype, _acc_dtype(det.dtype)],
            name="tpat_cumsum",
        )

    if det.lanes:

        def sstage(xt):
            _, rows = lead_rows(xt)
            return te.extern(
                [xt.shape],
                [xt],
                lambda ins, outs: _seg_ir(det, rows, ins[0], outs[0], mode),
                dtype=det.dtype,
                name="tpat_cumsum",
            )

        return bb.emit_te(sstage, params[det.x_index], primfunc_name_hint="tpat_cumsum")

    if det.three_phase:
        both = bb.emit_te(stage3, params[det.x_index], primfunc_name_hint="tpat_cumsum")
        return bb.emit(relax.TupleGetItem(both, 0))

    def stage(xt):
        lead, rows = lead_rows(xt)
        return te.extern(
            [xt.shape],
            [xt],
            lambda ins, outs: _scan_ir(det, rows, lead, ins[0], outs[0], mode),
            dtype=det.dtype,
            name="tpat_cumsum",
        )

    return bb.emit_te(stage, params[det.x_index], primfunc_name_hint="tpat_cumsum")


CUMSUM = FunctionLowering("cumsum", ["CumSum"], select, emit)

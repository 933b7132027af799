"""TPAT's own TVM lowering of ONNX CumSum along any axis.

Non-last axis: `_column_ir` (a column scan, see there). Last axis, rows of more than
MAX_PARALLEL_TILES tiles: three kernels (`_tile_sums_ir`: tile sums, their scan per row; then the
tile scan below with the scanned sum as its carry). Otherwise one kernel, one pass:

TVM 0.27 legalizes CumSum to a multi-kernel scan with host loops (4 kernels, int64 indexing).
Here one thread block scans one row (rows are the leading dimensions, which may be symbolic),
tile by tile (a tile = T threads x E elements, in shared memory; accumulator float32 for 16-bit
floats, else the element type):

  1. the tile is loaded coalesced (consecutive threads, consecutive elements);
  2. each thread scans E consecutive elements of the tile;
  3. the block scans the T thread totals (Hillis-Steele, log2(T) steps, double-buffered);
  4. each thread adds the totals before it and the running total of earlier tiles; the tile is
     stored coalesced.

`exclusive` and `reverse` are index mappings of the same scan. Everything is TIR written with
TVM's IR builder inside a `te.extern` stage (like topi's scans), through TVM's normal pipeline
and CUDA codegen; `mode="cpu"` runs the same IR with serial loops for the LLVM tests.
The axis (a constant) must have a static length (and static dims after it when not the last).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tvm import relax, te, tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .ir import Threads, lead_rows, unravel
from .protocol import Decline, Lowering, NodeView, Selection

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
        how = (
            "tile sums, their scan, one block per tile"
            if self.three_phase
            else "one block per tile"
            if self.parallel_tiles
            else "one block per row"
        )
        return (
            f"cumsum (last axis, {self.threads} threads x {self.per}, {self.tiles} tile(s) per row, {how}"
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
    threads = 32
    while threads < MAX_THREADS and threads * MIN_PER_THREAD < n:
        threads *= 2
    per = MIN_PER_THREAD
    tiles = -(-n // (threads * per))
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
    n, tb, per, tiles, dtype = det.n, det.threads, det.per, det.tiles, det.dtype
    tile = tb * per
    acc = _acc_dtype(dtype)
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    zero = tirx.const(0, acc)
    steps = int(np.log2(tb))
    fin = steps % 2
    gpu = mode == "gpu"
    scope = "shared" if gpu else "global"
    par = det.parallel_tiles
    with IRBuilder() as ib:
        th = Threads(mode, rows * tiles if par else rows, tb)
        with th as bx:
            if par:
                b64 = tirx.Cast("int64", bx)
                if det.three_phase and gpu:  # last blocks first: their tiles were read last (L2)
                    b64 = rows * tirx.const(tiles, "int64") - tirx.const(1, "int64") - b64
                row = b64 // tirx.const(tiles, "int64")
                my_tile = tirx.Cast("int32", b64 % tirx.const(tiles, "int64"))
                b_flat = b64
            else:
                row = tirx.Cast("int64", bx)
            lead_idx = unravel(row, lead)
            buf = T.decl_buffer([tile], acc, scope=scope)  # the tile, in scan order
            tot = T.decl_buffer([2, tb], acc, scope=scope)  # thread totals, double-buffered
            carry = T.decl_buffer([1], acc, scope="local" if gpu else "global")  # rows before
            run = T.decl_buffer([1] if gpu else [tb], acc, scope="local" if gpu else "global")
            cur = T.decl_buffer([1] if gpu else [tb], acc, scope="local" if gpu else "global")

            def R(tx):
                return [0] if gpu else [tirx.Cast("int32", tx)]

            def elem(p):
                """Element index (int64) of scan position p."""
                return tirx.Cast("int64", (i32(n - 1) - p) if det.reverse else p)

            T.buffer_store(carry, zero, [0])

            def block_scan_totals():
                """Inclusive Hillis-Steele scan of tot[0, :] into tot[fin, :] (barriers inside)."""
                for s_ in range(steps):
                    src, dst, d = s_ % 2, (s_ + 1) % 2, 1 << s_

                    def block_step(tx, src=src, dst=dst, d=d):
                        t32 = tirx.Cast("int32", tx)
                        with T.If(t32 >= i32(d)):
                            with T.Then():
                                T.buffer_store(tot, tot[src, t32] + tot[src, t32 - i32(d)], [dst, t32])
                            with T.Else():
                                T.buffer_store(tot, tot[src, t32], [dst, t32])

                    th.each_thread(block_step)
                    th.barrier()

            if par and det.three_phase:  # the carry: the scanned tile sums
                pf = T.decl_buffer([rows * tirx.const(tiles, "int64")], acc, data=part.data)
                if gpu:
                    th.each_thread(lambda tx: T.buffer_store(carry, pf[b_flat], [0]))
                else:
                    T.buffer_store(carry, pf[b_flat], [0])
            elif par:
                # the sum of the row before this block's tile: coalesced partial sums, block scan
                def before_tile(tx):
                    t32 = tirx.Cast("int32", tx)
                    T.buffer_store(run, zero, R(tx))
                    with T.serial(0, my_tile * i32(per)) as q:
                        v = x[tuple(lead_idx + [elem(q * i32(tb) + t32)])]
                        v = tirx.Cast(acc, v) if acc != dtype else v
                        T.buffer_store(run, run[tuple(R(tx))] + v, R(tx))
                    T.buffer_store(tot, run[tuple(R(tx))], [0, t32])

                th.each_thread(before_tile)
                th.barrier()
                block_scan_totals()
                if gpu:
                    th.each_thread(lambda tx: T.buffer_store(carry, tot[fin, tb - 1], [0]))
                else:
                    T.buffer_store(carry, tot[fin, tb - 1], [0])
                th.barrier()
            with T.serial(0, 1 if par else tiles) as tloop:
                tt = my_tile if par else tloop
                base = tt * i32(tile)

                def load(tx):  # coalesced: consecutive threads, consecutive positions
                    t32 = tirx.Cast("int32", tx)
                    with T.unroll(0, per) as q:
                        p = base + q * i32(tb) + t32
                        v = x[tuple(lead_idx + [elem(p)])]
                        v = tirx.Cast(acc, v) if acc != dtype else v
                        with T.If(p < i32(n)):
                            with T.Then():
                                T.buffer_store(buf, v, [q * i32(tb) + t32])
                            with T.Else():
                                T.buffer_store(buf, zero, [q * i32(tb) + t32])

                th.each_thread(load)
                th.barrier()

                def local_scan(tx):  # each thread scans `per` consecutive positions
                    t32 = tirx.Cast("int32", tx)
                    T.buffer_store(run, zero, R(tx))
                    with T.unroll(0, per) as e:
                        k = t32 * i32(per) + e
                        v = buf[k]
                        if det.exclusive:  # buf[k] gets the sum before it: keep v in `cur`
                            T.buffer_store(cur, v, R(tx))
                            T.buffer_store(buf, run[tuple(R(tx))], [k])
                            T.buffer_store(run, run[tuple(R(tx))] + cur[tuple(R(tx))], R(tx))
                        else:
                            T.buffer_store(run, run[tuple(R(tx))] + v, R(tx))
                            T.buffer_store(buf, run[tuple(R(tx))], [k])
                    T.buffer_store(tot, run[tuple(R(tx))], [0, t32])

                th.each_thread(local_scan)
                th.barrier()
                block_scan_totals()

                def add_prefix(tx):
                    t32 = tirx.Cast("int32", tx)
                    before = tirx.Select(t32 > i32(0), tot[fin, tirx.max(t32 - i32(1), i32(0))], zero)
                    with T.unroll(0, per) as e:
                        k = t32 * i32(per) + e
                        T.buffer_store(buf, buf[k] + before + carry[0], [k])

                th.each_thread(add_prefix)
                th.barrier()

                def store(tx):  # coalesced again
                    t32 = tirx.Cast("int32", tx)
                    with T.unroll(0, per) as q:
                        p = base + q * i32(tb) + t32
                        with T.If(p < i32(n)):
                            with T.Then():
                                v = buf[q * i32(tb) + t32]
                                v = tirx.Cast(dtype, v) if acc != dtype else v
                                T.buffer_store(out, v, lead_idx + [elem(p)])
                    if gpu:  # every thread keeps the same running total of the tiles so far
                        T.buffer_store(carry, carry[0] + tot[fin, tb - 1], [0])

                th.each_thread(store)
                if not gpu:
                    T.buffer_store(carry, carry[0] + tot[fin, tb - 1], [0])
                th.barrier()
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


class CumSumLowering(Lowering):
    name = "cumsum"
    ops = ("CumSum",)

    def select(self, node):
        return select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)


CUMSUM = CumSumLowering()

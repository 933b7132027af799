"""TPAT's own TVM lowering of ONNX CumSum along the last axis: one kernel, one pass.

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
The axis (a constant) must be the last one and its length static.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import te, tirx
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

    def describe(self) -> str:
        flags = ", ".join(f for f, on in (("exclusive", self.exclusive), ("reverse", self.reverse)) if on)
        how = "one block per tile" if self.parallel_tiles else "one block per row"
        return (f"cumsum (last axis, {self.threads} threads x {self.per}, {self.tiles} tile(s) per row, {how}"
                + (f", {flags}" if flags else "") + ")")


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
    if axis % r != r - 1:
        return Decline("only the last axis is lowered by TPAT")
    n = xshape[-1]
    if not isinstance(n, int) or n < 1 or n >= 2**31:
        return Decline("axis length must be static")
    threads = 32
    while threads < MAX_THREADS and threads * MIN_PER_THREAD < n:
        threads *= 2
    per = MIN_PER_THREAD
    tiles = -(-n // (threads * per))
    return CumSumSelection(dtype=dtype, xshape=xshape, n=n, exclusive=bool(int(node.attr("exclusive", 0))),
                           reverse=bool(int(node.attr("reverse", 0))), threads=threads, per=per, tiles=tiles,
                           parallel_tiles=1 < tiles <= MAX_PARALLEL_TILES, x_index=ops[0].index)


def _acc_dtype(dtype):
    return "float32" if dtype in ("float16", "bfloat16") else dtype


def _scan_ir(det, rows, lead, x, out, mode="gpu"):
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
                row = tirx.Cast("int64", bx) // tirx.const(tiles, "int64")
                my_tile = tirx.Cast("int32", tirx.Cast("int64", bx) % tirx.const(tiles, "int64"))
            else:
                row = tirx.Cast("int64", bx)
            lead_idx = unravel(row, lead)
            buf = T.decl_buffer([tile], acc, scope=scope)      # the tile, in scan order
            tot = T.decl_buffer([2, tb], acc, scope=scope)     # thread totals, double-buffered
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

            if par:
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


def emit(bb, params, det, mode="gpu"):
    def stage(xt):
        lead, rows = lead_rows(xt)
        return te.extern([xt.shape], [xt],
                         lambda ins, outs: _scan_ir(det, rows, lead, ins[0], outs[0], mode),
                         dtype=det.dtype, name="tpat_cumsum")

    return bb.emit_te(stage, params[det.x_index], primfunc_name_hint="tpat_cumsum")


class CumSumLowering(Lowering):
    name = "cumsum"
    ops = ("CumSum",)

    def select(self, node):
        return select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)


CUMSUM = CumSumLowering()

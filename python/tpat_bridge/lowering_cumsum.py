"""TPAT's own TVM lowering of ONNX CumSum along the last axis: one kernel, one pass.

TVM 0.27 legalizes CumSum to a multi-kernel scan with host loops (4 kernels, int64 indexing).
Here one thread block scans one row (rows are the leading dimensions, which may be symbolic):

  1. each of the T threads loads E = ceil(N / T) consecutive elements and scans them in
     registers (accumulator: float32 for 16-bit floats, else the element type);
  2. the block scans the T thread totals in shared memory (Hillis-Steele, log2(T) steps);
  3. each thread adds the total of the threads before it and stores its E results.

`exclusive` and `reverse` are index mappings of the same scan. Everything is TIR written with
TVM's IR builder inside a `te.extern` stage (like topi's scans), through TVM's normal pipeline
and CUDA codegen; `mode="cpu"` runs the same IR with serial loops for the LLVM tests.
The axis (a constant) must be the last one and its length static.
"""
from __future__ import annotations

import numpy as np

DTYPES = ("float32", "float16", "bfloat16", "float64", "int32", "int64")
MAX_THREADS = 1024
MIN_PER_THREAD = 4


def select(node, ops, info, attr):
    if len(ops) != 2 or ops[0][0] != "param" or ops[1][0] != "const":
        return None, "CumSum needs a runtime X and a constant axis"
    xshape, dtype = ops[0][2], ops[0][3]
    if dtype not in DTYPES or info.outputs[0]["dtype"] != dtype:
        return None, f"dtype {dtype}"
    r = len(xshape)
    if r == 0:
        return None, "scalar input"
    axis = int(np.asarray(ops[1][1]).reshape(-1)[0])
    if axis % r != r - 1:
        return None, "only the last axis is lowered by TPAT"
    n = xshape[-1]
    if not isinstance(n, int) or n < 1 or n >= 2**31:
        return None, "axis length must be static"
    threads = 32
    while threads < MAX_THREADS and threads * MIN_PER_THREAD < n:
        threads *= 2
    per = -(-n // threads)
    det = {"op": "CumSum", "dtype": dtype, "xshape": xshape, "n": n,
           "exclusive": bool(int(attr(node, "exclusive", 0))),
           "reverse": bool(int(attr(node, "reverse", 0))),
           "threads": threads, "per": per, "x_index": ops[0][1]}
    flags = ", ".join(f for f, on in (("exclusive", det["exclusive"]), ("reverse", det["reverse"])) if on)
    return (f"cumsum (last axis, {threads} threads x {per} per row"
            + (f", {flags}" if flags else "") + ")"), det


def _acc_dtype(dtype):
    return "float32" if dtype in ("float16", "bfloat16") else dtype


def _scan_ir(det, rows, lead, x, out, mode="gpu"):
    from tvm import tirx
    from tvm.script.ir_builder import IRBuilder
    from tvm.script.ir_builder import tirx as T

    from .lowering_topk import _Threads, _unravel

    n, tb, per, dtype = det["n"], det["threads"], det["per"], det["dtype"]
    acc = _acc_dtype(dtype)
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    zero = tirx.const(0, acc)
    steps = int(np.log2(tb))
    scope = "shared" if mode == "gpu" else "global"
    with IRBuilder() as ib:
        th = _Threads(mode, rows, tb)
        with th as bx:
            row = tirx.Cast("int64", bx)
            lead_idx = _unravel(row, lead)
            tot = T.decl_buffer([2, tb], acc, scope=scope)  # double-buffered thread totals
            # CPU mode keeps every thread's values (threads run one after the other)
            loc = T.decl_buffer([per] if mode == "gpu" else [tb, per], acc,
                                scope="local" if mode == "gpu" else "global")
            run = T.decl_buffer([1] if mode == "gpu" else [tb], acc,
                                scope="local" if mode == "gpu" else "global")

            def L(tx, e):
                return [e] if mode == "gpu" else [tirx.Cast("int32", tx), e]

            def R(tx):
                return [0] if mode == "gpu" else [tirx.Cast("int32", tx)]

            def elem(p):
                """Element index (int32) of scan position p."""
                return (i32(n - 1) - p) if det["reverse"] else p

            def local_scan(tx):
                t32 = tirx.Cast("int32", tx)
                T.buffer_store(run, zero, R(tx))
                with T.unroll(0, per) as e:
                    p = t32 * i32(per) + e
                    with T.If(p < i32(n)):
                        with T.Then():
                            v = x[tuple(lead_idx + [tirx.Cast("int64", elem(p))])]
                            v = tirx.Cast(acc, v) if acc != dtype else v
                            if det["exclusive"]:
                                T.buffer_store(loc, run[tuple(R(tx))], L(tx, e))
                                T.buffer_store(run, run[tuple(R(tx))] + v, R(tx))
                            else:
                                T.buffer_store(run, run[tuple(R(tx))] + v, R(tx))
                                T.buffer_store(loc, run[tuple(R(tx))], L(tx, e))
                T.buffer_store(tot, run[tuple(R(tx))], [0, t32])

            th.each_thread(local_scan)
            th.barrier()
            # inclusive scan of the thread totals: step s reads buffer s%2, writes (s+1)%2
            for s in range(steps):
                src, dst, d = s % 2, (s + 1) % 2, 1 << s

                def block_step(tx, src=src, dst=dst, d=d):
                    t32 = tirx.Cast("int32", tx)
                    with T.If(t32 >= i32(d)):
                        with T.Then():
                            T.buffer_store(tot, tot[src, t32] + tot[src, t32 - i32(d)], [dst, t32])
                        with T.Else():
                            T.buffer_store(tot, tot[src, t32], [dst, t32])

                th.each_thread(block_step)
                th.barrier()
            fin = steps % 2

            def finish(tx):
                t32 = tirx.Cast("int32", tx)
                before = tirx.Select(t32 > i32(0), tot[fin, tirx.max(t32 - i32(1), i32(0))], zero)
                with T.unroll(0, per) as e:
                    p = t32 * i32(per) + e
                    with T.If(p < i32(n)):
                        with T.Then():
                            v = loc[tuple(L(tx, e))] + before
                            v = tirx.Cast(dtype, v) if acc != dtype else v
                            T.buffer_store(out, v, lead_idx + [tirx.Cast("int64", elem(p))])

            th.each_thread(finish)
    return ib.get()


def emit(bb, params, det, mode="gpu"):
    from tvm import te

    from .lowering_topk import lead_rows

    def stage(xt):
        lead, rows = lead_rows(xt)
        return te.extern([xt.shape], [xt],
                         lambda ins, outs: _scan_ir(det, rows, lead, ins[0], outs[0], mode),
                         dtype=det["dtype"], name="tpat_cumsum")

    return bb.emit_te(stage, params[det["x_index"]], primfunc_name_hint="tpat_cumsum")

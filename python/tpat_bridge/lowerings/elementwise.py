"""TPAT's own TVM lowering of Gelu (opset 20, approximate none/tanh): a vectorized elementwise kernel.

dlight's default schedule gives one element per thread with 2-byte loads for float16, which leaves
a memory-bound op at about 40% of the copy bandwidth on the H100. This lowering is the same TE
compute (erf or tanh form, computed in float32) with TPAT's schedule: the flattened tensor is
split into (blocks, 256 threads, V lanes) with V = 16 bytes / element size (the last axis split
by V, the lane loop vectorized), so every thread moves 16 bytes in and 16 bytes out. V = 1 when
the last axis is symbolic or not a multiple of V: one element per thread. Large static tensors
(`rows_per_thread`) give each thread R = 4 (or 2) such vectors, the same column of R consecutive
rows, all R loaded before the math and stored after it: R x 16 bytes in flight per thread (one
16-byte load per thread left the fp16 case at ~75% of a same-size copy on the H200), every load
and store of a warp still one contiguous 512-byte run.
TVM's default lowering stays available as the second tactic (and tunable with `tpat tune`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import te, tirx

from .. import dtypes
from .protocol import Decline, Lowering, NodeView, Selection

DTYPES = dtypes.sizes(*dtypes.FLOATS)
THREADS = 256
ROWS = 4  # vectors per thread on large tensors (see rows_per_thread)
MIN_BLOCKS = 1024  # blocks the multi-vector schedule must still give (several waves on 132 SMs)


@dataclass(frozen=True)
class GeluSelection(Selection):
    dtype: str
    approx: str  # "none" (erf) or "tanh"
    vec: int  # elements per vector (16 bytes, or 1)
    x_index: int  # main's parameter of X
    rows: int = 1  # vectors per thread: one per row of `rows` consecutive rows, the same column

    def describe(self) -> str:
        return f"gelu ({self.approx}, {self.vec * self.rows} element(s) per thread)"


def select(n: NodeView) -> GeluSelection | Decline:
    ops = n.operands
    if len(ops) != 1 or not ops[0].is_param:
        return Decline("Gelu arity")
    xshape, dtype = ops[0].shape, ops[0].dtype
    if dtype not in DTYPES or n.outputs[0]["dtype"] != dtype:
        return Decline(f"dtype {dtype}")
    approx = n.attr("approximate", "none")
    if approx not in ("none", "tanh"):
        return Decline(f"approximate={approx}")
    vec = 16 // DTYPES[dtype]
    last = xshape[-1] if xshape else 1
    if not isinstance(last, int) or last % vec:
        vec = 1
    rows = rows_per_thread(xshape, vec) if vec > 1 else 1
    return GeluSelection(dtype=dtype, approx=approx, vec=vec, x_index=ops[0].index, rows=rows)


def rows_per_thread(shape, vec, threads=THREADS):
    """Vectors per thread: R in (ROWS, 2) when the static tensor is at least 2-D, its second-to-
    last axis a multiple of R (a thread's R rows stay one box of the buffer), a row at least a warp of vectors wide (each load of
    a warp stays one contiguous run) and the grid still at least MIN_BLOCKS blocks; else 1. Each
    thread then loads R 16-byte vectors (the same column of R consecutive rows) before any math:
    R loads in flight per thread instead of one, what a stream needs to cover DRAM latency."""
    if len(shape) < 2 or not all(isinstance(d, int) for d in shape):
        return 1
    nrows = 1
    for d in shape[:-1]:
        nrows *= d
    per_row = shape[-1] // vec
    if per_row < 32:
        return 1
    for r in (ROWS, 2):
        if shape[-2] % r == 0 and (nrows // r) * per_row // threads >= MIN_BLOCKS:
            return r
    return 1


def gelu_te(x, det, mode="gpu"):
    """The TE compute. The tanh form is computed as x * sigmoid(2u) = x / (1 + exp(-2u)),
    u = sqrt(2/pi) (x + 0.044715 x^3): the same function as 0.5 x (1 + tanh u), since
    0.5 (1 + tanh u) = sigmoid(2u). On the GPU exp is __expf (ex2.approx of x log2 e; TVM's own
    rule would give expf) and the division __fdividef (rcp.approx and a multiply): the bf16
    kernel has 471 SASS instructions per thread's 32 elements against 794 with tanhf (~15 per
    element instead of ~25), whose issue time came close to the copy time of the bytes
    (gelu_tanh_bf16: 41.4 -> 38.0 us on the H200, membw3-2). Relative error ~|2u| x 6e-8 (the
    rounding of ex2's argument), far under a 16-bit ulp (test_tanh_form_gpu_arithmetic_emulated);
    and no cancellation for x < -5, where 1 + tanh u rounds to 0 in float32. x -> -inf: x / inf =
    -0 for finite x, NaN for -inf (as -inf x 0). The LLVM build (tests) divides exactly."""
    f = lambda v: tirx.const(v, "float32")  # noqa: E731
    dtype = det.dtype

    def fc(*i):
        v = x(*i)
        v = v if dtype == "float32" else tirx.Cast("float32", v)
        if det.approx == "tanh":
            u2 = f(float(-2.0 * np.sqrt(2.0 / np.pi))) * (v + f(0.044715) * v * v * v)
            if mode == "gpu":
                d = f(1.0) + tirx.call_pure_extern("float32", "__expf", u2)
                y = tirx.call_pure_extern("float32", "__fdividef", v, d)
            else:
                y = v / (f(1.0) + tirx.exp(u2))
        else:
            y = f(0.5) * v * (f(1.0) + tirx.erf(v * f(float(1.0 / np.sqrt(2.0)))))
        return y if dtype == "float32" else tirx.Cast(dtype, y)

    return te.compute(x.shape, fc, name="tpat_gelu")


def emit(bb, params, det, mode="gpu"):
    return bb.emit_te(lambda x: gelu_te(x, det, mode), params[det.x_index], primfunc_name_hint=PRIMFUNC)


PRIMFUNC = "tpat_gelu"


def schedule(sch, blk, det):
    """Split the last axis by vec, fuse, split into (blocks, THREADS); 16-byte vector copies in
    and out of registers around the scalar math (applied by ir.apply_schedule)."""
    loops = list(sch.get_loops(blk))
    vec = det.vec
    rows = getattr(det, "rows", 1)
    vi = ri = None
    if rows > 1:  # (..., row blocks, column vectors, R, lanes): R rows of the second-to-last axis
        ro, ri = sch.split(loops[-2], [None, rows])
        lo, vi = sch.split(loops[-1], [None, vec])
        sch.reorder(ro, lo, ri, vi)
        loops = [*loops[:-2], ro, lo]
    elif vec > 1:
        lo, vi = sch.split(loops[-1], [None, vec])
        loops[-1] = lo
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    bo, tx = sch.split(fused, [None, THREADS])
    if vi is not None:
        # erf/tanh have no vector form: stage through registers, vectorize only the copies; with
        # R rows the stage holds the thread's R vectors (an R x V box), loaded all before the math
        xl = sch.cache_read(blk, 0, "local")
        yl = sch.cache_write(blk, 0, "local")
        sch.compute_at(xl, tx)
        sch.reverse_compute_at(yl, tx)
        sch.vectorize(sch.get_loops(xl)[-1])
        sch.vectorize(sch.get_loops(yl)[-1])
        if ri is not None:
            sch.unroll(sch.get_loops(xl)[-2])
            sch.unroll(sch.get_loops(yl)[-2])
            sch.unroll(ri)
    sch.bind(bo, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    return True


class GeluLowering(Lowering):
    name = "gelu"
    ops = ("Gelu",)
    primfunc = PRIMFUNC

    def select(self, node):
        return select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)

    def schedule(self, sch, block, sel):
        return schedule(sch, block, sel)


GELU = GeluLowering()

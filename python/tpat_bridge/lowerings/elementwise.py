"""TPAT's own TVM lowering of Gelu (opset 20, approximate none/tanh): a vectorized elementwise kernel.

dlight's default schedule gives one element per thread with 2-byte loads for float16, which leaves
a memory-bound op at about 40% of the copy bandwidth on the H100. This lowering is the same TE
compute (erf or tanh form, computed in float32) with TPAT's schedule: the flattened tensor is
split into (blocks, 256 threads, V lanes) with V = 16 bytes / element size (the last axis split
by V, the lane loop vectorized), so every thread moves 16 bytes in and 16 bytes out. V = 1 when
the last axis is symbolic or not a multiple of V: one element per thread.
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


@dataclass(frozen=True)
class GeluSelection(Selection):
    dtype: str
    approx: str  # "none" (erf) or "tanh"
    vec: int  # elements per thread (16 bytes, or 1)
    x_index: int  # main's parameter of X

    def describe(self) -> str:
        return f"gelu ({self.approx}, {self.vec} element(s) per thread)"


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
    return GeluSelection(dtype=dtype, approx=approx, vec=vec, x_index=ops[0].index)


def gelu_te(x, det):
    f = lambda v: tirx.const(v, "float32")  # noqa: E731
    dtype = det.dtype

    def fc(*i):
        v = x(*i)
        v = v if dtype == "float32" else tirx.Cast("float32", v)
        if det.approx == "tanh":
            inner = f(float(np.sqrt(2.0 / np.pi))) * (v + f(0.044715) * v * v * v)
            y = f(0.5) * v * (f(1.0) + tirx.tanh(inner))
        else:
            y = f(0.5) * v * (f(1.0) + tirx.erf(v * f(float(1.0 / np.sqrt(2.0)))))
        return y if dtype == "float32" else tirx.Cast(dtype, y)

    return te.compute(x.shape, fc, name="tpat_gelu")


def emit(bb, params, det, mode="gpu"):
    return bb.emit_te(lambda x: gelu_te(x, det), params[det.x_index], primfunc_name_hint=PRIMFUNC)


PRIMFUNC = "tpat_gelu"


def schedule(sch, blk, det):
    """Split the last axis by vec, fuse, split into (blocks, THREADS); 16-byte vector copies in
    and out of registers around the scalar math (applied by ir.apply_schedule)."""
    loops = list(sch.get_loops(blk))
    vec = det.vec
    vi = None
    if vec > 1:
        lo, vi = sch.split(loops[-1], [None, vec])
        loops[-1] = lo
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    bo, tx = sch.split(fused, [None, THREADS])
    if vi is not None:
        # erf/tanh have no vector form: stage through registers, vectorize only the copies
        xl = sch.cache_read(blk, 0, "local")
        yl = sch.cache_write(blk, 0, "local")
        sch.compute_at(xl, tx)
        sch.reverse_compute_at(yl, tx)
        sch.vectorize(sch.get_loops(xl)[-1])
        sch.vectorize(sch.get_loops(yl)[-1])
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

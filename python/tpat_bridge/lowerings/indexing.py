"""TPAT's own TVM lowering of GatherElements (any axis): one fused TE kernel, indices clamped.

TVM's own lowering reads out of bounds on an out-of-range index; here negative indices are
wrapped (+ dim size) and the result clamped into range, as for Gather and GatherND (gather.py),
so a bad index reads an element of the tensor instead of faulting (ONNX leaves it undefined).
The TE compute is left unscheduled: dlight schedules it, `tpat tune` can search it.
Gather and GatherND: gather.py; OneHot: onehot.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import te, tirx

from .ir import relax_arg
from .protocol import Decline, FunctionLowering, NodeView, Operand, Selection

INDEX_DTYPES = ("int32", "int64")


# --------------------------------------------------------------------------------------------
# GatherElements: TVM's lowering reads out of bounds on an out-of-range index. Here: wrap negative
# indices once, then clamp, like Gather and GatherND (gather.py).


def _clamped(raw, dim, out_dtype):
    dt = str(raw.dtype)
    d = tirx.Cast(dt, dim) if not isinstance(dim, int) else tirx.const(dim, dt)
    w = tirx.Select(raw < tirx.const(0, dt), raw + d, raw)
    w = te.max(tirx.const(0, dt), te.min(w, d - tirx.const(1, dt)))
    return tirx.Cast(out_dtype, w)


@dataclass(frozen=True)
class GatherSelection(Selection):
    op: str  # "Gather" or "GatherElements"
    data: Operand
    indices: Operand
    axis: int
    dtype: str

    def describe(self) -> str:
        return f"{self.op.lower()} (axis={self.axis}, indices clamped, one kernel)"


def select_gather(n: NodeView) -> GatherSelection | Decline:
    ops = n.operands
    if len(ops) != 2 or ops[0].is_absent or ops[1].is_absent:
        return Decline("Gather arity")
    data, indices = ops
    dshape, dtype, qdtype = data.shape, data.dtype, indices.dtype
    if qdtype not in INDEX_DTYPES:
        return Decline(f"index dtype {qdtype}")
    r = len(dshape)
    axis = int(n.attr("axis", 0))
    if r == 0 or not -r <= axis < r:
        return Decline("Gather axis")
    if n.outputs[0]["dtype"] != dtype:
        return Decline("output dtype")
    return GatherSelection(op=n.op_type, data=data, indices=indices, axis=axis % r, dtype=dtype)


def gather_elements_te(data, idx, det):
    a = det.axis
    dshape = list(data.shape)

    def f(*o):
        src = list(o)
        src[a] = _clamped(idx[tuple(o)], dshape[a], str(o[0].ty))
        return data[tuple(src)]

    return te.compute(list(idx.shape), f, name="tpat_gather_elements")


# --------------------------------------------------------------------------------------------
# Relax


def _emit_gather(bb, params, det, mode="gpu"):
    args = [relax_arg(params, o) for o in (det.data, det.indices)]
    return bb.emit_te(lambda d, i: gather_elements_te(d, i, det), *args, primfunc_name_hint="tpat_gather_elements")


GATHER_ELEMENTS = FunctionLowering("gather_elements", ["GatherElements"], select_gather, _emit_gather)

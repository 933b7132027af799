"""TPAT's own TVM lowerings of GatherND, Gather, GatherElements and OneHot: one fused kernel each.

TVM 0.27's frontend lowers GatherND to two kernels (negative-index wrap, then the gather) and
OneHot to a float64 one-hot plus a cast (a frontend quirk: double the bytes, two kernels). Both
ops are tiny and latency-bound, so the second launch costs as much as the work. Here each is one
TE compute, left unscheduled: dlight schedules it by default, `tpat tune` searches it.

GatherND (any batch_dims): out[b.., i.., j..] = data[b.., idx[b.., i.., 0..k-1], j..];
negative indices are wrapped (+ dim size) and the result clamped into range, so a bad index
reads an element of the tensor instead of faulting (ONNX leaves it undefined).

Gather / GatherElements (any axis): TVM's own lowerings read out of bounds on an out-of-range
index; here negative indices are wrapped and the result clamped, as for GatherND.

OneHot (any axis): out[.., d, ..] = on if wrap(indices[..]) == d else off, with depth a constant
and values constant or a runtime input; out-of-range indices give an all-`off` row (ONNX).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import te, tirx

from .ir import relax_arg
from .protocol import Decline, Lowering, NodeView, Operand, Selection

INDEX_DTYPES = ("int32", "int64")


# --------------------------------------------------------------------------------------------
# GatherND


@dataclass(frozen=True)
class GatherNDSelection(Selection):
    data: Operand
    indices: Operand
    b: int  # batch_dims
    k: int  # index tuple length (the indices' static last dim)
    dtype: str

    def describe(self) -> str:
        return f"gather_nd (batch_dims={self.b}, k={self.k}, one kernel)"


def select_gathernd(n: NodeView) -> GatherNDSelection | Decline:
    ops = n.operands
    if len(ops) != 2 or ops[0].is_absent or ops[1].is_absent:
        return Decline("GatherND arity")
    data, indices = ops
    dshape, dtype, qshape, qdtype = data.shape, data.dtype, indices.shape, indices.dtype
    if qdtype not in INDEX_DTYPES:
        return Decline(f"index dtype {qdtype}")
    b = int(n.attr("batch_dims", 0))
    if not qshape or not isinstance(qshape[-1], int):
        return Decline("the last index dim must be static")
    k = qshape[-1]
    if k < 1 or b + k > len(dshape) or b >= len(qshape):
        return Decline("GatherND ranks")
    if n.outputs[0]["dtype"] != dtype:
        return Decline("output dtype")
    return GatherNDSelection(data=data, indices=indices, b=b, k=k, dtype=dtype)


def gathernd_te(data, idx, det):
    b, k = det.b, det.k
    dshape, qshape = list(data.shape), list(idx.shape)
    oshape = qshape[:-1] + dshape[b + k :]
    nq = len(qshape) - 1  # index positions (batch dims included)

    def f(*o):
        qpos = list(o[:nq])
        src = list(o[:b])
        for j in range(k):
            raw = idx[tuple(qpos + [j])]
            dt = str(raw.dtype)
            dim = dshape[b + j]
            dim = tirx.Cast(dt, dim) if not isinstance(dim, int) else tirx.const(dim, dt)
            w = tirx.Select(raw < tirx.const(0, dt), raw + dim, raw)
            w = te.max(tirx.const(0, dt), te.min(w, dim - tirx.const(1, dt)))
            src.append(tirx.Cast(str(o[0].ty) if o else "int64", w))
        src += list(o[nq:])
        return data[tuple(src)]

    return te.compute(oshape, f, name="tpat_gather_nd")


# --------------------------------------------------------------------------------------------
# Gather, GatherElements: TVM's lowerings (take mode "fast", gather_elements) read out of bounds on
# an out-of-range index. Here: wrap negative indices once, then clamp, like GatherND.


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


def gather_te(data, idx, det):
    a = det.axis
    dshape, qshape = list(data.shape), list(idx.shape)
    q = len(qshape)

    def f(*o):
        pos = o[a : a + q]
        raw = idx[tuple(pos)] if q else idx[()]
        src = list(o[:a]) + [_clamped(raw, dshape[a], str(o[0].ty) if o else "int64")] + list(o[a + q :])
        return data[tuple(src)]

    return te.compute(dshape[:a] + qshape + dshape[a + 1 :], f, name="tpat_gather")


def gather_elements_te(data, idx, det):
    a = det.axis
    dshape = list(data.shape)

    def f(*o):
        src = list(o)
        src[a] = _clamped(idx[tuple(o)], dshape[a], str(o[0].ty))
        return data[tuple(src)]

    return te.compute(list(idx.shape), f, name="tpat_gather_elements")


# --------------------------------------------------------------------------------------------
# OneHot


@dataclass(frozen=True)
class OneHotSelection(Selection):
    indices: Operand  # a graph input
    values_op: Operand  # [off, on], a constant or a graph input
    depth: int
    axis: int
    dtype: str
    values: list | None  # [off, on] when constant

    def describe(self) -> str:
        return f"one_hot (depth={self.depth}, axis={self.axis}, one kernel)"


def select_onehot(n: NodeView) -> OneHotSelection | Decline:
    ops = n.operands
    if len(ops) != 3 or not ops[0].is_param:
        return Decline("OneHot needs runtime indices")
    indices, depth_op, values_op = ops
    if indices.dtype not in INDEX_DTYPES + ("float32",):
        return Decline(f"indices dtype {indices.dtype}")
    if not depth_op.is_const:
        return Decline("depth must be a constant")
    depth = depth_op.scalar_int("depth")
    if not 1 <= depth < 2**31:
        return Decline(f"depth {depth}")
    odtype = n.outputs[0]["dtype"]
    if odtype != values_op.dtype:
        return Decline("output dtype")
    r = len(indices.shape)
    axis = int(n.attr("axis", -1))
    if not -r - 1 <= axis <= r:
        return Decline("axis")
    values = [v.item() for v in np.asarray(values_op.value).reshape(-1)[:2]] if values_op.is_const else None
    return OneHotSelection(
        indices=indices, values_op=values_op, depth=depth, axis=axis % (r + 1), dtype=odtype, values=values
    )


def onehot_te(ind, det, values=None):
    depth, axis, dtype = det.depth, det.axis, det.dtype
    ishape = list(ind.shape)
    oshape = ishape[:axis] + [depth] + ishape[axis:]
    if values is None:
        off, on = (tirx.const(v, dtype) for v in det.values)
    else:
        off, on = values[0], values[1]

    def f(*o):
        d = o[axis]
        pos = list(o[:axis]) + list(o[axis + 1 :])
        raw = ind[tuple(pos)]
        dt = str(raw.dtype)
        if dt.startswith("float"):
            raw, dt = tirx.Cast("int64", raw), "int64"
        dep = tirx.const(depth, dt)
        w = tirx.Select(raw < tirx.const(0, dt), raw + dep, raw)
        return tirx.Select(w == tirx.Cast(dt, d), on, off)

    return te.compute(oshape, f, name="tpat_one_hot")


# --------------------------------------------------------------------------------------------
# Relax


def _emit_gathernd(bb, params, det, mode="gpu"):
    args = [relax_arg(params, o) for o in (det.data, det.indices)]
    return bb.emit_te(lambda d, i: gathernd_te(d, i, det), *args, primfunc_name_hint="tpat_gather_nd")


def _emit_gather(bb, params, det, mode="gpu"):
    args = [relax_arg(params, o) for o in (det.data, det.indices)]
    te_fn, name = (gather_te, "tpat_gather") if det.op == "Gather" else (gather_elements_te, "tpat_gather_elements")
    return bb.emit_te(lambda d, i: te_fn(d, i, det), *args, primfunc_name_hint=name)


def _emit_onehot(bb, params, det, mode="gpu"):
    ind = params[det.indices.index]
    if det.values is not None:
        return bb.emit_te(lambda i: onehot_te(i, det), ind, primfunc_name_hint="tpat_one_hot")
    vals = params[det.values_op.index]
    return bb.emit_te(lambda i, v: onehot_te(i, det, [v[0], v[1]]), ind, vals, primfunc_name_hint="tpat_one_hot")


class _Indexing(Lowering):
    """The four lowerings of this module: one selection function and one emit each."""

    def __init__(self, name, op, select, emit):
        self.name, self.ops, self._select, self._emit = name, (op,), select, emit

    def select(self, node):
        return self._select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return self._emit(bb, params, sel, mode)


GATHER_ND = _Indexing("gather_nd", "GatherND", select_gathernd, _emit_gathernd)
GATHER = _Indexing("gather", "Gather", select_gather, _emit_gather)
GATHER_ELEMENTS = _Indexing("gather_elements", "GatherElements", select_gather, _emit_gather)
ONE_HOT = _Indexing("one_hot", "OneHot", select_onehot, _emit_onehot)

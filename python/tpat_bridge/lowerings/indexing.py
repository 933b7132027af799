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

import numpy as np
from tvm import relax, te, tirx

INDEX_DTYPES = ("int32", "int64")


# --------------------------------------------------------------------------------------------
# GatherND


def select_gathernd(node, ops, info, attr):
    if len(ops) != 2 or ops[0][0] == "absent" or ops[1][0] == "absent":
        return None, "GatherND arity"
    (_, _, dshape, dtype), (_, _, qshape, qdtype) = ops
    if qdtype not in INDEX_DTYPES:
        return None, f"index dtype {qdtype}"
    b = int(attr(node, "batch_dims", 0))
    if not qshape or not isinstance(qshape[-1], int):
        return None, "the last index dim must be static"
    k = qshape[-1]
    if k < 1 or b + k > len(dshape) or b >= len(qshape):
        return None, "GatherND ranks"
    if info.outputs[0]["dtype"] != dtype:
        return None, "output dtype"
    det = {"op": "GatherND", "ops": ops, "b": b, "k": k, "dtype": dtype}
    return f"gather_nd (batch_dims={b}, k={k}, one kernel)", det


def gathernd_te(data, idx, det):
    b, k = det["b"], det["k"]
    dshape, qshape = list(data.shape), list(idx.shape)
    oshape = qshape[:-1] + dshape[b + k:]
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


def select_gather(node, ops, info, attr):
    if len(ops) != 2 or ops[0][0] == "absent" or ops[1][0] == "absent":
        return None, "Gather arity"
    (_, _, dshape, dtype), (_, _, qshape, qdtype) = ops
    if qdtype not in INDEX_DTYPES:
        return None, f"index dtype {qdtype}"
    r = len(dshape)
    axis = int(attr(node, "axis", 0))
    if r == 0 or not -r <= axis < r:
        return None, "Gather axis"
    if info.outputs[0]["dtype"] != dtype:
        return None, "output dtype"
    det = {"op": node.op_type, "ops": ops, "axis": axis % r, "dtype": dtype}
    return f"{node.op_type.lower()} (axis={axis % r}, indices clamped, one kernel)", det


select_gather_elements = select_gather


def gather_te(data, idx, det):
    a = det["axis"]
    dshape, qshape = list(data.shape), list(idx.shape)
    q = len(qshape)

    def f(*o):
        pos = o[a:a + q]
        raw = idx[tuple(pos)] if q else idx[()]
        src = list(o[:a]) + [_clamped(raw, dshape[a], str(o[0].ty) if o else "int64")] + list(o[a + q:])
        return data[tuple(src)]

    return te.compute(dshape[:a] + qshape + dshape[a + 1:], f, name="tpat_gather")


def gather_elements_te(data, idx, det):
    a = det["axis"]
    dshape = list(data.shape)

    def f(*o):
        src = list(o)
        src[a] = _clamped(idx[tuple(o)], dshape[a], str(o[0].ty))
        return data[tuple(src)]

    return te.compute(list(idx.shape), f, name="tpat_gather_elements")


# --------------------------------------------------------------------------------------------
# OneHot


def select_onehot(node, ops, info, attr):
    if len(ops) != 3 or ops[0][0] != "param":
        return None, "OneHot needs runtime indices"
    if ops[0][3] not in INDEX_DTYPES + ("float32",):
        return None, f"indices dtype {ops[0][3]}"
    if ops[1][0] != "const":
        return None, "depth must be a constant"
    depth = int(np.asarray(ops[1][1]).reshape(-1)[0])
    if depth < 1:
        return None, "depth"
    vdtype = ops[2][3]
    odtype = info.outputs[0]["dtype"]
    if odtype != vdtype:
        return None, "output dtype"
    r = len(ops[0][2])
    axis = int(attr(node, "axis", -1))
    if not -r - 1 <= axis <= r:
        return None, "axis"
    det = {"op": "OneHot", "ops": ops, "depth": depth, "axis": axis % (r + 1), "dtype": odtype}
    if ops[2][0] == "const":
        det["values"] = [v.item() for v in np.asarray(ops[2][1]).reshape(-1)[:2]]
    return f"one_hot (depth={depth}, axis={axis % (r + 1)}, one kernel)", det


def onehot_te(ind, det, values=None):
    depth, axis, dtype = det["depth"], det["axis"], det["dtype"]
    ishape = list(ind.shape)
    oshape = ishape[:axis] + [depth] + ishape[axis:]
    if values is None:
        off, on = (tirx.const(v, dtype) for v in det["values"])
    else:
        off, on = values[0], values[1]

    def f(*o):
        d = o[axis]
        pos = list(o[:axis]) + list(o[axis + 1:])
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


class _Lowering:
    """select/emit pair in the shape lowerings.TE_LOWERINGS expects."""

    def __init__(self, select, emit):
        self.select, self.emit = select, emit


def _emit_gathernd(bb, params, det, mode="gpu"):
    args = [params[o[1]] if o[0] == "param" else relax.const(np.ascontiguousarray(o[1]), o[3])
            for o in det["ops"]]
    return bb.emit_te(lambda d, i: gathernd_te(d, i, det), *args, primfunc_name_hint="tpat_gather_nd")


def _emit_gather(bb, params, det, mode="gpu"):
    args = [params[o[1]] if o[0] == "param" else relax.const(np.ascontiguousarray(o[1]), o[3])
            for o in det["ops"]]
    te_fn, name = ((gather_te, "tpat_gather") if det["op"] == "Gather"
                   else (gather_elements_te, "tpat_gather_elements"))
    return bb.emit_te(lambda d, i: te_fn(d, i, det), *args, primfunc_name_hint=name)


def _emit_onehot(bb, params, det, mode="gpu"):
    ind = params[det["ops"][0][1]]
    if "values" in det:
        return bb.emit_te(lambda i: onehot_te(i, det), ind, primfunc_name_hint="tpat_one_hot")
    vals = params[det["ops"][2][1]]
    return bb.emit_te(lambda i, v: onehot_te(i, det, [v[0], v[1]]), ind, vals,
                      primfunc_name_hint="tpat_one_hot")


GATHER_ND = _Lowering(select_gathernd, _emit_gathernd)
GATHER = _Lowering(select_gather, _emit_gather)
GATHER_ELEMENTS = _Lowering(select_gather_elements, _emit_gather)
ONE_HOT = _Lowering(select_onehot, _emit_onehot)

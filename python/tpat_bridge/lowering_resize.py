"""TPAT's own TVM lowering of ONNX Resize, modes linear and cubic (any rank, any resized axes).

The frontend's legalization (topi.image.resize2d/3d) works, but with dynamic-looking index math:
every output element recomputes coordinates through int64 division/modulo chains. This lowering
is a plain TE compute with separable taps:

    out[i] = sum over taps t of  prod_a w_a(i_a, t_a) * x[clamp(base_a(i_a) + t_a) for each axis a]

where for every resized axis a the source coordinate is the ONNX coordinate transform of i_a
(half_pixel, pytorch_half_pixel, half_pixel_symmetric, align_corners, asymmetric), the taps are
2 (linear) or 4 (cubic, `cubic_coeff_a`, `exclude_outside`), weights in float32 (like ONNX
Runtime) and indices clamped to the edge. Axes that are not resized (scale 1, same size) are read
straight through and may be symbolic. The compute is left unscheduled: dlight schedules it by
default and `tpat tune` searches it with MetaSchedule, like any frontend operator.

Not handled here (the frontend's lowering is used): nearest, antialias, tf_crop_and_resize,
keep_aspect_ratio_policy other than stretch, resized axes with symbolic sizes, non-float dtypes.
"""
from __future__ import annotations

import numpy as np

MODES = ("linear", "cubic")
COORD_MODES = ("half_pixel", "pytorch_half_pixel", "half_pixel_symmetric", "align_corners",
               "asymmetric")
FLOAT_DTYPES = ("float32", "float16", "bfloat16")


def select(node, ops, info, attr):
    """(lowering name, details) or (None, reason). `ops` as lowerings._node_operands gives them."""
    mode = attr(node, "mode", "nearest")
    if mode not in MODES:
        return None, f"Resize mode {mode}"
    ctm = attr(node, "coordinate_transformation_mode", "half_pixel")
    if ctm not in COORD_MODES:
        return None, f"coordinate_transformation_mode {ctm}"
    if int(attr(node, "antialias", 0)) != 0:
        return None, "antialias"
    if attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        return None, "keep_aspect_ratio_policy"
    x = ops[0]
    if x[0] != "param":
        return None, "constant Resize input"
    xshape, dtype = x[2], x[3]
    if dtype not in FLOAT_DTYPES or info.outputs[0]["dtype"] != dtype:
        return None, f"dtype {dtype}"
    r = len(xshape)
    oshape = info.outputs[0].get("shape")
    if oshape is None or len(oshape) != r:
        return None, "output shape unknown"
    axes = attr(node, "axes", None)
    axes = list(range(r)) if axes is None else [int(a) % r for a in axes]
    scales = sizes = None
    if len(ops) > 2 and ops[2][0] == "const" and ops[2][1].size:
        scales = [float(v) for v in np.asarray(ops[2][1], dtype=np.float32).reshape(-1)]
    if len(ops) > 3 and ops[3][0] == "const" and ops[3][1].size:
        sizes = [int(v) for v in np.asarray(ops[3][1]).reshape(-1)]
    if (scales is None) == (sizes is None):
        return None, "needs constant scales or constant sizes"
    given = scales if scales is not None else sizes
    if len(given) != len(axes):
        return None, "scales/sizes length"
    for k in range(1, len(ops)):
        if ops[k][0] == "param":
            return None, "runtime roi/scales/sizes"
    per_axis = {}
    for a, v in zip(axes, given):
        per_axis[a] = v
    resized = []
    for a in range(r):
        if a not in per_axis:
            continue
        L, O = xshape[a], oshape[a]
        if scales is not None and per_axis[a] == 1.0 and (O == L):
            continue
        if sizes is not None and per_axis[a] == L and O == L and isinstance(L, int):
            continue
        if not isinstance(L, int) or not isinstance(O, int):
            return None, f"resized axis {a} is symbolic"
        s = np.float32(per_axis[a]) if scales is not None else np.float32(O) / np.float32(L)
        if scales is not None and int(np.floor(L * float(s))) != O:
            return None, f"axis {a}: output {O} != floor({L} * {float(s)})"
        resized.append((a, int(L), int(O), float(s)))
    if not resized:
        return None, "nothing is resized"
    det = {
        "op": "Resize", "mode": mode, "ctm": ctm, "dtype": dtype, "xshape": xshape, "oshape": oshape,
        "resized": resized, "a": float(attr(node, "cubic_coeff_a", -0.75)),
        "exclude_outside": int(attr(node, "exclude_outside", 0)), "x_index": x[1],
    }
    axes_txt = ",".join(str(a) for a, *_ in resized)
    return f"resize ({mode}, {ctm}, axes {axes_txt})", det


def _coord(ctm, i, L, O, s):
    """Source coordinate (float32 PrimExpr) of output index i (int32 PrimExpr) on one axis."""
    from tvm import tirx

    f = lambda v: tirx.const(v, "float32")  # noqa: E731
    xf = tirx.Cast("float32", i)
    if ctm == "half_pixel":
        return (xf + f(0.5)) / f(s) - f(0.5)
    if ctm == "pytorch_half_pixel":
        return (xf + f(0.5)) / f(s) - f(0.5) if O > 1 else f(0.0)
    if ctm == "half_pixel_symmetric":
        adj = np.float32(O) / (np.float32(s) * np.float32(L))
        center = np.float32(L) / np.float32(2)
        offset = float(center * (np.float32(1) - adj))
        return f(offset) + (xf + f(0.5)) / f(s) - f(0.5)
    if ctm == "align_corners":
        return f(0.0) if O == 1 else xf * f(float(np.float32(L - 1) / np.float32(O - 1)))
    return xf / f(s)  # asymmetric


def _cubic_weights(t, A):
    from tvm import tirx

    f = lambda v: tirx.const(v, "float32")  # noqa: E731
    a = f(A)
    t1, t2, t3 = t + f(1.0), f(1.0) - t, f(2.0) - t
    c0 = ((a * t1 - f(5.0) * a) * t1 + f(8.0) * a) * t1 - f(4.0) * a
    c1 = ((a + f(2.0)) * t - (a + f(3.0))) * t * t + f(1.0)
    c2 = ((a + f(2.0)) * t2 - (a + f(3.0))) * t2 * t2 + f(1.0)
    c3 = ((a * t3 - f(5.0) * a) * t3 + f(8.0) * a) * t3 - f(4.0) * a
    return [c0, c1, c2, c3]


def _axis_taps(det, i, L, O, s):
    """[(index PrimExpr int32, weight PrimExpr float32)] of one resized axis at output index i."""
    from tvm import te, tirx

    f = lambda v: tirx.const(v, "float32")  # noqa: E731
    ii = lambda v: tirx.const(v, "int32")  # noqa: E731
    i = tirx.Cast("int32", i)
    xo = _coord(det["ctm"], i, L, O, s)
    if det["mode"] == "linear":
        xo = te.max(f(0.0), te.min(xo, f(float(L - 1))))
        x0 = tirx.Cast("int32", te.floor(xo))
        w1 = xo - tirx.Cast("float32", x0)
        x1 = te.min(x0 + ii(1), ii(L - 1))
        return [(x0, f(1.0) - w1), (x1, w1)]
    fl = te.floor(xo)
    t = xo - fl
    base = tirx.Cast("int32", fl)
    ws = _cubic_weights(t, det["a"])
    taps = []
    for k, w in enumerate(ws):
        raw = base + ii(k - 1)
        idx = te.max(ii(0), te.min(raw, ii(L - 1)))
        if det["exclude_outside"]:
            w = tirx.Select(tirx.all(raw >= ii(0), raw <= ii(L - 1)), w, f(0.0))
        taps.append((idx, w))
    if det["exclude_outside"]:
        total = taps[0][1] + taps[1][1] + taps[2][1] + taps[3][1]
        taps = [(idx, w / total) for idx, w in taps]
    return taps


def resize_te(x, det):
    """The TE tensor of the resized output (x: the input placeholder)."""
    import itertools

    from tvm import te, tirx

    r = len(det["xshape"])
    resized = {a: (L, O, s) for a, L, O, s in det["resized"]}
    oshape = [x.shape[a] if a not in resized else resized[a][1] for a in range(r)]
    dtype = det["dtype"]

    def fcompute(*idx):
        per_axis = []
        for a in range(r):
            if a in resized:
                L, O, s = resized[a]
                per_axis.append(_axis_taps(det, idx[a], L, O, s))
            else:
                per_axis.append([(idx[a], None)])
        acc = None
        for combo in itertools.product(*per_axis):
            w = None
            for _, wk in combo:
                if wk is not None:
                    w = wk if w is None else w * wk
            src = [tirx.Cast(str(idx[a].ty), c[0]) if a in resized else c[0] for a, c in enumerate(combo)]
            v = x(*src)
            if dtype != "float32":
                v = tirx.Cast("float32", v)
            term = v * w
            acc = term if acc is None else acc + term
        return acc if dtype == "float32" else tirx.Cast(dtype, acc)

    return te.compute(oshape, fcompute, name="tpat_resize")


def axis_tables(det):
    """Per resized axis: (int32 indices [O, taps], float32 weights [O, taps]) computed at plan
    time with the float32 formulas of ONNX Runtime (the kernel then only looks them up)."""
    f32 = np.float32
    out = []
    for _a, L, O, s in det["resized"]:
        s = f32(s)
        x = np.arange(O, dtype=f32)
        ctm = det["ctm"]
        if ctm == "half_pixel":
            xo = (x + f32(0.5)) / s - f32(0.5)
        elif ctm == "pytorch_half_pixel":
            xo = (x + f32(0.5)) / s - f32(0.5) if O > 1 else np.zeros(O, f32)
        elif ctm == "half_pixel_symmetric":
            adj = f32(O) / (s * f32(L))
            offset = (f32(L) / f32(2)) * (f32(1) - adj)
            xo = offset + (x + f32(0.5)) / s - f32(0.5)
        elif ctm == "align_corners":
            xo = np.zeros(O, f32) if O == 1 else x * (f32(L - 1) / f32(O - 1))
        else:
            xo = x / s
        xo = xo.astype(f32)
        if det["mode"] == "linear":
            xo = np.clip(xo, f32(0), f32(L - 1))
            x0 = np.floor(xo).astype(np.int32)
            w1 = (xo - x0.astype(f32)).astype(f32)
            idx = np.stack([x0, np.minimum(x0 + 1, L - 1)], -1).astype(np.int32)
            w = np.stack([f32(1) - w1, w1], -1).astype(f32)
        else:
            a = f32(det["a"])
            fl = np.floor(xo)
            t = (xo - fl).astype(f32)
            t1, t2, t3 = t + f32(1), f32(1) - t, f32(2) - t
            c0 = ((a * t1 - f32(5) * a) * t1 + f32(8) * a) * t1 - f32(4) * a
            c1 = ((a + f32(2)) * t - (a + f32(3))) * t * t + f32(1)
            c2 = ((a + f32(2)) * t2 - (a + f32(3))) * t2 * t2 + f32(1)
            c3 = ((a * t3 - f32(5) * a) * t3 + f32(8) * a) * t3 - f32(4) * a
            w = np.stack([c0, c1, c2, c3], -1).astype(f32)
            raw = fl.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :]
            if det["exclude_outside"]:
                w = np.where((raw >= 0) & (raw <= L - 1), w, f32(0)).astype(f32)
                w = (w / w.sum(-1, keepdims=True, dtype=f32)).astype(f32)
            idx = np.clip(raw, 0, L - 1).astype(np.int32)
        out.append((np.ascontiguousarray(idx), np.ascontiguousarray(w)))
    return out


def resize_te_tables(x, det, tabs):
    """The resized output from per-axis tap tables (tabs: [idx_a, w_a] placeholders)."""
    from tvm import te, tirx

    r = len(det["xshape"])
    order = [a for a, *_ in det["resized"]]
    tab = {a: (tabs[2 * k], tabs[2 * k + 1]) for k, a in enumerate(order)}
    oshape = [x.shape[a] if a not in tab else det["resized"][order.index(a)][2] for a in range(r)]
    dtype = det["dtype"]
    taps = 2 if det["mode"] == "linear" else 4

    def fcompute(*idx):
        def nest(k, src):
            if k == len(order):
                v = x(*src)
                return v if dtype == "float32" else tirx.Cast("float32", v)
            a = order[k]
            ti, tw = tab[a]
            acc = None
            for t in range(taps):
                s2 = list(src)
                s2[a] = tirx.Cast(str(idx[a].ty), ti(idx[a], t))
                term = tw(idx[a], t) * nest(k + 1, s2)
                acc = term if acc is None else acc + term
            return acc

        out = nest(0, list(idx))
        return out if dtype == "float32" else tirx.Cast(dtype, out)

    return te.compute(oshape, fcompute, name="tpat_resize")


def emit(bb, params, det, mode="gpu"):
    """Emit the lowering into a Relax BlockBuilder (inside main's dataflow block); the same TE
    compute serves every target (`mode` is unused). Default: tap tables computed at plan time
    (constants of the plan); TPAT_RESIZE_IMPL=inline computes coordinates in the kernel."""
    import os

    from tvm import relax

    x = params[det["x_index"]]
    if os.environ.get("TPAT_RESIZE_IMPL", "tables") == "inline":
        return bb.emit_te(lambda x: resize_te(x, det), x, primfunc_name_hint="tpat_resize")
    consts = []
    for idx, w in axis_tables(det):
        consts += [relax.const(idx, "int32"), relax.const(w, "float32")]
    return bb.emit_te(lambda x, *tabs: resize_te_tables(x, det, tabs), x, *consts,
                      primfunc_name_hint="tpat_resize")


ROWS_PER_THREAD = 4


def schedule(mod, det, mode="gpu"):
    """TPAT's GPU schedule for the resize compute: threads along the last output axis, each thread
    walking ROWS_PER_THREAD output rows (its x taps are loaded once and reused, the row taps are
    the same for the whole warp), blocks over the fused leading axes. Indices are narrowed to
    int32 first when every shape is static. Returns the module unchanged (dlight schedules it)
    when the last axis is symbolic, the mode is not GPU, or TPAT_RESIZE_SCHEDULE=dlight."""
    import os

    import tvm
    from tvm import s_tir, tirx

    if mode != "gpu" or os.environ.get("TPAT_RESIZE_SCHEDULE", "tpat") == "dlight":
        return mod
    gv = next((g for g in mod.get_global_vars() if g.name_hint == "tpat_resize"), None)
    w = det["oshape"][-1]
    if gv is None or not isinstance(w, int):
        return mod
    func = mod[gv]
    if all(isinstance(d, int) for d in det["xshape"] + det["oshape"]) and \
            int(np.prod(det["oshape"], dtype=np.float64)) < 2**31:
        func = tirx.transform.ForceNarrowIndexToInt32()(tvm.IRModule({gv: func}))[gv]
    sch = s_tir.Schedule(func)
    blk = sch.get_sblock("tpat_resize")
    loops = sch.get_loops(blk)
    tx = loops[-1]
    if len(loops) > 1:
        rows = sch.fuse(*loops[:-1]) if len(loops) > 2 else loops[0]
        bo, ri = sch.split(rows, [None, ROWS_PER_THREAD])
    else:
        bo, ri = None, None
    if w > 1024:
        wo, tx = sch.split(tx, [None, 256])
        sch.bind(wo, "blockIdx.y")
    if bo is not None:
        sch.reorder(bo, tx, ri)
        sch.bind(bo, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    out = sch.mod["main"].with_attr("tirx.is_scheduled", True)
    mod[gv] = out
    return mod

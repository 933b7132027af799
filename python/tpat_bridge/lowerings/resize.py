"""TPAT's own TVM lowering of ONNX Resize, modes linear and cubic (any rank, any resized axes).

The frontend's legalization (topi.image.resize2d/3d) works, but every output element recomputes
its coordinates through int64 division/modulo chains. This lowering is a TE compute with
separable taps read from tables:

    out[i] = sum over taps of  prod_a w_a[i_a, t_a] * x[idx_a[i_a, t_a] for each resized axis a]

For every resized axis the tables (int32 indices, float32 weights) are computed at plan time
(`axis_tables`) with ONNX Runtime's float32 formulas: the ONNX coordinate transform (half_pixel,
pytorch_half_pixel, half_pixel_symmetric, align_corners, asymmetric), 2 taps (linear) or 4
(cubic, `cubic_coeff_a`, `exclude_outside`), indices clamped to the edge. They travel as plan
constants. Axes that are not resized (scale 1, same size) are read straight through and may be
symbolic. On the GPU, TPAT's schedule (`schedule`) puts threads along the last output axis; when
it declines, dlight schedules the compute.

antialias=1 (opset 18) as ONNX's reference implementation computes it: when downsampling, the
filter's support is scaled by 1 / scale (linear: a triangle of half-width 1 / scale; cubic: Keys'
kernel of `cubic_coeff_a` over 2 / scale), the weights normalized to 1, indices clamped to the edge
(`exclude_outside` drops and renormalizes); the taps come from `tap_offsets`, more than UNROLL per
output are summed over reduction axes (dlight schedules that form). keep_aspect_ratio_policy
not_larger / not_smaller (with sizes): one scale, min / max of the sizes' ratios, for every axis.

Not handled here (the frontend's lowering is used): nearest, tf_crop_and_resize, resized axes with
symbolic sizes, non-float dtypes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from tvm import relax, te, tirx

from .. import dtypes
from .protocol import Decline, Lowering, NodeView, Selection

MODES = ("linear", "cubic")
COORD_MODES = ("half_pixel", "pytorch_half_pixel", "half_pixel_symmetric", "align_corners", "asymmetric")
FLOAT_DTYPES = dtypes.FLOATS


@dataclass(frozen=True)
class ResizeSelection(Selection):
    mode: str  # "linear" or "cubic"
    ctm: str  # coordinate_transformation_mode
    dtype: str
    xshape: list
    oshape: list
    resized: list  # [(axis, input length, output length, scale)] of the axes that change
    a: float  # cubic_coeff_a
    exclude_outside: int
    x_index: int
    antialias: int = 0
    policy: str = "stretch"

    def describe(self) -> str:
        axes_txt = ",".join(str(a) for a, *_ in self.resized)
        extra = ""
        if self.antialias:
            taps = [len(t) for t in tap_offsets(self)]
            form = "unrolled" if math.prod(taps) <= UNROLL else "reduction"
            extra = f", antialias, taps {'x'.join(map(str, taps))} {form}"
        if self.policy != "stretch":
            extra += f", {self.policy}"
        return f"resize ({self.mode}, {self.ctm}, axes {axes_txt}{extra})"


MAX_AXIS = 1 << 20  # longest resized axis (input or output) whose coordinate tables emit builds
POLICIES = ("stretch", "not_larger", "not_smaller")
UNROLL = 64  # taps per output summed as unrolled terms up to this many, else reduction axes
MAX_TAPS = 1 << 16  # taps per output (antialias at tiny scales): more is declined


def tap_offsets(det):
    """Per resized axis, the tap offsets j (the tap reads index base + j, base = the coordinate's
    floor, or the coordinate - 1 when it is an integer: ONNX's reference, `ratio` in (0, 1]).
    Antialias (downsampling) scales the filter's support by 1 / scale."""
    out = []
    for _a, _L, _O, s in det.resized:
        if det.antialias and s < 1.0:
            s = float(np.float32(s))
            if det.mode == "linear":
                start = int(math.floor(-1.0 / s) + 1)
                out.append(range(start, start + 2 - 2 * start))
            else:
                start = int(math.floor(-2.0 / s) + 1)
                out.append(range(start, 2 - start))
        else:
            out.append(range(0, 2) if det.mode == "linear" else range(-1, 3))
    return out


def _keys(x, a):
    """Keys' cubic kernel of coefficient a at |x| (ONNX's reference, _cubic_coeffs_antialias)."""
    x = np.abs(x)
    x2, x3 = x * x, x * x * x
    near = (a + 2) * x3 - (a + 3) * x2 + 1
    far = a * x3 - 5 * a * x2 + 8 * a * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def antialias_table(det, L, xo, s, offs):
    """(indices, weights) of an antialiased downsampling axis, as ONNX's reference computes them
    (float64, then float32): the filter at (index - coordinate) * scale, normalized to sum 1;
    indices clamped to the edge (exclude_outside: outside taps get weight 0, renormalized)."""
    xo = xo.astype(np.float64)
    fl = np.floor(xo)
    integer = xo == fl
    base = np.where(integer, xo - 1, fl).astype(np.int64)
    ratio = np.where(integer, 1.0, xo - fl)
    j = np.array(list(offs), np.float64)
    args = (j[None, :] - ratio[:, None]) * float(np.float32(s))
    if det.mode == "linear":
        w = np.clip(1.0 - np.abs(args), 0.0, 1.0)
    else:
        w = _keys(args, float(np.float32(det.a)))
    w = w / w.sum(-1, keepdims=True)
    raw = base[:, None] + np.array(list(offs), np.int64)[None, :]
    if det.exclude_outside:
        w = np.where((raw >= 0) & (raw <= L - 1), w, 0.0)
        w = w / w.sum(-1, keepdims=True)
    return np.clip(raw, 0, L - 1).astype(np.int32), w.astype(np.float32)


def select(node: NodeView) -> ResizeSelection | Decline:
    ops = node.operands
    mode = node.attr("mode", "nearest")
    if mode not in MODES:
        return Decline(f"Resize mode {mode}")
    ctm = node.attr("coordinate_transformation_mode", "half_pixel")
    if ctm not in COORD_MODES:
        return Decline(f"coordinate_transformation_mode {ctm}")
    antialias = int(node.attr("antialias", 0))
    if antialias not in (0, 1):
        return Decline(f"antialias={antialias} (0 or 1)")
    policy = node.attr("keep_aspect_ratio_policy", "stretch")
    if policy not in POLICIES:
        return Decline(f"keep_aspect_ratio_policy {policy}")
    x = ops[0]
    if not x.is_param:
        return Decline("constant Resize input")
    xshape, dtype = x.shape, x.dtype
    if dtype not in FLOAT_DTYPES or node.outputs[0]["dtype"] != dtype:
        return Decline(f"dtype {dtype}")
    r = len(xshape)
    oshape = node.outputs[0].get("shape")
    if oshape is None or len(oshape) != r:
        return Decline("output shape unknown")
    axes = node.attr("axes", None)
    if r == 0:
        return Decline("scalar input")
    if axes is not None and (
        not isinstance(axes, list)
        or len(set(axes)) != len(axes)
        or not all(isinstance(a, int) and -r <= a < r for a in axes)
    ):
        return Decline(f"axes {axes} for a rank-{r} input")
    axes = list(range(r)) if axes is None else [a % r for a in axes]
    scales = sizes = None
    if len(ops) > 2 and ops[2].is_const and ops[2].value.size:
        scales = [float(v) for v in np.asarray(ops[2].value, dtype=np.float32).reshape(-1)]
    if len(ops) > 3 and ops[3].is_const and ops[3].value.size:
        if ops[3].value.dtype.kind not in "iu":
            return Decline(f"sizes of type {ops[3].value.dtype} (ONNX: int64)")
        sizes = [int(v) for v in np.asarray(ops[3].value).reshape(-1)]
    if scales is not None and not all(math.isfinite(v) and v > 0 for v in scales):
        return Decline(f"scales {scales} (must be finite and > 0)")
    if sizes is not None and not all(0 < v < 2**31 for v in sizes):
        return Decline(f"sizes {sizes} (must be in [1, 2^31))")
    if (scales is None) == (sizes is None):
        return Decline("needs constant scales or constant sizes")
    given = scales if scales is not None else sizes
    if len(given) != len(axes):
        return Decline("scales/sizes length")
    for k in range(1, len(ops)):
        if ops[k].is_param:
            return Decline("runtime roi/scales/sizes")
    per_axis = {}
    for a, v in zip(axes, given):
        per_axis[a] = v
    common = None  # keep_aspect_ratio_policy (sizes only): one scale for every axis in `axes`
    if sizes is not None and policy != "stretch":
        if not all(isinstance(xshape[a], int) and xshape[a] > 0 for a in axes):
            return Decline(f"keep_aspect_ratio_policy {policy} over symbolic axes")
        ratios = [np.float32(per_axis[a]) / np.float32(xshape[a]) for a in axes]
        common = min(ratios) if policy == "not_larger" else max(ratios)
        for a in axes:
            want = int(np.floor(np.float32(xshape[a]) * common + np.float32(0.5)))
            if oshape[a] != want:
                return Decline(f"axis {a}: declared output {oshape[a]}, keep_aspect_ratio_policy gives {want}")
            per_axis[a] = want
    resized = []
    for a in range(r):
        if a not in per_axis:
            continue
        L, O = xshape[a], oshape[a]
        if scales is not None and per_axis[a] == 1.0 and (O == L):
            continue
        if sizes is not None and per_axis[a] == L and O == L and isinstance(L, int) and common in (None, 1.0):
            continue
        if not isinstance(L, int) or not isinstance(O, int):
            return Decline(f"resized axis {a} is symbolic")
        if not (0 < L <= MAX_AXIS and 0 < O <= MAX_AXIS):  # emit builds per-coordinate tables of O entries
            return Decline(f"resized axis {a}: {L} -> {O} (TPAT's tables take axes up to {MAX_AXIS})")
        s = np.float32(per_axis[a]) if scales is not None else np.float32(O) / np.float32(L)
        if common is not None:
            s = np.float32(common)
        if scales is not None and int(np.floor(L * float(s))) != O:
            return Decline(f"axis {a}: output {O} != floor({L} * {float(s)})")
        resized.append((a, int(L), int(O), float(s)))
    if not resized:
        return Decline("nothing is resized")
    sel = ResizeSelection(
        mode=mode,
        ctm=ctm,
        dtype=dtype,
        xshape=xshape,
        oshape=oshape,
        resized=resized,
        a=float(node.attr("cubic_coeff_a", -0.75)),
        exclude_outside=int(node.attr("exclude_outside", 0)),
        x_index=x.index,
        antialias=antialias,
        policy=policy,
    )
    taps = [len(t) for t in tap_offsets(sel)]
    if math.prod(taps) > MAX_TAPS:
        return Decline(
            f"{math.prod(taps)} taps per output (antialias at scales {[r[3] for r in resized]}; at most {MAX_TAPS})"
        )
    return sel


def axis_tables(det):
    """Per resized axis: (int32 indices [O, taps], float32 weights [O, taps]) computed at plan
    time with the float32 formulas of ONNX Runtime (the kernel then only looks them up)."""
    f32 = np.float32
    out = []
    for (_a, L, O, s), offs in zip(det.resized, tap_offsets(det)):
        aa = det.antialias and s < 1.0
        s = f32(s)
        x = np.arange(O, dtype=f32)
        ctm = det.ctm
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
        if aa:
            idx, w = antialias_table(det, L, xo, s, offs)
        elif det.mode == "linear":
            xo = np.clip(xo, f32(0), f32(L - 1))
            x0 = np.floor(xo).astype(np.int32)
            w1 = (xo - x0.astype(f32)).astype(f32)
            idx = np.stack([x0, np.minimum(x0 + 1, L - 1)], -1).astype(np.int32)
            w = np.stack([f32(1) - w1, w1], -1).astype(f32)
        else:
            a = f32(det.a)
            fl = np.floor(xo)
            t = (xo - fl).astype(f32)
            t1, t2, t3 = t + f32(1), f32(1) - t, f32(2) - t
            c0 = ((a * t1 - f32(5) * a) * t1 + f32(8) * a) * t1 - f32(4) * a
            c1 = ((a + f32(2)) * t - (a + f32(3))) * t * t + f32(1)
            c2 = ((a + f32(2)) * t2 - (a + f32(3))) * t2 * t2 + f32(1)
            c3 = ((a * t3 - f32(5) * a) * t3 + f32(8) * a) * t3 - f32(4) * a
            w = np.stack([c0, c1, c2, c3], -1).astype(f32)
            raw = fl.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :]
            if det.exclude_outside:
                w = np.where((raw >= 0) & (raw <= L - 1), w, f32(0)).astype(f32)
                w = (w / w.sum(-1, keepdims=True, dtype=f32)).astype(f32)
            idx = np.clip(raw, 0, L - 1).astype(np.int32)
        out.append((np.ascontiguousarray(idx), np.ascontiguousarray(w)))
    return out


def resize_te_tables(x, det, tabs):
    """The resized output from per-axis tap tables (tabs: [idx_a, w_a] placeholders): the taps
    unrolled (at most UNROLL per output), else summed over one reduction axis per resized axis."""
    r = len(det.xshape)
    order = [a for a, *_ in det.resized]
    tab = {a: (tabs[2 * k], tabs[2 * k + 1]) for k, a in enumerate(order)}
    ntaps = {a: len(offs) for a, offs in zip(order, tap_offsets(det))}
    oshape = [x.shape[a] if a not in tab else det.resized[order.index(a)][2] for a in range(r)]
    dtype = det.dtype

    def load(src):
        v = x(*src)
        return v if dtype == "float32" else tirx.Cast("float32", v)

    def out(v):
        return v if dtype == "float32" else tirx.Cast(dtype, v)

    if math.prod(ntaps.values()) <= UNROLL:

        def fcompute(*idx):
            def nest(k, src):
                if k == len(order):
                    return load(src)
                a = order[k]
                ti, tw = tab[a]
                acc = None
                for t in range(ntaps[a]):
                    s2 = list(src)
                    s2[a] = tirx.Cast(str(idx[a].ty), ti(idx[a], t))
                    term = tw(idx[a], t) * nest(k + 1, s2)
                    acc = term if acc is None else acc + term
                return acc

            return out(nest(0, list(idx)))

        return te.compute(oshape, fcompute, name="tpat_resize")

    raxes = {a: te.reduce_axis((0, ntaps[a]), name=f"t{a}") for a in order}

    def fsum(*idx):
        src, w = list(idx), None
        for a in order:
            ti, tw = tab[a]
            src[a] = tirx.Cast(str(idx[a].ty), ti(idx[a], raxes[a]))
            w = tw(idx[a], raxes[a]) if w is None else w * tw(idx[a], raxes[a])
        return te.sum(w * load(src), axis=[raxes[a] for a in order])

    if dtype == "float32":
        return te.compute(oshape, fsum, name="tpat_resize")
    acc = te.compute(oshape, fsum, name="tpat_resize_sum")
    return te.compute(oshape, lambda *i: out(acc(*i)), name="tpat_resize")


def emit(bb, params, det, mode="gpu"):
    """Emit the lowering into a Relax BlockBuilder (inside main's dataflow block): the tap tables
    as constants of the plan, then the TE compute (the same for every target; `mode` is unused)."""
    x = params[det.x_index]
    consts = []
    for idx, w in axis_tables(det):
        consts += [relax.const(idx, "int32"), relax.const(w, "float32")]
    return bb.emit_te(lambda x, *tabs: resize_te_tables(x, det, tabs), x, *consts, primfunc_name_hint="tpat_resize")


ROWS_PER_THREAD = 4
PRIMFUNC = "tpat_resize"


def schedule(sch, blk, det):
    """TPAT's GPU schedule for the resize compute (applied by ir.apply_schedule): threads
    along the last output axis, each thread walking ROWS_PER_THREAD output rows (its x taps are
    loaded once and reused, the row taps are the same for the whole warp), blocks over the fused
    leading axes. Declines (dlight schedules it) when the last axis is symbolic or
    TPAT_RESIZE_SCHEDULE=dlight."""
    w = det.oshape[-1]
    if os.environ.get("TPAT_RESIZE_SCHEDULE", "tpat") == "dlight" or not isinstance(w, int):
        return False
    if math.prod(len(t) for t in tap_offsets(det)) > UNROLL:
        return False  # the reduction form (antialias at small scales): dlight schedules it
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
    return True


class ResizeLowering(Lowering):
    name = "resize"
    ops = ("Resize",)
    primfunc = PRIMFUNC

    def select(self, node):
        return select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)

    def schedule(self, sch, block, sel):
        return schedule(sch, block, sel)


RESIZE = ResizeLowering()

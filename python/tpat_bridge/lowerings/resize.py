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
symbolic.

Two kernels use these tables:
- the tiled kernel (`tile_plan`, `_tiled_ir`), when only the last two axes (H, W) are resized
  (images: NCHW, any leading dims, symbolic ones included) with at most TILE_MAX_TAPS taps per
  axis: a block per (plane, RH x CW output tile); stage 1 resizes the tile's SPAN input rows along
  W into shared memory (a thread per column, its W taps in registers, coalesced loads), stage 2
  sums each output's Th staged rows (float4 reads of the tile, conflict-free: `_chunk_col`) and
  writes V outputs per thread (one 16-byte store for float32; two 8-byte chunks for 16-bit
  types). Linear filters with small tiles ask __launch_bounds__ for 8 blocks per SM
  (`tile_blocks_per_sm`). Each input element is read from DRAM once (halo rows from L2), each
  output written once; a separable filter costs Th + Tw reads per output instead of Th x Tw
  (antialias x0.25 cubic: 16 + 16 instead of 256).
- otherwise the TE compute below, scheduled by TPAT's `schedule` (threads along the last output
  axis) or by dlight when it declines.

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
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .. import dtypes
from .ir import Threads
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
        tp = tile_plan(self)
        if self.antialias:
            taps = [len(t) for t in tap_offsets(self)]
            form = "separable" if tp is not None else "unrolled" if math.prod(taps) <= UNROLL else "reduction"
            extra = f", antialias, taps {'x'.join(map(str, taps))} {form}"
        if self.policy != "stretch":
            extra += f", {self.policy}"
        if tp is not None:
            extra += f", tiled {tp.rh}x{tp.cw}, {tp.v}-wide stores"
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
    as constants of the plan, then the tiled kernel (`tile_plan`) or the TE compute (the same for
    every target)."""
    x = params[det.x_index]
    tp = tile_plan(det)
    if tp is not None:
        return emit_tiled(bb, x, det, tp, mode)
    consts = []
    for idx, w in axis_tables(det):
        consts += [relax.const(idx, "int32"), relax.const(w, "float32")]
    return bb.emit_te(lambda x, *tabs: resize_te_tables(x, det, tabs), x, *consts, primfunc_name_hint="tpat_resize")


# ------------------------------------------------------------------------------------------------
# The tiled kernel: the last two axes (H, W) resized, separably, through shared memory
# ------------------------------------------------------------------------------------------------

TILE_THREADS = 256
TILE_SMEM = 46 << 10  # bytes of the shared-memory tile (static shared memory: at most 48 KiB)
TILE_MAX_TAPS = 32  # taps per axis kept in registers / unrolled; more: the TE forms above
TILE_WIDTHS = (32, 64, 128, 256)
SMS = 132  # H100 / H200 SXM
BLOCKS_PER_SM = 8  # blocks of TILE_THREADS resident per SM: the tile choice prefers a full wave


@dataclass(frozen=True)
class TilePlan:
    """The tiled kernel's shape: output tiles of RH rows x CW columns per block, V outputs per
    vector store, SPAN input rows staged per tile, the per-axis tap tables (identity axes: None)."""

    hi: int
    wi: int
    ho: int
    wo: int
    rh: int
    cw: int
    v: int
    span: int
    htab: tuple | None  # (idx [Ho, Th] int32, w [Ho, Th] float32) or None (H not resized)
    wtab: tuple | None
    lo: np.ndarray  # int32 [tiles along H]: the first input row of each tile

    @property
    def th(self):
        return 1 if self.htab is None else self.htab[0].shape[1]

    @property
    def tw(self):
        return 1 if self.wtab is None else self.wtab[0].shape[1]


def _pow2_upto(n):
    out, k = [], 1
    while k <= n:
        out.append(k)
        k *= 2
    return out


def tile_plan(det):
    """The tiled kernel's plan when it applies (else None: the TE forms): rank >= 2, only the
    last two axes resized, both static, a plane of fewer than 2^31 elements, at most TILE_MAX_TAPS
    taps per axis, TPAT's schedule not switched off. Tiles: CW in TILE_WIDTHS, RH a power of two, chosen by a cost per output (staged
    loads span / RH x Tw, the shared reads Th, padding of the last tiles, divided by the fraction
    of one full wave of blocks the grid fills) with the staged rows (span x CW floats) within
    TILE_SMEM. A symbolic leading dim counts as 1."""
    if os.environ.get("TPAT_RESIZE_SCHEDULE", "tpat") == "dlight":
        return None
    r = len(det.xshape)
    if r < 2 or any(a < r - 2 for a, *_ in det.resized):
        return None
    hi, wi = det.xshape[-2:]
    ho, wo = det.oshape[-2:]
    if not all(isinstance(d, int) and d > 0 for d in (hi, wi, ho, wo)):
        return None
    if max(hi * wi, ho * wo) >= 2**31:  # offsets within a plane are int32
        return None
    tabs = dict(zip([a for a, *_ in det.resized], axis_tables(det)))
    htab, wtab = tabs.get(r - 2), tabs.get(r - 1)
    if any(t is not None and t[0].shape[1] > TILE_MAX_TAPS for t in (htab, wtab)):
        return None
    hidx = htab[0] if htab is not None else np.arange(ho, dtype=np.int32)[:, None]
    tw = 1 if wtab is None else wtab[0].shape[1]
    th = hidx.shape[1]
    esize = dtypes.sizes(det.dtype)[det.dtype]
    v = 16 // esize
    while v > 1 and wo % v:
        v //= 2
    lead = 1
    for d in det.xshape[:-2]:
        lead *= d if isinstance(d, int) else 1
    best = None
    for cw in TILE_WIDTHS:
        if cw < v or (cw > 32 and cw // 2 >= wo):
            continue
        nw = -(-wo // cw)
        # powers of two, and the whole height when it is not one (no padded rows: linear x4 to 176
        # rows took 176 x 32 tiles in 51.5 us against 55.0 for 64 x 32, membw-2-tiles)
        rhs = _pow2_upto(max(1, min(256, 1 << (ho - 1).bit_length())))
        for rh in rhs + ([ho] if ho <= 256 and ho not in rhs else []):
            if rh * cw > TILE_THREADS * v * 8:
                break
            nh = -(-ho // rh)
            rows = np.pad(hidx.astype(np.int64), ((0, nh * rh - ho), (0, 0)), mode="edge").reshape(nh, -1)
            lo, hi_ = rows.min(1), rows.max(1)
            span = int((hi_ - lo).max()) + 1
            if span * cw * 4 > TILE_SMEM:
                continue
            pad = (nw * cw / wo) * (nh * rh / ho)
            cost = pad * (span / rh * tw + 0.5 * th) + 64.0 / (rh * cw)
            cost /= min(1.0, lead * nw * nh / (SMS * BLOCKS_PER_SM))  # fewer blocks than one full wave
            if best is None or cost < best[0]:
                best = (cost, rh, cw, span, lo.astype(np.int32))
    if best is None:
        return None
    _, rh, cw, span, lo = best
    return TilePlan(hi, wi, ho, wo, rh, cw, v, span, htab, wtab, lo)


UNROLL_LOADS = (64, 16)  # stage 1 / stage 2 passes unrolled while passes x taps stays within this
UNROLL_TAPS = 2  # ... and only for filters of at most this many taps per axis (linear)


def _loop(n, taps, limit):
    """A stage's loop over its n passes of `taps` loads each: unrolled for a linear filter when
    n x taps <= limit, so that a thread's loads of every pass are issued together (one DRAM round
    trip per stage, not one per pass or per few passes); a serial loop otherwise. Measured on the
    H200 (membw-2): linear x4 63.2 -> 55.0 us, align_corners fp16 81.5 -> 78.2, bilinear x0.5 bf16
    37.4 -> 35.8; cubic x2 with both stages unrolled (16 x 4 and 8 x 4 loads) went 35.0 -> 45.9 us
    (38 registers instead of 32), so 4-tap filters (cubic, antialias) keep the serial loops."""
    return T.unroll(0, n) if taps <= UNROLL_TAPS and n * taps <= limit else T.serial(0, n)


SM_SMEM = 228 << 10  # shared memory per SM (H100 / H200), 1 KB of it reserved per block


def tile_blocks_per_sm(tp):
    """The `min blocks per SM` of the tiled kernel's __launch_bounds__ (ptxas then keeps the
    registers within 65536 / (256 x that)), or None (no cap): BLOCKS_PER_SM for linear filters
    (<= UNROLL_TAPS taps per axis) whose staged tile lets BLOCKS_PER_SM blocks share an SM's
    shared memory. Measured on the H200 (membw3-2): linear x4 f32 (34 -> 32 registers, 6 -> 8
    blocks per SM) 50.8 -> 48.3 us; align_corners fp16 (a 32 KB tile: 6 blocks by shared memory,
    44 -> 40 registers) 64.1 -> 65.2 us, so not there; cubic x0.25 antialias capped to 32
    registers spilled 100 bytes (ptxas), so wider filters are not capped."""
    if tp.th > UNROLL_TAPS or tp.tw > UNROLL_TAPS:
        return None
    if SM_SMEM // (tp.span * tp.cw * 4 + 1024) < BLOCKS_PER_SM:
        return None
    return BLOCKS_PER_SM


def _chunk_col(lane, ry, q, v, sv, cw):
    """Stage 2's tile column of chunk q (sv outputs, one 16-byte float32 read of the tile) of the
    thread at `lane` of its row `ry`. With v == sv a thread's v outputs are one chunk, lanes side
    by side. With v > sv (16-bit outputs: 8 per 16-byte store, 2 float4 reads) chunk q of every
    lane lies in part q of the row (rotated by the row: ((q + ry) mod v/sv)), lanes side by side:
    the 8 lanes of a quarter-warp read 8 consecutive float4 (128 contiguous bytes, no shared-
    memory bank conflict; lanes v floats apart put lane 0 and lane 4 on the same banks, 2-way),
    and where a quarter-warp spans two rows (CW / V = 4 lanes per row) the rotation puts them on
    different halves of the banks. Each chunk is then stored on its own (sv elements)."""
    nq = v // sv
    if nq == 1:
        return lane * i32c(v)
    return ((i32c(q) + ry) % i32c(nq)) * i32c(cw // nq) + lane * i32c(sv)


def i32c(c):
    return tirx.const(c, "int32")


def _tiled_ir(det, tp, lead, ins, outs, mode):
    """One block per (plane, RH x CW output tile). Stage 1: the tile's SPAN input rows resized
    along W into shared memory (thread = column, its W taps in registers, rows strided by
    TILE_THREADS / CW; coalesced loads, conflict-free stores). Stage 2: each thread takes V
    outputs of a row in chunks of 4 (`_chunk_col`: consecutive for float32, two chunks half a
    tile row apart for 16-bit types), sums its Th staged rows with the H weights (float4 reads of
    the shared tile) and writes each chunk with one vector store."""
    gpu = mode == "gpu"
    nt, cw, rh, v, span = TILE_THREADS, tp.cw, tp.rh, tp.v, tp.span
    nw, nh = -(-tp.wo // cw), -(-tp.ho // rh)
    dtype = det.dtype
    i64 = lambda c: tirx.const(c, "int64")  # noqa: E731
    i32 = lambda c: tirx.const(c, "int32")  # noqa: E731
    f32 = lambda c: tirx.const(c, "float32")  # noqa: E731

    def cvt(e):
        return e if dtype == "float32" else tirx.Cast("float32", e)

    x_in = ins[0]
    tabs = list(ins[1:])
    hbuf = (tabs.pop(0), tabs.pop(0)) if tp.htab is not None else None
    wbuf = (tabs.pop(0), tabs.pop(0)) if tp.wtab is not None else None
    lobuf = tabs.pop(0)
    rs = nt // cw  # staged rows per pass of the block
    g = cw // v  # vector groups per tile row
    rows2 = nt // g  # output rows per pass of stage 2
    sv = min(v, 4)  # float32 lanes per shared read
    with IRBuilder() as ib:
        th_ = Threads(mode, lead * i64(nh * nw), nt, min_blocks=tile_blocks_per_sm(tp))
        with th_ as bx:
            x = T.decl_buffer([lead * i64(tp.hi * tp.wi)], dtype, data=x_in.data, elem_offset=0)
            y = T.decl_buffer([lead * i64(tp.ho * tp.wo)], dtype, data=outs[0].data, elem_offset=0)
            tile = T.decl_buffer([span * cw], "float32", scope="shared" if gpu else "global")
            b = tirx.Cast("int64", bx)
            tw_ = tirx.Cast("int32", b % i64(nw))
            th_i = tirx.Cast("int32", (b // i64(nw)) % i64(nh))
            plane = b // i64(nw * nh)
            ox0 = tw_ * i32(cw)
            oy0 = th_i * i32(rh)
            lo = lobuf[th_i]
            xbase = plane * i64(tp.hi * tp.wi)
            ybase = plane * i64(tp.ho * tp.wo)

            def stage1(tx):
                t = tirx.Cast("int32", tx)
                c = t % i32(cw)
                ox = ox0 + c
                scope = "local" if gpu else "global"
                if wbuf is not None:
                    ci = T.decl_buffer([tp.tw], "int32", scope=scope)
                    cwt = T.decl_buffer([tp.tw], "float32", scope=scope)
                with T.If(ox < i32(tp.wo)):
                    with T.Then():
                        if wbuf is not None:
                            with T.unroll(0, tp.tw) as k:
                                T.buffer_store(ci, wbuf[0][ox, k], [k])
                                T.buffer_store(cwt, wbuf[1][ox, k], [k])
                        with _loop(-(-span // rs), tp.tw, UNROLL_LOADS[0]) as it:
                            rr = it * i32(rs) + t // i32(cw)
                            row = lo + rr
                            with T.If(tirx.And(rr < i32(span), row < i32(tp.hi))):
                                with T.Then():
                                    rb = xbase + tirx.Cast("int64", row * i32(tp.wi))
                                    if wbuf is None:
                                        val = cvt(x[rb + tirx.Cast("int64", ox)])
                                    else:
                                        val = None
                                        for k in range(tp.tw):
                                            term = cwt[k] * cvt(x[rb + tirx.Cast("int64", ci[k])])
                                            val = term if val is None else val + term
                                    T.buffer_store(tile, val, [rr * i32(cw) + c])

            def stage2(tx):
                t = tirx.Cast("int32", tx)
                scope = "local" if gpu else "global"
                acc = T.decl_buffer([sv], "float32", scope=scope)
                ov = T.decl_buffer([sv], dtype, scope=scope)
                vec = T.vectorized if gpu else T.serial
                with _loop(-(-rh // rows2), tp.th, UNROLL_LOADS[1]) as it:
                    ry = it * i32(rows2) + t // i32(g)
                    oy = oy0 + ry
                    taps = []
                    for k in range(tp.th):
                        if hbuf is None:
                            taps.append((oy - lo, None))
                        else:
                            taps.append((hbuf[0][oy, k] - lo, hbuf[1][oy, k]))
                    for q in range(v // sv):
                        # the thread's q-th chunk of sv outputs (`_chunk_col`); sv divides Wo, so a
                        # chunk lies wholly inside or outside the output
                        c = _chunk_col(t % i32(g), ry, q, v, sv, cw)
                        with T.If(tirx.And(tirx.And(ry < i32(rh), oy < i32(tp.ho)), ox0 + c < i32(tp.wo))):
                            with T.Then():
                                with T.unroll(0, sv) as e:
                                    T.buffer_store(acc, f32(0), [e])
                                for src, wgt in taps:
                                    with vec(0, sv) as e:
                                        s = tile[src * i32(cw) + c + e]
                                        T.buffer_store(acc, acc[e] + (s if wgt is None else wgt * s), [e])
                                with T.unroll(0, sv) as e:
                                    T.buffer_store(ov, acc[e] if dtype == "float32" else tirx.Cast(dtype, acc[e]), [e])
                                dst = ybase + tirx.Cast("int64", oy * i32(tp.wo) + ox0 + c)
                                with vec(0, sv) as e:
                                    T.buffer_store(y, ov[e], [dst + tirx.Cast("int64", e)])

            th_.each_thread(stage1)
            th_.barrier()
            th_.each_thread(stage2)
    return ib.get()


def emit_tiled(bb, x, det, tp, mode):
    """The tiled kernel as a te.extern stage: x, the tap tables of the resized axes and the
    tiles' first rows as plan constants."""
    consts = []
    for t in (tp.htab, tp.wtab):
        if t is not None:
            consts += [relax.const(t[0], "int32"), relax.const(t[1], "float32")]
    consts.append(relax.const(tp.lo, "int32"))

    def stage(xt, *tabs):
        shape = list(xt.shape[:-2]) + [tp.ho, tp.wo]
        lead = tirx.const(1, "int64")
        for d in xt.shape[:-2]:
            lead = lead * (tirx.Cast("int64", d) if not isinstance(d, int) else tirx.const(d, "int64"))
        ts = [xt, *tabs]
        bufs = [tirx.decl_buffer(t.shape, t.dtype, name=f"b{k}", elem_offset=0) for k, t in enumerate(ts)]
        ob = tirx.decl_buffer(shape, det.dtype, name="o0", elem_offset=0)
        return te.extern(
            [shape],
            ts,
            lambda ins, outs: _tiled_ir(det, tp, lead, list(ins), list(outs), mode),
            dtype=[det.dtype],
            name="tpat_resize_tiled",
            in_buffers=bufs,
            out_buffers=[ob],
        )

    return bb.emit_te(stage, x, *consts, primfunc_name_hint="tpat_resize_tiled")


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

"""TPAT's own TVM lowering of ONNX RoiAlign (opsets 10, 16, 22): modes avg and max, both coordinate
transformation modes, any spatial_scale, fixed or adaptive sampling_ratio.

TVM 0.27's lowering gets mode=max and half_pixel with spatial_scale != 1 wrong (refusals.py, scope
"tvm") and cannot plan sampling_ratio=0 (it reads a box-dependent loop bound on the host). This
lowering is one kernel written with TVM's IR builder in a `te.extern` stage: one thread per output
element (r, c, ph, pw), pw fastest, so a warp writes consecutive outputs and reads bilinear corners
of neighbouring bins in the same feature-map rows (coalesced in NCHW; channels innermost would put
consecutive threads H*W elements apart). Each thread reads its box (broadcast within the warp),
computes the bin and, for sampling_ratio 0, the sample grid ceil(roi size / output size) on the
device (no host synchronisation), and walks the samples.

The arithmetic is ONNX Runtime's (roialign.cc, float32; ONNX's reference, onnx.reference, is the
same in float64):

    off = 0.5 (half_pixel) or 0 (output_half_pixel);  x0 = roi[0] * scale - off, ...
    roi_w = x1 - x0 (output_half_pixel: max(roi_w, 1)); bin_w = roi_w / out_w
    grid_w = sampling_ratio or ceil(roi_w / out_w); count = max(grid_h * grid_w, 1)
    sample y = y0 + ph * bin_h + (iy + 0.5) * bin_h / grid_h (x alike); a sample with y < -1,
    y > H, x < -1 or x > W has zero weights at position 0; else y, x clamped to >= 0, y_low =
    int(y), y_low >= H - 1 -> y_low = y_high = H - 1 and y = y_low; the 4 bilinear weights.
    avg: sum of w1 v1 + w2 v2 + w3 v3 + w4 v4 over the samples / count
    max: max over the samples of max(w1 v1, w2 v2, w3 v3, w4 v4) (std::max order; 0 without samples)

float16 / bfloat16 are read and computed in float32, rounded once. Where ONNX Runtime reads out of
bounds or errors, the kernel does not: a batch index outside [0, N) (ORT: an error) or an empty
feature map gives 0; a NaN sample coordinate counts as outside the map. Adaptive sample counts are
capped at MAX_GRID per axis (a bin more than MAX_GRID feature pixels tall or wide; ORT would loop
that long), a documented difference. Declined (the planner then uses TVM's lowering or a refusal):
float64, batch_indices other than int64, rois whose type differs from X, a rank other than 4,
rois not of shape [R, 4], sampling_ratio < 0, output sizes outside [1, MAX_OUT].
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import te, tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .ir import relax_arg
from .protocol import Decline, FunctionLowering, NodeView, Selection

DTYPES = ("float32", "float16", "bfloat16")
THREADS = 256
MAX_OUT = 1 << 12  # output_height / output_width
MAX_RATIO = 1 << 10  # a fixed sampling_ratio (samples per bin and axis)
MAX_GRID = 1 << 12  # an adaptive sample count per bin and axis is capped here


@dataclass(frozen=True)
class RoiAlignSelection(Selection):
    dtype: str
    mode: str  # "avg" or "max"
    half_pixel: bool
    scale: float
    ratio: int  # 0: adaptive
    oh: int
    ow: int
    operands: tuple  # (X, rois, batch_indices) operands

    def describe(self) -> str:
        ctm = "half_pixel" if self.half_pixel else "output_half_pixel"
        ratio = "adaptive" if self.ratio == 0 else str(self.ratio)
        return (
            f"roi_align ({self.mode}, {ctm}, spatial_scale={self.scale:g}, sampling_ratio={ratio}, "
            f"{self.oh}x{self.ow}, a thread per output)"
        )


def select(n: NodeView) -> RoiAlignSelection | Decline:
    ops = n.operands
    if len(ops) != 3 or any(o.is_absent for o in ops) or len(n.outputs) != 1:
        return Decline("RoiAlign arity")
    x, rois, bi = ops
    dtype = x.dtype
    if dtype not in DTYPES:
        return Decline(f"X of type {dtype} (TPAT's lowering takes float32/16, bfloat16)")
    if rois.dtype != dtype or n.outputs[0]["dtype"] != dtype:
        return Decline(f"rois {rois.dtype} / Y {n.outputs[0]['dtype']} differ from X {dtype}")
    if bi.dtype != "int64":
        return Decline(f"batch_indices of type {bi.dtype} (ONNX: int64)")
    if len(x.shape) != 4:
        return Decline(f"X of rank {len(x.shape)} (ONNX: 4)")
    if len(rois.shape) != 2 or rois.shape[1] != 4 or len(bi.shape) != 1:
        return Decline(f"rois of shape {rois.shape}, batch_indices {bi.shape} (expected [R, 4], [R])")
    mode = n.attr("mode", "avg")
    if mode not in ("avg", "max"):
        return Decline(f"mode {mode!r}")
    default_ctm = "half_pixel" if n.opset(16) >= 16 else "output_half_pixel"
    ctm = n.attr("coordinate_transformation_mode", default_ctm)
    if ctm not in ("half_pixel", "output_half_pixel"):
        return Decline(f"coordinate_transformation_mode {ctm!r}")
    oh, ow = int(n.attr("output_height", 1)), int(n.attr("output_width", 1))
    if not (1 <= oh <= MAX_OUT and 1 <= ow <= MAX_OUT):
        return Decline(f"output {oh}x{ow} (TPAT's lowering takes 1..{MAX_OUT})")
    ratio = int(n.attr("sampling_ratio", 0))
    if not 0 <= ratio <= MAX_RATIO:
        return Decline(f"sampling_ratio {ratio} (TPAT's lowering takes 0..{MAX_RATIO})")
    scale = float(n.attr("spatial_scale", 1.0))
    oshape = n.outputs[0].get("shape")
    if oshape is not None and len(oshape) == 4 and all(isinstance(d, int) for d in oshape[2:]):
        if list(oshape[2:]) != [oh, ow]:
            return Decline(f"declared output {oshape} is not [R, C, {oh}, {ow}]")
    return RoiAlignSelection(
        dtype=dtype,
        mode=mode,
        half_pixel=ctm == "half_pixel",
        scale=scale,
        ratio=ratio,
        oh=oh,
        ow=ow,
        operands=(x, rois, bi),
    )


def _roialign_ir(det, x, rois, bi, out, mode):
    """One thread per output element i = ((r * C + c) * oh + ph) * ow + pw."""
    N, C, H, W = (tirx.Cast("int64", d) for d in x.shape)
    R = tirx.Cast("int64", out.shape[0])
    oh, ow = det.oh, det.ow
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    f32 = lambda v: tirx.const(v, "float32")  # noqa: E731
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    total = R * C * i64(oh * ow)
    loc = "local" if mode == "gpu" else "global"

    def fl(v):
        return v if det.dtype == "float32" else tirx.Cast("float32", v)

    def body(i):
        xf = T.decl_buffer([N * C * H * W], det.dtype, data=x.data)
        rf = T.decl_buffer([R * i64(4)], det.dtype, data=rois.data)
        bf = T.decl_buffer([R], "int64", data=bi.data)
        of = T.decl_buffer([total], det.dtype, data=out.data)
        pw = i % i64(ow)
        ph = (i // i64(ow)) % i64(oh)
        rc = i // i64(oh * ow)
        c = rc % C
        r = rc // C
        b = bf[r]
        # per-thread scalars: box, bin, grid (local registers on the GPU)
        s = T.decl_buffer([9], "float32", scope=loc)  # x0 y0 x1 y1 bin_h bin_w count yy xx
        g = T.decl_buffer([2], "int32", scope=loc)
        acc = T.decl_buffer([1], "float32", scope=loc)
        off = f32(0.5 if det.half_pixel else 0.0)
        sc = f32(det.scale)
        for k in range(4):
            T.buffer_store(s, fl(rf[r * i64(4) + i64(k)]) * sc - off, [k])  # x0, y0, x1, y1
        rw, rh = s[2] - s[0], s[3] - s[1]
        if not det.half_pixel:
            rw, rh = tirx.max(rw, f32(1.0)), tirx.max(rh, f32(1.0))
        T.buffer_store(s, rh / f32(oh), [4])  # bin_h
        T.buffer_store(s, rw / f32(ow), [5])  # bin_w
        for k, (size, o) in enumerate(((rh, oh), (rw, ow))):
            if det.ratio > 0:
                T.buffer_store(g, i32(det.ratio), [k])
            else:  # ceil(size / o): <= 0 (or NaN) -> no samples, capped at MAX_GRID
                q = tirx.ceil(size / f32(o))
                q = tirx.Select(q > f32(0.0), tirx.min(q, f32(MAX_GRID)), f32(0.0))
                T.buffer_store(g, tirx.Cast("int32", q), [k])
        T.buffer_store(s, tirx.Cast("float32", tirx.max(g[0] * g[1], i32(1))), [6])  # count
        T.buffer_store(acc, f32(0.0), [0])
        hf, wf = tirx.Cast("float32", H), tirx.Cast("float32", W)
        ok = tirx.all(b >= i64(0), b < N, H > i64(0), W > i64(0))
        with T.If(ok):
            with T.Then():
                plane = (b * C + c) * H * W
                fv = T.decl_buffer([4], "float32", scope=loc)  # y, x, ly, lx of the sample
                iv = T.decl_buffer([5], "int64", scope=loc)  # inside, y_low, x_low, y_high, x_high
                with T.serial(0, g[0]) as iy:
                    T.buffer_store(
                        s,
                        s[1]
                        + tirx.Cast("float32", ph) * s[4]
                        + (tirx.Cast("float32", iy) + f32(0.5)) * s[4] / tirx.Cast("float32", g[0]),
                        [7],
                    )
                    with T.serial(0, g[1]) as ix:
                        T.buffer_store(
                            s,
                            s[0]
                            + tirx.Cast("float32", pw) * s[5]
                            + (tirx.Cast("float32", ix) + f32(0.5)) * s[5] / tirx.Cast("float32", g[1]),
                            [8],
                        )
                        _sample(det, xf, plane, s[7], s[8], H, W, hf, wf, acc, iy, ix, fv, iv)
        res = acc[0] / s[6] if det.mode == "avg" else acc[0]
        T.buffer_store(of, res if det.dtype == "float32" else tirx.Cast(det.dtype, res), [i])

    with IRBuilder() as ib:
        if mode != "gpu":
            with T.serial(0, total) as i:
                body(tirx.Cast("int64", i))
        else:
            bx, tx = te.thread_axis("blockIdx.x"), te.thread_axis("threadIdx.x")
            nb = (total + i64(THREADS - 1)) // i64(THREADS)
            with T.frame_scope(
                [T.attr(bx, "thread_extent", tirx.Cast("int32", nb)), T.attr(tx, "thread_extent", THREADS)]
            ):
                i = tirx.Cast("int64", bx) * i64(THREADS) + tirx.Cast("int64", tx)
                with T.If(i < total):
                    with T.Then():
                        body(i)
    return ib.get()


def _sample(det, xf, plane, yy, xx, H, W, hf, wf, acc, iy, ix, fv, iv):
    """One bilinear sample (ONNX Runtime's pre_calc_for_bilinear_interpolate) folded into acc;
    fv / iv: the thread's local scalars."""
    f32 = lambda v: tirx.const(v, "float32")  # noqa: E731
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    # inside: not (y < -1 or y > H or x < -1 or x > W); NaN counts as outside
    inside = tirx.all(yy >= f32(-1.0), yy <= hf, xx >= f32(-1.0), xx <= wf)
    T.buffer_store(iv, tirx.Select(inside, i64(1), i64(0)), [0])
    ins = iv[0] == i64(1)
    T.buffer_store(fv, tirx.Select(ins, tirx.max(yy, f32(0.0)), f32(0.0)), [0])
    T.buffer_store(fv, tirx.Select(ins, tirx.max(xx, f32(0.0)), f32(0.0)), [1])
    for k, (c, n) in enumerate(((fv[0], H), (fv[1], W))):  # y_low >= n - 1: low = high = n - 1, frac 0
        low0 = tirx.Cast("int64", c)
        last = low0 >= n - i64(1)
        T.buffer_store(iv, tirx.Select(last, n - i64(1), low0), [1 + k])
        T.buffer_store(iv, tirx.Select(last, n - i64(1), low0 + i64(1)), [3 + k])
        T.buffer_store(fv, tirx.Select(last, f32(0.0), c - tirx.Cast("float32", low0)), [2 + k])
    yl, xl, yh, xh = iv[1], iv[2], iv[3], iv[4]
    ly, lx = fv[2], fv[3]
    hy, hx = f32(1.0) - ly, f32(1.0) - lx
    z = f32(0.0)
    w = [tirx.Select(ins, a * bb, z) for a, bb in ((hy, hx), (hy, lx), (ly, hx), (ly, lx))]
    zero = i64(0)
    pos = [tirx.Select(ins, p, zero) for p in (yl * W + xl, yl * W + xh, yh * W + xl, yh * W + xh)]

    def v(k):
        e = xf[plane + pos[k]]
        return w[k] * (e if det.dtype == "float32" else tirx.Cast("float32", e))

    if det.mode == "avg":
        T.buffer_store(acc, acc[0] + (v(0) + v(1) + v(2) + v(3)), [0])
        return

    def smax(a, bb):  # std::max(a, b) = a < b ? b : a
        return tirx.Select(a < bb, bb, a)

    val = smax(smax(smax(v(0), v(1)), v(2)), v(3))
    first = tirx.all(iy == 0, ix == 0)
    T.buffer_store(acc, tirx.Select(first, val, smax(acc[0], val)), [0])


def emit(bb, params, det, mode="gpu"):
    xo, ro, bo = det.operands

    def stage(x, rois, bi):
        return te.extern(
            [[rois.shape[0], x.shape[1], det.oh, det.ow]],
            [x, rois, bi],
            lambda ins, outs: _roialign_ir(det, ins[0], ins[1], ins[2], outs[0], mode),
            dtype=det.dtype,
            name=PRIMFUNC,
        )

    return bb.emit_te(
        stage, relax_arg(params, xo), relax_arg(params, ro), relax_arg(params, bo), primfunc_name_hint=PRIMFUNC
    )


PRIMFUNC = "tpat_roi_align"


ROI_ALIGN = FunctionLowering("roi_align", ["RoiAlign"], select, emit)

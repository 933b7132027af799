"""TPAT's own TVM lowering of ONNX DFT (opset 17 and 20): a direct DFT as one TE reduction.

TVM 0.27's Relax frontend has no DFT converter (`frontend_import_failed`), and TensorRT 10
rejects the op. This lowering is the definition, written as a TE compute that dlight schedules
(and `tpat tune` can search):

    Y[..., k, :] = scale * sum_{j < min(n, L)} x[..., j, :] * exp(-+ 2 pi i (k j mod n) / n)

over the `axis` (any but the last, negative too), with n = dft_length (truncating or zero-padding
the signal length L) or L. Real (last dim 1) and complex (last dim 2) input; onesided keeps
k < n/2 + 1; inverse conjugates the twiddle and scales by 1/n. The angle is computed from the
integer k * j mod n, so it stays exact for long signals; the sum is in float32 (float16 inputs are
widened, the output rounded once). It is O(n) work per output element (no FFT): right for the
short windows of time-series models, slower than torch.fft for long ones. dft_length and axis
must be constants; inverse with onesided (not defined by ONNX Runtime) is declined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tvm import te, tirx

from .protocol import Decline, Lowering, NodeView, Selection

DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class DFTSelection(Selection):
    dtype: str
    axis: int  # the signal axis (normalized, never the last)
    n: int  # dft_length
    length: int  # the signal's length on `axis`
    k: int  # output bins (n, or n // 2 + 1 when onesided)
    inverse: bool
    onesided: bool
    complex: bool  # the input's last dim is 2 (else 1: real)
    x_index: int

    def describe(self) -> str:
        kind = ("inverse " if self.inverse else "") + ("onesided " if self.onesided else "")
        return f"dft ({kind}axis={self.axis}, n={self.n}, direct sum)"


def _const_int(op):
    if not op.is_const:
        return None
    return op.scalar_int("DFT's axis / dft_length")


def select(n: NodeView) -> DFTSelection | Decline:
    ops = n.operands
    if not ops or not ops[0].is_param:
        return Decline("DFT needs a runtime input")
    xshape, dtype = ops[0].shape, ops[0].dtype
    if dtype not in DTYPES or n.outputs[0]["dtype"] != dtype:
        return Decline(f"dtype {dtype}")
    r = len(xshape)
    if r < 2 or xshape[-1] not in (1, 2):
        return Decline("input must be [..., signal, 1 or 2]")
    if n.opset(20) < 20:
        axis = int(n.attr("axis", 1))
    elif len(ops) > 2 and not ops[2].is_absent:
        axis = _const_int(ops[2])
        if axis is None:
            return Decline("axis must be a constant scalar")
    else:
        axis = -2
    if not -r <= axis < r or axis % r == r - 1:
        return Decline(f"axis {axis} of a rank-{r} input")
    axis %= r
    length = xshape[axis]
    if not isinstance(length, int):
        return Decline("the signal axis must be static")
    size = length
    if len(ops) > 1 and not ops[1].is_absent:
        size = _const_int(ops[1])
        if size is None:
            return Decline("dft_length must be a constant scalar")
    if not 1 <= size < 2**31:
        return Decline(f"dft_length {size}")
    inverse, onesided = int(n.attr("inverse", 0)), int(n.attr("onesided", 0))
    if inverse and onesided:
        return Decline("inverse with onesided")
    k = size // 2 + 1 if onesided else size
    return DFTSelection(
        dtype=dtype,
        axis=axis,
        n=size,
        length=length,
        k=k,
        inverse=bool(inverse),
        onesided=bool(onesided),
        complex=xshape[-1] == 2,
        x_index=ops[0].index,
    )


def dft_te(x, det):
    axis, n, dtype = det.axis, det.n, det.dtype
    f32 = lambda v: tirx.const(v, "float32")  # noqa: E731
    red = te.reduce_axis((0, min(n, det.length)), name="j")
    sign = 1.0 if det.inverse else -1.0
    shape = list(x.shape[:-1]) + [2]
    shape[axis] = det.k

    def ld(*i):
        v = x(*i)
        return v if dtype == "float32" else tirx.Cast("float32", v)

    def acc(*i):
        k, c = i[axis], i[-1]
        xi = list(i[:-1])
        xi[axis] = red
        re = ld(*xi, 0)
        im = ld(*xi, 1) if det.complex else f32(0.0)
        kj = (tirx.Cast("int64", k) * tirx.Cast("int64", red)) % tirx.const(n, "int64")
        ang = tirx.Cast("float32", kj) * f32(2.0 * math.pi / n)
        cs, sn = tirx.cos(ang), tirx.sin(ang) * f32(sign)
        # (re + i im)(cs + i sn)
        val = tirx.Select(c == 0, re * cs - im * sn, re * sn + im * cs)
        return te.sum(val, axis=red)

    s = te.compute(shape, acc, name="tpat_dft_sum")
    scale = 1.0 / n if det.inverse else 1.0

    def out(*i):
        v = s(*i) * f32(scale) if scale != 1.0 else s(*i)
        return v if dtype == "float32" else tirx.Cast(dtype, v)

    return te.compute(shape, out, name="tpat_dft")


def emit(bb, params, det, mode="gpu"):
    return bb.emit_te(lambda x: dft_te(x, det), params[det.x_index], primfunc_name_hint="tpat_dft")


class DFTLowering(Lowering):
    name = "dft"
    ops = ("DFT",)

    def select(self, node):
        return select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)


DFT = DFTLowering()

"""TPAT's own TVM lowering of ONNX CenterCropPad (opset 18): TVM 0.27 has no importer for it.

Crop and pad in one kernel, a copy with bounds: for every axis in `axes` (default: all, negative
allowed) with input length L and target length t (the constant `shape` input),

    src = dst + (L - t) // 2         when t <= L (crop: the centre, the extra element at the end)
    src = dst - (t - L) // 2         when t > L  (pad: zeros, the extra one at the end)
    out[dst] = x[src] if 0 <= src < L on every such axis, else 0

The offset is an expression of L, so the cropped/padded axes may be symbolic (ONNX Runtime's
rule, which holds for any L); other axes are copied through. Any element type. A runtime `shape`
is declined (the output shape depends on it). TPAT's schedule: the output flattened, 256 threads per
block; each thread moves V elements of the last axis (a vectorized load and store of up to 16
bytes) when every V-run of the output comes from one aligned V-run of the input or is all padding
(`_vector`: the last axis copied through, or cropped/padded by multiples of V, static); a static
crop needs no bounds test, a pad tests once per vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tvm import te, tirx

from .. import dtypes
from .protocol import Decline, Lowering, NodeView, Selection

THREADS = 256
MAX_SIZE = 1 << 62


@dataclass(frozen=True)
class CenterCropPadSelection(Selection):
    dtype: str
    targets: tuple  # ((axis, target length), ...)
    vec: int  # elements per thread (1, or 16 bytes when the last axis is copied through)
    x_index: int

    def describe(self) -> str:
        t = ", ".join(f"axis {a} -> {n}" for a, n in self.targets)
        return f"center_crop_pad ({t}, {self.vec} element(s) per thread)"


def _vector(xshape, tgt, size):
    """Elements per thread along the last axis: the widest V <= 16 bytes / element size (a power of
    two) such that every V-run of output elements comes from one aligned V-run of the input or is
    all padding: the last axis copied through with a static length, or cropped/padded with the
    static length, the target and the offset multiples of V. 1-byte types stay scalar (TVM 0.27's
    CUDA codegen writes a 16-lane uint8 zero as a make_uint4 of 16 arguments, which nvcc rejects)."""
    if size <= 1:
        return 1
    r = len(xshape)
    last = xshape[-1]
    if not isinstance(last, int):
        return 1
    v = 16 // size
    while v > 1:
        if (r - 1) not in tgt:
            ok = last % v == 0
        else:
            t = tgt[r - 1]
            ok = last % v == 0 and t % v == 0 and (abs(last - t) // 2) % v == 0
        if ok:
            return v
        v //= 2
    return 1


def select(node: NodeView) -> CenterCropPadSelection | Decline:
    ops = node.operands
    if len(ops) != 2 or len(node.outputs) != 1:
        return Decline("CenterCropPad arity")
    x, shape = ops
    if not x.is_param:
        return Decline("constant CenterCropPad input")
    if x.dtype not in dtypes.DTYPES or node.outputs[0]["dtype"] != x.dtype:
        return Decline(f"dtype {x.dtype}")
    if not shape.is_const:
        return Decline("shape is a runtime input (the output shape depends on it): only a constant is lowered")
    if shape.value.dtype.kind not in "iu" or shape.value.ndim != 1:
        return Decline("shape must be a 1-D int constant")
    target = [int(v) for v in shape.value.reshape(-1)]
    r = len(x.shape)
    if r == 0:
        return Decline("scalar input")
    axes = node.attr("axes", [])  # a list, else BadValue (declined)
    if not any(a.name == "axes" for a in node.node.attribute):
        axes = list(range(r))
    if not all(isinstance(a, int) and -r <= a < r for a in axes):
        return Decline(f"axes {axes} for a rank-{r} input")
    axes = [a % r for a in axes]
    if len(set(axes)) != len(axes):
        return Decline(f"axes {axes} repeat an axis")
    if len(target) != len(axes):
        return Decline(f"shape has {len(target)} values for {len(axes)} axes")
    if not all(0 < t < MAX_SIZE for t in target):
        return Decline(f"shape {target}: every length must be in [1, 2^62)")
    oshape = node.outputs[0].get("shape")
    want = list(x.shape)
    for a, t in zip(axes, target):
        want[a] = t
    if oshape is not None and (
        len(oshape) != r or any(isinstance(o, int) and isinstance(w, int) and o != w for o, w in zip(oshape, want))
    ):
        return Decline(f"declared output shape {oshape} is not {want}")
    static = [d for d in want if isinstance(d, int)]
    if math.prod(static) >= MAX_SIZE:
        return Decline("output of 2^62 elements or more")
    targets = tuple(sorted(zip(axes, target)))
    vec = _vector(x.shape, dict(targets), dtypes.size(x.dtype))
    return CenterCropPadSelection(dtype=x.dtype, targets=targets, vec=vec, x_index=x.index)


def center_crop_pad_te(x, sel):
    r = len(x.shape)
    tgt = dict(sel.targets)
    oshape = [tgt.get(a, x.shape[a]) for a in range(r)]
    zero = tirx.const(0, sel.dtype)

    def fcompute(*dst):
        src, conds = list(dst), []
        for a, t in tgt.items():
            L = x.shape[a]
            it = str(dst[a].ty)
            Lc = tirx.Cast(it, L) if not isinstance(L, int) else tirx.const(L, it)
            tc = tirx.const(t, it)
            off = tirx.Select(Lc >= tc, tirx.floordiv(Lc - tc, 2), -tirx.floordiv(tc - Lc, 2))
            src[a] = dst[a] + off
            if isinstance(L, int) and L >= t:
                continue  # a static crop: always inside
            # on the vectorized last axis, tested once per vector (its lanes agree, see _vector)
            base = tirx.floordiv(dst[a], sel.vec) * sel.vec + off if a == r - 1 and sel.vec > 1 else src[a]
            conds += [base >= 0, base < Lc]
        if not conds:
            return x(*src)
        return tirx.if_then_else(tirx.all(*conds), x(*src), zero)

    return te.compute(oshape, fcompute, name=PRIMFUNC)


PRIMFUNC = "tpat_center_crop_pad"


def emit(bb, params, sel, mode="gpu"):
    return bb.emit_te(lambda x: center_crop_pad_te(x, sel), params[sel.x_index], primfunc_name_hint=PRIMFUNC)


def schedule(sch, blk, sel):
    """The output flattened into (blocks, THREADS[, vec]); with vec > 1 the last axis (copied
    through) is split by vec and its lane loop vectorized: 16-byte loads and stores."""
    loops = list(sch.get_loops(blk))
    vi = None
    if sel.vec > 1:
        lo, vi = sch.split(loops[-1], [None, sel.vec])
        loops[-1] = lo
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    bo, tx = sch.split(fused, [None, THREADS])
    sch.bind(bo, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    if vi is not None:
        sch.vectorize(vi)
    return True


class CenterCropPadLowering(Lowering):
    name = "center_crop_pad"
    ops = ("CenterCropPad",)
    primfunc = PRIMFUNC

    def select(self, node):
        return select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)

    def schedule(self, sch, block, sel):
        return schedule(sch, block, sel)


CENTER_CROP_PAD = CenterCropPadLowering()

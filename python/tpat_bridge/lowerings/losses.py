"""TPAT's own lowering of the ONNX loss ops NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss
(opset 12/13): TVM 0.27 has no importer for them.

Composed of Relax ops that TVM legalizes and dlight schedules (each a kernel TVM knows how to write):

    logp  = x                                  (NegativeLogLikelihoodLoss)
          = log_softmax(scores, axis=1)        (SoftmaxCrossEntropyLoss; its optional second output)
    tc    = clip(target, 0, C - 1)             (the gather never reads out of bounds)
    valid = target != ignore_index and 0 <= target < C
    w     = where(valid, weight[tc] or 1, 0)
    loss  = -gather_elements(logp, tc, axis=1) * w                    reduction none: (N, d1, ...)
          = sum(loss)                                                reduction sum: a scalar
          = sum(loss) / sum(w)                                       reduction mean: a scalar

float16/bfloat16 are computed in float32 and rounded once. A target outside [0, C) that is not
ignore_index is an error in ONNX (ONNX Runtime refuses it at run time); here it counts as ignored
(weight 0), so the plugin never reads outside its input. `mean` divides by the summed weights of the
targets kept, as ONNX Runtime does (ONNX's reference divides by the element count when ignore_index
is -1 and there is no weight input: a quirk of `elif ignore_index != -1`, not followed). The class
axis C must be static; every other dim may be symbolic.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import relax

from .ir import relax_arg
from .protocol import Decline, Lowering, NodeView, Selection

FLOATS = ("float32", "float16", "bfloat16", "float64")
REDUCTIONS = ("none", "sum", "mean")


@dataclass(frozen=True)
class LossSelection(Selection):
    softmax: bool  # SoftmaxCrossEntropyLoss (log_softmax first)
    dtype: str
    classes: int
    reduction: str
    ignore_index: int | None
    x: object  # Operand
    target: object
    weight: object | None
    log_prob: bool  # the log_prob output is used

    def describe(self) -> str:
        op = "softmax_cross_entropy" if self.softmax else "nll"
        ii = "" if self.ignore_index is None else f", ignore_index={self.ignore_index}"
        w = ", weighted" if self.weight is not None else ""
        return f"loss ({op}, reduction={self.reduction}, C={self.classes}{w}{ii})"


def select(node: NodeView) -> LossSelection | Decline:
    ops = node.operands
    softmax = node.op_type == "SoftmaxCrossEntropyLoss"
    if len(ops) not in (2, 3) or not 1 <= len(node.outputs) <= (2 if softmax else 1):
        return Decline(f"{node.op_type} arity")
    x, t = ops[0], ops[1]
    w = ops[2] if len(ops) == 3 and not ops[2].is_absent else None
    if not x.is_param or not t.is_param:
        return Decline("constant scores/target (a graph input is expected)")
    if x.dtype not in FLOATS or any(o["dtype"] != x.dtype for o in node.outputs):
        return Decline(f"dtype {x.dtype}")
    if t.dtype not in ("int32", "int64"):
        return Decline(f"target dtype {t.dtype}")
    if len(x.shape) < 2 or len(t.shape) != len(x.shape) - 1:
        return Decline(f"input rank {len(x.shape)}, target rank {len(t.shape)} (expected (N, C, d...) and (N, d...))")
    c = x.shape[1]
    if not isinstance(c, int) or not 0 < c < 2**31:
        return Decline(f"class dim {c} (must be static)")
    if w is not None and (w.dtype != x.dtype or w.shape != [c]):
        return Decline(f"weight {w.dtype} {w.shape} (expected {x.dtype} [{c}])")
    reduction = node.attr("reduction", "mean")
    if reduction not in REDUCTIONS:
        return Decline(f"reduction {reduction}")
    ii = None
    if any(a.name == "ignore_index" for a in node.node.attribute):
        ii = node.attr("ignore_index", 0)
        if not -(2**63) <= ii < 2**63:
            return Decline(f"ignore_index {ii}")
    return LossSelection(
        softmax=softmax,
        dtype=x.dtype,
        classes=c,
        reduction=reduction,
        ignore_index=ii,
        x=x,
        target=t,
        weight=w,
        log_prob=len(node.outputs) == 2,
    )


def emit(bb, params, sel, mode="gpu"):
    op = relax.op
    x = relax_arg(params, sel.x)
    t = relax_arg(params, sel.target)
    tdt = sel.target.dtype
    f32 = sel.dtype in ("float16", "bfloat16")
    xf = bb.emit(op.astype(x, "float32")) if f32 else x
    cdt = "float32" if f32 else sel.dtype
    logp = bb.emit(op.nn.log_softmax(xf, axis=1)) if sel.softmax else xf
    valid = bb.emit(
        op.logical_and(
            op.greater_equal(t, relax.const(0, tdt)),
            op.less(t, relax.const(sel.classes, tdt)),
        )
    )
    if sel.ignore_index is not None:
        valid = bb.emit(op.logical_and(valid, op.not_equal(t, relax.const(sel.ignore_index, tdt))))
    tc = bb.emit(op.clip(t, 0, sel.classes - 1))
    picked = bb.emit(op.squeeze(op.gather_elements(logp, op.expand_dims(tc, 1), axis=1), axis=[1]))
    one = relax.const(1.0, cdt)
    zero = relax.const(0.0, cdt)
    if sel.weight is not None:
        wt = relax_arg(params, sel.weight)
        wt = bb.emit(op.astype(wt, "float32")) if f32 else wt
        w = bb.emit(op.where(valid, op.take(wt, tc, axis=0, mode="clip"), zero))
    else:
        w = bb.emit(op.where(valid, op.full_like(picked, one), zero))
    loss = bb.emit(op.multiply(op.negative(picked), w))
    if sel.reduction == "sum":
        loss = bb.emit(op.sum(loss))
    elif sel.reduction == "mean":
        loss = bb.emit(op.divide(op.sum(loss), op.sum(w)))
    outs = [loss] + ([logp] if sel.log_prob else [])
    if f32:
        outs = [bb.emit(op.astype(o, sel.dtype)) for o in outs]
    return outs[0] if len(outs) == 1 else relax.Tuple(outs)


class LossLowering(Lowering):
    name = "loss"
    ops = ("NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss")

    def select(self, node):
        return select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)


LOSS = LossLowering()

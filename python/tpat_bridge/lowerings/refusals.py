"""Attribute values a lowering does not implement: refused with a reason, never ignored.

One table, `REFUSALS`: op -> [(scope, test, reason)]. `scope` is the lowering the entry is about:
"tvm" (TVM 0.27's ONNX frontend and its legalization; TPAT's own lowerings refuse what they do not
implement in their `select`, and the planner then falls back to TVM's) or "all". `test(node, consts,
info)` returns True when the node uses the unimplemented value. The planner calls `check` before it
lowers; a hit is the plan error `unsupported_attribute` (docs/lowerings.md, "Refusals").

Audit of TVM 0.27's frontend (every converter's attributes against the ONNX schema, opset 24):
attributes it never reads are Resize antialias / axes / keep_aspect_ratio_policy, IsInf
detect_negative / detect_positive, ConvTranspose output_shape, Dropout seed (harmless without
training_mode), Cast/CastLike saturate / round_mode (float8 only: TPAT has no float8 tensors),
LayerNormalization stash_type (TVM computes in the input type's float32 widening: more precise
than asked, within tolerance), MaxPool storage_order (the Indices output is not produced at all:
an arity error, not a silent one), Attention's opset-23 attributes (the converter is the
com.microsoft one: refused below). Values it reads but computes wrongly: Dropout training_mode
(an input since opset 12: the result is its input), Resize `scales` whose output length is not
input * scale (TVM maps coordinates with output / input, ONNX Runtime with the scale: the cubic and
linear downsampling backend tests; TPAT's own Resize lowering is right), RoiAlign mode=max
(found by the cross-check on ONNX's backend tests) and half_pixel with spatial_scale != 1 (TPAT's
own RoiAlign lowering, roialign.py, implements both: these entries refuse only TVM's path, i.e. the
second tactic, the "tvm" switch and the nodes TPAT's lowering declines).
"""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from ..errors import PlanError
from .protocol import BadValue
from .protocol import attr as _attr

CODE = "unsupported_attribute"


def _consts(info):
    """node input position -> numpy value for initializer inputs; "input" for graph inputs."""
    g = info.model.graph
    inits = {t.name: t for t in g.initializer}
    out = {}
    for k, nm in enumerate(g.node[0].input):
        if nm in inits:
            out[k] = numpy_helper.to_array(inits[nm])
        elif nm:
            out[k] = "input"
    return out


def _dropout_training(node, consts, info):
    if int(_attr(node, "is_test", 1)) == 0 and any(o for o in list(node.output)[1:]):
        return True  # opset < 7 training behaviour with the mask output asked for
    t = consts.get(2)
    if t is None:
        return False
    if isinstance(t, str):
        return True  # decided at run time: TVM always returns its input
    return bool(np.asarray(t).reshape(-1)[0]) if np.asarray(t).size else False


def _resize_fractional_scales(node, consts, info):
    """Constant `scales` whose output length is not input * scale (0.6 of 4 = 2.4 -> 2): ONNX
    Runtime maps coordinates with the given scale, TVM's lowering with output / input."""
    if _attr(node, "coordinate_transformation_mode", "half_pixel") in ("align_corners", "tf_crop_and_resize"):
        return False  # these ignore the scale
    sc = consts.get(2)
    if sc is None or isinstance(sc, str) or np.asarray(sc).size == 0:
        return False
    x = info.inputs[0]["shape"] if info.inputs else []
    axes = _attr(node, "axes", None)
    axes = list(range(len(x))) if axes is None else [int(a) % max(len(x), 1) for a in axes]
    for a, v in zip(axes, np.asarray(sc, dtype=np.float64).reshape(-1)):
        if float(np.float32(v)).is_integer():
            continue  # an integer scale gives exactly input * scale, symbolic length or not
        if a >= len(x) or not isinstance(x[a], int):
            return True  # symbolic length and a fractional scale: cannot tell
        if abs(np.floor(x[a] * np.float32(v)) - x[a] * np.float64(np.float32(v))) > 1e-6:
            return True
    return False


def _resize_axes(node, consts, info):
    axes = _attr(node, "axes", None)
    if axes is None:
        return False
    rank = len(info.inputs[0]["shape"]) if info.inputs else 0
    return [int(a) % max(rank, 1) for a in axes] != list(range(rank))


def _roialign_half_pixel_scaled(node, consts, info):
    """half_pixel (RoiAlign-16's default) with spatial_scale != 1: TVM 0.27's converter subtracts
    0.5 from the box before scaling, (roi - 0.5) * s, where ONNX asks roi * s - 0.5."""
    if float(_attr(node, "spatial_scale", 1.0)) == 1.0:
        return False
    mode = _attr(node, "coordinate_transformation_mode", None)
    if mode is None:
        ver = next((o.version for o in info.model.opset_import if o.domain in ("", "ai.onnx")), 16)
        mode = "half_pixel" if ver >= 16 else "output_half_pixel"
    return mode == "half_pixel"


# op -> [(scope, test(node, consts, info) -> bool, reason)]
REFUSALS = {
    "Resize": [
        (
            "tvm",
            lambda n, c, i: int(_attr(n, "antialias", 0)) != 0,
            "Resize antialias=1: TVM's frontend ignores it",
        ),
        (
            "tvm",
            lambda n, c, i: _attr(n, "keep_aspect_ratio_policy", "stretch") != "stretch",
            "Resize keep_aspect_ratio_policy other than stretch: TVM's frontend ignores it",
        ),
        ("tvm", _resize_axes, "Resize with an axes attribute: TVM's frontend ignores it"),
        (
            "tvm",
            _resize_fractional_scales,
            "Resize scales whose output length is not input * scale: TVM's lowering maps coordinates "
            "with output / input, ONNX Runtime with the scale",
        ),
    ],
    "Dropout": [
        (
            "all",
            _dropout_training,
            "Dropout training_mode=1 (or decided at run time): TVM returns its input, no lowering drops",
        ),
    ],
    "RoiAlign": [
        (
            "tvm",
            lambda n, c, i: _attr(n, "mode", "avg") == "max",
            "RoiAlign mode=max: TVM's lowering differs from ONNX Runtime and ONNX's expected output "
            "(by 0.4 on test_roialign_mode_max)",
        ),
        (
            "tvm",
            _roialign_half_pixel_scaled,
            "RoiAlign half_pixel with spatial_scale != 1: TVM's converter computes (roi - 0.5) * scale, "
            "ONNX roi * scale - 0.5 (1.7 off on a 0.25-scale case)",
        ),
    ],
    "IsInf": [
        (
            "tvm",
            lambda n, c, i: int(_attr(n, "detect_negative", 1)) != 1 or int(_attr(n, "detect_positive", 1)) != 1,
            "IsInf detect_negative=0 or detect_positive=0: TVM's frontend ignores them",
        ),
    ],
    "ConvTranspose": [
        (
            "tvm",
            lambda n, c, i: _attr(n, "output_shape", None) is not None,
            "ConvTranspose output_shape: TVM's frontend ignores it",
        ),
    ],
    "Attention": [
        (
            "tvm",
            lambda n, c, i: True,
            "Attention of the default domain (opset 23): TVM 0.27's converter is the com.microsoft one "
            "(TPAT's own lowering, attention.py, declined the node)",
        ),
    ],
}


def refusal(info, lowering: str):
    """The reason the node cannot be lowered by `lowering` ("tpat" or "tvm"), or None."""
    node = info.model.graph.node[0]
    entries = REFUSALS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
    if not entries:
        return None
    consts = _consts(info)
    for scope, test, reason in entries:
        if (scope == "all" or scope == lowering) and test(node, consts, info):
            return reason
    return None


def check(info, lowering: str) -> None:
    """Raises PlanError(unsupported_attribute) when the table refuses the node for `lowering`
    (invalid_value when a value it reads is of the wrong type)."""
    try:
        reason = refusal(info, lowering)
    except BadValue as e:  # an attribute of the wrong type or a non-finite float
        raise PlanError("invalid_value", e.reason) from None
    if reason is not None:
        raise PlanError(CODE, reason)

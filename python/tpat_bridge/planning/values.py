"""Model values ONNX does not allow, checked before anything converts them (issue 11, item 4).

One table of the inputs ONNX defines as one value (`SCALAR_INPUTS`) and one check, `bad_value`,
used by the planner (plan error `invalid_value`) and the reference-data generator (code `model`,
before ONNX Runtime runs: an empty CumSum axis, a LayerNormalization axis of 2^31 and a GatherND
batch_dims of -2 crash it). The rules (README, "Hostile models"):
- a one-value input (CumSum axis, TopK K, OneHot depth, Range's three, DFT dft_length / axis,
  Trilu k, STFT frame_step / frame_length) that is a constant holds exactly one finite value;
- `axis` / `axes` lie in [-(r + e), r + e) for the largest input rank r (e: the axes an op adds,
  OneHot's 1, Unsqueeze's len(axes)); `batch_dims` in [0, the smallest input rank);
- TopK's constant K lies in [0, the axis length] when that length is static;
- STFT's constant frame_step and frame_length are integers > 0 and its window is not empty;
- `epsilon` is finite; Resize's constant scales are finite floats > 0, its constant sizes
  integers > 0;
- Attention's q_num_heads / kv_num_heads are positive, divide a 3-D input's hidden size, and
  kv_num_heads divides q_num_heads;
- RoiAlign's output sizes are >= 1, its sampling_ratio >= 0 and ratio^2 x output_height x
  output_width < 2^31 (ONNX Runtime's int-indexed sample table);
- Col2Im's strides and dilations are >= 1, its pads >= 0, all below 2^31; with constant shapes the
  block fits the padded image and the input holds that many blocks.
Pure Python and numpy: no TVM import.
"""

from __future__ import annotations

import math

import numpy as np

# Inputs ONNX defines as one value (a scalar or a one-element tensor), by op: input positions.
SCALAR_INPUTS = {
    "CumSum": (1,),
    "TopK": (1,),
    "OneHot": (1,),
    "Range": (0, 1, 2),
    "DFT": (1, 2),
    "Trilu": (1,),
    "STFT": (1, 3),
}


def _one_value(arr) -> tuple:
    """(the value as a Python number, None) or (None, why not)."""
    a = np.asarray(arr).reshape(-1)
    if a.size != 1:
        return None, f"has {a.size} values, the op takes one"
    x = a[0].item()
    if isinstance(x, float) and not math.isfinite(x):
        return None, f"is {x}"
    return x, None


def bad_value(op: str, attrs: dict, shapes: list, consts: dict) -> str | None:
    """Why the node's values are not allowed, or None. `attrs`: name -> decoded attribute value;
    `shapes`: each input's shape (ints or symbol names; None when absent); `consts`: input position
    -> numpy value of the constant inputs."""
    for pos in SCALAR_INPUTS.get(op, ()):
        if pos in consts:
            _, why = _one_value(consts[pos])
            if why:
                return f"{op}: constant input {pos} {why}"
    ranks = [len(s) for s in shapes if s is not None]
    r = max(ranks, default=0)
    b = attrs.get("batch_dims")
    if b is not None and not (isinstance(b, int) and 0 <= b < max(1, min(ranks, default=1))):
        return f"{op}: batch_dims={b} must be in [0, the smallest input rank)"
    axes = attrs.get("axes")
    extra = len(axes) if isinstance(axes, list) else 1
    for name in ("axis", "axes"):
        v = attrs.get(name)
        if v is None:
            continue
        vals = v if isinstance(v, list) else [v]
        if not all(isinstance(a, int) and -(r + extra) <= a < r + extra for a in vals):
            return f"{op}: attribute {name}={v} is out of range for rank {r}"
    eps = attrs.get("epsilon")
    if isinstance(eps, float) and not math.isfinite(eps):
        return f"{op}: epsilon={eps}"
    if op == "Resize":
        sc, sz = consts.get(2), consts.get(3)
        if (
            sc is not None
            and sc.size
            and not (np.issubdtype(sc.dtype, np.floating) and np.all(np.isfinite(sc)) and np.all(sc > 0))
        ):
            return f"Resize: scales {sc.reshape(-1)[:8].tolist()} must be finite and > 0"
        if sz is not None and sz.size and not (np.issubdtype(sz.dtype, np.integer) and np.all(sz > 0)):
            return f"Resize: sizes {sz.reshape(-1)[:8].tolist()} must be integers > 0"
    if op == "Attention":  # ONNX Runtime divides by the head counts (SIGFPE on 0)
        for name, pos in (("q_num_heads", 0), ("kv_num_heads", 1)):
            h = attrs.get(name)
            if h is None:
                continue
            if not (isinstance(h, int) and 0 < h < 2**31):
                return f"Attention: {name}={h} must be a positive head count"
            s = shapes[pos] if pos < len(shapes) else None
            if s is not None and len(s) == 3 and isinstance(s[2], int) and s[2] % h:
                return f"Attention: {name}={h} does not divide the hidden size {s[2]}"
        qh, kh = attrs.get("q_num_heads"), attrs.get("kv_num_heads")
        if isinstance(qh, int) and isinstance(kh, int) and qh % kh:
            return f"Attention: q_num_heads={qh} is not a multiple of kv_num_heads={kh}"
    if op == "STFT":  # ONNX Runtime divides by frame_step and the frame length (SIGFPE on 0)
        for pos, name in ((1, "frame_step"), (3, "frame_length")):
            if pos in consts:
                v, _ = _one_value(consts[pos])
                if not (isinstance(v, int) and v > 0):
                    return f"STFT: {name}={v} must be a positive integer"
        w = shapes[2] if len(shapes) > 2 else None
        if (2 in consts and consts[2].size == 0) or (w is not None and any(d == 0 for d in w)):
            return "STFT: the window is empty"
    if op == "RoiAlign":
        # ONNX Runtime indexes its per-bin sample table (ratio^2 x output_height x output_width
        # entries) with int: past 2^31 it aborts (a vector index assertion, seen with a
        # sampling_ratio of 2^40); ONNX's sizes are >= 1 and its ratio >= 0 (0: adaptive)
        oh, ow, r = (attrs.get(k, d) for k, d in (("output_height", 1), ("output_width", 1), ("sampling_ratio", 0)))
        for name, v in (("output_height", oh), ("output_width", ow)):
            if not (isinstance(v, int) and 0 < v < 2**31):
                return f"RoiAlign: {name}={v} must be a positive size"
        if not (isinstance(r, int) and r >= 0):
            return f"RoiAlign: sampling_ratio={r} must be an integer >= 0"
        if r * r * oh * ow >= 2**31:
            return f"RoiAlign: sampling_ratio={r} gives {r}^2 x {oh} x {ow} samples per ROI, past 2^31"
    if op == "Col2Im":
        why = _col2im(attrs, shapes, consts)
        if why:
            return f"Col2Im: {why}"
    if op == "TopK" and 1 in consts and shapes and shapes[0]:
        k, _ = _one_value(consts[1])
        axis = attrs.get("axis", -1)
        x = shapes[0]
        if isinstance(axis, int) and -len(x) <= axis < len(x) and isinstance(x[axis], int):
            if not (isinstance(k, int) and 0 <= k <= x[axis]):
                return f"TopK: K={k} is not in [0, {x[axis]}] (the axis length)"
    return None


def _col2im(attrs: dict, shapes: list, consts: dict) -> str | None:
    """ONNX's Col2Im: strides and dilations >= 1, pads >= 0, every size below 2^31; with constant
    image_shape and block_shape, the block fits the padded image and the input's last dim (when
    static) is the number of blocks. ONNX Runtime loops without end on pads of 2^63 - 1 (seen in
    the seeded reference test)."""
    dil, pads, strides = (attrs.get(k) for k in ("dilations", "pads", "strides"))
    for name, vals, low in (("dilations", dil, 1), ("strides", strides, 1), ("pads", pads, 0)):
        if vals is None:
            continue
        if not (isinstance(vals, list) and all(isinstance(v, int) and low <= v < 2**31 for v in vals)):
            return f"{name}={vals if not isinstance(vals, list) else vals[:8]} must be integers in [{low}, 2^31)"
    if 1 not in consts or 2 not in consts:
        return None
    img, block = (np.asarray(consts[k]).reshape(-1) for k in (1, 2))
    if not (np.issubdtype(img.dtype, np.integer) and np.issubdtype(block.dtype, np.integer)):
        return None  # ONNX Runtime checks the types itself
    img, block = img.tolist(), block.tolist()
    n = len(img)
    if len(block) != n or not all(0 < v < 2**31 for v in [*img, *block]):
        return f"image_shape {img[:8]} and block_shape {block[:8]} must be as long and in [1, 2^31)"
    dil, strides, pads = dil or [1] * n, strides or [1] * n, pads or [0] * (2 * n)
    if len(dil) != n or len(strides) != n or len(pads) != 2 * n:
        return f"{n} spatial dims take {n} dilations and strides and {2 * n} pads"
    blocks = 1
    for d in range(n):
        span = img[d] + pads[d] + pads[d + n] - dil[d] * (block[d] - 1) - 1
        if span < 0:
            return f"spatial dim {d}: the block does not fit the padded image"
        blocks *= span // strides[d] + 1
    last = shapes[0][-1] if shapes and shapes[0] else None
    if isinstance(last, int) and last != blocks:
        return f"the input has {last} columns, the attributes give {blocks} blocks"
    return None

"""PyTorch baselines of the bench suite: one entry per ONNX op in `TORCH_REFS`.

An entry is a function `ref(r: Ref) -> (fn, description)`; `fn(*graph inputs)` returns the tuple
of the node's used outputs and is what eager and torch.compile run. An entry raises `NoBaseline`
for attribute values it does not implement (the bench reports the reason, it never guesses).
Every entry implements the ONNX semantics for the values it accepts; tests/python/test_bench.py
checks each case's baseline against ONNX Runtime on a small shape where torch is importable.
"""

from __future__ import annotations

import math

import numpy as np


class NoBaseline(Exception):
    """No PyTorch baseline for this op or attribute value."""


class Ref:
    """What an entry needs: the node's attributes, its input slots (graph inputs, constants,
    absent), how many outputs are used, and torch on a device."""

    def __init__(self, op, attrs, slots, torch, device, n_outputs=1):
        self.op, self.attrs, self.slots = op, attrs, slots
        self.torch, self.device, self.n_outputs = torch, device, n_outputs
        self.F = torch.nn.functional
        self.consts = {}
        for s in slots:
            if s.kind == "const":
                a = np.ascontiguousarray(s.value)
                if a.dtype.name == "bfloat16":
                    a = a.view(np.uint16)
                self.consts[s.pos] = torch.from_numpy(a.copy()).to(device)

    def args(self, ins):
        """The node's inputs in node order: graph inputs, constants, None for absent ones."""
        v = []
        for s in self.slots:
            if s.kind == "input":
                v.append(ins[s.graph_index])
            elif s.kind == "const":
                v.append(self.consts[s.pos])
            else:
                v.append(None)
        return v

    def const_list(self, pos):
        """The constant input at `pos` as a flat list, None when it is not a constant."""
        s = self.slots[pos] if pos < len(self.slots) else None
        if s is None or s.kind != "const":
            return None
        return [x.item() for x in s.value.reshape(-1)]

    def attr(self, name, default):
        return self.attrs.get(name, default)


def _wrap_neg(torch, idx, d):
    return torch.where(idx < 0, idx + d, idx)


# --------------------------------------------------------------------------------------------
# indexing
# --------------------------------------------------------------------------------------------


def gather_nd(r):
    b = int(r.attr("batch_dims", 0))
    torch = r.torch

    def f(*ins):
        data, idx = r.args(ins)[:2]
        if b == 0:
            return (data[tuple(idx.unbind(-1))],)
        # batch_dims=b: flatten the batch dims into one leading index (ONNX GatherND semantics)
        bshape = data.shape[:b]
        nb = math.prod(bshape)
        d = data.reshape((nb,) + tuple(data.shape[b:]))
        i = idx.reshape((nb,) + tuple(idx.shape[b:]))
        k = i.shape[-1]
        dims = d.shape[1 : 1 + k]
        cols = [_wrap_neg(torch, i[..., j], dims[j]) for j in range(k)]
        batch = torch.arange(nb, device=d.device).reshape((nb,) + (1,) * (i.dim() - 2))
        y = d[(batch.expand(i.shape[:-1]),) + tuple(cols)]
        return (y.reshape(tuple(bshape) + tuple(y.shape[1:])),)

    if b == 0:
        return f, "data[tuple(indices.unbind(-1))] (advanced indexing)"
    return f, f"batch_dims={b}: data[arange(batch), *indices.unbind(-1)] on the flattened batch (advanced indexing)"


def gather(r):
    axis = int(r.attr("axis", 0))
    torch = r.torch

    def f(*ins):
        data, idx = r.args(ins)[:2]
        a = axis % data.dim()
        i = _wrap_neg(torch, idx, data.shape[a])
        y = torch.index_select(data, a, i.reshape(-1))
        return (y.reshape(tuple(data.shape[:a]) + tuple(idx.shape) + tuple(data.shape[a + 1 :])),)

    return f, f"torch.index_select(data, {axis}, indices.flatten()) + reshape (negative indices wrapped)"


def gather_elements(r):
    axis = int(r.attr("axis", 0))
    torch = r.torch

    def f(*ins):
        data, idx = r.args(ins)[:2]
        a = axis % data.dim()
        return (torch.gather(data, a, _wrap_neg(torch, idx, data.shape[a])),)

    return f, f"torch.gather(data, {axis}, indices) (negative indices wrapped)"


def scatter_nd(r):
    red = r.attr("reduction", "none")
    torch = r.torch
    if red in ("none", "add"):

        def f(*ins):
            data, idx, upd = r.args(ins)[:3]
            out = data.clone()
            out.index_put_(tuple(idx.unbind(-1)), upd, accumulate=(red == "add"))
            return (out,)

        return f, f"data.clone().index_put_(tuple(indices.unbind(-1)), updates, accumulate={red == 'add'})"
    amode = {"mul": "prod", "max": "amax", "min": "amin"}.get(red)
    if amode is None:
        raise NoBaseline(f"ScatterND reduction={red}: no PyTorch implementation here")

    def f(*ins):
        data, idx, upd = r.args(ins)[:3]
        k = idx.shape[-1]
        dims = data.shape[:k]
        flat = torch.zeros(idx.shape[:-1], dtype=torch.int64, device=idx.device)
        for j in range(k):
            flat = flat * dims[j] + _wrap_neg(torch, idx[..., j], dims[j])
        out = data.clone().reshape(math.prod(dims), -1)
        out.index_reduce_(0, flat.reshape(-1), upd.reshape(flat.numel(), -1), amode, include_self=True)
        return (out.reshape(data.shape),)

    return f, f"data.clone().index_reduce_(0, flat indices, updates, {amode!r})"


def scatter_elements(r):
    axis = int(r.attr("axis", 0))
    red = r.attr("reduction", "none")
    tred = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}.get(red)
    torch = r.torch

    def f(*ins):
        data, idx, upd = r.args(ins)[:3]
        a = axis % data.dim()
        i = _wrap_neg(torch, idx, data.shape[a])
        if tred is None:
            return (data.scatter(a, i, upd),)
        return (data.scatter_reduce(a, i, upd, reduce=tred, include_self=True),)

    desc = (
        "data.scatter(axis, idx, updates)"
        if tred is None
        else f"data.scatter_reduce(axis, idx, updates, reduce={tred!r}, include_self=True)"
    )
    return f, desc + " (negative indices wrapped first)"


def one_hot(r):
    depth, values = r.const_list(1), r.const_list(2)
    if depth is None:
        raise NoBaseline("OneHot with a non-constant depth: no PyTorch implementation here")
    depth = int(depth[0])
    axis = int(r.attr("axis", -1))
    unit = values == [0.0, 1.0] or values == [0, 1]
    torch, F = r.torch, r.F

    def f(*ins):
        v = r.args(ins)
        oh = F.one_hot(torch.remainder(v[0].long(), depth), depth)
        if axis != -1 and axis != oh.dim() - 1:
            oh = oh.movedim(-1, axis)
        vals = v[2]
        if unit:
            return (oh.to(vals.dtype),)
        return (torch.where(oh.bool(), vals[1], vals[0]),)

    return f, "F.one_hot(indices mod depth, depth) + cast" + (f", moved to axis {axis}" if axis != -1 else "")


def compress(r):
    axis = r.attrs.get("axis")
    torch = r.torch

    def f(*ins):
        data, cond = r.args(ins)[:2]
        # only the first min(len(condition), the axis length) values count (as ONNX Runtime)
        n = min(cond.numel(), data.numel() if axis is None else data.shape[int(axis) % data.dim()])
        pos = cond.reshape(-1)[:n].nonzero().reshape(-1)
        if axis is None:
            return (torch.index_select(data.reshape(-1), 0, pos),)
        return (torch.index_select(data, int(axis) % data.dim(), pos),)

    return f, "torch.index_select(data, axis, condition.nonzero())" + (" on the flattened data" if axis is None else "")


# --------------------------------------------------------------------------------------------
# data-dependent outputs
# --------------------------------------------------------------------------------------------


def non_zero(r):
    def f(*ins):
        return (r.torch.nonzero(r.args(ins)[0]).t().contiguous(),)

    return f, "torch.nonzero(x).t() (ONNX's (rank, N) layout)"


def unique(r):
    if "axis" in r.attrs:
        raise NoBaseline("Unique with an axis: no PyTorch implementation here")
    if not int(r.attr("sorted", 1)):
        raise NoBaseline("Unique sorted=0 (first-occurrence order): no PyTorch implementation here")
    if r.n_outputs > 1:
        raise NoBaseline("Unique with indices/inverse/counts outputs used: only Y is implemented here")

    def f(*ins):
        return (r.torch.unique(r.args(ins)[0], sorted=True),)

    return f, "torch.unique(x, sorted=True) (flattened; Y only)"


# --------------------------------------------------------------------------------------------
# resampling
# --------------------------------------------------------------------------------------------

_INTERP_MODES = {
    ("linear", 1): "linear",
    ("linear", 2): "bilinear",
    ("linear", 3): "trilinear",
    ("cubic", 2): "bicubic",
}


def resize(r):
    mode = r.attr("mode", "nearest")
    ctm = r.attr("coordinate_transformation_mode", "half_pixel")
    scales, sizes = r.const_list(2), r.const_list(3)
    if mode not in ("linear", "cubic"):
        raise NoBaseline(f"Resize mode={mode}: no PyTorch implementation here")
    if ctm in ("half_pixel", "pytorch_half_pixel"):
        align = False
    elif ctm == "align_corners":
        align = True
    else:
        raise NoBaseline(f"Resize coordinate_transformation_mode={ctm}: no F.interpolate equivalent")
    aa = bool(int(r.attr("antialias", 0)))
    a, excl = float(r.attr("cubic_coeff_a", -0.75)), int(r.attr("exclude_outside", 0))
    if aa:
        # F.interpolate(antialias=True) is PIL's filter: taps outside the image dropped and the
        # weights renormalized (ONNX's exclude_outside=1), bicubic with a = -0.5
        if not excl or (mode == "cubic" and a != -0.5) or align:
            raise NoBaseline(
                "Resize antialias=1 needs exclude_outside=1 (and cubic_coeff_a=-0.5 for cubic, not align_corners) "
                "to match F.interpolate(antialias=True)"
            )
    elif mode == "cubic" and (a != -0.75 or excl):
        raise NoBaseline("Resize cubic variant: no F.interpolate equivalent")
    kw = {}
    if scales:
        if scales[0] != 1 or scales[1] != 1:
            raise NoBaseline("Resize of the batch/channel dims")
        kw["scale_factor"] = tuple(float(s) for s in scales[2:])
        if aa:
            kw["recompute_scale_factor"] = False  # the given scale, as ONNX maps coordinates
    elif sizes:
        kw["size"] = tuple(int(s) for s in sizes[2:])
    else:
        raise NoBaseline("Resize without constant scales or sizes")
    nsp = len(scales or sizes) - 2
    tmode = _INTERP_MODES.get((mode, nsp))
    if tmode is None:
        raise NoBaseline(f"Resize {mode} over {nsp} spatial dims: no F.interpolate mode")
    F = r.F

    if aa:
        kw["antialias"] = True

    def f(*ins):
        return (F.interpolate(r.args(ins)[0], mode=tmode, align_corners=align, **kw),)

    return f, f"F.interpolate(mode={tmode!r}, align_corners={align}, {', '.join(f'{k}={v}' for k, v in kw.items())})"


def col2im(r):
    img, blk = r.const_list(1), r.const_list(2)
    if img is None or blk is None:
        raise NoBaseline("Col2Im with a runtime image_shape/block_shape")
    if len(img) != 2:
        raise NoBaseline(f"Col2Im of a {len(img)}-D image: F.fold is 2-D only")
    pads = list(r.attr("pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:]:
        raise NoBaseline(f"Col2Im pads {pads}: F.fold pads both ends of a dim alike")
    kw = {
        "output_size": tuple(int(v) for v in img),
        "kernel_size": tuple(int(v) for v in blk),
        "dilation": tuple(int(v) for v in r.attr("dilations", [1, 1])),
        "padding": tuple(int(v) for v in pads[:2]),
        "stride": tuple(int(v) for v in r.attr("strides", [1, 1])),
    }
    F = r.F

    def f(*ins):
        return (F.fold(r.args(ins)[0], **kw),)

    return f, "F.fold(" + ", ".join(f"{k}={v}" for k, v in kw.items()) + ")"


def center_crop_pad(r):
    target = r.const_list(1)
    if target is None:
        raise NoBaseline("CenterCropPad with a runtime shape")
    axes = r.attrs.get("axes")
    F = r.F

    def f(*ins):
        x = r.args(ins)[0]
        ax = [a % x.dim() for a in axes] if axes is not None else list(range(x.dim()))
        sl = [slice(None)] * x.dim()
        pad = [0] * (2 * x.dim())  # F.pad's order: last dim first, (before, after) each
        for a, t in zip(ax, target):
            n = x.shape[a]
            if t < n:
                sl[a] = slice((n - t) // 2, (n - t) // 2 + t)
            elif t > n:
                k = 2 * (x.dim() - 1 - a)
                pad[k], pad[k + 1] = (t - n) // 2, t - n - (t - n) // 2
        y = x[tuple(sl)]
        return (F.pad(y, pad) if any(pad) else y.contiguous(),)

    return f, "x[centre slices] then F.pad(zeros) (one copy each where both apply)"


def _loss(softmax):
    def ref(r):
        if r.n_outputs > 1:
            raise NoBaseline("SoftmaxCrossEntropyLoss with the log_prob output used: only the loss is implemented here")
        red = r.attr("reduction", "mean")
        ii = r.attrs.get("ignore_index")
        kw = {"reduction": red, "ignore_index": int(ii) if ii is not None else -100}
        if ii is None:
            kw["ignore_index"] = -(2**62)  # no target is ignored
        fn = r.F.cross_entropy if softmax else r.F.nll_loss

        def f(*ins):
            v = r.args(ins)
            w = v[2] if len(v) > 2 else None
            return (fn(v[0], v[1].long(), weight=w, **kw),)

        name = "F.cross_entropy" if softmax else "F.nll_loss"
        return f, f"{name}(reduction={red!r}, ignore_index={kw['ignore_index']})"

    return ref


def grid_sample(r):
    mode = {
        "linear": "bilinear",
        "bilinear": "bilinear",
        "nearest": "nearest",
        "cubic": "bicubic",
        "bicubic": "bicubic",
    }[r.attr("mode", "linear")]
    pad = r.attr("padding_mode", "zeros")
    align = bool(int(r.attr("align_corners", 0)))
    F = r.F

    def f(*ins):
        x, grid = r.args(ins)[:2]
        return (F.grid_sample(x, grid, mode=mode, padding_mode=pad, align_corners=align),)

    return f, f"F.grid_sample(mode={mode!r}, padding_mode={pad!r}, align_corners={align})"


# --------------------------------------------------------------------------------------------
# reductions, scans, selection
# --------------------------------------------------------------------------------------------


# ONNX reduce op -> (torch expression for the description, fn(torch, x, dims, keepdim))
REDUCTIONS = {
    "ReduceMax": ("torch.amax", lambda t, x, d, k: t.amax(x, dim=d, keepdim=k)),
    "ReduceMin": ("torch.amin", lambda t, x, d, k: t.amin(x, dim=d, keepdim=k)),
    "ReduceSum": ("torch.sum", lambda t, x, d, k: t.sum(x, dim=d, keepdim=k)),
    "ReduceMean": ("torch.mean", lambda t, x, d, k: t.mean(x, dim=d, keepdim=k)),
    "ReduceL1": ("torch.linalg.vector_norm(ord=1)", lambda t, x, d, k: t.linalg.vector_norm(x, 1, dim=d, keepdim=k)),
    "ReduceL2": ("torch.linalg.vector_norm(ord=2)", lambda t, x, d, k: t.linalg.vector_norm(x, 2, dim=d, keepdim=k)),
    "ReduceSumSquare": ("torch.sum(x * x)", lambda t, x, d, k: t.sum(x * x, dim=d, keepdim=k)),
    "ReduceLogSum": ("torch.log(torch.sum)", lambda t, x, d, k: t.log(t.sum(x, dim=d, keepdim=k))),
    "ReduceLogSumExp": ("torch.logsumexp", lambda t, x, d, k: t.logsumexp(x, dim=d, keepdim=k)),
}


def _reduce(op):
    desc, fn = REDUCTIONS[op]

    def ref(r):
        if len(r.slots) > 1 and r.slots[1].kind == "input":
            raise NoBaseline(f"{r.op} with non-constant axes")
        axes = r.const_list(1) if len(r.slots) > 1 else None
        if axes is None:
            axes = r.attrs.get("axes")
        keep = bool(int(r.attr("keepdims", 1)))
        if not axes and int(r.attr("noop_with_empty_axes", 0)):
            raise NoBaseline(f"{r.op} noop_with_empty_axes")

        def f(*ins):
            x = r.args(ins)[0]
            dims = [int(a) for a in axes] if axes else list(range(x.dim()))
            return (fn(r.torch, x, dims, keep),)

        return f, f"{desc}(dim={axes}, keepdim={keep})"

    ref.__name__ = op.lower()
    return ref


def top_k(r):
    k = r.const_list(1)
    if k is None:
        raise NoBaseline("TopK with a non-constant K")
    k = int(k[0])
    axis = int(r.attr("axis", -1))
    largest = bool(int(r.attr("largest", 1)))

    def f(*ins):
        v, i = r.torch.topk(r.args(ins)[0], k, dim=axis, largest=largest, sorted=True)
        return (v, i)

    return f, f"torch.topk(k={k}, dim={axis}, largest={largest}, sorted=True)"


def cum_sum(r):
    axis = r.const_list(1)
    if axis is None:
        raise NoBaseline("CumSum with a non-constant axis")
    axis = int(axis[0])
    excl = bool(int(r.attr("exclusive", 0)))
    rev = bool(int(r.attr("reverse", 0)))

    def f(*ins):
        x = r.args(ins)[0]
        y = x.flip(axis) if rev else x
        c = y.cumsum(axis)
        if excl:
            c = c - y
        return (c.flip(axis) if rev else c,)

    return f, (
        f"torch.cumsum(dim={axis})" + (" (reverse via flip)" if rev else "") + (" (exclusive: minus x)" if excl else "")
    )


def dft(r):
    inverse, onesided = bool(int(r.attr("inverse", 0))), bool(int(r.attr("onesided", 0)))
    n_c, ax_c = r.const_list(1), r.const_list(2)
    # opset 17: axis attribute (default 1); opset 20: constant axis input (default -2)
    axis = int(r.attrs["axis"]) if "axis" in r.attrs else int(ax_c[0]) if ax_c else -2
    torch = r.torch

    def f(*ins):
        x = r.args(ins)[0]
        a = axis % x.dim()
        irfft = inverse and onesided
        n = int(n_c[0]) if n_c else 2 * (x.shape[a] - 1) if irfft else x.shape[a]
        xc = torch.view_as_complex(x.float().contiguous()) if x.shape[-1] == 2 else x[..., 0].float()
        if irfft:  # ONNX 1.21: a one-sided spectrum in, n real points out (last dim 1)
            return (torch.fft.irfft(xc, n=n, dim=a).unsqueeze(-1).to(x.dtype),)
        if inverse:
            y = torch.fft.ifft(xc, n=n, dim=a)
        elif onesided and x.shape[-1] == 1:
            y = torch.fft.rfft(xc, n=n, dim=a)
        else:
            y = torch.fft.fft(xc, n=n, dim=a)
            if onesided:
                y = y.narrow(a, 0, n // 2 + 1)
        return (torch.view_as_real(y.contiguous()).to(x.dtype),)

    kind = "irfft" if inverse and onesided else "ifft" if inverse else "rfft/fft" if onesided else "fft"
    tail = "unsqueeze(-1)" if inverse and onesided else "torch.view_as_real"
    return f, f"torch.fft.{kind}(dim={axis}) on float32, {tail}"


def stft(r):
    """ONNX STFT(signal [B, L, 1|2], frame_step, window?, frame_length?) as torch.stft with
    center=False: [B, K, frames] transposed to ONNX's [B, frames, K, 2]."""
    onesided = bool(int(r.attr("onesided", 1)))
    step = int(r.const_list(1)[0])
    flen_c = r.const_list(3)
    torch = r.torch

    def f(*ins):
        a = r.args(ins)
        x, w = a[0], (a[2] if len(a) > 2 else None)
        n = int(flen_c[0]) if flen_c else int(w.shape[0])
        xc = torch.view_as_complex(x.float().contiguous()) if x.shape[-1] == 2 else x[..., 0].float()
        y = torch.stft(
            xc,
            n_fft=n,
            hop_length=step,
            win_length=n,
            window=w.float() if w is not None else None,
            center=False,
            onesided=onesided,
            return_complex=True,
        )
        return (torch.view_as_real(y.transpose(1, 2).contiguous()).to(x.dtype),)

    return f, f"torch.stft(hop={step}, center=False, onesided={onesided}) on float32, transposed, torch.view_as_real"


# --------------------------------------------------------------------------------------------
# normalization, activation
# --------------------------------------------------------------------------------------------


def _norm_operands(r, ins):
    v = r.args(ins)
    x = v[0]
    a = int(r.attr("axis", -1)) % x.dim()
    shape = tuple(x.shape[a:])
    # Scale / B broadcast to the normalized shape (a view, no copy)
    w = v[1].expand(shape) if len(v) > 1 and v[1] is not None else None
    b = v[2].expand(shape) if len(v) > 2 and v[2] is not None else None
    return x, a, shape, w, b


def layer_norm(r):
    axis, eps = int(r.attr("axis", -1)), float(r.attr("epsilon", 1e-5))
    torch, F, n = r.torch, r.F, r.n_outputs

    def f(*ins):
        x, a, shape, w, b = _norm_operands(r, ins)
        if n == 1:
            return (F.layer_norm(x, shape, w, b, eps),)
        # Mean and InvStdDev (float32, shape x.shape[:axis] + [1] * len(shape)) as ATen has them
        y, mean, rstd = torch.ops.aten.native_layer_norm(x, list(shape), w, b, eps)
        stat = tuple(x.shape[:a]) + (1,) * len(shape)
        return (y, mean.float().reshape(stat), rstd.float().reshape(stat))[:n]

    if n > 1:
        return f, f"torch.ops.aten.native_layer_norm(normalized_shape=x.shape[{axis}:], eps={eps}) (y, mean, rstd)"
    return f, f"F.layer_norm(normalized_shape=x.shape[{axis}:], eps={eps})"


def rms_norm(r):
    axis, eps = int(r.attr("axis", -1)), float(r.attr("epsilon", 1e-5))
    F = r.F

    def f(*ins):
        x, _, shape, w, _ = _norm_operands(r, ins)
        return (F.rms_norm(x, shape, w, eps),)

    return f, f"F.rms_norm(normalized_shape=x.shape[{axis}:], eps={eps})"


def gelu(r):
    approx = r.attr("approximate", "none")
    F = r.F

    def f(*ins):
        return (F.gelu(r.args(ins)[0], approximate=approx),)

    return f, f"F.gelu(approximate={approx!r})"


def attention(r):
    """ONNX Attention (opset 23/24) through F.scaled_dot_product_attention (enable_gqa): 3-D inputs
    reshaped by q_num_heads / kv_num_heads, past_key / past_value concatenated (present outputs),
    a bool or float mask, is_causal (offset by the past length: an explicit mask when there is a
    past or a mask), scale. softcap, qk_matmul_output, softmax_precision and nonpad_kv_seqlen have
    no SDPA form: no baseline."""
    torch, F, n = r.torch, r.F, r.n_outputs
    for a in ("softcap", "softmax_precision", "qk_matmul_output_mode"):
        if a in r.attrs and r.attrs[a]:
            raise NoBaseline(f"Attention {a}: scaled_dot_product_attention has no such option")
    if n > 3:
        raise NoBaseline("Attention's qk_matmul_output: scaled_dot_product_attention does not return it")
    if len(r.slots) > 6 and r.slots[6].kind != "absent":
        raise NoBaseline("Attention nonpad_kv_seqlen")
    causal = bool(r.attr("is_causal", 0))
    scale = r.attrs.get("scale")
    qh, kvh = r.attr("q_num_heads", 0), r.attr("kv_num_heads", 0)

    def heads(x, h):
        return x.reshape(x.shape[0], x.shape[1], h, -1).transpose(1, 2)

    def f(*ins):
        v = r.args(ins) + [None] * 7
        q, k, val, mask, pk, pv = v[:6]
        three = q.dim() == 3
        if three:
            q, k, val = heads(q, qh), heads(k, kvh), heads(val, kvh)
        if pk is not None:
            k, val = torch.cat([pk, k], dim=2), torch.cat([pv, val], dim=2)
        lq, t = q.shape[2], k.shape[2]
        m = mask
        if causal and (m is not None or t != lq):
            keep = torch.ones(lq, t, dtype=torch.bool, device=q.device).tril(t - lq if pk is not None else 0)
            if m is None:
                m = keep
            elif m.dtype == torch.bool:
                m = m & keep
            else:
                m = m.masked_fill(~keep, float("-inf"))
        y = F.scaled_dot_product_attention(
            q, k, val, attn_mask=m, is_causal=causal and m is None, scale=scale, enable_gqa=q.shape[1] != k.shape[1]
        )
        if three:
            y = y.transpose(1, 2).reshape(y.shape[0], y.shape[2], -1)
        return (y, k, val)[:n]

    return f, f"F.scaled_dot_product_attention(is_causal={causal}, enable_gqa=True)" + (
        " + torch.cat(past, new)" if len(r.slots) > 4 and r.slots[4].kind != "absent" else ""
    )


def roi_align(r):
    """torchvision.ops.roi_align where importable (mode avg; aligned = half_pixel, sampling_ratio 0
    -> -1: the same adaptive grid), else a gather formulation in plain torch for a fixed
    sampling_ratio (avg and max): the sample rows and columns of every box gathered at once
    ([R, PH*S*2, PW*S*2, C]), weighted by the separable bilinear weights, summed or maxed."""
    mode = r.attr("mode", "avg")
    if isinstance(mode, bytes):
        mode = mode.decode()
    ctm = r.attr("coordinate_transformation_mode", "half_pixel")
    if isinstance(ctm, bytes):
        ctm = ctm.decode()
    hp = ctm == "half_pixel"
    oh, ow = int(r.attr("output_height", 1)), int(r.attr("output_width", 1))
    ratio, scale = int(r.attr("sampling_ratio", 0)), float(r.attr("spatial_scale", 1.0))
    torch = r.torch
    try:
        import torchvision.ops as tvo  # lazy probe: torchvision is optional on the GPU machine
    except Exception:  # noqa: BLE001 - not installed, or built for another torch
        tvo = None
    if tvo is not None and mode == "avg":

        def f(*ins):
            x, rois, bi = r.args(ins)
            boxes = torch.cat([bi.to(rois.dtype)[:, None], rois], 1)
            y = tvo.roi_align(x, boxes, (oh, ow), scale, ratio if ratio > 0 else -1, aligned=hp)
            return (y,)

        return f, f"torchvision.ops.roi_align(aligned={hp}, sampling_ratio={ratio if ratio > 0 else -1})"
    if ratio <= 0:
        raise NoBaseline("RoiAlign sampling_ratio=0 without torchvision: the sample grid differs per box")
    S = ratio

    def axis_taps(lo, hi, n_out, size):
        """[R, n_out, S, 2] source indices and weights along one axis (zero weight outside)."""
        ext = hi - lo
        if not hp:
            ext = ext.clamp(min=1.0)
        bin_ = ext / n_out
        p = torch.arange(n_out, device=lo.device, dtype=torch.float32)[None, :, None]
        k = (torch.arange(S, device=lo.device, dtype=torch.float32) + 0.5)[None, None, :]
        c = lo[:, None, None] + p * bin_[:, None, None] + k * bin_[:, None, None] / S
        valid = (c >= -1.0) & (c <= size)
        c = c.clamp(min=0.0)
        low = c.floor().long()
        last = low >= size - 1
        low = torch.where(last, torch.full_like(low, size - 1), low)
        high = torch.where(last, low, low + 1)
        frac = torch.where(last, torch.zeros_like(c), c - low.float())
        idx = torch.stack([low, high], -1)
        w = torch.stack([1.0 - frac, frac], -1) * valid[..., None].float()
        return idx, w

    def f(*ins):
        x, rois, bi = r.args(ins)
        N, C, H, W = x.shape
        off = 0.5 if hp else 0.0
        b = rois.float() * scale - off
        yi, wy = axis_taps(b[:, 1], b[:, 3], oh, H)  # [R, oh, S, 2]
        xi, wx = axis_taps(b[:, 0], b[:, 2], ow, W)
        R = rois.shape[0]
        g = x[bi.clamp(0, N - 1)[:, None, None], :, yi.reshape(R, -1, 1), xi.reshape(R, 1, -1)].float()
        g = g.reshape(R, oh, S, 2, ow, S, 2, C)
        v = g * wy[:, :, :, :, None, None, None, None] * wx[:, None, None, None, :, :, :, None]
        if mode == "max":
            y = v.amax(dim=(3, 6)).amax(dim=(2, 5))  # [R, oh, ow, C]
        else:
            y = v.sum(dim=(2, 3, 5, 6)) / float(S * S)
        return (y.permute(0, 3, 1, 2).contiguous().to(x.dtype),)

    return f, f"gather of the sample rows/columns + separable bilinear weights ({mode}, sampling_ratio={S})"


def non_max_suppression(r):
    """torchvision.ops.batched_nms (one group per (batch, class); torchvision runs one nms per group
    for this many boxes) on corner boxes (ONNX's [y1, x1, y2, x2] in either order, or centre + size),
    after the score filter; then ONNX's order (batch, class, descending score) and at most
    max_output_boxes_per_class per group."""
    center = int(r.attr("center_point_box", 0))
    max_out = r.const_list(2)
    if len(r.slots) > 2 and r.slots[2].kind == "input":
        raise NoBaseline("NonMaxSuppression with a runtime max_output_boxes_per_class")
    max_out = max(int(max_out[0]), 0) if max_out else 0
    torch = r.torch
    try:
        import torchvision.ops as tvo  # lazy probe: torchvision is optional on the GPU machine
    except Exception:  # noqa: BLE001 - not installed, or built for another torch
        raise NoBaseline("NonMaxSuppression needs torchvision.ops.batched_nms") from None

    def f(*ins):
        a = r.args(ins) + [None] * 3
        boxes, scores, iou, st = a[0], a[1], a[3], a[4]
        nb, nc, n = scores.shape
        if center == 0:
            y1, x1, y2, x2 = boxes.unbind(-1)
            bx = torch.stack(
                [torch.minimum(x1, x2), torch.minimum(y1, y2), torch.maximum(x1, x2), torch.maximum(y1, y2)], -1
            )
        else:
            xc, yc, w, h = boxes.unbind(-1)
            bx = torch.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], -1)
        bx = bx[:, None].expand(nb, nc, n, 4).reshape(-1, 4)
        sc = scores.reshape(-1)
        grp = torch.arange(nb * nc, device=sc.device).repeat_interleave(n)
        box = torch.arange(n, device=sc.device).repeat(nb * nc)
        if st is not None:
            keep = sc > st.reshape(())
            bx, sc, grp, box = bx[keep], sc[keep], grp[keep], box[keep]
        thr = float(iou.reshape(-1)[0]) if iou is not None else 0.0
        k = tvo.batched_nms(bx, sc, grp, thr)  # descending score
        g = grp[k]
        order = torch.sort(g, stable=True).indices
        k, g = k[order], g[order]
        first = torch.searchsorted(g, g)  # each group's first position
        rank = torch.arange(g.numel(), device=g.device) - first
        sel = rank < max_out
        k, g = k[sel], g[sel]
        return (torch.stack([g // nc, g % nc, box[k]], 1),)

    return f, "torchvision.ops.batched_nms per (batch, class) + ONNX's order and max_output per class"


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------

TORCH_REFS = {
    "Gather": gather,
    "GatherElements": gather_elements,
    "GatherND": gather_nd,
    "ScatterND": scatter_nd,
    "ScatterElements": scatter_elements,
    "Scatter": scatter_elements,
    "OneHot": one_hot,
    "Compress": compress,
    "NonZero": non_zero,
    "Unique": unique,
    "Resize": resize,
    "Upsample": resize,
    "GridSample": grid_sample,
    **{op: _reduce(op) for op in REDUCTIONS},
    "Col2Im": col2im,
    "CenterCropPad": center_crop_pad,
    "NegativeLogLikelihoodLoss": _loss(False),
    "SoftmaxCrossEntropyLoss": _loss(True),
    "TopK": top_k,
    "CumSum": cum_sum,
    "DFT": dft,
    "STFT": stft,
    "LayerNormalization": layer_norm,
    "RMSNormalization": rms_norm,
    "Gelu": gelu,
    "Attention": attention,
    "RoiAlign": roi_align,
    "NonMaxSuppression": non_max_suppression,
}


def torch_impl(op, attrs, slots, torch, device, n_outputs=1):
    """(fn(*graph inputs) -> tuple of outputs, description) or (None, reason); n_outputs: how
    many of the node's outputs are used (LayerNormalization's Mean / InvStdDev)."""
    ref = TORCH_REFS.get(op)
    if ref is None:
        return None, f"no PyTorch implementation of {op} in the bench table"
    try:
        return ref(Ref(op, attrs, slots, torch, device, n_outputs))
    except NoBaseline as e:
        return None, str(e)

"""Inputs of a benchmarked plugin (the reference data's op-aware rules, on the GPU) and the
comparison of its outputs with the PyTorch baseline (tolerances of docs/reference-data.md)."""

from __future__ import annotations

import math

import numpy as np

from tpat_bridge.errors import BridgeError
from tpat_bridge.tools import reference as R

FLOAT_NAMES = ("float32", "float16", "bfloat16", "float64")


def _torch_dtype(torch, name):
    return {
        "float32": torch.float32,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
        "float64": torch.float64,
        "int8": torch.int8,
        "uint8": torch.uint8,
        "int16": torch.int16,
        "int32": torch.int32,
        "int64": torch.int64,
        "bool": torch.bool,
        "uint16": getattr(torch, "uint16", None),
        "uint32": getattr(torch, "uint32", None),
        "uint64": getattr(torch, "uint64", None),
    }[name]


def _to_torch(torch, arr, dtype_name, device):
    a = np.ascontiguousarray(arr).reshape(np.shape(arr))  # ascontiguousarray makes a 0-D array 1-D
    if dtype_name == "bfloat16":
        return torch.from_numpy(a.view(np.uint16).astype(np.int16, copy=False)).to(device).view(torch.bfloat16)
    if dtype_name == "bool":
        return torch.from_numpy(a.astype(np.bool_)).to(device)
    return torch.from_numpy(a).to(device)


def to_numpy(t):
    """A CPU tensor as a numpy array (bfloat16 through ml_dtypes, as the reference data has it)."""
    if str(t.dtype) == "torch.bfloat16":
        import torch  # lazy: torch exists on the GPU machine only

        return t.view(torch.int16).numpy().view(np.uint16).view(R.NAME_TO_NP["bfloat16"])
    return t.numpy()


def make_inputs(torch, node, attrs, slots, binding, seed, device, notes):
    """Graph inputs (list of GPU tensors, by graph index) with the reference data's rules, and the
    generation context (for tolerances). Rule-driven inputs come from reference.py's generators
    (numpy, then copied); the others are drawn on the GPU (standard normal floats, ints in
    [-10, 10], unsigned [0, 20], fair bools), as reference.py's generic rule does."""

    rng = np.random.default_rng([seed, 0])
    ctx = R.Ctx(node, attrs, slots, binding, rng, notes)
    gen = R._GENERATORS.get(node.op_type)
    if gen is not None:
        try:
            gen(ctx)
        except R.Infeasible as e:
            raise BridgeError("reference", f"no valid inputs for {node.op_type}: {e}")
    gpu = torch.Generator(device=device)
    gpu.manual_seed(int(seed) * 7919 + 17)
    n_in = len([s for s in slots if s.kind == "input"])
    ins = [None] * n_in
    for s in slots:
        if s.kind != "input":
            continue
        shape = ctx.shape(s.pos)
        if s.pos in ctx.values:
            ins[s.graph_index] = _to_torch(torch, ctx.values[s.pos], s.dtype, device)
            continue
        td = _torch_dtype(torch, s.dtype)
        if s.dtype in FLOAT_NAMES:
            t = torch.randn(shape, generator=gpu, device=device, dtype=torch.float32).to(td)
        elif s.dtype == "bool":
            t = torch.rand(shape, generator=gpu, device=device) < 0.5
        elif s.dtype.startswith("u"):
            t = torch.randint(0, 21, shape, generator=gpu, device=device, dtype=torch.int64).to(td)
        else:
            t = torch.randint(-10, 11, shape, generator=gpu, device=device, dtype=torch.int64).to(td)
        ins[s.graph_index] = t.contiguous()
    return ins, ctx


def tolerance_for(ctx, dtype_name, out_shapes):
    if dtype_name not in R.TOLERANCES:
        return 0.0, 0.0
    atol, rtol = R.TOLERANCES[dtype_name]
    k = R._reduction_length(ctx, out_shapes)
    if k:
        atol *= max(1.0, math.sqrt(k))
    return atol, rtol


def compare(torch, got, exp, atol, rtol):
    """{"pass", "bad", "n", "max_abs"}; floats: |got-exp| <= atol + rtol*|exp| (NaN==NaN)."""
    if tuple(got.shape) != tuple(exp.shape):
        return {
            "pass": False,
            "bad": None,
            "n": int(exp.numel()),
            "max_abs": None,
            "reason": f"shape {list(got.shape)} != {list(exp.shape)}",
        }
    if got.dtype.is_floating_point:
        g = got.float()
        e = exp.float()
        both_nan = torch.isnan(g) & torch.isnan(e)
        diff = (g - e).abs()
        ok = (diff <= atol + rtol * e.abs()) | both_nan | (g == e)
        bad = int((~ok).sum().item())
        finite = torch.isfinite(diff)
        max_abs = float(diff[finite].max().item()) if bool(finite.any().item()) else 0.0
    else:
        ok = got == exp
        bad = int((~ok).sum().item())
        max_abs = float((got.long() - exp.long()).abs().max().item()) if got.numel() else 0.0
    return {"pass": bad == 0, "bad": bad, "n": int(exp.numel()), "max_abs": max_abs, "atol": atol, "rtol": rtol}


def compare_outputs(torch, op, attrs, ins, got, exp, tols):
    """Per-output comparisons; TopK's index output is compared by the values it gathers."""
    res = []
    for j, (g, e) in enumerate(zip(got, exp)):
        atol, rtol = tols[j]
        if op == "TopK" and j == 1 and len(got) > 0:
            x = ins[0]
            axis = int(attrs.get("axis", -1)) % x.dim()
            d = x.shape[axis]
            gi = g.long()
            in_range = (gi >= 0) & (gi < d)
            n_out = int((~in_range).sum().item())
            gathered = torch.gather(x, axis, torch.where(in_range, gi, torch.zeros_like(gi)))
            c = compare(torch, gathered, exp[0], *tols[0])
            if n_out:
                c["pass"] = False
                c["reason"] = f"{n_out} indices out of range"
            c["compared"] = "values gathered at the indices"
            res.append(c)
        else:
            res.append(compare(torch, g, e, atol, rtol))
    return res


def actual_views(data_dependent, outs, n_node):
    """The node's outputs, data-dependent ones cut to their actual shape (the size tensor's value
    in their dim; docs/kernel-plan.md): reads the size tensors back (after the run).
    `data_dependent`: per output null or {"dim", "size_output"} (the plugin meta's)."""
    views = list(outs[:n_node])
    for k, d in enumerate(list(data_dependent)[:n_node]):
        if d:
            count = int(outs[d["size_output"]].item())
            shape = list(outs[k].shape)
            shape[d["dim"]] = max(0, min(count, shape[d["dim"]]))
            n = 1
            for v in shape:
                n *= v
            views[k] = outs[k].reshape(-1)[:n].reshape(shape)
    return views

"""Checks a case's PyTorch baseline against ONNX Runtime (CPU) at the case's small check shapes
(cases.json "check_shapes"): the baseline is what TPAT is compared and timed against, so it must
be right. Used by tests/python/test_bench.py, by `python -m tpat_bridge.tools.bench
check-baselines`, and by every suite run of the bench (a "baseline" entry per row)."""

from __future__ import annotations

import copy

import onnx

from tpat_bridge.tools import reference as R

from .check import _to_torch, compare_outputs, make_inputs, to_numpy, tolerance_for
from .timer import short_error
from .torch_refs import torch_impl


def small_model(model, shapes):
    """The case's model with the check shapes on its inputs and its output shapes left to ORT."""
    m = copy.deepcopy(model)
    for v in m.graph.input:
        if v.name in shapes:
            for d, n in zip(v.type.tensor_type.shape.dim, shapes[v.name]):
                d.dim_value = int(n)
    for v in m.graph.output:
        v.type.tensor_type.ClearField("shape")
    return m


def check_baseline(case, torch, seed=0):
    """{"pass", "against", "shapes", "torch_impl", "outputs" | "reason"} for one case, on the CPU."""
    res = {"against": "ONNX Runtime (CPU)", "shapes": case.get("check_shapes", {})}
    try:
        m = small_model(onnx.load(case["model_path"]), res["shapes"])
        node, attrs, slots, gi = R._read_model(m)
        ins, ctx = make_inputs(torch, node, attrs, slots, {}, seed, "cpu", set())
        fn, desc = torch_impl(node.op_type, attrs, slots, torch, "cpu", len(m.graph.output))
        res["torch_impl"] = desc
        if fn is None:
            return dict(res, **{"pass": False, "reason": desc})
        outs, _ = R._Runner(m).run({v.name: to_numpy(t) for v, t in zip(gi, ins)})
        tols = [tolerance_for(ctx, R._dtype_name(o), [o.shape for o in outs]) for o in outs]
        exp = [_to_torch(torch, o, R._dtype_name(o), "cpu") for o in outs]
        cmp = compare_outputs(torch, node.op_type, attrs, ins, list(fn(*ins)), exp, tols)
    except Exception as e:  # noqa: BLE001 - a failed check is a result, never a crash of the run
        return dict(res, **{"pass": False, "reason": short_error(e)})
    return dict(res, **{"pass": all(c["pass"] for c in cmp), "outputs": cmp})

"""Model builder and ONNX Runtime answer for the Attention lowering tests (test_lowering_attention.py):
a one-node Attention model (opset 23 or 24) with graph-input Q, K, V[, attn_mask][, past_key,
past_value], symbolic dims by name, and the node's outputs Y[, present_key, present_value][, qk]."""

from __future__ import annotations

import ml_dtypes
import numpy as np
from lowering_harness import input_shape, run_ort
from onnx import TensorProto as TP
from onnx import helper as h

ONNX_T = {"float32": TP.FLOAT, "float16": TP.FLOAT16, "bfloat16": TP.BFLOAT16, "bool": TP.BOOL, "float64": TP.DOUBLE}
NP_T = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "bool": np.bool_}


def attention_model(
    q,
    k,
    v,
    dtype="float32",
    mask=None,
    mask_dtype=None,
    past=None,
    outputs=(True, False, False, False),
    opset=23,
    nonpad=False,
    total=None,
    **attrs,
):
    """q, k, v, mask: shapes (str dims symbolic); past: (past_key shape, past_value shape); total:
    the total sequence length (past + current; a name when symbolic), for the declared outputs."""
    names, inputs = ["q", "k", "v"], []
    for n, s in (("q", q), ("k", k), ("v", v)):
        inputs.append(h.make_tensor_value_info(n, ONNX_T[dtype], s))
    if mask is not None:
        names.append("m")
        inputs.append(h.make_tensor_value_info("m", ONNX_T[mask_dtype or dtype], mask))
    if past is not None:
        names += ([""] if mask is None else []) + ["pk", "pv"]
        inputs.append(h.make_tensor_value_info("pk", ONNX_T[dtype], past[0]))
        inputs.append(h.make_tensor_value_info("pv", ONNX_T[dtype], past[1]))
    if nonpad:
        names += [""] * (6 - len(names)) + ["nk"]
        inputs.append(h.make_tensor_value_info("nk", TP.INT64, [q[0]]))
    outs = [n if used else "" for n, used in zip(["y", "pk_out", "pv_out", "qk"], outputs)]
    while outs and not outs[-1]:
        outs.pop()
    node = h.make_node("Attention", names, outs, **attrs)
    b = q[0]
    if len(q) == 4:
        qh, lq, kvh, hd, vd = q[1], q[2], k[1], k[3], v[3]
    else:
        qh, kvh = attrs.get("q_num_heads", 1), attrs.get("kv_num_heads", 1)
        lq, hd, vd = q[1], k[2] // kvh, v[2] // kvh
    s = k[2] if len(k) == 4 else k[1]
    t = total if total is not None else s
    y = [b, qh, lq, vd] if len(q) == 4 else [b, lq, qh * vd]
    shapes = {"y": y, "pk_out": [b, kvh, t, hd], "pv_out": [b, kvh, t, vd], "qk": [b, qh, lq, t]}
    ovi = [h.make_tensor_value_info(o, ONNX_T[dtype], shapes[o]) for o in outs if o]
    g = h.make_graph([node], "g", inputs, ovi)
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def feeds_for(model, syms, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in model.graph.input:
        shape = input_shape(vi, syms)
        et = vi.type.tensor_type.elem_type
        if et == TP.BOOL:
            x = rng.random(shape) < 0.7
        elif et == TP.INT64:
            x = np.full(shape, 2, np.int64)
        else:
            np_t = {TP.FLOAT: np.float32, TP.FLOAT16: np.float16, TP.BFLOAT16: ml_dtypes.bfloat16}[et]
            x = rng.standard_normal(shape).astype(np.float32)
            if vi.name == "m":
                x = np.where(rng.random(shape) < 0.2, -np.inf, x).astype(np.float32)
            x = x.astype(np_t)
        feeds[vi.name] = x
    return feeds


def ort_answer(model, feeds):
    """ONNX Runtime's outputs; bfloat16 models run through a float32 twin, rounded back."""
    import onnx

    bf = [vi for vi in model.graph.input if vi.type.tensor_type.elem_type == TP.BFLOAT16]
    if not bf:
        return run_ort(model, feeds)
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info):
        if vi.type.tensor_type.elem_type == TP.BFLOAT16:
            vi.type.tensor_type.elem_type = TP.FLOAT
    f32 = {k: (x.astype(np.float32) if x.dtype == ml_dtypes.bfloat16 else x) for k, x in feeds.items()}
    return [o.astype(ml_dtypes.bfloat16) for o in run_ort(m, f32)]

"""Model builders and checks shared by the normalization lowering tests
(test_lowering_layernorm.py, test_lowering_rmsnorm.py): a one-node model, random feeds, and
ONNX Runtime's answer, bfloat16 through a float32 twin of the model (ONNX Runtime's CPU provider
has no bfloat16 normalization kernels)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
from lowering_harness import input_shape, run_ort
from onnx import TensorProto as TP
from onnx import helper as h

ONNX_T = {"float32": TP.FLOAT, "float16": TP.FLOAT16, "bfloat16": TP.BFLOAT16}
NP_T = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
BY_ONNX = {v: NP_T[k] for k, v in ONNX_T.items()}


def norm_model(
    op,
    xshape,
    dtype="float32",
    pshape=None,
    bias=True,
    axis=-1,
    outputs=1,
    eps=1e-5,
    const_params=False,
    sdtype=None,
    stash_type=None,
):
    """A LayerNormalization (opset 17) or RMSNormalization (opset 23) node; Scale/B of shape
    pshape (default X.shape[axis:]); graph inputs or, with const_params, initializers."""
    r = len(xshape)
    a = axis % r
    pshape = list(xshape[a:]) if pshape is None else pshape
    sdtype = sdtype or dtype
    rms = op == "RMSNormalization"
    ins = ["x", "scale"] + (["bias"] if bias and not rms else [])
    outs = ["y", "mean", "invstd"][:outputs]
    attrs = {"axis": axis, "epsilon": eps}
    if stash_type is not None:
        attrs["stash_type"] = stash_type
    node = h.make_node(op, ins, outs, **attrs)
    inputs = [h.make_tensor_value_info("x", ONNX_T[dtype], xshape)]
    inits = []
    rng = np.random.default_rng(1)
    for name in ins[1:]:
        if const_params:
            vals = rng.standard_normal(pshape) * 0.5 + (1 if name == "scale" else 0)
            inits.append(onnx.numpy_helper.from_array(vals.astype(NP_T[sdtype]), name))
        else:
            inputs.append(h.make_tensor_value_info(name, ONNX_T[sdtype], pshape))
    ydtype = sdtype if rms else dtype
    stat_shape = list(xshape[:a]) + [1] * (r - a)
    outputs_vi = [h.make_tensor_value_info("y", ONNX_T[ydtype], xshape)]
    outputs_vi += [h.make_tensor_value_info(n, TP.FLOAT, stat_shape) for n in outs[1:]]
    g = h.make_graph([node], "g", inputs, outputs_vi, inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 23 if rms else 17)])
    m.ir_version = 10
    return m


def feeds_for(model, syms, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for vi in model.graph.input:
        shape = input_shape(vi, syms)
        v = rng.standard_normal(shape) * (2 if vi.name == "x" else 0.5) + (3 if vi.name == "x" else 0)
        out[vi.name] = v.astype(BY_ONNX[vi.type.tensor_type.elem_type])
    return out


def ort_answer(model, feeds):
    """ONNX Runtime's outputs; bfloat16 models run as float32 (inputs exactly widened, outputs
    rounded back to bfloat16)."""
    if not any(
        vi.type.tensor_type.elem_type == TP.BFLOAT16 for vi in list(model.graph.input) + list(model.graph.output)
    ) and not any(t.data_type == TP.BFLOAT16 for t in model.graph.initializer):
        return run_ort(model, feeds)
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in list(m.graph.input) + list(m.graph.output):
        if vi.type.tensor_type.elem_type == TP.BFLOAT16:
            vi.type.tensor_type.elem_type = TP.FLOAT
    for k, t in enumerate(m.graph.initializer):
        if t.data_type == TP.BFLOAT16:
            arr = onnx.numpy_helper.to_array(t).astype(np.float32)
            m.graph.initializer[k].CopyFrom(onnx.numpy_helper.from_array(arr, t.name))
    f32 = {k: (v.astype(np.float32) if v.dtype == ml_dtypes.bfloat16 else v) for k, v in feeds.items()}
    outs = run_ort(m, f32)
    kinds = [vi.type.tensor_type.elem_type for vi in model.graph.output]
    return [o.astype(ml_dtypes.bfloat16) if k == TP.BFLOAT16 else o for o, k in zip(outs, kinds)]

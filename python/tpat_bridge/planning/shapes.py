"""ONNX shape inference (with data propagation) answered as plain tensor types and shapes."""

import onnx
from onnx import shape_inference

from ..errors import BridgeError
from . import safe_load

_TWO_GB = 2**31 - 1


def _dims(tensor_type):
    if not tensor_type.HasField("shape"):
        return None
    out = []
    for d in tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append({"value": int(d.dim_value)})
        elif d.HasField("dim_param") and d.dim_param:
            out.append({"param": d.dim_param})
        else:
            out.append({})
    return out


def _entry(vi):
    t = vi.type.tensor_type
    dtype = (
        onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
        if t.elem_type not in (0, 8)
        else ("string" if t.elem_type == 8 else "undefined")
    )
    if t.elem_type == onnx.TensorProto.BFLOAT16:
        dtype = "bfloat16"
    return {"name": vi.name, "elem_type": int(t.elem_type), "dtype": dtype, "shape": _dims(t)}


def load_model(path: str) -> onnx.ModelProto:
    """The model with its external data, read under safe_load's rules (never onnx's own loader)."""
    return safe_load.load_model(path)


def payload_problem(t: onnx.TensorProto):
    """Why a tensor's data does not fit its type and dims (None when it does). onnx's shape
    inference reads such data out of bounds (an int64 constant with 0 or 3 bytes segfaults it)."""
    count = 1
    for d in t.dims:
        if d < 0:
            return f"negative dim {d}"
        count *= d
    if t.data_location == onnx.TensorProto.EXTERNAL or t.data_type in (0, onnx.TensorProto.STRING):
        return None
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        field = onnx.helper.tensor_dtype_to_field(t.data_type)
    except Exception:  # noqa: BLE001  (unknown or sub-byte types: not read by TPAT)
        return f"unknown data type {t.data_type}" if t.data_type > 25 else None
    if t.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4) or t.data_type > 16:
        return None
    if t.raw_data:
        return (
            None
            if len(t.raw_data) == count * itemsize
            else f"{len(t.raw_data)} bytes of data, its type and shape need {count * itemsize}"
        )
    n = len(getattr(t, field))
    if t.data_type in (onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128):
        n //= 2
    return None if n == count else f"{n} values, its shape needs {count}"


def _without_malformed_constants(model: onnx.ModelProto, warnings: list) -> onnx.ModelProto:
    """A copy for shape inference where constants whose data does not fit their shape become
    plain graph inputs of that type (their consumers are then typed without their value)."""
    g = model.graph
    bad_inits = [t for t in g.initializer if payload_problem(t)]
    bad_nodes = {
        i
        for i, n in enumerate(g.node)
        if n.op_type == "Constant"
        and n.domain in ("", "ai.onnx")
        and any(a.HasField("t") and payload_problem(a.t) for a in n.attribute)
    }
    if not bad_inits and not bad_nodes:
        return model
    m = onnx.ModelProto()
    m.CopyFrom(model)
    declared = {vi.name for vi in m.graph.input}
    for t in bad_inits:
        warnings.append(f"constant {t.name!r}: {payload_problem(t)}; left out of shape inference")
    names = {t.name for t in bad_inits}
    keep = [t for t in m.graph.initializer if t.name not in names]
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    for t in bad_inits:
        if t.name not in declared:
            m.graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, None))
    kept = []
    for i, n in enumerate(m.graph.node):
        if i in bad_nodes:
            t = next(a.t for a in n.attribute if a.HasField("t") and payload_problem(a.t))
            warnings.append(f"Constant {n.name!r}: {payload_problem(t)}; left out of shape inference")
            for o in n.output:
                m.graph.input.append(onnx.helper.make_tensor_value_info(o, t.data_type, None))
        else:
            c = onnx.NodeProto()
            c.CopyFrom(n)
            kept.append(c)
    del m.graph.node[:]
    m.graph.node.extend(kept)
    return m


def infer_model(model: onnx.ModelProto, data_prop: bool = True):
    """Returns (inferred model, warnings). Models over 2 GB are inferred from disk without data propagation."""
    warnings = []
    model = _without_malformed_constants(model, warnings)
    try:
        if model.ByteSize() > _TWO_GB:
            raise BridgeError("model", "model over 2 GB: run shape inference from path")
        inferred = shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=data_prop)
    except BridgeError:
        raise
    except Exception as e:  # noqa: BLE001
        warnings.append(
            f"shape inference failed, using declared types only: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        )
        inferred = model
    return inferred, warnings


def infer_shapes(request: dict) -> dict:
    model = load_model(request.get("model_path", ""))
    inferred, warnings = infer_model(model, bool(request.get("data_prop", True)))
    g = inferred.graph
    seen = set()
    tensors = []
    for vi in list(g.input) + list(g.value_info) + list(g.output) + _subgraph_values(g):
        if vi.name in seen or not vi.type.HasField("tensor_type"):
            continue
        seen.add(vi.name)
        tensors.append(_entry(vi))
    for init in g.initializer:
        if init.name in seen:
            continue
        seen.add(init.name)
        vi = onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
        tensors.append(_entry(vi))
    return {
        "tensors": tensors,
        "warnings": warnings,
        "checker": check_model(model),
        "non_tensor": non_tensor_values(inferred),
    }


def _subgraph_values(graph) -> list:
    """Typed values of If/Loop/Scan bodies, nested ones included (names are unique across scopes)."""
    out = []
    for node in graph.node:
        for a in node.attribute:
            for body in [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs):
                out += list(body.input) + list(body.value_info) + list(body.output) + _subgraph_values(body)
    return out


def check_model(model: onnx.ModelProto):
    """The ONNX checker's first complaint (full check, shapes included), or None when it accepts the model."""
    try:
        if model.ByteSize() > _TWO_GB:
            return None
        onnx.checker.check_model(model, full_check=True)
        return None
    except Exception as e:  # noqa: BLE001
        text = str(e).strip().splitlines()
        return (text[0] if text else type(e).__name__)[:500]


def non_tensor_values(model: onnx.ModelProto) -> list:
    """Values whose type is a sequence, optional or map: TensorRT has no such tensors."""
    out, seen = [], set()
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        kind = vi.type.WhichOneof("value")
        if vi.name in seen or kind in (None, "tensor_type", "sparse_tensor_type"):
            continue
        seen.add(vi.name)
        out.append(
            {
                "name": vi.name,
                "kind": {"sequence_type": "sequence", "optional_type": "optional", "map_type": "map"}.get(kind, kind),
            }
        )
    return out

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
    """Returns (inferred model, warnings). Models over 2 GB are inferred from disk without data
    propagation. Where ONNX's inference leaves a node's outputs untyped and TPAT has a rule for
    that node (`_RULES`), the rule's types are added and ONNX's inference runs again, so that the
    nodes after it are typed too."""
    warnings = []
    model = _without_malformed_constants(model, warnings)
    try:
        if model.ByteSize() > _TWO_GB:
            raise BridgeError("model", "model over 2 GB: run shape inference from path")
        inferred = shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=data_prop)
        for _ in range(_MAX_RULE_ROUNDS):
            added = _rule_types(inferred)
            if not added:
                break
            warnings += [f"node {name!r} ({op}): output types from TPAT's {op} rule: {why}" for name, op, why in added]
            inferred = shape_inference.infer_shapes(inferred, check_type=False, strict_mode=False, data_prop=data_prop)
    except BridgeError:
        raise
    except Exception as e:  # noqa: BLE001
        warnings.append(
            f"shape inference failed, using declared types only: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        )
        inferred = model
    return inferred, warnings


# ---------------------------------------------------------------- TPAT's own type rules
# For nodes ONNX's installed shape inference leaves untyped although their types follow from the
# model. Each rule: (node, types: name -> TypeProto, const: name -> ndarray | None, opset) ->
# (elem_type, dims, why) or None; dims: a list of int | str (symbol) | None (unknown), or None
# for an unknown rank. Rules read only the node's attributes, its inputs' types and small
# integer constants, and give up (None) on anything out of range: the model is not trusted.

_MAX_RULE_ROUNDS = 64  # each round types at least one more node; a chain of more stays open
_MAX_DIM = 2**62


def _dft_rule(node, types, const, opset):
    """DFT with inverse=1 and onesided=1 (IRFFT): ONNX 1.20's inference refuses the pair ("cannot be
    enabled at the same time"); ONNX 1.21 (onnx/onnx#7574) defines it, and torch.onnx exports
    torch.fft.irfft that way: input [..., L, ..., 2] -> output [..., n, ..., 1], n = dft_length,
    else 2 (L - 1); same element type."""
    attrs = {a.name: a.i for a in node.attribute if a.type == onnx.AttributeProto.INT}
    if not (attrs.get("inverse", 0) and attrs.get("onesided", 0)) or not node.input or node.input[0] not in types:
        return None
    t = types[node.input[0]].tensor_type
    if not t.HasField("shape") or t.elem_type == 0:
        return None
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
    r = len(dims)
    if r < 2 or dims[-1] not in (2, None):
        return None
    out = list(dims[:-1]) + [1]
    if opset >= 20:
        axis = -2
        if len(node.input) > 2 and node.input[2]:
            a = const(node.input[2])
            if a is None:  # a runtime axis: the rank and the last dim only
                return t.elem_type, [None] * (r - 1) + [1], "inverse onesided (IRFFT), runtime axis"
            axis = a
    else:
        axis = attrs.get("axis", 1)
    if not -r <= axis < r or axis % r == r - 1:
        return None
    axis %= r
    n = None
    if len(node.input) > 1 and node.input[1]:
        n = const(node.input[1])
        if n is not None and not 1 <= n < _MAX_DIM:
            return None
    elif isinstance(dims[axis], int):
        n = 2 * (dims[axis] - 1)
        if n < 1:
            return None
    out[axis] = n
    return t.elem_type, out, "inverse onesided (IRFFT, ONNX 1.21): a real signal of dft_length points"


_RULES = {("", "DFT"): _dft_rule}


def _scalar_int(model):
    """name -> its value, for scalar (or one-element) int32/int64 constants: initializers and Constant nodes."""
    tensors = {t.name: t for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and n.output:
            for a in n.attribute:
                if a.name == "value" and a.HasField("t"):
                    tensors[n.output[0]] = a.t

    def get(name):
        t = tensors.get(name)
        if t is None or t.data_type not in (onnx.TensorProto.INT32, onnx.TensorProto.INT64):
            return None
        if len(t.dims) > 1 or (t.dims and t.dims[0] != 1) or payload_problem(t):
            return None
        if t.data_location == onnx.TensorProto.EXTERNAL:
            return None
        v = onnx.numpy_helper.to_array(t).reshape(-1)
        return int(v[0]) if v.size == 1 else None

    return get


def _rule_types(model: onnx.ModelProto) -> list:
    """Adds value_info for the untyped outputs of nodes a rule covers; returns [(node, op, why)]."""
    g = model.graph
    opset = {o.domain or "": o.version for o in model.opset_import}
    types = {
        vi.name: vi.type
        for vi in list(g.input) + list(g.value_info) + list(g.output)
        if vi.type.HasField("tensor_type")
    }
    typed = {name for name, ty in types.items() if ty.tensor_type.elem_type != 0 and ty.tensor_type.HasField("shape")}
    typed |= {t.name for t in g.initializer}
    const = None
    added = []
    for node in g.node:
        rule = _RULES.get((node.domain or "", node.op_type))
        if rule is None or not node.output or all(not o or o in typed for o in node.output):
            continue
        if len(node.output) != 1 or not node.output[0]:
            continue
        const = const or _scalar_int(model)
        got = rule(node, types, const, opset.get(node.domain or "", 1))
        if got is None:
            continue
        elem, dims, why = got
        vi = onnx.helper.make_tensor_value_info(node.output[0], elem, dims)
        declared = [v for v in g.output if v.name == node.output[0]]
        if declared:  # a graph output declared without a shape: completed in place
            if declared[0].type.tensor_type.elem_type not in (0, elem):
                continue
            declared[0].type.CopyFrom(vi.type)
        else:
            for v in [v for v in g.value_info if v.name == node.output[0]]:
                g.value_info.remove(v)
            g.value_info.append(vi)
        types[node.output[0]] = vi.type
        typed.add(node.output[0])
        added.append((node.name, node.op_type, why))
    return added


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

"""A node's attributes and operands as the lowerings see them."""
from __future__ import annotations

from onnx import helper, numpy_helper

from ..dtypes import onnx_dtype


def attr(node, name, default):
    """The node's attribute `name` (bytes decoded), else `default`."""
    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def node_operands(info):
    """node inputs -> [("param", k, shape, dtype) | ("const", ndarray, shape, dtype)]."""
    g = info.model.graph
    node = g.node[0]
    inits = {t.name: t for t in g.initializer}
    by_name = {x["name"]: (k, x) for k, x in enumerate(info.inputs)}
    ops = []
    for nm in node.input:
        if nm == "":
            ops.append(("absent", None, None, None))  # an omitted optional input
        elif nm in by_name:
            k, x = by_name[nm]
            ops.append(("param", k, list(x["shape"]), x["dtype"]))
        elif nm in inits:
            arr = numpy_helper.to_array(inits[nm])
            ops.append(("const", arr, [int(s) for s in arr.shape], onnx_dtype(inits[nm].data_type)))
        else:
            return None
    return ops

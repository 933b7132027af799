"""Asks a real TensorRT ONNX parser which nodes it can import.

The whole model is parsed first, rejected nodes cut out one parse at a time (probe_model.py); only
where that cannot go on is each remaining node cut out into a one-node model (inferred input types,
constant inputs kept as initializers) and parsed by a fresh parser.
Uses `tensorrt` when installed, else TensorRT-RTX (`tensorrt_rtx_bindings`). TensorRT-RTX's
parser dlopens the unversioned libtensorrt_rtx.so when a node falls back to the plugin
registry; the Swift tool puts a folder holding that symlink on LD_LIBRARY_PATH.
"""

import onnx
from onnx import helper

from ..planning.shapes import infer_model, load_model
from .probe_model import whole_model


def _parser_module():
    try:  # lazy: which TensorRT parser is installed is a question answered at run time
        import tensorrt as trt  # noqa: F401

        return trt, f"TensorRT {trt.__version__}"
    except Exception:  # noqa: BLE001
        pass
    try:
        import tensorrt_rtx_bindings as trt  # lazy probe: TensorRT-RTX when no TensorRT

        return trt, f"TensorRT-RTX {trt.__version__} (needs the libtensorrt_rtx.so symlink on LD_LIBRARY_PATH)"
    except Exception:  # noqa: BLE001
        return None, None


def _outer_names(graph, defined=frozenset()) -> list:
    """Tensors a subgraph reads from enclosing scopes (If/Loop/Scan bodies, nested ones too)."""
    defined = set(defined) | {v.name for v in graph.input} | {t.name for t in graph.initializer}
    out = []
    for n in graph.node:
        for x in n.input:
            if x and x not in defined and x not in out:
                out.append(x)
        for a in n.attribute:
            for g in [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs):
                out += [x for x in _outer_names(g, defined) if x not in out]
        defined |= {o for o in n.output if o}
    return out


def _one_node_model(model, index, types, constants):
    node = model.graph.node[index]
    inputs, inits = [], []
    # A node with bodies also reads the outer-scope tensors its bodies use: they are inputs too.
    implicit = [
        x
        for a in node.attribute
        for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs))
        for x in _outer_names(g)
    ]
    for name in list(node.input) + implicit:
        if not name or name in {i.name for i in inputs} or name in {t.name for t in inits}:
            continue
        if name in constants:
            t = onnx.TensorProto()
            t.CopyFrom(constants[name])
            t.name = name
            inits.append(t)
        elif name in types:
            inputs.append(types[name])
        else:
            inputs.append(helper.make_empty_tensor_value_info(name))
    outputs = [types.get(o) or helper.make_empty_tensor_value_info(o) for o in node.output if o]
    graph = helper.make_graph([node], f"probe_{index}", inputs, outputs, inits)
    m = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    return m


def _types_and_constants(inferred):
    """Value infos by tensor name (inputs, inferred intermediates, outputs) and constant tensors by
    name (initializers and Constant nodes' `value`), for cutting nodes out into one-node models."""
    g = inferred.graph
    types = {vi.name: vi for vi in list(g.input) + list(g.value_info) + list(g.output)}
    constants = {t.name: t for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            for a in n.attribute:
                if a.name == "value":
                    constants[n.output[0]] = a.t
    return types, constants


def probe(request: dict) -> dict:
    trt, parser_name = _parser_module()
    if trt is None:
        return {"parser": None, "nodes": [], "note": "no TensorRT or TensorRT-RTX Python module is installed"}
    model = load_model(request.get("model_path", ""))
    inferred, _ = infer_model(model)
    types, constants = _types_and_constants(inferred)
    logger = trt.Logger(trt.Logger.INTERNAL_ERROR)
    builder = trt.Builder(logger)
    rejected, complete, parses = whole_model(trt, builder, logger, inferred, types)
    results = []
    for i, node in enumerate(inferred.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        if i in rejected or complete:
            results.append(
                {
                    "index": i,
                    "node": name,
                    "op_type": node.op_type,
                    "imported": i not in rejected,
                    "error": rejected.get(i),
                }
            )
            continue
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            results.append({"index": i, "node": name, "op_type": node.op_type, "imported": True, "error": None})
            continue
        sub = _one_node_model(inferred, i, types, constants)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        ok = parser.parse(sub.SerializeToString())
        parses += 1
        err = None
        if not ok and parser.num_errors > 0:
            e = parser.get_error(0)
            err = e.desc().splitlines()[0] if e.desc() else "parse failed"
        elif not ok:
            err = "parse failed"
        results.append({"index": i, "node": name, "op_type": node.op_type, "imported": bool(ok), "error": err})
        del parser, network
    mode = "whole-model" if complete else ("whole-model+per-node" if rejected else "per-node")
    return {"parser": parser_name, "nodes": results, "note": None, "mode": mode, "parses": parses}

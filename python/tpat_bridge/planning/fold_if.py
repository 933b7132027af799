"""Folds If nodes whose condition is known before run time into the branch they take.

Exporters write a Python `if` on a tensor's shape as an ONNX If (torch-geometric: `if
edge_index.dim() == 0`, i.e. Equal(Size(Shape(x)), 0); torchvision: `if boxes.numel() == 0`).
Where the condition depends only on constants and static shapes, the If always takes the same
branch; TensorRT users fold such graphs before building (`polygraphy surgeon sanitize
--fold-constants`). TPAT does the same, limited to the If nodes, before selection:

  * the condition's cone is evaluated from initializers, Constant nodes, Shape / Size of tensors
    whose inferred shape is static, and any other deterministic default-domain node whose inputs
    are all known (ONNX's reference evaluator, inputs and outputs of at most MAX_ELEMENTS
    elements);
  * the taken branch is inlined at the If's place: its nodes and initializers move to the top
    level, its outputs are renamed to the If's outputs (an Identity where a branch output is an
    outer tensor or repeats), and every branch-local name or node name that is used anywhere else
    in the model gets a fresh one;
  * shape inference runs again and the next If is tried (an inlined branch can type the input of
    the next condition), up to MAX_PASSES times.

Why it matters: ONNX's shape inference gives an If whose branches differ in rank an output of
unknown rank (gat: then Reshape to 1-D, else Identity), and TPAT cannot cut a node with such an
input out of the model; TensorRT builds data-dependent shapes (NonZero plugins, its own
NonMaxSuppression) only in the top-level graph, not inside an If's branch.

An If whose condition depends on run-time data stays. When a branch holds a node whose output
shape depends on data (DATA_DEPENDENT_OPS, at any depth), it is reported in `kept` with what the
condition depends on, so that the user learns before the engine build why TensorRT will stop.

Bridge command: {"command": "fold_ifs", "model_path": M, "out_path": P} -> {"folded": [...],
"kept": [...], "written": bool}; the folded model is written to P only when something folded.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import BridgeError
from .shapes import infer_model, load_model

MAX_PASSES = 32
MAX_ELEMENTS = 1 << 16
# Ops whose output shape depends on input values (TensorRT: data-dependent shapes).
DATA_DEPENDENT_OPS = ("NonZero", "NonMaxSuppression", "Unique", "Compress")
# Never evaluated while folding: random, stateful or with subgraphs of their own.
_NOT_EVALUATED = {
    "If",
    "Loop",
    "Scan",
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
    "Dropout",
}


def _static_shape(vi):
    """The static shape of a value_info, else None."""
    if vi is None or not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in vi.type.tensor_type.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return dims


def _shape_text(vi) -> str:
    if vi is None or not vi.type.tensor_type.HasField("shape"):
        return "unknown rank"
    return (
        "["
        + ", ".join(
            str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in vi.type.tensor_type.shape.dim
        )
        + "]"
    )


class _Evaluator:
    """Values of top-level tensors known before run time (None: depends on data)."""

    def __init__(self, model, inferred):
        g = model.graph
        self.model = model
        self.opsets = list(model.opset_import)
        self.producer = {o: n for n in g.node for o in n.output if o}
        self.inits = {t.name: t for t in g.initializer}
        self.inputs = {vi.name for vi in g.input if vi.name not in self.inits}
        self.types = {
            vi.name: vi
            for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output)
        }
        self.memo: dict = {}
        self.why: dict = {}  # tensor -> why its value is not known

    def value(self, name: str, depth: int = 0):
        if name in self.memo:
            return self.memo[name]
        self.memo[name] = None  # cycles (malformed models) end here
        v = self._value(name, depth)
        if v is not None and v.size > MAX_ELEMENTS:
            self.why[name] = f"'{name}' has {v.size} elements"
            v = None
        self.memo[name] = v
        return v

    def _value(self, name, depth):
        if name in self.inits:
            t = self.inits[name]
            if math.prod(t.dims) > MAX_ELEMENTS or t.data_location == onnx.TensorProto.EXTERNAL:
                self.why[name] = f"initializer '{name}' is large"
                return None
            return numpy_helper.to_array(t)
        if name in self.inputs:
            self.why[name] = f"graph input '{name}'"
            return None
        node = self.producer.get(name)
        if node is None:
            self.why[name] = f"'{name}' has no producer"
            return None
        if node.domain not in ("", "ai.onnx") or node.op_type in _NOT_EVALUATED or depth > 200:
            self.why[name] = f"{node.op_type} '{node.name}'"
            return None
        if node.op_type in ("Shape", "Size"):
            vi = self.types.get(node.input[0])
            shape = _static_shape(vi)
            if shape is None:
                self.why[name] = f"the shape of '{node.input[0]}' ({_shape_text(vi)})"
                return None
            if node.op_type == "Size":
                return np.array(math.prod(shape), dtype=np.int64)
            attrs = {a.name: a.i for a in node.attribute}
            start, end = attrs.get("start", 0), attrs.get("end", len(shape))
            return np.array(shape[slice(start, end if "end" in attrs else None)], dtype=np.int64)
        feeds = {}
        for i in node.input:
            if not i:
                continue
            v = self.value(i, depth + 1)
            if v is None:
                self.why[name] = self.why.get(i, f"'{i}'")
                return None
            feeds[i] = v
        return self._run(node, feeds, name)

    def _run(self, node, feeds, name):
        from onnx.reference import ReferenceEvaluator  # lazy: only when a condition needs an op evaluated

        ins = [
            helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for k, v in feeds.items()
        ]
        outs = [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output if o]
        g = helper.make_graph([node], "fold", ins, outs)
        m = helper.make_model(g, opset_imports=self.opsets)
        m.ir_version = self.model.ir_version
        try:
            results = ReferenceEvaluator(m).run(None, feeds)
        except Exception as e:  # noqa: BLE001 - a node the evaluator cannot run stays unknown
            self.why[name] = f"{node.op_type} '{node.name}' ({type(e).__name__})"
            return None
        for o, r in zip([o for o in node.output if o], results):
            if o != name:
                self.memo[o] = np.asarray(r)
        return np.asarray(results[[o for o in node.output if o].index(name)])


def _graphs(node):
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            yield a.g
        elif a.type == onnx.AttributeProto.GRAPHS:
            yield from a.graphs


def _names(graph, values: set, nodes: set, skip=None):
    """Every value and node name of `graph` and its bodies (the bodies of node `skip` left out)."""
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        values.add(vi.name)
    for t in graph.initializer:
        values.add(t.name)
    for n in graph.node:
        nodes.add(n.name)
        values.update(n.input)
        values.update(n.output)
        if n is not skip:
            for b in _graphs(n):
                _names(b, values, nodes, skip)


def _rename(graph, mapping: dict):
    """Renames value names in `graph` and its bodies (outer-scope references included)."""
    for n in graph.node:
        for k, x in enumerate(n.input):
            if x in mapping:
                n.input[k] = mapping[x]
        for k, x in enumerate(n.output):
            if x in mapping:
                n.output[k] = mapping[x]
        for b in _graphs(n):
            _rename(b, mapping)
    for vi in list(graph.output) + list(graph.value_info):
        if vi.name in mapping:
            vi.name = mapping[vi.name]


def _fresh(base: str, taken: set) -> str:
    k = 1
    while f"{base}__{k}" in taken:
        k += 1
    taken.add(f"{base}__{k}")
    return f"{base}__{k}"


def inline_branch(model, index: int, branch: str) -> None:
    """Replaces top-level node `index` (an If) by the nodes of its `branch` ("then_branch" or
    "else_branch"), in place."""
    g = model.graph
    node = g.node[index]
    body = onnx.GraphProto()
    body.CopyFrom(next(a.g for a in node.attribute if a.name == branch))
    values, nodes = set(), set()
    _names(g, values, nodes, skip=node)
    values.update(node.output)
    # branch-local names: produced inside the body or its initializers
    local = {o for n in body.node for o in n.output if o} | {t.name for t in body.initializer}
    mapping = {}
    renamed_outputs = set()
    for bo, io in zip(body.output, node.output):
        if io and bo.name in local and bo.name not in mapping and bo.name not in {t.name for t in body.initializer}:
            mapping[bo.name] = io
            renamed_outputs.add(io)
    for x in sorted(local - set(mapping)):
        if x in values:
            mapping[x] = _fresh(x, values)
    _rename(body, mapping)
    for t in body.initializer:
        if t.name in mapping:
            t.name = mapping[t.name]
    for n in body.node:
        if n.name in nodes:
            n.name = _fresh(n.name or n.op_type, nodes)
        nodes.add(n.name)
    extra = []
    for bo, io in zip(body.output, node.output):
        if io and io not in renamed_outputs:
            src = mapping.get(bo.name, bo.name)
            extra.append(helper.make_node("Identity", [src], [io], name=_fresh(f"{node.name or 'If'}/output", nodes)))
    new_nodes = list(body.node) + extra
    del g.node[index]
    for k, n in enumerate(new_nodes):
        g.node.insert(index + k, n)
    g.initializer.extend(body.initializer)


def _data_dependent(graph, path: str) -> list:
    out = []
    for n in graph.node:
        if n.domain in ("", "ai.onnx") and n.op_type in DATA_DEPENDENT_OPS:
            out.append({"node": f"{path} > {n.name}", "op": n.op_type})
        for a in n.attribute:
            for k, b in enumerate([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                out += _data_dependent(
                    b, f"{path} > {n.name} > {a.name}" + (f"[{k}]" if a.type == onnx.AttributeProto.GRAPHS else "")
                )
    return out


def fold(model) -> tuple:
    """Folds every If whose condition is known; returns (folded model, folded notes, kept notes)."""
    folded = []
    for _ in range(MAX_PASSES):
        inferred, _warnings = infer_model(model, data_prop=True)
        ev = _Evaluator(model, inferred)
        changed = False
        index = 0
        while index < len(model.graph.node):
            n = model.graph.node[index]
            if n.op_type == "If" and n.domain in ("", "ai.onnx") and n.input and n.input[0]:
                v = ev.value(n.input[0])
                if v is not None and v.size == 1:
                    branch = "then_branch" if bool(v.reshape(-1)[0]) else "else_branch"
                    count = len(next((a.g.node for a in n.attribute if a.name == branch), []))
                    folded.append(
                        {"node": n.name, "branch": branch, "nodes": count, "condition": bool(v.reshape(-1)[0])}
                    )
                    inline_branch(model, index, branch)
                    changed = True
                    break  # types change: infer again
            index += 1
        if not changed:
            break
    kept = []
    inferred, _warnings = infer_model(model, data_prop=True)
    ev = _Evaluator(model, inferred)
    for n in model.graph.node:
        if n.op_type != "If" or n.domain not in ("", "ai.onnx"):
            continue
        dd = _data_dependent_branches(n)
        if n.input and n.input[0]:
            ev.value(n.input[0])
        kept.append(
            {
                "node": n.name,
                "depends_on": ev.why.get(n.input[0] if n.input else "", "its condition"),
                "data_dependent": dd,
            }
        )
    return model, folded, kept


def _data_dependent_branches(node) -> list:
    out = []
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            out += _data_dependent(a.g, f"{node.name} > {a.name}")
    return out


def fold_ifs(request: dict) -> dict:
    path, out_path = request.get("model_path", ""), request.get("out_path")
    model = load_model(path)
    if not any(n.op_type == "If" for n in model.graph.node):
        return {"folded": [], "kept": [], "written": False}
    model, folded, kept = fold(model)
    written = False
    if folded and out_path:
        if model.ByteSize() > 2**31 - 1:
            raise BridgeError("model", "the model with its If nodes folded is over 2 GB")
        onnx.save(model, out_path)
        written = True
    return {"folded": folded, "kept": kept, "written": written}

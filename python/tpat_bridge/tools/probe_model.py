"""Probes a whole model with a real TensorRT ONNX parser in as few parses as it allows.

The parser stops at the first node it cannot import. That node is cut out (its outputs become graph
inputs with their inferred types, its inputs graph outputs) and the rest is parsed again, until a parse
succeeds: one parse per rejected node plus one, each in the node's real context. When a rejected node's
output has no known type (a cut needs it) or the parser's error names no node of the graph, what is
known so far is returned with `complete` False and the caller probes the remaining nodes one by one.
"""

from onnx import helper


def _cut(model, rejected, types):
    """The model without the rejected nodes, or None when an output of one has no known tensor type."""
    g = model.graph
    kept = [i for i in range(len(g.node)) if i not in rejected]
    produced_by_kept = {o for i in kept for o in g.node[i].output if o}
    inits = {t.name for t in g.initializer}
    inputs = list(g.input)
    have = {vi.name for vi in inputs} | inits
    outputs = [o for o in g.output if o.name in produced_by_kept or o.name in have]
    out_names = {o.name for o in outputs}
    for i in sorted(rejected):
        node = g.node[i]
        for o in node.output:
            if not o or o in have:
                continue
            vi = types.get(o)
            if (
                vi is None
                or not vi.type.HasField("tensor_type")
                or not vi.type.tensor_type.elem_type
                or not vi.type.tensor_type.HasField("shape")
            ):
                return None, kept
            inputs.append(vi)
            have.add(o)
        for x in node.input:
            if x and x in produced_by_kept and x not in out_names:
                vi = types.get(x)
                outputs.append(vi if vi is not None else helper.make_empty_tensor_value_info(x))
                out_names.add(x)
    graph = helper.make_graph(
        [g.node[i] for i in kept],
        g.name or "probe",
        inputs,
        outputs,
        list(g.initializer),
        value_info=[v for v in g.value_info],
    )
    m = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    m.functions.extend(model.functions)
    return m, kept


def whole_model(trt, builder, logger, model, types, max_parses=64):
    """Returns (rejected {index: error}, complete, parses)."""
    rejected, parses = {}, 0
    g = model.graph
    while parses < max_parses:
        sub, kept = _cut(model, rejected, types)
        if sub is None:
            return rejected, False, parses
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        ok = parser.parse(sub.SerializeToString())
        parses += 1
        if ok:
            return rejected, True, parses
        new = False
        for k in range(parser.num_errors):
            e = parser.get_error(k)
            idx = e.node()
            if not 0 <= idx < len(kept):
                continue
            orig = kept[idx]
            if g.node[orig].op_type != e.node_operator():
                continue  # an error inside a subgraph, or an index in another order
            desc = e.desc().splitlines()[0].strip() if e.desc() else ""
            if desc in ("", "false"):
                desc = f"{e.node_operator()} not imported (the parser gives no reason)"
            if orig not in rejected:
                rejected[orig] = desc
                new = True
        del parser, network
        if not new:
            return rejected, False, parses
    return rejected, False, parses

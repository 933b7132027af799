/// Verdicts for the nodes inside If/Loop/Scan bodies (issue 13 item 3, first step: inspection
/// only). Each node is named by its path ("if_node > then_branch > nms"); tensors of enclosing
/// graphs (outer scope) are found by name in the inferred types, their initializers and Constant
/// nodes count as constants. Selection, extraction and rewriting do not reach into bodies yet.
public enum Subgraphs {
    public static func verdicts(model: ONNXModel, rules: ParserRules, tensors: [String: TensorInfo]) -> [NodeVerdict] {
        var out: [NodeVerdict] = []
        walk(model.graph, prefix: "", outer: [], outerConstants: [], rules: rules, tensors: tensors, into: &out)
        return out
    }

    static func walk(_ graph: Onnx_GraphProto, prefix: String, outer: [Onnx_TensorProto], outerConstants: [Onnx_NodeProto],
                     rules: ParserRules, tensors: [String: TensorInfo], into out: inout [NodeVerdict]) {
        let scopeInits = outer + graph.initializer
        let scopeConstants = outerConstants + graph.node.filter { $0.isDefaultDomain && $0.opType == "Constant" }
        for (i, node) in graph.node.enumerated() {
            let name = node.name.isEmpty ? "\(node.opType)_\(i)" : node.name
            for attr in node.attribute {
                let bodies = attr.type == .graph ? [attr.g] : (attr.type == .graphs ? attr.graphs : [])
                for (k, body) in bodies.enumerated() {
                    let path = "\(prefix)\(name) > \(attr.name)\(bodies.count > 1 ? "[\(k)]" : "")"
                    // The body with the enclosing scopes' constants in front, so restrictions on
                    // constant inputs see them; only the body's own nodes are judged.
                    var scoped = body
                    let own = Set(body.initializer.map(\.name))
                    scoped.initializer += scopeInits.filter { !own.contains($0.name) }
                    scoped.node = scopeConstants + body.node
                    let index = GraphIndex(scoped)
                    let evaluator = VerdictEvaluator(rules: rules)
                    for j in body.node.indices {
                        var v = evaluator.evaluate(node: scopeConstants.count + j, index: index, tensors: tensors)
                        let inner = body.node[j].name.isEmpty ? "\(body.node[j].opType)_\(j)" : body.node[j].name
                        v.index = j
                        v.name = "\(path) > \(inner)"
                        out.append(v)
                    }
                    walk(body, prefix: "\(path) > ", outer: scopeInits, outerConstants: scopeConstants, rules: rules, tensors: tensors, into: &out)
                }
            }
        }
    }
}

/// The If/Loop/Scan bodies of a model (issue 13 item 3): inspection, blockers, selection,
/// extraction and rewriting reach into them through this one walker. A body node is named by its
/// path ("if_node > then_branch > scatter"; several bodies in one attribute get "[k]"); inner names
/// are unique per body (GraphIndex.uniqueNames). Tensors of enclosing graphs (outer scope) are
/// found by name in the inferred types; their initializers and Constant nodes count as constants.
public enum Subgraphs {
    /// One body graph and how it sits in the model.
    public struct Body: Sendable {
        /// The name or path of the node that holds the body ("if_node", "loop > body > inner_if").
        public var owner: String
        /// "owner > attribute" (with "[k]" when the attribute holds several graphs).
        public var path: String
        public var graph: Onnx_GraphProto
        /// The body with the enclosing scopes' initializers and Constant nodes in front, so
        /// constants and types of outer-scope tensors resolve; body node j is node `offset + j`.
        public var scoped: GraphIndex
        public var offset: Int
        /// Unique inner names of the body's nodes.
        public var names: [String]

        /// "path > inner" for body node j.
        public func nodePath(_ j: Int) -> String { "\(path) > \(names[j])" }
    }

    /// "owner > attribute[k]", the one spelling of a body's path.
    public static func bodyPath(owner: String, attribute: String, k: Int, count: Int) -> String {
        "\(owner) > \(attribute)\(count > 1 ? "[\(k)]" : "")"
    }

    /// The graphs an attribute holds.
    static func graphs(_ attr: Onnx_AttributeProto) -> [Onnx_GraphProto] {
        attr.type == .graph ? [attr.g] : (attr.type == .graphs ? Array(attr.graphs) : [])
    }

    /// Every body of the model, outer before inner.
    public static func bodies(_ model: ONNXModel) -> [Body] {
        var out: [Body] = []
        walk(model.graph, names: GraphIndex(model.graph).names, prefix: "", outer: [], outerConstants: [], into: &out)
        return out
    }

    static func walk(
        _ graph: Onnx_GraphProto, names: [String], prefix: String, outer: [Onnx_TensorProto], outerConstants: [Onnx_NodeProto],
        into out: inout [Body]
    ) {
        let scopeInits = outer + graph.initializer
        let scopeConstants = outerConstants + graph.node.filter { $0.isDefaultDomain && $0.opType == "Constant" }
        for (i, node) in graph.node.enumerated() {
            for attr in node.attribute {
                let bodies = graphs(attr)
                for (k, body) in bodies.enumerated() {
                    let owner = prefix + names[i]
                    var scoped = body
                    let own = Set(body.initializer.map(\.name))
                    scoped.initializer += scopeInits.filter { !own.contains($0.name) }
                    scoped.node = scopeConstants + body.node
                    let b = Body(
                        owner: owner, path: bodyPath(owner: owner, attribute: attr.name, k: k, count: bodies.count), graph: body,
                        scoped: GraphIndex(scoped), offset: scopeConstants.count, names: GraphIndex.uniqueNames(body.node))
                    out.append(b)
                    walk(body, names: b.names, prefix: "\(b.path) > ", outer: scopeInits, outerConstants: scopeConstants, into: &out)
                }
            }
        }
    }

    /// Verdicts for every body node, named by path; `index` is the node's index in its body.
    public static func verdicts(model: ONNXModel, rules: ParserRules, tensors: [String: TensorInfo]) -> [NodeVerdict] {
        verdicts(bodies: bodies(model), rules: rules, tensors: tensors)
    }

    public static func verdicts(bodies: [Body], rules: ParserRules, tensors: [String: TensorInfo]) -> [NodeVerdict] {
        let evaluator = VerdictEvaluator(rules: rules)
        return bodies.flatMap { b in
            b.graph.node.indices.map { j in
                var v = evaluator.evaluate(node: b.offset + j, index: b.scoped, tensors: tensors)
                v.index = j
                v.name = b.nodePath(j)
                return v
            }
        }
    }

    /// Blockers of body nodes (PluginBlockers per body), keyed by path. A body output counts as
    /// feeding a shape input when its owner does (`ownerBlockers`: top-level names -> blocker).
    public static func blockers(bodies: [Body], ownerBlockers: [String: NodeVerdict.Blocker], nonTensorValues: Set<String>) -> [String:
        NodeVerdict.Blocker]
    {
        var result: [String: NodeVerdict.Blocker] = [:]
        for b in bodies {
            let owner = result[b.owner] ?? ownerBlockers[b.owner]
            let shapeOutputs = owner?.code == "feeds_shape_input" ? Set(b.graph.output.map(\.name)) : []
            let found = PluginBlockers.find(index: b.scoped, nonTensorValues: nonTensorValues, shapeOutputs: shapeOutputs, owner: b.owner)
            for (i, blocker) in found where i >= b.offset { result[b.nodePath(i - b.offset)] = blocker }
        }
        return result
    }

    /// The one-node model of body node `j` of `body`: outer-scope tensors it reads become graph
    /// inputs (or constants, when they are), typed from `tensors`.
    public static func extract(_ j: Int, of body: Body, model: ONNXModel, tensors: [String: TensorInfo], demoteFloat64: Bool)
        throws(TPATError) -> ExtractedNode
    {
        var e = try NodeExtractor.extract(
            nodeAt: body.offset + j, index: body.scoped, model: model, tensors: tensors, demoteFloat64: demoteFloat64)
        e.sourceName = body.nodePath(j)
        return e
    }
}

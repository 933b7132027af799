/// Lookup tables over one graph: who produces and who consumes each tensor, initializers,
/// value infos and Constant nodes. Built once per analysis.
public struct GraphIndex: Sendable {
    public let graph: Onnx_GraphProto
    /// Tensor name -> index of the node that produces it.
    public let producer: [String: Int]
    /// Tensor name -> indices of the nodes that read it.
    public let consumers: [String: [Int]]
    public let initializers: [String: Onnx_TensorProto]
    /// Declared types of graph inputs, outputs and value_info entries.
    public let declared: [String: TensorInfo]
    public let graphInputs: Set<String>
    public let graphOutputs: Set<String>

    public init(_ graph: Onnx_GraphProto) {
        self.graph = graph
        var producer: [String: Int] = [:]
        var consumers: [String: [Int]] = [:]
        for (i, node) in graph.node.enumerated() {
            for o in node.output where !o.isEmpty { producer[o] = i }
            for inp in node.input where !inp.isEmpty { consumers[inp, default: []].append(i) }
        }
        self.producer = producer
        self.consumers = consumers
        self.initializers = Dictionary(graph.initializer.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var declared: [String: TensorInfo] = [:]
        for vi in graph.input + graph.valueInfo + graph.output {
            if let info = TensorInfo(vi) { declared[vi.name] = info }
        }
        self.declared = declared
        self.graphInputs = Set(graph.input.map(\.name)).subtracting(initializers.keys)
        self.graphOutputs = Set(graph.output.map(\.name))
        self.names = Self.uniqueNames(graph.node)
    }

    /// Why the graph cannot be rewritten safely, or nil: a tensor produced twice (by two nodes, or
    /// by a node and an initializer or graph input), a node input nothing defines, a graph output
    /// nothing produces, a cycle. Top-level graph only (subgraphs may read outer names).
    public static func structuralProblem(_ graph: Onnx_GraphProto) -> String? {
        var defined = Set(graph.input.map(\.name)).union(graph.initializer.map(\.name))
        defined.remove("")
        var producer: [String: Int] = [:]
        let names = uniqueNames(graph.node)
        for (i, node) in graph.node.enumerated() {
            for o in node.output where !o.isEmpty {
                if let j = producer[o] { return "tensor '\(o)' is produced by two nodes ('\(names[j])' and '\(names[i])')" }
                if defined.contains(o) { return "tensor '\(o)' is produced by node '\(names[i])' and is also a graph input or initializer" }
                producer[o] = i
            }
        }
        for (i, node) in graph.node.enumerated() {
            for t in node.input where !t.isEmpty && producer[t] == nil && !defined.contains(t) {
                return "input '\(t)' of node '\(names[i])' is not produced by any node, initializer or graph input"
            }
        }
        for o in graph.output where producer[o.name] == nil && !defined.contains(o.name) {
            return "graph output '\(o.name)' is not produced by any node"
        }
        // Kahn's algorithm: every node must become ready once its producers have run.
        var pending = graph.node.map { n in Set(n.input.compactMap { producer[$0] }).count }
        var readers: [Int: [Int]] = [:]
        for (i, n) in graph.node.enumerated() {
            for p in Set(n.input.compactMap({ producer[$0] })) { readers[p, default: []].append(i) }
        }
        var ready = pending.indices.filter { pending[$0] == 0 }
        var done = 0
        while let i = ready.popLast() {
            done += 1
            for r in readers[i] ?? [] {
                pending[r] -= 1
                if pending[r] == 0 { ready.append(r) }
            }
        }
        if done < graph.node.count, let stuck = pending.indices.first(where: { pending[$0] > 0 }) {
            return "the graph has a cycle (through node '\(names[stuck])')"
        }
        return nil
    }

    /// Per node, a unique non-empty name (see `uniqueNames`).
    public let names: [String]

    /// A stable, unique, non-empty name for node `i`: its own when no other node has it, else
    /// "<op_type>_<i>" (unnamed) or "<name>_<i>" (a name several nodes share), with "_<k>"
    /// added while that is taken. Reports, `--nodes` and the rewritten model use these names.
    public func nodeName(_ i: Int) -> String { names[i] }

    static func uniqueNames(_ nodes: [Onnx_NodeProto]) -> [String] {
        var count: [String: Int] = [:]
        for n in nodes where !n.name.isEmpty { count[n.name, default: 0] += 1 }
        var taken = Set(count.filter { $0.value == 1 }.map(\.key))
        return nodes.enumerated().map { i, n in
            if !n.name.isEmpty, count[n.name] == 1 { return n.name }
            let base = "\(n.name.isEmpty ? n.opType : n.name)_\(i)"
            var name = base, k = 0
            while taken.contains(name) { k += 1; name = "\(base)_\(k)" }
            taken.insert(name)
            return name
        }
    }

    /// The constant value feeding `tensor`: an initializer or the `value` of a Constant node.
    public func constant(_ tensor: String) -> Onnx_TensorProto? {
        if let t = initializers[tensor] { return t }
        guard let p = producer[tensor] else { return nil }
        let node = graph.node[p]
        guard node.opType == "Constant", node.domain.isEmpty || node.domain == "ai.onnx" else { return nil }
        return node.attribute.first { $0.name == "value" && $0.hasT }?.t
    }

    /// True when the tensor is an initializer or a Constant node's output.
    public func isConstant(_ tensor: String) -> Bool { constant(tensor) != nil }
}

extension Onnx_NodeProto {
    /// The attribute with that name, if present.
    public func attribute(_ name: String) -> Onnx_AttributeProto? { attribute.first { $0.name == name } }

    /// True for the default ONNX domain.
    public var isDefaultDomain: Bool { domain.isEmpty || domain == "ai.onnx" }
}

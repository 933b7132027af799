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
    }

    /// A stable, non-empty name for node `i` (its own, else "<op_type>_<i>").
    public func nodeName(_ i: Int) -> String {
        let n = graph.node[i]
        return n.name.isEmpty ? "\(n.opType)_\(i)" : n.name
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

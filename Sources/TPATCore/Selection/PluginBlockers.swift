/// Nodes that cannot become a TensorRT plugin whatever the parser says, and what to do instead.
///
/// - A plugin's outputs are execution tensors: TensorRT cannot use them as shape tensors. A node
///   whose outputs reach a shape input (Reshape's shape, Range, Expand, Tile's repeats, Slice's
///   bounds, ConstantOfShape, Resize's sizes/scales, Pad's pads, TopK's K, OneHot's depth, ...),
///   directly or through shape arithmetic, is blocked (`feeds_shape_input`).
/// - TensorRT has no sequence, optional or map tensors: a node consuming or producing one is
///   blocked (`non_tensor`).
/// - A plugin is one node whose inputs have fixed ranks: a node to convert that reads a tensor of
///   unknown rank (typically after an If whose branches give different ranks) is blocked
///   (`unknown_rank`, `unknownRank`); ONNX has no symbolic rank and the rank one run of ONNX Runtime
///   would see holds only for the branch that run took.
public enum PluginBlockers {
    /// Input positions that TensorRT reads as shape tensors, per default-domain op.
    public static let shapeInputs: [String: [Int]] = [
        "Reshape": [1], "Expand": [1], "Tile": [1], "Range": [0, 1, 2], "ConstantOfShape": [0],
        "Slice": [1, 2, 3, 4], "Resize": [1, 2, 3], "Upsample": [1], "Pad": [1, 3], "TopK": [1], "OneHot": [1],
        "Squeeze": [1], "Unsqueeze": [1], "Split": [1], "CumSum": [1], "EyeLike": [], "RandomNormal": [],
        "ReduceSum": [1], "ReduceMean": [1], "ReduceMax": [1], "ReduceMin": [1], "ReduceProd": [1],
        "ReduceL1": [1], "ReduceL2": [1], "ReduceLogSum": [1], "ReduceLogSumExp": [1], "ReduceSumSquare": [1],
        "NonMaxSuppression": [2], "Trilu": [1], "CenterCropPad": [1], "Col2Im": [1, 2], "STFT": [1, 3],
        "BlackmanWindow": [0], "HannWindow": [0], "HammingWindow": [0], "DFT": [1, 2],
    ]
    /// Ops whose output depends only on the input's shape, not its values: shape-ness stops there.
    static let shapeOnly: Set<String> = ["Shape", "Size"]
    /// Ops that take or give sequences, optionals or maps.
    public static let nonTensorOps: Set<String> = [
        "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert", "SequenceLength",
        "SequenceMap", "SplitToSequence", "ConcatFromSequence", "Optional", "OptionalGetElement", "OptionalHasElement",
    ]

    public static let shapeSuggestion =
        "fold the shape computation into constants before TPAT (polygraphy surgeon sanitize --fold-constants, "
        + "with fixed input shapes if needed: --override-input-shapes), or keep this node in TensorRT and convert what feeds it instead"
    public static let nonTensorSuggestion =
        "constant-fold the model first (polygraphy surgeon sanitize --fold-constants or onnxsim), "
        + "which removes sequence ops over constants; a SplitToSequence read by SequenceAt at constant positions is a Split"

    public static let rankSuggestion =
        "if the If's condition is fixed for your deployment, fold it (onnxsim, or polygraphy surgeon sanitize "
        + "--fold-constants with fixed input shapes: --override-input-shapes), else make both branches return the same rank "
        + "(Unsqueeze/Reshape in one branch) before TPAT"

    /// Per output of an If: the rank each branch gives (its declared output type, else the inferred one).
    static func branchRanks(_ node: Onnx_NodeProto, tensors: [String: TensorInfo]) -> [(output: String, then: Int?, else: Int?)] {
        guard node.isDefaultDomain, node.opType == "If", let t = node.attribute("then_branch"), let e = node.attribute("else_branch"),
            t.type == .graph, e.type == .graph
        else { return [] }
        func rank(_ vi: Onnx_ValueInfoProto) -> Int? { TensorInfo(vi)?.rank ?? tensors[vi.name]?.rank }
        return node.output.indices.compactMap { k in
            guard t.g.output.indices.contains(k), e.g.output.indices.contains(k) else { return nil }
            return (node.output[k], rank(t.g.output[k]), rank(e.g.output[k]))
        }
    }

    /// "output 'y': then_branch rank 3, else_branch rank 2" for the first output whose branches differ in rank.
    public static func branchRankMismatch(_ node: Onnx_NodeProto, tensors: [String: TensorInfo]) -> String? {
        guard let d = branchRanks(node, tensors: tensors).first(where: { $0.then != nil && $0.else != nil && $0.then != $0.else }),
            let a = d.then, let b = d.else
        else { return nil }
        return "output '\(d.output)': then_branch gives rank \(a), else_branch rank \(b)"
    }

    /// The `unknown_rank` blocker of node `i` (a node TPAT would convert), else nil: an If whose
    /// branches differ in rank, or a node reading a non-constant tensor of unknown rank, traced back
    /// through its producers to such an If where there is one.
    public static func unknownRank(node i: Int, index: GraphIndex, tensors: [String: TensorInfo]) -> NodeVerdict.Blocker? {
        let node = index.graph.node[i]
        let why = "a plugin is one node with inputs of fixed rank, and ONNX has no symbolic rank"
        if let d = branchRankMismatch(node, tensors: tensors) {
            return .init(
                code: "unknown_rank",
                reason:
                    "its branches give outputs of different ranks (\(d)): a plugin's outputs need a fixed rank, and ONNX has no symbolic rank",
                suggestion: rankSuggestion)
        }
        func rank(_ t: String) -> Int? { (tensors[t] ?? index.declared[t])?.rank }
        guard let t = node.input.first(where: { !$0.isEmpty && !index.isConstant($0) && rank($0) == nil }) else { return nil }
        // Walk back through producers whose inputs have unknown rank too, to the If that lost it.
        var seen: Set<String> = [], work = [t], origin: String?
        while let x = work.popLast(), origin == nil, seen.count < 10_000 {
            guard seen.insert(x).inserted, let p = index.producer[x] else { continue }
            let n = index.graph.node[p]
            if let d = branchRankMismatch(n, tensors: tensors) { origin = "If '\(index.nodeName(p))' (\(d))"; break }
            work += n.input.filter { !$0.isEmpty && !index.isConstant($0) && rank($0) == nil }
        }
        let from = origin.map { ": it comes from \($0)" } ?? ": shape inference could not determine it"
        return .init(
            code: "unknown_rank", reason: "the rank of input '\(t)' is unknown\(from); \(why)",
            suggestion: origin == nil
                ? "give the model's inputs fixed ranks and run shape inference (onnxsim or polygraphy surgeon sanitize), or keep this node in TensorRT"
                : rankSuggestion)
    }

    /// Node index -> blocker, for every blocked node of the graph. For a body (Subgraphs),
    /// `shapeOutputs` are its outputs that reach a shape input through `owner` (the If/Loop/Scan).
    public static func find(index: GraphIndex, nonTensorValues: Set<String>, shapeOutputs: Set<String> = [], owner: String = "") -> [Int:
        NodeVerdict.Blocker]
    {
        let graph = index.graph
        var result: [Int: NodeVerdict.Blocker] = [:]
        // Shape tensors, walked back from every shape input through the producers.
        var shapeTensors: [String: String] = [:]  // tensor -> the shape input it reaches ("Reshape 'r' shape")
        var work: [String] = []
        for (i, node) in graph.node.enumerated() where node.isDefaultDomain {
            for k in shapeInputs[node.opType] ?? [] where node.input.indices.contains(k) && !node.input[k].isEmpty {
                let t = node.input[k]
                if shapeTensors[t] == nil, !index.isConstant(t) {
                    shapeTensors[t] = "input \(k) of \(node.opType) '\(index.nodeName(i))'"
                    work.append(t)
                }
            }
        }
        for t in shapeOutputs.sorted() where shapeTensors[t] == nil && !index.isConstant(t) {
            shapeTensors[t] = "a shape input through '\(owner)'"
            work.append(t)
        }
        while let t = work.popLast() {
            guard let p = index.producer[t] else { continue }
            let node = graph.node[p]
            if node.isDefaultDomain && shapeOnly.contains(node.opType) { continue }
            if result[p] == nil {
                result[p] = .init(
                    code: "feeds_shape_input",
                    reason:
                        "its output '\(t)' feeds \(shapeTensors[t] ?? "a shape input") (TensorRT cannot take a plugin's output as a shape tensor)",
                    suggestion: shapeSuggestion)
            }
            for x in node.input where !x.isEmpty && shapeTensors[x] == nil && !index.isConstant(x) {
                shapeTensors[x] = shapeTensors[t]
                work.append(x)
            }
        }
        // Sequence, optional and map values.
        for (i, node) in graph.node.enumerated() {
            let values = (node.input + node.output).filter { !$0.isEmpty && nonTensorValues.contains($0) }
            if (node.isDefaultDomain && nonTensorOps.contains(node.opType)) || !values.isEmpty {
                let what =
                    values.isEmpty
                    ? "\(node.opType) works on sequences or optionals"
                    : "takes or gives non-tensor values (\(values.prefix(3).joined(separator: ", ")))"
                result[i] = .init(
                    code: "non_tensor", reason: "\(what): TensorRT has no sequence, optional or map tensors",
                    suggestion: nonTensorSuggestion)
            }
        }
        return result
    }
}

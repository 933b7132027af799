import Foundation

/// Stage 1 of the pipeline: ONNX model -> verdicts and plugin candidates.
public struct Inspector: Sendable {
    public let bridge: PythonBridge
    public let rules: ParserRules

    public init(bridge: PythonBridge, rules: ParserRules) {
        self.bridge = bridge
        self.rules = rules
    }

    /// Shape inference through the bridge, keyed by tensor name.
    public func tensorInfo(modelPath: String) async throws(TPATError) -> (tensors: [String: TensorInfo], warnings: [String]) {
        let result = try await shapes(modelPath: modelPath)
        return (Self.tensors(result), result.warnings)
    }

    /// The bridge's whole shape answer: tensors, warnings, the ONNX checker's verdict, non-tensor values.
    public func shapes(modelPath: String) async throws(TPATError) -> BridgeMessages.ShapeResult {
        try await bridge.call(BridgeMessages.ModelRequest.inferShapes(modelPath), as: BridgeMessages.ShapeResult.self)
    }

    static func tensors(_ result: BridgeMessages.ShapeResult) -> [String: TensorInfo] {
        Dictionary(result.tensors.map { ($0.name, $0.info) }, uniquingKeysWith: { a, _ in a })
    }

    public func inspect(modelPath: String, probe: Bool) async throws(TPATError) -> InspectReport {
        try await inspect(model: try ONNXModel.load(path: modelPath), modelPath: modelPath, probe: probe)
    }

    /// The same for a model already loaded from `modelPath` (the bridge reads the file itself).
    /// With `probe`, the installed parser answers too and, when it did, its rejections are the
    /// plugin candidates; else the table's. Blocked nodes (PluginBlockers) are never candidates.
    public func inspect(model: ONNXModel, modelPath: String, probe: Bool) async throws(TPATError) -> InspectReport {
        let shapeResult = try await shapes(modelPath: modelPath)
        let tensors = Self.tensors(shapeResult)
        var nodes = VerdictEvaluator(rules: rules).evaluate(model: model, tensors: tensors)
        let index = GraphIndex(model.graph)
        let nonTensor = Set((shapeResult.nonTensor ?? []).map(\.name))
        var ownerBlockers: [String: NodeVerdict.Blocker] = [:]
        for (i, b) in PluginBlockers.find(index: index, nonTensorValues: nonTensor) {
            nodes[i].blocker = b
            ownerBlockers[nodes[i].name] = b
        }
        let bodies = Subgraphs.bodies(model)
        var inner = Subgraphs.verdicts(bodies: bodies, rules: rules, tensors: tensors)
        let innerBlockers = Subgraphs.blockers(bodies: bodies, ownerBlockers: ownerBlockers, nonTensorValues: nonTensor)
        for k in inner.indices { inner[k].blocker = innerBlockers[inner[k].name] }
        for r in SequenceRewriter.plan(model, tensors: tensors) {
            for name in [r.node] + r.reads {
                guard let i = nodes.firstIndex(where: { $0.name == name }) else { continue }
                nodes[i].blocker?.suggestion =
                    "`tpat generate` rewrites this SplitToSequence and its SequenceAt reads into a Split (\(r.parts) parts), which TensorRT imports"
            }
        }
        var report = InspectReport(
            model: modelPath,
            opsets: Dictionary(model.proto.opsetImport.map { ($0.domain, $0.version) }, uniquingKeysWith: max),
            rulesSource: rules.sourceDescription,
            histogram: Dictionary(grouping: model.graph.node, by: \.opType).mapValues(\.count),
            nodes: nodes, pluginCandidates: [], probe: nil, warnings: shapeResult.warnings)
        report.trt = rules.flavour?.rawValue
        report.subgraphNodes = inner
        if let c = shapeResult.checker {
            report.checker = c
            report.warnings.insert("the ONNX checker rejects this model (\(c)); types and verdicts may be incomplete", at: 0)
        }
        if let v = model.opsetVersion(domain: ""), v > Int64(rules.maxOpset) {
            report.warnings.append("default-domain opset \(v) is above \(rules.maxOpset), the newest the rules cover")
        }
        if probe {
            do {
                let answer = try await bridge.call(BridgeMessages.ModelRequest.probe(modelPath), as: BridgeMessages.ProbeResult.self)
                var disagreements: [String] = []
                for p in answer.nodes where nodes.indices.contains(p.index) {
                    nodes[p.index].probe = .init(imported: p.imported, error: p.error)
                    if p.imported == (nodes[p.index].verdict == .unsupported) { disagreements.append(nodes[p.index].name) }
                }
                report.nodes = nodes
                report.probe = .init(
                    parser: answer.parser, note: answer.note, disagreements: disagreements, mode: answer.mode, parses: answer.parses)
            } catch {
                report.probe = .init(parser: nil, note: "probe failed: \(error.message)", disagreements: [])
            }
        }
        // The parser decides when it is the flavour the rules describe (`--trt` left at its default).
        let parserFlavour = report.probe?.parser.map(ParserRules.Flavour.ofParser)
        let byParser = parserFlavour != nil && (rules.flavour == nil || parserFlavour == rules.flavour)
        if let parserFlavour, !byParser {
            report.warnings.append(
                "the installed parser is TensorRT \(parserFlavour.rawValue), the rules are --trt \(rules.flavour?.rawValue ?? "?"): candidates come from the rules, the parser's answers are shown beside"
            )
        }
        report.selectedBy = byParser ? "parser" : "table"
        // The parser's answer for an If/Loop/Scan may come from a node in its bodies: the bodies'
        // nodes are judged on their own (by the table: the probe does not map errors inside bodies).
        let owners = Set(bodies.map(\.owner))
        let needsPlugin = { (n: NodeVerdict) -> Bool in
            if byParser, owners.contains(n.name), n.verdict != .unsupported { return false }
            return byParser ? n.probe.map { !$0.imported } ?? (n.verdict == .unsupported) : n.verdict == .unsupported
        }
        // A node to convert that reads a tensor of unknown rank cannot be extracted (`unknown_rank`).
        for k in report.nodes.indices where report.nodes[k].blocker == nil && needsPlugin(report.nodes[k]) {
            report.nodes[k].blocker = PluginBlockers.unknownRank(node: report.nodes[k].index, index: index, tensors: tensors)
        }
        let bodyOf = Dictionary(
            bodies.flatMap { b in b.graph.node.indices.map { (b.nodePath($0), (b, $0)) } }, uniquingKeysWith: { a, _ in a })
        for k in report.subgraphNodes.indices where report.subgraphNodes[k].blocker == nil && needsPlugin(report.subgraphNodes[k]) {
            guard let (b, j) = bodyOf[report.subgraphNodes[k].name] else { continue }
            report.subgraphNodes[k].blocker = PluginBlockers.unknownRank(node: b.offset + j, index: b.scoped, tensors: tensors)
        }
        let all = report.nodes + report.subgraphNodes
        report.pluginCandidates = all.filter { needsPlugin($0) && $0.blocker == nil }.map(\.name)
        report.blocked = all.filter { needsPlugin($0) && $0.blocker != nil }.map(\.name)
        return report
    }
}

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
        for (i, b) in PluginBlockers.find(index: index, nonTensorValues: Set((shapeResult.nonTensor ?? []).map(\.name))) {
            nodes[i].blocker = b
        }
        for r in SequenceRewriter.plan(model, tensors: tensors) {
            for name in [r.node] + r.reads {
                guard let i = nodes.firstIndex(where: { $0.name == name }) else { continue }
                nodes[i].blocker?.suggestion = "`tpat generate` rewrites this SplitToSequence and its SequenceAt reads into a Split (\(r.parts) parts), which TensorRT imports"
            }
        }
        var report = InspectReport(
            model: modelPath,
            opsets: Dictionary(model.proto.opsetImport.map { ($0.domain, $0.version) }, uniquingKeysWith: max),
            rulesSource: rules.sourceDescription,
            histogram: Dictionary(grouping: model.graph.node, by: \.opType).mapValues(\.count),
            nodes: nodes, pluginCandidates: [], probe: nil, warnings: shapeResult.warnings)
        report.trt = rules.flavour?.rawValue
        report.subgraphNodes = Subgraphs.verdicts(model: model, rules: rules, tensors: tensors)
        if !report.subgraphNodes.isEmpty {
            let n = report.subgraphNodes.filter { $0.verdict == .unsupported }.count
            report.warnings.append("\(report.subgraphNodes.count) node(s) inside If/Loop/Scan bodies inspected (\(n) unsupported); generate does not convert nodes inside bodies yet")
        }
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
                report.probe = .init(parser: answer.parser, note: answer.note, disagreements: disagreements, mode: answer.mode, parses: answer.parses)
            } catch {
                report.probe = .init(parser: nil, note: "probe failed: \(error.message)", disagreements: [])
            }
        }
        // The parser decides when it is the flavour the rules describe (`--trt` left at its default).
        let parserFlavour = report.probe?.parser.map(ParserRules.Flavour.ofParser)
        let byParser = parserFlavour != nil && (rules.flavour == nil || parserFlavour == rules.flavour)
        if let parserFlavour, !byParser {
            report.warnings.append("the installed parser is TensorRT \(parserFlavour.rawValue), the rules are --trt \(rules.flavour?.rawValue ?? "?"): candidates come from the rules, the parser's answers are shown beside")
        }
        report.selectedBy = byParser ? "parser" : "table"
        let needsPlugin = { (n: NodeVerdict) -> Bool in
            byParser ? n.probe.map { !$0.imported } ?? (n.verdict == .unsupported) : n.verdict == .unsupported
        }
        report.pluginCandidates = report.nodes.filter { needsPlugin($0) && $0.blocker == nil }.map(\.name)
        report.blocked = report.nodes.filter { needsPlugin($0) && $0.blocker != nil }.map(\.name)
        return report
    }
}

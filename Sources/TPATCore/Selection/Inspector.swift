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
        let result = try await bridge.call(BridgeMessages.ModelRequest.inferShapes(modelPath), as: BridgeMessages.ShapeResult.self)
        let tensors = Dictionary(result.tensors.map { ($0.name, $0.info) }, uniquingKeysWith: { a, _ in a })
        return (tensors, result.warnings)
    }

    public func inspect(modelPath: String, probe: Bool) async throws(TPATError) -> InspectReport {
        try await inspect(model: try ONNXModel.load(path: modelPath), modelPath: modelPath, probe: probe)
    }

    /// The same for a model already loaded from `modelPath` (the bridge reads the file itself).
    public func inspect(model: ONNXModel, modelPath: String, probe: Bool) async throws(TPATError) -> InspectReport {
        let (tensors, warnings) = try await tensorInfo(modelPath: modelPath)
        var nodes = VerdictEvaluator(rules: rules).evaluate(model: model, tensors: tensors)
        var report = InspectReport(
            model: modelPath,
            opsets: Dictionary(model.proto.opsetImport.map { ($0.domain, $0.version) }, uniquingKeysWith: max),
            rulesSource: rules.sourceDescription,
            histogram: Dictionary(grouping: model.graph.node, by: \.opType).mapValues(\.count),
            nodes: nodes, pluginCandidates: [], probe: nil, warnings: warnings)
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
                report.probe = .init(parser: answer.parser, note: answer.note, disagreements: disagreements)
            } catch {
                report.probe = .init(parser: nil, note: "probe failed: \(error.message)", disagreements: [])
            }
        }
        report.pluginCandidates = report.nodes.filter { $0.verdict == .unsupported }.map(\.name)
        return report
    }
}

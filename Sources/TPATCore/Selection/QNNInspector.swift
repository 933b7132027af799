import Foundation

/// The vendor library whose verdicts `tpat inspect` reports and `tpat generate --auto` follows.
public enum VendorBackend: String, CaseIterable, Sendable, Codable {
    /// TensorRT's ONNX parser, from the rule table (`Inspector`).
    case tensorrt
    /// Qualcomm QNN's HTP backend, asked through ONNX Runtime's QNN execution provider (`QNNInspector`).
    case qnn
}

/// Stage 1 for Qualcomm QNN: which nodes QNN's HTP backend takes, asked of the real backend
/// (onnxruntime-qnn's libQnnHtp.so through ONNX Runtime's QNN execution provider, on the CPU; the
/// bridge's `qnn_probe`). The report has the TensorRT report's schema: `supported` = taken,
/// `unsupported` = refused, `rule` one of `qnn.op`, `qnn.backend`, `qnn.ep`, `qnn.session`,
/// `qnn.crash`, `reason` the provider's or QNN's own message.
public struct QNNInspector: Sendable {
    public let bridge: PythonBridge

    public init(bridge: PythonBridge) { self.bridge = bridge }

    /// Why each rule refuses a node, for the reason text when the backend said nothing more.
    public static let rules: [String: String] = [
        "qnn.op": "the QNN execution provider has no builder for this op type",
        "qnn.backend": "QNN's HTP backend rejected the op config (backendValidateOpConfig)",
        "qnn.ep": "the QNN execution provider refused the node",
        "qnn.session": "ONNX Runtime could not create a QNN session around the node",
        "qnn.crash": "the QNN backend ended the probing process on this node",
    ]

    public func inspect(model: ONNXModel, modelPath: String) async throws(TPATError) -> InspectReport {
        let shapes = try await bridge.call(BridgeMessages.ModelRequest.inferShapes(modelPath), as: BridgeMessages.ShapeResult.self)
        let tensors = Dictionary(shapes.tensors.map { ($0.name, $0.info) }, uniquingKeysWith: { a, _ in a })
        let answer = try await bridge.call(BridgeMessages.ModelRequest.qnnProbe(modelPath), as: BridgeMessages.QNNProbeResult.self)
        guard let backend = answer.backend else {
            throw TPATError(.bridge, "cannot ask QNN: \(answer.note ?? "no backend answered")")
        }
        let index = GraphIndex(model.graph)
        let answers = Dictionary(answer.nodes.map { ($0.index, $0) }, uniquingKeysWith: { a, _ in a })
        let sig = { (n: String) -> String in
            n.isEmpty ? "-" : ((tensors[n] ?? index.declared[n] ?? index.initializers[n].map(TensorInfo.init))?.signature ?? "?")
        }
        var nodes: [NodeVerdict] = []
        for (i, node) in model.graph.node.enumerated() {
            var v = NodeVerdict(
                index: i, name: index.nodeName(i), opType: node.opType, domain: node.domain,
                verdict: .supported, rule: nil, reason: "taken by QNN's HTP backend",
                inputs: node.input.map(sig), outputs: node.output.map(sig), unchecked: [], probe: nil)
            if let a = answers[i] {
                if !a.taken {
                    let rule = a.rule ?? "qnn.ep"
                    v.verdict = .unsupported
                    v.rule = rule
                    v.reason = a.error ?? Self.rules[rule] ?? "refused"
                }
            } else {
                v.verdict = .unsupported
                v.rule = "qnn.session"
                v.reason = "the QNN probe gave no answer for this node"
            }
            nodes.append(v)
        }
        var report = InspectReport(
            model: modelPath,
            opsets: Dictionary(model.proto.opsetImport.map { ($0.domain, $0.version) }, uniquingKeysWith: max),
            rulesSource: backend,
            histogram: Dictionary(grouping: model.graph.node, by: \.opType).mapValues(\.count),
            nodes: nodes, pluginCandidates: [], probe: nil, warnings: shapes.warnings, target: VendorBackend.qnn.rawValue)
        if let note = answer.note { report.warnings.append(note) }
        report.pluginCandidates = nodes.filter { $0.verdict == .unsupported }.map(\.name)
        return report
    }
}

extension BridgeMessages.ModelRequest {
    public static func qnnProbe(_ path: String) -> Self { .init(command: "qnn_probe", modelPath: path, dataProp: nil) }
}

extension BridgeMessages {
    /// One node's answer from QNN (schemas/bridge.schema.json, qnnProbeResult).
    public struct QNNProbeNode: Codable, Sendable, Equatable {
        public var index: Int
        public var node: String
        public var opType: String
        public var taken: Bool
        public var rule: String?
        public var error: String?
        enum CodingKeys: String, CodingKey { case index, node, opType = "op_type", taken, rule, error }
    }

    public struct QNNProbeResult: Codable, Sendable {
        /// The backend that answered, nil when onnxruntime-qnn is missing or could not run.
        public var backend: String?
        public var nodes: [QNNProbeNode]
        public var note: String?
    }
}

import Foundation
import Testing

@testable import TPATCore

/// `QNNInspector`: verdicts of QNN's real HTP backend (onnxruntime-qnn's libQnnHtp.so through ONNX
/// Runtime's QNN execution provider, on this CPU), in the TensorRT report's schema.
@Suite struct QNNInspectorTests {
    func validate<T: Encodable>(_ value: T, schema: String, definition: String?) async throws -> BridgeMessages.ValidateResult {
        let request = BridgeMessages.ValidateRequest(schema: schema, definition: definition, instance: try JSONValue.from(value))
        return try await Repo.bridge().call(request, as: BridgeMessages.ValidateResult.self)
    }

    @Test func qnnRequestMatchesTheBridgeSchema() async throws {
        let r = try await validate(BridgeMessages.ModelRequest.qnnProbe("/m.onnx"), schema: "bridge.schema.json", definition: "request")
        #expect(r.valid, "\(r.errors)")
    }

    @Test func backendTakesAndRefusesNodeByNode() async throws {
        let path = Repo.fixture("plugins_static.onnx").path
        let report = try await QNNInspector(bridge: try Repo.bridge()).inspect(model: try ONNXModel.load(path: path), modelPath: path)
        #expect(report.target == "qnn")
        #expect(report.rulesSource.contains("libQnnHtp.so") && report.rulesSource.contains("onnxruntime-qnn 2.7.0"))
        let byName = Dictionary(uniqueKeysWithValues: report.nodes.map { ($0.name, $0) })
        let grid = try #require(byName["gridsample_5d"])
        #expect(grid.verdict == .unsupported && grid.rule == "qnn.backend")
        #expect(grid.reason.contains("of type `GridSample` with error code 3110"))
        #expect(byName["maxunpool"]?.rule == "qnn.op")
        // TensorRT's table rejects these two; QNN's backend takes them.
        #expect(byName["topk_4096"]?.verdict == .supported && byName["resize_cubic"]?.verdict == .supported)
        #expect(report.pluginCandidates == ["gridsample_5d", "maxunpool"])
        #expect(grid.inputs == ["float32[1,4,6,8,8]", "float32[1,3,4,4,3]"] && grid.outputs == ["float32[1,4,3,4,4]"])
        let schema = try await validate(report, schema: "inspect-report.schema.json", definition: nil)
        #expect(schema.valid, "\(schema.errors)")
        #expect(report.text().contains("Asked: QNN HTP backend"))
        #expect(report.text().contains("Summary: 4 taken by QNN's HTP backend, 2 refused"))
    }
}

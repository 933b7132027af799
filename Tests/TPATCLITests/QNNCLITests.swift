import Foundation
import Testing

@testable import TPATCore

/// `--backend qnn` through the CLI: inspect asks QNN's HTP backend, generate --auto follows it.
@Suite(.serialized) struct QNNCLITests {
    let cli = CLITests()

    @Test func inspectJSONHasQNNVerdicts() throws {
        let r = try cli.run(["inspect", "--backend", "qnn", "--json", cli.fixture("verdicts_unsupported_ops.onnx")])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(obj["target"] as? String == "qnn")
        let nodes = try #require(obj["nodes"] as? [[String: Any]])
        #expect(nodes.count == 8)
        #expect(
            nodes.allSatisfy { ($0["rule"] as? String) == "qnn.op" && ($0["reason"] as? String ?? "").contains("not supported by QNN EP") })
    }

    @Test func probeIsForTensorRTOnly() throws {
        let r = try cli.run(["inspect", "--backend", "qnn", "--probe", cli.fixture("verdicts_basic.onnx")])
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("error: ") && r.stderr.split(separator: "\n").count == 1)
    }

    @Test func generateAutoSelectsWhatQNNRefuses() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tpat-qnn-\(UUID().uuidString)/out")
        let r = try cli.run([
            "generate", cli.fixture("plugins_static.onnx"), "--auto", "--backend", "qnn", "-o", out.path, "--no-reference",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("Selected by QNN HTP backend"))
        let report = try JSONDecoder().decode(
            PipelineTests.GenerateReport.self, from: Data(contentsOf: out.appendingPathComponent("tpat-generate.json")))
        // TensorRT's --auto takes 4 nodes of this model (TopK K=4096 and cubic Resize too); QNN refuses 2.
        #expect(Set(report.plugins.flatMap(\.nodes)) == ["gridsample_5d", "maxunpool"])
    }
}

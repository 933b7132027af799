import Foundation
import Testing

/// `--trt`, `--auto` with additions and exclusions, blocked nodes, checker warnings, through the CLI.
@Suite(.serialized) struct SelectionCLITests {
    let cli = CLITests()

    @Test func trtPicksTheRuleSet() throws {
        let r = try cli.run(["inspect", "--json", "--trt", "11", cli.fixture("select_trt11.onnx")])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(obj["trt"] as? String == "11")
        let nodes = try #require(obj["nodes"] as? [[String: Any]])
        #expect(nodes.first { $0["name"] as? String == "rms" }?["verdict"] as? String == "supported")
        let bad = try cli.run(["inspect", "--trt", "12", cli.fixture("select_trt11.onnx")])
        #expect(bad.status == 2)
        #expect(bad.stderr.hasPrefix("error: unknown --trt"))
    }

    @Test func checkerRejectionIsAWarningLine() throws {
        let r = try cli.run(["inspect", cli.fixture("select_checker.onnx")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("warning: the ONNX checker rejects this model (Unrecognized attribute: not_an_attribute"))
        #expect(r.stdout.contains("col2im"))
    }

    @Test func aBlockedNodeIsNeverGenerated() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tpat-sel-\(UUID().uuidString)")
        let out = dir.appendingPathComponent("out")
        let r = try cli.run(["generate", cli.fixture("select_shape_feed.onnx"), "--nodes", "band_shape", "-o", out.path])
        // Nothing converts: exit 3 (docs/generate-report.md), the report names the blocker, no project.
        #expect(r.status == 3, "\(r.stderr)")
        #expect(r.stderr.contains("not converted (feeds_shape_input): cannot become a plugin"))
        #expect(r.stderr.contains("--fold-constants"))
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("plugins").path))
    }

    @Test func autoConvertsWhatTheParserRejectsAndReportsBlockedNodes() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tpat-sel-\(UUID().uuidString)/out")
        let r = try cli.run(["generate", cli.fixture("select_shape_feed.onnx"), "--auto", "--no-reference", "-o", out.path])
        #expect(r.status == 3, "\(r.stdout)\(r.stderr)")  // the blocked node is a partial conversion
        struct Report: Decodable {
            struct Plugin: Decodable { var nodes: [String] }
            struct Failure: Decodable { var node: String; var code: String; var reason: String }
            var plugins: [Plugin]; var failures: [Failure]; var selectedBy: String?; var disagreements: [String]?
        }
        let report = try JSONDecoder().decode(Report.self, from: Data(contentsOf: out.appendingPathComponent("tpat-generate.json")))
        try #require(report.selectedBy == "parser", "needs TensorRT-RTX (in the venv)")
        #expect(report.plugins.flatMap(\.nodes) == ["bxor_data"])
        #expect(report.failures.map(\.node) == ["band_shape"])
        #expect(report.failures.first?.code == "feeds_shape_input")
        // The table rejects the INT64 CumSum, the parser imports it: listed, not converted.
        #expect(report.disagreements == ["cumsum_ends"])
        #expect(r.stderr.contains("parser: rejects") || r.stdout.contains("parser: rejects"))
    }
}

extension SelectionCLITests {
    /// Runs a Python snippet with the project's venv (onnxruntime), returns its stdout.
    func python(_ code: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ProcessInfo.processInfo.environment["TPAT_PYTHON"] ?? CLITests.root.appendingPathComponent(".venv/bin/python").path)
        p.arguments = ["-c", code] + args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test(arguments: [("select_sequence", ["Split", "Relu"]), ("select_sequence_keepdims", ["Split", "Squeeze", "Squeeze", "Squeeze"])])
    func splitToSequenceBecomesASplit(model: String, ops: [String]) throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tpat-seq-\(UUID().uuidString)/out")
        let r = try cli.run(["generate", cli.fixture("\(model).onnx"), "--auto", "--no-reference", "-o", out.path])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("Rewritten: split_"))
        let rewritten = out.appendingPathComponent("\(model).onnx").path
        // Same outputs as the original under ONNX Runtime, checker-clean, sequence ops gone.
        let check = """
        import sys, onnx, numpy as np, onnxruntime as ort
        a, b = onnx.load(sys.argv[1]), onnx.load(sys.argv[2])
        onnx.checker.check_model(b, full_check=True)
        x = np.random.default_rng(0).random([d.dim_value for d in a.graph.input[0].type.tensor_type.shape.dim]).astype(np.float32)
        run = lambda m: ort.InferenceSession(m.SerializeToString()).run(None, {a.graph.input[0].name: x})
        same = all(np.array_equal(p, q) for p, q in zip(run(a), run(b)))
        print(" ".join(n.op_type for n in b.graph.node), same, [o.name for o in a.graph.output] == [o.name for o in b.graph.output])
        """
        #expect(try python(check, [cli.fixture("\(model).onnx"), rewritten]) == "\(ops.joined(separator: " ")) True True")
    }
}

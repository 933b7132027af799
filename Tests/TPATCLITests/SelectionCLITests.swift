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

    @Test func nodesAfterAnIfWithBranchesOfDifferentRanksAreReportedNotFatal() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tpat-sel-\(UUID().uuidString)/out")
        let r = try cli.run(["generate", cli.fixture("select_if_ranks.onnx"), "--auto", "--trt", "11", "--no-reference", "-o", out.path])
        #expect(r.status == 3, "\(r.stdout)\(r.stderr)")  // partial: the other BitwiseNot became a plugin
        struct Report: Decodable {
            struct Plugin: Decodable { var nodes: [String] }
            struct Failure: Decodable { var node: String; var code: String; var reason: String }
            var plugins: [Plugin]; var failures: [Failure]
        }
        let report = try JSONDecoder().decode(Report.self, from: Data(contentsOf: out.appendingPathComponent("tpat-generate.json")))
        #expect(report.plugins.flatMap(\.nodes) == ["bnot_codes"])
        #expect(report.failures.map(\.node) == ["if_ranks", "bnot_after_if"])
        #expect(report.failures.allSatisfy { $0.code == "unknown_rank" })
        #expect(r.stderr.contains("not converted (unknown_rank): cannot become a plugin: the rank of input 'picked64' is unknown"))
    }
}

extension SelectionCLITests {
    /// Runs a Python snippet with the project's venv (onnxruntime), returns its stdout.
    func python(_ code: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(
            fileURLWithPath: ProcessInfo.processInfo.environment["TPAT_PYTHON"]
                ?? CLITests.root.appendingPathComponent(".venv/bin/python").path)
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

extension SelectionCLITests {
    /// Nodes inside If and Loop bodies, reading outer-scope tensors, become plugins in their body;
    /// the node after the If (typed from the If's inferred output) too.
    @Test func bodyNodesBecomePluginsInTheirBodies() throws {
        let model = cli.fixture("select_body_convert.onnx")
        let i = try cli.run(["inspect", "--trt", "10", model])
        #expect(i.status == 0, "\(i.stderr)")
        #expect(
            i.stdout.contains("  if_node > then_branch > scatter_add (ScatterND float32[8,4], int64[2,1], float32[2,4] -> float32[8,4])"))
        #expect(i.stdout.contains("  loop > body > topk_big (TopK"))
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tpat-body-\(UUID().uuidString)/out")
        let r = try cli.run(["generate", model, "--auto", "--trt", "10", "-o", out.path])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        struct Report: Decodable {
            struct Plugin: Decodable { var name: String; var nodes: [String]; var referenceCases: Int }
            struct Failure: Decodable { var node: String; var reason: String }
            var plugins: [Plugin]; var failures: [Failure]; var rewrittenModel: String
        }
        let report = try JSONDecoder().decode(Report.self, from: Data(contentsOf: out.appendingPathComponent("tpat-generate.json")))
        #expect(report.failures.isEmpty, "\(report.failures.map(\.reason))")
        #expect(Set(report.plugins.flatMap(\.nodes)) == ["scatter_after", "if_node > then_branch > scatter_add", "loop > body > topk_big"])
        #expect(report.plugins.allSatisfy { $0.referenceCases > 0 })
        let plugin = { (node: String) in report.plugins.first { $0.nodes.contains(node) }?.name ?? "?" }
        // The rewritten model: checker-clean, plugin nodes in place of the body nodes, reading the
        // outer-scope tensors by name; each body node's one-node model computes what the body does
        // under ONNX Runtime (the original model run with the same values).
        let check = """
            import sys, json, onnx, numpy as np, onnxruntime as ort
            orig, new, plugins = onnx.load(sys.argv[1]), onnx.load(sys.argv[2]), sys.argv[3]
            onnx.checker.check_model(new)
            names = json.loads(sys.argv[4])
            attr = lambda n, a: next(x for x in n.attribute if x.name == a)
            top = {n.name: n for n in new.graph.node}
            then_n = attr(top["if_node"], "then_branch").g.node
            body_n = attr(top["loop"], "body").g.node
            shape = [(then_n[0].op_type, list(then_n[0].input), then_n[0].domain), (body_n[0].op_type, list(body_n[0].input)),
                     (top["scatter_after"].op_type, list(top["scatter_after"].input)), [n.op_type for n in attr(top["if_node"], "else_branch").g.node]]
            rng = np.random.default_rng(1)
            feeds = {"flag": np.array(True), "data": rng.random((8, 4), np.float32), "upd": rng.random((2, 4), np.float32),
                     "scores": rng.random(4100, np.float32)}
            z, loop_vals = ort.InferenceSession(orig.SerializeToString()).run(["z", "loop_vals"], feeds)
            def one(name, inputs):
                m = onnx.load(f"{plugins}/{name}/{name}.onnx")
                return ort.InferenceSession(m.SerializeToString()).run(None, {f"in{k}": v for k, v in enumerate(inputs)})[0]
            y = feeds["data"].copy(); y[[1, 5]] += feeds["upd"]
            ok = [np.array_equal(one(names["loop"], [feeds["scores"]]), loop_vals[0]),
                  np.allclose(one(names["scatter"], [feeds["data"], feeds["upd"]]), y),
                  np.allclose(one(names["after"], [y, feeds["upd"]]), z)]
            print(json.dumps(shape), *ok)
            """
        let names =
            "{\"loop\": \"\(plugin("loop > body > topk_big"))\", \"scatter\": \"\(plugin("if_node > then_branch > scatter_add"))\", \"after\": \"\(plugin("scatter_after"))\"}"
        let answer = try python(check, [model, report.rewrittenModel, out.appendingPathComponent("plugins").path, names])
        let expected =
            "[[\"\(plugin("if_node > then_branch > scatter_add"))\", [\"data\", \"upd\"], \"tpat\"], [\"\(plugin("loop > body > topk_big"))\", [\"scores\"]], "
            + "[\"\(plugin("scatter_after"))\", [\"y\", \"upd\"]], [\"Concat\"]] True True True"
        #expect(answer == expected)
    }
}

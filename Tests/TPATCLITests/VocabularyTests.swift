import Foundation
import Testing

@testable import TPATCore

/// One CLI vocabulary (issue 10): GPU architectures written 90 or sm_90 everywhere, -v/-q on every
/// command, progress lines during generate, reason codes in the CLI and tpat-generate.json (checked
/// against its schema), documented exit codes, nothing to convert as a success, and trtexec's
/// engine options built with TensorRT-RTX on the CPU.
@Suite(.serialized) struct VocabularyTests {
    let cli = CLITests()
    static let commands = ["inspect", "plan", "generate", "build", "engine", "verify", "bench", "tune", "demo"]

    func temp() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tpat-vocab-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    func validate(_ file: URL) async throws -> BridgeMessages.ValidateResult {
        let instance = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: file))
        return try await PythonBridge.locate().call(
            BridgeMessages.ValidateRequest(schema: "generate-report.schema.json", definition: nil, instance: instance),
            as: BridgeMessages.ValidateResult.self)
    }

    // MARK: GPU architectures

    @Test func architectureSpellings() throws {
        #expect(try GPUArchitecture(parsing: "90").value == "90")
        #expect(try GPUArchitecture(parsing: "sm_90").value == "90")
        #expect(try GPUArchitecture(parsing: "SM90").sm == "sm_90")
        #expect(try GPUArchitecture(parsing: "sm_90a").value == "90a")
        #expect(try GPUArchitecture.list("80;86;89;90").map(\.value) == ["80", "86", "89", "90"])
        #expect(try GPUArchitecture.list("sm_80, sm_90,90").map(\.value) == ["80", "90"])
        for bad in ["", "sm_", "9", "sm_xx", "90b", "compute_90", "1000", ";"] {
            #expect(throws: TPATError.self, "\(bad)") { _ = try GPUArchitecture.list(bad) }
        }
        #expect(throws: TPATError.self) { _ = try GPUArchitecture.one("80;90", for: "generate") }
        #expect(try Planner.target(GPUArchitecture(parsing: "89")) == "sm_89")
        #expect(try Planner.target(GPUArchitecture(parsing: "90a")) == "sm_90a")  // Hopper-only kernels (wgmma)
        #expect(throws: TPATError.self) { _ = try Planner.target(GPUArchitecture(parsing: "89a")) }
        #expect(throws: TPATError.self) { _ = try Planner.target(GPUArchitecture(parsing: "120")) }
    }

    /// Every command that takes an architecture refuses a bad one the same way: exit 2, one line.
    @Test(arguments: [
        ["plan", "M", "--node", "x"], ["generate", "M", "--auto", "-o", "/tmp/tpat-never"], ["build", "/tmp"],
        ["engine", "M"], ["demo"],
    ])
    func badArchitectureIsAUsageError(args: [String]) throws {
        let model = cli.fixture("plugins_static.onnx")
        let r = try cli.run(args.map { $0 == "M" ? model : $0 } + ["--arch", "sm_9x"])
        #expect(r.status == 2, "\(args[0]): \(r.stdout)")
        #expect(r.stderr == "error: \"sm_9x\" is not a GPU architecture (write it as 90 or sm_90)\n", "\(args[0])")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/tpat-never"))
    }

    @Test func planTakesBothSpellings() throws {
        let a = try cli.run(["plan", cli.fixture("verdicts_unsupported_ops.onnx"), "--node", "bitshift", "--arch", "89"])
        let b = try cli.run(["plan", cli.fixture("verdicts_unsupported_ops.onnx"), "--node", "bitshift", "--arch", "sm_89", "-q"])
        #expect(a.status == 0, "\(a.stderr)")
        #expect(b.status == 0, "\(b.stderr)")
        #expect(a.stdout == b.stdout)
        #expect(a.stdout.contains("sm_89") && !a.stdout.contains("sm_90"))
        #expect(a.stderr.contains("planned bitshift"))
        #expect(b.stderr.isEmpty, "quiet: \(b.stderr)")
        let list = try cli.run(["plan", cli.fixture("verdicts_unsupported_ops.onnx"), "--node", "bitshift", "--arch", "80;90"])
        #expect(list.status == 2)
        #expect(list.stderr.contains("one architecture"))
    }

    // MARK: -v/-q, usage errors

    @Test(arguments: Self.commands)
    func everyCommandTakesVerboseAndQuiet(command: String) throws {
        let help = try cli.run([command, "--help"])
        #expect(help.status == 0)
        for flag in ["-v, --verbose", "-q, --quiet"] { #expect(help.stdout.contains(flag), "\(command): \(flag)") }
        // Arguments that parse, so that the only fault is asking for both.
        let model = cli.fixture("plugins_static.onnx")
        let args: [String: [String]] = [
            "inspect": [model], "plan": [model, "--node", "x"], "generate": [model, "--auto", "-o", "/tmp/tpat-never"],
            "engine": [model], "demo": [],
        ]
        let both = try cli.run([command] + (args[command] ?? ["/tmp"]) + ["-v", "-q"])
        #expect(both.status == 2, "\(command): \(both.stderr)")
        #expect(both.stderr.hasPrefix("error: choose one of --verbose and --quiet"), "\(command): \(both.stderr)")
    }

    @Test func exitCodesAreDocumentedInHelpAndUsageErrorsExitTwo() throws {
        let help = try cli.run(["--help"])
        #expect(help.status == 0)
        for line in [
            "Exit codes:", "0  done", "1  a check or benchmark failed", "2  bad input or usage",
            "3  generate left some selected nodes unconverted",
        ] {
            #expect(help.stdout.contains(line), "\(line)")
        }
        #expect(try cli.run(["generate", "--help"]).stdout.contains("Exit codes:"))
        let unknown = try cli.run(["generate", cli.fixture("plugins_static.onnx"), "--auto", "--no-such-flag"])
        #expect(unknown.status == 2)
        #expect(unknown.stderr.hasPrefix("error: "))
        let missing = try cli.run(["plan", cli.fixture("plugins_static.onnx")])
        #expect(missing.status == 2)
        let noCommand = try cli.run(["frobnicate"])
        #expect(noCommand.status == 2)
    }

    /// Bench's rows decide its exit code: a mismatch or an error is a failed benchmark (exit 1).
    @Test func benchRowsThatDidNotPass() throws {
        let json =
            #"{"report": "r.md", "results": [{"plugin": "A", "status": "ok"}, {"plugin": "B", "status": "mismatch"}, {"plugin": "C", "status": "skipped"}, {"plugin": "D", "status": "error", "error": "x"}, {"plugin": null, "status": "not_planned", "error": "not planned: requires a NonZero lowering"}]}"#
        let r = try JSONDecoder().decode(Benchmark.Result.self, from: Data(json.utf8))
        #expect(r.failed.map(\.plugin) == ["B", "D"])
        let old = try JSONDecoder().decode(Benchmark.Result.self, from: Data(#"{"report": "r.md"}"#.utf8))
        #expect(old.failed.isEmpty)
    }

    /// `tpat bench --suite DIR` on a folder that does not exist, or with nothing to bench: one line, exit 2.
    @Test func benchSuiteFolderMustExist() throws {
        let r = try cli.run(["bench", "--suite", "/no/such/suite-folder"])
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("error: ") && r.stderr.contains("no suite folder"))
        #expect(r.stderr.split(whereSeparator: \.isNewline).count == 1)
        let none = try cli.run(["bench"])
        #expect(none.status == 2 && none.stderr.contains("--suite DIR"))
    }

    // MARK: generate: progress, reason codes, schema, partial and nothing to convert

    /// Det (TVM's frontend lacks it, no TPAT lowering) is left with its code; the others convert (Unique
    /// too: a size-tensor output; Col2Im: TPAT's lowering): a partial conversion, exit 3, outputs
    /// written and schema-valid.
    @Test func partialConversionShowsReasonCodesAndExitsThree() async throws {
        let out = try temp().appendingPathComponent("out")
        let r = try cli.run([
            "generate", cli.fixture("verdicts_unsupported_ops.onnx"), "--auto", "--arch", "sm_90", "-o", out.path, "--no-reference",
        ])
        #expect(r.status == 3, "\(r.stderr)")
        #expect(r.stdout.contains("\"det\" (Det): [frontend_import_failed]"), "\(r.stdout)")
        #expect(!r.stdout.contains("\"unique\" (Unique): ["), "\(r.stdout)")
        #expect(r.stderr.contains("selected node(s) not converted"))
        let file = out.appendingPathComponent("tpat-generate.json")
        let report = try JSONDecoder().decode(Generator.Report.self, from: Data(contentsOf: file))
        #expect(report.outcome == .partial)
        #expect(report.failures.first { $0.node == "det" }?.code == "frontend_import_failed")
        #expect(report.plugins.contains { $0.opType == "Unique" }, "\(report.plugins.map(\.opType))")
        #expect(report.plugins.contains { $0.opType == "Col2Im" }, "\(report.plugins.map(\.opType))")
        let v = try await validate(file)
        #expect(v.valid, "\(v.errors)")
        // Progress: one line per node planned and per plugin written, unless --quiet.
        let groups = r.stderr.split(separator: "\n").filter {
            $0.hasPrefix("[") && $0.contains("] node ") && $0.contains(": planning for sm_90")
        }
        #expect(groups.count == report.plugins.count + Set(report.failures.map(\.node)).count - 0, "\(r.stderr)")
        for p in report.plugins { #expect(r.stderr.contains("] plugin \(p.name) (\(p.opType)): sources for"), "\(p.name)") }
        for f in report.failures {
            #expect(r.stderr.contains("\(f.node.debugDescription) (\(f.opType)): not converted [\(f.code)]"), "\(f.node)")
        }
    }

    @Test func quietAndVerboseGenerate() throws {
        let dir = try temp()
        let q = try cli.run([
            "generate", cli.fixture("verdicts_unsupported_ops.onnx"), "--nodes", "bitshift", "-o", dir.appendingPathComponent("q").path,
            "--no-reference", "-q",
        ])
        #expect(q.status == 0, "\(q.stderr)")
        #expect(q.stderr.isEmpty, "\(q.stderr)")
        #expect(q.stdout.contains("Plugins (1)"))
        let v = try cli.run([
            "generate", cli.fixture("verdicts_unsupported_ops.onnx"), "--nodes", "bitshift", "-o", dir.appendingPathComponent("v").path,
            "--no-reference", "--verbose",
        ])
        #expect(v.status == 0, "\(v.stderr)")
        #expect(v.stderr.contains("[1/1] node \"bitshift\" (BitShift): planning for sm_90"))
        #expect(v.stderr.contains("debug: "))
        #expect(v.stdout == q.stdout.replacingOccurrences(of: "/q", with: "/v"))
    }

    /// --auto on a model TensorRT imports whole: "Nothing to convert", exit 0, OUT holds the model
    /// unchanged and tpat-generate.json with no plugins; no plugins/ folder.
    @Test func nothingToConvertIsASuccess() async throws {
        let out = try temp().appendingPathComponent("out")
        let fixture = cli.fixture("external_data.onnx")
        let r = try cli.run(["generate", fixture, "--auto", "-o", out.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("Nothing to convert"))
        #expect(r.stderr.contains("nothing to convert"))
        // The external data goes to a file whose name TPAT chooses (issue 11), beside the marker of a TPAT output.
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: out.path).sorted() == [
                ".tpat-output", "external_data.onnx", "external_data.onnx.data", "tpat-generate.json",
            ])
        let file = out.appendingPathComponent("tpat-generate.json")
        let report = try JSONDecoder().decode(Generator.Report.self, from: Data(contentsOf: file))
        #expect(report.outcome == .nothingToConvert)
        #expect(report.plugins.isEmpty && report.failures.isEmpty)
        let v = try await validate(file)
        #expect(v.valid, "\(v.errors)")
        let original = try ONNXModel.load(path: fixture), written = try ONNXModel.load(path: report.rewrittenModel)
        #expect(written.graph.node == original.graph.node)
        #expect(written.graph.initializer == original.graph.initializer)
        // The rest of the pipeline goes on: nothing to build, an engine without plugins.
        let b = try cli.run(["build", out.path])
        #expect(b.status == 0, "\(b.stderr)")
        #expect(b.stdout.hasPrefix("Nothing to build"))
        let e = try cli.run(["engine", report.rewrittenModel, "--arch", "89", "-q"])
        #expect(e.status == 0, "\(e.stdout)\(e.stderr)")
        #expect(e.stdout.contains("plugin layers in it: none"))
        // --nodes / --ops that select nothing stay usage errors.
        let none = try cli.run(["generate", fixture, "--ops", "TopK", "-o", out.path + "2"])
        #expect(none.status == 2)
    }

    @Test func schemaRejectsWhatItForbids() async throws {
        let dir = try temp()
        let bad = dir.appendingPathComponent("bad.json")
        try Data(
            #"{"outcome": "converted", "model": "m", "rewrittenModel": "o", "target": "sm_90", "tvmVersion": "x", "plugins": [], "failures": [], "casts": []}"#
                .utf8
        ).write(to: bad)
        #expect(try await validate(bad).valid == false)  // converted needs a plugin
        let noCode = dir.appendingPathComponent("nocode.json")
        try Data(
            #"{"outcome": "none", "model": "m", "rewrittenModel": "o", "target": "sm_90", "tvmVersion": "x", "plugins": [], "failures": [{"node": "n", "opType": "T", "reason": "r"}], "casts": []}"#
                .utf8
        ).write(to: noCode)
        #expect(try await validate(noCode).valid == false)
    }

    /// A check that fails exits 1: here, without a GPU, the built check program cannot run its
    /// kernels; on a GPU machine the same plugin passes and verify exits 0.
    @Test func verifyExitsOneWhenACheckFails() throws {
        let out = try temp().appendingPathComponent("out")
        let g = try cli.run(["generate", cli.fixture("verdicts_unsupported_ops.onnx"), "--nodes", "bitshift", "-o", out.path, "-q"])
        #expect(g.status == 0, "\(g.stderr)")
        let b = try cli.run(["build", out.path, "--arch", "sm_90", "-q"])
        #expect(b.status == 0, "\(b.stdout)\(b.stderr)")
        let gpu = FileManager.default.fileExists(atPath: "/dev/nvidia0")
        let v = try cli.run(["verify", out.path])
        #expect(v.status == (gpu ? 0 : 1), "\(v.stdout)\(v.stderr)")
        if !gpu {
            #expect(v.stdout.contains("FAIL"))
            #expect(v.stderr == "error: verification failed\n")
        }
    }

    // MARK: engine options in trtexec's words

    @Test func shapeProfilesParse() throws {
        let p = try ShapeProfile.parse(min: ["x:1x16,a:b:2"], opt: ["x:4x16,a:b:2", "x:32x16"], max: ["x:8x16"])
        #expect(p.count == 2)
        #expect(p[0].shapes["x"] == .init(min: [1, 16], opt: [4, 16], max: [8, 16]))
        #expect(p[0].shapes["a:b"] == .init(min: [2], opt: [2], max: [2]))
        #expect(p[1].shapes["x"] == .init(min: [32, 16], opt: [32, 16], max: [32, 16]))
        for (mn, op, mx) in [
            (["x:1x16"], [String](), [String]()), (["x:8x16"], ["x:4x16"], []), (["x:1"], ["x:1x2"], []), (["x16"], ["x:16"], []),
            (["x:1xq"], ["x:1x1"], []),
        ] {
            #expect(throws: TPATError.self) { _ = try ShapeProfile.parse(min: mn, opt: op, max: mx) }
        }
    }

    /// Two profiles, --save-engine, a timing cache read back on the second build, two compute
    /// capabilities: built by TensorRT-RTX on the CPU.
    @Test func engineTakesTrtexecOptions() throws {
        let dir = try temp()
        for f in ["external_data.onnx", "external_data.bin"] {
            try FileManager.default.copyItem(atPath: cli.fixture(f), toPath: dir.appendingPathComponent(f).path)
        }
        let model = dir.appendingPathComponent("external_data.onnx").path
        let engine = dir.appendingPathComponent("sub/model.plan"), cache = dir.appendingPathComponent("timing.cache")
        let args = [
            "engine", model, "--arch", "sm_86;89", "--min-shapes", "x:1x16", "--opt-shapes", "x:4x16", "--max-shapes", "x:8x16",
            "--minShapes", "x:16x16", "--optShapes", "x:32x16", "--maxShapes", "x:64x16",
            "--save-engine", engine.path, "--timing-cache", cache.path,
        ]
        let a = try cli.run(args)
        #expect(a.status == 0, "\(a.stdout)\(a.stderr)")
        #expect(a.stdout.contains("for sm 86;89"))
        #expect(a.stdout.contains("Profile 0: \"x\" min 1x16 opt 4x16 max 8x16"))
        #expect(a.stdout.contains("Profile 1: \"x\" min 16x16 opt 32x16 max 64x16"))
        #expect(a.stdout.contains("Timing cache: \(cache.path) (read 0 bytes"))
        #expect(((try? FileManager.default.attributesOfItem(atPath: engine.path)[.size] as? Int) ?? 0) > 0)
        let saved = try Data(contentsOf: cache)
        #expect(!saved.isEmpty)
        let b = try cli.run(args)
        #expect(b.status == 0, "\(b.stderr)")
        #expect(b.stdout.contains("Timing cache: \(cache.path) (read \(saved.count) bytes"))

        for (bad, words) in [
            (["--opt-shapes", "y:4x16"], "not an input of the model"), (["--opt-shapes", "x:4x17"], "fixed at 16"),
            (["--opt-shapes", "x:4"], "has 1 dims"), (["--min-shapes", "x:1x16"], "no --opt-shapes"),
            (["--arch", "90"], "TensorRT-RTX builds for sm"),
        ] {
            let r = try cli.run(["engine", model, "--save-engine", dir.appendingPathComponent("bad.plan").path] + bad)
            #expect(r.status == 2, "\(bad)")
            #expect(r.stderr.hasPrefix("error: ") && r.stderr.contains(words), "\(bad): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(bad): \(r.stderr)")
        }
    }
}

extension VocabularyTests {
    /// `tpat plan` of a node TVM cannot plan: one error line ending in the bridge's reason code.
    @Test func planShowsTheReasonCode() throws {
        let r = try cli.run(["plan", cli.fixture("verdicts_unsupported_ops.onnx"), "--node", "det", "--arch", "90"])
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("error: cannot plan node 'det' (Det): "))
        #expect(r.stderr.hasSuffix(" [frontend_import_failed]\n"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
    }
}

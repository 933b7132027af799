import Foundation
import Testing

@testable import TPATCore

/// generate -> build -> engine through the CLI, on fixture models holding 8 different op types
/// TensorRT cannot import (one with symbolic batch and sequence dims): every unsupported node
/// becomes a plugin, libtpat_kernels.so and tpat_check compile with nvcc, and TensorRT-RTX builds
/// an sm_89 engine with the plugin layers in it.
@Suite(.serialized) struct PipelineTests {
    let cli = CLITests()

    struct GenerateReport: Decodable {
        struct Declined: Decodable { var lowering: String; var reason: String }
        struct Plugin: Decodable {
            var name: String; var opType: String; var nodes: [String]; var referenceCases: Int
            var lowering: String; var declined: [Declined]; var fixups: [String]
        }
        struct Failure: Decodable { var node: String; var code: String; var reason: String }
        var plugins: [Plugin]
        var failures: [Failure]
        var rewrittenModel: String
        var casts: [String]
    }

    func temp() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tpat-pipeline-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test(arguments: [("plugins_symbolic", 6), ("plugins_static", 4)])
    func generateBuildEngine(model: String, unsupported: Int) throws {
        let out = try temp().appendingPathComponent("out")
        let fixture = cli.fixture("\(model).onnx")
        // The TensorRT 10.x table's candidates, plus the TopK whose `sorted=0` that table rejects but
        // its importer takes (TPAT's TopK plugin path stays covered): --auto and --ops combine.
        let g = try cli.run(["generate", fixture, "--auto", "--trt", "10", "--ops", "TopK", "-o", out.path])
        #expect(g.status == 0, "\(g.stderr)")
        let report = try JSONDecoder().decode(GenerateReport.self, from: Data(contentsOf: out.appendingPathComponent("tpat-generate.json")))
        #expect(report.failures.isEmpty, "\(report.failures.map(\.reason))")
        #expect(report.plugins.flatMap(\.nodes).count == unsupported)
        let symbolic = model == "plugins_symbolic"
        for p in report.plugins { #expect(p.referenceCases == (symbolic ? 2 : 1), "\(p.name)") }
        // Which lowering made each plugin is a field of the report (and of its plan), not prose in fixups:
        // TPAT's own for TopK, ScatterND and GridSample, TVM's for the Bitwise ops and MaxUnpool (no TPAT lowering is registered for them).
        for p in report.plugins {
            let plan = try KernelPlan.decode(Data(contentsOf: out.appendingPathComponent("plugins/\(p.name)/\(p.name).plan.json")))
            #expect(p.lowering == plan.lowering && p.declined.map(\.lowering) == plan.declined.map(\.lowering), "\(p.name)")
            #expect(!p.fixups.contains { $0.hasPrefix("tpat lowering") }, "\(p.name)")
            if ["TopK", "ScatterND", "GridSample"].contains(p.opType) { #expect(p.lowering != "tvm-default", "\(p.name): \(p.declined)") }
            if p.opType.hasPrefix("Bitwise") || p.opType == "MaxUnpool" {
                #expect(p.lowering == "tvm-default" && p.declined.isEmpty, "\(p.name)")
            }
        }
        if symbolic {
            // Identical nodes share one plugin.
            #expect(report.plugins.first { $0.opType == "BitwiseAnd" }?.nodes.sorted() == ["band_a", "band_b"])
        }

        // The rewritten model: covered nodes call plugins, everything else is unchanged.
        let original = try ONNXModel.load(path: fixture)
        let rewritten = try ONNXModel.load(path: report.rewrittenModel)
        #expect(rewritten.graph.initializer == original.graph.initializer)
        #expect(rewritten.graph.input == original.graph.input)
        #expect(rewritten.graph.output == original.graph.output)
        #expect(rewritten.opsetVersion(domain: "tpat") == 1)
        let pluginNames = Set(report.plugins.map(\.name))
        let covered = Set(report.plugins.flatMap(\.nodes))
        for node in rewritten.graph.node {
            if covered.contains(node.name) {
                #expect(pluginNames.contains(node.opType))
                #expect(node.domain == "tpat")
                #expect(node.attribute(named: "plugin_namespace") == "tpat")
                #expect(node.attribute(named: "plugin_version") == "1")
                let before = try #require(original.graph.node.first { $0.name == node.name })
                #expect(node.output == before.output)
            } else {
                #expect(original.graph.node.contains(node))
            }
        }

        // cmake, ninja and nvcc come from the venv even when PATH offers others first (issue 10).
        let decoys = try temp().appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: decoys, withIntermediateDirectories: true)
        for tool in ["cmake", "ninja", "nvcc"] {
            let u = decoys.appendingPathComponent(tool)
            try Data("#!/bin/sh\necho decoy \(tool) >&2\nexit 97\n".utf8).write(to: u)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: u.path)
        }
        let path = decoys.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let b = try cli.run(
            ["build", out.path, "--arch", "90"], environment: ["PATH": path, "CUDA_PATH": decoys.deletingLastPathComponent().path])
        #expect(b.status == 0, "\(b.stdout)\(b.stderr)")
        let venv = CLITests.root.appendingPathComponent(".venv").path
        let used = Dictionary(
            uniqueKeysWithValues: b.stdout.split(separator: "\n").compactMap { line -> (String, String)? in
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, ["cmake", "ninja", "nvcc"].contains(String(parts[0])) else { return nil }
                return (String(parts[0]), parts[1].trimmingCharacters(in: .whitespaces))
            })
        #expect(used["cmake"] == "\(venv)/bin/cmake", "\(b.stdout)")
        #expect(used["ninja"] == "\(venv)/bin/ninja", "\(b.stdout)")
        #expect(
            used["nvcc"]?.hasPrefix("\(venv)/lib/python") == true && used["nvcc"]?.hasSuffix("/site-packages/nvidia/cu13/bin/nvcc") == true,
            "\(b.stdout)")
        #expect(!b.stderr.contains("decoy"))
        let build = out.appendingPathComponent("plugins/build")
        #expect(FileManager.default.fileExists(atPath: build.appendingPathComponent("libtpat_kernels.so").path))
        #expect(FileManager.default.fileExists(atPath: build.appendingPathComponent("tpat_check").path))

        let e = try cli.run(["engine", report.rewrittenModel, "--arch", "89"])
        #expect(e.status == 0, "\(e.stdout)\(e.stderr)")
        #expect(e.stdout.contains("TensorRT"))
        let engine = URL(fileURLWithPath: report.rewrittenModel).deletingPathExtension().appendingPathExtension("sm89.engine")
        let size = (try? FileManager.default.attributesOfItem(atPath: engine.path)[.size] as? Int) ?? 0
        #expect(size > 0)
        let line = e.stdout.split(separator: "\n").first { $0.contains("plugin layers in it:") }.map(String.init) ?? ""
        for node in covered { #expect(line.contains(node), "plugin layer \(node) missing from the engine") }

        // The generated README names every way into TensorRT for this model.
        let readme = try String(contentsOf: out.appendingPathComponent("plugins/README.md"), encoding: .utf8)
        let modelName = URL(fileURLWithPath: report.rewrittenModel).lastPathComponent
        for way in [
            "--onnx=OUT/\(modelName) --dynamicPlugins=LIB", "--staticPlugins=STATIC", "--setPluginsToSerialize=LIB",
            "polygraphy run", "polygraphy convert", "load_library(", "loadLibrary(", "--embed-plugins",
        ] {
            #expect(readme.contains(way), "plugins/README.md lacks \(way)")
        }

        // With TensorRT headers (fetched into .trt/, or TensorRT_ROOT): the plugin library, and an
        // engine carrying it (--embed-plugins). CI has no headers and says so.
        let trt = ProcessInfo.processInfo.environment["TensorRT_ROOT"] ?? CLITests.root.appendingPathComponent(".trt").path
        if !symbolic, FileManager.default.fileExists(atPath: trt + "/include/NvInfer.h") {
            let bt = try cli.run(["build", out.path, "--arch", "90", "--tensorrt-root", trt])
            #expect(bt.status == 0, "\(bt.stdout)\(bt.stderr)")
            #expect(FileManager.default.fileExists(atPath: build.appendingPathComponent("libtpat_plugins.so").path))
            #expect(FileManager.default.fileExists(atPath: build.appendingPathComponent("libtpat_plugins_static.so").path))
            let emb = out.appendingPathComponent("embedded.engine")
            let ee = try cli.run(["engine", report.rewrittenModel, "--sm", "89", "--embed-plugins", "-o", emb.path])
            #expect(ee.status == 0, "\(ee.stdout)\(ee.stderr)")
            #expect(
                ee.stdout.contains("Plugins serialized into the engine: \(build.appendingPathComponent("libtpat_plugins.so").path)"),
                "\(ee.stdout)")
            let lib = try Data(contentsOf: build.appendingPathComponent("libtpat_plugins.so"))
            let blob = try Data(contentsOf: emb)
            #expect(blob.range(of: lib.prefix(1 << 16)) != nil, "the library is not inside the engine")
        } else if !symbolic {
            print("note: TensorRT headers not found (TensorRT_ROOT or .trt/include): libtpat_plugins.so and --embed-plugins not tested")
        }

        // A compile error: `tpat build` shows the compiler's whole message, not one line (issue 10).
        if !symbolic {
            let launcher = out.appendingPathComponent("plugins/\(report.plugins[0].name)/\(report.plugins[0].name)_launcher.cu")
            let text = try String(contentsOf: launcher, encoding: .utf8)
            try Data(
                ("static_assert(false, \"tpat test: first error\");\nstatic_assert(false, \"tpat test: second error\");\n" + text).utf8
            ).write(to: launcher)
            let f = try cli.run(["build", out.path, "--arch", "90"])
            #expect(f.status != 0)
            #expect(f.stderr.contains("tpat test: first error") && f.stderr.contains("tpat test: second error"), "\(f.stderr)")
            #expect(f.stderr.contains("FAILED:"), "\(f.stderr)")
            let last = f.stderr.split(separator: "\n").last.map(String.init) ?? ""
            #expect(last.hasPrefix("error: cmake build failed") && last.contains("tpat-build.log"), "\(last)")
            let log = try String(contentsOf: out.appendingPathComponent("plugins/build/tpat-build.log"), encoding: .utf8)
            #expect(log.contains("tpat test: second error"))
        }
    }

    /// A CMake configure error is shown whole, every line of it.
    @Test func cmakeConfigureErrorIsShownWhole() throws {
        let out = try temp().appendingPathComponent("out")
        let plugins = out.appendingPathComponent("plugins")
        try FileManager.default.createDirectory(at: plugins, withIntermediateDirectories: true)
        try Data("cmake_minimum_required(VERSION 3.18)\nmessage(FATAL_ERROR \"tpat test line one\\ntpat test line two\")\n".utf8)
            .write(to: plugins.appendingPathComponent("CMakeLists.txt"))
        let r = try cli.run(["build", out.path])
        #expect(r.status != 0)
        #expect(r.stderr.contains("CMake Error"), "\(r.stderr)")
        #expect(r.stderr.contains("tpat test line one") && r.stderr.contains("tpat test line two"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").last?.hasPrefix("error: cmake configure failed") == true, "\(r.stderr)")
    }

    /// When no selected node converts, OUT holds no plugin project (nothing to build), and
    /// `tpat build` says so.
    @Test func noConvertedNodeMeansNoPluginProject() throws {
        let out = try temp().appendingPathComponent("out")
        let g = try cli.run([
            "generate", cli.fixture("verdicts_unsupported_ops.onnx"), "--nodes", "det", "-o", out.path, "--no-reference",
        ])
        #expect(g.stdout.contains("det") || g.stderr.contains("det"), "\(g.stdout)\(g.stderr)")
        let report = try JSONDecoder().decode(GenerateReport.self, from: Data(contentsOf: out.appendingPathComponent("tpat-generate.json")))
        #expect(report.plugins.isEmpty && report.failures.map(\.node) == ["det"])
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("plugins").path))
        let b = try cli.run(["build", out.path])
        #expect(b.status == 0, "\(b.stderr)")
        #expect(b.stdout.contains("Nothing to build"), "\(b.stdout)")
    }

    @Test func nodesTVMCannotPlanAreReportedAndLeft() throws {
        let out = try temp().appendingPathComponent("out")
        let r = try cli.run([
            "generate", cli.fixture("verdicts_unsupported_ops.onnx"), "--auto", "--trt", "10", "-o", out.path, "--no-reference",
        ])
        #expect(r.status == 3, "\(r.stderr)")  // partial conversion
        #expect(r.stdout.contains("Not converted"))
        let report = try JSONDecoder().decode(GenerateReport.self, from: Data(contentsOf: out.appendingPathComponent("tpat-generate.json")))
        #expect(!report.plugins.isEmpty)
        let failed = Set(report.failures.map(\.node))
        #expect(failed.isSuperset(of: ["det"]))
        // Unique's output size depends on the data: a plugin with a size tensor (issue 14)
        #expect(report.plugins.contains { $0.opType == "Unique" && $0.nodes == ["unique"] }, "\(report.plugins.map(\.opType))")
        #expect(report.failures.first { $0.node == "det" }?.code == "frontend_import_failed")
        // Col2Im: TVM 0.27 has no importer, TPAT's own lowering makes the plugin
        #expect(report.plugins.contains { $0.opType == "Col2Im" && $0.nodes == ["col2im"] }, "\(report.plugins.map(\.opType))")
        let rewritten = try ONNXModel.load(path: report.rewrittenModel)
        #expect(rewritten.graph.node.contains { $0.name == "det" && $0.opType == "Det" })
        // BitShift on uint32: TensorRT has no uint32 tensors, so the plugin is bridged with Casts
        // (bit-exact int32 in, uint32 back out), and the tool says so.
        let shift = try #require(report.plugins.first { $0.opType == "BitShift" })
        #expect(report.casts.contains { $0.contains("bitshift") })
        #expect(r.stdout.contains("Cast bridges"))
        let plugin = try #require(rewritten.graph.node.first { $0.opType == shift.name })
        for input in plugin.input {
            let cast = try #require(rewritten.graph.node.first { $0.output.contains(input) })
            #expect(cast.opType == "Cast")
            #expect(cast.attribute.first { $0.name == "to" }?.i == Int64(ONNXDataType.int32.rawValue))
        }
        let back = try #require(rewritten.graph.node.first { $0.input.contains(plugin.output[0]) })
        #expect(back.opType == "Cast" && back.output == ["bitshift_out"])
        #expect(back.attribute.first { $0.name == "to" }?.i == Int64(ONNXDataType.uint32.rawValue))
    }

    @Test func float64NodesArePlannedInFloat32WithCasts() throws {
        let out = try temp().appendingPathComponent("out")
        let r = try cli.run(["generate", cli.fixture("verdicts_dtypes.onnx"), "--nodes", "abs_double", "-o", out.path, "--no-reference"])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try JSONDecoder().decode(GenerateReport.self, from: Data(contentsOf: out.appendingPathComponent("tpat-generate.json")))
        #expect(report.plugins.count == 1)
        #expect(report.casts.count == 2)
        let plan = try KernelPlan.decode(
            Data(contentsOf: out.appendingPathComponent("plugins/\(report.plugins[0].name)/\(report.plugins[0].name).plan.json")))
        #expect(plan.inputs.allSatisfy { $0.dtype == "float32" } && plan.outputs.allSatisfy { $0.dtype == "float32" })
        let rewritten = try ONNXModel.load(path: report.rewrittenModel)
        let back = try #require(rewritten.graph.node.first { $0.output == ["abs_double_out"] })
        #expect(back.opType == "Cast")
        #expect(back.attribute.first { $0.name == "to" }?.i == Int64(ONNXDataType.double.rawValue))
    }

    @Test func generateRefusesBadRequestsAndWritesNothing() throws {
        let dir = try temp()
        let busy = dir.appendingPathComponent("busy")
        try FileManager.default.createDirectory(at: busy, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: busy.appendingPathComponent("mine.txt"))
        let a = try cli.run(["generate", cli.fixture("plugins_static.onnx"), "--auto", "-o", busy.path])
        #expect(a.status == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: busy.path) == ["mine.txt"])
        let fresh = dir.appendingPathComponent("fresh")
        let b = try cli.run(["generate", cli.fixture("plugins_static.onnx"), "--nodes", "no_such_node", "-o", fresh.path])
        #expect(b.status == 2)
        #expect(b.stderr.hasPrefix("error: "))
        #expect(!FileManager.default.fileExists(atPath: fresh.path))
        let c = try cli.run(["generate", cli.fixture("plugins_static.onnx"), "-o", fresh.path])
        #expect(c.status == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["busy"])
    }
}

extension Onnx_NodeProto {
    func attribute(named name: String) -> String? {
        attribute.first { $0.name == name }.map { String(decoding: $0.s, as: UTF8.self) }
    }
}

extension PipelineTests {
    /// A plugin with two fp16 tactics (a MetaSchedule-tuned GELU plan from the H100 and dlight's):
    /// `tpat tune --trials 0` re-renders the sources from the plans, and the project links: TVM's
    /// fp16 helpers of each tactic stay private to their translation unit.
    @Test func tunedTacticsRenderAndLink() throws {
        let out = try temp().appendingPathComponent("out")
        let g = try cli.run([
            "generate", CLITests.root.appendingPathComponent("bench/models/gelu.onnx").path, "--ops", "Gelu",
            "-o", out.path, "--no-reference",
        ])
        #expect(g.status == 0, "\(g.stderr)")
        let report = try JSONDecoder().decode(GenerateReport.self, from: Data(contentsOf: out.appendingPathComponent("tpat-generate.json")))
        let name = try #require(report.plugins.first?.name)
        let dir = out.appendingPathComponent("plugins/\(name)")
        let fixtures = CLITests.root.appendingPathComponent("tests/fixtures/plans/tuned")
        for (src, dst) in [
            ("Gelu_5baf895c.plan.json", "\(name).plan.json"), ("Gelu_5baf895c.tactic1.plan.json", "\(name).tactic1.plan.json"),
        ] {
            try? FileManager.default.removeItem(at: dir.appendingPathComponent(dst))
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent(src), to: dir.appendingPathComponent(dst))
        }
        let t = try cli.run(["tune", out.path, "--trials", "0"])
        #expect(t.status == 0, "\(t.stderr)")
        #expect(t.stdout.contains("2 tactic(s)"))
        let launcher = try String(contentsOf: dir.appendingPathComponent("\(name)_launcher.cu"), encoding: .utf8)
        #expect(launcher.contains("return 2;"))
        let b = try cli.run(["build", out.path, "--arch", "90"])
        #expect(b.status == 0, "\(b.stdout)\(b.stderr)")
    }
}

extension PipelineTests {
    /// A database with records of TVM's lowering of a ReduceMax (real sm_90 schedules, fake times:
    /// tests/fixtures/tuning/make_fake_db.py) and a plugin whose tactic 0 is TPAT's lowering:
    /// `tpat tune --trials 0` and `tpat generate --tuning` re-plan both tactics' lowerings with it.
    /// The tuned TVM plan leads; TPAT's lowering has no record, so its re-plan is its untuned
    /// tactic, which stays, with TVM's untuned one, behind it.
    @Test func tunedTVMTacticJoinsTheTactics() throws {
        let model = CLITests.root.appendingPathComponent("bench/models/reducemax.onnx").path
        let fixture = CLITests.root.appendingPathComponent("tests/fixtures/tuning/reducemax_sm90")
        let out = try temp().appendingPathComponent("out")
        let g = try cli.run(["generate", model, "--ops", "ReduceMax", "-o", out.path, "--no-reference"])
        #expect(g.status == 0, "\(g.stderr)")
        let report = try JSONDecoder().decode(GenerateReport.self, from: Data(contentsOf: out.appendingPathComponent("tpat-generate.json")))
        let name = try #require(report.plugins.first?.name)
        func tactics(_ root: URL) throws -> [KernelPlan] {
            let dir = root.appendingPathComponent("plugins/\(name)")
            var plans: [KernelPlan] = []
            for k in 0... {
                let file = dir.appendingPathComponent(k == 0 ? "\(name).plan.json" : "\(name).tactic\(k).plan.json")
                guard let data = try? Data(contentsOf: file) else { break }
                plans.append(try KernelPlan.decode(data))
            }
            return plans
        }
        let before = try tactics(out)
        #expect(before.map(\.lowering) == ["reduce", KernelPlan.tvmDefault] && before.allSatisfy { $0.tuningDatabase == nil })
        let db = out.appendingPathComponent("tuning/\(name)")
        try FileManager.default.createDirectory(at: db.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: fixture, to: db)

        let t = try cli.run(["tune", out.path, "--trials", "0"])
        #expect(t.status == 0, "\(t.stderr)")
        #expect(t.stdout.contains("3 tactic(s)"), "\(t.stdout)")
        let after = try tactics(out)
        #expect(after.map(\.lowering) == [KernelPlan.tvmDefault, "reduce", KernelPlan.tvmDefault])
        #expect(after.map(\.tuningDatabase) == [name, nil, nil])
        #expect(after[0].cudaSource != before[1].cudaSource)
        #expect(after[1].cudaSource == before[0].cudaSource && after[2].cudaSource == before[1].cudaSource)
        let launcher = try String(contentsOf: out.appendingPathComponent("plugins/\(name)/\(name)_launcher.cu"), encoding: .utf8)
        #expect(launcher.contains("return 3;"))

        // generate --tuning OUT/tuning: the same tactics straight away
        let again = try temp().appendingPathComponent("again")
        let g2 = try cli.run([
            "generate", model, "--ops", "ReduceMax", "-o", again.path, "--no-reference", "--tuning",
            out.appendingPathComponent("tuning").path,
        ])
        #expect(g2.status == 0, "\(g2.stderr)")
        #expect(try tactics(again).map(\.cudaSource) == after.map(\.cudaSource))
    }
}

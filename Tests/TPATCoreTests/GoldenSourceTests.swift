import Foundation
import Testing

@testable import TPATCore

/// Reference tests on the generated sources of 3 plugins: committed kernel plans
/// (tests/fixtures/plans) render to the committed files in tests/fixtures/golden, and those files
/// compile with nvcc. TPAT_UPDATE_GOLDEN=1 rewrites the golden files.
@Suite(.serialized) struct GoldenSourceTests {
    /// Resize_a11c0f16: TVM's fp16 Resize (align_corners), whose `max(min(int, 127), 0)` must still find the
    /// global integer max/min next to the fp16 prelude's `max(half, half)` in the kernels' namespace.
    static let plans = ["ScatterND_7a375313", "GridSample_4821a747", "TopK_8c43395b", "Resize_a11c0f16"]

    static func source(_ name: String) throws -> PluginSource {
        let data = try Data(contentsOf: Repo.root.appendingPathComponent("tests/fixtures/plans/\(name).plan.json"))
        let plan = try KernelPlan.decode(data)
        let node = ExtractedNode(
            sourceName: "node", opType: plan.opType, model: ONNXModel(proto: Onnx_ModelProto()),
            sourceInputs: [], sourceOutputs: [], symbols: [:], graphInputSources: [],
            graphOutputSources: [], demoted: [])
        return PluginSource(name: name, node: node, tactics: [plan], coveredNodes: ["node"])
    }

    static func rendered(_ name: String) throws -> [String: String] {
        let templates = try TemplateSet(directory: Repo.root.appendingPathComponent("plugin-runtime/templates"))
        let s = try source(name)
        let launchers = LauncherRenderer(templates: templates)
        let plugins = PluginRenderer(templates: templates)
        return [
            "\(name)_tactic0_kernels.cuh": try launchers.kernels(s, tactic: 0),
            "\(name)_tactic0.cu": try launchers.tactic(s, tactic: 0),
            "\(name)_launcher.h": try launchers.header(s),
            "\(name)_launcher.cu": try launchers.launcher(s),
            "\(name)_plugin.cpp": try plugins.pluginSource(s),
            "\(name).plugin.json": String(
                decoding: try plugins.pythonSpec(s, kernelsLibrary: "../build/libtpat_kernels.so"), as: UTF8.self),
        ]
    }

    @Test(arguments: plans)
    func generatedSourcesMatchGoldenFiles(name: String) throws {
        let dir = Repo.root.appendingPathComponent("tests/fixtures/golden/\(name)")
        let files = try Self.rendered(name)
        if ProcessInfo.processInfo.environment["TPAT_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for (file, text) in files { try Data(text.utf8).write(to: dir.appendingPathComponent(file)) }
        }
        for (file, text) in files {
            let golden = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
            #expect(text == golden, "\(name)/\(file) differs from its golden file (TPAT_UPDATE_GOLDEN=1 to accept)")
        }
    }

    /// The golden launchers compile for sm_90 (with the project's common headers), and the plugin
    /// specs compile against TensorRT's headers when a TensorRT include folder is found.
    @Test func goldenSourcesCompile() async throws {
        guard let cuda = CUDAToolkit.locate(projectRoot: Repo.root) else {
            Issue.record("no nvcc (run make venv)")
            return
        }
        let build = try temporaryDirectory()
        let common = build.appendingPathComponent("common")
        try FileManager.default.copyItem(at: Repo.root.appendingPathComponent("plugin-runtime/common"), to: common)
        for name in Self.plans {
            let dir = build.appendingPathComponent(name)
            try FileManager.default.copyItem(at: Repo.root.appendingPathComponent("tests/fixtures/golden/\(name)"), to: dir)
            for file in ["\(name)_launcher.cu", "\(name)_tactic0.cu"] {
                let r = try await Tool.run(
                    cuda.nvcc.path, ["-arch=sm_90", "-std=c++17", "-w", "-c", file, "-o", "\(file).o"], directory: dir)
                #expect(r.status == 0, "\(name)/\(file): \(r.output.suffix(2000))")
            }
        }
        let trt =
            ProcessInfo.processInfo.environment["TensorRT_ROOT"].map { URL(fileURLWithPath: $0).appendingPathComponent("include") }
            ?? Repo.root.appendingPathComponent(".trt/include")
        guard FileManager.default.fileExists(atPath: trt.appendingPathComponent("NvInfer.h").path) else {
            print("note: TensorRT headers not found (TensorRT_ROOT or .trt/include): plugin specs not compiled")
            return
        }
        for name in Self.plans {
            let dir = build.appendingPathComponent(name)
            let r = try await Tool.run(
                "g++",
                [
                    "-std=c++17", "-fsyntax-only", "-I", trt.path, "-I", cuda.root.appendingPathComponent("include").path,
                    "\(name)_plugin.cpp",
                ], directory: dir)
            #expect(r.status == 0, "\(name): \(r.output.suffix(2000))")
        }
    }
}

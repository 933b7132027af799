import ArgumentParser
import Foundation
import TPATCore

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the whole pipeline on the built-in example: inspect, generate, build, engine.")

    @Option(help: "The model (default: examples/demo.onnx).") var model: String?
    @Option(name: .shortAndLong, help: "Output folder (replaced).") var output = "out/demo"
    @Option(
        help:
            "GPU architecture for every stage: kernels planned and compiled for it, engine built for it (89 or sm_89; TensorRT-RTX engines: 75, 80, 86, 89, 120, 121)."
    ) var arch = "89"
    @Option(name: .customLong("sm"), help: .hidden) var legacySm: String?
    @OptionGroup var log: LogOptions

    func run() async throws {
        try await guarded { () async throws(TPATError) in
            let logger = log.bootstrap()
            let gpu = try GPUArchitecture.one(legacySm ?? arch, for: "demo")
            let target = try Planner.target(gpu)
            let bridge = try PythonBridge.locate()
            let path = model ?? bridge.root.appendingPathComponent("examples/demo.onnx").path
            // The demo shows TensorRT 10.x's rejections (4 plugins); TensorRT-RTX, installed here,
            // imports two of them (`tpat generate --auto` asks the installed parser).
            let rules = try ParserRules.bundled(.trt10)
            print("== 1. inspect \(path)")
            let report = try await Inspector(bridge: bridge, rules: rules).inspect(modelPath: path, probe: false)
            print(report.text())
            print("== 2. generate --nodes <the TensorRT 10.x table's candidates> --arch \(gpu) -o \(output)")
            let diagnostics = DiagnosticsCollector()
            let gen = try await Generator(bridge: bridge, rules: rules, diagnostics: diagnostics, log: logger).generate(
                modelPath: path,
                options: .init(
                    selection: .nodes(report.pluginCandidates), target: target, output: URL(fileURLWithPath: output), force: true))
            logger.report(diagnostics)
            for p in gen.plugins {
                print(
                    SafeText.terminal(
                        "  plugin \(p.name) (\(p.opType)) for \(p.nodes.joined(separator: ", ")): \(p.kernels) kernel(s), \(p.referenceCases) reference case(s)"
                    ))
            }
            for f in gen.failures { print(SafeText.terminal("  left as it is: \(f.node) (\(f.opType)): [\(f.code)] \(f.reason)")) }
            print("\n== 3. build --arch \(gpu) \(output)")
            let built = try await ProjectBuilder(projectRoot: bridge.root).build(
                out: URL(fileURLWithPath: output), architectures: gpu.value, tensorRTRoot: nil,
                jobs: ProcessInfo.processInfo.activeProcessorCount)
            print("  cmake: \(built.toolchain.cmake.path)\n  nvcc:  \(built.toolchain.cuda.nvcc.path)")
            for n in built.notes { print("  \(n)") }
            print("  libtpat_kernels.so: \(built.kernels?.path ?? "not built")")
            print("  tpat_check:         \(built.check?.path ?? "not built")")
            print("  libtpat_plugins.so: \(built.plugins?.path ?? "not built (no TensorRT headers)")")
            print("\n== 4. engine --arch \(gpu)")
            let folder = URL(fileURLWithPath: output).appendingPathComponent("plugins")
            let source = EngineBuilder.plugins(in: folder)
            let modelOut = URL(fileURLWithPath: gen.rewrittenModel)
            let engine = try await EngineBuilder(bridge: bridge).build(
                model: modelOut, sm: gpu.value, plugins: source,
                output: modelOut.deletingPathExtension().appendingPathExtension("sm\(gpu.value).engine"), dynamicDim: nil)
            print("  builder: \(engine.runtime)")
            for l in engine.layers { print(SafeText.terminal("  \(l.plugin ? "*" : " ") \(l.name)  [\(l.type)]")) }
            print(
                "  engine: \(engine.enginePath) (\(engine.engineBytes) bytes); plugin layers: \(engine.pluginsInEngine.joined(separator: ", "))"
            )
            print(
                "\nProduced in \(output): \(URL(fileURLWithPath: gen.rewrittenModel).lastPathComponent) (rewritten model), plugins/ (CMake project, built in plugins/build), the engine. TensorRT-RTX engines cannot run on an H100; run `tpat verify` on a GPU for the plugins' own proof (build with --arch 90 there)."
            )
        }
    }
}

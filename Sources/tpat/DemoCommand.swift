import ArgumentParser
import Foundation
import TPATCore

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the whole pipeline on the built-in example: inspect, generate, build, engine.")

    @Option(help: "The model (default: examples/demo.onnx).") var model: String?
    @Option(name: .shortAndLong, help: "Output folder (replaced).") var output = "out/demo"
    @Option(help: "Compute capability of the engine.") var sm = "89"
    @Option(help: "CUDA architectures to build (default: 90, to keep the demo quick).") var arch = "90"

    func run() async throws {
        try await guarded { () async throws(TPATError) in
            let bridge = try PythonBridge.locate()
            let path = model ?? bridge.root.appendingPathComponent("examples/demo.onnx").path
            // The demo shows TensorRT 10.x's rejections (4 plugins); TensorRT-RTX, installed here,
            // imports two of them (`tpat generate --auto` asks the installed parser).
            let rules = try ParserRules.bundled(.trt10)
            print("== 1. inspect \(path)")
            let report = try await Inspector(bridge: bridge, rules: rules).inspect(modelPath: path, probe: false)
            print(report.text())
            print("== 2. generate --nodes <the TensorRT 10.x table's candidates> -o \(output)")
            let diagnostics = DiagnosticsCollector()
            let gen = try await Generator(bridge: bridge, rules: rules, diagnostics: diagnostics).generate(
                modelPath: path, options: .init(selection: .nodes(report.pluginCandidates), output: URL(fileURLWithPath: output), force: true))
            printDiagnostics(diagnostics)
            for p in gen.plugins { print("  plugin \(p.name) (\(p.opType)) for \(p.nodes.joined(separator: ", ")): \(p.kernels) kernel(s), \(p.referenceCases) reference case(s)") }
            for f in gen.failures { print("  left as it is: \(f.node) (\(f.opType)): \(f.reason)") }
            print("\n== 3. build \(output)")
            let built = try await ProjectBuilder(projectRoot: bridge.root).build(
                out: URL(fileURLWithPath: output), architectures: arch, tensorRTRoot: nil, jobs: ProcessInfo.processInfo.activeProcessorCount)
            for n in built.notes { print("  \(n)") }
            print("  libtpat_kernels.so: \(built.kernels?.path ?? "not built")")
            print("  tpat_check:         \(built.check?.path ?? "not built")")
            print("  libtpat_plugins.so: \(built.plugins?.path ?? "not built (no TensorRT headers)")")
            print("\n== 4. engine --sm \(sm)")
            let folder = URL(fileURLWithPath: output).appendingPathComponent("plugins")
            let source = EngineBuilder.plugins(in: folder)
            let modelOut = URL(fileURLWithPath: gen.rewrittenModel)
            let engine = try await EngineBuilder(bridge: bridge).build(
                model: modelOut, sm: sm, plugins: source, output: modelOut.deletingPathExtension().appendingPathExtension("sm\(sm).engine"), dynamicDim: nil)
            print("  builder: \(engine.runtime)")
            for l in engine.layers { print("  \(l.plugin ? "*" : " ") \(l.name)  [\(l.type)]") }
            print("  engine: \(engine.enginePath) (\(engine.engineBytes) bytes); plugin layers: \(engine.pluginsInEngine.joined(separator: ", "))")
            print("\nProduced in \(output): \(URL(fileURLWithPath: gen.rewrittenModel).lastPathComponent) (rewritten model), plugins/ (CMake project, built in plugins/build), the engine. TensorRT-RTX engines cannot run on an H100; run `tpat verify` on a GPU for the plugins' own proof.")
        }
    }
}

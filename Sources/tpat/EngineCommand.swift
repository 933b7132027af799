import ArgumentParser
import Foundation
import TPATCore

struct Engine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build a TensorRT engine of the rewritten model with its plugins (TensorRT, else TensorRT-RTX on the CPU).")

    @Argument(help: "The rewritten model (OUT/<model>.onnx).") var model: String
    @Option(help: "Compute capability to build for (TensorRT-RTX: 75, 80, 86, 89, 120, 121).") var sm = "89"
    @Option(help: "The generated plugins folder (default: plugins/ beside the model).") var plugins: String?
    @Option(name: .shortAndLong, help: "Engine file (default: <model>.sm<SM>.engine beside the model).") var output: String?
    @Option(help: "min,opt,max for every symbolic input dim (default 1,8,64).") var dynamicDim: String?

    func run() async throws {
        try await guarded { () async throws(TPATError) in
            let modelURL = URL(fileURLWithPath: model)
            _ = try ONNXModel.load(path: model)
            let folder = plugins.map { URL(fileURLWithPath: $0) } ?? modelURL.deletingLastPathComponent().appendingPathComponent("plugins")
            let source = EngineBuilder.plugins(in: folder)
            var dims: [Int]?
            if let dynamicDim {
                dims = dynamicDim.split(separator: ",").compactMap { Int($0) }
                guard dims?.count == 3 else { throw TPATError(.input, "--dynamic-dim takes min,opt,max") }
            }
            let out = output.map { URL(fileURLWithPath: $0) }
                ?? modelURL.deletingPathExtension().appendingPathExtension("sm\(sm).engine")
            let r = try await EngineBuilder(bridge: try PythonBridge.locate()).build(
                model: modelURL, sm: sm, plugins: source, output: out, dynamicDim: dims)
            switch source {
            case .library(let u): print("Plugins: C++ library \(u.path)")
            case .python(let s): print("Plugins: Python IPluginV3 (\(s.count) spec(s); libtpat_plugins.so not built)")
            case .none: print("Plugins: none found in \(folder.path)")
            }
            print("Builder: \(r.runtime)")
            print("Layers (\(r.layers.count), * = plugin):")
            for l in r.layers { print("  \(l.plugin ? "*" : " ") \(SafeText.terminal(l.name))  [\(SafeText.terminal(l.type))]") }
            print("Engine: \(r.enginePath) (\(r.engineBytes) bytes), plugin layers in it: \(r.pluginsInEngine.isEmpty ? "none" : SafeText.terminal(r.pluginsInEngine.joined(separator: ", ")))")
        }
    }
}

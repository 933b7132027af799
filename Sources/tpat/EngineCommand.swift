import ArgumentParser
import Foundation
import TPATCore

struct Engine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build a TensorRT engine of the rewritten model with its plugins (TensorRT, else TensorRT-RTX on the CPU).",
        discussion: """
            Shapes as trtexec writes them: --min-shapes x:1x3x224x224,y:1x16 --opt-shapes ... --max-shapes ...; \
            repeat the three flags for more optimization profiles (the k-th of each makes profile k). \
            An input named only in --opt-shapes gets that fixed shape; dynamic inputs a profile does not \
            name get --dynamic-dim. The plugins' tensor types are the model's (strong typing).

            \(TPATExitCode.helpText)
            """)

    @Argument(help: "The rewritten model (OUT/<model>.onnx).") var model: String
    @Option(
        help:
            "GPU architecture(s) to build for, e.g. 89 or \"86;89\" (TensorRT-RTX: 75, 80, 86, 89, 120, 121; full TensorRT builds for the GPU present)."
    ) var arch = "89"
    @Option(name: .customLong("sm"), help: .hidden) var legacySm: String?
    @Option(help: "The generated plugins folder (default: plugins/ beside the model).") var plugins: String?
    @Option(
        name: [.customLong("save-engine"), .customLong("saveEngine")],
        help: "Engine file (default: <model>.sm<ARCH>.engine beside the model).") var saveEngine: String?
    @Option(name: .shortAndLong, help: .hidden) var output: String?
    @Option(
        name: [.customLong("min-shapes"), .customLong("minShapes")],
        help: ArgumentHelp("Minimum shapes of one profile.", valueName: "name:AxB,...")) var minShapes: [String] = []
    @Option(
        name: [.customLong("opt-shapes"), .customLong("optShapes")],
        help: ArgumentHelp("Optimal shapes of one profile.", valueName: "name:AxB,...")) var optShapes: [String] = []
    @Option(
        name: [.customLong("max-shapes"), .customLong("maxShapes")],
        help: ArgumentHelp("Maximum shapes of one profile.", valueName: "name:AxB,...")) var maxShapes: [String] = []
    @Option(
        name: [.customLong("timing-cache"), .customLong("timingCacheFile")],
        help: "Timing cache file: read when it exists, written after the build.") var timingCache: String?
    @Option(help: "min,opt,max for every symbolic dim of an input no profile names (default 1,8,64).") var dynamicDim: String?
    @Flag(
        name: .customLong("embed-plugins"),
        help: "Serialize libtpat_plugins.so into the engine (setPluginsToSerialize): no separate .so to deploy.")
    var embedPlugins = false
    @OptionGroup var log: LogOptions

    func run() async throws {
        try await guarded { () async throws(TPATError) in
            let logger = log.bootstrap()
            let archs = try GPUArchitecture.list(legacySm ?? arch)
            let sm = GPUArchitecture.cmake(archs)
            let profiles = try ShapeProfile.parse(min: minShapes, opt: optShapes, max: maxShapes)
            let modelURL = URL(fileURLWithPath: model)
            _ = try ONNXModel.load(path: model)
            let folder = plugins.map { URL(fileURLWithPath: $0) } ?? modelURL.deletingLastPathComponent().appendingPathComponent("plugins")
            let source = EngineBuilder.plugins(in: folder)
            var dims: [Int]?
            if let dynamicDim {
                dims = dynamicDim.split(separator: ",").compactMap { Int($0) }
                guard dims?.count == 3 else { throw TPATError(.input, "--dynamic-dim takes min,opt,max") }
            }
            let out =
                (saveEngine ?? output).map { URL(fileURLWithPath: $0) }
                ?? modelURL.deletingPathExtension().appendingPathExtension("sm\(archs.map(\.value).joined(separator: "-")).engine")
            logger.debug(
                "building the engine of \(model.debugDescription) for \(archs.map(\.sm).joined(separator: ", "))\(profiles.isEmpty ? "" : " with \(profiles.count) profile(s)")"
            )
            let r = try await EngineBuilder(bridge: try PythonBridge.locate()).build(
                model: modelURL, sm: sm, plugins: source, output: out, dynamicDim: dims, profiles: profiles,
                timingCache: timingCache.map { URL(fileURLWithPath: $0) }, embedPlugins: embedPlugins)
            switch source {
            case .library(let u): print("Plugins: C++ library \(u.path)")
            case .python(let s): print("Plugins: Python IPluginV3 (\(s.count) spec(s); libtpat_plugins.so not built)")
            case .none: print("Plugins: none found in \(folder.path)")
            }
            print("Builder: \(r.runtime)\(r.sm.map { " for sm \($0)" } ?? " for the GPU present")")
            for (k, p) in (r.profiles ?? []).enumerated() {
                let text = p.shapes.keys.sorted().map { n in
                    let b = p.shapes[n]!
                    func s(_ d: [Int]) -> String { d.map(String.init).joined(separator: "x") }
                    return "\(n.debugDescription) min \(s(b.min)) opt \(s(b.opt)) max \(s(b.max))"
                }.joined(separator: "; ")
                print("Profile \(k): \(text)")
            }
            print("Layers (\(r.layers.count), * = plugin):")
            for l in r.layers { print("  \(l.plugin ? "*" : " ") \(SafeText.terminal(l.name))  [\(SafeText.terminal(l.type))]") }
            if let embedded = r.embeddedPlugins, !embedded.isEmpty {
                let flags = (r.builderFlags ?? []).isEmpty ? "" : " (builder flags: \(r.builderFlags!.joined(separator: ", ")))"
                print("Plugins serialized into the engine: \(embedded.joined(separator: ", "))\(flags)")
            }
            if let t = r.timingCache {
                print("Timing cache: \(t.path) (read \(t.loadedBytes) bytes, wrote \(t.savedBytes))")
                if let why = t.ignored { logger.warning("timing cache \(t.path.debugDescription) not used, started empty: \(why)") }
            }
            print(
                "Engine: \(r.enginePath) (\(r.engineBytes) bytes), plugin layers in it: \(r.pluginsInEngine.isEmpty ? "none" : SafeText.terminal(r.pluginsInEngine.joined(separator: ", ")))"
            )
        }
    }
}

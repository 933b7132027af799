import Foundation

/// Stage 5: the rewritten model + plugins -> a serialized engine, built by TensorRT when its
/// Python module is installed, else by TensorRT-RTX on the CPU (ahead of time, for sm 75-121;
/// such an engine cannot run on the H100). Loads the C++ plugin library when it was built, else
/// registers the Python IPluginV3 plugins (same launcher through ctypes).
public struct EngineBuilder: Sendable {
    public let bridge: PythonBridge

    public init(bridge: PythonBridge) { self.bridge = bridge }

    struct Request: Encodable {
        var command = "engine"
        var model_path: String
        var sm: String
        var plugin_library: String?
        var python_plugin_specs: [String]
        var output: String
        var dynamic_dim: [Int]?
        var profiles: [ShapeProfile]? = nil
        var timing_cache: String? = nil
        var embed_plugins: Bool? = nil
    }

    public struct Layer: Codable, Sendable {
        public var name: String
        public var type: String
        public var plugin: Bool
    }

    public struct Result: Codable, Sendable {
        public var runtime: String
        public var enginePath: String
        public var engineBytes: Int
        public var layers: [Layer]
        public var pluginsInEngine: [String]
        /// Plugin libraries serialized into the engine (`embedPlugins`), and the builder flags set for it.
        public var embeddedPlugins: [String]?
        public var builderFlags: [String]?
        /// The optimization profiles as built (given ones, dynamic inputs they omit filled in).
        public var profiles: [ShapeProfile]?
        public var numProfiles: Int?
        /// The compute capabilities built for (TensorRT-RTX); nil: the GPU present (TensorRT).
        public var sm: String?
        public var timingCache: TimingCache?
        public struct TimingCache: Codable, Sendable {
            public var path: String
            public var loadedBytes: Int
            public var savedBytes: Int
            /// Why TensorRT started from an empty cache instead of the file's (unreadable, another version).
            public var ignored: String?
            enum CodingKeys: String, CodingKey { case path, loadedBytes = "loaded_bytes", savedBytes = "saved_bytes", ignored }
        }
        enum CodingKeys: String, CodingKey {
            case runtime, enginePath = "engine_path", engineBytes = "engine_bytes", layers, pluginsInEngine = "plugins_in_engine"
            case profiles, numProfiles = "num_profiles", sm, timingCache = "timing_cache"
            case embeddedPlugins = "embedded_plugins", builderFlags = "builder_flags"
        }
    }

    /// How the plugins reach the builder.
    public enum PluginSource: Sendable, Equatable {
        case library(URL)
        case python([URL])
        case none
    }

    /// libtpat_plugins.so when built, else the Python plugin specs, in a `tpat generate` plugins folder.
    public static func plugins(in folder: URL) -> PluginSource {
        let lib = folder.appendingPathComponent("build/libtpat_plugins.so")
        if FileManager.default.fileExists(atPath: lib.path) { return .library(lib) }
        let fm = FileManager.default
        let specs = ((try? fm.contentsOfDirectory(atPath: folder.path)) ?? []).sorted().compactMap { d -> URL? in
            let u = folder.appendingPathComponent(d).appendingPathComponent("\(d).plugin.json")
            return fm.fileExists(atPath: u.path) ? u : nil
        }
        return specs.isEmpty ? .none : .python(specs)
    }

    /// `sm`: one compute capability or several ("86;89", TensorRT-RTX); `profiles`: one
    /// optimization profile each; `timingCache`: read when it exists, written after the build;
    /// `embedPlugins`: serialize the C++ plugin library into the engine (needs `.library`).
    public func build(
        model: URL, sm: String, plugins: PluginSource, output: URL, dynamicDim: [Int]?,
        profiles: [ShapeProfile] = [], timingCache: URL? = nil, embedPlugins: Bool = false
    ) async throws(TPATError) -> Result {
        var library: String?
        var specs: [String] = []
        switch plugins {
        case .library(let u): library = u.path
        case .python(let s): specs = s.map(\.path)
        case .none: break
        }
        return try await bridge.call(
            Request(
                model_path: model.path, sm: sm, plugin_library: library, python_plugin_specs: specs,
                output: output.path, dynamic_dim: dynamicDim,
                profiles: profiles.isEmpty ? nil : profiles, timing_cache: timingCache?.path,
                embed_plugins: embedPlugins ? true : nil), as: Result.self)
    }
}

import Foundation

/// Stage 4: the generated CMake project -> libtpat_kernels.so, tpat_check and (with TensorRT
/// headers) libtpat_plugins.so, in OUT/plugins/build. cmake, ninja and nvcc come from the venv
/// first (`Toolchain`); the result names the ones used.
public struct ProjectBuilder: Sendable {
    public let projectRoot: URL

    public init(projectRoot: URL) { self.projectRoot = projectRoot }

    public struct Result: Sendable {
        public var buildDirectory: URL
        public var kernels: URL?
        public var plugins: URL?
        /// libtpat_plugins_static.so: the same plugins, registering themselves when loaded
        /// (trtexec --staticPlugins, a plain dlopen).
        public var staticPlugins: URL?
        public var check: URL?
        public var notes: [String]
        public var toolchain: Toolchain
        /// CMake's whole output (configure and build), also in build/tpat-build.log.
        public var log: URL
    }

    public func build(out: URL, architectures: String?, tensorRTRoot: String?, jobs: Int) async throws(TPATError) -> Result {
        let source = out.appendingPathComponent("plugins")
        guard FileManager.default.fileExists(atPath: source.appendingPathComponent("CMakeLists.txt").path) else {
            throw TPATError(.input, "\(out.path) holds no generated plugin project (plugins/CMakeLists.txt): run `tpat generate` first")
        }
        let tools = try Toolchain.locate(projectRoot: projectRoot)
        let build = source.appendingPathComponent("build")
        var configure = [
            "-S", source.path, "-B", build.path, "-DCMAKE_BUILD_TYPE=Release",
            "-DCMAKE_CUDA_COMPILER=\(tools.cuda.nvcc.path)", "-DCUDAToolkit_ROOT=\(tools.cuda.root.path)",
        ]
        if let ninja = tools.ninja {
            configure += ["-G", "Ninja", "-DCMAKE_MAKE_PROGRAM=\(ninja.path)"]
        }
        Self.dropStaleCache(build: build, source: source, generator: tools.ninja == nil ? "Unix Makefiles" : "Ninja")
        if let architectures { configure.append("-DTPAT_CUDA_ARCHITECTURES=\(architectures)") }
        if let root = tensorRTRoot ?? ProcessInfo.processInfo.environment["TensorRT_ROOT"] { configure.append("-DTensorRT_ROOT=\(root)") }
        let logURL = build.appendingPathComponent("tpat-build.log")
        var log = "$ \(tools.cmake.path) \(configure.joined(separator: " "))\n"
        func save() {
            try? FileManager.default.createDirectory(at: build, withIntermediateDirectories: true); try? Data(log.utf8).write(to: logURL)
        }
        let c = try await Tool.run(tools.cmake.path, configure)
        log += c.output
        guard c.status == 0 else {
            save()
            throw TPATError(
                .io, "cmake configure failed (\(tools.cmake.path), exit \(c.status); whole log: \(logURL.path))",
                detail: Self.errorSection(c.output))
        }
        let buildArgs = ["--build", build.path, "-j", "\(jobs)"]
        log += "\n$ \(tools.cmake.path) \(buildArgs.joined(separator: " "))\n"
        let b = try await Tool.run(tools.cmake.path, buildArgs)
        log += b.output
        save()
        guard b.status == 0 else {
            throw TPATError(
                .io, "cmake build failed (\(tools.cmake.path), exit \(b.status); whole log: \(logURL.path))",
                detail: Self.errorSection(b.output))
        }
        func existing(_ name: String) -> URL? {
            let u = build.appendingPathComponent(name)
            return FileManager.default.fileExists(atPath: u.path) ? u : nil
        }
        var notes: [String] = []
        for line in c.output.split(separator: "\n") where line.contains("TensorRT") || line.contains("TPAT") {
            notes.append(line.trimmingCharacters(in: CharacterSet(charactersIn: "- ")))
        }
        return Result(
            buildDirectory: build, kernels: existing("libtpat_kernels.so"), plugins: existing("libtpat_plugins.so"),
            staticPlugins: existing("libtpat_plugins_static.so"), check: existing("tpat_check"), notes: notes,
            toolchain: tools, log: logURL)
    }

    /// A build folder configured with another generator, or for another source folder (OUT was
    /// moved or copied), makes CMake refuse: forget its cache (the build folder is inside OUT).
    static func dropStaleCache(build: URL, source: URL, generator: String) {
        let cache = build.appendingPathComponent("CMakeCache.txt")
        guard let text = try? String(contentsOf: cache, encoding: .utf8) else { return }
        func value(_ key: String) -> String? {
            text.split(separator: "\n").first { $0.hasPrefix(key) }.map { String($0.dropFirst(key.count)) }
        }
        let sameGenerator = value("CMAKE_GENERATOR:INTERNAL=") == generator
        let sameSource =
            value("CMAKE_HOME_DIRECTORY:INTERNAL=").map {
                URL(fileURLWithPath: $0).standardizedFileURL.path == source.standardizedFileURL.path
            } ?? false
        guard !(sameGenerator && sameSource) else { return }
        try? FileManager.default.removeItem(at: cache)
        try? FileManager.default.removeItem(at: build.appendingPathComponent("CMakeFiles"))
    }

    /// CMake's error, whole: from the first line that reports one (CMake Error, a compiler's
    /// `error`, ninja's FAILED:, make's `***`) to the end, at most `limit` lines (then the tail).
    static func errorSection(_ output: String, limit: Int = 400) -> String {
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let markers = ["CMake Error", "FAILED:", "error", "Error", "***"]
        let start = lines.firstIndex { l in markers.contains { l.contains($0) } } ?? 0
        var section = Array(lines[start...])
        while section.last?.trimmingCharacters(in: .whitespaces).isEmpty == true { section.removeLast() }
        if section.count > limit {
            section = ["... (\(section.count - limit) lines left out; see the whole log)"] + section.suffix(limit)
        }
        return section.joined(separator: "\n")
    }
}

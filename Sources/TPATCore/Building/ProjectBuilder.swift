import Foundation

/// Stage 4: the generated CMake project -> libtpat_kernels.so, tpat_check and (with TensorRT
/// headers) libtpat_plugins.so, in OUT/plugins/build.
public struct ProjectBuilder: Sendable {
    public let projectRoot: URL

    public init(projectRoot: URL) { self.projectRoot = projectRoot }

    public struct Result: Sendable {
        public var buildDirectory: URL
        public var kernels: URL?
        public var plugins: URL?
        public var check: URL?
        public var notes: [String]
    }

    public func build(out: URL, architectures: String?, tensorRTRoot: String?, jobs: Int) async throws(TPATError) -> Result {
        let source = out.appendingPathComponent("plugins")
        guard FileManager.default.fileExists(atPath: source.appendingPathComponent("CMakeLists.txt").path) else {
            throw TPATError(.input, "\(out.path) holds no generated plugin project (plugins/CMakeLists.txt): run `tpat generate` first")
        }
        guard let cuda = CUDAToolkit.locate(projectRoot: projectRoot) else {
            throw TPATError(.input, "no CUDA compiler found (set CUDA_PATH, or run `make venv` for the CUDA 13 wheels)")
        }
        let build = source.appendingPathComponent("build")
        var configure = ["-S", source.path, "-B", build.path, "-DCMAKE_BUILD_TYPE=Release",
                         "-DCMAKE_CUDA_COMPILER=\(cuda.nvcc.path)", "-DCUDAToolkit_ROOT=\(cuda.root.path)"]
        if let architectures { configure.append("-DTPAT_CUDA_ARCHITECTURES=\(architectures)") }
        if let root = tensorRTRoot ?? ProcessInfo.processInfo.environment["TensorRT_ROOT"] { configure.append("-DTensorRT_ROOT=\(root)") }
        let c = try await Tool.run("cmake", configure)
        guard c.status == 0 else { throw TPATError(.io, "cmake configure failed: \(Self.lastError(c.output))") }
        let b = try await Tool.run("cmake", ["--build", build.path, "-j", "\(jobs)"])
        guard b.status == 0 else { throw TPATError(.io, "build failed: \(Self.lastError(b.output))") }
        func existing(_ name: String) -> URL? {
            let u = build.appendingPathComponent(name)
            return FileManager.default.fileExists(atPath: u.path) ? u : nil
        }
        var notes: [String] = []
        for line in c.output.split(separator: "\n") where line.contains("TensorRT") || line.contains("TPAT") {
            notes.append(line.trimmingCharacters(in: CharacterSet(charactersIn: "- ")))
        }
        return Result(buildDirectory: build, kernels: existing("libtpat_kernels.so"), plugins: existing("libtpat_plugins.so"),
                      check: existing("tpat_check"), notes: notes)
    }

    static func lastError(_ output: String) -> String {
        let lines = output.split(separator: "\n").map(String.init)
        return lines.last { $0.contains("error") || $0.contains("Error") } ?? lines.last ?? "unknown error"
    }
}

import Foundation
import Subprocess
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Runs external tools (cmake, nvcc) for the build stage.
public enum Tool {
    public struct Result: Sendable {
        public var status: Int32
        public var output: String
    }

    /// Runs `executable` with `arguments`; stdout and stderr are captured together.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                           directory: URL? = nil) async throws(TPATError) -> Result {
        do {
            let exe: Executable = executable.contains("/") ? .path(FilePath(executable)) : .name(executable)
            let r = try await Subprocess.run(
                exe, arguments: Arguments(arguments),
                environment: .inherit.updating(Dictionary(uniqueKeysWithValues: environment.compactMap { k, v in
                    Environment.Key(rawValue: k).map { ($0, Optional(v)) } })),
                workingDirectory: directory.map { FilePath($0.path) },
                output: .string(limit: 64 << 20), error: .combinedWithOutput)
            let status: Int32
            if case .exited(let code) = r.terminationStatus { status = code } else { status = -1 }
            return Result(status: status, output: r.standardOutput)
        } catch {
            throw TPATError(.io, "cannot run \(executable): \(error)")
        }
    }
}

/// Where the CUDA compiler is: a system toolkit (CUDA_PATH, /usr/local/cuda, PATH) or, on
/// machines without one, the CUDA 13 wheels in TPAT's venv.
public struct CUDAToolkit: Sendable {
    public var root: URL
    public var nvcc: URL

    public static func locate(projectRoot: URL) -> CUDAToolkit? {
        let env = ProcessInfo.processInfo.environment
        var roots: [URL] = []
        if let p = env["CUDA_PATH"] ?? env["CUDAToolkit_ROOT"] { roots.append(URL(fileURLWithPath: p)) }
        roots.append(URL(fileURLWithPath: "/usr/local/cuda"))
        let site = projectRoot.appendingPathComponent(".venv/lib")
        if let pythons = try? FileManager.default.contentsOfDirectory(atPath: site.path) {
            for py in pythons.sorted() {
                roots.append(site.appendingPathComponent("\(py)/site-packages/nvidia/cu13"))
            }
        }
        for r in roots where FileManager.default.isExecutableFile(atPath: r.appendingPathComponent("bin/nvcc").path) {
            return CUDAToolkit(root: r, nvcc: r.appendingPathComponent("bin/nvcc"))
        }
        return nil
    }
}

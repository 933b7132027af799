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
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:],
        directory: URL? = nil
    ) async throws(TPATError) -> Result {
        do {
            let exe: Executable = executable.contains("/") ? .path(FilePath(executable)) : .name(executable)
            let r = try await Subprocess.run(
                exe, arguments: Arguments(arguments),
                environment: .inherit.updating(
                    Dictionary(
                        uniqueKeysWithValues: environment.compactMap { k, v in
                            Environment.Key(rawValue: k).map { ($0, Optional(v)) }
                        })),
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

/// The venv TPAT runs from: ROOT/.venv, or the folder holding $TPAT_PYTHON. Its bin/ has the
/// pinned cmake and ninja wheels; its site-packages/nvidia/cu13 the CUDA 13 compiler wheels.
public struct Venv: Sendable {
    public var bin: URL

    public static func locate(projectRoot: URL) -> [Venv] {
        var bins: [URL] = []
        if let py = ProcessInfo.processInfo.environment["TPAT_PYTHON"], py.contains("/") {
            bins.append(URL(fileURLWithPath: py).deletingLastPathComponent())  // not resolved: venv python is a symlink
        }
        bins.append(projectRoot.appendingPathComponent(".venv/bin"))
        var seen = Set<String>()
        return bins.filter { seen.insert($0.standardizedFileURL.path).inserted }.map(Venv.init)
    }

    /// `name` in bin/ when executable.
    public func tool(_ name: String) -> URL? {
        let u = bin.appendingPathComponent(name)
        return FileManager.default.isExecutableFile(atPath: u.path) ? u : nil
    }

    /// lib/python*/site-packages/nvidia/cu13 (the CUDA 13 wheels' toolkit root).
    public var cudaWheelRoots: [URL] {
        let lib = bin.deletingLastPathComponent().appendingPathComponent("lib")
        let pythons = ((try? FileManager.default.contentsOfDirectory(atPath: lib.path)) ?? []).filter { $0.hasPrefix("python") }.sorted()
        return pythons.map { lib.appendingPathComponent("\($0)/site-packages/nvidia/cu13") }
    }
}

/// Where the CUDA compiler is: the CUDA 13 wheels in TPAT's venv first, else a system toolkit
/// (CUDA_PATH / CUDAToolkit_ROOT, /usr/local/cuda, nvcc on PATH).
public struct CUDAToolkit: Sendable {
    public var root: URL
    public var nvcc: URL

    public static func locate(projectRoot: URL) -> CUDAToolkit? {
        let env = ProcessInfo.processInfo.environment
        var roots: [URL] = Venv.locate(projectRoot: projectRoot).flatMap(\.cudaWheelRoots)
        for key in ["CUDA_PATH", "CUDAToolkit_ROOT"] { if let p = env[key], !p.isEmpty { roots.append(URL(fileURLWithPath: p)) } }
        roots.append(URL(fileURLWithPath: "/usr/local/cuda"))
        if let nvcc = Toolchain.onPath("nvcc") { roots.append(nvcc.deletingLastPathComponent().deletingLastPathComponent()) }
        for r in roots where FileManager.default.isExecutableFile(atPath: r.appendingPathComponent("bin/nvcc").path) {
            return CUDAToolkit(root: r, nvcc: r.appendingPathComponent("bin/nvcc"))
        }
        return nil
    }
}

/// The tools `tpat build` runs: cmake and ninja from the venv (the pinned `cmake`/`ninja` wheels)
/// first, else from PATH; nvcc as `CUDAToolkit` finds it. Without ninja CMake's default
/// generator (make) is used.
public struct Toolchain: Sendable {
    public var cmake: URL
    public var ninja: URL?
    public var cuda: CUDAToolkit

    public static func locate(projectRoot: URL) throws(TPATError) -> Toolchain {
        let venvs = Venv.locate(projectRoot: projectRoot)
        func find(_ name: String) -> URL? { venvs.lazy.compactMap { $0.tool(name) }.first ?? onPath(name) }
        guard let cmake = find("cmake") else {
            throw TPATError(.input, "no cmake found (run `make venv`: python/requirements.lock pins the cmake wheel)")
        }
        guard let cuda = CUDAToolkit.locate(projectRoot: projectRoot) else {
            throw TPATError(.input, "no CUDA compiler found (run `make venv` for the CUDA 13 wheels, or set CUDA_PATH)")
        }
        return Toolchain(cmake: cmake, ninja: find("ninja"), cuda: cuda)
    }

    /// The first executable `name` in $PATH.
    public static func onPath(_ name: String) -> URL? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") where !dir.isEmpty {
            let u = URL(fileURLWithPath: String(dir)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        return nil
    }
}

import ArgumentParser
import Foundation
import TPATCore

struct Build: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Configure and build the generated CMake project (OUT/plugins/build).")

    @Argument(help: "The folder `tpat generate` wrote.") var out: String
    @Option(help: "CUDA architectures, e.g. \"80;86;89;90\" (default; PTX for the last).") var arch: String?
    @Option(name: .customLong("tensorrt-root"), help: "TensorRT install (include/NvInfer.h); else $TensorRT_ROOT.") var tensorRTRoot: String?
    @Option(help: "Parallel build jobs.") var jobs = ProcessInfo.processInfo.activeProcessorCount

    func run() async throws {
        try await guarded { () async throws(TPATError) in
            let bridge = try PythonBridge.locate()
            let r = try await ProjectBuilder(projectRoot: bridge.root).build(
                out: URL(fileURLWithPath: out), architectures: arch, tensorRTRoot: tensorRTRoot, jobs: jobs)
            print("cmake: \(r.toolchain.cmake.path)")
            print("ninja: \(r.toolchain.ninja?.path ?? "not found (CMake's default generator)")")
            print("nvcc:  \(r.toolchain.cuda.nvcc.path)")
            for n in r.notes { print(n) }
            print("libtpat_kernels.so: \(r.kernels?.path ?? "not built")")
            print("tpat_check:         \(r.check?.path ?? "not built")")
            print("libtpat_plugins.so: \(r.plugins?.path ?? "not built (no TensorRT headers: set --tensorrt-root or TensorRT_ROOT)")")
            if let s = r.staticPlugins { print("libtpat_plugins_static.so: \(s.path) (registers itself when loaded: trtexec --staticPlugins)") }
        }
    }
}

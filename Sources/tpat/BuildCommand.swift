import ArgumentParser
import Foundation
import TPATCore

struct Build: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Configure and build the generated CMake project (OUT/plugins/build).")

    @Argument(help: "The folder `tpat generate` wrote.") var out: String
    @Option(
        help: "GPU architectures to compile for, e.g. 90, sm_90 or \"80;86;89;90\" (default, PTX for the last; 90a if planned for 90a)."
    ) var arch: String?
    @Option(name: .customLong("tensorrt-root"), help: "TensorRT install (include/NvInfer.h); else $TensorRT_ROOT.") var tensorRTRoot:
        String?
    @Option(help: "Parallel build jobs.") var jobs = ProcessInfo.processInfo.activeProcessorCount
    @OptionGroup var log: LogOptions

    func run() async throws {
        try await guarded { () async throws(TPATError) in
            let logger = log.bootstrap()
            var architectures: String?
            if let arch { architectures = GPUArchitecture.cmake(try GPUArchitecture.list(arch)) }
            let report = (try? Data(contentsOf: URL(fileURLWithPath: out).appendingPathComponent("tpat-generate.json")))
                .flatMap { try? JSONDecoder().decode(Generator.Report.self, from: $0) }
            // The project's own default (CMakeLists.txt): "90a" alone for kernels planned for sm_90a
            if architectures == nil, let t = report?.target { architectures = Generator.defaultArchitectures(target: t) }
            logger.debug("building \(out.debugDescription) for \(architectures ?? "80;86;89;90")")
            // A generate that converted nothing leaves no project: nothing to build is not an error.
            if let report, report.plugins.isEmpty {
                print("Nothing to build: \(out)/tpat-generate.json lists no plugin (outcome \(report.outcome.rawValue)).")
                return
            }
            let bridge = try PythonBridge.locate()
            let r = try await ProjectBuilder(projectRoot: bridge.root).build(
                out: URL(fileURLWithPath: out), architectures: architectures, tensorRTRoot: tensorRTRoot, jobs: jobs)
            print("cmake: \(r.toolchain.cmake.path)")
            print("ninja: \(r.toolchain.ninja?.path ?? "not found (CMake's default generator)")")
            print("nvcc:  \(r.toolchain.cuda.nvcc.path)")
            for n in r.notes { print(n) }
            print("libtpat_kernels.so: \(r.kernels?.path ?? "not built")")
            print("tpat_check:         \(r.check?.path ?? "not built")")
            print("libtpat_plugins.so: \(r.plugins?.path ?? "not built (no TensorRT headers: set --tensorrt-root or TensorRT_ROOT)")")
            if let s = r.staticPlugins {
                print("libtpat_plugins_static.so: \(s.path) (registers itself when loaded: trtexec --staticPlugins)")
            }
        }
    }
}

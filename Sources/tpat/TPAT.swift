import ArgumentParser
import Foundation
import TPATCore

/// `tpat`: TVM Plugin Autogen Tool. Turns ONNX nodes TensorRT cannot import into TensorRT
/// IPluginV3 plugins with TVM-generated CUDA kernels.
@main
struct TPAT: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tpat",
        abstract: "TVM Plugin Autogen Tool: TensorRT plugins for the ONNX nodes TensorRT cannot import.",
        discussion: """
            GPU architectures are written 90 or sm_90, lists as "80;86;89;90". Every command takes \
            -v/--verbose and -q/--quiet; results go to stdout, progress and diagnostics to stderr.

            \(TPATExitCode.helpText)
            """,
        version: "0.1.0",
        subcommands: [Inspect.self, Plan.self, Generate.self, Build.self, Engine.self, Verify.self, Bench.self, Tune.self, Demo.self]
    )

    /// ArgumentParser's own usage errors exit 64; TPAT's table says 2 for bad usage.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var async = command as? AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                FileHandle.standardError.write(Data("error: \(message(for: error))\n".utf8))
                Foundation.exit(TPATExitCode.usage.rawValue)
            }
            exit(withError: error)
        }
    }
}

extension TPATExitCode {
    var argumentParser: ExitCode { ExitCode(rawValue) }
}

/// Runs a command body; a TPATError becomes one `error: ...` line on stderr and its exit code
/// (2 for bad input or usage, 1 for a failed check). SIGINT and SIGTERM end the bridge's Python
/// process groups and remove temporary folders first.
func guarded(_ body: () async throws(TPATError) -> Void) async throws {
    ChildProcesses.shared.installSignalHandlers()
    do {
        try await body()
        ChildProcesses.shared.parkIfStopping()
    } catch {
        ChildProcesses.shared.parkIfStopping()
        if !error.detail.isEmpty { FileHandle.standardError.write(Data((SafeText.terminalLines(error.detail) + "\n").utf8)) }
        // A planning failure names its reason code, as generate's report does.
        let code = error.kind == .plan ? error.code.map { " [\($0)]" } ?? "" : ""
        FileHandle.standardError.write(Data("error: \(SafeText.terminal(error.message))\(code)\n".utf8))
        throw error.exitCode.argumentParser
    }
}

func printDiagnostics(_ collector: DiagnosticsCollector) {
    for d in collector.diagnostics {
        FileHandle.standardError.write(Data((SafeText.terminal(d.rendered) + "\n").utf8))
    }
}

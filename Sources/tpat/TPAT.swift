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
        version: "0.1.0",
        subcommands: [Inspect.self, Plan.self, Generate.self, Build.self, Engine.self, Verify.self, Bench.self, Tune.self, Demo.self]
    )
}

/// Runs a command body; a TPATError becomes one `error: ...` line on stderr and exit code 2.
/// SIGINT and SIGTERM end the bridge's Python process groups and remove temporary folders first.
func guarded(_ body: () async throws(TPATError) -> Void) async throws {
    ChildProcesses.shared.installSignalHandlers()
    do {
        try await body()
    } catch {
        FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
        throw ExitCode(2)
    }
}

func printDiagnostics(_ collector: DiagnosticsCollector) {
    for d in collector.diagnostics {
        FileHandle.standardError.write(Data((d.rendered + "\n").utf8))
    }
}

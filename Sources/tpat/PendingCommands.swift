import ArgumentParser
import TPATCore

/// Subcommands whose stage is not built yet: they say so and exit 2.
protocol PendingCommand: AsyncParsableCommand {
    static var issue: String { get }
}

extension PendingCommand {
    func run() async throws {
        try await guarded { () async throws(TPATError) in
            throw TPATError(.notImplemented, "tpat \(Self._commandName) is not implemented yet (\(Self.issue))")
        }
    }
}

struct Engine: PendingCommand {
    static let configuration = CommandConfiguration(abstract: "Build a TensorRT / TensorRT-RTX engine with the plugins (not implemented yet).")
    static let issue = "issue 4: plugins"
    @Argument var args: [String] = []
}

struct Verify: PendingCommand {
    static let configuration = CommandConfiguration(abstract: "Check every plugin against ONNX Runtime on the GPU (not implemented yet).")
    static let issue = "issue 5: proof on the GPU"
    @Argument var args: [String] = []
}

struct Bench: PendingCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmark plugins against PyTorch on the GPU (not implemented yet).")
    static let issue = "issue 5: proof on the GPU"
    @Argument var args: [String] = []
}

struct Tune: PendingCommand {
    static let configuration = CommandConfiguration(abstract: "Tune plugin kernels with MetaSchedule (not implemented yet).")
    static let issue = "issue 6: fast kernels"
    @Argument var args: [String] = []
}

struct Demo: PendingCommand {
    static let configuration = CommandConfiguration(abstract: "Run the whole pipeline on the built-in example (for now: `make demo` runs inspect).")
    static let issue = "issue 4: plugins; `make demo` runs inspect on examples/demo.onnx meanwhile"
    @Argument var args: [String] = []
}

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



struct Tune: PendingCommand {
    static let configuration = CommandConfiguration(abstract: "Tune plugin kernels with MetaSchedule (not implemented yet).")
    static let issue = "issue 6: fast kernels"
    @Argument var args: [String] = []
}


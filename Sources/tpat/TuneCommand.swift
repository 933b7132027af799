import ArgumentParser
import Foundation
import TPATCore

struct Tune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "On a GPU: tune the kernels of every plugin's tactics with MetaSchedule; tuned plans lead the tactics (rebuild after).")

    @Argument(help: "The folder `tpat generate` wrote.") var out: String
    @Option(help: "MetaSchedule trials per plugin (0: no search; re-plan from the database in OUT/tuning, re-render the sources).")
    var trials = 64
    @Option(help: "Time budget for the whole folder, in minutes.") var timeBudget: Double?
    @Option(
        name: .customLong("rpc-tracker"),
        help: ArgumentHelp(
            "Time candidates on the servers of TVM's RPC tracker at HOST:PORT (with --rpc-key); they are built here.",
            valueName: "host:port")) var rpcTracker: String?
    @Option(
        name: .customLong("rpc-key"),
        help: ArgumentHelp("The key the RPC servers registered with (python -m tvm.exec.rpc_server --key KEY).", valueName: "key"))
    var rpcKey: String?
    @Option(name: .customLong("rpc-workers"), help: "Concurrent remote measurements (default 1; up to the servers behind the key).")
    var rpcWorkers: Int?
    @OptionGroup var log: LogOptions

    func run() async throws {
        try await guarded { () async throws(TPATError) in
            let logger = log.bootstrap()
            let rpc = try Tuner.RPC.from(tracker: rpcTracker, key: rpcKey, workers: rpcWorkers)
            let diagnostics = DiagnosticsCollector()
            let results = try await Tuner(bridge: try PythonBridge.locate(), diagnostics: diagnostics).tune(
                out: URL(fileURLWithPath: out), trials: trials, timeBudgetMinutes: timeBudget, rpc: rpc)
            logger.report(diagnostics)
            for r in results {
                // per searched task: its best time, and the lowering it belongs to and the verdict when the bridge says them
                let best = r.answer.tasks.compactMap { t in
                    t.bestUs.map { us in
                        let what = [t.lowering.map { "\($0) \(t.name)" }, t.kept.map { $0 ? "kept" : "dropped" }].compactMap { $0 }
                        return String(format: "%.1f us", us) + (what.isEmpty ? "" : " (\(what.joined(separator: ", ")))")
                    }
                }.joined(separator: ", ")
                let how = [
                    r.answer.costModel.map { "cost model \($0)" }, r.answer.builder.map { "builder \($0)" },
                    r.answer.runner.map { "runner \($0)" },
                ].compactMap { $0 }
                print(
                    "\(r.plugin): \(r.answer.tasks.count) task(s), \(r.answer.tasks.map(\.trials).reduce(0, +)) trials, best \(best.isEmpty ? "-" : best); \(r.tactics) tactic(s)\(how.isEmpty ? "" : " [\(how.joined(separator: ", "))]")\(r.answer.interrupted ? " (interrupted: kept what was found)" : "")"
                )
            }
            print("Database in \(out)/tuning; rebuild with `tpat build \(out)`.")
        }
    }
}

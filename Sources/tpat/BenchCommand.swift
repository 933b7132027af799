import ArgumentParser
import Foundation
import TPATCore

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "On a GPU: time every plugin against PyTorch eager and torch.compile (markdown report + PNG chart).")

    @Argument(help: "Folders `tpat generate` wrote (built with `tpat build`).") var outs: [String] = []
    @Option(help: "A suite folder from `python bench/prepare.py --carry DIR`: every case of bench/cases.json in one run.") var suite:
        String?
    @Flag(help: "Clear the 50 MB L2 before every timed run.") var flushL2 = false
    @Option(help: "Timed runs per measurement (median).") var runs = 200
    @Option(help: "Where the report goes.") var reportDir = "bench/results"
    @Option(help: "File stem of the report.") var name = "bench"
    @OptionGroup var log: LogOptions

    func run() async throws {
        try await guarded { () async throws(TPATError) in
            _ = log.bootstrap()
            guard !outs.isEmpty || suite != nil else { throw TPATError(.input, "name at least one folder (or --suite DIR)") }
            let r = try await Benchmark(bridge: try PythonBridge.locate()).run(
                outs: outs.map { URL(fileURLWithPath: $0) }, suite: suite.map { URL(fileURLWithPath: $0) }, flushL2: flushL2, runs: runs,
                reportDirectory: URL(fileURLWithPath: reportDir), name: name)
            if let text = try? String(contentsOfFile: r.report, encoding: .utf8) { print(text) }
            print("report: \(r.report)")
            if let chart = r.chart { print("chart: \(chart)") }
            if !r.failed.isEmpty {
                let names = r.failed.map { "\($0.plugin ?? "?") (\($0.status ?? "?"))" }.joined(separator: ", ")
                throw TPATError(.failed, "\(r.failed.count) plugin(s) did not pass: \(names)")
            }
        }
    }
}

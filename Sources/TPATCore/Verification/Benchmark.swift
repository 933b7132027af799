import Foundation

/// Stage 6b: every plugin against PyTorch eager and torch.compile on the same inputs, kernel-only
/// (CUDA graphs) and host-inclusive, through the bridge's "bench" command on a GPU machine
/// (python/tpat_bridge/tools/bench/; formulas and method in bench/README.md).
public struct Benchmark: Sendable {
    public let bridge: PythonBridge

    public init(bridge: PythonBridge) { self.bridge = bridge }

    struct Request: Encodable {
        var command = "bench"
        var outs: [String]
        var flush_l2: Bool
        var runs: Int
        var report_dir: String
        var cases: String?
        var name: String
    }

    public struct Result: Decodable, Sendable {
        public var report: String
        public var chart: String?
        public var resultsJSON: String?
        public var copyGbps: Double?
        /// One row per plugin; status "ok", "mismatch" (output differs from PyTorch), "error" or "skipped".
        public var results: [Row]?
        public struct Row: Decodable, Sendable {
            public var plugin: String?
            public var status: String?
            public var error: String?
        }
        /// Rows whose plugin did not pass: a mismatch against PyTorch or an error.
        public var failed: [Row] { (results ?? []).filter { $0.status == "mismatch" || $0.status == "error" } }
        enum CodingKeys: String, CodingKey { case report, chart, resultsJSON = "results_json", copyGbps = "copy_gbps", results }
    }

    public func run(outs: [URL], flushL2: Bool, runs: Int, reportDirectory: URL, name: String) async throws(TPATError) -> Result {
        for out in outs where !FileManager.default.fileExists(atPath: out.appendingPathComponent("plugins/build/libtpat_kernels.so").path) {
            throw TPATError(.input, "\(out.path) is not built (no plugins/build/libtpat_kernels.so): run `tpat build \(out.path)`")
        }
        let cases = bridge.root.appendingPathComponent("bench/cases.json")
        return try await bridge.call(Request(outs: outs.map(\.path), flush_l2: flushL2, runs: runs, report_dir: reportDirectory.path,
                                             cases: FileManager.default.fileExists(atPath: cases.path) ? cases.path : nil, name: name),
                                     as: Result.self)
    }
}

import Foundation

/// Stage 6b: every plugin against PyTorch eager and torch.compile on the same inputs, kernel-only
/// (CUDA graphs) and host-inclusive, through the bridge's "bench" command on a GPU machine
/// (python/tpat_bridge/tools/bench/; formulas and method in bench/README.md). With a suite folder
/// (bench/prepare.py: one OUT per case of bench/cases.json) every case runs in one go, and the
/// cases TPAT did not plan are rows of their own with PyTorch timed alone.
public struct Benchmark: Sendable {
    public let bridge: PythonBridge

    public init(bridge: PythonBridge) { self.bridge = bridge }

    struct Request: Encodable {
        var command = "bench"
        var outs: [String]
        var suite_dir: String?
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
        /// One row per plugin or case; status "ok", "mismatch" (output differs from PyTorch), "error",
        /// "skipped" or "not_planned" (a suite case without a plugin: reported, not a failure).
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

    public func run(outs: [URL], suite: URL? = nil, flushL2: Bool, runs: Int, reportDirectory: URL, name: String) async throws(TPATError)
        -> Result
    {
        if let suite, !FileManager.default.fileExists(atPath: suite.path) {
            throw TPATError(.input, "no suite folder \(suite.path): run `python bench/prepare.py --carry \(suite.path)`")
        }
        for out in outs where !FileManager.default.fileExists(atPath: out.appendingPathComponent("plugins/build/libtpat_kernels.so").path) {
            throw TPATError(.input, "\(out.path) is not built (no plugins/build/libtpat_kernels.so): run `tpat build \(out.path)`")
        }
        let cases = bridge.root.appendingPathComponent("bench/cases.json")
        if suite != nil, !FileManager.default.fileExists(atPath: cases.path) {
            throw TPATError(.input, "a suite run needs \(cases.path)")
        }
        return try await bridge.call(
            Request(
                outs: outs.map(\.path), suite_dir: suite?.path, flush_l2: flushL2, runs: runs, report_dir: reportDirectory.path,
                cases: FileManager.default.fileExists(atPath: cases.path) ? cases.path : nil, name: name),
            as: Result.self)
    }
}

import Foundation

/// Tuning (`tpat tune`, on a GPU machine): MetaSchedule searches schedules for every plugin's
/// kernels (database in OUT/tuning/<P>, kept and reused); the plugin is then re-planned with the
/// tuned schedules and gets them as tactic 0, its earlier tactics (dlight defaults, TVM's own
/// lowering) staying as further tactics for TensorRT to time.
public struct Tuner: Sendable {
    public let bridge: PythonBridge
    public let diagnostics: DiagnosticsCollector

    public init(bridge: PythonBridge, diagnostics: DiagnosticsCollector) {
        self.bridge = bridge
        self.diagnostics = diagnostics
    }

    struct Request: Encodable {
        var command = "tune"
        var model_path: String
        var target: String
        var work_dir: String
        var trials: Int
        var time_budget_s: Double?
        var rpc: RPC?
    }

    /// Measuring through TVM's RPC tracker (`--rpc-tracker HOST:PORT --rpc-key KEY [--rpc-workers N]`):
    /// the request's "rpc" field. Candidates are built on this host and timed on the servers
    /// registered under `key` (docs/tuning.md).
    public struct RPC: Encodable, Equatable, Sendable {
        public var tracker: String
        public var key: String
        /// Concurrent remote measurements (the bridge's default: 1).
        public var maxWorkers: Int?
        enum CodingKeys: String, CodingKey { case tracker, key, maxWorkers = "max_workers" }

        /// The CLI's flags: nil when none is given; both tracker and key, or an error.
        public static func from(tracker: String?, key: String?, workers: Int?) throws(TPATError) -> RPC? {
            switch (tracker, key) {
            case (nil, nil):
                if workers != nil { throw TPATError(.input, "--rpc-workers needs --rpc-tracker and --rpc-key") }
                return nil
            case (nil, _): throw TPATError(.input, "--rpc-key needs --rpc-tracker HOST:PORT")
            case (_, nil): throw TPATError(.input, "--rpc-tracker needs --rpc-key KEY (the key the RPC servers registered with)")
            case let (t?, k?):
                let parts = t.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count >= 2, !parts.dropLast().joined(separator: ":").isEmpty,
                    let port = Int(parts.last!), (1...65535).contains(port)
                else {
                    throw TPATError(.input, "--rpc-tracker must be HOST:PORT (port 1-65535), not '\(t)'")
                }
                guard !k.isEmpty, !k.contains(":") else { throw TPATError(.input, "--rpc-key must be a non-empty key without ':'") }
                if let w = workers, w < 1 { throw TPATError(.input, "--rpc-workers must be at least 1") }
                return RPC(tracker: t, key: k, maxWorkers: workers)
            }
        }
    }

    /// The bridge request for one plugin (encoded as the bridge reads it; nil fields left out).
    static func request(modelPath: String, target: String, workDir: String, trials: Int, timeBudgetS: Double?, rpc: RPC?) -> Request {
        Request(model_path: modelPath, target: target, work_dir: workDir, trials: trials, time_budget_s: timeBudgetS, rpc: rpc)
    }

    public struct Answer: Decodable, Sendable {
        public struct Task: Decodable, Sendable {
            public var name: String
            public var trials: Int
            public var bestUs: Double?
            enum CodingKeys: String, CodingKey { case name, trials, bestUs = "best_us" }
        }
        public var tasks: [Task]
        /// "xgb" or "random" (no xgboost in the bridge's Python).
        public var costModel: String?
        /// How candidates were built and timed: "local (N workers)" (worker processes: parallel
        /// builds, a crashing candidate fails alone) or "in-process" (serial; no cloudpickle/psutil,
        /// or TPAT_TUNE_MEASURER=inprocess); nil when nothing was searched.
        public var builder: String?
        /// Where candidates were timed: "local", "rpc (key K at host:port)" or "in-process"; nil
        /// when nothing was searched or from bridges before the field existed.
        public var runner: String?
        public var interrupted: Bool
        init(tasks: [Task], costModel: String?, builder: String? = nil, runner: String? = nil, interrupted: Bool) {
            self.tasks = tasks; self.costModel = costModel; self.builder = builder; self.runner = runner; self.interrupted = interrupted
        }
        enum CodingKeys: String, CodingKey { case tasks, costModel = "cost_model", builder, runner, interrupted }
    }

    public struct Result: Sendable {
        public var plugin: String
        public var answer: Answer
        public var tactics: Int
    }

    /// The plugins of a generated project, read back from their plan files.
    static func plugins(in project: URL, coveredNodes: [String: [String]]) throws(TPATError) -> [PluginSource] {
        let fm = FileManager.default
        var out: [PluginSource] = []
        for name in ((try? fm.contentsOfDirectory(atPath: project.path)) ?? []).sorted() {
            let dir = project.appendingPathComponent(name)
            let first = dir.appendingPathComponent("\(name).plan.json")
            guard fm.fileExists(atPath: first.path) else { continue }
            // The folder name becomes C identifiers in the re-rendered sources.
            guard SafeText.isIdentifier(name) else {
                throw TPATError(.input, "plugin folder '\(SafeText.comment(name))' in \(project.path) is not a plugin name TPAT writes")
            }
            var tactics: [KernelPlan] = []
            var k = 0
            while true {
                let file = k == 0 ? first : dir.appendingPathComponent("\(name).tactic\(k).plan.json")
                guard let data = try? Data(contentsOf: file) else { break }
                tactics.append(try KernelPlan.decode(data))
                k += 1
            }
            let model = try ONNXModel.load(path: dir.appendingPathComponent("\(name).onnx").path)
            let node = ExtractedNode(
                sourceName: name, opType: tactics[0].opType, model: model, sourceInputs: [], sourceOutputs: [],
                symbols: [:], graphInputSources: [], graphOutputSources: [], demoted: [])
            out.append(PluginSource(name: name, node: node, tactics: tactics, coveredNodes: coveredNodes[name] ?? []))
        }
        return out
    }

    public func tune(out: URL, trials: Int, timeBudgetMinutes: Double?, rpc: RPC? = nil) async throws(TPATError) -> [Result] {
        let project = out.appendingPathComponent("plugins")
        let reportURL = out.appendingPathComponent("tpat-generate.json")
        guard let reportData = try? Data(contentsOf: reportURL),
            let report = try? JSONDecoder().decode(Generator.Report.self, from: reportData)
        else {
            throw TPATError(.input, "\(out.path) holds no `tpat generate` output (tpat-generate.json)")
        }
        let covered = Dictionary(report.plugins.map { ($0.name, $0.nodes) }, uniquingKeysWith: { a, _ in a })
        var sources = try Self.plugins(in: project, coveredNodes: covered)
        guard !sources.isEmpty else { throw TPATError(.input, "no plugin in \(project.path)") }
        let planner = Planner(bridge: bridge)
        let tvm =
            trials > 0 || FileManager.default.fileExists(atPath: out.appendingPathComponent("tuning").path)
            ? try await planner.tvmVersion() : ""
        let templates = try TemplateSet(directory: bridge.root.appendingPathComponent("plugin-runtime/templates"))
        let launchers = LauncherRenderer(templates: templates), renderer = PluginRenderer(templates: templates)
        var results: [Result] = []
        let budget = timeBudgetMinutes.map { $0 * 60 / Double(sources.count) }
        for i in sources.indices {
            let s = sources[i]
            let work = out.appendingPathComponent("tuning/\(s.name)")
            try? FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
            var answer = Answer(tasks: [], costModel: nil, interrupted: false)
            if trials > 0 {
                FileHandle.standardError.write(Data("== tuning \(s.name) (\(s.plan.opType)), \(trials) trials\n".utf8))
                // A failed search (a candidate can crash the measuring process) costs this plugin
                // its search, not the folder: what the database already holds is still used.
                do throws(TPATError) {
                    answer = try await bridge.call(
                        Self.request(
                            modelPath: project.appendingPathComponent("\(s.name)/\(s.name).onnx").path,
                            target: s.plan.target.sm, workDir: work.path, trials: trials, timeBudgetS: budget, rpc: rpc),
                        as: Answer.self, progress: true)
                } catch {
                    diagnostics.emit(.init(.warning, "\(s.name): tuning failed: \(error.message)"))
                }
            }
            do throws(TPATError) {
                if FileManager.default.fileExists(atPath: work.appendingPathComponent("database_workload.json").path) {
                    let tuned = try await planner.plan(s.node, target: s.plan.target.sm, tvmVersion: tvm, database: work).plan
                    // The tuned plan leads; earlier tuned plans go, the other tactics stay behind it.
                    let rest = s.tactics.filter { $0.tuningDatabase == nil && $0.cudaSource != tuned.cudaSource }
                    sources[i].tactics = [tuned] + rest
                }
                let files = try Generator.pluginFiles(sources[i], launchers: launchers, plugins: renderer)
                try AtomicFiles.write(files.map { (project.appendingPathComponent($0.0), $0.1) })
            } catch {
                diagnostics.emit(.init(.warning, "\(s.name): tuned schedules not used: \(error.message)"))
            }
            results.append(Result(plugin: s.name, answer: answer, tactics: sources[i].tactics.count))
        }
        // Tactic files may have changed: the project's sources list and spec list follow.
        let name = Generator.projectName(modelPath: report.model)
        try AtomicFiles.write([
            (
                project.appendingPathComponent("CMakeLists.txt"),
                Data(
                    try Generator.cmakeLists(sources: sources, name: name, runtime: bridge.root.appendingPathComponent("plugin-runtime"))
                        .utf8)
            ),
            (project.appendingPathComponent("tpat_plugin_specs.cpp"), Data(try renderer.specsSource(sources).utf8)),
        ])
        return results
    }
}

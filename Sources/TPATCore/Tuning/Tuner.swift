import Foundation

/// Tuning (`tpat tune`, on a GPU machine): MetaSchedule searches schedules for the kernels of every
/// lowering a plugin has tactics of (TPAT's and TVM's; one database per plugin in OUT/tuning/<P>,
/// kept and reused); each of those tactics is then re-planned with the database, and where tuned
/// records apply the tuned plans lead, the untuned tactics staying behind them for TensorRT to time.
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
        /// The lowerings whose functions are searched ("tpat", "tvm"): those of the plugin's tactics.
        var lowering: [String]?
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
    static func request(
        modelPath: String, target: String, workDir: String, trials: Int, timeBudgetS: Double?, rpc: RPC?, lowerings: [String]? = nil
    ) -> Request {
        Request(
            model_path: modelPath, target: target, work_dir: workDir, trials: trials, time_budget_s: timeBudgetS, lowering: lowerings,
            rpc: rpc)
    }

    /// The planner's name of the lowering that made `plan` ("tpat" or "tvm": `plan`'s `lowering`
    /// argument, the tune request's "lowering").
    static func loweringName(_ plan: KernelPlan) -> String { plan.usesTPATLowering ? "tpat" : "tvm" }

    /// The lowerings of a plugin's untuned tactics, in tactic order: what `tune` searches.
    static func lowerings(of tactics: [KernelPlan]) -> [String] {
        var out: [String] = []
        for t in tactics where t.tuningDatabase == nil && !out.contains(loweringName(t)) { out.append(loweringName(t)) }
        return out
    }

    /// The tactic list of a plugin with a database: the tuned plans (a record applied: `tuningDatabase`
    /// set) whose kernels differ from every untuned tactic's, one per CUDA source, in the order of
    /// the untuned tactics they were re-planned from; then the untuned tactics (earlier tuned
    /// plans dropped). TensorRT times them all at engine build and keeps the fastest.
    static func ordered(tuned: [KernelPlan], untuned: [KernelPlan]) -> [KernelPlan] {
        let plain = untuned.filter { $0.tuningDatabase == nil }
        var lead: [KernelPlan] = []
        for t in tuned where t.tuningDatabase != nil && !(plain + lead).contains(where: { $0.cudaSource == t.cudaSource }) {
            lead.append(t)
        }
        return lead + plain
    }

    /// Re-plans every lowering of `untuned` with the database (`planner.plan(..., lowering:, database:)`)
    /// and orders the result (see `ordered`). A lowering whose re-plan fails keeps its untuned
    /// tactic only; the failures come back as messages.
    static func tactics(
        untuned: [KernelPlan], node: ExtractedNode, target: String, tvmVersion: String, database: URL, planner: Planner
    ) async -> (tactics: [KernelPlan], failures: [String]) {
        var tuned: [KernelPlan] = [], failures: [String] = []
        for lowering in lowerings(of: untuned) {
            do throws(TPATError) {
                tuned.append(
                    try await planner.plan(node, target: target, tvmVersion: tvmVersion, lowering: lowering, database: database).plan)
            } catch {
                failures.append("\(lowering) lowering: \(error.message)")
            }
        }
        return (ordered(tuned: tuned, untuned: untuned), failures)
    }

    public struct Answer: Decodable, Sendable {
        public struct Task: Decodable, Sendable {
            public var name: String
            /// The lowering whose function this is: "tpat", "tvm" or "tpat+tvm" (nil from older bridges).
            public var lowering: String?
            public var trials: Int
            public var bestUs: Double?
            /// Whether the task's records stay in the database (its best beat the default schedule by >= 3%).
            public var kept: Bool?
            /// Why the task was not searched (hand-scheduled, symbolic shapes...).
            public var skipped: String?
            enum CodingKeys: String, CodingKey { case name, lowering, trials, bestUs = "best_us", kept, skipped }
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
                            target: s.plan.target.sm, workDir: work.path, trials: trials, timeBudgetS: budget, rpc: rpc,
                            lowerings: Self.lowerings(of: s.tactics)),
                        as: Answer.self, progress: true)
                } catch {
                    diagnostics.emit(.init(.warning, "\(s.name): tuning failed: \(error.message)"))
                }
            }
            do throws(TPATError) {
                if FileManager.default.fileExists(atPath: work.appendingPathComponent("database_workload.json").path) {
                    // Tuned plans lead; earlier tuned plans go, the untuned tactics stay behind them.
                    let (tactics, failures) = await Self.tactics(
                        untuned: s.tactics, node: s.node, target: s.plan.target.sm, tvmVersion: tvm, database: work, planner: planner)
                    for f in failures { diagnostics.emit(.init(.warning, "\(s.name): tuned schedules not used for the \(f)")) }
                    sources[i].tactics = tactics
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
                    try Generator.cmakeLists(
                        sources: sources, name: name, runtime: bridge.root.appendingPathComponent("plugin-runtime"), target: report.target
                    )
                    .utf8)
            ),
            (project.appendingPathComponent("tpat_plugin_specs.cpp"), Data(try renderer.specsSource(sources).utf8)),
        ])
        return results
    }
}

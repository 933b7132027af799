import Foundation
import Logging
import Mustache

/// Stage 3: selected nodes -> plugin sources and the rewritten model, written atomically into
/// OUT (OUT/<model>.onnx and OUT/plugins/, one CMake project for the model).
public struct Generator: Sendable {
    /// Which nodes to convert: `auto` (what the installed parser rejects, else what the rules
    /// reject), plus named nodes and op types, minus the excluded ones. Blocked nodes
    /// (PluginBlockers) are never converted.
    public struct Selection: Sendable, Equatable {
        public var auto: Bool
        public var nodes: [String]
        public var ops: [String]
        public var excludeNodes: [String]
        public var excludeOps: [String]
        /// Node indices chosen by a caller (`generate --auto --backend qnn`: the nodes QNN refuses).
        public var indices: [Int]
        /// The indices are a vendor backend's choice (like `auto`): none chosen is "nothing to convert".
        public var byBackend = false
        public init(
            auto: Bool = false, nodes: [String] = [], ops: [String] = [], excludeNodes: [String] = [], excludeOps: [String] = [],
            indices: [Int] = []
        ) {
            self.auto = auto; self.nodes = nodes; self.ops = ops; self.excludeNodes = excludeNodes; self.excludeOps = excludeOps
            self.indices = indices
        }
        public static let auto = Selection(auto: true)
        public static func nodes(_ n: [String]) -> Selection { .init(nodes: n) }
        public static func ops(_ o: [String]) -> Selection { .init(ops: o) }
        public static func indices(_ i: [Int]) -> Selection { var s = Selection(indices: i); s.byBackend = true; return s }
    }

    public struct Options: Sendable {
        public var selection: Selection
        public var target: String
        public var output: URL
        public var force: Bool
        public var reference: Bool
        /// Run every tactic on the CPU (LLVM) against the reference data and drop the ones that
        /// disagree; on unless the environment sets TPAT_CROSS_CHECK=0.
        public var crossCheck: Bool = ProcessInfo.processInfo.environment["TPAT_CROSS_CHECK"] != "0"
        /// A `tpat tune` folder (OUT/tuning of an earlier run): plugins with a database there get
        /// their tuned plan as tactic 0.
        public var tuning: URL?
        public init(
            selection: Selection, target: String = "sm_90", output: URL, force: Bool = false, reference: Bool = true, tuning: URL? = nil
        ) {
            self.selection = selection; self.target = target; self.output = output; self.force = force; self.reference = reference
            self.tuning = tuning
        }
    }

    /// What was generated; also written as OUT/tpat-generate.json (schemas/generate-report.schema.json,
    /// docs/generate-report.md).
    public struct Report: Codable, Sendable {
        /// How the run ended; the CLI's exit code follows it (0, or 3 for partial and none).
        public enum Outcome: String, Codable, Sendable {
            /// Every selected node became a plugin.
            case converted
            /// Some selected nodes became plugins, the others were left as they are.
            case partial
            /// No selected node converted.
            case none
            /// `--auto` found no node TensorRT rejects: the model is written unchanged, no plugins/.
            case nothingToConvert = "nothing_to_convert"
        }
        public struct Plugin: Codable, Sendable {
            public var name: String
            public var opType: String
            public var nodes: [String]
            public var kernels: Int
            public var launches: Int
            public var referenceCases: Int
            /// The lowering of the plugin's default tactic: a TPAT lowering's name or "tvm-default".
            public var lowering: String
            /// The TPAT lowerings registered for the op that declined the node, and why.
            public var declined: [KernelPlan.Declined]
            public var fixups: [String]
            public var tactics: Int
        }
        public struct Failure: Codable, Sendable {
            public var node: String
            public var opType: String
            /// A stable reason code (docs/generate-report.md, docs/lowerings.md "Reason codes"): the
            /// planner's (`unsupported_attribute`, `tvm_error`, ...) or TPAT's own (`extraction_failed`,
            /// `no_tensorrt_type`, `render_failed`, `cross_check_failed`).
            public var code: String
            public var reason: String

            public init(node: String, opType: String, code: String, reason: String) {
                self.node = node; self.opType = opType; self.code = code; self.reason = reason
            }
            /// Reports written before reason codes existed read as code "unknown".
            public init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                node = try c.decode(String.self, forKey: .node)
                opType = try c.decode(String.self, forKey: .opType)
                code = try c.decodeIfPresent(String.self, forKey: .code) ?? "unknown"
                reason = try c.decode(String.self, forKey: .reason)
            }
        }
        public var outcome: Outcome
        public var model: String
        public var rewrittenModel: String
        public var target: String
        public var tvmVersion: String
        public var plugins: [Plugin]
        public var failures: [Failure]
        public var casts: [String]
        /// Sequence patterns rewritten into Splits before selection (SequenceRewriter).
        public var rewrites: [String]? = nil
        /// With --auto: "parser" or "table", and the nodes where the two disagree.
        public var selectedBy: String? = nil
        public var disagreements: [String]? = nil

        public init(
            outcome: Outcome, model: String, rewrittenModel: String, target: String, tvmVersion: String,
            plugins: [Plugin], failures: [Failure], casts: [String]
        ) {
            self.outcome = outcome; self.model = model; self.rewrittenModel = rewrittenModel; self.target = target
            self.tvmVersion = tvmVersion; self.plugins = plugins; self.failures = failures; self.casts = casts
        }
        /// Reports written before `outcome` existed get it from their plugins and failures.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            model = try c.decode(String.self, forKey: .model)
            rewrittenModel = try c.decode(String.self, forKey: .rewrittenModel)
            target = try c.decode(String.self, forKey: .target)
            tvmVersion = try c.decode(String.self, forKey: .tvmVersion)
            plugins = try c.decode([Plugin].self, forKey: .plugins)
            failures = try c.decode([Failure].self, forKey: .failures)
            casts = try c.decode([String].self, forKey: .casts)
            rewrites = try c.decodeIfPresent([String].self, forKey: .rewrites)
            selectedBy = try c.decodeIfPresent(String.self, forKey: .selectedBy)
            disagreements = try c.decodeIfPresent([String].self, forKey: .disagreements)
            outcome =
                try c.decodeIfPresent(Outcome.self, forKey: .outcome)
                ?? (failures.isEmpty ? (plugins.isEmpty ? .nothingToConvert : .converted) : (plugins.isEmpty ? .none : .partial))
        }
    }

    public let bridge: PythonBridge
    public let rules: ParserRules
    public let cache: PlanCache?
    public let diagnostics: DiagnosticsCollector
    /// Progress lines (info: one per node and per plugin), details (debug).
    public let log: Logger

    public init(
        bridge: PythonBridge, rules: ParserRules, cache: PlanCache? = PlanCache.standard(), diagnostics: DiagnosticsCollector,
        log: Logger = Logger(label: "tpat.generate")
    ) {
        self.bridge = bridge; self.rules = rules; self.cache = cache; self.diagnostics = diagnostics; self.log = log
    }

    var runtime: URL { bridge.root.appendingPathComponent("plugin-runtime") }

    public func generate(modelPath: String, options: Options) async throws(TPATError) -> Report {
        try await generate(model: try ONNXModel.load(path: modelPath), modelPath: modelPath, options: options)
    }

    /// The same for a model already loaded from `modelPath` (the bridge reads the file itself).
    /// Before selection, If nodes whose condition follows from constants and static shapes are
    /// folded into the branch they take (fold_ifs), then SplitToSequence + SequenceAt(constant)
    /// patterns are rewritten into Splits (SequenceRewriter); the rewritten model is what the rest
    /// sees and what OUT gets.
    public func generate(model original: ONNXModel, modelPath originalPath: String, options: Options) async throws(TPATError) -> Report {
        var model = original, modelPath = originalPath
        var scratch: URL?
        var rewrites: [String] = []
        defer { if let scratch { try? FileManager.default.removeItem(at: scratch) } }
        func scratchFile(_ step: String) throws(TPATError) -> URL {
            let dir = (scratch ?? FileManager.default.temporaryDirectory.appendingPathComponent("tpat-rewrite-\(UUID().uuidString)"))
                .appendingPathComponent(step)
            do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
                throw TPATError(.io, "cannot create \(dir.path): \(error.localizedDescription)")
            }
            scratch = dir.deletingLastPathComponent()
            return dir.appendingPathComponent(URL(fileURLWithPath: originalPath).lastPathComponent)
        }
        if original.graph.node.contains(where: { $0.isDefaultDomain && $0.opType == "If" }) {
            let path = try scratchFile("fold")
            do {
                let answer = try await bridge.call(
                    BridgeMessages.FoldIfsRequest(modelPath: modelPath, outPath: path.path), as: BridgeMessages.FoldIfsResult.self)
                if answer.written {
                    model = try ONNXModel.load(path: path.path)
                    modelPath = path.path
                    for f in answer.folded {
                        let note =
                            "If '\(f.node)' folded into its \(f.branch) (\(f.nodes) node(s)): its condition is always \(f.condition) (constants and static shapes)"
                        diagnostics.emit(.init(.note, "rewritten: \(note)"))
                        rewrites.append(note)
                    }
                }
                for k in answer.kept where !k.dataDependent.isEmpty {
                    let dd = k.dataDependent.prefix(4).map { "\($0.op) '\($0.node)'" }.joined(separator: ", ")
                    diagnostics.emit(
                        .init(
                            .warning,
                            "If '\(k.node)' stays (its condition depends on \(k.dependsOn)) and holds \(dd), whose output shape depends on data: "
                                + "TensorRT builds data-dependent shapes only in the top-level graph, so the engine build will stop there "
                                + "(\"Data-dependent shapes are only allowed in the top-level scope\"); instead: export the model with that "
                                + "branch decided (no Python `if` on a tensor's size), or move the node out of the If",
                            node: k.node))
                }
            } catch {
                diagnostics.emit(.init(.warning, "If nodes not folded: \(error.message)"))
            }
        }
        if model.graph.node.contains(where: { $0.opType == "SplitToSequence" }) {
            let (tensors, _) = try await Inspector(bridge: bridge, rules: rules).tensorInfo(modelPath: modelPath)
            let (rewritten, notes) = SequenceRewriter.rewrite(model, tensors: tensors)
            if !notes.isEmpty {
                let path = try scratchFile("sequence")
                try rewritten.save(to: path)
                model = rewritten
                modelPath = path.path
                for n in notes { diagnostics.emit(.init(.note, "rewritten: \(n)")) }
                rewrites += notes
            }
        }
        return try await generateRewritten(
            model: model, modelPath: modelPath, displayPath: originalPath, rewrites: rewrites, options: options)
    }

    func generateRewritten(model: ONNXModel, modelPath: String, displayPath: String, rewrites: [String], options: Options)
        async throws(TPATError) -> Report
    {
        guard Planner.targets.contains(options.target) else {
            throw TPATError(.input, "unknown target \(options.target) (use one of \(Planner.targets.joined(separator: ", ")))")
        }
        let out = options.output.standardizedFileURL
        try OutputFolder.check(out, force: options.force, modelPath: displayPath)
        let lock = try OutputFolder.Lock(out)
        defer { withExtendedLifetime(lock) {} }
        try OutputFolder.check(out, force: options.force, modelPath: displayPath)  // again, under the lock
        let inspector = Inspector(bridge: bridge, rules: rules)
        // Inspect (probing the installed parser for --auto): verdicts, blockers, candidates.
        let inspected = try await inspector.inspect(model: model, modelPath: modelPath, probe: options.selection.auto)
        let (tensors, _) = try await inspector.tensorInfo(modelPath: modelPath)
        let index = GraphIndex(model.graph)
        let bodies = Subgraphs.bodies(model)
        // Top-level nodes by index, body nodes by path (Subgraphs).
        let (chosen, chosenInner) = try select(options.selection, model: model, index: index, bodies: bodies, report: inspected)
        var failures: [Report.Failure] = []
        var selected: [Int] = []
        var selectedInner: [(body: Subgraphs.Body, node: Int)] = []
        func blocked(_ name: String, _ opType: String, _ b: NodeVerdict.Blocker) {
            let why = "cannot become a plugin: \(b.reason); instead: \(b.suggestion)"
            log.info("node \(name.debugDescription) (\(opType)): not converted [\(b.code)]")
            failures.append(.init(node: name, opType: opType, code: b.code, reason: why))
            diagnostics.emit(.init(.warning, "not converted (\(b.code)): \(why)", node: name))
        }
        for i in chosen {
            if let b = inspected.nodes[i].blocker { blocked(index.nodeName(i), model.graph.node[i].opType, b) } else { selected.append(i) }
        }
        let innerVerdicts = Dictionary(inspected.subgraphNodes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for (body, j) in chosenInner {
            if let b = innerVerdicts[body.nodePath(j)]?.blocker {
                blocked(body.nodePath(j), body.graph.node[j].opType, b)
            } else {
                selectedInner.append((body, j))
            }
        }
        if options.selection.auto {
            diagnostics.emit(
                .init(
                    .note,
                    "--auto: candidates chosen by the \(inspected.selectedBy ?? "table")"
                        + (inspected.probe?.parser.map { " (\($0))" } ?? " (\(inspected.rulesSource))")))
            for n in inspected.nodes where selected.contains(n.index) || inspected.probe?.disagreements.contains(n.name) == true {
                guard let p = n.probe else { continue }
                diagnostics.emit(
                    .init(
                        .note,
                        "parser: \(p.imported ? "imports" : "rejects (\(p.error ?? "?"))"); table: \(n.verdict.rawValue)\(n.verdict == .unsupported ? " (\(n.reason))" : "")",
                        node: n.name))
            }
        }
        let nothing = chosen.isEmpty && chosenInner.isEmpty
        if nothing, !options.selection.auto, !options.selection.byBackend {
            throw TPATError(.input, "no node selected: nothing to generate")
        }
        if nothing {
            log.info(
                "nothing to convert: TensorRT's ONNX parser imports every node of the model (\(inspected.selectedBy == "parser" ? inspected.probe?.parser ?? "parser" : inspected.rulesSource))"
            )
        }
        let selectedNames = selected.map(index.nodeName) + selectedInner.map { $0.body.nodePath($0.node) }
        let shown = selectedNames.prefix(8).map(\.debugDescription).joined(separator: ", ") + (selectedNames.count > 8 ? ", ..." : "")
        if !selectedNames.isEmpty { log.info("selected \(selectedNames.count) node(s): \(shown)") }

        // Extract (body nodes with their outer-scope inputs as graph inputs) and group identical nodes.
        var groups: [Data: [ExtractedNode]] = [:]
        var order: [Data] = []
        let work: [(name: String, opType: String, extract: () throws(TPATError) -> ExtractedNode)] =
            selected.map { i in
                (
                    index.nodeName(i), model.graph.node[i].opType,
                    { () throws(TPATError) in
                        try NodeExtractor.extract(nodeAt: i, index: index, model: model, tensors: tensors, demoteFloat64: true)
                    }
                )
            }
            + selectedInner.map { b, j in
                (
                    b.nodePath(j), b.graph.node[j].opType,
                    { () throws(TPATError) in
                        try Subgraphs.extract(j, of: b, model: model, tensors: tensors, demoteFloat64: true)
                    }
                )
            }
        for (name, opType, extract) in work {
            do throws(TPATError) {
                let node = try extract()
                let key = node.canonicalBytes
                if groups[key] == nil { order.append(key) }
                groups[key, default: []].append(node)
            } catch {
                failures.append(.init(node: name, opType: opType, code: error.code ?? "extraction_failed", reason: error.message))
                log.info("node \(name.debugDescription) (\(opType)): not converted [\(error.code ?? "extraction_failed")]")
                diagnostics.emit(.init(.warning, "not converted (\(error.code ?? "extraction_failed")): \(error.message)", node: name))
            }
        }

        let planner = Planner(bridge: bridge, cache: cache)
        log.debug("TVM: \(bridge.python) -m tpat_bridge; plan cache: \(cache?.directory.path ?? "off")")
        let tvm = try await planner.tvmVersion()
        var sources: [PluginSource] = []
        var replacements: [ModelRewriter.Replacement] = []
        for (k, key) in order.enumerated() {
            let nodes = groups[key]!
            let first = nodes[0]
            let what =
                "[\(k + 1)/\(order.count)] node \(first.sourceName.debugDescription) (\(first.opType))"
                + (nodes.count > 1 ? " and \(nodes.count - 1) identical node(s)" : "")
            log.info("\(what): planning for \(options.target)")
            let start = ContinuousClock.now
            do throws(TPATError) {
                let outcome = try await planner.plan(first, target: options.target, tvmVersion: tvm)
                let name = PluginSource.name(opType: first.opType, key: outcome.key)
                // TensorRT must be able to carry every tensor of the plugin.
                for t in outcome.plan.inputs + outcome.plan.outputs where TensorRTType.name(t.dtype) == nil {
                    throw TPATError(.plan, "TensorRT has no tensor type for \(t.dtype)", code: "no_tensorrt_type")
                }
                // Where TPAT used its own lowering, TVM's default one becomes a second tactic, so
                // TensorRT times both at engine build time.
                var tactics = [outcome.plan]
                if outcome.plan.usesTPATLowering {
                    do throws(TPATError) {
                        tactics.append(try await planner.plan(first, target: options.target, tvmVersion: tvm, lowering: "tvm").plan)
                    } catch {
                        diagnostics.emit(
                            .init(.note, "no second tactic from TVM's default lowering: \(error.message)", node: first.sourceName))
                    }
                }
                // A `tpat tune` database: every tactic's lowering re-planned with it, tuned plans first.
                if let db = options.tuning?.appendingPathComponent(name),
                    FileManager.default.fileExists(atPath: db.appendingPathComponent("database_workload.json").path)
                {
                    let (tuned, failures) = await Tuner.tactics(
                        untuned: tactics, node: first, target: options.target, tvmVersion: tvm, database: db, planner: planner)
                    tactics = tuned
                    for f in failures {
                        diagnostics.emit(.init(.warning, "tuned schedules in \(db.path) not used for the \(f)", node: first.sourceName))
                    }
                }
                sources.append(PluginSource(name: name, node: first, tactics: tactics, coveredNodes: nodes.map(\.sourceName)))
                log.info(
                    "\(what): plugin \(name), \(outcome.plan.kernels.count) kernel(s), \(tactics.count) tactic(s)\(outcome.cached ? " [cached plan]" : "") in \(Self.seconds(since: start))"
                )
                for n in nodes { replacements.append(.init(nodeName: n.sourceName, plugin: name, extracted: n, plan: outcome.plan)) }
            } catch {
                log.info("\(what): not converted [\(error.code ?? "tvm_error")] in \(Self.seconds(since: start))")
                for n in nodes {
                    failures.append(.init(node: n.sourceName, opType: n.opType, code: error.code ?? "tvm_error", reason: error.message))
                    diagnostics.emit(
                        .init(.warning, "not converted (\(error.code ?? "tvm_error")), left as it is: \(error.message)", node: n.sourceName)
                    )
                }
            }
        }

        // Render everything into a staging folder beside OUT, then move it into place.
        let parent = out.deletingLastPathComponent()
        let staging = parent.appendingPathComponent(".\(out.lastPathComponent).tpat-\(UUID().uuidString)")
        ChildProcesses.shared.addFolder(staging)  // removed if tpat is interrupted
        defer { ChildProcesses.shared.removeFolder(staging) }
        do { try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true) } catch {
            throw TPATError(.io, "cannot create \(staging.path): \(error.localizedDescription)")
        }
        do throws(TPATError) {
            let report = try await render(
                sources: sources, replacements: replacements, failures: failures, model: model,
                modelPath: modelPath, options: options, tvmVersion: tvm, staging: staging,
                outcome: nothing ? .nothingToConvert : (failures.isEmpty ? .converted : (sources.isEmpty ? .none : .partial)),
                auto: options.selection.auto ? inspected : nil, displayPath: displayPath, rewrites: rewrites)
            ChildProcesses.shared.parkIfStopping()  // interrupted: OUT stays as it was
            try move(staging, to: out, force: options.force)
            return report
        } catch {
            try? FileManager.default.removeItem(at: staging)
            throw error
        }
    }

    /// "1.2 s": time since `start`, for progress lines.
    static func seconds(since start: ContinuousClock.Instant) -> String {
        let d = ContinuousClock.now - start
        return String(format: "%.1f s", Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
    }

    /// Node indices and body nodes (by path): auto's candidates (plus the blocked nodes it would
    /// want, reported later), named nodes (a body node by its path) and op types (in bodies too),
    /// minus the exclusions.
    func select(
        _ selection: Selection, model: ONNXModel, index: GraphIndex, bodies: [Subgraphs.Body],
        report: InspectReport
    ) throws(TPATError) -> ([Int], [(body: Subgraphs.Body, node: Int)]) {
        var result = Set<Int>()
        var inner = Set<String>()  // body node paths
        var byPath: [String: (body: Subgraphs.Body, node: Int)] = [:]
        for b in bodies { for j in b.graph.node.indices { byPath[b.nodePath(j)] = (b, j) } }
        result.formUnion(selection.indices.filter { model.graph.node.indices.contains($0) })
        if selection.auto {
            let wanted = Set(report.pluginCandidates + report.blocked)
            result.formUnion(model.graph.node.indices.filter { wanted.contains(index.nodeName($0)) })
            inner.formUnion(wanted.filter { byPath[$0] != nil })
        }
        func named(_ name: String) throws(TPATError) -> Int? {
            if let i = model.graph.node.indices.first(where: { index.nodeName($0) == name }) { return i }
            if byPath[name] != nil { return nil }
            throw TPATError(.input, "no node named '\(name)' in the model")
        }
        for name in selection.nodes {
            if let i = try named(name) { result.insert(i) } else { inner.insert(name) }
        }
        if !selection.ops.isEmpty {
            let wanted = Set(selection.ops)
            let found = model.graph.node.indices.filter { wanted.contains(model.graph.node[$0].opType) }
            let foundInner = byPath.filter { wanted.contains($0.value.body.graph.node[$0.value.node].opType) }.keys
            if found.isEmpty && foundInner.isEmpty {
                throw TPATError(.input, "the model has no node of type \(selection.ops.joined(separator: ", "))")
            }
            result.formUnion(found)
            inner.formUnion(foundInner)
        }
        for name in selection.excludeNodes {
            if let i = try named(name) { result.remove(i) } else { inner.remove(name) }
        }
        let excludedOps = Set(selection.excludeOps)
        result = result.filter { !excludedOps.contains(model.graph.node[$0].opType) }
        let innerNodes = inner.compactMap { byPath[$0] }.filter { !excludedOps.contains($0.body.graph.node[$0.node].opType) }
        // Body order: the walk's (outer before inner), then node order.
        let bodyOrder = Dictionary(bodies.enumerated().map { ($1.path, $0) }, uniquingKeysWith: { a, _ in a })
        return (result.sorted(), innerNodes.sorted { (bodyOrder[$0.body.path] ?? 0, $0.node) < (bodyOrder[$1.body.path] ?? 0, $1.node) })
    }

    func render(
        sources: [PluginSource], replacements: [ModelRewriter.Replacement], failures: [Report.Failure],
        model: ONNXModel, modelPath: String, options: Options, tvmVersion: String, staging: URL,
        outcome: Report.Outcome, auto: InspectReport? = nil, displayPath: String? = nil,
        rewrites: [String] = []
    ) async throws(TPATError) -> Report {
        let templates = try TemplateSet(directory: runtime.appendingPathComponent("templates"))
        let launchers = LauncherRenderer(templates: templates)
        let plugins = PluginRenderer(templates: templates)
        let project = staging.appendingPathComponent("plugins")
        var files: [(String, Data)] = []
        func add(_ path: String, _ text: String) { files.append((path, Data(text.utf8))) }

        // Per plugin: its node model, reference data, the CPU cross-check of its tactics (one
        // bridge call for all plugins), its sources. A plugin that fails any of it is reported
        // and left out; the others go on.
        var reportPlugins: [Report.Plugin] = []
        var kept: [PluginSource] = []
        var failures = failures
        func fail(_ s: PluginSource, _ error: TPATError) {
            try? FileManager.default.removeItem(at: project.appendingPathComponent(s.name))
            for n in s.coveredNodes {
                log.info("node \(n.debugDescription) (\(s.node.opType)): not converted [\(error.code ?? "render_failed")]")
                failures.append(.init(node: n, opType: s.node.opType, code: error.code ?? "render_failed", reason: error.message))
                diagnostics.emit(
                    .init(.warning, "not converted (\(error.code ?? "render_failed")), left as it is: \(error.message)", node: n))
            }
        }
        var staged: [(source: PluginSource, cases: Int)] = []
        for (k, s) in sources.enumerated() {
            let dir = project.appendingPathComponent(s.name)
            log.info(
                "[\(k + 1)/\(sources.count)] plugin \(s.name) (\(s.plan.opType)): node model\(options.reference ? ", reference data from ONNX Runtime" : "")"
            )
            do throws(TPATError) {
                try AtomicFiles.write([(dir.appendingPathComponent("\(s.name).onnx"), try s.node.model.serializedInline())])
                staged.append((s, options.reference ? await reference(s, dir: dir) : 0))
            } catch { fail(s, error) }
        }
        let checked = options.crossCheck ? await crossCheck(staged.filter { $0.cases > 0 }.map(\.source), project: project) : [:]
        for (k, (s0, cases)) in staged.enumerated() {
            var s = s0
            log.info(
                "[\(k + 1)/\(staged.count)] plugin \(s.name) (\(s.plan.opType)): sources for \(checked[s.name].flatMap { try? $0.get().count } ?? s.tactics.count) tactic(s)"
            )
            do throws(TPATError) {
                if let verdict = checked[s.name] { s.tactics = try verdict.get() }
                let pluginFiles: [(String, Data)]
                do throws(TPATError) { pluginFiles = try Self.pluginFiles(s, launchers: launchers, plugins: plugins) } catch {
                    throw TPATError(error.kind, error.message, code: error.code ?? "render_failed")
                }
                try AtomicFiles.write(pluginFiles.map { (project.appendingPathComponent($0.0), $0.1) })
                kept.append(s)
                reportPlugins.append(
                    .init(
                        name: s.name, opType: s.plan.opType, nodes: s.coveredNodes, kernels: s.plan.kernels.count,
                        launches: s.plan.launchCount, referenceCases: cases, lowering: s.plan.lowering,
                        declined: s.plan.declined, fixups: s.plan.fixups, tactics: s.tactics.count))
            } catch { fail(s, error) }
        }
        let keptNames = Set(kept.map(\.name))
        let replacements = replacements.compactMap { r -> ModelRewriter.Replacement? in
            guard keptNames.contains(r.plugin), let k = kept.first(where: { $0.name == r.plugin }) else { return nil }
            var r = r
            r.plan = k.plan
            return r
        }
        // No plugin, no project: a plugins/ folder with nothing to build is never written.
        if kept.isEmpty {
            try? FileManager.default.removeItem(at: project)
        } else {
            add("tpat_plugin_specs.cpp", try plugins.specsSource(kept))
            add("CMakeLists.txt", try cmakeLists(sources: kept, name: Self.projectName(modelPath: modelPath), target: options.target))
            add("README.md", projectReadme(sources: kept, modelPath: modelPath, target: options.target))
            try AtomicFiles.write(files.map { (project.appendingPathComponent($0.0), $0.1) })
            try copyRuntime(to: project)
        }

        let (rewritten, casts) = ModelRewriter.rewrite(model, replacements: replacements)
        for c in casts { diagnostics.emit(.init(.note, c)) }
        let modelName = URL(fileURLWithPath: modelPath).lastPathComponent
        try rewritten.save(to: staging.appendingPathComponent(modelName))
        // Rendering can fail plugins too (reference data, cross-check): the outcome counts them.
        let final: Report.Outcome =
            outcome == .nothingToConvert
            ? outcome
            : failures.isEmpty ? .converted : (kept.isEmpty ? .none : .partial)
        var report = Report(
            outcome: final, model: displayPath ?? modelPath, rewrittenModel: options.output.appendingPathComponent(modelName).path,
            target: options.target, tvmVersion: tvmVersion, plugins: reportPlugins, failures: failures, casts: casts)
        report.rewrites = rewrites.isEmpty ? nil : rewrites
        if let auto {
            report.selectedBy = auto.selectedBy
            report.disagreements = auto.probe?.disagreements ?? []
        }
        let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFiles.write([
            (staging.appendingPathComponent("tpat-generate.json"), (try? e.encode(report)) ?? Data()),
            (staging.appendingPathComponent(OutputFolder.marker), OutputFolder.markerContents()),
        ])
        return report
    }

    /// Reference data from ONNX Runtime in `dir`/reference: the number of cases, 0 (with a
    /// warning) when there is none.
    func reference(_ s: PluginSource, dir: URL) async -> Int {
        struct Request: Encodable {
            var command = "reference"; var model_path: String; var out_dir: String; var prefix: String; var plugin: String
            var cases: [String: Int]? = nil; var seed = 0
        }
        struct Answer: Decodable { var cases: Int; var notes: [String] }
        do {
            let a = try await bridge.call(
                Request(
                    model_path: dir.appendingPathComponent("\(s.name).onnx").path,
                    out_dir: dir.appendingPathComponent("reference").path,
                    prefix: "tpat_\(s.name)", plugin: s.name), as: Answer.self)
            for n in a.notes { diagnostics.emit(.init(.note, "reference data: \(n)", node: s.coveredNodes.first)) }
            return a.cases
        } catch {
            diagnostics.emit(
                .init(.warning, "plugin \(s.name): no reference data (not cross-checked): \(error.message)", node: s.coveredNodes.first))
            return 0
        }
    }

    /// Every tactic built for LLVM and run on the reference data (bridge command `cross_check`,
    /// one call for all plugins): per plugin, the tactics that agree or could not be checked, in
    /// their order; a tactic that disagrees is dropped with a warning (node, tactic, max error);
    /// `cross_check_failed` when every tactic disagrees. A plugin the bridge could not check keeps
    /// its tactics (with a warning).
    func crossCheck(_ sources: [PluginSource], project: URL) async -> [String: Result<[KernelPlan], TPATError>] {
        guard !sources.isEmpty else { return [:] }
        struct Item: Encodable { var model_path: String; var reference_dir: String; var tactics: [String] }
        struct Request: Encodable { var command = "cross_check"; var plugins: [Item] }
        struct Answer: Decodable {
            struct Tactic: Decodable {
                var tactic: Int; var lowering: String; var status: String; var max_error: Double; var cases: Int; var detail: String
            }
            struct Plugin: Decodable { var tactics: [Tactic]?; var error: String? }
            var plugins: [Plugin]
        }
        let items = sources.map { s in
            let dir = project.appendingPathComponent(s.name)
            return Item(
                model_path: dir.appendingPathComponent("\(s.name).onnx").path, reference_dir: dir.appendingPathComponent("reference").path,
                tactics: s.tactics.map { $0.usesTPATLowering ? "tpat" : "tvm" })
        }
        let answer: Answer
        do {
            answer = try await bridge.call(Request(plugins: items), as: Answer.self)
        } catch {
            diagnostics.emit(.init(.warning, "tactics not cross-checked on the CPU: \(error.message)"))
            return [:]
        }
        var out: [String: Result<[KernelPlan], TPATError>] = [:]
        for (s, a) in zip(sources, answer.plugins) {
            let node = s.coveredNodes.first
            guard let results = a.tactics else {
                diagnostics.emit(
                    .init(.warning, "plugin \(s.name): tactics not cross-checked on the CPU: \(a.error ?? "no answer")", node: node))
                continue
            }
            var kept: [KernelPlan] = [], dropped: [String] = []
            for t in results where s.tactics.indices.contains(t.tactic) {
                switch t.status {
                case "disagrees":
                    let e = String(format: "%.3g", t.max_error)
                    dropped.append("tactic \(t.tactic) (\(t.lowering)): max error \(e)")
                    diagnostics.emit(
                        .init(
                            .warning,
                            "plugin \(s.name): tactic \(t.tactic) (\(t.lowering) lowering) dropped: disagrees with ONNX Runtime on the CPU, max error \(e) (\(t.detail))",
                            node: node))
                case "skipped":
                    diagnostics.emit(.init(.note, "plugin \(s.name): tactic \(t.tactic) not cross-checked: \(t.detail)", node: node))
                    kept.append(s.tactics[t.tactic])
                default:
                    kept.append(s.tactics[t.tactic])
                }
            }
            out[s.name] =
                kept.isEmpty
                ? .failure(
                    TPATError(
                        .plan, "plugin \(s.name): every tactic disagrees with ONNX Runtime on the CPU (\(dropped.joined(separator: "; ")))",
                        code: "cross_check_failed"))
                : .success(kept)
        }
        return out
    }

    /// The generated sources of one plugin (paths relative to the project): per tactic its TVM
    /// kernels, its host code and its plan; the launcher; the IPluginV3 spec; the Python spec.
    static func pluginFiles(_ s: PluginSource, launchers: LauncherRenderer, plugins: PluginRenderer) throws(TPATError) -> [(String, Data)] {
        var files: [(String, Data)] = []
        func add(_ path: String, _ text: String) { files.append(("\(s.name)/\(path)", Data(text.utf8))) }
        let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]
        for k in s.tactics.indices {
            add("\(s.name)_tactic\(k)_kernels.cuh", try launchers.kernels(s, tactic: k))
            add("\(s.name)_tactic\(k).cu", try launchers.tactic(s, tactic: k))
            let planFile = k == 0 ? "\(s.name).plan.json" : "\(s.name).tactic\(k).plan.json"
            files.append(("\(s.name)/\(planFile)", (try? e.encode(s.tactics[k])) ?? Data()))
        }
        add("\(s.name)_launcher.h", try launchers.header(s))
        add("\(s.name)_launcher.cu", try launchers.launcher(s))
        add("\(s.name)_plugin.cpp", try plugins.pluginSource(s))
        files.append(("\(s.name)/\(s.name).plugin.json", try plugins.pythonSpec(s, kernelsLibrary: "../build/libtpat_kernels.so")))
        return files
    }

    func cmakeLists(sources: [PluginSource], name: String, target: String) throws(TPATError) -> String {
        try Self.cmakeLists(sources: sources, name: name, runtime: runtime, target: target)
    }

    /// The CUDA architectures a project builds for when nobody says: the common four (SASS for each,
    /// PTX for the last) for portable kernels; for a target with architecture-specific features
    /// (`sm_90a`: wgmma), that architecture alone, since its kernels compile for nothing else.
    public static func defaultArchitectures(target: String) -> String {
        if let a = try? GPUArchitecture(parsing: target), a.value.hasSuffix("a") { return a.value }
        return "80;86;89;90"
    }

    /// The CMake project name for a model: "tpat_" and the file name's identifier characters.
    static func projectName(modelPath: String) -> String {
        "tpat_" + SafeText.identifier(URL(fileURLWithPath: modelPath).deletingPathExtension().lastPathComponent).prefix(64)
    }

    /// The project's CMakeLists.txt: the template with every plugin's launcher, tactic and spec sources.
    static func cmakeLists(sources: [PluginSource], name: String, runtime: URL, target: String) throws(TPATError) -> String {
        let url = runtime.appendingPathComponent("CMakeLists.template.txt")
        do {
            let template = try MustacheTemplate(string: "{{%CONTENT_TYPE:TEXT}}" + String(contentsOf: url, encoding: .utf8))
            /// Source lists, one path per line.
            struct CMakeView {
                var project_name: String, architectures: String, launcher_sources: String, plugin_sources: String, check_sources: String
            }
            return template.render(
                CMakeView(
                    project_name: name,
                    architectures: defaultArchitectures(target: target),
                    launcher_sources: sources.flatMap { p in
                        ["\(p.name)/\(p.name)_launcher.cu"] + p.tactics.indices.map { "\(p.name)/\(p.name)_tactic\($0).cu" }
                    }.joined(separator: "\n  "),
                    plugin_sources: (sources.map { "\($0.name)/\($0.name)_plugin.cpp" } + ["tpat_plugin_specs.cpp"]).joined(
                        separator: "\n  "),
                    check_sources: "check/tpat_check.cpp"))
        } catch {
            throw TPATError(.io, "cannot render \(url.path): \(error)")
        }
    }

    /// The fixed runtime files every project holds (plugin-runtime/{common,cmake,check,python}).
    func copyRuntime(to project: URL) throws(TPATError) {
        for folder in ["common", "cmake", "check", "python"] {
            let src = runtime.appendingPathComponent(folder)
            guard FileManager.default.fileExists(atPath: src.path) else { continue }
            let dst = project.appendingPathComponent(folder)
            do {
                try FileManager.default.createDirectory(at: dst, withIntermediateDirectories: true)
                for f in try FileManager.default.contentsOfDirectory(atPath: src.path)
                where !f.hasPrefix(".") && f != "__pycache__" && !f.hasSuffix(".part.txt") {
                    try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dst.appendingPathComponent(f))
                }
            } catch {
                throw TPATError(.io, "cannot copy \(src.path): \(error.localizedDescription)")
            }
        }
    }

    func projectReadme(sources: [PluginSource], modelPath: String, target: String) -> String {
        Self.projectReadme(sources: sources, modelName: URL(fileURLWithPath: modelPath).lastPathComponent, target: target)
    }

    /// plugins/README.md: what is in the project, how to build it and the ways into TensorRT.
    /// Model text (file, op and node names) is escaped: no name can start a line of its own.
    static func projectReadme(sources: [PluginSource], modelName rawName: String, target: String) -> String {
        let modelName = SafeText.comment(rawName)
        var s = "# TPAT plugins for \(modelName)\n\n"
        s += "Generated by `tpat generate` (kernels planned for \(target)).\n\n"
        s += "| plugin | ONNX op | nodes | kernels |\n|---|---|---|---|\n"
        let c = { (s: String) in SafeText.comment(s) }
        for p in sources {
            s +=
                "| \(p.name) | \(c(p.plan.opType)) | \(p.coveredNodes.map { "`\(c($0))`" }.joined(separator: ", ")) | \(p.plan.kernels.count) |\n"
        }
        s += """

            Each plugin folder: `<P>_tactic<k>_kernels.cuh` (TVM) and `<P>_tactic<k>.cu` per tactic, `<P>_launcher.{h,cu}` (C ABI, no TensorRT),
            `<P>_plugin.cpp` (IPluginV3 spec), `<P>.plugin.json` (Python IPluginV3 spec), `<P>.plan.json` (kernel plan), `<P>.onnx` (the node
            alone), `reference/` (ONNX Runtime data).

            ## Build

            `tpat build OUT --tensorrt-root DIR` (DIR/include/NvInfer.h), or by hand:
            `cmake -S plugins -B plugins/build -DTensorRT_ROOT=DIR && cmake --build plugins/build`. In `plugins/build`:

            | file | for |
            |---|---|
            | `libtpat_plugins.so` | deployment: the plugins, their kernels and the static CUDA runtime in one file, no RUNPATH, no other TPAT library; copy it anywhere. Exports `getCreators`/`setLoggerFinder` (TensorRT's plugin-library interface) |
            | `libtpat_plugins_static.so` | the same plugins, registering themselves with the TensorRT already loaded in the process when the library is loaded (`--staticPlugins`, `ctypes.CDLL`, polygraphy `--plugins`) |
            | `libtpat_kernels.so`, `tpat_check` | the launchers alone and the checker (GPU): `build/tpat_check build/libtpat_kernels.so <P>/reference/manifest.txt` |

            Load one of the two plugin libraries, never both in one process (the second registration of a plugin fails).
            The model's plugin nodes carry op_type = plugin name, `plugin_namespace` "tpat", `plugin_version` "1".

            ## Ways in (LIB = plugins/build/libtpat_plugins.so, STATIC = plugins/build/libtpat_plugins_static.so)

            ```sh
            trtexec --onnx=OUT/\(modelName) --dynamicPlugins=LIB --saveEngine=model.engine
            trtexec --loadEngine=model.engine --dynamicPlugins=LIB
            trtexec --onnx=OUT/\(modelName) --staticPlugins=STATIC
            # the library inside the engine: nothing to ship beside it
            trtexec --onnx=OUT/\(modelName) --dynamicPlugins=LIB --setPluginsToSerialize=LIB --versionCompatible --saveEngine=model.engine
            tpat engine OUT/\(modelName) --embed-plugins
            polygraphy run OUT/\(modelName) --trt --plugins STATIC
            polygraphy convert OUT/\(modelName) --convert-to trt --plugins STATIC -o model.engine
            ```

            polygraphy's `--plugins` loads a library with `ctypes.CDLL`, so it takes STATIC. With TensorRT-RTX set
            `POLYGRAPHY_USE_TENSORRT_RTX=1` (polygraphy then imports a module named `tensorrt_rtx`).

            Python (`tensorrt`, or `tensorrt_rtx_bindings` for TensorRT-RTX):

            ```python
            registry = builder.get_plugin_registry()      # or trt.get_plugin_registry(), runtime.get_plugin_registry()
            handle = registry.load_library("LIB")          # before parsing the model / deserializing the engine
            ```

            C++:

            ```cpp
            builder->getPluginRegistry().loadLibrary("LIB");   // or runtime->getPluginRegistry(), getPluginRegistry()
            ```

            An engine with the library inside (`--embed-plugins`, `setPluginsToSerialize`) is deserialized by a runtime
            that allows host code: `runtime->setEngineHostCodeAllowed(true)` (Python: `runtime.engine_host_code_allowed = True`).

            """
        return s
    }

    func move(_ staging: URL, to out: URL, force: Bool) throws(TPATError) {
        let fm = FileManager.default
        do {
            if fm.fileExists(atPath: out.path) {
                let old = out.deletingLastPathComponent().appendingPathComponent(".\(out.lastPathComponent).tpat-old-\(UUID().uuidString)")
                try fm.moveItem(at: out, to: old)
                do { try fm.moveItem(at: staging, to: out) } catch {
                    try? fm.moveItem(at: old, to: out)
                    throw error
                }
                try? fm.removeItem(at: old)
            } else {
                try fm.moveItem(at: staging, to: out)
            }
        } catch {
            throw TPATError(.io, "cannot move the generated files into \(out.path): \(error.localizedDescription)")
        }
    }
}

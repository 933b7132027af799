import Foundation
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
        public init(auto: Bool = false, nodes: [String] = [], ops: [String] = [], excludeNodes: [String] = [], excludeOps: [String] = []) {
            self.auto = auto; self.nodes = nodes; self.ops = ops; self.excludeNodes = excludeNodes; self.excludeOps = excludeOps
        }
        public static let auto = Selection(auto: true)
        public static func nodes(_ n: [String]) -> Selection { .init(nodes: n) }
        public static func ops(_ o: [String]) -> Selection { .init(ops: o) }
    }

    public struct Options: Sendable {
        public var selection: Selection
        public var target: String
        public var output: URL
        public var force: Bool
        public var reference: Bool
        /// A `tpat tune` folder (OUT/tuning of an earlier run): plugins with a database there get
        /// their tuned plan as tactic 0.
        public var tuning: URL?
        public init(selection: Selection, target: String = "sm_90", output: URL, force: Bool = false, reference: Bool = true, tuning: URL? = nil) {
            self.selection = selection; self.target = target; self.output = output; self.force = force; self.reference = reference
            self.tuning = tuning
        }
    }

    /// What was generated; also written as OUT/tpat-generate.json.
    public struct Report: Codable, Sendable {
        public struct Plugin: Codable, Sendable {
            public var name: String
            public var opType: String
            public var nodes: [String]
            public var kernels: Int
            public var launches: Int
            public var referenceCases: Int
            public var fixups: [String]
            public var tactics: Int
        }
        public struct Failure: Codable, Sendable {
            public var node: String
            public var opType: String
            public var reason: String
        }
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
    }

    public let bridge: PythonBridge
    public let rules: ParserRules
    public let cache: PlanCache?
    public let diagnostics: DiagnosticsCollector

    public init(bridge: PythonBridge, rules: ParserRules, cache: PlanCache? = PlanCache.standard(), diagnostics: DiagnosticsCollector) {
        self.bridge = bridge; self.rules = rules; self.cache = cache; self.diagnostics = diagnostics
    }

    var runtime: URL { bridge.root.appendingPathComponent("plugin-runtime") }

    public func generate(modelPath: String, options: Options) async throws(TPATError) -> Report {
        try await generate(model: try ONNXModel.load(path: modelPath), modelPath: modelPath, options: options)
    }

    /// The same for a model already loaded from `modelPath` (the bridge reads the file itself).
    /// SplitToSequence + SequenceAt(constant) patterns are first rewritten into Splits
    /// (SequenceRewriter); the rewritten model is what the rest sees and what OUT gets.
    public func generate(model original: ONNXModel, modelPath originalPath: String, options: Options) async throws(TPATError) -> Report {
        var model = original, modelPath = originalPath
        var scratch: URL?
        var rewrites: [String] = []
        defer { if let scratch { try? FileManager.default.removeItem(at: scratch) } }
        if original.graph.node.contains(where: { $0.opType == "SplitToSequence" }) {
            let (tensors, _) = try await Inspector(bridge: bridge, rules: rules).tensorInfo(modelPath: originalPath)
            let (rewritten, notes) = SequenceRewriter.rewrite(original, tensors: tensors)
            if !notes.isEmpty {
                let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tpat-rewrite-\(UUID().uuidString)")
                do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
                    throw TPATError(.io, "cannot create \(dir.path): \(error.localizedDescription)")
                }
                scratch = dir
                let path = dir.appendingPathComponent(URL(fileURLWithPath: originalPath).lastPathComponent)
                try rewritten.save(to: path)
                model = rewritten
                modelPath = path.path
                for n in notes { diagnostics.emit(.init(.note, "rewritten: \(n)")) }
                rewrites = notes
            }
        }
        return try await generateRewritten(model: model, modelPath: modelPath, displayPath: originalPath, rewrites: rewrites, options: options)
    }

    func generateRewritten(model: ONNXModel, modelPath: String, displayPath: String, rewrites: [String], options: Options) async throws(TPATError) -> Report {
        guard Planner.targets.contains(options.target) else {
            throw TPATError(.input, "unknown target \(options.target) (use one of \(Planner.targets.joined(separator: ", ")))")
        }
        let out = options.output.standardizedFileURL
        if FileManager.default.fileExists(atPath: out.path) {
            let contents = (try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? ["?"]
            guard contents.isEmpty || options.force else {
                throw TPATError(.input, "\(out.path) exists and is not empty (use --force to replace it)")
            }
        }
        let inspector = Inspector(bridge: bridge, rules: rules)
        // Inspect (probing the installed parser for --auto): verdicts, blockers, candidates.
        let inspected = try await inspector.inspect(model: model, modelPath: modelPath, probe: options.selection.auto)
        let (tensors, _) = try await inspector.tensorInfo(modelPath: modelPath)
        let index = GraphIndex(model.graph)
        let chosen = try select(options.selection, model: model, index: index, report: inspected)
        var failures: [Report.Failure] = []
        var selected: [Int] = []
        for i in chosen {
            if let b = inspected.nodes[i].blocker {
                failures.append(.init(node: index.nodeName(i), opType: model.graph.node[i].opType, reason: "cannot become a plugin [\(b.code)]: \(b.reason); instead: \(b.suggestion)"))
                diagnostics.emit(.init(.warning, "cannot become a plugin [\(b.code)]: \(b.reason); instead: \(b.suggestion)", node: index.nodeName(i)))
            } else {
                selected.append(i)
            }
        }
        if options.selection.auto {
            diagnostics.emit(.init(.note, "--auto: candidates chosen by the \(inspected.selectedBy ?? "table")" + (inspected.probe?.parser.map { " (\($0))" } ?? " (\(inspected.rulesSource))")))
            for n in inspected.nodes where selected.contains(n.index) || inspected.probe?.disagreements.contains(n.name) == true {
                guard let p = n.probe else { continue }
                diagnostics.emit(.init(.note, "parser: \(p.imported ? "imports" : "rejects (\(p.error ?? "?"))"); table: \(n.verdict.rawValue)\(n.verdict == .unsupported ? " (\(n.reason))" : "")", node: n.name))
            }
        }
        if selected.isEmpty, !rewrites.isEmpty {
            // The rewrite alone was needed: OUT gets the rewritten model and the report, no plugins.
            let out = options.output.standardizedFileURL
            let staging = out.deletingLastPathComponent().appendingPathComponent(".\(out.lastPathComponent).tpat-\(UUID().uuidString)")
            let name = URL(fileURLWithPath: displayPath).lastPathComponent
            var report = Report(model: displayPath, rewrittenModel: out.appendingPathComponent(name).path, target: options.target,
                                tvmVersion: "", plugins: [], failures: failures, casts: [])
            report.rewrites = rewrites
            report.selectedBy = options.selection.auto ? inspected.selectedBy : nil
            do throws(TPATError) {
                do { try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true) } catch {
                    throw TPATError(.io, "cannot create \(staging.path): \(error.localizedDescription)")
                }
                try model.save(to: staging.appendingPathComponent(name))
                let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]
                try AtomicFiles.write([(staging.appendingPathComponent("tpat-generate.json"), (try? e.encode(report)) ?? Data())])
                try move(staging, to: out, force: options.force)
            } catch {
                try? FileManager.default.removeItem(at: staging)
                throw error
            }
            return report
        }
        guard !selected.isEmpty else {
            throw TPATError(.input, failures.isEmpty ? "no node selected: nothing to generate" : "no selected node can become a plugin: " + failures.map { "\($0.node): \($0.reason)" }.joined(separator: "; "))
        }

        // Extract and group identical nodes.
        var groups: [Data: [ExtractedNode]] = [:]
        var order: [Data] = []
        for i in selected {
            do {
                let node = try NodeExtractor.extract(nodeAt: i, index: index, model: model, tensors: tensors, demoteFloat64: true)
                let key = node.canonicalBytes
                if groups[key] == nil { order.append(key) }
                groups[key, default: []].append(node)
            } catch {
                failures.append(.init(node: index.nodeName(i), opType: model.graph.node[i].opType, reason: error.message))
                diagnostics.emit(.init(.warning, "not converted: \(error.message)", node: index.nodeName(i)))
            }
        }

        let planner = Planner(bridge: bridge, cache: cache)
        let tvm = try await planner.tvmVersion()
        var sources: [PluginSource] = []
        var replacements: [ModelRewriter.Replacement] = []
        for key in order {
            let nodes = groups[key]!
            let first = nodes[0]
            do throws(TPATError) {
                let outcome = try await planner.plan(first, target: options.target, tvmVersion: tvm)
                let name = PluginSource.name(opType: first.opType, key: outcome.key)
                // TensorRT must be able to carry every tensor of the plugin.
                for t in outcome.plan.inputs + outcome.plan.outputs where TensorRTType.name(t.dtype) == nil {
                    throw TPATError(.plan, "TensorRT has no tensor type for \(t.dtype)")
                }
                // Where TPAT used its own lowering, TVM's default one becomes a second tactic, so
                // TensorRT times both at engine build time.
                var tactics = [outcome.plan]
                if PluginSource.lowering(of: outcome.plan) != "TVM default lowering" {
                    do throws(TPATError) {
                        tactics.append(try await planner.plan(first, target: options.target, tvmVersion: tvm, lowering: "tvm").plan)
                    } catch {
                        diagnostics.emit(.init(.note, "no second tactic from TVM's default lowering: \(error.message)", node: first.sourceName))
                    }
                }
                if let db = options.tuning?.appendingPathComponent(name),
                   FileManager.default.fileExists(atPath: db.appendingPathComponent("database_workload.json").path) {
                    do throws(TPATError) {
                        tactics.insert(try await planner.plan(first, target: options.target, tvmVersion: tvm, database: db).plan, at: 0)
                    } catch {
                        diagnostics.emit(.init(.warning, "tuned schedules in \(db.path) not used: \(error.message)", node: first.sourceName))
                    }
                }
                sources.append(PluginSource(name: name, node: first, tactics: tactics, coveredNodes: nodes.map(\.sourceName)))
                for n in nodes { replacements.append(.init(nodeName: n.sourceName, plugin: name, extracted: n, plan: outcome.plan)) }
            } catch {
                for n in nodes {
                    failures.append(.init(node: n.sourceName, opType: n.opType, reason: error.message))
                    diagnostics.emit(.init(.warning, "not converted, left as it is: \(error.message)", node: n.sourceName))
                }
            }
        }

        // Render everything into a staging folder beside OUT, then move it into place.
        let parent = out.deletingLastPathComponent()
        let staging = parent.appendingPathComponent(".\(out.lastPathComponent).tpat-\(UUID().uuidString)")
        do { try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true) } catch {
            throw TPATError(.io, "cannot create \(staging.path): \(error.localizedDescription)")
        }
        do throws(TPATError) {
            let report = try await render(sources: sources, replacements: replacements, failures: failures, model: model,
                                          modelPath: modelPath, options: options, tvmVersion: tvm, staging: staging,
                                          auto: options.selection.auto ? inspected : nil, displayPath: displayPath, rewrites: rewrites)
            try move(staging, to: out, force: options.force)
            return report
        } catch {
            try? FileManager.default.removeItem(at: staging)
            throw error
        }
    }

    /// Node indices: auto's candidates (plus the blocked nodes it would want, reported later), named
    /// nodes and op types, minus the exclusions.
    func select(_ selection: Selection, model: ONNXModel, index: GraphIndex, report: InspectReport) throws(TPATError) -> [Int] {
        var result = Set<Int>()
        if selection.auto {
            let wanted = Set(report.pluginCandidates + report.blocked)
            result.formUnion(model.graph.node.indices.filter { wanted.contains(index.nodeName($0)) })
        }
        func named(_ name: String) throws(TPATError) -> Int {
            guard let i = model.graph.node.indices.first(where: { index.nodeName($0) == name }) else {
                throw TPATError(.input, "no node named '\(name)' in the model")
            }
            return i
        }
        for name in selection.nodes { result.insert(try named(name)) }
        if !selection.ops.isEmpty {
            let wanted = Set(selection.ops)
            let found = model.graph.node.indices.filter { wanted.contains(model.graph.node[$0].opType) }
            if found.isEmpty { throw TPATError(.input, "the model has no node of type \(selection.ops.joined(separator: ", "))") }
            result.formUnion(found)
        }
        for name in selection.excludeNodes { result.remove(try named(name)) }
        let excludedOps = Set(selection.excludeOps)
        result = result.filter { !excludedOps.contains(model.graph.node[$0].opType) }
        return result.sorted()
    }

    func render(sources: [PluginSource], replacements: [ModelRewriter.Replacement], failures: [Report.Failure],
                model: ONNXModel, modelPath: String, options: Options, tvmVersion: String, staging: URL,
                auto: InspectReport? = nil, displayPath: String? = nil, rewrites: [String] = []) async throws(TPATError) -> Report {
        let templates = try TemplateSet(directory: runtime.appendingPathComponent("templates"))
        let launchers = LauncherRenderer(templates: templates)
        let plugins = PluginRenderer(templates: templates)
        let project = staging.appendingPathComponent("plugins")
        var files: [(String, Data)] = []
        func add(_ path: String, _ text: String) { files.append((path, Data(text.utf8))) }

        var reportPlugins: [Report.Plugin] = []
        for s in sources {
            files += try Self.pluginFiles(s, launchers: launchers, plugins: plugins)
            files.append(("\(s.name)/\(s.name).onnx", try s.node.model.serializedInline()))
            reportPlugins.append(.init(name: s.name, opType: s.plan.opType, nodes: s.coveredNodes, kernels: s.plan.kernels.count,
                                       launches: s.plan.launchCount, referenceCases: 0, fixups: s.plan.fixups, tactics: s.tactics.count))
        }
        add("tpat_plugin_specs.cpp", try plugins.specsSource(sources))
        add("CMakeLists.txt", try cmakeLists(sources: sources, name: Self.projectName(modelPath: modelPath)))
        add("README.md", projectReadme(sources: sources, modelPath: modelPath, target: options.target))
        try AtomicFiles.write(files.map { (project.appendingPathComponent($0.0), $0.1) })
        try copyRuntime(to: project)

        // Reference data from ONNX Runtime, one folder per plugin.
        if options.reference {
            for (k, s) in sources.enumerated() {
                let dir = project.appendingPathComponent(s.name)
                struct Request: Encodable {
                    var command = "reference"; var model_path: String; var out_dir: String; var prefix: String; var plugin: String
                    var cases: [String: Int]? = nil; var seed = 0
                }
                struct Answer: Decodable { var cases: Int; var notes: [String] }
                do {
                    let a = try await bridge.call(Request(model_path: dir.appendingPathComponent("\(s.name).onnx").path,
                                                          out_dir: dir.appendingPathComponent("reference").path,
                                                          prefix: "tpat_\(s.name)", plugin: s.name), as: Answer.self)
                    reportPlugins[k].referenceCases = a.cases
                    for n in a.notes { diagnostics.emit(.init(.note, "reference data: \(n)", node: s.coveredNodes.first)) }
                } catch {
                    diagnostics.emit(.init(.warning, "plugin \(s.name): no reference data: \(error.message)", node: s.coveredNodes.first))
                }
            }
        }

        let (rewritten, casts) = ModelRewriter.rewrite(model, replacements: replacements)
        for c in casts { diagnostics.emit(.init(.note, c)) }
        let modelName = URL(fileURLWithPath: modelPath).lastPathComponent
        try rewritten.save(to: staging.appendingPathComponent(modelName))
        var report = Report(model: displayPath ?? modelPath, rewrittenModel: options.output.appendingPathComponent(modelName).path,
                            target: options.target, tvmVersion: tvmVersion, plugins: reportPlugins, failures: failures, casts: casts)
        let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]
        report.rewrites = rewrites.isEmpty ? nil : rewrites
        if let auto {
            report.selectedBy = auto.selectedBy
            report.disagreements = auto.probe?.disagreements ?? []
        }
        try AtomicFiles.write([(staging.appendingPathComponent("tpat-generate.json"), (try? e.encode(report)) ?? Data())])
        return report
    }

    /// The generated sources of one plugin (paths relative to the project): per tactic its TVM
    /// kernels, its host code and its plan; the launcher; the IPluginV3 spec; the Python spec.
    static func pluginFiles(_ s: PluginSource, launchers: LauncherRenderer, plugins: PluginRenderer) throws(TPATError) -> [(String, Data)] {
        var files: [(String, Data)] = []
        func add(_ path: String, _ text: String) { files.append(("\(s.name)/\(path)", Data(text.utf8))) }
        let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]
        for k in s.tactics.indices {
            add("\(s.name)_tactic\(k)_kernels.cuh", launchers.kernels(s, tactic: k))
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

    func cmakeLists(sources: [PluginSource], name: String) throws(TPATError) -> String {
        try Self.cmakeLists(sources: sources, name: name, runtime: runtime)
    }

    /// The CMake project name for a model: "tpat_" and the file name's identifier characters.
    static func projectName(modelPath: String) -> String {
        "tpat_" + URL(fileURLWithPath: modelPath).deletingPathExtension().lastPathComponent.filter { $0.isLetter || $0.isNumber || $0 == "_" }
    }

    /// The project's CMakeLists.txt: the template with every plugin's launcher, tactic and spec sources.
    static func cmakeLists(sources: [PluginSource], name: String, runtime: URL) throws(TPATError) -> String {
        let url = runtime.appendingPathComponent("CMakeLists.template.txt")
        do {
            let template = try MustacheTemplate(string: "{{%CONTENT_TYPE:TEXT}}" + String(contentsOf: url, encoding: .utf8))
            return template.render([
                "project_name": name,
                "launcher_sources": sources.flatMap { p in
                    ["\(p.name)/\(p.name)_launcher.cu"] + p.tactics.indices.map { "\(p.name)/\(p.name)_tactic\($0).cu" }
                }.joined(separator: "\n  "),
                "plugin_sources": (sources.map { "\($0.name)/\($0.name)_plugin.cpp" } + ["tpat_plugin_specs.cpp"]).joined(separator: "\n  "),
                "check_sources": "check/tpat_check.cpp",
            ])
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
                for f in try FileManager.default.contentsOfDirectory(atPath: src.path) where !f.hasPrefix(".") && f != "__pycache__" && !f.hasSuffix(".part.txt") {
                    try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dst.appendingPathComponent(f))
                }
            } catch {
                throw TPATError(.io, "cannot copy \(src.path): \(error.localizedDescription)")
            }
        }
    }

    func projectReadme(sources: [PluginSource], modelPath: String, target: String) -> String {
        var s = "# TPAT plugins for \(URL(fileURLWithPath: modelPath).lastPathComponent)\n\n"
        s += "Generated by `tpat generate` (kernels planned for \(target)). Build: `tpat build OUT` or\n"
        s += "`cmake -S plugins -B plugins/build [-DTensorRT_ROOT=...] && cmake --build plugins/build`.\n\n"
        s += "| plugin | ONNX op | nodes | kernels |\n|---|---|---|---|\n"
        for p in sources { s += "| \(p.name) | \(p.plan.opType) | \(p.coveredNodes.joined(separator: ", ")) | \(p.plan.kernels.count) |\n" }
        s += "\nEach plugin folder: `<P>_tactic<k>_kernels.cuh` (TVM) and `<P>_tactic<k>.cu` per tactic, `<P>_launcher.{h,cu}` (C ABI, no TensorRT), `<P>_plugin.cpp` (IPluginV3 spec),\n"
        s += "`<P>.plugin.json` (Python IPluginV3 spec), `<P>.plan.json` (kernel plan), `<P>.onnx` (the node alone), `reference/` (ONNX Runtime data).\n"
        s += "Check on a GPU: `build/tpat_check build/libtpat_kernels.so <P>/reference/manifest.txt`.\n"
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

import Foundation
import Mustache

/// Stage 3: selected nodes -> plugin sources and the rewritten model, written atomically into
/// OUT (OUT/<model>.onnx and OUT/plugins/, one CMake project for the model).
public struct Generator: Sendable {
    public enum Selection: Sendable, Equatable {
        case auto
        case nodes([String])
        case ops([String])
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
    public func generate(model: ONNXModel, modelPath: String, options: Options) async throws(TPATError) -> Report {
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
        let (tensors, _) = try await inspector.tensorInfo(modelPath: modelPath)
        let index = GraphIndex(model.graph)
        let selected = try select(options.selection, model: model, index: index, tensors: tensors)
        guard !selected.isEmpty else { throw TPATError(.input, "no node selected: nothing to generate") }

        // Extract and group identical nodes.
        var groups: [Data: [ExtractedNode]] = [:]
        var order: [Data] = []
        var failures: [Report.Failure] = []
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
        ChildProcesses.shared.addFolder(staging)  // removed if tpat is interrupted
        defer { ChildProcesses.shared.removeFolder(staging) }
        do { try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true) } catch {
            throw TPATError(.io, "cannot create \(staging.path): \(error.localizedDescription)")
        }
        do throws(TPATError) {
            let report = try await render(sources: sources, replacements: replacements, failures: failures, model: model,
                                          modelPath: modelPath, options: options, tvmVersion: tvm, staging: staging)
            try move(staging, to: out, force: options.force)
            return report
        } catch {
            try? FileManager.default.removeItem(at: staging)
            throw error
        }
    }

    func select(_ selection: Selection, model: ONNXModel, index: GraphIndex, tensors: [String: TensorInfo]) throws(TPATError) -> [Int] {
        switch selection {
        case .auto:
            let verdicts = VerdictEvaluator(rules: rules).evaluate(model: model, tensors: tensors)
            return verdicts.filter { $0.verdict == .unsupported }.map(\.index)
        case .nodes(let names):
            var result: [Int] = []
            for name in names {
                guard let i = model.graph.node.indices.first(where: { index.nodeName($0) == name }) else {
                    throw TPATError(.input, "no node named '\(name)' in the model")
                }
                result.append(i)
            }
            return result.sorted()
        case .ops(let ops):
            let wanted = Set(ops)
            let result = model.graph.node.indices.filter { wanted.contains(model.graph.node[$0].opType) }
            if result.isEmpty { throw TPATError(.input, "the model has no node of type \(ops.joined(separator: ", "))") }
            return result
        }
    }

    func render(sources: [PluginSource], replacements: [ModelRewriter.Replacement], failures: [Report.Failure],
                model: ONNXModel, modelPath: String, options: Options, tvmVersion: String, staging: URL) async throws(TPATError) -> Report {
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
        let report = Report(model: modelPath, rewrittenModel: options.output.appendingPathComponent(modelName).path,
                            target: options.target, tvmVersion: tvmVersion, plugins: reportPlugins, failures: failures, casts: casts)
        let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]
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

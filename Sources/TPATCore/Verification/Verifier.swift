import Foundation

/// Stage 6: every plugin's check program on its reference data (ONNX Runtime outputs), at every
/// reference shape and tactic, optionally under compute-sanitizer; plus the C++ plugin's own
/// runtime path (tpat_plugin_check) when libtpat_plugins.so was built. Needs a CUDA GPU.
public struct Verifier: Sendable {
    public struct Run: Codable, Sendable {
        public var tool: String  // "tpat_check", "memcheck", "racecheck", "tpat_plugin_check"
        public var status: Int32
        public var passed: Int
        public var failed: Int
        public var sanitizerErrors: Int?
        public var output: String
        public var ok: Bool { status == 0 && failed == 0 && (sanitizerErrors ?? 0) == 0 }
    }

    public struct PluginResult: Codable, Sendable {
        public var plugin: String
        public var runs: [Run]
        public var ok: Bool { !runs.isEmpty && runs.allSatisfy(\.ok) }
    }

    public struct Report: Codable, Sendable {
        public var out: String
        public var plugins: [PluginResult]
        public var pluginRuntime: Run?
        public var ok: Bool { !plugins.isEmpty && plugins.allSatisfy(\.ok) && (pluginRuntime?.ok ?? true) }
    }

    public init() {}

    /// "N passed, M failed" from the last such line of a check program's output.
    static func counts(_ output: String) -> (Int, Int) {
        for line in output.split(separator: "\n").reversed() {
            let words = line.split(separator: " ")
            if words.count >= 4, words[1].hasPrefix("passed"), words[3].hasPrefix("failed"),
                let p = Int(words[0]), let f = Int(words[2])
            {
                return (p, f)
            }
        }
        return (0, 0)
    }

    /// Errors counted by compute-sanitizer: "ERROR SUMMARY: N errors" (memcheck) or
    /// "RACECHECK SUMMARY: H hazards displayed (N errors, W warnings)" (racecheck).
    static func sanitizerErrors(_ output: String) -> Int? {
        guard let line = output.split(separator: "\n").last(where: { $0.contains("SUMMARY:") }) else { return nil }
        let words = line.split(whereSeparator: { $0 == " " || $0 == "(" || $0 == "," })
        for (i, w) in words.enumerated() where w.hasPrefix("error") && i > 0 {
            if let n = Int(words[i - 1]) { return n }
        }
        return nil
    }

    public func verify(out: URL, sanitize: Bool) async throws(TPATError) -> Report {
        let project = out.appendingPathComponent("plugins")
        let build = project.appendingPathComponent("build")
        let kernels = build.appendingPathComponent("libtpat_kernels.so"), check = build.appendingPathComponent("tpat_check")
        guard FileManager.default.fileExists(atPath: kernels.path), FileManager.default.isExecutableFile(atPath: check.path) else {
            throw TPATError(
                .input, "\(out.path) is not built (no plugins/build/libtpat_kernels.so or tpat_check): run `tpat build \(out.path)`")
        }
        let dirs = ((try? FileManager.default.contentsOfDirectory(atPath: project.path)) ?? []).sorted()
        let manifests = dirs.compactMap { d -> (String, URL)? in
            let m = project.appendingPathComponent("\(d)/reference/manifest.txt")
            return FileManager.default.fileExists(atPath: m.path) ? (d, m) : nil
        }
        guard !manifests.isEmpty else {
            throw TPATError(.input, "no plugin in \(project.path) has reference data (generate without --no-reference)")
        }
        var results: [PluginResult] = []
        for (name, manifest) in manifests {
            var runs: [Run] = []
            let args = [kernels.path, manifest.path, "--all-tactics"]
            runs.append(try await run("tpat_check", check.path, args))
            if sanitize {
                for tool in ["memcheck", "racecheck"] {
                    runs.append(try await run(tool, "compute-sanitizer", ["--tool", tool, "--error-exitcode", "99", check.path] + args))
                }
            }
            results.append(PluginResult(plugin: name, runs: runs))
        }
        var runtime: Run?
        let pluginLib = build.appendingPathComponent("libtpat_plugins.so"), pluginCheck = build.appendingPathComponent("tpat_plugin_check")
        if FileManager.default.fileExists(atPath: pluginLib.path), FileManager.default.isExecutableFile(atPath: pluginCheck.path) {
            runtime = try await run("tpat_plugin_check", pluginCheck.path, [pluginLib.path, project.path])
        }
        let report = Report(out: out.path, plugins: results, pluginRuntime: runtime)
        let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]
        if let data = try? e.encode(report) { try AtomicFiles.write([(out.appendingPathComponent("tpat-verify.json"), data)]) }
        return report
    }

    func run(_ tool: String, _ executable: String, _ args: [String]) async throws(TPATError) -> Run {
        let r = try await Tool.run(executable, args)
        let (p, f) = Self.counts(r.output)
        return Run(
            tool: tool, status: r.status, passed: p, failed: f,
            sanitizerErrors: ["memcheck", "racecheck"].contains(tool) ? Self.sanitizerErrors(r.output) : nil,
            output: r.output)
    }
}

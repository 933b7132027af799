import ArgumentParser
import Foundation
import TPATCore

struct Generate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate IPluginV3 plugins (TVM kernels) and the rewritten model TensorRT can import.")

    @Argument(help: "The ONNX model.") var model: String
    @Flag(help: "Convert every node the installed TensorRT parser rejects (without one: every node the --trt rules mark unsupported).") var auto = false
    @Option(help: "Convert these nodes too (comma-separated names).") var nodes: String?
    @Option(help: "Convert every node of these op types too (comma-separated).") var ops: String?
    @Option(help: "Do not convert these nodes (comma-separated names).") var excludeNodes: String?
    @Option(help: "Do not convert nodes of these op types (comma-separated).") var excludeOps: String?
    @OptionGroup var rules: RulesOption
    @Option(help: "GPU architecture the kernels are planned for: sm_80, sm_86, sm_89 or sm_90.") var target = "sm_90"
    @Option(name: .shortAndLong, help: "Output folder (gets <model>.onnx and plugins/).") var output: String
    @Flag(help: "Replace the output folder if it is not empty.") var force = false
    @Flag(help: "Skip the ONNX Runtime reference data.") var noReference = false
    @Option(help: "Tuning databases of an earlier `tpat tune` (OUT/tuning): tuned plans become tactic 0.") var tuning: String?

    func run() async throws {
        try await guarded { () async throws(TPATError) in
            guard auto || nodes != nil || ops != nil else { throw TPATError(.input, "choose what to convert: --auto, --nodes and/or --ops") }
            let list = { (s: String?) in (s ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
            let selection = Generator.Selection(auto: auto, nodes: list(nodes), ops: list(ops), excludeNodes: list(excludeNodes), excludeOps: list(excludeOps))
            let loaded = try ONNXModel.load(path: model)
            let diagnostics = DiagnosticsCollector()
            let bridge = try PythonBridge.locate()
            let generator = Generator(bridge: bridge, rules: try await rules.rules(bridge: bridge), diagnostics: diagnostics)
            let report = try await generator.generate(model: loaded, modelPath: model, options: .init(
                selection: selection, target: target, output: URL(fileURLWithPath: output), force: force, reference: !noReference,
                tuning: tuning.map { URL(fileURLWithPath: $0) }))
            printDiagnostics(diagnostics)
            print("Rewritten model: \(report.rewrittenModel)")
            if !report.plugins.isEmpty || (report.rewrites ?? []).isEmpty { print("Plugins (\(report.plugins.count)) in \(output)/plugins:") }
            for p in report.plugins {
                print("  \(p.name)  \(p.opType)  nodes: \(p.nodes.joined(separator: ", "))  kernels: \(p.kernels)  reference cases: \(p.referenceCases)")
            }
            if !report.failures.isEmpty {
                print("Not converted (\(report.failures.count)), left as they are:")
                for f in report.failures { print("  \(f.node) (\(f.opType)): \(f.reason)") }
            }
            if !report.casts.isEmpty {
                print("Cast bridges (TensorRT has no tensor type for these):")
                for c in report.casts { print("  \(c)") }
            }
            for r in report.rewrites ?? [] { print("Rewritten: \(r)") }
            if report.plugins.isEmpty && (report.rewrites ?? []).isEmpty { throw TPATError(.plan, "no node could be converted") }
        }
    }
}

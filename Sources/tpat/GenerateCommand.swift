import ArgumentParser
import Foundation
import TPATCore

struct Generate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate IPluginV3 plugins (TVM kernels) and the rewritten model TensorRT can import.",
        discussion: """
        OUT gets <model>.onnx, plugins/ (one CMake project) and tpat-generate.json \
        (schemas/generate-report.schema.json). With --auto on a model whose every node TensorRT \
        imports, nothing needs converting: OUT gets the model unchanged and tpat-generate.json \
        (outcome "nothing_to_convert", no plugins/), and the exit code is 0. A node that does \
        not convert is left as it is, with a reason code; the exit code is then 3.

        \(TPATExitCode.helpText)
        """)

    @Argument(help: "The ONNX model.") var model: String
    @Flag(help: "Convert every node `tpat inspect` marks unsupported.") var auto = false
    @Option(help: "Whose verdicts --auto follows: tensorrt (the rule table) or qnn (the nodes QNN's HTP backend refuses).") var backend: VendorBackend = .tensorrt
    @Option(help: "Convert these nodes (comma-separated names).") var nodes: String?
    @Option(help: "Convert every node of these op types (comma-separated).") var ops: String?
    @Option(help: "GPU architecture the kernels are planned for: 80, 86, 89 or 90 (also written sm_90).") var arch = "90"
    @Option(name: .customLong("target"), help: .hidden) var legacyTarget: String?
    @Option(name: .shortAndLong, help: "Output folder (gets <model>.onnx, plugins/ and tpat-generate.json).") var output: String
    @Flag(help: "Replace the output folder if it is not empty.") var force = false
    @Flag(help: "Skip the ONNX Runtime reference data.") var noReference = false
    @Option(help: "Tuning databases of an earlier `tpat tune` (OUT/tuning): tuned plans become tactic 0.") var tuning: String?
    @OptionGroup var log: LogOptions

    func run() async throws {
        var partial = false
        try await guarded { () async throws(TPATError) in
            let logger = log.bootstrap()
            let target = try Planner.target(GPUArchitecture.one(legacyTarget ?? arch, for: "generate"))
            let chosen = [auto, nodes != nil, ops != nil].filter { $0 }.count
            guard chosen == 1 else { throw TPATError(.input, "choose exactly one of --auto, --nodes, --ops") }
            let list = { (s: String) in s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
            var selection: Generator.Selection = auto ? .auto : (nodes.map { .nodes(list($0)) } ?? .ops(list(ops ?? "")))
            let loaded = try ONNXModel.load(path: model)
            if auto, backend == .qnn { selection = .indices(try await qnnRefusedNodes(model: loaded, modelPath: model)) }
            let diagnostics = DiagnosticsCollector()
            let generator = Generator(bridge: try PythonBridge.locate(), rules: try ParserRules.bundled(), diagnostics: diagnostics, log: logger)
            let report = try await generator.generate(model: loaded, modelPath: model, options: .init(
                selection: selection, target: target, output: URL(fileURLWithPath: output), force: force, reference: !noReference,
                tuning: tuning.map { URL(fileURLWithPath: $0) }))
            logger.report(diagnostics)
            if report.outcome == .nothingToConvert {
                print("Nothing to convert: TensorRT's ONNX parser imports every node of \(SafeText.terminal(model)).")
                print("Written: \(report.rewrittenModel) (the model, unchanged) and \(output)/tpat-generate.json (no plugins, no plugins/ folder).")
                return
            }
            print("Rewritten model: \(SafeText.terminal(report.rewrittenModel))")
            print("Plugins (\(report.plugins.count))\(report.plugins.isEmpty ? "" : " in \(output)/plugins"):")
            for p in report.plugins {
                print("  \(p.name)  \(SafeText.terminal(p.opType))  nodes: \(SafeText.terminal(p.nodes.joined(separator: ", ")))  kernels: \(p.kernels)  reference cases: \(p.referenceCases)")
            }
            if !report.failures.isEmpty {
                print("Not converted (\(report.failures.count)), left as they are:")
                for f in report.failures { print(SafeText.terminal("  \(f.node) (\(f.opType)): [\(f.code)] \(f.reason)")) }
            }
            if !report.casts.isEmpty {
                print("Cast bridges (TensorRT has no tensor type for these):")
                for c in report.casts { print(SafeText.terminal("  \(c)")) }
            }
            switch report.outcome {
            case .none:
                logger.error("no selected node could be converted (exit code 3)")
                partial = true
            case .partial:
                logger.warning("\(report.failures.count) selected node(s) not converted, \(report.plugins.flatMap(\.nodes).count) converted (exit code 3)")
                partial = true
            case .converted, .nothingToConvert: break
            }
        }
        if partial { throw TPATExitCode.partial.argumentParser }
    }
}

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
    @Flag(help: "Convert every node the installed TensorRT parser rejects (without one: every node the --trt rules mark unsupported).")
    var auto = false
    @Option(help: "Whose verdicts --auto follows: tensorrt (the parser or the --trt rules) or qnn (the nodes QNN's HTP backend refuses).")
    var backend: VendorBackend = .tensorrt
    @Option(help: "Convert these nodes too (comma-separated names).") var nodes: String?
    @Option(help: "Convert every node of these op types too (comma-separated).") var ops: String?
    @Option(help: "Do not convert these nodes (comma-separated names).") var excludeNodes: String?
    @Option(help: "Do not convert nodes of these op types (comma-separated).") var excludeOps: String?
    @OptionGroup var rules: RulesOption
    @Option(help: "GPU architecture the kernels are planned for: 80, 86, 89, 90 or 90a (Hopper-only kernels); also sm_90.")
    var arch = "90"
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
            guard auto || nodes != nil || ops != nil else {
                throw TPATError(.input, "choose what to convert: --auto, --nodes and/or --ops")
            }
            let list = { (s: String?) in
                (s ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            }
            var selection = Generator.Selection(
                auto: auto, nodes: list(nodes), ops: list(ops), excludeNodes: list(excludeNodes), excludeOps: list(excludeOps))
            let loaded = try ONNXModel.load(path: model)
            if auto, backend == .qnn {  // QNN's refusals replace the TensorRT parser's as --auto's choice
                selection.auto = false
                selection.indices = try await qnnRefusedNodes(model: loaded, modelPath: model)
                selection.byBackend = true
            }
            let diagnostics = DiagnosticsCollector()
            let bridge = try PythonBridge.locate()
            let generator = Generator(bridge: bridge, rules: try await rules.rules(bridge: bridge), diagnostics: diagnostics, log: logger)
            let report = try await generator.generate(
                model: loaded, modelPath: model,
                options: .init(
                    selection: selection, target: target, output: URL(fileURLWithPath: output), force: force, reference: !noReference,
                    tuning: tuning.map { URL(fileURLWithPath: $0) }))
            logger.report(diagnostics)
            for r in report.rewrites ?? [] { print("Rewritten: \(SafeText.terminal(r))") }
            if report.outcome == .nothingToConvert {
                let who = backend == .qnn ? "QNN's HTP backend takes" : "TensorRT's ONNX parser imports"
                print("Nothing to convert: \(who) every node of \(SafeText.terminal(model)).")
                print(
                    "Written: \(SafeText.terminal(report.rewrittenModel)) (the model\((report.rewrites ?? []).isEmpty ? ", unchanged" : ", rewritten: see Rewritten")) and \(SafeText.terminal(output))/tpat-generate.json (no plugins, no plugins/ folder)."
                )
                return
            }
            print("Rewritten model: \(SafeText.terminal(report.rewrittenModel))")
            print("Plugins (\(report.plugins.count))\(report.plugins.isEmpty ? "" : " in \(SafeText.terminal(output))/plugins"):")
            for p in report.plugins {
                print(
                    "  \(p.name)  \(SafeText.terminal(p.opType))  nodes: \(SafeText.terminal(p.nodes.joined(separator: ", ")))  kernels: \(p.kernels)  reference cases: \(p.referenceCases)"
                )
            }
            if !report.failures.isEmpty {
                print("Not converted (\(report.failures.count)), left as they are:")
                for f in report.failures {
                    print(
                        "  \(SafeText.terminal(f.node.debugDescription)) (\(SafeText.terminal(f.opType))): [\(f.code)] \(SafeText.terminal(f.reason))"
                    )
                }
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
                logger.warning(
                    "\(report.failures.count) selected node(s) not converted, \(report.plugins.flatMap(\.nodes).count) converted (exit code 3)"
                )
                partial = true
            case .converted, .nothingToConvert: break
            }
        }
        if partial { throw TPATExitCode.partial.argumentParser }
    }
}

import ArgumentParser
import Foundation
import TPATCore

struct Plan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plan TVM CUDA kernels for one node (schemas/kernel-plan.schema.json).")

    @Argument(help: "The ONNX model.") var model: String
    @Option(help: "Name of the node to plan (as `tpat inspect` shows it).") var node: String
    @Option(help: "GPU architecture to plan for: 80, 86, 89, 90 or 90a (Hopper-only kernels, built with --arch 90a); also sm_90.")
    var arch = "90"
    @Option(name: .customLong("target"), help: .hidden) var legacyTarget: String?
    @Option(name: .shortAndLong, help: "Write the plan here (default: standard output).") var output: String?
    @Flag(help: "Ignore the plan cache.") var noCache = false
    @Option(help: "A MetaSchedule database folder (from `tpat tune`): use its tuned schedules.") var database: String?
    @Option(help: "Lowering: tpat (TPAT's own TVM definitions where there is one) or tvm (the frontend's).") var lowering: String?
    @OptionGroup var log: LogOptions

    func run() async throws {
        try await guarded { () async throws(TPATError) in
            let logger = log.bootstrap()
            let target = try Planner.target(GPUArchitecture.one(legacyTarget ?? arch, for: "plan"))
            let loaded = try ONNXModel.load(path: model)
            let bridge = try PythonBridge.locate()
            let inspector = Inspector(bridge: bridge, rules: try ParserRules.bundled())
            let (tensors, _) = try await inspector.tensorInfo(modelPath: model)
            let extracted = try NodeExtractor.extract(node: node, from: loaded, tensors: tensors)
            let planner = Planner(bridge: bridge, cache: noCache ? nil : PlanCache.standard())
            let start = ContinuousClock.now
            let outcome = try await planner.plan(
                extracted, target: target, tvmVersion: try await planner.tvmVersion(),
                lowering: lowering, database: database.map { URL(fileURLWithPath: $0) })
            let elapsed = ContinuousClock.now - start
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data: Data
            do { data = try encoder.encode(outcome.plan) } catch { throw TPATError(.io, "cannot encode plan: \(error)") }
            if let output {
                try AtomicFiles.write([(URL(fileURLWithPath: output), data)])
            } else {
                FileHandle.standardOutput.write(data)
                print("")
            }
            let p = outcome.plan
            let summary =
                "planned \(extracted.sourceName) (\(p.opType)) for \(p.target.sm): \(p.kernels.count) kernel(s), \(p.launchCount) launch step(s), \(p.buffers.count) buffer(s), \(p.constants.count) constant(s)"
                + ", lowering: \(p.lowering)" + (p.loweringDetail.map { " (\($0))" } ?? "")
                + (p.declined.isEmpty ? "" : ", declined: " + p.declined.map { "\($0.lowering): \($0.reason)" }.joined(separator: "; "))
                + (p.fixups.isEmpty ? "" : ", fixups: \(p.fixups.joined(separator: "; "))")
                + (outcome.cached ? " [cached]" : "")
                + " in \(elapsed.formatted(.units(allowed: [.seconds, .milliseconds], width: .narrow)))"
            logger.info("\(SafeText.terminal(summary))")
        }
    }
}

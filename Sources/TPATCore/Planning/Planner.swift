import Foundation

/// Stage 2 of the pipeline: a selected node -> a KernelPlan from TVM (through the bridge),
/// cached on disk.
public struct Planner: Sendable {
    public static let targets = ["sm_80", "sm_86", "sm_89", "sm_90", "sm_90a"]

    /// The planner's name for `arch` (`sm_90`), when the planner knows it.
    public static func target(_ arch: GPUArchitecture) throws(TPATError) -> String {
        guard targets.contains(arch.sm) else {
            throw TPATError(
                .input,
                "kernels cannot be planned for \(arch.sm) (plan for one of \(targets.map { $0.dropFirst(3) }.joined(separator: ", ")))")
        }
        return arch.sm
    }
    public let bridge: PythonBridge
    public let cache: PlanCache?
    /// Digest of the planner's Python sources, read once (part of every cache key).
    let plannerRevision: String

    public init(bridge: PythonBridge, cache: PlanCache? = PlanCache.standard()) {
        self.bridge = bridge
        self.cache = cache
        self.plannerRevision = PlanCache.plannerRevision(root: bridge.root)
    }

    public struct Outcome: Sendable {
        public var plan: KernelPlan
        public var cached: Bool
        public var key: String
    }

    struct PlanRequest: Codable {
        var command = "plan"
        var modelPath: String
        var target: String
        var lowering: String?
        var database: String?
        enum CodingKeys: String, CodingKey { case command, modelPath = "model_path", target, lowering, database }
    }

    /// TVM's version as the bridge reports it (part of every cache key).
    public func tvmVersion() async throws(TPATError) -> String {
        let v = try await bridge.call(BridgeMessages.VersionRequest(), as: BridgeMessages.Versions.self)
        guard let tvm = v.tvm else { throw TPATError(.bridge, "apache-tvm is not installed in \(bridge.python): run `make venv`") }
        return tvm
    }

    /// `lowering`: "tpat" (TPAT's own TVM definitions where it has one, the default) or "tvm"
    /// (the frontend's legalization); nil lets the planner choose.
    /// `database`: a MetaSchedule database folder (`tpat tune`); its tuned schedules are used,
    /// dlight's defaults for everything it does not cover.
    public func plan(
        _ node: ExtractedNode, target: String, tvmVersion: String, lowering: String? = nil,
        database: URL? = nil
    ) async throws(TPATError) -> Outcome {
        guard Self.targets.contains(target) else {
            throw TPATError(.input, "unknown target \(target) (use one of \(Self.targets.joined(separator: ", ")))")
        }
        let key = PlanCache.key(
            node: node, target: target, tvmVersion: tvmVersion, planner: plannerRevision,
            schedule: "dlight/\(lowering ?? "default")" + (database.map { "/ms:" + PlanCache.digest(folder: $0) } ?? ""))
        if let cached = cache?.load(key, node: node) { return Outcome(plan: cached, cached: true, key: key) }

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tpat-plan-\(UUID().uuidString)")
        ChildProcesses.shared.addFolder(dir)
        defer { try? FileManager.default.removeItem(at: dir); ChildProcesses.shared.removeFolder(dir) }
        let path = dir.appendingPathComponent("node.onnx")
        try node.model.save(to: path)
        let plan: KernelPlan
        do {
            plan = try await bridge.call(
                PlanRequest(modelPath: path.path, target: target, lowering: lowering, database: database?.path), as: KernelPlan.self)
        } catch {
            throw TPATError(
                .plan, "cannot plan node '\(node.sourceName)' (\(node.opType)): \(error.message)", code: error.code ?? "bridge_failed")
        }
        do throws(TPATError) { try plan.checkReferences() } catch {
            throw TPATError(error.kind, error.message, code: error.code ?? "invalid_plan")
        }
        do throws(TPATError) { try plan.validate() } catch {
            throw TPATError(error.kind, error.message, code: error.code ?? "invalid_plan")
        }
        try cache?.store(plan, key: key, node: node)
        return Outcome(plan: plan, cached: false, key: key)
    }
}

import Foundation
import SwiftProtobuf
import Testing

@testable import TPATCore

@Suite(.serialized) struct PlanningTests {
    static func tensors(_ model: String) async throws -> (ONNXModel, [String: TensorInfo]) {
        let path = Repo.fixture(model).path
        let inspector = Inspector(bridge: try Repo.bridge(), rules: try ParserRules.bundled())
        return (try ONNXModel.load(path: path), try await inspector.tensorInfo(modelPath: path).tensors)
    }

    @Test func extractionIsCanonicalAndKeepsSymbols() async throws {
        let (model, tensors) = try await Self.tensors("symbolic.onnx")
        let node = try NodeExtractor.extract(node: "scatter_add", from: model, tensors: tensors)
        let g = node.model.graph
        #expect(g.node.count == 1)
        #expect(g.node[0].opType == "ScatterND")
        #expect(g.node[0].attribute.contains { $0.name == "reduction" && String(decoding: $0.s, as: UTF8.self) == "add" })
        // Symbolic dims survive, renamed by first appearance and mapped back to the model's names.
        let dims = g.input.flatMap { TensorInfo($0)?.shape ?? [] }
        #expect(dims.contains(.symbol("s0")))
        #expect(Set(node.symbols.values).isSubset(of: ["batch", "seq"]))
        #expect(node.symbols["s0"] != nil)
        #expect(g.input.allSatisfy { $0.name.hasPrefix("in") })
        // Re-extracting gives the same bytes: the node's identity is stable.
        let again = try NodeExtractor.extract(node: "scatter_add", from: model, tensors: tensors)
        #expect(again.canonicalBytes == node.canonicalBytes)
        #expect(PlanCache.key(node: again, target: "sm_90", tvmVersion: "x") == PlanCache.key(node: node, target: "sm_90", tvmVersion: "x"))
        #expect(PlanCache.key(node: node, target: "sm_89", tvmVersion: "x") != PlanCache.key(node: node, target: "sm_90", tvmVersion: "x"))
    }

    /// The plan cache key covers the whole Python package by digest: any `*.py` file added,
    /// changed, renamed or removed anywhere under python/tpat_bridge changes the revision; bytecode
    /// caches and other files do not.
    @Test func plannerRevisionCoversEveryPythonFileOfThePackage() throws {
        let root = try temporaryDirectory()
        let pkg = root.appendingPathComponent(PlanCache.plannerPackage)
        let fm = FileManager.default
        try fm.createDirectory(at: pkg.appendingPathComponent("lowerings"), withIntermediateDirectories: true)
        func write(_ path: String, _ text: String) throws {
            let u = pkg.appendingPathComponent(path)
            try fm.createDirectory(at: u.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: u)
        }
        try write("__main__.py", "main\n")
        try write("lowerings/registry.py", "LOWERINGS = ()\n")
        var seen = [PlanCache.plannerRevision(root: root)]
        func changes(_ why: String, sourceLocation: SourceLocation = #_sourceLocation) {
            let rev = PlanCache.plannerRevision(root: root)
            #expect(!seen.contains(rev), "\(why) left the revision unchanged", sourceLocation: sourceLocation)
            seen.append(rev)
        }
        func keeps(_ why: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(PlanCache.plannerRevision(root: root) == seen.last, "\(why) changed the revision", sourceLocation: sourceLocation)
        }
        try write("lowerings/new_op.py", "def select(node): ...\n"); changes("a new lowering module")
        try write("lowerings/new_op.py", "def select(node): return None\n"); changes("an edited module")
        try write("planning/deep/x.py", ""); changes("an empty module in a new subpackage")
        try fm.moveItem(at: pkg.appendingPathComponent("planning/deep/x.py"), to: pkg.appendingPathComponent("planning/deep/y.py"))
        changes("a renamed module")
        try fm.removeItem(at: pkg.appendingPathComponent("lowerings/new_op.py")); changes("a removed module")
        try write("lowerings/__pycache__/registry.cpython-311.py", "bytecode\n"); keeps("a __pycache__ file")
        try write("lowerings/notes.txt", "text\n"); keeps("a file that is not Python")
        // The repository's own package: a revision, and not the empty package's.
        #expect(PlanCache.plannerRevision(root: Repo.root) != PlanCache.plannerRevision(root: try temporaryDirectory()))
        #expect(PlanCache.pythonSources(in: Repo.root.appendingPathComponent(PlanCache.plannerPackage)).contains("lowerings/registry.py"))
    }

    @Test func constantInputsStayConstants() async throws {
        let (model, tensors) = try await Self.tensors("verdicts_basic.onnx")
        let topk = try NodeExtractor.extract(node: "topk_k4096", from: model, tensors: tensors)
        #expect(topk.model.graph.initializer.count == 1)
        #expect(TensorValues.integers(topk.model.graph.initializer[0]) == [4096])
        #expect(topk.model.graph.input.count == 1)
        #expect(topk.model.graph.output.count == 2)
        // A node fed by a Constant node gets the constant as an initializer too.
        let cumsum = try NodeExtractor.extract(node: "cumsum_const_axis", from: model, tensors: tensors)
        #expect(cumsum.model.graph.initializer.count == 1)
        #expect(throws: TPATError.self) { try NodeExtractor.extract(node: "no_such_node", from: model, tensors: tensors) }
    }

    @Test func plansComeBackTypedAndCached() async throws {
        let (model, tensors) = try await Self.tensors("symbolic.onnx")
        let node = try NodeExtractor.extract(node: "scatter_add", from: model, tensors: tensors)
        let cacheDir = try temporaryDirectory()
        let planner = Planner(bridge: try Repo.bridge(), cache: PlanCache(directory: cacheDir))
        let tvm = try await planner.tvmVersion()
        let first = try await planner.plan(node, target: "sm_90", tvmVersion: tvm)
        #expect(!first.cached)
        let plan = first.plan
        #expect(plan.opType == "ScatterND")
        #expect(plan.target.sm == "sm_90")
        // TPAT's own scatter lowering made it, and the plan says so in fields, not prose.
        #expect(plan.lowering == "scatter_nd" && plan.usesTPATLowering)
        #expect(plan.loweringDetail == "scatter_nd (reduction=add)")
        #expect(plan.declined.isEmpty && !plan.fixups.contains { $0.hasPrefix("tpat lowering") })
        #expect(!plan.kernels.isEmpty)
        #expect(plan.launchCount >= 1)
        #expect(plan.cudaSource.contains(plan.kernels[0].name))
        // Symbolic: some symbol is read from an input and appears in a launch or scalar.
        #expect(!plan.symbols.isEmpty)
        // The Swift encoding of the plan validates against the schema the bridge checks too.
        let check = try await Repo.bridge().call(
            BridgeMessages.ValidateRequest(schema: "kernel-plan.schema.json", definition: nil, instance: try JSONValue.from(plan)),
            as: BridgeMessages.ValidateResult.self)
        #expect(check.valid, "\(check.errors)")
        // Second time: from the cache, even with no working Python at all.
        let broken = Planner(bridge: PythonBridge(root: Repo.root, python: "/nonexistent/python"), cache: PlanCache(directory: cacheDir))
        let second = try await broken.plan(node, target: "sm_90", tvmVersion: tvm)
        #expect(second.cached)
        #expect(second.plan == plan)
    }

    @Test func dataDependentShapesAreRefusedWithAReason() async throws {
        var proto = Onnx_ModelProto()
        proto.irVersion = 10
        var opset = Onnx_OperatorSetIdProto(); opset.version = 20
        proto.opsetImport = [opset]
        // NonMaxSuppression with a runtime max_output_boxes_per_class: TPAT's lowering needs it
        // constant (it bounds the output), so the node has no plan
        var node = Onnx_NodeProto(); node.opType = "NonMaxSuppression"; node.name = "nz"; node.input = ["b", "s", "m"]; node.output = ["y"]
        proto.graph.node = [node]
        proto.graph.input = [
            NodeExtractor.valueInfo("b", .float, [.fixed(1), .fixed(6), .fixed(4)]),
            NodeExtractor.valueInfo("s", .float, [.fixed(1), .fixed(1), .fixed(6)]),
            NodeExtractor.valueInfo("m", .int64, [.fixed(1)]),
        ]
        proto.graph.output = [NodeExtractor.valueInfo("y", .int64, [.unknown, .fixed(3)])]
        let model = ONNXModel(proto: proto)
        let extracted = try NodeExtractor.extract(node: "nz", from: model, tensors: [:])
        let planner = Planner(bridge: try Repo.bridge(), cache: nil)
        do {
            _ = try await planner.plan(extracted, target: "sm_90", tvmVersion: "test")
            Issue.record("NonMaxSuppression was planned")
        } catch {
            #expect(error.kind == .plan)
            #expect(error.message.contains("nz"))
            #expect(error.code == "data_dependent_shape", "\(error.message)")
        }
    }

    /// NonZero plans through TPAT's lowering: output 0's dim 1 is the value of a trailing 0-D
    /// int64 size output, its upper bound the input's element count.
    @Test func nonZeroPlansWithASizeOutput() async throws {
        var proto = Onnx_ModelProto()
        proto.irVersion = 10
        var opset = Onnx_OperatorSetIdProto(); opset.version = 20
        proto.opsetImport = [opset]
        var node = Onnx_NodeProto(); node.opType = "NonZero"; node.name = "nz"; node.input = ["x"]; node.output = ["y"]
        proto.graph.node = [node]
        proto.graph.input = [NodeExtractor.valueInfo("x", .float, [.fixed(4), .fixed(5)])]
        proto.graph.output = [NodeExtractor.valueInfo("y", .int64, [.fixed(2), .unknown])]
        let extracted = try NodeExtractor.extract(node: "nz", from: ONNXModel(proto: proto), tensors: [:])
        let plan = try await Planner(bridge: try Repo.bridge(), cache: nil).plan(extracted, target: "sm_90", tvmVersion: "test").plan
        #expect(plan.outputs.count == 2 && plan.sizeOutputCount == 1)
        #expect(plan.outputs[0].dataDependent == KernelPlan.DataDependent(dim: 1, sizeOutput: 1))
        #expect(plan.outputs[0].shapeExpr == [.int(2), .int(20)])
        #expect(plan.outputs[1].sizeOf == [0] && plan.outputs[1].dtype == "int64" && plan.outputs[1].shapeExpr.isEmpty)
        // a size output that names nothing, or a data-dependent output without one, is rejected
        var bad = plan
        bad.outputs[1].sizeOf = nil
        #expect(throws: TPATError.self) { try bad.validate() }
        bad = plan
        bad.outputs[0].dataDependent = nil
        #expect(throws: TPATError.self) { try bad.validate() }
        bad = plan
        bad.outputs[1].shapeExpr = [.int(1)]
        bad.outputs[1].shape = [.int(1)]
        #expect(throws: TPATError.self) { try bad.validate() }
    }

    @Test func expressionsEvaluateLikeTheSchemaSays() throws {
        let json =
            #"{"op":"select","args":[{"op":"lt","args":[{"sym":"n"},{"int":0}]},{"op":"floordiv","args":[{"sym":"n"},{"int":4}]},{"op":"floormod","args":[{"sym":"n"},{"int":4}]}]}"#
        let e = try JSONDecoder().decode(Expr.self, from: Data(json.utf8))
        #expect(e.evaluate(["n": -7]) == -2)  // floordiv rounds toward -infinity
        #expect(e.evaluate(["n": 7]) == 3)
        #expect(e.evaluate([:]) == nil)
        #expect(Expr.op(.truncdiv, [.int(-7), .int(4)]).evaluate([:]) == -1)
        #expect(Expr.op(.floormod, [.int(-7), .int(4)]).evaluate([:]) == 1)
        #expect(Expr.op(.floordiv, [.int(1), .int(0)]).evaluate([:]) == nil)
        #expect(e.symbols == ["n"])
        #expect(e.cppChecked { "v_\($0)" }.contains("dx::floordiv(ovf, v_n, INT64_C(4))"))
        let bad = #"{"op":"add","args":[{"int":1}]}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Expr.self, from: Data(bad.utf8)) }
        let round = try JSONDecoder().decode(Expr.self, from: JSONEncoder().encode(e))
        #expect(round == e)
    }
}

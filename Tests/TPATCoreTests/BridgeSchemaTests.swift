import Foundation
import Testing

@testable import TPATCore

/// The Swift side of the bridge checked against schemas/bridge.schema.json (the Python side is
/// checked against the same file by tests/python/test_bridge.py).
@Suite struct BridgeSchemaTests {
    func validate<T: Encodable>(_ value: T, schema: String, definition: String?) async throws -> BridgeMessages.ValidateResult {
        let request = BridgeMessages.ValidateRequest(schema: schema, definition: definition, instance: try JSONValue.from(value))
        return try await Repo.bridge().call(request, as: BridgeMessages.ValidateResult.self)
    }

    @Test func swiftRequestsMatchTheSchema() async throws {
        for request in [BridgeMessages.ModelRequest.inferShapes("/m.onnx"), .probe("/m.onnx")] {
            let r = try await validate(request, schema: "bridge.schema.json", definition: "request")
            #expect(r.valid, "\(r.errors)")
        }
        let v = try await validate(BridgeMessages.VersionRequest(), schema: "bridge.schema.json", definition: "request")
        #expect(v.valid)
    }

    @Test func validatorRejectsWhatTheSchemaForbids() async throws {
        let bad = JSONValue.object(["command": .string("infer_shapes")])  // no model_path
        let r = try await validate(bad, schema: "bridge.schema.json", definition: "request")
        #expect(!r.valid)
    }

    @Test func versionsAreReported() async throws {
        let v = try await Repo.bridge().call(BridgeMessages.VersionRequest(), as: BridgeMessages.Versions.self)
        #expect(v.tvm == "0.27.0.post1")
        #expect(v.tvmFFI == "0.1.14.post1")
        #expect(v.onnx != nil)
    }

    @Test func bridgeErrorsBecomeTPATErrors() async throws {
        await #expect(throws: TPATError.self) {
            _ = try await Repo.bridge().call(
                BridgeMessages.ModelRequest.inferShapes("/no/such/model.onnx"), as: BridgeMessages.ShapeResult.self)
        }
    }

    @Test func inspectReportMatchesItsSchema() async throws {
        let inspector = Inspector(bridge: try Repo.bridge(), rules: try ParserRules.bundled())
        let report = try await inspector.inspect(modelPath: Repo.fixture("verdicts_basic.onnx").path, probe: false)
        let r = try await validate(report, schema: "inspect-report.schema.json", definition: nil)
        #expect(r.valid, "\(r.errors)")
    }
}

extension BridgeSchemaTests {
    @Test func planReferenceAndEngineRequestsMatchTheSchema() async throws {
        let plan = Planner.PlanRequest(modelPath: "/n.onnx", target: "sm_90")
        #expect(try await validate(plan, schema: "bridge.schema.json", definition: "request").valid)
        let engine = EngineBuilder.Request(
            model_path: "/m.onnx", sm: "89", plugin_library: nil, python_plugin_specs: ["/p.json"],
            output: "/m.engine", dynamic_dim: [1, 8, 64])
        let r = try await validate(engine, schema: "bridge.schema.json", definition: "request")
        #expect(r.valid, "\(r.errors)")
    }
}

extension BridgeSchemaTests {
    /// The plan's `lowering` / `lowering_detail` / `declined` / `tuning_database`: what the Swift
    /// side encodes validates against schemas/kernel-plan.schema.json, and a lowering name that is
    /// not one is refused by the schema and by `KernelPlan.validate` alike.
    @Test func planLoweringFieldsMatchTheSchema() async throws {
        let data = try Data(contentsOf: Repo.root.appendingPathComponent("tests/fixtures/plans/ScatterND_7a375313.plan.json"))
        var plan = try KernelPlan.decode(data)
        #expect(plan.lowering == KernelPlan.tvmDefault && !plan.usesTPATLowering)
        plan.lowering = "scatter_nd"
        plan.loweringDetail = "scatter_nd (reduction=add)"
        plan.declined = [.init(lowering: "scatter_elements", reason: "not this op")]
        plan.tuningDatabase = "ScatterND_7a375313"
        #expect(plan.usesTPATLowering)
        #expect(PluginSource.lowering(of: plan) == "tpat lowering: scatter_nd (reduction=add)")
        try plan.validate()
        let good = try await validate(plan, schema: "kernel-plan.schema.json", definition: nil)
        #expect(good.valid, "\(good.errors)")
        for bad in ["Scatter ND", "", "tvm_default\n"] {
            var p = plan
            p.lowering = bad
            #expect(throws: TPATError.self) { try p.validate() }
            // (the schema's `$`, under Python's jsonschema, also matches before a final newline)
            if !bad.hasSuffix("\n") { #expect(try await !validate(p, schema: "kernel-plan.schema.json", definition: nil).valid) }
        }
        var declinedDefault = plan
        declinedDefault.declined = [.init(lowering: KernelPlan.tvmDefault, reason: "x")]
        #expect(throws: TPATError.self) { try declinedDefault.validate() }
    }
}

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
            _ = try await Repo.bridge().call(BridgeMessages.ModelRequest.inferShapes("/no/such/model.onnx"), as: BridgeMessages.ShapeResult.self)
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
        let engine = EngineBuilder.Request(model_path: "/m.onnx", sm: "89", plugin_library: nil, python_plugin_specs: ["/p.json"],
                                           output: "/m.engine", dynamic_dim: [1, 8, 64])
        let r = try await validate(engine, schema: "bridge.schema.json", definition: "request")
        #expect(r.valid, "\(r.errors)")
    }
}

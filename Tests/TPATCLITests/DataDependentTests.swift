import Foundation
import Testing

@testable import TPATCore

/// A data-dependent output end to end on the CPU: NonZero (TensorRT-RTX imports none) becomes a
/// plugin whose output dim is a size tensor. generate (reference data, the LLVM cross-check),
/// the rewritten model (the plugin node's extra size output), the C++ spec (declareSizeTensor),
/// the launcher's output_kind, build (nvcc: launchers and tpat_check), and an sm_89 TensorRT-RTX
/// engine with the plugin layer feeding a Transpose; Compress and Unique (one size tensor shared by
/// three outputs; and along an axis with an omitted output) and NonMaxSuppression (TensorRT-RTX 1.7
/// parses it but builds no runner) in the same model and engine.
@Suite(.serialized) struct DataDependentTests {
    let cli = CLITests()

    struct GenerateReport: Decodable {
        struct Plugin: Decodable { var name: String; var opType: String; var nodes: [String]; var referenceCases: Int }
        struct Failure: Decodable { var node: String; var code: String; var reason: String }
        var plugins: [Plugin]
        var failures: [Failure]
        var rewrittenModel: String
    }

    /// x[6, 40] -> Relu -> NonZero -> Transpose -> y[?, 2]; Compress(x, c[40], axis 1) -> z[6, ?];
    /// Unique(u[50]) -> (uy, ui, uinv, ucnt), sorted=0; NonMaxSuppression(b[1, 30, 4], s[1, 3, 30]) -> sel[?, 3].
    func model(at url: URL) throws {
        var m = ModelBuilder(opset: 13)
        m.input("x", .float, [6, 40])
        m.input("c", .bool, [40])
        m.input("u", .int64, [50])
        m.input("b", .float, [1, 30, 4])
        m.input("s", .float, [1, 3, 30])
        m.initializer(ModelBuilder.int64("maxo", [5], dims: [1]))
        m.initializer(ModelBuilder.float("iou", [0.5], dims: [1]))
        m.initializer(ModelBuilder.float("sth", [0.1], dims: [1]))
        m.node("Relu", ["x"], ["r"], name: "relu")
        m.node("NonZero", ["r"], ["nz"], name: "nonzero")
        m.node("Transpose", ["nz"], ["y"], name: "transpose")
        m.node("Compress", ["x", "c"], ["z"], name: "compress", attributes: [ModelBuilder.attribute("axis", int: 1)])
        m.node("Unique", ["u"], ["uy", "ui", "uinv", "ucnt"], name: "unique", attributes: [ModelBuilder.attribute("sorted", int: 0)])
        m.node("Unique", ["x"], ["ay", "", "ainv"], name: "unique_axis", attributes: [ModelBuilder.attribute("axis", int: 0)])
        m.node("NonMaxSuppression", ["b", "s", "maxo", "iou", "sth"], ["sel"], name: "nms")
        m.output("y", .int64, nil)
        m.output("sel", .int64, nil)
        m.output("z", .float, nil)
        m.output("ay", .float, nil)
        m.output("ainv", .int64, nil)
        for o in ["uy", "ui", "uinv", "ucnt"] { m.output(o, .int64, nil) }
        try m.proto.serializedData().write(to: url)
    }

    @Test func nonZeroGenerateBuildEngine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tpat-dd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let input = dir.appendingPathComponent("nonzero.onnx"), out = dir.appendingPathComponent("out")
        try model(at: input)
        let g = try cli.run(["generate", input.path, "--ops", "NonZero,Compress,Unique,NonMaxSuppression", "-o", out.path])
        #expect(g.status == 0, "\(g.stdout)\(g.stderr)")
        #expect(!g.stderr.contains("cross-check") || !g.stderr.contains("disagree"), "\(g.stderr)")
        let report = try JSONDecoder().decode(GenerateReport.self, from: Data(contentsOf: out.appendingPathComponent("tpat-generate.json")))
        #expect(report.failures.isEmpty, "\(report.failures.map(\.reason))")
        let plugin = try #require(report.plugins.first { $0.opType == "NonZero" })
        #expect(plugin.nodes == ["nonzero"])
        #expect(plugin.referenceCases == 1)
        let ops = report.plugins.map(\.opType).sorted()
        #expect(ops == ["Compress", "NonMaxSuppression", "NonZero", "Unique", "Unique"], "\(ops)")
        for p in report.plugins { #expect(p.referenceCases == 1, "\(p.name): no reference data, not cross-checked") }
        let unique = try #require(report.plugins.first { $0.nodes == ["unique"] })
        let uplan = try KernelPlan.decode(Data(contentsOf: out.appendingPathComponent("plugins/\(unique.name)/\(unique.name).plan.json")))
        #expect(uplan.outputs.count == 5 && uplan.outputs[4].sizeOf == [0, 1, 3] && uplan.outputs[2].dataDependent == nil)

        // The plan: output 0's dim 1 is the value of output 1, a 0-D int64 size tensor.
        let pdir = out.appendingPathComponent("plugins/\(plugin.name)")
        let plan = try KernelPlan.decode(Data(contentsOf: pdir.appendingPathComponent("\(plugin.name).plan.json")))
        #expect(plan.outputs.count == 2 && plan.sizeOutputCount == 1)
        #expect(plan.outputs[0].dataDependent == KernelPlan.DataDependent(dim: 1, sizeOutput: 1))
        #expect(plan.outputs[1].sizeOf == [0] && plan.outputs[1].shapeExpr.isEmpty)

        // The rewritten model: the plugin node writes `nz` and an extra size tensor nothing reads.
        let rewritten = try ONNXModel.load(path: report.rewrittenModel)
        let node = try #require(rewritten.graph.node.first { $0.name == "nonzero" })
        #expect(node.opType == plugin.name)
        #expect(node.output == ["nz", "nonzero__tpat_size1"])
        #expect(!rewritten.graph.node.contains { $0.input.contains("nonzero__tpat_size1") })

        // Generated sources: declareSizeTensor for output 1, output_kind in the launcher.
        let spec = try String(contentsOf: pdir.appendingPathComponent("\(plugin.name)_plugin.cpp"), encoding: .utf8)
        #expect(spec.contains("b.declareSizeTensor(1, *upper1, *upper1)"), "\(spec)")
        #expect(spec.contains("outputs[0].d[1] = size1;"))
        #expect(spec.contains("outputs[1].nbDims = 0;"))
        let launcher = try String(contentsOf: pdir.appendingPathComponent("\(plugin.name)_launcher.cu"), encoding: .utf8)
        #expect(launcher.contains("kKind[] = { TPAT_OUTPUT_DATA_DEPENDENT, TPAT_OUTPUT_SIZE }"), "\(launcher)")
        let pyspec =
            try JSONSerialization.jsonObject(with: Data(contentsOf: pdir.appendingPathComponent("\(plugin.name).plugin.json")))
            as? [String: Any]
        let dd = pyspec?["data_dependent"] as? [Any]
        #expect(dd?.count == 2 && (dd?[0] as? [String: Int]) == ["dim": 1, "size_output": 1] && dd?[1] is NSNull)

        // nvcc builds the launchers and tpat_check; TensorRT-RTX builds an sm_89 engine.
        let b = try cli.run(["build", out.path, "--arch", "89"])
        #expect(b.status == 0, "\(b.stdout)\(b.stderr)")
        let e = try cli.run(["engine", report.rewrittenModel, "--arch", "89"])
        #expect(e.status == 0, "\(e.stdout)\(e.stderr)")
        let line = e.stdout.split(separator: "\n").first { $0.contains("plugin layers in it:") }.map(String.init) ?? ""
        for node in ["nonzero", "compress", "unique", "unique_axis", "nms"] { #expect(line.contains(node), "\(node): \(e.stdout)") }

        // With TensorRT headers: the C++ plugin library (declareSizeTensor) in an engine too.
        let trt = ProcessInfo.processInfo.environment["TensorRT_ROOT"] ?? CLITests.root.appendingPathComponent(".trt").path
        if FileManager.default.fileExists(atPath: trt + "/include/NvInfer.h") {
            let bt = try cli.run(["build", out.path, "--arch", "89", "--tensorrt-root", trt])
            #expect(bt.status == 0, "\(bt.stdout)\(bt.stderr)")
            let emb = dir.appendingPathComponent("embedded.engine")
            let ee = try cli.run(["engine", report.rewrittenModel, "--sm", "89", "--embed-plugins", "-o", emb.path])
            #expect(ee.status == 0, "\(ee.stdout)\(ee.stderr)")
            #expect(ee.stdout.contains("libtpat_plugins.so"), "\(ee.stdout)")
        } else {
            print("note: TensorRT headers not found (TensorRT_ROOT or .trt/include): the C++ NonZero plugin is not built into an engine")
        }
    }
}

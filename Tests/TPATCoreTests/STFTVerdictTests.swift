import Foundation
import Testing

@testable import TPATCore

/// TensorRT 11 / RTX import STFT only with a real signal (last dim 1): the rule `STFT.real`
/// (`inputLastDimIn`) makes a complex-signal STFT a plugin candidate, so TPAT's STFT lowering
/// takes it; a real one stays with TensorRT. TensorRT 10 rejects STFT whatever the signal.
@Suite struct STFTVerdictTests {
    static func valueInfo(_ name: String, _ dims: [Int64]) -> Onnx_ValueInfoProto {
        var tt = Onnx_TypeProto.Tensor()
        tt.elemType = ONNXDataType.float.rawValue
        var s = Onnx_TensorShapeProto()
        s.dim = dims.map {
            var d = Onnx_TensorShapeProto.Dimension(); d.dimValue = $0; return d
        }
        tt.shape = s
        var t = Onnx_TypeProto(); t.tensorType = tt
        var vi = Onnx_ValueInfoProto(); vi.name = name; vi.type = t
        return vi
    }

    static func int64(_ name: String, _ v: Int64) -> Onnx_TensorProto {
        var t = Onnx_TensorProto(); t.name = name; t.dataType = ONNXDataType.int64.rawValue; t.int64Data = [v]
        return t
    }

    /// STFT(x [2, 64, last], step 8 (constant), no window, frame_length 16), onesided = 0.
    static func model(last: Int64, in dir: URL) throws -> URL {
        var m = Onnx_ModelProto(); m.irVersion = 9
        var o = Onnx_OperatorSetIdProto(); o.version = 17; m.opsetImport = [o]
        var n = Onnx_NodeProto(); n.opType = "STFT"; n.name = "stft"; n.input = ["x", "step", "", "len"]; n.output = ["y"]
        var a = Onnx_AttributeProto(); a.name = "onesided"; a.type = .int; a.i = 0; n.attribute = [a]
        m.graph.name = "g"
        m.graph.node = [n]
        m.graph.input = [valueInfo("x", [2, 64, last])]
        m.graph.output = [valueInfo("y", [2, 7, 16, 2])]
        m.graph.initializer = [int64("step", 8), int64("len", 16)]
        let url = dir.appendingPathComponent("stft_\(last).onnx")
        try m.serializedData().write(to: url)
        return url
    }

    @Test(arguments: [ParserRules.Flavour.trt11, .rtx, .trt10])
    func complexSignalIsAPluginCandidate(flavour: ParserRules.Flavour) async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let inspector = Inspector(bridge: try Repo.bridge(), rules: try ParserRules.bundled(flavour))
        let complex = try await inspector.inspect(modelPath: try Self.model(last: 2, in: dir).path, probe: false)
        let c = try #require(complex.nodes.first)
        #expect(c.verdict == .unsupported)
        #expect(c.rule == (flavour == .trt10 ? "op" : "STFT.real"), "\(c.reason)")
        let real = try await inspector.inspect(modelPath: try Self.model(last: 1, in: dir).path, probe: false)
        let r = try #require(real.nodes.first)
        #expect(r.verdict == (flavour == .trt10 ? .unsupported : .restricted), "\(r.reason)")
    }
}

import Foundation
import Testing

@testable import TPATCore

/// The two restriction kinds issue 14 added for Attention (TensorRT-RTX's IAttention, probed by
/// scripts/trt_rules.py rtx): K's and V's head sizes equal (`inputsLastDimEqual`), no attn_mask
/// with is_causal=1 (`inputAbsentWhenAttributeSet`); nodes built in code, evaluated with the RTX rules.
@Suite struct AttentionRuleTests {
    func verdict(
        k: [TPATCore.Dimension] = [.fixed(2), .fixed(3), .fixed(6), .fixed(8)],
        v: [TPATCore.Dimension] = [.fixed(2), .fixed(3), .fixed(6), .fixed(8)],
        mask: Bool = false, causal: Int64? = nil, softmaxPrecision: Bool = false
    ) throws -> NodeVerdict {
        var node = Onnx_NodeProto()
        node.opType = "Attention"
        node.name = "att"
        node.input = ["q", "k", "v"] + (mask ? ["m"] : [])
        node.output = ["y"]
        func intAttr(_ name: String, _ v: Int64) -> Onnx_AttributeProto {
            var a = Onnx_AttributeProto()
            a.name = name
            a.type = .int
            a.i = v
            return a
        }
        if let causal { node.attribute.append(intAttr("is_causal", causal)) }
        if softmaxPrecision { node.attribute.append(intAttr("softmax_precision", 1)) }
        var graph = Onnx_GraphProto()
        graph.node = [node]
        let shapes: [String: [TPATCore.Dimension]] = [
            "q": [.fixed(2), .fixed(3), .fixed(4), .fixed(8)], "k": k, "v": v, "m": [.fixed(4), .fixed(6)], "y": [],
        ]
        let tensors = shapes.mapValues { TensorInfo(name: "", dataType: .float, shape: $0) }
        let rules = try ParserRules.bundled(.rtx)
        return VerdictEvaluator(rules: rules).evaluate(node: 0, index: GraphIndex(graph), tensors: tensors)
    }

    @Test func equalHeadSizesAndAMaskWithoutCausalAreImported() throws {
        #expect(try verdict().verdict == .restricted)
        #expect(try verdict(mask: true, causal: 0).verdict == .restricted)
        #expect(try verdict(causal: 1).verdict == .restricted)
    }

    @Test func differentValueHeadSizeIsRejected() throws {
        let v = try verdict(v: [.fixed(2), .fixed(3), .fixed(6), .fixed(10)])
        #expect(v.verdict == .unsupported && v.rule == "Attention.v_head_size", "\(v.reason)")
    }

    @Test func aMaskWithIsCausalIsRejected() throws {
        let v = try verdict(mask: true, causal: 1)
        #expect(v.verdict == .unsupported && v.rule == "Attention.causal_mask", "\(v.reason)")
    }

    @Test func softmaxPrecisionIsRejected() throws {
        let v = try verdict(softmaxPrecision: true)
        #expect(v.verdict == .unsupported && v.rule == "Attention.softmax_precision", "\(v.reason)")
    }

    @Test func symbolicHeadSizesAreUncheckedUnlessTheSameSymbol() throws {
        let h: [TPATCore.Dimension] = [.fixed(2), .fixed(3), .fixed(6), TPATCore.Dimension.symbol("h")]
        let g: [TPATCore.Dimension] = [.fixed(2), .fixed(3), .fixed(6), TPATCore.Dimension.symbol("g")]
        let same = try verdict(k: h, v: h)
        #expect(same.verdict == NodeVerdict.Verdict.restricted)
        #expect(same.unchecked.isEmpty)
        let other = try verdict(k: h, v: g)
        #expect(other.verdict == NodeVerdict.Verdict.restricted)
        #expect(other.unchecked.contains { $0.hasPrefix("Attention.v_head_size") })
    }
}

import Foundation
import Testing

@testable import TPATCore

/// Issue 13's selection: rule sets per TensorRT flavour, parser-driven candidates, nodes that can
/// never become plugins (shape inputs, non-tensor values), models the ONNX checker rejects.
/// Fixtures: scripts/make_selection_fixtures.py.
@Suite struct SelectionTests {
    func inspect(_ model: String, _ flavour: ParserRules.Flavour, probe: Bool = false) async throws -> InspectReport {
        let inspector = Inspector(bridge: try Repo.bridge(), rules: try ParserRules.bundled(flavour))
        return try await inspector.inspect(modelPath: Repo.fixture(model).path, probe: probe)
    }

    func node(_ r: InspectReport, _ name: String) throws -> NodeVerdict {
        try #require(r.nodes.first { $0.name == name }, "no node \(name)")
    }

    @Test func everyFlavourLoadsWithItsSource() throws {
        let r10 = try ParserRules.bundled(.trt10), r11 = try ParserRules.bundled(.trt11), rtx = try ParserRules.bundled(.rtx)
        #expect(r10.sourceDescription.hasPrefix("TensorRT 10.x rules: onnx/onnx-tensorrt docs/operators.md @ 96e7811"))
        #expect(r11.source.tensorrt == "11.x" && r11.flavour == .trt11)
        #expect(rtx.sourceDescription.contains("TensorRT-RTX") && rtx.source.commit == nil)
        #expect(r10.ops["RMSNormalization"]?.status == .unsupported && r11.ops["RMSNormalization"]?.status == .supported)
        #expect(r11.ops["RoiAlign"]?.status == .supported && rtx.ops["RoiAlign"]?.status == .unsupported)
        #expect(r10.ops["NonZero"]?.source?.contains("onnxOpImporters.cpp @ 96e7811") == true)
        #expect(rtx.ops["ScatterElements"]?.restrictions?.first { $0.id == "ScatterElements.reduction" }?.allowed == [.string("none")])
    }

    @Test func defaultFlavourFollowsTheInstalledParser() {
        func v(_ trt: String?, _ rtx: String?) -> BridgeMessages.Versions {
            .init(python: "3.11", onnx: nil, onnxruntime: nil, tvm: nil, tvmFFI: nil, tensorrt: trt, tensorrtRTX: rtx)
        }
        #expect(ParserRules.Flavour.installed(v("10.13.0.35", nil)) == .trt10)
        #expect(ParserRules.Flavour.installed(v("11.4.0.106", "1.7.1.116")) == .trt11)
        #expect(ParserRules.Flavour.installed(v(nil, "1.7.1.116")) == .rtx)
        #expect(ParserRules.Flavour.installed(v(nil, nil)) == .trt11)
        #expect(ParserRules.Flavour.installed(nil) == .trt11)
        #expect(ParserRules.Flavour.ofParser("TensorRT-RTX 1.7.1.116 (needs ...)") == .rtx)
        #expect(ParserRules.Flavour.ofParser("TensorRT 10.13.0") == .trt10)
        #expect(ParserRules.Flavour.ofParser("TensorRT 11.4.0") == .trt11)
    }

    @Test func tensorRT11RulesImportWhat10Rejects() async throws {
        let r10 = try await inspect("select_trt11.onnx", .trt10)
        #expect(try node(r10, "rms").verdict == .unsupported)
        #expect(try node(r10, "cumsum_dyn_axis").rule == "CumSum.axis")
        // Importer overrides apply to 10.x too: TopK sorted=0 and 1-D pooling are imported.
        #expect(try node(r10, "topk_unsorted").verdict == .restricted)
        #expect(try node(r10, "maxpool_1d").verdict == .restricted)
        let r11 = try await inspect("select_trt11.onnx", .trt11)
        #expect(try node(r11, "rms").verdict == .supported)
        #expect(try node(r11, "cumsum_dyn_axis").verdict == .supported)
        #expect(r11.trt == "11" && r11.pluginCandidates.isEmpty)
    }

    @Test func nodesFeedingShapeInputsAreBlocked() async throws {
        let r = try await inspect("select_shape_feed.onnx", .trt10)
        for name in ["cumsum_ends", "gather_total", "band_shape"] {
            let b = try #require(try node(r, name).blocker, "\(name) not blocked")
            #expect(b.code == "feeds_shape_input")
            #expect(b.suggestion.contains("--fold-constants"))
        }
        #expect(try node(r, "cumsum_ends").blocker?.reason.contains("Range 'range_positions'") == true)
        #expect(try node(r, "band_shape").blocker?.reason.contains("Reshape 'reshape_x'") == true)
        // Shape reads only the shape of its input: the Relu before it stays free; so does data.
        for name in ["relu_x", "bxor_data", "range_positions", "reshape_x"] { #expect(try node(r, name).blocker == nil, "\(name)") }
        #expect(r.pluginCandidates == ["bxor_data"])
        #expect(r.blocked == ["cumsum_ends", "band_shape"])
        #expect(r.text().contains("Cannot become plugins (2)"))
    }

    @Test func sequenceNodesAreBlockedWithASuggestion() async throws {
        let r = try await inspect("select_sequence.onnx", .trt11)
        for name in ["split_seq", "seq_at_0", "seq_at_1"] {
            let b = try #require(try node(r, name).blocker)
            #expect(b.code == "non_tensor")
            #expect(b.suggestion.contains("rewrites this SplitToSequence"))  // generate can (SequenceRewriter)
        }
        #expect(try node(r, "relu_second").blocker == nil)
        #expect(r.pluginCandidates.isEmpty && r.blocked.count == 3)
        // Where no rewrite applies, the advice is to constant-fold first.
        let model = try ONNXModel.load(path: Repo.fixture("select_sequence.onnx").path)
        let blockers = PluginBlockers.find(index: GraphIndex(model.graph), nonTensorValues: ["parts"])
        #expect(blockers.count == 3 && blockers.values.allSatisfy { $0.code == "non_tensor" && $0.suggestion.contains("constant-fold") })
    }

    @Test func aModelTheCheckerRejectsIsReportedAndInspected() async throws {
        let r = try await inspect("select_checker.onnx", .trt11)
        #expect(r.checker?.contains("not_an_attribute") == true)
        #expect(r.warnings.first?.hasPrefix("the ONNX checker rejects this model") == true)
        #expect(r.pluginCandidates == ["col2im"])
        let clean = try await inspect("select_shape_feed.onnx", .trt11)
        #expect(clean.checker == nil)
    }

    @Test func theInstalledParserChoosesWhenItIsTheRulesFlavour() async throws {
        let rtx = try await inspect("select_probe.onnx", .rtx, probe: true)
        try #require(rtx.probe?.parser?.hasPrefix("TensorRT-RTX") == true, "needs TensorRT-RTX (in the venv)")
        #expect(rtx.selectedBy == "parser")
        #expect(rtx.probe?.mode == "whole-model" && rtx.probe?.parses == 3)
        #expect(rtx.pluginCandidates == ["nonzero", "col2im"])
        // With the 10.x rules the table chooses (NonZero on float is in it); the parser's answer
        // is shown beside and the disagreement listed.
        let t10 = try await inspect("select_probe.onnx", .trt10, probe: true)
        #expect(t10.selectedBy == "table")
        #expect(t10.pluginCandidates == ["col2im"])
        #expect(t10.probe?.disagreements == ["nonzero"])
        #expect(t10.warnings.contains { $0.contains("candidates come from the rules") })
    }

    @Test func selectionAddsAndRemoves() async throws {
        let bridge = try Repo.bridge()
        let rules = try ParserRules.bundled(.trt10)
        let path = Repo.fixture("select_shape_feed.onnx").path
        let model = try ONNXModel.load(path: path)
        let report = try await Inspector(bridge: bridge, rules: rules).inspect(model: model, modelPath: path, probe: false)
        let g = Generator(bridge: bridge, rules: rules, cache: nil, diagnostics: DiagnosticsCollector())
        let index = GraphIndex(model.graph)
        func names(_ s: Generator.Selection) throws -> [String] {
            try g.select(s, model: model, index: index, bodies: [], report: report).0.map(index.nodeName)
        }
        // auto: the candidates and the blocked nodes it would want (reported, never converted).
        #expect(try names(.auto) == ["cumsum_ends", "band_shape", "bxor_data"])
        #expect(try names(.init(auto: true, ops: ["Relu"], excludeNodes: ["band_shape"])) == ["cumsum_ends", "bxor_data", "relu_x"])
        #expect(try names(.init(auto: true, nodes: ["shape_x"], excludeOps: ["CumSum", "BitwiseAnd"])) == ["bxor_data", "shape_x"])
        #expect(throws: TPATError.self) { try names(.init(auto: true, excludeNodes: ["nope"])) }
    }
}

extension SelectionTests {
    @Test func sequenceRewritesArePlannedOnlyForConstantReads() async throws {
        let inspector = Inspector(bridge: try Repo.bridge(), rules: try ParserRules.bundled(.trt11))
        for (name, parts, reads) in [
            ("select_sequence.onnx", 2, ["seq_at_0", "seq_at_1"]), ("select_sequence_keepdims.onnx", 4, ["at_last", "at_0", "at_0_again"]),
        ] {
            let path = Repo.fixture(name).path
            let (tensors, _) = try await inspector.tensorInfo(modelPath: path)
            let plan = SequenceRewriter.plan(try ONNXModel.load(path: path), tensors: tensors)
            #expect(plan.count == 1 && plan.first?.parts == parts && plan.first?.reads == reads, "\(name)")
        }
        // A position that is not a constant: no rewrite.
        var model = try ONNXModel.load(path: Repo.fixture("select_sequence.onnx").path)
        let (tensors, _) = try await inspector.tensorInfo(modelPath: Repo.fixture("select_sequence.onnx").path)
        model.proto.graph.initializer.removeAll { $0.name == "p1" }
        #expect(SequenceRewriter.plan(model, tensors: tensors).isEmpty)
        // The inspect report tells what generate will do.
        let r = try await inspector.inspect(modelPath: Repo.fixture("select_sequence.onnx").path, probe: false)
        #expect(r.nodes.first { $0.name == "split_seq" }?.blocker?.suggestion.contains("rewrites this SplitToSequence") == true)
    }
}

extension SelectionTests {
    @Test func nodesInsideIfBodiesAreInspectedWithTheirPath() async throws {
        let r = try await inspect("select_subgraph.onnx", .trt10)
        let band = try #require(r.subgraphNodes.first { $0.name == "if_node > then_branch > band_inner" })
        #expect(band.verdict == .unsupported && band.rule == "op")
        #expect(band.inputs == ["int32[8]", "int32[8]"])  // outer-scope tensors, typed
        // K is an initializer of the enclosing graph: a constant for the TopK.K check.
        let topk = try #require(r.subgraphNodes.first { $0.name == "if_node > else_branch > topk_inner" })
        #expect(topk.verdict == .restricted && topk.unchecked.isEmpty)
        #expect(r.subgraphNodes.count == 4)
        #expect(r.pluginCandidates == ["if_node > then_branch > band_inner"])
        #expect(r.text().contains("  if_node > then_branch > band_inner (BitwiseAnd int32[8], int32[8] -> int32[8])"))
    }

    @Test func nodesAfterAnIfWhoseBranchesDifferInRankAreBlocked() async throws {
        let r = try await inspect("select_if_ranks.onnx", .trt11)
        // TensorRT rejects the If itself (its restriction, now checked); neither can become a plugin.
        let ifNode = try node(r, "if_ranks")
        #expect(ifNode.verdict == .unsupported && ifNode.rule == "If.branches")
        #expect(ifNode.reason.contains("output 'picked': then_branch gives rank 3, else_branch rank 2"))
        #expect(ifNode.blocker?.code == "unknown_rank")
        let after = try #require(try node(r, "bnot_after_if").blocker)
        #expect(after.code == "unknown_rank")
        #expect(after.reason.contains("the rank of input 'picked64' is unknown: it comes from If 'if_ranks'"), "\(after.reason)")
        #expect(after.suggestion.contains("onnxsim"))
        // Nodes TensorRT imports keep no blocker; the BitwiseNot on a known rank stays a candidate.
        for name in ["cast_picked", "sum_all"] { #expect(try node(r, name).blocker == nil, "\(name)") }
        #expect(r.pluginCandidates == ["bnot_codes"])
        #expect(r.blocked == ["if_ranks", "bnot_after_if"])
        #expect(r.text().contains("bnot_after_if (BitwiseNot) [unknown_rank]"))
        let request = BridgeMessages.ValidateRequest(schema: "inspect-report.schema.json", definition: nil, instance: try JSONValue.from(r))
        let valid = try await Repo.bridge().call(request, as: BridgeMessages.ValidateResult.self)
        #expect(valid.valid, "\(valid.errors)")
        // Same-rank branches pass the If restriction (select_body_convert: [8,4] vs [16,4]).
        let same = try await inspect("select_body_convert.onnx", .trt11)
        #expect(try node(same, "if_node").rule != "If.branches")
    }

    @Test func bodyNodesAreSelectedExtractedAndBlockedByPath() async throws {
        let bridge = try Repo.bridge()
        let rules = try ParserRules.bundled(.trt10)
        let path = Repo.fixture("select_body_convert.onnx").path
        let model = try ONNXModel.load(path: path)
        let inspector = Inspector(bridge: bridge, rules: rules)
        let report = try await inspector.inspect(model: model, modelPath: path, probe: false)
        #expect(report.pluginCandidates == ["scatter_after", "if_node > then_branch > scatter_add", "loop > body > topk_big"])
        let g = Generator(bridge: bridge, rules: rules, cache: nil, diagnostics: DiagnosticsCollector())
        let index = GraphIndex(model.graph), bodies = Subgraphs.bodies(model)
        func names(_ s: Generator.Selection) throws -> [String] {
            let (top, inner) = try g.select(s, model: model, index: index, bodies: bodies, report: report)
            return top.map(index.nodeName) + inner.map { $0.body.nodePath($0.node) }
        }
        #expect(
            try names(.init(auto: true, excludeNodes: ["scatter_after"], excludeOps: ["TopK"])) == ["if_node > then_branch > scatter_add"])
        #expect(
            try names(.init(nodes: ["if_node > else_branch > twice"], ops: ["TopK"])) == [
                "if_node > else_branch > twice", "loop > body > topk_big",
            ])
        // The TopK's outer-scope input is a graph input of its one-node model, K a constant; the
        // node after the If is typed from the If's inferred output (first dim a symbol).
        let (tensors, _) = try await inspector.tensorInfo(modelPath: path)
        let loopBody = try #require(bodies.first { $0.path == "loop > body" })
        let topk = try Subgraphs.extract(0, of: loopBody, model: model, tensors: tensors, demoteFloat64: true)
        #expect(topk.sourceName == "loop > body > topk_big" && topk.graphInputSources == ["scores"])
        #expect(topk.model.graph.initializer.map(\.name) == ["const0"] && topk.graphOutputSources == ["vals", "inds"])
        let after = try NodeExtractor.extract(node: "scatter_after", from: model, tensors: tensors)
        #expect(after.model.graph.input.first?.type.tensorType.shape.dim.first?.dimParam == "s0")
        // A body output that reaches a shape input through its If is blocked.
        var shaped = model
        var reshape = Onnx_NodeProto()
        reshape.opType = "Reshape"; reshape.name = "reshape_by_y"; reshape.input = ["data", "y"]; reshape.output = ["r"]
        shaped.proto.graph.node.append(reshape)
        let owner = PluginBlockers.find(index: GraphIndex(shaped.graph), nonTensorValues: [])
        #expect(owner[0]?.code == "feeds_shape_input")
        let inner = Subgraphs.blockers(
            bodies: Subgraphs.bodies(shaped), ownerBlockers: ["if_node": try #require(owner[0])], nonTensorValues: [])
        #expect(inner["if_node > then_branch > scatter_add"]?.code == "feeds_shape_input")
        #expect(inner["loop > body > topk_big"] == nil)
    }
}

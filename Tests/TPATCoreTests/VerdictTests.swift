import Foundation
import Testing

@testable import TPATCore

/// The verdicts of every fixture node against expected-verdicts.json, which the fixture script
/// writes from each fixture's intent (not from this evaluator).
@Suite struct VerdictTests {
    struct Expected: Decodable { var verdict: String; var rule: String? }

    static let expected: [String: [String: Expected]] = {
        let url = Repo.fixture("expected-verdicts.json")
        return (try? JSONDecoder().decode([String: [String: Expected]].self, from: Data(contentsOf: url))) ?? [:]
    }()

    @Test func fixturesCoverEveryVerdictAndRule() {
        let all = Self.expected.values.flatMap(\.values)
        #expect(Set(all.map(\.verdict)) == ["supported", "restricted", "unsupported"])
        let rules = Set(all.compactMap(\.rule))
        for r in ["ScatterND.reduction", "TopK.K", "GridSample.rank", "Resize.mode", "Resize.antialias", "CumSum.axis", "op", "dtype"] {
            #expect(rules.contains(r), "no fixture for \(r)")
        }
    }

    @Test(arguments: expected.keys.sorted())
    func verdictsMatchIntent(model: String) async throws {
        let inspector = Inspector(bridge: try Repo.bridge(), rules: try ParserRules.bundled())
        let report = try await inspector.inspect(modelPath: Repo.fixture(model).path, probe: false)
        let expected = try #require(Self.expected[model])
        #expect(report.nodes.count == expected.count)
        for node in report.nodes {
            let want = try #require(expected[node.name], "node \(node.name) missing from expectations")
            #expect(node.verdict.rawValue == want.verdict, "\(model): \(node.name): \(node.reason)")
            #expect(node.rule == want.rule, "\(model): \(node.name): rule \(node.rule ?? "nil")")
        }
        #expect(report.pluginCandidates == report.nodes.filter { $0.verdict == .unsupported }.map(\.name))
    }

    @Test func symbolicShapesComeThroughTheBridge() async throws {
        let inspector = Inspector(bridge: try Repo.bridge(), rules: try ParserRules.bundled())
        let (tensors, _) = try await inspector.tensorInfo(modelPath: Repo.fixture("symbolic.onnx").path)
        // Only data propagation through Shape -> Gather -> Concat -> Reshape gives this shape.
        let heads = try #require(tensors["heads"])
        #expect(heads.shape == [.symbol("batch"), .symbol("seq"), .fixed(4), .fixed(8)])
        #expect(heads.dataType == .float)
        #expect(tensors.values.contains { $0.shape?.contains(.symbol("seq")) == true && $0.dataType == .float })
    }

    @Test func rulesCoverTheParserTable() throws {
        let rules = try ParserRules.bundled()
        #expect(rules.maxOpset == 24)
        #expect(rules.ops.count >= 190)
        #expect(rules.source.repository == "onnx/onnx-tensorrt")
        #expect(rules.ops["Col2Im"]?.status == .unsupported)
        #expect(rules.ops["ScatterND"]?.restrictions?.contains { $0.kind == .attributeIn && $0.attribute == "reduction" } == true)
    }
}
